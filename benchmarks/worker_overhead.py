"""Worker overhead: the Python time a worker spends per job, without a database.

The worker is given a stand-in for its database that answers every statement at
once: claims return rows already decoded (as psycopg would hand them over), and
completions are counted. What remains is the worker's own machinery: turning rows
into jobs, handler calls and their controls, slots, runners, the completer. A
no-op ``async def`` handler runs N jobs (100,000); the report gives jobs/s and
CPU microseconds per job. This is not a throughput figure (see throughput.py for
that); it isolates the part of the per-job cost that is Conveyor's Python::

    python benchmarks/worker_overhead.py
    python benchmarks/worker_overhead.py --jobs 200000 --concurrency 1000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Together
from conveyor._db.queries import Queries
from conveyor.hooks import Hooks
from conveyor.job import Job
from conveyor.registry import Registration
from conveyor.worker.runner import Worker


def claimed_row(number: int, now: datetime) -> tuple[Any, ...]:
    """A row of ``{claimed_columns}`` as a worker's claim returns it for a job with
    its queue's defaults: those settings come back NULL."""
    return (
        str(uuid.uuid4()), {"n": number}, None, None, None, 0, None, None, now, now, None,
        None, None, 1, None, None, None, None, None, None, None, None, None, None, None, None,
        None, None, None,
    )


QUEUE_FLOW = {
    "flow": False, "unkeyed": False, "priority": 0, "retry_limit": 2,
    "retry_delay": timedelta(0), "retry_backoff": False, "expire_in": timedelta(minutes=15),
    "delete_after": timedelta(days=7), "retention": timedelta(days=14), "policy": "standard",
}
"""The answer to ``queue_flow.sql``: a queue without flow control, with defaults."""


class InstantDatabase:
    """Answers the worker's statements at once, from a list of claimable rows."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.position = 0
        self.completed = 0

    async def run(self, operation: Any, deadline: float | None = None) -> Any:
        plan: Generator[Any, Any, Any] = operation.plan
        try:
            step = next(plan)
            while True:
                await asyncio.sleep(0)  # a statement (or a pipeline of them) is a round trip
                result = ([self.answer(part) for part in step.steps]
                          if isinstance(step, Together) else self.answer(step))
                step = plan.send(result)
        except StopIteration as stop:
            return stop.value

    def answer(self, step: Execute) -> Any:
        if step.statement is statements.CLAIM_WORKER:
            limit = step.params["limit"]
            rows = self.rows[self.position : self.position + limit]
            self.position += len(rows)
            return rows
        if step.statement is statements.COMPLETE:
            self.completed += len(step.params["id"])
            return self.completed
        if step.statement is statements.QUEUE_FLOW:
            return QUEUE_FLOW
        return []


async def one_round(jobs: int, concurrency: int) -> tuple[float, float]:
    now = datetime.now(UTC)
    database = InstantDatabase([claimed_row(n, now) for n in range(jobs)])
    done = asyncio.Event()
    handled = 0

    async def noop(job: Job) -> None:
        nonlocal handled
        handled += 1
        if handled == jobs:
            done.set()

    worker = Worker(
        database.run, dsn="", statement_deadline=15.0, context=Context(Queries("bench"), 1 << 20),
        registrations=[Registration.make("bench", noop, concurrency=concurrency)],
        hooks=Hooks(), options={"listen": False, "handle_signals": False},
    )
    started, cpu = time.perf_counter(), time.process_time()
    running = asyncio.create_task(worker.run())
    await done.wait()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    worker.stop()
    await running
    return jobs / seconds, cpu_seconds / jobs * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs per round (100000)")
    parser.add_argument("--concurrency", type=int, default=200, help="handler slots (200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is kept (3)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.concurrency < 1 or args.rounds < 1:
        parser.error("--jobs, --concurrency and --rounds must be positive")
    results = [asyncio.run(one_round(args.jobs, args.concurrency)) for _ in range(args.rounds)]
    for rate, cpu in results:
        print(f"  {rate:10,.0f} jobs/s  {cpu:6.1f} us CPU per job")
    print(f"median: {statistics.median(r for r, _ in results):,.0f} jobs/s, "
          f"{statistics.median(c for _, c in results):.1f} us CPU per job "
          f"({args.jobs:,} jobs, concurrency {args.concurrency})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
