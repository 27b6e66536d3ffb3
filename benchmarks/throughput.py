"""Worker benchmark: how fast Conveyor workers burn down a backlog, and how soon
they pick up jobs that arrive at a steady rate.

What it measures, in one run against one server:

- burn-down: ``insert`` N no-op jobs (100,000), then start worker processes (1,
  then 2), each an ``AsyncConveyor`` running an ``async def`` handler that does
  nothing, ``--concurrency`` handler calls at once per process (each value given
  is tried); the time from the moment the workers are told to go until the
  database shows all N completed. Jobs/s for each case;
- two references over the same N, in the same run:

  - a bare asyncio loop with no features: one connection claims batches of 500
    with a minimal ``UPDATE .. WHERE id IN (SELECT .. FOR UPDATE SKIP LOCKED
    LIMIT 500) RETURNING id, attempt`` and awaits a no-op coroutine per job; a
    second completes each batch with one ``UPDATE .. FROM unnest(ids, attempts)``
    fenced by attempt: the practical ceiling of a Python worker on this machine
    and this job table;
  - the same loop through Conveyor's public calls, ``fetch(batch_size=500)`` and
    ``complete(jobs)``: Conveyor's statements and row handling without the worker
    (tasks, controls, batched completer, heartbeats);

- steady state: one worker process (the first ``--concurrency``), and a producer
  sending jobs at a fixed rate (each of ``--rate``, 1,000/s and 5,000/s, for 10 s
  after 1 s of warm-up) with single ``send`` calls from several asyncio tasks, for
  each handler of ``--handler-ms`` (a no-op, and one that sleeps 1 ms); each job
  carries its send time (``time.time()``) and the handler records ``handler start
  - send time``, of which the worker reports p50/p95/p99. Above 1,000 jobs/s the
  tasks send small batches with ``insert`` (rate / 1,000 jobs per call), since
  single sends from one process could not keep up. Also: how long the
  ``send`` calls took, ``send returned -> handler start`` (the producer keeps each
  job's return time, the worker each job's start): the *pickup latency*, from the
  moment the job is committed and visible; and from the database, claim delay
  (``started_at - created_at``) and end to end (``completed_at - created_at``);
- what each case cost PostgreSQL (``benchmarks/_pgcost.py``): WAL bytes and
  server CPU seconds per 1,000 jobs.

Worker processes are started with ``multiprocessing`` (spawn): each one imports,
connects and registers its handler, then waits for the signal to go, so that
process start-up is not timed. They stop with SIGTERM (the worker's graceful
stop). Each burn-down starts from a job table holding only its N jobs (``TRUNCATE``,
``insert``, ``VACUUM ANALYZE``, ``CHECKPOINT``). The end of a burn-down is found
without loading the database while it runs: the workers count handler calls in
shared memory, and once the count reaches N the parent polls the database for the
jobs not yet completed. ``queue_counts`` then checks that all N completed.

Everything happens in a fresh schema ``bench_<random>``, dropped at the end. Run it
from the repository root::

    python benchmarks/throughput.py                          # embedded PostgreSQL
    python benchmarks/throughput.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/throughput.py --jobs 100000 --processes 1,2,4 --concurrency 200,1000 \\
        --rate 1000,5000 --handler-ms 0,1 --duration 10 --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL
started in a temporary directory and deleted afterwards. The settings printed at
the start come from ``benchmarks/enqueue.py``. ``--skip burn|references|latency``
leaves a part out. With the defaults a run takes about three minutes on a 2-core
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor.config import redact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pgcost import PgCost
from enqueue import checkpoint, database, drop_schema, emit, environment, log, print_environment

BURN_QUEUE = "bench-burn"
BARE_QUEUE = "bench-bare"
LATENCY_QUEUE = "bench-latency"
BARE_BATCH = 500
SINGLE_SENDS_UP_TO = 1000  # jobs/s offered with one send per job; above, small inserts
READY_TIMEOUT = 60.0  # seconds a worker process may take to start
STOP_TIMEOUT = 30.0  # seconds a worker process may take to stop after SIGTERM

Counter = Any  # a multiprocessing.sharedctypes c_uint64 without a lock


# --- worker processes (spawned; everything here runs in the child) ----------------------


@dataclass(frozen=True)
class WorkerSpec:
    url: str
    schema: str
    queue: str
    concurrency: int
    result_path: str | None  # where the latency worker writes its figures
    handler_ms: float = 0.0  # how long the latency handler sleeps


def worker_main(
    spec: WorkerSpec, counter: Counter, ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
) -> None:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    asyncio.run(_worker(spec, counter, ready, go))


async def _worker(
    spec: WorkerSpec, counter: Counter, ready: multiprocessing.synchronize.Event,
    go: multiprocessing.synchronize.Event,
) -> None:
    cv = AsyncConveyor(spec.url, schema=spec.schema, migrate=False)
    latencies: list[float] = []
    starts: dict[str, float] = {}

    async def noop(job: Job) -> None:
        counter.value += 1

    async def timed(job: Job) -> None:
        started = time.time()
        counter.value += 1
        if not job.data.get("warmup"):
            latencies.append(started - job.data["t"])
            starts[job.data["k"]] = started
        if spec.handler_ms:
            await asyncio.sleep(spec.handler_ms / 1000)

    cv.work(spec.queue, timed if spec.result_path else noop, concurrency=spec.concurrency)
    await cv.start()
    ready.set()
    await asyncio.to_thread(go.wait)
    try:
        await cv.run()  # until SIGTERM
    finally:
        await cv.stop()
    if spec.result_path:
        Path(spec.result_path).write_text(json.dumps(
            {"send_to_start": percentiles(latencies), "starts": starts}))


def percentiles(seconds: list[float]) -> dict[str, Any]:
    if len(seconds) < 2:
        return {"count": len(seconds)}
    ms = sorted(s * 1000 for s in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {"count": len(ms), "p50_ms": cuts[49], "p95_ms": cuts[94], "p99_ms": cuts[98],
            "max_ms": ms[-1]}


class WorkerProcesses:
    """Spawned worker processes that start, wait for ``go()``, and stop on SIGTERM."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._go = context.Event()
        self._counters: list[Counter] = []
        self._processes: list[multiprocessing.context.SpawnProcess] = []
        readies = []
        for _ in range(count):
            counter = multiprocessing.sharedctypes.RawValue(ctypes.c_uint64, 0)
            ready = context.Event()
            process = context.Process(target=worker_main, args=(spec, counter, ready, self._go),
                                      daemon=True)
            process.start()
            self._counters.append(counter)
            self._processes.append(process)
            readies.append(ready)
        self._readies = readies

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for ready, process in zip(self._readies, self._processes, strict=True):
            while not ready.wait(0.1):
                if not process.is_alive():
                    raise RuntimeError(f"worker process {process.pid} exited at start")
                if time.monotonic() > deadline:
                    raise RuntimeError("worker processes did not start in time")

    def go(self) -> None:
        self._go.set()

    @property
    def handled(self) -> int:
        return sum(int(counter.value) for counter in self._counters)

    def check_alive(self) -> None:
        for process in self._processes:
            if not process.is_alive():
                raise RuntimeError(f"worker process {process.pid} died ({process.exitcode})")

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker's graceful stop
        for process in self._processes:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                log(f"worker process {process.pid} ignored SIGTERM; killing it")
                process.kill()
                process.join()


