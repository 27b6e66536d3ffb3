"""Peer benchmark: Conveyor, PgQueuer and Procrastinate burning down the same backlog
of no-op jobs, side by side, in one run against one server.

Each system gets N pre-inserted jobs (20,000) whose handler does nothing, in its
best documented configuration, and is timed from the moment its worker starts to
the last job recorded as done:

- Conveyor: ``insert`` of N jobs, then one worker process, an ``AsyncConveyor``
  with an ``async def`` no-op handler at ``--concurrency`` (1,000) handler calls
  at once; the burn-down of ``benchmarks/throughput.py``, reused as it is;
- PgQueuer: ``Queries.enqueue`` of N jobs in one call, then a ``QueueManager`` on
  an asyncpg connection running ``mode=drain`` (it returns once the queue is empty
  and the last outcomes are logged), with batch size 100 (its best) and with its
  default of 10;
- Procrastinate: ``batch_defer_async`` of N jobs with the psycopg connector, then
  ``run_worker_async(concurrency=10, wait=False)``, which returns once the queues
  are empty and the jobs running have finished.

The peers do not share Conveyor's environment: each is installed from PyPI into a
virtual environment of its own under ``--cache`` (``/tmp/conveyor-bench-peers``,
created with ``python -m venv`` and pip on first use) and driven by a short program
that this script writes to a temporary file and runs with that environment's
Python, which prints one JSON line. Every system works in a fresh schema of its
own (``bench_<random>``; the peers reach theirs through their own schema setting
or ``search_path``), settled the same way before the clock starts (``VACUUM
ANALYZE``, ``CHECKPOINT``) and dropped at the end, also when a run fails or
overruns its ``--timeout`` (300 s). Run it from the repository root::

    python benchmarks/peers.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/peers.py --jobs 20000 --skip procrastinate --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL as
in the other benchmarks. With the defaults a run takes about a minute and a half
once the virtual environments exist, most of it Procrastinate's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from conveyor import Conveyor
from conveyor.config import redact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enqueue import database, drop_schema, emit, environment, log, print_environment
from throughput import burn_down

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "conveyor-bench-peers"
PGQUEUER_BEST_BATCH = 100
PGQUEUER_DEFAULT_BATCH = 10
PROCRASTINATE_CONCURRENCY = 10

# Shared by both drivers: settle the freshly filled tables as Conveyor's are settled.
SETTLE = '''
import psycopg


def settle(url, schema):
    with psycopg.connect(url, autocommit=True) as conn:
        for (table,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]).fetchall():
            conn.execute(f'VACUUM ANALYZE "{schema}"."{table}"')
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass


def count(url, statement):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement).fetchone()[0]
'''

PGQUEUER_DRIVER = SETTLE + '''
import asyncio
import json
import os
import sys
import time
from importlib.metadata import version

url, schema, jobs, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.environ["PGQUEUER_SCHEMA"] = schema  # read by PgQueuer's settings at import

import asyncpg
from pgqueuer import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode


async def main():
    connection = await asyncpg.connect(url)
    try:
        queries = Queries.from_asyncpg_connection(connection)
        await queries.install()
        await queries.enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)
        settle(url, schema)
        manager = QueueManager(queries)

        @manager.entrypoint("noop")
        async def noop(job):
            pass

        started = time.perf_counter()
        await manager.run(batch_size=batch_size, mode=QueueExecutionMode.drain)
        seconds = time.perf_counter() - started
    finally:
        await connection.close()
    left = count(url, f'SELECT count(*) FROM "{schema}".pgqueuer')
    done = count(url, f"SELECT count(*) FROM \\"{schema}\\".pgqueuer_log "
                      "WHERE status = 'successful'")
    print(json.dumps({"seconds": seconds, "left": left, "done": done,
                      "version": version("pgqueuer")}))


asyncio.run(main())
'''

PROCRASTINATE_DRIVER = SETTLE + '''
import asyncio
import json
import logging
import sys
import time
from importlib.metadata import version

import procrastinate

url, schema, jobs, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


async def main():
    logging.basicConfig(level=logging.WARNING)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    connector = procrastinate.PsycopgConnector(
        conninfo=url, kwargs={"options": f"-c search_path={schema}"})
    app = procrastinate.App(connector=connector)

    @app.task(name="noop", queue="bench")
    async def noop():
        pass

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await noop.batch_defer_async(*({} for _ in range(jobs)))
        settle(url, schema)
        started = time.perf_counter()
        await app.run_worker_async(queues=["bench"], concurrency=concurrency, wait=False,
                                   install_signal_handlers=False)
        seconds = time.perf_counter() - started
    left = count(url, f"SELECT count(*) FROM \\"{schema}\\".procrastinate_jobs "
                      "WHERE status <> 'succeeded'")
    done = count(url, f"SELECT count(*) FROM \\"{schema}\\".procrastinate_jobs "
                      "WHERE status = 'succeeded'")
    print(json.dumps({"seconds": seconds, "left": left, "done": done,
                      "version": version("procrastinate")}))


asyncio.run(main())
'''


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]  # pip requirements of its virtual environment
    driver: str  # the program's source
    module: str  # imported to check that the environment is ready


PEERS = {
    "pgqueuer": Peer("PgQueuer", ("pgqueuer", "asyncpg", "psycopg[binary]"), PGQUEUER_DRIVER,
                     "pgqueuer"),
    "procrastinate": Peer("Procrastinate", ("procrastinate", "psycopg[binary]"),
                          PROCRASTINATE_DRIVER, "procrastinate"),
}


def peer_python(cache: Path, key: str) -> Path:
    """The Python of the peer's own virtual environment, created on first use."""
    peer = PEERS[key]
    venv = cache / f"{key}-venv"
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", f"import {peer.module}"],
                                          capture_output=True).returncode == 0:
        return python
    log(f"{peer.name}: creating {venv} and installing {', '.join(peer.packages)} ...")
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *peer.packages], check=True)
    return python


