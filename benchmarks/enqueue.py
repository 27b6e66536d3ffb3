"""Enqueue benchmark: how fast Conveyor puts jobs into PostgreSQL.

What it measures, in one run against one server:

- single send: ``Conveyor.send(queue, {"i": i})`` called N times in a row, each
  timed with ``time.perf_counter``; sends/s and latency median, p95, p99 (ms);
- async single send: the same with ``AsyncConveyor`` (sequential awaits);
- bulk insert: ``Conveyor.insert(queue, items)`` with N items ``{"data": {"i": i}}``
  in one call, repeated R times; jobs/s for each run, the best and the median;
  the same with per-item options (``priority``, ``retry_limit``);
- reference rows, measured in the same run so that ratios compare like with like:

  - a ``SELECT 1`` round trip, and a one-row ``INSERT`` into the job table with
    a durable commit and with ``synchronous_commit=off`` (that session only):
    the floor under a single send, and how much of it is the WAL flush;
  - the client-side checks of the N items alone, without and with the options,
    no I/O;
  - a raw binary ``COPY`` of the same N payloads into a plain
    ``(id identity primary key, data jsonb)`` table: the machine's ceiling;
  - the server-side cost of the insert itself: ``INSERT INTO job ... SELECT ...
    FROM generate_series(1, N)`` of equivalent rows, plain and with ``ON
    CONFLICT DO NOTHING`` as Conveyor's own insert runs it.

The single-send cases take turns, 100 calls at a time, and the bulk cases take
turns within each repetition, so that background noise on a shared machine
spreads over all of them and ratios within one run stay meaningful. Each bulk run
starts from an empty target table (``TRUNCATE``) right after a ``CHECKPOINT``
(when the role may run one).

Everything happens in a fresh schema ``bench_<random>``, dropped at the end.

Run it from the repository root::

    python benchmarks/enqueue.py                              # embedded PostgreSQL
    python benchmarks/enqueue.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/enqueue.py --sends 2000 --bulk 100000 --repeat 3 --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL
started in a temporary directory and deleted afterwards. With the defaults a run
takes well under two minutes. ``--json`` prints the results as one JSON document
(progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from conveyor import AsyncConveyor, Conveyor
from conveyor.config import redact
from conveyor.embedded import EmbeddedPostgres

SETTINGS = (
    "fsync", "synchronous_commit", "shared_buffers", "wal_level", "full_page_writes",
    "max_wal_size", "data_checksums",
)
SEND_QUEUE = "bench-send"
ASYNC_QUEUE = "bench-send-async"
BULK_QUEUE = "bench-bulk"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the database -----------------------------------------------------------------------


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[tuple[str, str]]:
    """The URL to benchmark against and where it came from."""
    if dsn:
        yield dsn, "--dsn"
        return
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"], "DATABASE_URL"
        return
    log("starting an embedded PostgreSQL in a temporary directory ...")
    with (
        tempfile.TemporaryDirectory(prefix="conveyor-bench-") as folder,
        EmbeddedPostgres(Path(folder) / "pgdata", cleanup="delete") as server,
    ):
        yield server.url, "embedded"


def environment(conn: psycopg.Connection[Any], source: str) -> dict[str, Any]:
    info = conn.info
    settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SETTINGS}
    transport = "unix socket" if info.host.startswith("/") else f"tcp {info.host}:{info.port}"
    return {
        "database": source,
        "transport": transport,
        "postgresql": conn.execute("SELECT version()").fetchone()[0],
        "settings": settings,
        "python": f"{platform.python_implementation()} {sys.version.split()[0]} "
        f"({' '.join(platform.python_build())}, {platform.python_compiler()})",
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__} libpq {psycopg.pq.version()})",
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
    }


def cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def drop_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Drop a benchmark's schema and all it holds."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def emit(results: dict[str, Any], as_json: bool, report: Callable[[dict[str, Any]], None]) -> None:
    """Print a benchmark's results: as one JSON document, or as its report."""
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    else:
        report(results)