@contextlib.contextmanager
def worker_processes(spec: WorkerSpec, count: int) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(spec, count)
    try:
        workers.wait_ready()
        yield workers
    finally:
        workers.stop()


# --- helpers in the parent --------------------------------------------------------------


def remaining(conn: psycopg.Connection[Any], schema: str, queue: str) -> int:
    """Jobs of ``queue`` not yet completed, through the two partial indexes."""
    s = sql.Identifier(schema)
    row = conn.execute(sql.SQL(
        "SELECT (SELECT count(*) FROM {s}.job WHERE queue = %(q)s AND state < 'active') "
        "+ (SELECT count(*) FROM {s}.job WHERE queue = %(q)s AND state = 'active')"
    ).format(s=s), {"q": queue}).fetchone()
    assert row is not None
    return int(row[0])


def fill(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, queue: str, jobs: int,
    items: list[dict[str, Any]] | None = None, *, empty: bool = True,
) -> None:
    """Empty the job table (unless not ``empty``), insert ``jobs`` no-op jobs (or
    ``items``, as ``insert`` takes them), and settle the table."""
    s = sql.Identifier(schema)
    if empty:
        conn.execute(sql.SQL("TRUNCATE {}.job").format(s))
    inserted = cv.insert(queue, items if items is not None else
                         [{"data": {"i": i}} for i in range(jobs)])
    if inserted != jobs:
        raise RuntimeError(f"inserted {inserted} of {jobs} jobs")
    conn.execute(sql.SQL("VACUUM ANALYZE {}.job").format(s))
    checkpoint(conn)


