"""Checks and normalises what callers pass in, before anything touches the database.

Each function returns the normalised value or raises a typed error from
:mod:`conveyor.errors` whose message names the argument and the fix.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import traceback
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from conveyor.errors import (
    InvalidArgument,
    InvalidOption,
    InvalidPayload,
    InvalidQueueName,
    InvalidSchemaName,
    PayloadTooLarge,
    UnknownOption,
)
from conveyor.job import Job

# Matched whole (fullmatch): "$" would also match before a trailing newline.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
QUEUE_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,127}"
"""What a queue (or schedule) name may be, matched whole; the REST API's spec
states it too."""
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)
_INT32_MAX = 2**31 - 1
# A NUL written as JSON: \u0000 after an even number of backslashes (an odd number
# would make it the text "\u0000", which is fine).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# One encoder for every payload: json.dumps() with options builds a new one per call.
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def schema_name(value: object) -> str:
    """A schema is a plain lower-case identifier, so it never needs case-folding rules."""
    if not isinstance(value, str) or not _SCHEMA_NAME.fullmatch(value):
        raise InvalidSchemaName(
            f"invalid schema name {value!r}: use 1-63 characters of a-z, 0-9 and _, "
            "not starting with a digit"
        )
    return value


def queue_name(value: object, argument: str = "queue") -> str:
    if not isinstance(value, str) or not _QUEUE_NAME.fullmatch(value):
        raise InvalidQueueName(
            f"invalid {argument} name {value!r}: use 1-128 characters of letters, digits "
            "and _ . : / -, starting with a letter, digit or _"
        )
    return value


def encode_json(value: Any, limit: int, what: str) -> str | None:
    """JSON text for a jsonb column; ``None`` stays SQL NULL.

    orjson does the work (ten times faster than the standard library here), so
    datetimes, dates, UUIDs, enums and dataclasses are accepted too. NaN and the
    infinities are refused (orjson would write them as ``null``), and what orjson
    refuses but ``json.dumps`` accepts (non-string keys, integers over 64 bits) is
    encoded the standard way.
    """
    if value is None:
        return None
    try:
        text = orjson.dumps(value).decode()
        if "null" in text and _non_finite(value):
            raise InvalidPayload(f"{what} contains NaN or an infinity, which JSON cannot hold")
    except (TypeError, orjson.JSONEncodeError):
        try:
            text = _JSON.encode(value)
        except (TypeError, ValueError) as exc:
            raise InvalidPayload(
                f"{what} must be JSON-serialisable (dict, list, str, int, float, bool, None): "
                f"{exc}"
            ) from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise InvalidPayload(f"{what} contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(text) if text.isascii() else len(text.encode())
    except UnicodeEncodeError:
        raise InvalidPayload(f"{what} contains text that is not valid Unicode") from None
    if size > limit:
        raise PayloadTooLarge(
            f"{what} is {size} bytes as JSON, over the limit of {limit} bytes; store large "
            "content elsewhere and send a reference, or raise max_payload_bytes"
        )
    return text


def _non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_non_finite(item) for item in value)
    return False


def _number(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidOption(
            f"{argument} must be seconds (int or float) or a timedelta, not {value!r}"
        )
    if (isinstance(value, int) and abs(value) > 2**63) or not math.isfinite(value):
        raise InvalidOption(f"{argument} must be a finite number of seconds, not {value!r}")
    return float(value)


_MAX_DURATION = timedelta(days=36_525)
"""A hundred years: longer durations are slips, and past PostgreSQL's or
Python's range they could not even be stored."""


