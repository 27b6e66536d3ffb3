"""The commands that send and read jobs: ``send``, ``jobs`` and ``job``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from conveyor._ops import dependencies
from conveyor._ops.dependencies import Link
from conveyor.cli.shared import (
    DsnOption,
    JsonOption,
    QueueOption,
    SchemaOption,
    StatesOption,
    client,
    console,
    errors,
    parse_json,
    print_json,
    record_fields,
)
from conveyor.client import Conveyor
from conveyor.errors import InvalidArgument, InvalidPayload
from conveyor.job import Job, JobState
from conveyor.job import Progress as JobProgress

_CHUNK = 5000
"""Lines of a ``--file`` sent per insert (each chunk is one transaction)."""


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The items of a JSON-lines file with their line numbers; blank lines are skipped."""
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidPayload(f"{path}, line {number}: not valid JSON ({exc})") from None
            if not isinstance(item, dict):
                raise InvalidPayload(
                    f'{path}, line {number}: each line must be an object like {{"data": {{...}}, '
                    f'"priority": 5}}, not {type(item).__name__}')
            yield number, item


def _send_file(dsn: str | None, schema: str | None, queue: str, path: Path) -> int:
    """Insert the file's items in chunks, behind a progress bar; every line is read
    once beforehand, so a line that is not a JSON object sends nothing."""
    total = sum(1 for _ in _lines(path))
    inserted = 0
    with client(dsn, schema) as cv, Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task("sending", total=total)
        chunk: list[dict[str, Any]] = []
        first_line = 1
        for number, item in _lines(path):
            chunk.append(item)
            if len(chunk) == _CHUNK:
                inserted += _insert_chunk(cv, queue, chunk, first_line, inserted)
                progress.advance(task, len(chunk))
                chunk, first_line = [], number + 1
        if chunk:
            inserted += _insert_chunk(cv, queue, chunk, first_line, inserted)
            progress.advance(task, len(chunk))
    return inserted


def _insert_chunk(
    cv: Conveyor, queue: str, chunk: list[dict[str, Any]], first_line: int, sent: int
) -> int:
    """One chunk in one transaction; a refused item says where it is and what was sent."""
    try:
        return cv.insert(queue, chunk)
    except InvalidArgument as exc:
        raise type(exc)(f"{exc} (in the chunk from line {first_line}; {sent} jobs of the "
                        "lines before were sent)") from None