def check_completed(cv: Conveyor, queue: str, jobs: int) -> None:
    counts = cv.queue_counts(queue)
    if counts[JobState.COMPLETED] != jobs:
        raise RuntimeError(f"{queue}: expected {jobs} completed, got {dict(counts)}")


# --- burn-down --------------------------------------------------------------------------


def burn_down(
    url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str, jobs: int,
    processes: int, concurrency: int, timeout: float, *, queue: str = BURN_QUEUE,
    items: list[dict[str, Any]] | None = None, empty: bool = True,
) -> dict[str, Any]:
    """Time ``processes`` workers burning down ``jobs`` jobs of ``queue`` (no-op jobs,
    or ``items``), in an emptied table unless not ``empty``."""
    fill(cv, conn, schema, queue, jobs, items, empty=empty)
    return burn(url, cv, conn, schema, jobs, processes, concurrency, timeout, queue=queue)


class BurnTimeout(RuntimeError):
    """A burn-down that did not finish in time; ``handled``: the handler calls made."""

    def __init__(self, message: str, handled: int) -> None:
        super().__init__(message)
        self.handled = handled


def burn(
    url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str, jobs: int,
    processes: int, concurrency: int, timeout: float, *, queue: str = BURN_QUEUE,
) -> dict[str, Any]:
    """Time ``processes`` workers burning down the ``jobs`` jobs already in ``queue``
    (however they were sent), until the database shows all of them completed."""
    spec = WorkerSpec(url, schema, queue, concurrency, None)
    with worker_processes(spec, processes) as workers, PgCost(conn) as cost:
        started = time.perf_counter()
        workers.go()
        deadline = started + timeout
        while workers.handled < jobs:  # no database polling while the workers run
            workers.check_alive()
            if time.perf_counter() > deadline:
                raise BurnTimeout(f"burn-down: {workers.handled} of {jobs} handled "
                                  f"after {timeout:.0f} s", workers.handled)
            time.sleep(0.005)
        while remaining(conn, schema, queue):  # the last outcomes being written
            if time.perf_counter() > deadline:
                raise BurnTimeout(f"burn-down: not all completed after {timeout:.0f} s",
                                  workers.handled)
            time.sleep(0.005)
        seconds = time.perf_counter() - started
    check_completed(cv, queue, jobs)
    return {"name": f"Conveyor, {processes} process{'es' if processes > 1 else ''}",
            "processes": processes, "concurrency": concurrency, "jobs": jobs,
            "seconds": seconds, "per_second": jobs / seconds} | db_cost(cost, jobs)


def db_cost(cost: PgCost, jobs: int) -> dict[str, float | None]:
    per_1000 = cost.per_1000(jobs)
    return {"wal_bytes_per_1000": per_1000["wal_bytes_per_1000"],
            "pg_cpu_s_per_1000": per_1000["cpu_seconds_per_1000"]}


