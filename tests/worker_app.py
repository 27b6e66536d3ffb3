"""A worker application for the fault tests (``test_worker_faults.py``), run in
subprocesses. Not a test module: importing it needs the environment below.

- ``APP_DSN``, ``APP_SCHEMA``: where the client works;
- ``APP_CONCURRENCY``: handler calls at once (default 10);
- ``APP_RECORDER_NAME``: the ``application_name`` of the recording connections
  (default ``worker-app-recorder``), so that tests can tell them from the worker's;
- ``APP_RECORDER_DSN``: where the recording connections go (default ``APP_DSN``):
  the chaos suite's network cut sends the worker through a proxy, and records
  beside it;
- ``APP_STATEMENT_DEADLINE``: the client's ``statement_deadline`` (its default
  when unset).

Queue ``work`` runs a sync handler that records every execution (job id, attempt,
pid, time) in ``"<schema>".executions`` through a connection of its own, then sleeps
``job.data["sleep"]`` seconds, checking ``job.cancelled`` every 50 ms (unless
``job.data["ignore_cancel"]`` is true: then it just sleeps), and returns
``{"ok": True}``. The test creates the ``executions`` table before starting workers.

Two ways to run it:

- ``conveyor worker worker_app:cv ...`` (with ``tests`` as the working directory):
  the command line's settings;
- ``python tests/worker_app.py``: ``cv.run`` with short leases so that a dead
  worker's jobs are rescued within seconds: ``APP_LEASE`` (default 2 s),
  ``APP_RESCUE`` (rescue interval, default 1 s), ``APP_SHUTDOWN`` (shutdown
  timeout, default 30 s), ``APP_LEADER_LEASE`` (the maintenance leader's lease,
  default 15 s); heartbeats every 0.5 s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from conveyor import Conveyor, Job

DSN = os.environ["APP_DSN"]
SCHEMA = os.environ["APP_SCHEMA"]
CONCURRENCY = int(os.environ.get("APP_CONCURRENCY", "10"))
RECORDER_NAME = os.environ.get("APP_RECORDER_NAME", "worker-app-recorder")
RECORDER_DSN = os.environ.get("APP_RECORDER_DSN", DSN)
RECORD_PATIENCE = 30.0  # seconds a recording may keep retrying while the database is away
STATEMENT_DEADLINE = os.environ.get("APP_STATEMENT_DEADLINE")

cv = Conveyor(DSN, schema=SCHEMA,
              statement_deadline=float(STATEMENT_DEADLINE) if STATEMENT_DEADLINE else None)

_RECORD = sql.SQL(
    "INSERT INTO {}.executions (run, job_id, attempt, pid) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (run) DO NOTHING"
).format(sql.Identifier(SCHEMA))
_local = threading.local()


def _record(job: Job) -> None:
    """Insert one row for this execution. The connection is the handler thread's own;
    when it breaks (a restart, a terminated backend) the insert is retried on a new
    one. ``run`` makes a retried insert that had committed after all harmless."""
    run = uuid.uuid4()
    deadline = time.monotonic() + RECORD_PATIENCE
    while True:
        conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(RECORDER_DSN, autocommit=True, connect_timeout=5,
                                       application_name=RECORDER_NAME)
                _local.conn = conn
            conn.execute(_RECORD, (run, job.id, job.attempt, os.getpid()))
            return
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            _local.conn = None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@cv.task("work", concurrency=CONCURRENCY)
def work(job: Job) -> dict[str, Any]:
    _record(job)
    if job.data.get("ignore_cancel"):
        time.sleep(float(job.data["sleep"]))
        return {"ok": True}
    until = time.monotonic() + float(job.data.get("sleep", 0))
    while not job.cancelled:
        left = until - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(0.05, left))
    return {"ok": True}


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
    )
    cv.run(
        lease=float(os.environ.get("APP_LEASE", "2")),
        rescue_interval=float(os.environ.get("APP_RESCUE", "1")),
        heartbeat_interval=0.5,
        shutdown_timeout=float(os.environ.get("APP_SHUTDOWN", "30")),
        leader_lease=float(os.environ.get("APP_LEADER_LEASE", "15")),
    )