def send(
    queue: Annotated[str, typer.Argument(help="The queue (created on first use).")],
    data: Annotated[
        Any, typer.Argument(parser=parse_json, metavar="[DATA_JSON]",
                            help="The job's data, as JSON (default: null).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", exists=True, dir_okay=False, readable=True,
                     help="Insert every line of this JSON-lines file: each line an object "
                     'with "data" and any send options, e.g. {"data": {"id": 1}, '
                     '"priority": 5}.'),
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    delay: Annotated[
        float | None, typer.Option(min=0, help="Seconds before the job may start.")
    ] = None,
    retry_limit: Annotated[
        int | None, typer.Option(min=0, help="Retries after the first attempt.")
    ] = None,
    singleton_key: Annotated[
        str | None, typer.Option(help="The key the queue's policy counts by.")
    ] = None,
    group_key: Annotated[
        str | None, typer.Option(help="What the job belongs to (a tenant, a channel).")
    ] = None,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Send one job and print its id, or insert a JSON-lines file of jobs with --file.

    Examples: conveyor send emails '{"to": "ada@example.com"}' --priority 5;
    conveyor send embed --file chunks.jsonl
    """
    if file is not None:
        given = [name for name, value in (
            ("DATA_JSON", data), ("--priority", priority), ("--delay", delay),
            ("--retry-limit", retry_limit), ("--singleton-key", singleton_key),
            ("--group-key", group_key)) if value is not None]
        if given:
            raise typer.BadParameter(
                f"--file takes each job's data and options from its lines; leave out "
                f"{', '.join(given)}", param_hint="'--file'")
        inserted = _send_file(dsn, schema, queue, file)
        if as_json:
            print_json({"queue": queue, "inserted": inserted})
        else:
            console.print(f"inserted {inserted} jobs into [bold]{queue}[/]")
        return
    with client(dsn, schema) as cv:
        job_id = cv.send(queue, data, priority=priority, start_after=delay,
                         retry_limit=retry_limit, singleton_key=singleton_key,
                         group_key=group_key)
    if as_json:
        print_json({"queue": queue, "id": job_id})
    elif job_id is None:
        console.print("not sent: the queue's policy (or a throttle) turned the job away")
    else:
        typer.echo(job_id)


def _key(job: Job) -> str:
    return " / ".join(k for k in (job.singleton_key, job.group_key) if k)


def jobs(
    queue: QueueOption = None,
    state: StatesOption = None,
    key: Annotated[
        str | None, typer.Option(help="Only jobs with this singleton key or group key.")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="A job id, or text in the data, output or error.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs to show.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The next_cursor of an earlier page (with --json).")
    ] = None,
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """List jobs, newest first, filtered by queue, state, key or text.

    Example: conveyor jobs --queue emails --state failed --state retry
    """
    with client(dsn, schema) as cv:
        page = cv.find_jobs(queue, state=state, key=key, search=search, limit=limit,
                            cursor=cursor)
    if as_json:
        print_json({"jobs": page.jobs, "next_cursor": page.next_cursor})
        return
    # The id whole, to copy; the other columns give way.
    table = Table(Column("id", no_wrap=True), "queue", "state", "attempt", "created (UTC)",
                  "key", "error")
    for job in page:
        error = "" if job.error is None else str(job.error.get("message", ""))
        table.add_row(job.id, job.queue, job.state.value, str(job.attempt),
                      f"{job.created_at:%Y-%m-%d %H:%M:%S}", escape(_key(job)),
                      escape(error.splitlines()[0] if error else ""))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


def _progress(progress: JobProgress) -> str:
    percent = None if progress.percent is None else f"{progress.percent:g}%"
    return " ".join(part for part in (percent, progress.message) if part)


def _links(cv: Conveyor, job: Job, *, dependents: bool = False) -> list[Link]:
    return cv.run_operation(dependencies.links(cv.context, job.id, dependents=dependents))


def _links_table(links: list[Link]) -> Table:
    """A job's edges, one row each: the job at the other end, the ref the dependent
    reads its output by, the dependent's policy should it fail, and whether it
    finished (settled)."""
    table = Table("ref", Column("id", no_wrap=True), "queue", "state", "on failure", "settled")
    for link in links:
        table.add_row(escape(link.ref or "-"), link.job.id, link.job.queue,
                      link.job.state.value, link.on_failure, "yes" if link.settled else "no")
    return table


def _waits_for(job: Job, links: list[Link]) -> str:
    """What a waiting step still waits for, in words."""
    pending = sum(not link.settled for link in links)
    if pending:
        noun = "dependency" if len(links) == 1 else "dependencies"
        return f"{pending} of {len(links)} {noun} to finish"
    # Finished dependencies, but a queue policy that could turn it away: maintenance
    # releases it once no other job holds its key.
    return f"its key to be free ({job.policy.value} policy); its dependencies finished"


def job(
    id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Show one job: its state, data, output, progress, every attempt's error, and
    the jobs it depends on and that depend on it (steps of a flow).

    Example: conveyor job 0193b3c5-8a9e-7c3e-9d4f-2a1b3c4d5e6f
    """
    with client(dsn, schema) as cv:
        found = cv.get_job(id)
        if found is None:
            errors.print(f"[red]error:[/] no job with id {escape(id)}")
            raise typer.Exit(1)
        waits, waited_by = _links(cv, found), _links(cv, found, dependents=True)
    if as_json:
        print_json({**record_fields(found),
                    "dependencies": [link._asdict() for link in waits],
                    "dependents": [link._asdict() for link in waited_by]})
        return
    fields = Table.grid(padding=(0, 2))
    fields.add_row("id", found.id)
    fields.add_row("queue", found.queue)
    fields.add_row("state", found.state.value)
    fields.add_row("attempt", f"{found.attempt} (retries {found.retry_count} of "
                   f"{found.retry_limit})")
    fields.add_row("priority", str(found.priority))
    fields.add_row("keys", escape(_key(found)) or "-")
    for label, at in (("created", found.created_at), ("starts after", found.start_after),
                      ("started", found.started_at), ("finished", found.completed_at)):
        if at is not None:
            fields.add_row(label, f"{at:%Y-%m-%d %H:%M:%S} UTC")
    if found.progress:
        fields.add_row("progress", escape(_progress(found.progress)))
    if found.state is JobState.WAITING:
        fields.add_row("waits for", _waits_for(found, waits))
    console.print(fields)
    for label, links in (("dependencies", waits), ("dependents", waited_by)):
        if links:
            console.print(f"[bold]{label}[/]")
            console.print(_links_table(links))
    for label, value in (("data", found.data), ("output", found.output)):
        console.print(f"[bold]{label}[/]")
        console.print_json(data=value)
    for number, error in enumerate(found.errors, start=1):
        console.print(f"[bold]error {number} of {len(found.errors)}[/]: "
                      f"{escape(str(error.get('type', '')))}: "
                      f"{escape(str(error.get('message', '')))}")
        if error.get("traceback"):
            console.print(escape(str(error["traceback"])).rstrip(), highlight=False)


def register(app: typer.Typer) -> None:
    for command in (send, jobs, job):
        app.command()(command)
