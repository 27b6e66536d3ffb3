"""The ceiling: Conveyor's own claim and complete statements driven by pgbench, with
no Python in the loop, to show what PostgreSQL itself allows on this machine.

What it does, for each case (``--clients`` x ``--batch``):

- empties the job table of a fresh schema, inserts N no-op jobs (100,000) into
  one queue with ``insert``, and settles the table (``VACUUM ANALYZE``,
  ``CHECKPOINT``), as ``benchmarks/throughput.py`` does before a burn-down (its
  ``fill`` is reused);
- writes a pgbench script from the statements the worker runs, rendered by
  Conveyor's own ``Queries`` (``src/conveyor/_db/sql/claim.sql`` with its fragment
  ``claim_update.sql``, and ``complete.sql``);
- runs ``pgbench -n -f script -c C -j C -M prepared -t T`` with T = ceil(N / batch
  / C) transactions per client, so that the clients claim the whole queue, and
  times it (wall time of the pgbench process, connections included);
- checks in the database that all N jobs are ``completed`` and none is left
  waiting or active; jobs/s = N / seconds;
- measures what the run cost PostgreSQL with ``benchmarks/_pgcost.py``: WAL bytes
  and server CPU seconds (all postgres processes) per 1,000 jobs, and the CPU time
  of the pgbench process itself. Both server figures include whatever else the
  server does meanwhile, so the server is also watched for 0.5 s before and after
  each case while this benchmark is idle (``idle_before``, ``idle_after``), with a
  warning when it was busy.

One pgbench transaction (one run of the script) is one batch, as two statements,
each its own transaction, as the worker runs them: the claim commits, then a
separate completion transaction completes exactly the jobs that claim returned.

1. the claim: ``claim.sql`` as the worker sends it for a queue without flow
   control, with the worker's parameters: ``queue`` the queue's name, ``limit``
   the batch size (a pgbench variable set with ``\\set``, so a parameter of the
   prepared statement as in the worker: PostgreSQL then plans the claim again
   for each execution, a custom plan, as it does the worker's), and ``lease`` the
   worker's default lease of 30 s (the worker passes its ``lease`` setting; a
   job's ``expire_in`` is longer). Text and interval values are inlined as SQL
   literals, quoted by psycopg; they are this script's constants. Its final
   ``UPDATE ... RETURNING`` becomes a CTE ``claimed``, whose rows are returned as
   they are (the worker puts them in order itself) with two more columns,
   ``claimed_ids`` and ``claimed_attempts``, which only the last row fills: the
   claimed ids and attempts as text arrays (window aggregates). pgbench's
   ``\\aset`` keeps the last row's columns as variables, so pgbench receives every
   claimed job's columns, as the worker does. With ``--ids-only`` the rows are
   instead one aggregate row of the two arrays (``\\gset``): no job rows are sent
   back, which shows what returning them costs.
2. the completion: ``complete.sql`` with ``:claimed_ids::uuid[]`` and
   ``:claimed_attempts::integer[]`` (prepared parameters, sent as text where the
   worker sends binary arrays), so each job is fenced by its attempt as in the
   worker, and ``NULL`` output and progress, which is what the worker sends for
   no-op handlers that report no progress.

What this leaves out of the worker's loop: Python and psycopg, handler calls,
heartbeats, notifications, and the worker's overlap (up to two claims in flight
and a completer on its own connection, batching up to 1,000 outcomes as handlers
finish). A pgbench client runs claim, complete, claim, ... in turn on one
connection; more clients run more of these loops at once.

Everything happens in a fresh schema ``bench_<random>``, dropped at the end. Run it
from the repository root::

    python benchmarks/ceiling.py --dsn postgresql://postgres@127.0.0.1:5432/test
    python benchmarks/ceiling.py --jobs 100000 --clients 1,2 --batch 500,100 --json

The database is ``--dsn``, else ``$DATABASE_URL``, else an embedded PostgreSQL
(``benchmarks/enqueue.py``'s ``database``). pgbench comes from ``$PATH`` or the
PostgreSQL installations under ``/usr/lib/postgresql`` unless ``--pgbench`` says
where it is. With the defaults a run takes well under a minute on a 2-core machine,
most of it inserting the jobs.
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from conveyor import Conveyor
from conveyor._db import statements
from conveyor._db.queries import Queries
from conveyor.config import redact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pgcost import PgCost
from enqueue import database, drop_schema, emit, environment, log, print_environment
from throughput import check_completed, fill, int_list, remaining

QUEUE = "bench-ceiling"
LEASE = timedelta(seconds=30)  # the worker's default lease (runner.py, "lease": 30.0)
IDS = "claimed_ids"
ATTEMPTS = "claimed_attempts"
LIMIT = "limit"
IDLE_CHECK = 0.5  # seconds of watching the server before and after each case
IDLE_WARNING = 0.1  # server cores busy without us that make a case's cost doubtful

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sb]")
_PGBENCH_VARIABLE = re.compile(r"(?<!:):([A-Za-z0-9_]+)")
_FINAL_UPDATE = re.compile(r"^UPDATE .*\Z", re.MULTILINE | re.DOTALL)


# --- the pgbench script -----------------------------------------------------------------


def literal(value: object) -> str:
    """A constant of this script as SQL, quoted by psycopg. Intervals are spelled in
    seconds: psycopg's ``'0:00:30'`` would read to pgbench as variables ``:00``."""
    if isinstance(value, timedelta):
        value = f"{value.total_seconds():g} seconds"
    return sql.Literal(value).as_string()


