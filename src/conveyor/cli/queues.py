"""The commands about whole queues: ``queues``, ``stats`` and ``purge``."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from conveyor.cli.shared import (
    DsnOption,
    JsonOption,
    QueueOption,
    SchemaOption,
    StatesOption,
    YesOption,
    client,
    confirm,
    console,
    errors,
    print_json,
)
from conveyor.client import Conveyor
from conveyor.job import JobState

_PURGE_PAGE = 1000
_DRAIN_POLL = 0.5
_SNAPSHOT_STATES = ("created", "retry", "active", "completed", "cancelled", "failed")
"""The states a statistics snapshot counts (``QueueStats``): not the waiting steps
of flows."""


def _lag(lag: timedelta | None) -> str:
    return "-" if lag is None else f"{lag.total_seconds():.1f} s"


def queues(as_json: JsonOption = False, dsn: DsnOption = None,
           schema: SchemaOption = None) -> None:
    """List the queues as they are now, with their jobs' counts, lag and pause.

    Per queue: jobs queued (created and due, or retrying), scheduled (due later),
    running and failed, the jobs finished in the last hour, the lag of the oldest
    due job, and until when it is paused.

    Example: conveyor queues --json
    """
    with client(dsn, schema) as cv:
        found = cv.queue_summaries()
    if as_json:
        print_json(found)
        return
    table = Table(Column("queue", no_wrap=True), "queued", "scheduled", "active", "failed",
                  "completed (1 h)", "failed (1 h)", "lag", "paused until (UTC)")
    for s in found:
        table.add_row(s.name, str(s.waiting), str(s.scheduled), str(s.active), str(s.failed),
                      str(s.completed_last_hour), str(s.failed_last_hour), _lag(s.lag),
                      "-" if s.paused_until is None else f"{s.paused_until:%Y-%m-%d %H:%M:%S}")
    console.print(table)


def stats(
    queue: QueueOption = None,
    since: Annotated[
        float, typer.Option(min=1, help="Seconds back to read snapshots from.")
    ] = 3600,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Show the statistics snapshots the maintenance leader took recently, oldest first.

    Example: conveyor stats --queue emails --since 600
    """
    with client(dsn, schema) as cv:
        found = cv.get_stats(queue, since=since)
    if as_json:
        print_json(found)
        return
    table = Table("taken (UTC)", Column("queue", no_wrap=True), *_SNAPSHOT_STATES, "lag")
    for s in found:
        table.add_row(f"{s.taken_at:%Y-%m-%d %H:%M:%S}", s.queue,
                      *(str(getattr(s, state)) for state in _SNAPSHOT_STATES), _lag(s.lag))
    console.print(table)
    if not found:
        console.print("no snapshots yet: a running worker's maintenance leader takes them")


def purge(
    queue: Annotated[str, typer.Argument(help="The queue whose jobs to delete.")],
    state: StatesOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Delete a queue's jobs (all, or those in the given states), keeping the queue.

    Its settings, pauses and schedules stay; running jobs are deleted too (their
    outcome is then dropped), so pass --state to spare them.

    Example: conveyor purge emails --state completed --state failed --yes
    """
    states = list(state or JobState)
    with client(dsn, schema) as cv:
        _require_queue(cv, queue)
        counts = cv.queue_counts(queue)
        total = sum(counts[s] for s in states)
        if total and not yes:
            confirm(f"Delete the {total} jobs of queue {queue} in state "
                    f"{'/'.join(states)}? The queue and its settings stay")
        deleted = 0
        with Progress(TextColumn("deleting"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors, disable=not total) as progress:
            task = progress.add_task("deleting", total=total)
            # Jobs sent while it runs may stay: it deletes as many pages as it counted.
            for _ in range(math.ceil(total / _PURGE_PAGE)):
                page = cv.find_jobs(queue, state=states, limit=_PURGE_PAGE)
                if not page.jobs:
                    break
                deleted += cv.delete(page.jobs)
                progress.advance(task, len(page.jobs))
    if as_json:
        print_json({"queue": queue, "deleted": deleted})
    else:
        console.print(f"deleted {deleted} jobs of [bold]{queue}[/]")


def drain(
    queue: Annotated[str, typer.Argument(help="The queue to watch.")],
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait at most.")
    ] = 3600.0,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Wait until a queue has no job due or running.

    A progress bar shows the jobs handled meanwhile (running workers do the work;
    this only watches). Jobs scheduled for later do not hold it up. Exits 1 if the
    queue is not drained in time.

    Example: conveyor drain nightly-import --timeout 600 && echo done
    """
    with client(dsn, schema) as cv:
        _require_queue(cv, queue)
        left = _due_or_running(cv, queue)
        deadline = time.monotonic() + timeout
        with Progress(TextColumn("draining"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=errors, disable=not left) as progress:
            task = progress.add_task("draining", total=left)
            while left and time.monotonic() < deadline:
                time.sleep(_DRAIN_POLL)
                now = _due_or_running(cv, queue)
                # Jobs sent meanwhile grow the total rather than push the bar back.
                total = max(progress.tasks[0].total or 0, progress.tasks[0].completed + now)
                progress.update(task, total=total, completed=total - now)
                left = now
    if as_json:
        print_json({"queue": queue, "drained": not left, "left": left})
    elif left:
        errors.print(f"[red]error:[/] {left} jobs of {queue} still due or running after "
                     f"{timeout:g} s; are workers running for it?")
    else:
        console.print(f"[bold]{queue}[/] is drained")
    if left:
        raise typer.Exit(1)


def _require_queue(cv: Conveyor, queue: str) -> None:
    """Exit with code 1 when ``queue`` does not exist."""
    if cv.get_queue(queue) is None:
        errors.print(f"[red]error:[/] no queue named {queue}; `conveyor queues` lists them")
        raise typer.Exit(1)


def _due_or_running(cv: Conveyor, queue: str) -> int:
    """Jobs of ``queue`` that are due (waiting with their start passed) or running."""
    summary = next((s for s in cv.queue_summaries() if s.name == queue), None)
    if summary is None:
        return 0
    due = summary.waiting if summary.lag is not None else 0
    return due + summary.active


def register(app: typer.Typer) -> None:
    for command in (queues, stats, purge, drain):
        app.command()(command)
