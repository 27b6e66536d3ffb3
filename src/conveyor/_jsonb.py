"""Reading jsonb on Conveyor's own connections.

orjson parses several times faster than the standard library, but reads integers
past 64 bits as floats, silently. Such an integer has at least 19 digits, so text
with a run of 19 digits goes to the standard library; everything else to orjson.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

_LONG_NUMBER = re.compile(rb"\d{19}")


def loads(data: str | bytes) -> Any:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_NUMBER.search(raw):
        return json.loads(raw)
    return orjson.loads(raw)


def configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(loads, conn)


async def configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(loads, conn)