async def _bare_loop(url: str, schema: str, queue: str) -> int:
    s = sql.Identifier(schema)
    claim = sql.SQL(
        "UPDATE {s}.job SET state = 'active', attempt = attempt + 1, started_at = now() "
        "WHERE id IN (SELECT id FROM {s}.job WHERE queue = %s AND state < 'active' "
        "AND start_after <= now() ORDER BY priority DESC, start_after, id "
        "LIMIT {n} FOR UPDATE SKIP LOCKED) RETURNING id, attempt"
    ).format(s=s, n=sql.Literal(BARE_BATCH))
    complete = sql.SQL(
        "UPDATE {s}.job AS j SET state = 'completed', completed_at = now() "
        "FROM unnest(%s::uuid[], %s::integer[]) AS i (id, attempt) "
        "WHERE j.id = i.id AND j.attempt = i.attempt AND j.state = 'active'"
    ).format(s=s)
    batches: asyncio.Queue[list[Any] | None] = asyncio.Queue(maxsize=4)

    async def noop(job_id: Any) -> None:
        pass
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as claimer,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as completer,
    ):
        async def claim_all() -> None:
            while True:
                cur = await claimer.execute(claim, [queue])
                rows = await cur.fetchall()
                if not rows:
                    await batches.put(None)
                    return
                for row in rows:
                    await noop(row[0])
                await batches.put(rows)

        async def complete_all() -> int:
            done = 0
            while (rows := await batches.get()) is not None:
                await completer.execute(complete, [[row[0] for row in rows],
                                                   [row[1] for row in rows]])
                done += len(rows)
            return done

        _, done = await asyncio.gather(claim_all(), complete_all())
    return done


def reference(
    name: str, loop: Callable[[str, str, str], Awaitable[int]], url: str, cv: Conveyor,
    conn: psycopg.Connection[Any], schema: str, jobs: int,
) -> dict[str, Any]:
    """Fill the queue, time ``loop`` burning it down, check every job completed."""
    fill(cv, conn, schema, BARE_QUEUE, jobs)
    with PgCost(conn) as cost:
        started = time.perf_counter()
        done = asyncio.run(loop(url, schema, BARE_QUEUE))
        seconds = time.perf_counter() - started
    if done != jobs:
        raise RuntimeError(f"{name}: completed {done} of {jobs}")
    check_completed(cv, BARE_QUEUE, jobs)
    return {"name": name, "processes": 1, "concurrency": None, "jobs": jobs,
            "seconds": seconds, "per_second": jobs / seconds} | db_cost(cost, jobs)


def bare_loop(
    url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str, jobs: int
) -> dict[str, Any]:
    return reference(f"ref: bare loop (claim {BARE_BATCH}, fenced unnest completions)",
                     _bare_loop, url, cv, conn, schema, jobs)


async def _api_loop(url: str, schema: str, queue: str) -> int:
    batches: asyncio.Queue[list[Job] | None] = asyncio.Queue(maxsize=4)
    async with AsyncConveyor(url, schema=schema, pool_size=2, migrate=False) as acv:

        async def claim_all() -> None:
            while jobs := await acv.fetch(queue, batch_size=BARE_BATCH):
                await batches.put(jobs)
            await batches.put(None)

        async def complete_all() -> int:
            done = 0
            while (jobs := await batches.get()) is not None:
                done += await acv.complete(jobs)
            return done

        _, done = await asyncio.gather(claim_all(), complete_all())
    return done


def api_loop(
    url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str, jobs: int
) -> dict[str, Any]:
    """The bare loop's shape through Conveyor's public calls: ``fetch`` 500 jobs,
    ``complete`` them (fenced by attempt), no handler and no worker machinery."""
    return reference(f"ref: fetch({BARE_BATCH}) + complete loop, no worker",
                     _api_loop, url, cv, conn, schema, jobs)


# --- pickup latency ---------------------------------------------------------------------


