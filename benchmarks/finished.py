"""Claiming next to a large history: does a table holding millions of finished jobs
slow the hot path down?

For each size of history (0 and ``--finished``, 10,000,000 by default) a schema of
its own gets that many finished jobs (completed, spread over the last six days, so
that retention keeps them all), written by the server with ``generate_series``, then
``VACUUM ANALYZE``. Then, against that table:

- **claim latency**: ``--claims`` single-job ``fetch`` + ``complete`` round trips
  from a queue with 1,000 jobs waiting; p50 and p95 of the fetch;
- **burn-down**: ``--jobs`` no-op jobs with one worker process (the machinery of
  ``throughput.py``), jobs/s.

The target (issue 5): with the history, claiming within 2x of the empty table. Run
from the repository root::

    python benchmarks/finished.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/finished.py --finished 1000000 --jobs 20000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import database, drop_schema, environment, log, print_environment
from throughput import burn_down

from conveyor import Conveyor

TARGET_RATIO = 2.0
WAITING = 1000

# Finished jobs written by the server: one statement, no client round trips.
HISTORY = """
INSERT INTO {schema}.job (id, queue, state, data, output, retry_limit, retry_delay,
    retry_backoff, expire_in, start_after, keep_until, delete_after, attempt,
    created_at, started_at, completed_at)
SELECT {schema}.uuid7(), 'history-' || (n %% 10), 'completed', jsonb_build_object('n', n),
       '{{"ok": true}}', 2, interval '0', false, interval '15 minutes', at, at + interval '14 days',
       interval '7 days', 1, at, at, at
FROM (SELECT n, now() - (n %% 518400) * interval '1 second' AS at
      FROM generate_series(1, %(count)s) AS n) AS g
"""


def write_history(conn: psycopg.Connection[Any], schema: str, count: int) -> float:
    started = time.perf_counter()
    done = 0
    step = 1_000_000
    while done < count:
        batch = min(step, count - done)
        conn.execute(sql.SQL(HISTORY).format(schema=sql.Identifier(schema)),  # type: ignore[arg-type]
                     {"count": batch})
        done += batch
        log(f"  {done:,} finished jobs written")
    conn.execute(sql.SQL("VACUUM ANALYZE {}.job").format(sql.Identifier(schema)))
    return time.perf_counter() - started


def claim_latency(cv: Conveyor, claims: int) -> tuple[float, float]:
    cv.insert("latency", [{"data": {"n": n}} for n in range(WAITING)])
    times = []
    for _ in range(claims):
        started = time.perf_counter()
        [job] = cv.fetch("latency")
        times.append(time.perf_counter() - started)
        cv.complete(job)
        cv.send("latency", {"again": True})
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000


def table_size(conn: psycopg.Connection[Any], schema: str) -> str:
    row = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))",
                       (f'"{schema}".job',)).fetchone()
    return str(row[0]) if row else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--finished", type=int, default=10_000_000,
                        help="finished jobs in the large table (10000000)")
    parser.add_argument("--jobs", type=int, default=30_000, help="jobs per burn-down (30000)")
    parser.add_argument("--claims", type=int, default=1000, help="timed single claims (1000)")
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="handler calls at once in the burn-down worker (1000)")
    args = parser.parse_args(argv)
    if args.finished < 1 or args.jobs < 1 or args.claims < 20:
        parser.error("--finished and --jobs must be positive, --claims at least 20")

    results: list[dict[str, Any]] = []
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        print_environment(environment(conn, source))
        for history in (0, args.finished):
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            try:
                with Conveyor(url, schema=schema) as cv:
                    log(f"{history:,} finished jobs ...")
                    wrote = write_history(conn, schema, history) if history else 0.0
                    p50, p95 = claim_latency(cv, args.claims)
                    log(f"  claim p50 {p50:.2f} ms, p95 {p95:.2f} ms")
                    row = burn_down(url, cv, conn, schema, args.jobs, 1, args.concurrency,
                                    max(120.0, args.jobs / 200), empty=False)
                    log(f"  burn-down {row['per_second']:,.0f} jobs/s")
                    results.append({"history": history, "size": table_size(conn, schema),
                                    "write_s": wrote, "p50": p50, "p95": p95,
                                    "per_second": row["per_second"]})
            finally:
                drop_schema(conn, schema)

    empty, full = results
    print(f"\nClaiming next to finished jobs ({args.claims:,} single claims; burn-down of "
          f"{args.jobs:,} jobs, 1 process, concurrency {args.concurrency})")
    print(f"{'finished jobs':>14s} {'table':>10s} {'claim p50':>10s} {'p95':>8s} {'jobs/s':>9s}")
    for r in results:
        print(f"{r['history']:>14,} {r['size']:>10s} {r['p50']:>8.2f}ms {r['p95']:>6.2f}ms "
              f"{r['per_second']:>9,.0f}")
    slower = max(full["p50"] / empty["p50"], empty["per_second"] / full["per_second"])
    verdict = "met" if slower <= TARGET_RATIO else "NOT met"
    print(f"target: claiming within {TARGET_RATIO:g}x with {args.finished:,} finished jobs: "
          f"{verdict} (worst ratio {slower:.2f}; history written in {full['write_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