def substitute(statement: str, values: dict[str, object]) -> str:
    """``statement`` with each psycopg placeholder ``%(name)s`` / ``%(name)b``
    replaced: ``None`` by ``NULL``, a ``Variable`` by the pgbench variable, anything
    else by its literal."""

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise KeyError(f"no value for %({name})s")
        value = values[name]
        if value is None:
            return "NULL"
        if isinstance(value, Variable):
            return f":{value.name}"
        return literal(value)

    return _PLACEHOLDER.sub(replace, statement).replace("%%", "%")


class Variable:
    """A value that pgbench supplies: ``:name`` in the script, a parameter of the
    prepared statement."""

    def __init__(self, name: str) -> None:
        self.name = name


def claim_statement(queries: Queries, *, ids_only: bool) -> tuple[str, str]:
    """The worker's claim for ``QUEUE`` and the pgbench command that ends it
    (``\\aset`` or ``\\gset``), whose variables hold the claimed ids and attempts."""
    text = substitute(queries[statements.CLAIM], {"queue": QUEUE, "limit": Variable(LIMIT),
                                         "lease": LEASE, "visibility": None})
    match = _FINAL_UPDATE.search(text)
    if match is None:
        raise RuntimeError("claim.sql no longer ends with its UPDATE ... RETURNING")
    claimed = f"{text[:match.start()]},\nclaimed AS (\n{match[0].rstrip().rstrip(';')}\n)"
    if ids_only:
        final = (f"SELECT COALESCE(array_agg(id), '{{}}')::text AS {IDS},\n"
                 f"COALESCE(array_agg(attempt), '{{}}')::text AS {ATTEMPTS}\n"
                 "FROM claimed")
        return f"{claimed}\n{final}", "\\gset"
    last = "row_number() OVER () = count(*) OVER ()"
    final = (f"SELECT *,\nCASE WHEN {last} THEN (array_agg(id) OVER ())::text END AS {IDS},\n"
             f"CASE WHEN {last} THEN (array_agg(attempt) OVER ())::text END AS {ATTEMPTS}\n"
             "FROM claimed")
    return f"{claimed}\n{final}", "\\aset"


def complete_statement(queries: Queries) -> str:
    """The worker's completion of the claimed jobs, fenced by attempt, without output
    or progress."""
    return substitute(queries[statements.COMPLETE], {
        "id": Variable(IDS), "attempt": Variable(ATTEMPTS), "output": None, "progress": None})


