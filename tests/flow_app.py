"""A worker application for the flow control tests (``test_flow.py``), run in
subprocesses: ``python tests/flow_app.py``. Not a test module.

Environment: ``APP_DSN``, ``APP_SCHEMA``, ``APP_CONCURRENCY`` (default 10).

Queue ``flow`` runs an async handler that records its start and end in
``"<schema>".runs`` (job id, group key, pid, started, ended, database clock) through
a connection of its own, sleeping ``job.data["sleep"]`` seconds (default 0) in
between. The test creates the ``runs`` table before starting workers, and stops
the workers with SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os

import psycopg
from psycopg import sql

from conveyor import AsyncConveyor, Job

DSN = os.environ["APP_DSN"]
SCHEMA = os.environ["APP_SCHEMA"]
CONCURRENCY = int(os.environ.get("APP_CONCURRENCY", "10"))

_START = sql.SQL(
    "INSERT INTO {}.runs (job_id, group_key, pid, started) VALUES (%s, %s, %s, clock_timestamp())"
).format(sql.Identifier(SCHEMA))
_END = sql.SQL("UPDATE {}.runs SET ended = clock_timestamp() WHERE job_id = %s").format(
    sql.Identifier(SCHEMA))


async def main() -> None:
    cv = AsyncConveyor(DSN, schema=SCHEMA, migrate=False)
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as recorder:
        lock = asyncio.Lock()

        async def record(statement: sql.Composed, params: tuple[object, ...]) -> None:
            async with lock:
                await recorder.execute(statement, params)

        @cv.task("flow", concurrency=CONCURRENCY)
        async def handle(job: Job) -> None:
            await record(_START, (job.id, job.group_key, os.getpid()))
            await asyncio.sleep((job.data or {}).get("sleep", 0))
            await record(_END, (job.id,))

        await cv.run(heartbeat_interval=0.5, rescue_interval=1.0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    asyncio.run(main())
