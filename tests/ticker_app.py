"""A process that runs the scheduler's tick in a loop, for the exactly-once test
(``test_schedules.py``); not a test module. ``APP_DSN`` and ``APP_SCHEMA`` say
where, ``APP_SECONDS`` for how long (default 5). It ticks every 50-150 ms, so
processes started together keep running into one another, then prints how many
jobs it sent."""

from __future__ import annotations

import os
import random
import time

import psycopg

from conveyor._db.plan import Context, Operation, run_sync
from conveyor._db.queries import Queries
from conveyor._ops import schedules
from conveyor.config import Settings

queries = Queries(os.environ["APP_SCHEMA"])
context = Context(queries, Settings.resolve(os.environ["APP_DSN"]).max_payload_bytes)
deadline = time.monotonic() + float(os.environ.get("APP_SECONDS", "5"))
sent = 0
with psycopg.connect(os.environ["APP_DSN"], autocommit=True) as conn:
    print("worker started", flush=True)
    while time.monotonic() < deadline:
        sent += run_sync(conn, queries, Operation(schedules.tick(context), atomic=True))
        time.sleep(random.uniform(0.05, 0.15))
print(f"sent {sent}", flush=True)
