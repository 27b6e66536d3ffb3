"""Dependencies between jobs: what steps that wait cost the plain path, and what a
chain and a fan-in cost per job, each against plain jobs in the same run.

Every case is a burn-down by worker processes (the machinery of ``throughput.py``:
spawned processes, timed from "go" until the database shows every job completed),
one queue, no-op handlers, in rounds; each case runs next to its plain twin, the
order swapped every round (the machine drifts within a run), and the ratio of
their times per job is taken within the round:

- **waiting**: ``--jobs`` plain jobs (100,000) burned down, against the same with
  ``--waiting`` steps (100,000) of one flow waiting in the same queue for a parent
  in a queue no worker serves: the waiting rows are in the job table, but not in
  the claim index (``job_claim``, ``state < 'active'``). Before each of the two
  burn-downs, the claim (``claim.sql``, ``--claims`` times for 1 job and for 500,
  each in a transaction rolled back) is timed, its plan read with ``EXPLAIN
  (ANALYZE, BUFFERS)``, and ``queue_summaries()`` (lag and the live counts that
  backlog warnings read) timed and checked to leave the waiting steps out;
- **chains**: ``--chains`` chains (10,000) of ``--chain-length`` steps (3), sent
  as one ``flow()``, each step released by the completion of the one before it
  (in the completer's write), against as many plain jobs sent with ``insert()``;
- **fan-in**: ``batch()`` of ``--fan-in`` jobs (10,000) with an ``on_complete``
  callback, which runs once all of them completed, against as many plain jobs
  (items and callback) sent with ``insert()``.

The time to send each case's jobs is reported too (one ``flow()``, ``batch()``
or ``insert()`` call), and, with ``--calls``, single chains sent one per call:
``--calls`` ``flow()`` calls of one chain against as many ``insert()`` calls of
as many plain jobs, taking turns by 100 calls.

Before each burn-down the tables are emptied (``TRUNCATE``), the case's jobs sent,
and the tables settled (``VACUUM ANALYZE``, ``CHECKPOINT``; a transaction open
elsewhere for long keeps ``VACUUM`` from its work, and is reported). A burn-down
that does not finish within ``--timeout`` (by default jobs / 200 s, at least 120)
is reported as such, the statements its workers gave up on are waited for, and its
pair is not run again. Everything happens in a fresh schema
``bench_flows_<random>``, dropped at the end. Run it from the repository root::

    python benchmarks/flows.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/flows.py --dsn 'postgresql://postgres@127.0.0.1:5432/test?options=-c%20jit%3Doff'
    python benchmarks/flows.py --jobs 50000 --waiting 100000 --chains 10000 \\
        --chain-length 3 --fan-in 10000 --rounds 3 --concurrency 1000 --json

The second leaves PostgreSQL's JIT compilation out of the workers' sessions (the
report names the setting they saw). The database is ``--dsn``, else
``$DATABASE_URL``, else an embedded PostgreSQL (``benchmarks/enqueue.py``'s
``database``). With the defaults a run takes five to twelve minutes on a 2-core
machine, most of it in the burn-downs that are slow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from conveyor import Conveyor, JobState
from conveyor._db import statements
from conveyor._db.queries import Queries
from conveyor.config import redact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import checkpoint, database, drop_schema, emit, environment, log, print_environment
from throughput import BurnTimeout, burn

QUEUE = "bench-flows"
NEVER_WORKED = "bench-flows-never"  # the queue of the parent the waiting steps wait for
LEASE = timedelta(seconds=30)  # the worker's default lease
CLAIM_LIMITS = (1, 500)  # a single fetch; a worker's claim at concurrency 1,000
CALL_BLOCK = 100  # single-chain sends take turns with plain inserts by this many calls
TARGET_WAITING = 1.25  # "within noise of none": this machine's spread between runs
TARGET_FLOW = 2.0  # a chain's or a fan-in's time per job against plain jobs


# --- sending each case's jobs -----------------------------------------------------------


def plain_items(count: int) -> list[dict[str, Any]]:
    return [{"data": {"i": i}} for i in range(count)]


def send_plain(cv: Conveyor, count: int) -> int:
    inserted = cv.insert(QUEUE, plain_items(count))
    if inserted != count:
        raise RuntimeError(f"inserted {inserted} of {count} jobs")
    return count


def chain_steps(chain: int, length: int) -> Iterator[dict[str, Any]]:
    for step in range(length):
        ref = f"{chain}.{step}"
        yield {"ref": ref, "queue": QUEUE, "data": {"chain": chain, "step": step},
               "depends_on": [f"{chain}.{step - 1}"] if step else []}


def send_chains(cv: Conveyor, chains: int, length: int) -> int:
    ids = cv.flow([step for chain in range(chains) for step in chain_steps(chain, length)])
    return len(ids)


def send_fan_in(cv: Conveyor, jobs: int) -> int:
    sent = cv.batch(plain_items(jobs), queue=QUEUE,
                    on_complete={"queue": QUEUE, "data": {"callback": True}})
    return len(sent.ids) + (sent.callback is not None)


def send_waiting(cv: Conveyor, count: int) -> None:
    """``count`` steps of ``QUEUE`` that wait for a parent nobody works."""
    cv.flow([{"ref": "parent", "queue": NEVER_WORKED},
             *({"ref": str(i), "queue": QUEUE, "data": {"i": i}, "depends_on": ["parent"]}
               for i in range(count))])


# --- the table between cases ------------------------------------------------------------


def empty_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("TRUNCATE {s}.job, {s}.job_dependency").format(s=sql.Identifier(schema)))


def settle_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    """Statistics for the planner and no dead rows (autovacuum may be off), then a
    checkpoint so that none starts during the burn-down."""
    warn_if_held_back(conn)
    for table in ("job", "job_dependency"):
        conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(schema),
                                                           sql.Identifier(table)))
    checkpoint(conn)


def warn_if_held_back(conn: psycopg.Connection[Any]) -> None:
    """A transaction open elsewhere for long keeps VACUUM from removing dead rows
    (here: the versions a flow's steps leave in the claim index): say so."""
    row = conn.execute(
        "SELECT count(*), max(extract(epoch FROM now() - xact_start)) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL "
        "AND xact_start < now() - interval '30 seconds'").fetchone()
    if row and row[0]:
        log(f"  warning: {row[0]} transaction(s) open for up to {row[1]:.0f} s elsewhere: "
            "VACUUM cannot remove dead rows, and the figures suffer")


# --- what the waiting steps may cost: the claim, the summaries --------------------------


def plan_indexes(node: dict[str, Any]) -> set[str]:
    found = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        found |= plan_indexes(child)
    return found


def claim_probe(conn: psycopg.Connection[Any], queries: Queries, limit: int,
                repeats: int) -> dict[str, Any]:
    """``claim.sql`` for ``limit`` jobs of ``QUEUE``, each run rolled back: its
    median time at the client, and one ``EXPLAIN (ANALYZE, BUFFERS)``."""
    text = queries[statements.CLAIM]
    params = {"queue": QUEUE, "limit": limit, "lease": LEASE, "visibility": None}
    seconds = []
    for _ in range(repeats):
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            claimed = len(conn.execute(text, params).fetchall())
            seconds.append(time.perf_counter() - started)
    with conn.transaction(force_rollback=True):
        row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text, params).fetchone()
    assert row is not None
    plan = row[0][0]
    top = plan["Plan"]
    return {"limit": limit, "claimed": claimed, "median_ms": statistics.median(seconds) * 1000,
            "execution_ms": plan["Execution Time"], "indexes": sorted(plan_indexes(top)),
            "buffers": top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)}