def pgbench_script(schema: str, batch: int, *, ids_only: bool) -> str:
    queries = Queries(schema)
    claim, end = claim_statement(queries, ids_only=ids_only)
    complete = complete_statement(queries)
    script = "\n".join([
        f"-- Conveyor's claim of up to {batch} jobs of {QUEUE!r}, then their completion:",
        "-- claim.sql and complete.sql as rendered by conveyor._db.queries "
        "(benchmarks/ceiling.py).",
        f"\\set {LIMIT} {batch}",
        claim,
        end,
        complete,
        "",
    ])
    used = set(_PGBENCH_VARIABLE.findall(script))
    expected = {LIMIT, IDS, ATTEMPTS}
    # Words after a single colon are pgbench variables: only ours may appear.
    if used != expected:
        raise RuntimeError(f"pgbench would read variables {sorted(used)}, not {sorted(expected)}")
    return script


# --- running pgbench --------------------------------------------------------------------


def find_pgbench(given: str | None) -> str:
    if given:
        return given
    found = shutil.which("pgbench")
    if found:
        return found
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"),
                       key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if installed:
        return str(installed[-1])
    raise SystemExit("pgbench not found: install PostgreSQL's client tools or pass --pgbench")


def pgbench_figure(output: str, pattern: str) -> float | None:
    match = re.search(pattern, output, re.MULTILINE)
    return float(match[1]) if match else None


def idle_load(conn: psycopg.Connection[Any]) -> dict[str, float | None]:
    """What the server does while this benchmark does nothing, for ``IDLE_CHECK``
    seconds: other sessions' work shows in a case's WAL and server CPU too."""
    with PgCost(conn) as cost:
        time.sleep(IDLE_CHECK)
    return {"cores_busy": cost.cores_busy,
            "wal_bytes_per_s": None if cost.wal_bytes is None else cost.wal_bytes / IDLE_CHECK}


def run_case(
    pgbench: str, url: str, cv: Conveyor, conn: psycopg.Connection[Any], schema: str,
    folder: Path, jobs: int, clients: int, batch: int, *, ids_only: bool,
) -> dict[str, Any]:
    script = folder / f"ceiling_b{batch}.sql"
    script.write_text(pgbench_script(schema, batch, ids_only=ids_only))
    transactions = math.ceil(jobs / batch / clients)
    command = [
        pgbench, "-n", "-f", str(script), "-c", str(clients), "-j", str(clients),
        "-M", "prepared", "-t", str(transactions),
        # Start values, for a first claim that finds nothing (it assigns no variables).
        "-D", f"{IDS}={{}}", "-D", f"{ATTEMPTS}={{}}", url,
    ]
    fill(cv, conn, schema, QUEUE, jobs)
    idle = [idle_load(conn)]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with PgCost(conn) as cost:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench exited with {done.returncode}:\n{done.stderr}{done.stdout}")
    idle.append(idle_load(conn))
    left = remaining(conn, schema, QUEUE)
    if left:
        raise RuntimeError(f"{left} of {jobs} jobs not completed after {transactions} "
                           f"transactions of {clients} client(s)")
    check_completed(cv, QUEUE, jobs)
    client_cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {
        "clients": clients, "batch": batch, "jobs": jobs,
        "transactions_per_client": transactions,
        "seconds": seconds, "per_second": jobs / seconds,
        "pgbench_tps": pgbench_figure(done.stdout, r"^tps = ([\d.]+)"),
        "pgbench_latency_ms": pgbench_figure(done.stdout, r"^latency average = ([\d.]+) ms"),
        "wal_bytes": cost.wal_bytes,
        "server_cpu_seconds": cost.cpu_seconds,
        "server_cores_busy": cost.cores_busy,
        "server_cpu_unavailable": cost.cpu_unavailable,
        **cost.per_1000(jobs),
        "pgbench_cpu_seconds_per_1000": client_cpu * 1000 / jobs,
        "idle_before": idle[0], "idle_after": idle[1],
        "command": shlex.join([*command[:-1], redact(url)]),
    }


