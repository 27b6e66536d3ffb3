"""Job options and queue settings: their names, their checks, and the rows they make.

A job option left out (``None``) takes the queue's default when the job is
inserted; the queue's defaults start as the built-in ones in the schema. The same
checks serve ``send``, each item of ``insert`` and the queue settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, TypedDict

from conveyor._ops import validate
from conveyor.errors import InvalidOption, InvalidPolicy
from conveyor.job import QueuePolicy

_UNSET: Final = object()


def _policy(value: object) -> str:
    if isinstance(value, str) and value in QueuePolicy.__members__.values():
        return QueuePolicy(value).value
    allowed = ", ".join(p.value for p in QueuePolicy)
    raise InvalidPolicy(f"invalid policy {value!r}; use one of {allowed}")


def _seconds(value: object) -> float:
    return validate.positive_duration(value, "singleton_seconds").total_seconds()


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "policy": _policy,
    "priority": lambda v: validate.integer(v, "priority"),
    "retry_limit": lambda v: validate.integer(v, "retry_limit", minimum=0),
    "retry_delay": lambda v: validate.duration(v, "retry_delay"),
    "retry_backoff": lambda v: validate.boolean(v, "retry_backoff"),
    "retry_delay_max": lambda v: validate.positive_duration(v, "retry_delay_max"),
    "expire_in": lambda v: validate.positive_duration(v, "expire_in"),
    "retention": lambda v: validate.positive_duration(v, "retention"),
    "delete_after": lambda v: validate.duration(v, "delete_after"),
    "dead_letter": lambda v: validate.queue_name(v, "dead_letter"),
    "rate_limit": lambda v: validate.integer(v, "rate_limit", minimum=1),
    "rate_period": lambda v: validate.positive_duration(v, "rate_period"),
    "group_concurrency": lambda v: validate.integer(v, "group_concurrency", minimum=1),
    "group_rate_limit": lambda v: validate.integer(v, "group_rate_limit", minimum=1),
    "group_rate_period": lambda v: validate.positive_duration(v, "group_rate_period"),
    "fair": lambda v: validate.boolean(v, "fair"),
    "singleton_key": lambda v: validate.text(v, "singleton_key"),
    "singleton_seconds": _seconds,
    "singleton_next_slot": lambda v: validate.boolean(v, "singleton_next_slot"),
    "debounce_seconds": lambda v: validate.positive_duration(v, "debounce_seconds"),
    "group_key": lambda v: validate.text(v, "group_key"),
    "id": validate.job_id,
}

Duration = int | float | timedelta
"""Seconds, or a timedelta."""


class QueueSettings(TypedDict, total=False):
    """A queue's policy and the defaults its jobs take (see ``create_queue``). Pass
    ``None`` to ``dead_letter`` or ``retry_delay_max`` to remove it."""

    policy: QueuePolicy | str
    priority: int
    retry_limit: int
    retry_delay: Duration
    retry_backoff: bool
    retry_delay_max: Duration | None
    expire_in: Duration
    retention: Duration
    delete_after: Duration
    dead_letter: str | None
    rate_limit: int | None
    rate_period: Duration | None
    group_concurrency: int | None
    group_rate_limit: int | None
    group_rate_period: Duration | None
    fair: bool


QUEUE_SETTINGS: Final = tuple(QueueSettings.__annotations__)
_CLEARABLE: Final = frozenset({
    "retry_delay_max", "dead_letter", "rate_limit", "rate_period", "group_concurrency",
    "group_rate_limit", "group_rate_period",
})
# A rate limit is a count and a period, given (or cleared) together.
RATE_PAIRS: Final = (("rate_limit", "rate_period"), ("group_rate_limit", "group_rate_period"))


def check(name: str, value: Any) -> Any:
    """The normalised value of one option; ``None`` stays ``None``."""
    return None if value is None else _CHECKS[name](value)


class JobRow(NamedTuple):
    """One job ready for ``enqueue.sql``: checked, with ``None`` for queue defaults.
    The fields are in the order of the staging table's columns. ``trace_context``
    is not an option: :mod:`conveyor.tracing` fills it in (JSON text) when on."""

    id: uuid.UUID | None
    data: str | None
    priority: int | None
    start_at: datetime | None
    start_in: timedelta | None
    retry_limit: int | None
    retry_delay: timedelta | None
    retry_backoff: bool | None
    retry_delay_max: timedelta | None
    expire_in: timedelta | None
    retention: timedelta | None
    delete_after: timedelta | None
    dead_letter: str | None
    singleton_key: str | None
    singleton_seconds: float | None
    singleton_next_slot: bool | None
    debounce_seconds: timedelta | None
    group_key: str | None
    trace_context: str | None


JOB_OPTIONS: Final = (
    *(name for name in JobRow._fields
      if name not in ("data", "start_at", "start_in", "trace_context")),
    "start_after",
)
_ITEM_KEYS: Final = frozenset(("data", *JOB_OPTIONS))


_ROW_FIELDS: Final = JobRow._fields
_NO_OPTIONS: Final = (None,) * (len(_ROW_FIELDS) - 2)


def job_row(data: Any, max_payload_bytes: int, options: Mapping[str, Any]) -> JobRow:
    """Checks one job's data and options. ``options`` holds known names only; only
    those given (not ``None``) are checked, which keeps bulk inserts cheap."""
    values: dict[str, Any] = dict.fromkeys(_ROW_FIELDS)
    for name, value in options.items():
        if value is None or name == "data":
            continue
        if name == "start_after":
            values["start_at"], values["start_in"] = validate.start_after(value)
        else:
            values[name] = _CHECKS[name](value)
    if values["singleton_next_slot"] or values["debounce_seconds"] is not None:
        _check_together(values)
    values["data"] = validate.encode_json(data, max_payload_bytes, "data")
    return JobRow(**values)


def _check_together(values: Mapping[str, Any]) -> None:
    """The throttle and debounce options that need, or exclude, one another."""
    if values["singleton_next_slot"] and values["singleton_seconds"] is None:
        raise InvalidOption(
            "singleton_next_slot moves a throttled job to the next slot; give "
            "singleton_seconds with it"
        )
    if values["debounce_seconds"] is None:
        return
    if values["singleton_key"] is None:
        raise InvalidOption(
            "debounce_seconds replaces the waiting job that has the same singleton_key; "
            "give a singleton_key with it"
        )
    if values["singleton_seconds"] is not None:
        raise InvalidOption(
            "debounce_seconds (the last send of a key wins) and singleton_seconds (the "
            "first send of a slot wins) cannot be combined; choose one"
        )
    if values["id"] is not None:
        raise InvalidOption(
            "a debounced job keeps the id of the send that created it; leave id out "
            "when giving debounce_seconds"
        )


def item_row(item: object, max_payload_bytes: int) -> JobRow:
    """One item of a bulk insert: a mapping with ``data`` and any job options."""
    if not isinstance(item, Mapping):
        raise InvalidOption(
            f"each insert item must be a mapping like {{'data': {{...}}, 'priority': 5}}, "
            f"not {type(item).__name__}"
        )
    if len(item) == 1 and "data" in item:  # the common case, kept cheap for bulk inserts
        return JobRow(None, validate.encode_json(item["data"], max_payload_bytes, "data"),
                      *_NO_OPTIONS)
    if not _ITEM_KEYS.issuperset(item):
        unknown = {key: value for key, value in item.items() if key not in _ITEM_KEYS}
        validate.unknown_options(unknown, JOB_OPTIONS)
    return job_row(item.get("data"), max_payload_bytes, item)


def enqueue_params(queue: str, row: JobRow) -> dict[str, Any]:
    """Parameters for ``enqueue.sql`` with one job (``enqueue_input_one.sql``)."""
    params: dict[str, Any] = row._asdict()
    params["queue"] = queue
    return params


STAGED_TYPES: Final = (
    "uuid", "text", "int4", "timestamptz", "interval", "int4", "interval", "bool",
    "interval", "interval", "interval", "interval", "text", "text", "float8", "bool",
    "interval", "text", "text",
)
"""The binary COPY types of ``enqueue_stage.sql``'s columns, in ``JobRow`` order:
a ``JobRow`` is written as it is (``tests/test_row_shapes.py`` checks the three agree)."""



def queue_settings(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters for ``queue_update.sql`` from the settings a caller gave.

    A setting left out stays as it is; ``None`` clears an optional setting.
    """
    validate.unknown_options(
        {key: value for key, value in given.items() if key not in QUEUE_SETTINGS}, QUEUE_SETTINGS
    )
    params: dict[str, Any] = {"name": name}
    for setting in QUEUE_SETTINGS:
        value = given.get(setting, _UNSET)
        if value is None and setting not in _CLEARABLE:
            raise InvalidOption(f"{setting} cannot be None; leave it out to keep its value")
        params[setting] = None if value is _UNSET else check(setting, value)
        if setting in _CLEARABLE:
            params[f"set_{setting}"] = value is not _UNSET
    if params["dead_letter"] == name:
        raise InvalidOption(f"queue {name!r} cannot be its own dead-letter queue")
    for count, period in RATE_PAIRS:
        if (count in given) != (period in given) or (
            (given.get(count) is None) != (given.get(period) is None)
        ):
            raise InvalidOption(f"give {count} and {period} together (both None to remove)")
    return params