def checkpoint(conn: psycopg.Connection[Any]) -> bool:
    """Flush the dirty buffers so that no checkpoint starts during a measured run."""
    try:
        conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


# --- figures ----------------------------------------------------------------------------


def latency(name: str, seconds: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "name": name,
        "calls": len(ms),
        "per_second": len(ms) / sum(seconds),
        "median_ms": statistics.median(ms),
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "max_ms": ms[-1],
    }


def throughput(name: str, rows: int, seconds: list[float]) -> dict[str, Any]:
    rates = [rows / s for s in seconds]
    return {
        "name": name,
        "rows": rows,
        "seconds": seconds,
        "per_second": rates,
        "best": max(rates),
        "median": statistics.median(rates),
        "median_us_per_row": statistics.median(seconds) / rows * 1e6,
    }


# --- single sends -----------------------------------------------------------------------

SEND_BLOCK = 100
"""The single-send cases take turns, this many calls at a time, so that each one
samples the same moments of a noisy machine."""


async def _interleaved(
    cases: list[tuple[str, Callable[[int], Any]]], warmup: int, count: int
) -> dict[str, list[float]]:
    """Times each call of every case; a case is sync or async (then awaited)."""
    seconds: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _, call in cases:
        for i in range(warmup):
            if inspect.iscoroutinefunction(call):
                await call(i)
            else:
                call(i)
    for first in range(0, count, SEND_BLOCK):
        for name, call in cases:
            timings = seconds[name]
            if inspect.iscoroutinefunction(call):
                for i in range(first, min(first + SEND_BLOCK, count)):
                    start = time.perf_counter()
                    await call(i)
                    timings.append(time.perf_counter() - start)
            else:
                for i in range(first, min(first + SEND_BLOCK, count)):
                    start = time.perf_counter()
                    call(i)
                    timings.append(time.perf_counter() - start)
    return seconds


async def _sends(url: str, schema: str, cv: Conveyor, warmup: int, count: int) -> dict[str, Any]:
    insert_one = sql.SQL(
        "INSERT INTO {s}.job (id, queue, data, retry_limit, retry_delay, retry_backoff, "
        "expire_in, start_after, keep_until, delete_after) "
        "VALUES ({s}.uuid7(), 'bench-ref', %s::jsonb, 2, '0 s', false, '15 min', now(), "
        "now() + interval '14 days', '7 days')"
    ).format(s=sql.Identifier(schema))
    with (
        psycopg.connect(url, autocommit=True) as durable,
        psycopg.connect(url, autocommit=True) as lazy,
    ):
        lazy.execute("SET synchronous_commit = off")  # this session only
        async with AsyncConveyor(url, schema=schema) as acv:
            cv.create_queue(SEND_QUEUE)
            await acv.create_queue(ASYNC_QUEUE)

            async def async_send(i: int) -> None:
                await acv.send(ASYNC_QUEUE, {"i": i})

            cases: list[tuple[str, Callable[[int], Any]]] = [
                ("send", lambda i: cv.send(SEND_QUEUE, {"i": i})),
                ("async send", async_send),
                ("ref: SELECT 1", lambda i: durable.execute("SELECT 1").fetchone()),
                ("ref: 1-row INSERT, commit",
                 lambda i: durable.execute(insert_one, (f'{{"i":{i}}}',))),
                ("ref: same, synchronous_commit=off",
                 lambda i: lazy.execute(insert_one, (f'{{"i":{i}}}',))),
            ]
            return await _interleaved(cases, warmup, count)


def bench_sends(
    url: str, schema: str, cv: Conveyor, warmup: int, count: int
) -> list[dict[str, Any]]:
    """Sync and async sends, and the floor under them: a bare round trip, and a
    one-row insert into the job table with a durable commit and without waiting for
    the WAL flush."""
    seconds = asyncio.run(_sends(url, schema, cv, warmup, count))
    return [latency(name, timings) for name, timings in seconds.items()]


# --- bulk -------------------------------------------------------------------------------