def summary_probe(cv: Conveyor, repeats: int) -> dict[str, Any]:
    """``queue_summaries()``: its median time, and what it says of ``QUEUE``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        summaries = cv.queue_summaries()
        seconds.append(time.perf_counter() - started)
    mine = next(s for s in summaries if s.name == QUEUE)
    return {"median_ms": statistics.median(seconds) * 1000, "created": mine.created,
            "lag_s": None if mine.lag is None else mine.lag.total_seconds()}


# --- the rounds ---------------------------------------------------------------------------


class Bench:
    """One schema, its client and the burn-down settings."""

    def __init__(self, url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str,
                 args: argparse.Namespace) -> None:
        self.url, self.cv, self.conn, self.schema, self.args = url, cv, conn, schema, args
        self.queries = Queries(schema)

    def case(self, name: str, send: Callable[[], int], *, waiting: int | None = None,
             ) -> dict[str, Any]:
        """Empty the tables, send (the ``waiting`` steps, then) the case's jobs, settle,
        probe the claim if ``waiting`` is given, and time the burn-down."""
        args = self.args
        empty_tables(self.conn, self.schema)
        result: dict[str, Any] = {"name": name}
        if waiting:
            started = time.perf_counter()
            send_waiting(self.cv, waiting)
            result["waiting_sent_s"] = time.perf_counter() - started
        started = time.perf_counter()
        jobs = send()
        result["sent_s"] = time.perf_counter() - started
        settle_tables(self.conn, self.schema)
        if waiting is not None:
            result["claims"] = [claim_probe(self.conn, self.queries, limit, args.claims)
                                for limit in CLAIM_LIMITS]
            result["summaries"] = summary_probe(self.cv, args.claims)
            if result["summaries"]["created"] != jobs:  # the waiting steps are not due
                raise RuntimeError(f"queue_summaries() counts {result['summaries']['created']:,}"
                                   f" jobs due, not {jobs:,}")
            settle_tables(self.conn, self.schema)  # the versions the rolled-back claims left
        log(f"  {name}: {jobs:,} jobs sent in {result['sent_s']:.2f} s; burning down ...")
        timeout = args.timeout or max(120.0, jobs / 200)
        try:
            row = burn(self.url, self.cv, self.conn, self.schema, jobs, args.processes,
                       args.concurrency, timeout, queue=QUEUE)
        except BurnTimeout as exc:
            log(f"    did not finish: {exc}")
            wait_for_quiet(self.conn, self.schema)
            return result | {"jobs": jobs, "finished": False, "handled": exc.handled,
                             "seconds": timeout}
        if waiting:
            left = self.cv.queue_counts(QUEUE)[JobState.WAITING]
            if left != waiting:
                raise RuntimeError(f"{waiting:,} steps were waiting, {left:,} are after")
        log(f"    {row['per_second']:,.0f} jobs/s")
        return result | {"finished": True} | {k: row[k] for k in (
            "jobs", "seconds", "per_second", "wal_bytes_per_1000", "pg_cpu_s_per_1000")}

    def pair(self, number: int, plain: Callable[[], dict[str, Any]],
             other: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The plain case and the other, in turn (plain first in odd rounds); the
        ratio of their times per job, if both finished."""
        if number % 2 == 0:
            plain_row = plain()
            other_row = other()
        else:
            other_row = other()
            plain_row = plain()
        finished = plain_row["finished"] and other_row["finished"]
        return {"round": number + 1, "plain": plain_row, "case": other_row,
                "ratio": plain_row["per_second"] / other_row["per_second"] if finished else None}


