"""Wake-up benchmark: how soon an idle worker starts jobs sent in short bursts.

A client notifies a queue at most once per ``notify.DEBOUNCE`` (10 ms) for its
sends; the sends it leaves quiet must still reach an idle worker long before its
poll (2 s by default). This sends bursts of ``--burst`` jobs, the sends of a burst
0, 1, ... ``--max-gap`` ms apart, each burst after the worker has gone idle again,
to one worker in this process (concurrency 10, the default poll interval), and
reports:

- pickup: from ``send`` returning (the job is committed) to its handler starting,
  p50 / p99 / max, and how many jobs took longer than 100 ms;
- notifications per job, counted on a connection listening on the schema's
  channel, as a worker's listener does.

Run it from the repository root::

    python benchmarks/wakeup.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/wakeup.py --rounds 10 --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import database, drop_schema, environment, log, print_environment

from conveyor import AsyncConveyor, Job

QUEUE = "wakeup"
LATE = 0.1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bursts(url: str, schema: str, rounds: int, burst: int, max_gap: int) -> dict[str, Any]:
    started: dict[int, float] = {}
    sent: dict[int, float] = {}
    worker = AsyncConveyor(url, schema=schema)

    @worker.task(QUEUE, concurrency=10)
    async def handle(job: Job) -> None:
        started[job.data] = time.perf_counter()

    async with worker, AsyncConveyor(url, schema=schema) as producer:
        await producer.create_queue(QUEUE)
        listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await listener.execute(f'LISTEN "{schema}"')
        running = asyncio.create_task(worker.run(handle_signals=False))
        await asyncio.sleep(0.5)
        n = 0
        try:
            for _ in range(rounds):
                for gap in range(max_gap + 1):
                    numbers = range(n, n + burst)
                    n += burst
                    for number in numbers:
                        await producer.send(QUEUE, number)
                        sent[number] = time.perf_counter()
                        await asyncio.sleep(gap / 1000)
                    deadline = time.perf_counter() + 5
                    while (not all(k in started for k in numbers)
                           and time.perf_counter() < deadline):
                        await asyncio.sleep(0.002)
                    await asyncio.sleep(0.03)  # idle again
        finally:
            await worker.stop()
            await running
        notified = 0
        async for _ in listener.notifies(timeout=0.2):
            notified += 1
        await listener.close()
    pickups = [started.get(k, float("inf")) - sent[k] for k in sent]
    return {
        "jobs": len(sent),
        "pickup_p50_ms": percentile(pickups, 0.5) * 1000,
        "pickup_p99_ms": percentile(pickups, 0.99) * 1000,
        "pickup_max_ms": max(pickups) * 1000,
        "late": sum(p > LATE for p in pickups),
        "notifications_per_job": notified / len(sent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every gap (5)")
    parser.add_argument("--burst", type=int, default=3, help="sends per burst (3)")
    parser.add_argument("--max-gap", type=int, default=15, help="largest gap, in ms (15)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        print_environment(environment(conn, source))
        try:
            result = asyncio.run(bursts(url, schema, args.rounds, args.burst, args.max_gap))
        finally:
            drop_schema(conn, schema)
    if args.json:
        print(json.dumps(result))
    else:
        log(f"{result['jobs']} jobs in bursts of {args.burst}, 0-{args.max_gap} ms apart")
        print(f"pickup p50 {result['pickup_p50_ms']:.1f} ms, p99 {result['pickup_p99_ms']:.1f} "
              f"ms, max {result['pickup_max_ms']:.1f} ms; {result['late']} jobs over "
              f"{LATE * 1000:.0f} ms; {result['notifications_per_job']:.2f} notifications a job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