def server_insert_select(schema: str, rows: int, on_conflict: bool) -> sql.Composed:
    """Rows like those of a bulk insert with the queue's defaults, made by the server."""
    return sql.SQL(
        "INSERT INTO {s}.job (id, queue, policy, priority, data, retry_limit, retry_delay, "
        "retry_backoff, expire_in, start_after, keep_until, delete_after) "
        "SELECT {s}.uuid7(), {queue}, 'standard', 0, jsonb_build_object('i', g), 2, '0 s', "
        "false, '15 min', now(), now() + interval '14 days', '7 days' "
        "FROM generate_series(1, {rows}) AS g{conflict}"
    ).format(
        s=sql.Identifier(schema),
        queue=sql.Literal(BULK_QUEUE),
        rows=sql.Literal(rows),
        conflict=sql.SQL(" ON CONFLICT DO NOTHING" if on_conflict else ""),
    )


def client_checks() -> Callable[[Any, int], object] | None:
    """The per-item checks of ``insert`` without any I/O (a private function: skipped
    when it is not there)."""
    try:
        from conveyor._ops.options import item_row
    except ImportError:
        return None
    return item_row


def bench_bulk(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, rows: int, repeat: int
) -> tuple[list[dict[str, Any]], bool]:
    s = sql.Identifier(schema)
    job, ref = sql.SQL("{}.job").format(s), sql.SQL("{}.copy_ref").format(s)
    conn.execute(
        sql.SQL("CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, data jsonb)")
        .format(ref)
    )
    set_json_dumps(orjson.dumps, context=conn)  # the encoder Conveyor uses
    copy_ref = sql.SQL("COPY {} (data) FROM STDIN (FORMAT BINARY)").format(ref)
    items = [{"data": {"i": i}} for i in range(rows)]
    optioned = [{"data": {"i": i}, "priority": i % 10, "retry_limit": 5} for i in range(rows)]
    cv.create_queue(BULK_QUEUE)
    cv.insert(BULK_QUEUE, items[:1000])  # warm-up: temporary table, COPY, statement
    checks = client_checks()
    limit = cv.settings.max_payload_bytes

    def insert(batch: list[dict[str, Any]]) -> Callable[[], int]:
        return lambda: cv.insert(BULK_QUEUE, batch)

    def copy() -> int:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(copy_ref) as out:
                out.set_types(["jsonb"])
                for item in items:
                    out.write_row((item["data"],))
            return cur.rowcount

    def execute(statement: sql.Composed) -> Callable[[], int]:
        return lambda: conn.execute(statement).rowcount

    def check_only(batch: list[dict[str, Any]]) -> Callable[[], int]:
        assert checks is not None
        return lambda: len([checks(item, limit) for item in batch])

    # name, table to empty first, the timed call (returns the rows it made)
    cases: list[tuple[str, sql.Composable | None, Callable[[], int]]] = [
        ("insert", job, insert(items)),
        ("insert + priority, retry_limit", job, insert(optioned)),
        *(
            [
                ("ref: item checks only, no I/O", None, check_only(items)),
                ("ref: same, with options", None, check_only(optioned)),
            ]
            if checks is not None
            else []
        ),
        ("ref: raw COPY, plain table", ref, copy),
        ("ref: server INSERT..SELECT", job, execute(server_insert_select(schema, rows, False))),
        (
            "ref: same, ON CONFLICT DO NOTHING", job,
            execute(server_insert_select(schema, rows, True)),
        ),
    ]
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    checkpointed = True
    for run in range(repeat):
        for name, table, call in cases:
            log(f"  bulk run {run + 1}/{repeat}: {name}")
            if table is not None:
                conn.execute(sql.SQL("TRUNCATE {}").format(table))
                checkpointed = checkpoint(conn) and checkpointed
            start = time.perf_counter()
            made = call()
            seconds[name].append(time.perf_counter() - start)
            if made != rows:
                raise RuntimeError(f"{name}: expected {rows} rows, got {made}")
    conn.execute(sql.SQL("TRUNCATE {}, {}").format(job, ref))
    return [throughput(name, rows, seconds[name]) for name, _, _ in cases], checkpointed