def wait_for_quiet(conn: psycopg.Connection[Any], schema: str, limit: float = 300) -> None:
    """After a burn-down that did not finish: statements its workers gave up on may
    still run on the server (holding locks); wait until none is left."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND state = 'active' AND strpos(query, %s) > 0", [schema]).fetchone()
        if not row or not row[0]:
            return
        time.sleep(1)
    log(f"    statements on {schema} still running after {limit:.0f} s")


def single_chains(cv: Conveyor, calls: int, length: int) -> dict[str, float]:
    """``calls`` ``flow()`` calls of one chain each against as many ``insert()`` calls
    of as many plain jobs, in turns of ``CALL_BLOCK``: median ms per call."""
    flows: list[float] = []
    inserts: list[float] = []
    chain = 0
    while len(flows) < calls:
        for _ in range(min(CALL_BLOCK, calls - len(flows))):
            started = time.perf_counter()
            cv.flow(list(chain_steps(chain, length)))
            flows.append(time.perf_counter() - started)
            chain += 1
        for _ in range(min(CALL_BLOCK, calls - len(inserts))):
            started = time.perf_counter()
            cv.insert(QUEUE, plain_items(length))
            inserts.append(time.perf_counter() - started)
    return {"calls": calls, "flow_ms": statistics.median(flows) * 1000,
            "insert_ms": statistics.median(inserts) * 1000}


# --- report -------------------------------------------------------------------------------


def summary(pairs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each pair's median ratio against its target: ``(ratio, target, met)``; a pair
    with a burn-down that did not finish has no ratio, and does not meet it."""
    targets = {"waiting": TARGET_WAITING, "chains": TARGET_FLOW, "fan-in": TARGET_FLOW}
    result: dict[str, tuple[float | None, float, bool]] = {}
    for name, rows in pairs.items():
        ratios = [p["ratio"] for p in rows]
        ratio = None if None in ratios else statistics.median(ratios)
        result[name] = (ratio, targets[name], ratio is not None and ratio <= targets[name])
    return result


