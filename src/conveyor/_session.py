"""How Conveyor's own connections are set up to read values quickly.

- jsonb: orjson parses several times faster than the standard library, but reads
  integers past 64 bits as floats, silently. Such an integer has at least 19
  digits, so text with a run of 19 digits goes to the standard library;
  everything else to orjson. The run is looked for by mapping every digit to
  ``0`` (``bytes.translate``) and searching for nineteen of them: about 1 ns a
  byte, where a regular expression took 12 (27 µs for a 2.3 KB payload that
  orjson parses in 2).
- timestamps: the session's time zone is UTC. psycopg then returns datetimes in
  ``datetime.timezone.utc``, which it builds about four times faster than in a
  ``zoneinfo`` zone such as ``Etc/UTC`` (a claimed job carries five of them).
  PgBouncer tracks ``TimeZone`` per client, so this holds through it as well.
  Conveyor's statements never depend on the session's zone. A connection whose
  zone is already ``UTC`` (``ALTER ROLE ... SET TimeZone = 'UTC'``) is sent no
  ``SET`` at all: a pooler that cannot carry session state (RDS Proxy pins the
  connection on any ``SET``) then sees none.
- writing jsonb in a binary COPY: the JSON text Conveyor already encoded (and
  measured against the payload limit) is sent as it is (:class:`EncodedJsonb`),
  not decoded and encoded again; ids made by the client go as integers
  (:class:`UuidInt`).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import psycopg
from psycopg import postgres
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader

from conveyor.queries import Queries

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


class EncodedJsonb(Dumper):
    """JSON text, already encoded, as a binary ``jsonb`` value: for COPY columns
    declared ``jsonb`` (``Copy.dumpers``)."""

    format = psycopg.pq.Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()  # jsonb's binary format: version 1, then the text


class UuidInt(Dumper):
    """A UUID given as its 128-bit integer, as a binary ``uuid`` value: for COPY
    columns declared ``uuid``, where building ``uuid.UUID`` objects only to read
    their bytes back would cost more than the rest of the row."""

    format = psycopg.pq.Format.BINARY
    oid = postgres.types["uuid"].oid

    def dump(self, obj: int) -> bytes:
        return obj.to_bytes(16)


def _parse(data: Buffer) -> Any:
    raw = bytes(data)
    # count(), not ``in``: bytes.__contains__ first tries its argument as an
    # integer and discards the TypeError, 0.4 µs a value here.
    if raw.translate(_DIGITS_AS_ZERO).count(_LONG_NUMBER):
        return json.loads(raw)
    return orjson.loads(raw)


class JsonLoader(Loader):
    """``json`` and ``jsonb`` in text, parsed in one call (psycopg's own loader
    adds a frame and a copy per value, and a claim reads five values per job)."""

    load = staticmethod(_parse)


class JsonBinaryLoader(JsonLoader):
    """``json`` in binary, which is its text."""

    format = psycopg.pq.Format.BINARY


class JsonbBinaryLoader(Loader):
    """``jsonb`` in binary: a version byte (1), then the text."""

    format = psycopg.pq.Format.BINARY

    def load(self, data: Buffer) -> Any:
        if data[:1] != b"\x01":
            raise psycopg.DataError(f"unknown jsonb binary format: {bytes(data[:1])!r}")
        return _parse(data[1:])


def _set_loaders(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    adapters = conn.adapters
    adapters.register_loader("json", JsonLoader)
    adapters.register_loader("jsonb", JsonLoader)
    adapters.register_loader("json", JsonBinaryLoader)
    adapters.register_loader("jsonb", JsonbBinaryLoader)


def _in_utc(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.info.parameter_status("TimeZone") == "UTC"


def configure(conn: psycopg.Connection[Any], queries: Queries) -> None:
    _set_loaders(conn)
    if not _in_utc(conn):
        conn.execute(queries["session"])


async def configure_async(conn: psycopg.AsyncConnection[Any], queries: Queries) -> None:
    _set_loaders(conn)
    if not _in_utc(conn):
        await conn.execute(queries["session"])