# --- report -----------------------------------------------------------------------------


def print_report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    cases = results["cases"]
    form = "job rows returned" if not results["parameters"]["ids_only"] else "ids only"
    table = Table(title=f"Ceiling: claim.sql + complete.sql from pgbench ({form}), "
                  f"{cases[0]['jobs']:,} no-op jobs", title_justify="left")
    for column in ("clients", "batch", "seconds", "jobs/s", "WAL bytes / 1k jobs",
                   "server CPU s / 1k jobs", "server cores busy", "pgbench CPU s / 1k jobs"):
        table.add_column(column, justify="right")

    def number(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for row in cases:
        table.add_row(str(row["clients"]), str(row["batch"]), f"{row['seconds']:.2f}",
                      f"{row['per_second']:,.0f}", number(row["wal_bytes_per_1000"], ",.0f"),
                      number(row["cpu_seconds_per_1000"], ".3f"),
                      number(row["server_cores_busy"], ".2f"),
                      f"{row['pgbench_cpu_seconds_per_1000']:.3f}")
    console.print(table)
    for row in cases:
        busy = [idle["cores_busy"] for idle in (row["idle_before"], row["idle_after"])
                if idle["cores_busy"] is not None]
        if busy and max(busy) > IDLE_WARNING:
            console.print(f"  warning: the server kept {max(busy):.2f} cores busy without this "
                          f"benchmark around the case of {row['clients']} client(s), batch "
                          f"{row['batch']}: its WAL and server CPU include other work")
    unavailable = {row["server_cpu_unavailable"] for row in cases} - {None}
    for reason in unavailable:
        console.print(f"  server CPU not measured: {reason}")
    console.print(f"  {cases[0]['command']}")
    console.print(f"  total time {results['elapsed_s']:.1f} s")


# --- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs per case (100000)")
    parser.add_argument("--batch", type=int_list, default=[500],
                        help="jobs per claim; each value is a case (500, the worker's largest)")
    parser.add_argument("--clients", type=int_list, default=[1, 2],
                        help="pgbench clients (connections and threads); each is a case (1,2)")
    parser.add_argument("--ids-only", action="store_true",
                        help="the claim returns one row of ids and attempts, not the job rows")
    parser.add_argument("--pgbench", help="the pgbench program (default: found on $PATH)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be positive")
    pgbench = find_pgbench(args.pgbench)

    started = time.perf_counter()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    cases: list[dict[str, Any]] = []
    with (
        database(args.dsn) as (url, source),
        psycopg.connect(url, autocommit=True) as conn,
        tempfile.TemporaryDirectory(prefix="conveyor-ceiling-") as folder,
    ):
        env = environment(conn, source)
        env["pgbench"] = subprocess.run([pgbench, "--version"], capture_output=True, text=True,
                                        check=True).stdout.strip()
        if not args.json:
            print_environment(env)
        try:
            with Conveyor(url, schema=schema) as cv:
                for batch in args.batch:
                    for clients in args.clients:
                        log(f"ceiling: {args.jobs:,} jobs, batch {batch}, "
                            f"{clients} client(s) ...")
                        cases.append(run_case(pgbench, url, cv, conn, schema, Path(folder),
                                              args.jobs, clients, batch, ids_only=args.ids_only))
                        log(f"  {cases[-1]['per_second']:,.0f} jobs/s")
                script = pgbench_script(schema, args.batch[0], ids_only=args.ids_only)
        finally:
            drop_schema(conn, schema)
    results = {
        "environment": env,
        "parameters": vars(args) | {"dsn": redact(args.dsn) if args.dsn else None},
        "cases": cases,
        "script": script,
        "elapsed_s": time.perf_counter() - started,
    }
    emit(results, args.json, print_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
