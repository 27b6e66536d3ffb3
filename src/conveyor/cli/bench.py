"""``conveyor bench``: a quick throughput check of the database at hand, on a
throwaway queue that is deleted afterwards."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Annotated

import psycopg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from conveyor.cli.shared import (
    DataDirOption,
    DsnOption,
    JsonOption,
    SchemaOption,
    console,
    database,
    errors,
    print_json,
)
from conveyor.client import Conveyor
from conveyor.job import Job, JobState

_SETTINGS = ("server_version", "fsync", "synchronous_commit", "shared_buffers")
"""What a figure depends on, printed with it: the same jobs run many times faster
with fsync or synchronous_commit off."""
_POLL_SECONDS = 0.1
_STOP_SECONDS = 30.0


async def _no_op(job: Job) -> None:
    """The benchmark's handler: it measures the queue, not the work."""


def _remaining(cv: Conveyor, queue: str) -> int:
    counts = cv.queue_counts(queue)
    return counts[JobState.CREATED] + counts[JobState.RETRY] + counts[JobState.ACTIVE]


def _drain(cv: Conveyor, url: str, queue: str, jobs: int, concurrency: int,
           timeout: float) -> tuple[float, int]:
    """Run a worker on ``queue`` until no job is left or ``timeout`` passes; the
    seconds it took and the jobs left."""
    runner = Conveyor(url, schema=cv.schema)
    runner.work(queue, _no_op, concurrency=concurrency)
    thread = threading.Thread(
        target=runner.run, name="conveyor-bench",
        kwargs={"queues": [queue], "handle_signals": False, "maintenance": False},
        daemon=True)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    thread.start()
    left = jobs
    try:
        with Progress(TextColumn("working"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors) as progress:
            task = progress.add_task("working", total=jobs)
            while left and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
                left = _remaining(cv, queue)
                progress.update(task, completed=jobs - left)
        return time.perf_counter() - started, left
    finally:
        # stop() reaches the worker once it runs; until then, ask again.
        stop_by = time.monotonic() + _STOP_SECONDS
        while thread.is_alive() and time.monotonic() < stop_by:
            runner.stop()
            thread.join(0.5)


def _server(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in _SETTINGS}


def bench(
    jobs: Annotated[int, typer.Option(min=1, max=1_000_000, help="Jobs to send and run.")]
    = 10_000,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Handler calls at once.")] = 50,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds the worker may take before it stops.")] = 300,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Measure the throughput of this database with no-op jobs on a throwaway queue.

    It bulk-inserts the jobs, runs a worker until they are done, prints both rates
    with the PostgreSQL version and the settings they depend on (fsync,
    synchronous_commit, shared_buffers), and deletes the queue. The benchmarks
    under benchmarks/ in the repository measure more (docs/benchmarks.md).

    With no database configured it runs on the embedded PostgreSQL, like demo.

    Example: conveyor bench --jobs 20000 --concurrency 100
    """
    queue = f"bench.{uuid.uuid4().hex[:12]}"
    with database(dsn, data_dir, announce=errors if as_json else console) as url, \
            Conveyor(url, schema=schema) as cv:
        server = _server(url)
        try:
            started = time.perf_counter()
            inserted = cv.insert(queue, ({"data": None} for _ in range(jobs)))
            insert_seconds = time.perf_counter() - started
            work_seconds, left = _drain(cv, url, queue, inserted, concurrency, timeout)
        finally:
            cv.delete_queue(queue)
    done = inserted - left
    result = {
        "jobs": inserted, "concurrency": concurrency,
        "insert_seconds": round(insert_seconds, 3),
        "inserted_per_second": round(inserted / insert_seconds),
        "work_seconds": round(work_seconds, 3), "completed": done,
        "completed_per_second": round(done / work_seconds),
        "postgresql": server,
    }
    if as_json:
        print_json(result)
    else:
        console.print("PostgreSQL " + server["server_version"] + ", " + ", ".join(
            f"{name}={server[name]}" for name in _SETTINGS[1:]))
        console.print(f"inserted {inserted} jobs in {insert_seconds:.2f} s "
                      f"([bold]{result['inserted_per_second']:,} jobs/s[/])")
        console.print(f"completed {done} jobs in {work_seconds:.2f} s with concurrency "
                      f"{concurrency} ([bold]{result['completed_per_second']:,} jobs/s[/])")
    if left:
        errors.print(f"[red]error:[/] {left} jobs were still waiting after {timeout:g} s")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(bench)