async def _produce(
    url: str, schema: str, rate: float, duration: float, warmup: float, producers: int
) -> dict[str, Any]:
    """Send at ``rate`` jobs/s from ``producers`` tasks, each on its own schedule; a
    task that falls behind sends at once until it is back on schedule."""
    interval = producers * max(1, round(rate / SINGLE_SENDS_UP_TO)) / rate
    counts = [0] * producers
    finished = [0.0] * producers
    sends: dict[str, tuple[float, float]] = {}  # job key: time.time() before and after send
    # Above 1,000 jobs/s one sending task could not keep up with single sends (nor
    # could its event loop time them): each call then sends a small batch (insert).
    batch = max(1, round(rate / SINGLE_SENDS_UP_TO))
    keys = (f"{n:x}" for n in itertools.count())
    async with AsyncConveyor(url, schema=schema, pool_size=producers, migrate=False) as acv:
        start = time.perf_counter() + 0.05
        measured_from = start + warmup
        end = measured_from + duration

        async def producer(k: int) -> None:
            due = start + k / rate
            while due < end:
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                before = time.time()
                datas: list[dict[str, Any]] = [{"t": before, "k": next(keys)}
                                               for _ in range(batch)]
                if due < measured_from:
                    for data in datas:
                        data["warmup"] = True
                if batch == 1:
                    await acv.send(LATENCY_QUEUE, datas[0])
                else:
                    await acv.insert(LATENCY_QUEUE, [{"data": data} for data in datas])
                if due >= measured_from:
                    after = time.time()
                    for data in datas:
                        sends[data["k"]] = (before, after)
                    counts[k] += batch
                    finished[k] = time.perf_counter()
                due += interval

        await asyncio.gather(*(producer(k) for k in range(producers)))
    sent = sum(counts)
    elapsed = max(max(finished), end) - measured_from
    return {"sent": sent, "seconds": elapsed, "achieved_rate": sent / elapsed,
            "warmup_s": warmup, "producers": producers, "jobs_per_call": batch,
            "sends": sends}


def pickup_latency(
    url: str, conn: psycopg.Connection[Any], schema: str, concurrency: int, rate: float,
    duration: float, warmup: float, producers: int, handler_ms: float = 0.0,
) -> dict[str, Any]:
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("TRUNCATE {}.job").format(s))
    checkpoint(conn)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as folder:
        result_path = Path(folder) / "latency.json"
        spec = WorkerSpec(url, schema, LATENCY_QUEUE, concurrency, str(result_path), handler_ms)
        with worker_processes(spec, 1) as workers:
            workers.go()
            time.sleep(0.5)  # the worker claims and listens
            with PgCost(conn) as cost:
                production = asyncio.run(_produce(url, schema, rate, duration, warmup,
                                                  producers))
            deadline = time.monotonic() + 60
            while remaining(conn, schema, LATENCY_QUEUE):
                workers.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError("latency: jobs still waiting 60 s after the last send")
                time.sleep(0.05)
        reported = json.loads(result_path.read_text())
    sends = production.pop("sends")
    starts: dict[str, float] = reported["starts"]
    measured = [key for key in sends if key in starts]
    row = conn.execute(sql.SQL(
        "SELECT count(*), "
        "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
        "(ORDER BY extract(epoch FROM completed_at - created_at)), "
        "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
        "(ORDER BY extract(epoch FROM started_at - created_at)) "
        "FROM {}.job WHERE queue = %s AND state = 'completed' AND NOT data ? 'warmup'"
    ).format(s), [LATENCY_QUEUE]).fetchone()
    assert row is not None
    count, end_to_end, claimed = row

    def ms(values: list[float]) -> dict[str, float]:
        return {f"p{p}_ms": v * 1000 for p, v in zip((50, 95, 99), values, strict=True)}

    return {
        "concurrency": concurrency, "rate": rate, "handler_ms": handler_ms,
        "production": production, "handler_start": reported["send_to_start"],
        "send_call": percentiles([sends[i][1] - sends[i][0] for i in sends]),
        "committed_to_start": percentiles([starts[i] - sends[i][1] for i in measured]),
        "completed": count, "end_to_end": ms(end_to_end), "claimed": ms(claimed),
    } | db_cost(cost, production["sent"])


# --- report -----------------------------------------------------------------------------

TARGET_BARE_RATIO = 0.70  # one process against the bare loop
TARGET_PICKUP_P50_MS = 5.0  # send returned -> handler start, 1,000 jobs/s, no-op handler
TARGET_PICKUP_P99_MS = 50.0
TARGET_RATE = 1000.0


