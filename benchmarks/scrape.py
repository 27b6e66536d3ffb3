"""Scrape benchmark: what a queue summary (the dashboard's overview, ``GET
/api/queues``, ``/metrics``) costs as finished jobs pile up.

For each size it fills one queue with ``--waiting`` due jobs and the given numbers
of failed and completed jobs kept, takes a statistics snapshot as the maintenance
leader does, and times, each the median of ``--reads`` calls in this run:

- ``summaries``: ``queue_summaries()``, what every scrape and dashboard poll reads;
- ``before``: the summary statement as it was before the leader counted finished
  jobs (design decision 34): it counted every failed row of each queue;
- ``snapshot``: the leader's statistics snapshot (once per ``stats_interval``, a
  minute by default), which adds the jobs finished since the one before to each
  queue's totals;
- ``recount``: the snapshot that also counts the finished jobs kept afresh (every
  10 minutes).

Run it from the repository root::

    python benchmarks/scrape.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/scrape.py --sizes 0:0 12000:0 12000:200000 --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import database, drop_schema, environment, log, print_environment

from conveyor import Conveyor
from conveyor._db import queries
from conveyor._db.plan import Operation
from conveyor.worker.maintenance import snapshot

QUEUE = "scrape"
BEFORE = """
WITH {live_counts},
failed AS (
    SELECT j.queue, count(*) AS failed FROM {schema}.job AS j
    WHERE j.state = 'failed' GROUP BY j.queue
),
recent AS (
    SELECT s.queue, sum(s.completed) AS completed, sum(s.failed) AS failed
    FROM {schema}.queue_stats AS s WHERE s.taken_at > now() - interval '1 hour'
    GROUP BY s.queue
)
SELECT q.name, COALESCE(l.created, 0)::bigint AS created,
       COALESCE(l.retry, 0)::bigint AS retry, COALESCE(l.active, 0)::bigint AS active,
       COALESCE(f.failed, 0) AS failed,
       COALESCE(r.completed, 0)::bigint AS completed_last_hour,
       COALESCE(r.failed, 0)::bigint AS failed_last_hour,
       now() - l.oldest_due AS lag,
       CASE WHEN q.paused_until > now() THEN q.paused_until END AS paused_until
FROM {schema}.queue AS q
LEFT JOIN live AS l ON l.queue = q.name
LEFT JOIN failed AS f ON f.queue = q.name
LEFT JOIN recent AS r ON r.queue = q.name
ORDER BY q.name
"""


def median_ms(call: Callable[[], object], reads: int) -> float:
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fill(cv: Conveyor, conn: psycopg.Connection[Any], schema: str, state: str, n: int) -> None:
    """Add ``n`` jobs of ``QUEUE`` finished in ``state``."""
    for start in range(0, n, 50_000):
        count = min(50_000, n - start)
        cv.insert(QUEUE, [{"data": {"n": i}, "singleton_key": f"{state}-{start + i}"}
                          for i in range(count)])
        conn.execute(sql.SQL("UPDATE {}.job SET state = %s, completed_at = now() "
                             "WHERE state = 'created' AND singleton_key LIKE %s").format(
            sql.Identifier(schema)), [state, f"{state}-%"])


def measure(url: str, conn: psycopg.Connection[Any], failed: int, completed: int,
            waiting: int, reads: int) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with Conveyor(url, schema=schema) as cv:
            cv.create_queue(QUEUE)
            fill(cv, conn, schema, "failed", failed)
            fill(cv, conn, schema, "completed", completed)
            cv.insert(QUEUE, [{"data": {"n": i}} for i in range(waiting)])
            conn.execute(sql.SQL("VACUUM ANALYZE {}.job").format(sql.Identifier(schema)))
            def take() -> Operation[Any]:
                return Operation(snapshot(timedelta(minutes=1), timedelta(days=1)))

            cv._run(take())
            forget = sql.SQL("UPDATE {}.queue_totals SET recounted_at = NULL").format(
                sql.Identifier(schema))
            before = queries._render(BEFORE, schema, live_counts=queries._fragment("live_counts"))
            summaries, earlier = [], []
            for _ in range(reads):  # alternating, so that both see the same machine
                summaries.append(median_ms(cv.queue_summaries, 1))
                earlier.append(median_ms(lambda: conn.execute(before, prepare=True).fetchall(), 1))
            return {
                "failed": failed, "completed": completed, "waiting": waiting,
                "summaries_ms": statistics.median(summaries),
                "before_ms": statistics.median(earlier),
                "snapshot_ms": median_ms(lambda: cv._run(take()), max(3, reads // 5)),
                "recount_ms": median_ms(lambda: (conn.execute(forget), cv._run(take())),
                                        max(3, reads // 5)),
            }
    finally:
        drop_schema(conn, schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--sizes", nargs="+", default=["0:0", "12000:0", "12000:200000"],
                        help="failed:completed jobs kept, one run each (0:0 12000:0 "
                             "12000:200000)")
    parser.add_argument("--waiting", type=int, default=100, help="due jobs waiting (100)")
    parser.add_argument("--reads", type=int, default=30, help="calls timed per figure (30)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = []
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        print_environment(environment(conn, source))
        for size in args.sizes:
            failed, completed = (int(part) for part in size.split(":"))
            log(f"{failed:,} failed and {completed:,} completed jobs kept")
            results.append(measure(url, conn, failed, completed, args.waiting, args.reads))
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'failed':>8} {'completed':>10} {'summaries':>10} {'before':>8} "
              f"{'snapshot':>9} {'recount':>8}  (ms, medians)")
        for r in results:
            print(f"{r['failed']:>8,} {r['completed']:>10,} {r['summaries_ms']:>10.2f} "
                  f"{r['before_ms']:>8.2f} {r['snapshot_ms']:>9.1f} {r['recount_ms']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