# --- report -----------------------------------------------------------------------------


def ratios(bulk: list[dict[str, Any]]) -> dict[str, float]:
    best = {row["name"]: row["best"] for row in bulk}
    insert = best["insert"]
    return {
        "insert / raw COPY": insert / best["ref: raw COPY, plain table"],
        "insert / server INSERT..SELECT": insert / best["ref: server INSERT..SELECT"],
        "insert / server INSERT..SELECT ON CONFLICT": insert
        / best["ref: same, ON CONFLICT DO NOTHING"],
        "insert with options / insert": best["insert + priority, retry_limit"] / insert,
    }


def print_environment(env: dict[str, Any]) -> None:
    print(f"PostgreSQL: {env['postgresql']}")
    print(f"  via {env['database']}, {env['transport']}")
    print("  " + ", ".join(f"{k}={v}" for k, v in env["settings"].items()))
    print(f"Python:     {env['python']}")
    print(f"psycopg:    {env['psycopg']}")
    print(f"CPUs:       {env['cpu_count']} ({env['cpu_model']}), {env['platform']}")
    print(flush=True)


def print_tables(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    sends = Table(title="Single sends (sequential, one connection)", title_justify="left")
    for column in ("case", "calls", "per s", "median ms", "p95 ms", "p99 ms", "max ms"):
        sends.add_column(column, justify="left" if column == "case" else "right")
    for row in results["sends"]:
        sends.add_row(
            row["name"], f"{row['calls']:,}", f"{row['per_second']:,.0f}",
            *(f"{row[k]:.3f}" for k in ("median_ms", "p95_ms", "p99_ms", "max_ms")),
        )
    console.print(sends)

    bulk = Table(
        title=f"Bulk, {results['bulk'][0]['rows']:,} rows per run (rows/s)", title_justify="left"
    )
    bulk.add_column("case")
    for column in ("runs", "best", "median", "us/row (median)"):
        bulk.add_column(column, justify="right")
    for row in results["bulk"]:
        bulk.add_row(
            row["name"], "  ".join(f"{r:,.0f}" for r in row["per_second"]),
            f"{row['best']:,.0f}", f"{row['median']:,.0f}", f"{row['median_us_per_row']:.1f}",
        )
    console.print(bulk)
    for name, value in results["ratios"].items():
        console.print(f"  {name}: {value:.2f} (best vs best)")
    if not results["checkpointed"]:
        console.print("  (no CHECKPOINT before bulk runs: the role may not run one)")
    console.print(f"  total time {results['elapsed_s']:.1f} s")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--sends", type=int, default=2000, help="timed single sends (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed sends first (200)")
    parser.add_argument("--bulk", type=int, default=100_000, help="items per bulk insert (100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each bulk case (3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.sends < 2 or args.bulk < 1 or args.repeat < 1 or args.warmup < 0:
        parser.error("--sends must be at least 2, --bulk and --repeat at least 1")

    started = time.perf_counter()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with (
        database(args.dsn) as (url, source),
        psycopg.connect(url, autocommit=True) as conn,
    ):
        env = environment(conn, source)
        if not args.json:
            print_environment(env)
        try:
            with Conveyor(url, schema=schema) as cv:
                log(f"schema {schema}: {args.sends:,} calls of each single-send case "
                    f"after {args.warmup} warm-up ...")
                sends = bench_sends(url, schema, cv, args.warmup, args.sends)
                log(f"bulk: {args.bulk:,} rows x {args.repeat} runs per case ...")
                bulk, checkpointed = bench_bulk(cv, conn, schema, args.bulk, args.repeat)
        finally:
            drop_schema(conn, schema)
    results = {
        "environment": env,
        "parameters": vars(args) | {"dsn": redact(args.dsn) if args.dsn else None},
        "sends": sends,
        "bulk": bulk,
        "ratios": ratios(bulk),
        "checkpointed": checkpointed,
        "elapsed_s": time.perf_counter() - started,
    }
    emit(results, args.json, print_tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