def summary(burns: list[dict[str, Any]], bare: dict[str, Any] | None,
            latencies: list[dict[str, Any]]) -> dict[str, Any]:
    best: dict[int, dict[str, Any]] = {}
    for row in burns:
        if row["processes"] not in best or row["per_second"] > best[row["processes"]]["per_second"]:
            best[row["processes"]] = row
    result: dict[str, Any] = {"best_per_processes": {
        p: {"concurrency": r["concurrency"], "per_second": r["per_second"]}
        for p, r in sorted(best.items())}}
    ratios: dict[str, float] = {}
    for processes in sorted(best):
        if bare is not None:
            ratios[f"Conveyor {processes} process(es) / bare loop"] = (
                best[processes]["per_second"] / bare["per_second"])
        if processes > 1 and 1 in best:
            ratios[f"Conveyor {processes} processes / 1 process"] = (
                best[processes]["per_second"] / best[1]["per_second"])
    result["ratios"] = ratios
    targets = {}
    if 1 in best and bare is not None:
        ratio = best[1]["per_second"] / bare["per_second"]
        targets[f"1 process >= {TARGET_BARE_RATIO:.0%} of the bare loop"] = (
            ratio, ratio >= TARGET_BARE_RATIO)
    if 1 in best and 2 in best:
        ratio = best[2]["per_second"] / best[1]["per_second"]
        targets["2 processes beat 1"] = (ratio, ratio > 1)
    for latency in latencies:
        pickup = latency["committed_to_start"]
        if latency["rate"] != TARGET_RATE or latency["handler_ms"] or "p50_ms" not in pickup:
            continue
        targets[f"pickup p50 <= {TARGET_PICKUP_P50_MS:g} ms at {TARGET_RATE:,.0f} jobs/s"] = (
            pickup["p50_ms"], pickup["p50_ms"] <= TARGET_PICKUP_P50_MS)
        targets[f"pickup p99 <= {TARGET_PICKUP_P99_MS:g} ms at {TARGET_RATE:,.0f} jobs/s"] = (
            pickup["p99_ms"], pickup["p99_ms"] <= TARGET_PICKUP_P99_MS)
    result["targets"] = targets
    return result


