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
- a worker's batches of outcomes: the job ids (text, as claims return them) and
  the attempts go as binary ``uuid[]`` and ``integer[]`` built in one pass each
  (:class:`TextUuids`, :class:`Int4s`). psycopg dumps a list element by element
  in Python, and a list of strings as ``text[]``, which the server then casts
  to ``uuid[]`` value by value: together about 1.5 µs a job on both sides,
  against 0.4 this way.
"""

from __future__ import annotations

import itertools
import json
import struct
from typing import Any

import orjson
import psycopg
from psycopg import postgres
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader

from conveyor._db import statements
from conveyor._db.queries import Queries

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


_ARRAY_HEADER = struct.Struct(">iiiii")
"""A one-dimensional binary array: dimensions, has-nulls, element type, length,
lower bound."""
_UUID_OID = postgres.types["uuid"].oid
_INT4_OID = postgres.types["int4"].oid
_UUID_SIZE_HEX = "00000010"
"""An element's length (16 bytes) in hex, as it precedes each uuid."""


class TextUuids(list[str]):
    """Job ids in their canonical text, for a ``uuid[]`` parameter on Conveyor's
    own connections (:class:`TextUuidsDumper`)."""


class Int4s(list[int]):
    """Integers (none NULL), for an ``integer[]`` parameter on Conveyor's own
    connections (:class:`Int4sDumper`)."""


class TextUuidsDumper(Dumper):
    """The ids' hex digits, each after its length, decoded in one call."""

    format = psycopg.pq.Format.BINARY
    oid = postgres.types["uuid"].array_oid

    def dump(self, obj: TextUuids) -> bytes:
        digits = (_UUID_SIZE_HEX + _UUID_SIZE_HEX.join(obj)).replace("-", "")
        return _ARRAY_HEADER.pack(1, 0, _UUID_OID, len(obj), 1) + bytes.fromhex(digits)


class Int4sDumper(Dumper):
    """One ``struct.pack`` of every element after its length (4)."""

    format = psycopg.pq.Format.BINARY
    oid = postgres.types["int4"].array_oid

    def dump(self, obj: Int4s) -> bytes:
        count = len(obj)
        return struct.pack(f">5i{2 * count}i", 1, 0, _INT4_OID, count, 1,
                           *itertools.chain.from_iterable(zip(itertools.repeat(4), obj)))


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


def _set_adapters(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    adapters = conn.adapters
    adapters.register_dumper(TextUuids, TextUuidsDumper)
    adapters.register_dumper(Int4s, Int4sDumper)
    adapters.register_loader("json", JsonLoader)
    adapters.register_loader("jsonb", JsonLoader)
    adapters.register_loader("json", JsonBinaryLoader)
    adapters.register_loader("jsonb", JsonbBinaryLoader)


def _in_utc(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.info.parameter_status("TimeZone") == "UTC"


def configure(conn: psycopg.Connection[Any], queries: Queries) -> None:
    _set_adapters(conn)
    if not _in_utc(conn):
        conn.execute(queries[statements.SESSION])


async def configure_async(conn: psycopg.AsyncConnection[Any], queries: Queries) -> None:
    _set_adapters(conn)
    if not _in_utc(conn):
        await conn.execute(queries[statements.SESSION])
