"""How Conveyor's own connections are set up to read values quickly.

- jsonb: orjson parses several times faster than the standard library, but reads
  integers past 64 bits as floats, silently. Such an integer has at least 19
  digits, so text with a run of 19 digits goes to the standard library;
  everything else to orjson.
- timestamps: the session's time zone is UTC. psycopg then returns datetimes in
  ``datetime.timezone.utc``, which it builds about four times faster than in a
  ``zoneinfo`` zone such as ``Etc/UTC`` (a claimed job carries five of them).
  PgBouncer tracks ``TimeZone`` per client, so this holds through it as well.
  Conveyor's statements never depend on the session's zone. A connection whose
  zone is already ``UTC`` (``ALTER ROLE ... SET TimeZone = 'UTC'``) is sent no
  ``SET`` at all: a pooler that cannot carry session state (RDS Proxy pins the
  connection on any ``SET``) then sees none.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from conveyor.queries import Queries

_LONG_NUMBER = re.compile(rb"\d{19}")


def loads(data: str | bytes) -> Any:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_NUMBER.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)


def _in_utc(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.info.parameter_status("TimeZone") == "UTC"


def configure(conn: psycopg.Connection[Any], queries: Queries) -> None:
    set_json_loads(loads, conn)
    if not _in_utc(conn):
        conn.execute(queries["session"])


async def configure_async(conn: psycopg.AsyncConnection[Any], queries: Queries) -> None:
    set_json_loads(loads, conn)
    if not _in_utc(conn):
        await conn.execute(queries["session"])
