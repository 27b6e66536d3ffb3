"""Consuming without a worker: the fetch → complete loop of a consumer process, with
and without a visibility timeout, and pop, at batch 1 and 100.

One client, one queue, ``--jobs`` jobs inserted before each case (the tables
emptied first); the loop fetches a batch, completes it, and goes on until the
queue is empty, timed from the first fetch to the last completion:

- **fetch**: ``fetch(queue, batch_size)`` then ``complete(jobs)``, the loop as it
  was before fetches took a visibility (every fetch now also looks for lapsed
  leases of its queue first);
- **visibility**: the same with ``fetch(..., visibility=30)``;
- **pop**: ``pop(queue, batch_size)``, claimed and completed in one statement.

The cases take turns within each round (``--rounds``), the order rotated every
round, and the ratio of each to **fetch** is taken within the round. Each case
starts from a table of its own, so the machine's drift between cases shows in
the ratios; the second part takes turns call by call on one table instead:
``--calls`` fetches of a batch of 100 with and without ``visibility``,
alternating, each followed by its ``complete``, with the median time of each
call. Run it from
the repository root, against this tree or, with ``PYTHONPATH``, another one (a
tree without ``visibility`` or ``pop`` runs the **fetch** case alone)::

    python benchmarks/consume.py --dsn postgresql://postgres@127.0.0.1:5432/test
    PYTHONPATH=../before/src python benchmarks/consume.py --dsn ... --jobs 20000

Everything happens in a fresh schema ``bench_consume_<random>``, dropped at the
end. The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded
PostgreSQL (``benchmarks/enqueue.py``'s ``database``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from enqueue import database, log

from conveyor import Conveyor

QUEUE = "bench-consume"


def _loop(cv: Conveyor, take: Callable[[], list], finish: bool) -> int:
    """Takes batches until the queue is empty; completes each when ``finish``."""
    done = 0
    while batch := take():
        if finish:
            cv.complete(batch)
        done += len(batch)
    return done


def _cases(cv: Conveyor, batch: int) -> dict[str, Callable[[], int]]:
    cases: dict[str, Callable[[], int]] = {
        "fetch": lambda: _loop(cv, lambda: cv.fetch(QUEUE, batch_size=batch), True)}
    if "visibility" in inspect.signature(cv.fetch).parameters:
        cases["visibility"] = lambda: _loop(
            cv, lambda: cv.fetch(QUEUE, batch_size=batch, visibility=30), True)
    if hasattr(cv, "pop"):
        cases["pop"] = lambda: _loop(cv, lambda: cv.pop(QUEUE, batch_size=batch), False)
    return cases


def run(url: str, jobs: int, batches: list[int], rounds: int) -> list[dict[str, object]]:
    schema = f"bench_consume_{uuid.uuid4().hex[:8]}"
    results: list[dict[str, object]] = []
    try:
        with Conveyor(url, schema=schema) as cv, psycopg.connect(url, autocommit=True) as conn:
            for batch in batches:
                count = jobs if batch > 1 else max(jobs // 10, 100)
                cases = _cases(cv, batch)
                names = list(cases)
                for round_ in range(rounds):
                    order = names[round_ % len(names):] + names[:round_ % len(names)]
                    times: dict[str, float] = {}
                    for name in order:
                        conn.execute(f'TRUNCATE "{schema}".job')
                        cv.insert(QUEUE, [{"data": {"i": i}} for i in range(count)])
                        conn.execute(f'VACUUM ANALYZE "{schema}".job')
                        started = time.perf_counter()
                        handled = cases[name]()
                        times[name] = time.perf_counter() - started
                        assert handled == count, (name, handled, count)
                    for name in names:
                        results.append({
                            "batch": batch, "round": round_ + 1, "case": name, "jobs": count,
                            "jobs_per_s": count / times[name],
                            "ratio": times[name] / times["fetch"]})
                        log(f"batch {batch}, round {round_ + 1}, {name}: "
                            f"{count / times[name]:,.0f} jobs/s")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return results


def alternating(url: str, calls: int) -> dict[str, float]:
    """Median milliseconds of a fetch of 100 (with and without ``visibility``) and of
    its complete, the two fetches taking turns call by call on one table."""
    schema = f"bench_consume_{uuid.uuid4().hex[:8]}"
    timings: dict[str, list[float]] = {}
    try:
        with Conveyor(url, schema=schema) as cv, psycopg.connect(url, autocommit=True) as conn:
            cv.insert(QUEUE, [{"data": {"i": i}} for i in range(calls * 100)])
            conn.execute(f'VACUUM ANALYZE "{schema}".job')
            supported = "visibility" in inspect.signature(cv.fetch).parameters
            for call in range(calls):
                case = "visibility" if supported and call % 2 else "fetch"
                options = {"visibility": 30} if case == "visibility" else {}
                started = time.perf_counter()
                jobs = cv.fetch(QUEUE, batch_size=100, **options)  # type: ignore[arg-type]
                fetched = time.perf_counter()
                cv.complete(jobs)
                timings.setdefault(f"{case} fetch", []).append(fetched - started)
                timings.setdefault(f"{case} complete", []).append(time.perf_counter() - fetched)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {name: statistics.median(values) * 1000 for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=20_000,
                        help="jobs a case at batch 100, a tenth of them at batch 1 (20000)")
    parser.add_argument("--batch", type=int, action="append",
                        help="batch sizes (1 and 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--calls", type=int, default=300,
                        help="alternating fetches of 100 in the second part (300)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with database(args.dsn) as (url, _source):
        results = run(url, args.jobs, args.batch or [1, 100], args.rounds)
        medians = alternating(url, args.calls)
    if args.json:
        print(json.dumps({"loops": results, "alternating_ms": medians}, indent=2))
        return
    print(f"{'batch':>5} {'case':<11} {'jobs/s by round':<32} {'median ratio to fetch':>22}")
    for batch in sorted({int(r["batch"]) for r in results}):  # type: ignore[call-overload]
        for case in dict.fromkeys(r["case"] for r in results if r["batch"] == batch):
            rows = [r for r in results if r["batch"] == batch and r["case"] == case]
            speeds = ", ".join(f"{r['jobs_per_s']:,.0f}" for r in rows)
            ratio = statistics.median(float(r["ratio"]) for r in rows)  # type: ignore[arg-type]
            print(f"{batch:>5} {case:<11} {speeds:<32} {ratio:>22.2f}")
    print("alternating, median ms a call: " + ", ".join(
        f"{name} {value:.2f}" for name, value in medians.items()))


if __name__ == "__main__":
    main()
