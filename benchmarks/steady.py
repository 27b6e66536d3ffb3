"""Dead tuples under steady load: does the job table stay small while jobs flow
through it for a long time?

One worker process (the machinery of ``throughput.py``, maintenance on) serves a
queue while this process sends ``--rate`` no-op jobs per second in batches of a
tenth of a second, for ``--duration`` seconds. Every ``--sample`` seconds it reads
the job table's live and dead tuples (``pg_stat_user_tables``), its size, and the
autovacuum count. Finished jobs are kept (``delete_after`` of 7 days), so live
tuples grow with the jobs sent; dead tuples are what the claims and completions
leave behind until vacuum.

The verdict: dead tuples are bounded when the highest count in the second half of
the run is no higher than 1.5 x the highest of the first half (no upward drift).
Autovacuum wakes every ``autovacuum_naptime`` (a minute by default), so run for
several minutes: the count rises between its passes and falls after each.
Run from the repository root::

    python benchmarks/steady.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/steady.py --rate 5000 --duration 600
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import database, drop_schema, environment, log, print_environment
from throughput import WorkerSpec, worker_processes

from conveyor import Conveyor

QUEUE = "steady"
DRIFT = 1.5

STATS = """
SELECT n_live_tup, n_dead_tup, autovacuum_count,
       pg_total_relation_size(relid) AS size
FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'job'
"""


def sample(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    row = conn.execute(STATS, (schema,)).fetchone()
    assert row is not None
    live, dead, vacuums, size = row
    return {"live": live, "dead": dead, "vacuums": vacuums, "size": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--rate", type=int, default=2000, help="jobs sent per second (2000)")
    parser.add_argument("--duration", type=float, default=300, help="seconds of load (300)")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples (5)")
    parser.add_argument("--concurrency", type=int, default=200, help="worker concurrency (200)")
    args = parser.parse_args(argv)
    if args.rate < 10 or args.duration < 3 * args.sample or args.sample <= 0:
        parser.error("--rate must be at least 10 and --duration at least three samples")

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    samples: list[dict[str, Any]] = []
    batch = max(1, args.rate // 10)
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        print_environment(environment(conn, source))
        try:
            with Conveyor(url, schema=schema) as cv:
                cv.create_queue(QUEUE)
                spec = WorkerSpec(url, schema, QUEUE, args.concurrency, None)
                with worker_processes(spec, 1) as workers:
                    workers.go()
                    started = time.perf_counter()
                    sent = 0
                    next_sample = started
                    while (now := time.perf_counter()) - started < args.duration:
                        workers.check_alive()
                        due = int((now - started) * args.rate) - sent
                        if due >= batch:
                            sent += cv.insert(QUEUE, [{"data": {"n": sent + i}}
                                                      for i in range(due)])
                        if now >= next_sample:
                            samples.append({"t": now - started, "sent": sent,
                                            "done": workers.handled, **sample(conn, schema)})
                            s = samples[-1]
                            log(f"  {s['t']:5.0f} s: sent {s['sent']:,}, handled {s['done']:,},"
                                f" dead {s['dead']:,}, live {s['live']:,}, "
                                f"{s['size'] / 2**20:.0f} MB, autovacuums {s['vacuums']}")
                            next_sample += args.sample
                        time.sleep(0.02)
        finally:
            drop_schema(conn, schema)

    half = max(1, len(samples) // 2)
    early = max(s["dead"] for s in samples[:half])
    late = max(s["dead"] for s in samples[half:])
    handled = samples[-1]["done"] / samples[-1]["t"]
    print(f"\nSteady load: {args.rate:,} jobs/s offered for {args.duration:.0f} s, "
          f"{handled:,.0f} jobs/s handled, 1 worker process, concurrency {args.concurrency}")
    print(f"dead tuples: highest {max(s['dead'] for s in samples):,}; first half {early:,}, "
          f"second half {late:,}; autovacuum ran {samples[-1]['vacuums']} times; "
          f"table {samples[-1]['size'] / 2**20:.0f} MB with {samples[-1]['live']:,} live rows")
    bounded = late <= DRIFT * max(early, 1)
    print(f"bounded (second half <= {DRIFT:g} x first half): {'yes' if bounded else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
