"""Flow control benchmark: what each limit costs a worker's throughput.

Burn-downs of the same number of no-op jobs (30,000) with one worker process (the
machinery of ``throughput.py``: spawned processes, timed from "go" until the
database shows every job completed), in one run, for:

- ``unlimited``: jobs without group keys, a queue without limits (``claim.sql``);
- ``keys, no limits``: the same jobs spread over 100 group keys;
- ``fair``: 100 keys, ``fair=True`` (claims through ``claim_flow.sql``);
- ``group_concurrency=5``: 100 keys, at most 5 active per key (500 in all, above
  the worker's concurrency: the limit is enforced on every claim, but does not
  bind);
- ``group_concurrency=1``: 100 keys, at most one active per key (binds: 100 at
  once);
- ``group rate limit``: 100 keys, 1,000,000 per key per minute (enforced, does not
  bind);
- ``queue rate limit``: 10,000,000 per minute (enforced, does not bind).

``unlimited`` runs first and again last; each case reports jobs/s and its ratio
to the mean of those two runs (the machine drifts within a run). The target: with a
per-key concurrency limit in force, at least half the unlimited figure. Run from
the repository root::

    python benchmarks/flow.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/flow.py --jobs 50000 --concurrency 200
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
from throughput import burn_down

from conveyor import Conveyor

KEYS = 100
TARGET_RATIO = 0.5

# name: (queue settings, whether jobs carry group keys)
CASES: dict[str, tuple[dict[str, Any], bool]] = {
    "unlimited": ({}, False),
    "keys, no limits": ({}, True),
    "fair": ({"fair": True}, True),
    "group_concurrency=5": ({"group_concurrency": 5}, True),
    "group_concurrency=1": ({"group_concurrency": 1}, True),
    "group rate limit": ({"group_rate_limit": 1_000_000, "group_rate_period": 60}, True),
    "queue rate limit": ({"rate_limit": 10_000_000, "rate_period": 60}, False),
}


def items(jobs: int, keyed: bool) -> list[dict[str, Any]]:
    if not keyed:
        return [{"data": {"i": i}} for i in range(jobs)]
    return [{"data": {"i": i}, "group_key": f"key-{i % KEYS}"} for i in range(jobs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=30_000, help="jobs per case (30000)")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="handler calls at once in the worker (200)")
    args = parser.parse_args(argv)
    if args.jobs < KEYS or args.concurrency < 1:
        parser.error(f"--jobs must be at least {KEYS}, --concurrency positive")

    started = time.perf_counter()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    results: dict[str, float] = {}
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        print_environment(environment(conn, source))
        try:
            with Conveyor(url, schema=schema) as cv:
                runs = [*CASES.items(), ("unlimited, again", CASES["unlimited"])]
                for number, (name, (settings, keyed)) in enumerate(runs):
                    queue = f"bench-flow-{number}"
                    cv.create_queue(queue, **settings)
                    log(f"{name}: {args.jobs:,} jobs, concurrency {args.concurrency} ...")
                    row = burn_down(url, cv, conn, schema, args.jobs, 1, args.concurrency,
                                    max(120.0, args.jobs / 200), queue=queue,
                                    items=items(args.jobs, keyed))
                    results[name] = row["per_second"]
                    log(f"  {row['per_second']:,.0f} jobs/s")
        finally:
            drop_schema(conn, schema)

    base = (results["unlimited"] + results["unlimited, again"]) / 2
    print(f"\nFlow control, {args.jobs:,} no-op jobs, 1 process, concurrency {args.concurrency}")
    print(f"{'case':24s} {'jobs/s':>10s} {'ratio':>7s}   (to the mean of both unlimited runs)")
    for name, rate in results.items():
        print(f"{name:24s} {rate:10,.0f} {rate / base:7.2f}")
    ratio = results["group_concurrency=5"] / base
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"target: a per-key concurrency limit keeps >= {TARGET_RATIO:.0%} of unlimited: "
          f"{verdict} ({ratio:.2f})")
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