def run_peer(
    python: Path, key: str, url: str, conn: psycopg.Connection[Any], jobs: int, setting: int,
    timeout: float,
) -> dict[str, Any]:
    """Run the peer's driver in a fresh schema with ``setting`` (its batch size or its
    concurrency) and check that it handled every job."""
    peer = PEERS[key]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with tempfile.NamedTemporaryFile("w", prefix=f"{key}-", suffix=".py") as program:
        program.write(peer.driver)
        program.flush()
        try:
            finished = subprocess.run(
                [python, program.name, url, schema, str(jobs), str(setting)],
                capture_output=True, text=True, timeout=timeout)
        finally:
            drop_schema(conn, schema)
    if finished.returncode != 0:
        raise RuntimeError(f"{peer.name} driver failed:\n{finished.stderr[-3000:]}")
    reported = json.loads(finished.stdout.strip().splitlines()[-1])
    if reported["done"] != jobs or reported["left"]:
        raise RuntimeError(f"{peer.name}: {reported['done']} of {jobs} done, "
                           f"{reported['left']} left")
    return {"jobs": jobs, "seconds": reported["seconds"],
            "per_second": jobs / reported["seconds"], "version": reported["version"]}


def conveyor_burn_down(
    url: str, conn: psycopg.Connection[Any], jobs: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with Conveyor(url, schema=schema) as cv:
            result = burn_down(url, cv, conn, schema, jobs, 1, concurrency, timeout)
    finally:
        drop_schema(conn, schema)
    from importlib.metadata import version

    return result | {"version": version("conveyor")}


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    by_key = {row["key"]: row for row in rows}
    conveyor = by_key["conveyor"]["per_second"]
    result = {}
    if "pgqueuer" in by_key:
        result["Conveyor / PgQueuer (best)"] = conveyor / by_key["pgqueuer"]["per_second"]
    if "procrastinate" in by_key:
        result["Conveyor / Procrastinate"] = conveyor / by_key["procrastinate"]["per_second"]
    return result


def print_report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    rows = results["systems"]
    table = Table(title=f"Burn-down, {rows[0]['jobs']:,} no-op jobs, same run",
                  title_justify="left")
    table.add_column("system")
    table.add_column("version")
    table.add_column("configuration")
    for column in ("seconds", "jobs/s"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["name"], row["version"], row["configuration"],
                      f"{row['seconds']:.2f}", f"{row['per_second']:,.0f}")
    console.print(table)
    for name, value in results["ratios"].items():
        console.print(f"  {name}: {value:.2f}")
    console.print(f"  total time {results['elapsed_s']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per burn-down (20000)")
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="Conveyor's handler calls at once, one process (1000)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds each system may take, set-up included (300)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the peers' virtual environments live ({DEFAULT_CACHE})")
    parser.add_argument("--skip", choices=sorted(PEERS), action="append", default=[],
                        help="leave a peer out (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.concurrency < 1 or args.timeout <= 0:
        parser.error("--jobs, --concurrency and --timeout must be positive")

    started = time.perf_counter()
    pythons = {key: peer_python(args.cache, key) for key in PEERS if key not in args.skip}
    rows: list[dict[str, Any]] = []
    with (
        database(args.dsn) as (url, source),
        psycopg.connect(url, autocommit=True) as conn,
    ):
        env = environment(conn, source)
        if not args.json:
            print_environment(env)
        log(f"Conveyor: {args.jobs:,} jobs, concurrency {args.concurrency} ...")
        rows.append(conveyor_burn_down(url, conn, args.jobs, args.concurrency, args.timeout)
                    | {"key": "conveyor", "name": "Conveyor",
                       "configuration": f"1 process, concurrency {args.concurrency}"})
        log(f"  {rows[-1]['per_second']:,.0f} jobs/s")
        if "pgqueuer" in pythons:
            for batch, key, label in ((PGQUEUER_BEST_BATCH, "pgqueuer", "best"),
                                      (PGQUEUER_DEFAULT_BATCH, "pgqueuer-default", "default")):
                log(f"PgQueuer: {args.jobs:,} jobs, batch size {batch} ...")
                rows.append(run_peer(pythons["pgqueuer"], "pgqueuer", url, conn, args.jobs,
                                     batch, args.timeout)
                            | {"key": key, "name": "PgQueuer",
                               "configuration": f"asyncpg, drain, batch size {batch} ({label})"})
                log(f"  {rows[-1]['per_second']:,.0f} jobs/s")
        if "procrastinate" in pythons:
            log(f"Procrastinate: {args.jobs:,} jobs, concurrency "
                f"{PROCRASTINATE_CONCURRENCY} ...")
            rows.append(run_peer(pythons["procrastinate"], "procrastinate", url, conn, args.jobs,
                                 PROCRASTINATE_CONCURRENCY, args.timeout)
                        | {"key": "procrastinate", "name": "Procrastinate",
                           "configuration": f"psycopg, concurrency {PROCRASTINATE_CONCURRENCY}, "
                           "wait=False"})
            log(f"  {rows[-1]['per_second']:,.0f} jobs/s")
    results = {
        "environment": env,
        "parameters": vars(args) | {"dsn": redact(args.dsn) if args.dsn else None,
                                    "cache": str(args.cache)},
        "systems": rows,
        "ratios": ratios(rows),
        "elapsed_s": time.perf_counter() - started,
    }
    emit(results, args.json, print_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