def duration(value: object, argument: str) -> timedelta:
    """Seconds (int or float) or a timedelta, never negative, at most a hundred years."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else _number(value, argument)
    if seconds < 0:
        raise InvalidOption(f"{argument} must not be negative, got {value!r}")
    if seconds > _MAX_DURATION.total_seconds():
        raise InvalidOption(f"{argument} must be at most a hundred years, got {value!r}")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def positive_duration(value: object, argument: str) -> timedelta:
    result = duration(value, argument)
    if result <= timedelta(0):
        raise InvalidOption(f"{argument} must be greater than zero, got {value!r}")
    return result


_START_AFTER_FORMS = (
    "seconds (int or float), a timedelta, an aware datetime, or ISO 8601 text with "
    "an offset ('2026-12-05T14:30:00+01:00' or '...Z')"
)


def start_after(value: object) -> tuple[datetime | None, timedelta | None]:
    """An absolute time (an aware datetime, or ISO 8601 text with an offset, as
    pg-boss takes it) or a delay; exactly one side is set."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidOption(
                f"start_after must be {_START_AFTER_FORMS}; {value!r} is not ISO 8601"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidOption(
                f"start_after must be {_START_AFTER_FORMS}, not a time without an offset "
                f"({value.isoformat()}): say which zone it is in"
            )
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise InvalidOption(f"start_after must be {_START_AFTER_FORMS}, not {value!r}")
    return None, duration(value, "start_after")


def integer(value: object, argument: str, minimum: int = -_INT32_MAX - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(f"{argument} must be an int, not {value!r}")
    if not minimum <= value <= _INT32_MAX:
        raise InvalidOption(f"{argument} must be between {minimum} and {_INT32_MAX}, got {value}")
    return value


def boolean(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidOption(f"{argument} must be True or False, not {value!r}")
    return value


def text(value: object, argument: str, max_length: int = 255) -> str:
    """Non-empty text PostgreSQL can store: no NUL, and valid Unicode (a lone
    surrogate, which JSON's ``\\ud800`` escapes can carry, has no UTF-8 form)."""
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        raise InvalidOption(
            f"{argument} must be a non-empty string of at most {max_length} characters, "
            f"not {value!r}"
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidOption(
                f"{argument} must be valid Unicode text; {value!r} holds a lone surrogate"
            ) from None
    return value


def job_id(value: object) -> uuid.UUID:
    """A job id: a UUID or its text form. Job objects are accepted for their id."""
    if isinstance(value, Job):
        value = value.id
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidArgument(f"a job id must be a UUID (or its text form), not {value!r}")


def job_refs(value: object) -> list[object]:
    """One id or job, or an iterable of them, as a list (ids not checked yet)."""
    if isinstance(value, str | uuid.UUID) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def job_ids(value: object) -> list[uuid.UUID]:
    """One id or job, or an iterable of them."""
    return [job_id(item) for item in job_refs(value)]


def unknown_options(
    unknown: Mapping[str, object], known: Iterable[str], what: str = "option",
) -> None:
    """Raise :class:`UnknownOption` naming the unknown names, the closest known name
    to each (a typo, most often), and every known one."""
    if unknown:
        known = list(known)
        guesses = []
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, known, n=1)
            guesses.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise UnknownOption(
            f"unknown {what}(s) {', '.join(guesses)}; known {what}s: {', '.join(known)}")


def error_json(error: object, limit: int) -> str:
    """What a failed attempt stores, as JSON text: type, message and traceback for an
    exception, the mapping itself for a dict, ``{"message": ...}`` for a string.

    An exception's message and traceback are cut to ``_ERROR_TEXT_LIMIT`` characters
    each, so recording a failure never fails for being too long.
    """
    record: dict[str, Any]
    if isinstance(error, BaseException):
        record = {
            "type": f"{type(error).__module__}.{type(error).__qualname__}",
            "message": _clip(str(error)),
            "traceback": _clip("".join(traceback.format_exception(error))),
        }
    elif isinstance(error, Mapping):
        record = dict(error)
    elif isinstance(error, str):
        record = {"message": _clip(error)}
    elif error is None:
        record = {"message": "failed"}
    else:
        raise InvalidArgument(
            f"error must be an exception, a dict or a string, not {type(error).__name__}"
        )
    encoded = encode_json(record, limit, "error")
    assert encoded is not None
    return encoded


_ERROR_TEXT_LIMIT = 32_000


def _clip(value: str) -> str:
    if len(value) <= _ERROR_TEXT_LIMIT:
        return value
    return value[:_ERROR_TEXT_LIMIT] + f"... [{len(value) - _ERROR_TEXT_LIMIT} characters cut]"