def print_report(results: dict[str, Any]) -> None:
    args = results["parameters"]
    print(f"\nBurn-downs: {args['processes']} worker process(es), concurrency "
          f"{args['concurrency']}, jit={results['jit']}; ratio: the case's time per job over "
          "plain's, same round")
    print(f"{'pair':8s} {'round':>5s} {'case':8s} {'jobs':>8s} {'sent s':>7s} {'jobs/s':>8s} "
          f"{'us/job':>7s} {'WAL kB/1k':>10s} {'PG CPU s/1k':>12s} {'ratio':>6s}")
    for name, rows in results["pairs"].items():
        for p in rows:
            ratio = "-" if p["ratio"] is None else f"{p['ratio']:.2f}"
            for row, shown in ((p["plain"], ""), (p["case"], ratio)):
                if not row["finished"]:
                    print(f"{name:8s} {p['round']:>5d} {row['name']:8s} {row['jobs']:>8,} "
                          f"{row['sent_s']:>7.2f}   did not finish: {row['handled']:,} "
                          f"handled in {row['seconds']:.0f} s")
                    continue
                wal, cpu = row["wal_bytes_per_1000"], row["pg_cpu_s_per_1000"]
                print(f"{name:8s} {p['round']:>5d} {row['name']:8s} {row['jobs']:>8,} "
                      f"{row['sent_s']:>7.2f} {row['per_second']:>8,.0f} "
                      f"{row['seconds'] / row['jobs'] * 1e6:>7.1f} "
                      f"{'-' if wal is None else f'{wal / 1000:,.0f}':>10s} "
                      f"{'-' if cpu is None else f'{cpu:.3f}':>12s} {shown:>6s}")
    for p in results["pairs"].get("waiting", []):
        for row in (p["plain"], p["case"]):
            claims = "; ".join(
                f"{c['limit']} job(s) {c['median_ms']:.2f} ms (execution "
                f"{c['execution_ms']:.2f} ms, {c['buffers']} buffers, "
                f"{', '.join(c['indexes'])})" for c in row["claims"])
            s = row["summaries"]
            sent = (f"; waiting steps sent in {row['waiting_sent_s']:.2f} s"
                    if "waiting_sent_s" in row else "")
            print(f"round {p['round']}, {row['name']}: claim {claims}; queue_summaries() "
                  f"{s['median_ms']:.2f} ms, created {s['created']:,}{sent}")
    if results["single_chains"]:
        c = results["single_chains"]
        print(f"single chains, {c['calls']:,} calls each: flow() {c['flow_ms']:.2f} ms, "
              f"insert() of as many plain jobs {c['insert_ms']:.2f} ms (medians)")
    for name, (ratio, target, met) in results["summary"].items():
        figure = "a burn-down did not finish" if ratio is None else f"median ratio {ratio:.2f}"
        print(f"target {name} within {target:g}x of plain: {'met' if met else 'NOT met'} "
              f"({figure})")
    print(f"total time {results['elapsed_s']:.0f} s")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=100_000,
                        help="plain jobs burned down next to the waiting steps (100000)")
    parser.add_argument("--waiting", type=int, default=100_000,
                        help="steps waiting in the same queue (100000)")
    parser.add_argument("--chains", type=int, default=10_000, help="chains (10000)")
    parser.add_argument("--chain-length", type=int, default=3, help="steps a chain (3)")
    parser.add_argument("--fan-in", type=int, default=10_000,
                        help="jobs of the batch its callback waits for (10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every pair (3)")
    parser.add_argument("--processes", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="handler calls at once per worker process (1000)")
    parser.add_argument("--claims", type=int, default=30,
                        help="timed claims (and summaries) per limit and case (30)")
    parser.add_argument("--calls", type=int, default=1000,
                        help="single-chain flow() calls against insert() calls; 0: none (1000)")
    parser.add_argument("--timeout", type=float, default=0,
                        help="seconds a burn-down may take (0: jobs / 200, at least 120); a "
                        "pair that once did not finish is not run again (0)")
    parser.add_argument("--skip", choices=["waiting", "chains", "fan-in"], action="append",
                        default=[], help="leave a pair out (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    sizes = (args.jobs, args.waiting, args.chains, args.chain_length, args.fan_in, args.rounds,
             args.processes, args.concurrency, args.claims)
    if min(sizes) < 1 or args.calls < 0:
        parser.error("sizes, rounds, processes, concurrency and claims must be positive")
    if max(args.jobs, args.waiting, args.chains * args.chain_length, args.fan_in) > 1_000_000:
        parser.error("at most 1,000,000 jobs a case")

    started = time.perf_counter()
    schema = f"bench_flows_{uuid.uuid4().hex[:8]}"
    pairs: dict[str, list[dict[str, Any]]] = {}
    single: dict[str, float] | None = None
    with database(args.dsn) as (url, source), psycopg.connect(url, autocommit=True) as conn:
        env = environment(conn, source)
        jit = conn.execute("SHOW jit").fetchone()
        if not args.json:
            print_environment(env)
        try:
            with Conveyor(url, schema=schema) as cv:
                bench = Bench(url, cv, conn, schema, args)
                length = args.chain_length
                cases: dict[str, tuple[Callable[[], dict[str, Any]],
                                       Callable[[], dict[str, Any]]]] = {
                    "waiting": (
                        lambda: bench.case("plain", lambda: send_plain(cv, args.jobs),
                                           waiting=0),
                        lambda: bench.case("waiting", lambda: send_plain(cv, args.jobs),
                                           waiting=args.waiting)),
                    "chains": (
                        lambda: bench.case("plain", lambda: send_plain(cv, args.chains * length)),
                        lambda: bench.case("chains",
                                           lambda: send_chains(cv, args.chains, length))),
                    "fan-in": (
                        lambda: bench.case("plain", lambda: send_plain(cv, args.fan_in + 1)),
                        lambda: bench.case("fan-in", lambda: send_fan_in(cv, args.fan_in))),
                }
                for number in range(args.rounds):
                    for name, (plain, other) in cases.items():
                        # A pair whose burn-down did not finish once is not run again.
                        if name in args.skip or any(p["ratio"] is None
                                                    for p in pairs.get(name, [])):
                            continue
                        log(f"round {number + 1}, {name} ...")
                        pairs.setdefault(name, []).append(bench.pair(number, plain, other))
                if args.calls:
                    log(f"single chains: {args.calls:,} flow() calls against insert() ...")
                    empty_tables(conn, schema)
                    single = single_chains(cv, args.calls, length)
        finally:
            drop_schema(conn, schema)
    results = {
        "environment": env,
        "parameters": vars(args) | {"dsn": redact(args.dsn) if args.dsn else None},
        "pairs": pairs,
        "jit": jit[0] if jit else None,  # as this URL's sessions (the workers') see it
        "single_chains": single,
        "summary": summary(pairs),
        "elapsed_s": time.perf_counter() - started,
    }
    emit(results, args.json, print_report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