def print_report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    rows = results["burn_down"] + results["references"]
    if rows:
        table = Table(title=f"Burn-down, {rows[0]['jobs']:,} no-op jobs", title_justify="left")
        table.add_column("case")
        for column in ("processes", "concurrency", "seconds", "jobs/s", "WAL kB/1k jobs",
                       "PG CPU s/1k jobs"):
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(row["name"], str(row["processes"]),
                          "-" if row["concurrency"] is None else str(row["concurrency"]),
                          f"{row['seconds']:.2f}", f"{row['per_second']:,.0f}",
                          *cost_cells(row))
        console.print(table)
    for latency in results["latency"]:
        production = latency["production"]
        console.print(
            f"Steady state: 1 process, concurrency {latency['concurrency']}, handler "
            f"{latency['handler_ms']:g} ms, target rate "
            f"{latency['rate']:,.0f}/s, achieved {production['achieved_rate']:,.0f}/s "
            f"({production['sent']:,} jobs in {production['seconds']:.1f} s from "
            f"{production['producers']} tasks, {production['jobs_per_call']} per call, after "
            f"{production['warmup_s']:g} s of warm-up); "
            "WAL kB / PG CPU s per 1k jobs: " + " / ".join(cost_cells(latency)))
        table = Table(title_justify="left")
        table.add_column("latency")
        for column in ("jobs", "p50 ms", "p95 ms", "p99 ms", "max ms"):
            table.add_column(column, justify="right")
        for key, label in (("handler_start", "send -> handler start"),
                           ("send_call", "  of which the send call"),
                           ("committed_to_start", "send returned -> handler start")):
            values = latency[key]
            table.add_row(label, f"{values['count']:,}",
                          *(f"{values.get(k, float('nan')):.1f}"
                            for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")))
        for key, label in (("claimed", "created_at -> started_at (db)"),
                           ("end_to_end", "created_at -> completed_at (db)")):
            values = latency[key]
            table.add_row(label, f"{latency['completed']:,}",
                          *(f"{values[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")), "")
        console.print(table)
    summary_ = results["summary"]
    for name, value in summary_["ratios"].items():
        console.print(f"  {name}: {value:.2f}")
    for name, (value, met) in summary_["targets"].items():
        console.print(f"  target {name}: {'met' if met else 'NOT met'} ({value:,.2f})")
    console.print(f"  total time {results['elapsed_s']:.1f} s")


def cost_cells(row: dict[str, Any]) -> tuple[str, str]:
    wal, cpu = row.get("wal_bytes_per_1000"), row.get("pg_cpu_s_per_1000")
    return ("-" if wal is None else f"{wal / 1000:,.0f}", "-" if cpu is None else f"{cpu:.3f}")


# --- main -------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def float_list(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected numbers >= 0, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs per burn-down (100000)")
    parser.add_argument("--processes", type=int_list, default=[1, 2],
                        help="worker process counts to burn down with (1,2)")
    parser.add_argument("--concurrency", type=int_list, default=[200, 1000],
                        help="handler calls at once per worker process; each value is tried "
                        "in the burn-down, the first one in the latency run (200,1000)")
    parser.add_argument("--rate", type=float_list, default=[1000, 5000],
                        help="jobs/s sent in the steady-state runs (1000,5000)")
    parser.add_argument("--handler-ms", type=float_list, default=[0, 1],
                        help="handlers of the steady-state runs: milliseconds each sleeps (0,1)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of sending (10)")
    parser.add_argument("--warmup", type=float, default=1, help="seconds sent first, untimed (1)")
    parser.add_argument("--producers", type=int, default=8, help="sending tasks (8)")
    parser.add_argument("--skip", choices=["burn", "references", "latency"], action="append",
                        default=[], help="leave a part out (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.jobs < 1 or min(args.rate) <= 0 or args.duration <= 0 or args.producers < 1:
        parser.error("--jobs, --rate and --duration must be positive")

    started = time.perf_counter()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    timeout = max(120.0, args.jobs / 500)
    burns: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    latencies: list[dict[str, Any]] = []
    with (
        database(args.dsn) as (url, source),
        psycopg.connect(url, autocommit=True) as conn,
    ):
        env = environment(conn, source)
        if not args.json:
            print_environment(env)
        try:
            with Conveyor(url, schema=schema) as cv:
                if "references" not in args.skip:
                    log(f"references: bare loop, fetch/complete loop, {args.jobs:,} jobs ...")
                    references.append(bare_loop(url, cv, conn, schema, args.jobs))
                    references.append(api_loop(url, cv, conn, schema, args.jobs))
                    log("  " + ", ".join(f"{r['per_second']:,.0f}" for r in references)
                        + " jobs/s")
                if "burn" not in args.skip:
                    for processes in args.processes:
                        for concurrency in args.concurrency:
                            log(f"burn-down: {args.jobs:,} jobs, {processes} process(es), "
                                f"concurrency {concurrency} ...")
                            burns.append(burn_down(url, cv, conn, schema, args.jobs, processes,
                                                   concurrency, timeout))
                            log(f"  {burns[-1]['per_second']:,.0f} jobs/s")
                for rate in [] if "latency" in args.skip else args.rate:
                    for handler_ms in args.handler_ms:
                        concurrency = args.concurrency[0]
                        producers = args.producers or 8
                        log(f"steady state: {rate:,.0f} jobs/s for {args.duration:g} s "
                            f"(+{args.warmup:g} s warm-up), handler {handler_ms:g} ms, "
                            f"concurrency {concurrency} ...")
                        latencies.append(pickup_latency(
                            url, conn, schema, concurrency, rate, args.duration, args.warmup,
                            producers, handler_ms))
        finally:
            drop_schema(conn, schema)
    results = {
        "environment": env,
        "parameters": vars(args) | {"dsn": redact(args.dsn) if args.dsn else None},
        "burn_down": burns,
        "references": references,
        "latency": latencies,
        "summary": summary(burns, references[0] if references else None, latencies),
        "elapsed_s": time.perf_counter() - started,
    }
    emit(results, args.json, print_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
