"""A worker application for the chaos suite's flow scenario
(``tests/chaos/test_flow_chaos.py``), run in subprocesses: ``python
tests/dependency_app.py``. Not a test module: importing it needs the environment
below.

- ``APP_DSN``, ``APP_SCHEMA``: where the client works;
- ``APP_CONCURRENCY``: handler calls at once per queue (default 10);
- ``APP_LEASE`` (default 2 s) and ``APP_RESCUE`` (the rescue interval, default 1 s):
  short, so that a killed worker's steps are rescued within seconds; heartbeats
  every 0.5 s.

Queues ``step`` and ``join`` run one sync handler. It records the execution (job
id, attempt, pid, how many dependency outputs it was given, the database's time)
in ``"<schema>".executions`` through a connection of its own, sleeps
``job.data["sleep"]`` seconds, and returns ``{"value": ...}``: its own
``job.data["value"]`` plus the values of its dependencies' outputs, so that an
output read too early shows in every value downstream. The test creates the
``executions`` table before starting workers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from conveyor import Conveyor, Job

DSN = os.environ["APP_DSN"]
SCHEMA = os.environ["APP_SCHEMA"]
CONCURRENCY = int(os.environ.get("APP_CONCURRENCY", "10"))
QUEUES = ("step", "join")

cv = Conveyor(DSN, schema=SCHEMA)

_RECORD = sql.SQL(
    "INSERT INTO {}.executions (job_id, attempt, pid, outputs) VALUES (%s, %s, %s, %s)"
).format(sql.Identifier(SCHEMA))
_local = threading.local()


def _record(job: Job) -> None:
    """One row for this execution, on the handler thread's own connection."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True)
    conn.execute(_RECORD, (job.id, job.attempt, os.getpid(), len(job.dependency_outputs)))


def step(job: Job) -> dict[str, int]:
    _record(job)
    time.sleep(float(job.data["sleep"]))
    inputs = sum(int(output["value"]) for output in job.dependency_outputs.values())
    return {"value": int(job.data["value"]) + inputs}


for queue in QUEUES:
    cv.work(queue, step, concurrency=CONCURRENCY)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
    )
    cv.run(
        lease=float(os.environ.get("APP_LEASE", "2")),
        rescue_interval=float(os.environ.get("APP_RESCUE", "1")),
        heartbeat_interval=0.5,
    )
