"""The command line: ``conveyor migrate``, ``demo``, ``dev``, ``worker``,
``dashboard``, ``pause``, ``resume``, ``schedules``, ``schedule``, ``unschedule``,
``pause-schedule``, ``resume-schedule``, ``run-schedule`` here; ``send``, ``jobs``,
``job`` (``jobs.py``), ``retry``, ``cancel``, ``delete`` (``actions.py``),
``queues``, ``stats``, ``purge`` (``queues.py``) and ``bench`` (``bench.py``)
registered from their modules; ``workers.py`` supervises worker processes and
``demo.py`` runs the demo."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import typer
from rich.markup import escape
from rich.table import Column, Table

from conveyor._ops.schedules import Missed
from conveyor.cli import actions as action_commands
from conveyor.cli import bench as bench_commands
from conveyor.cli import demo as demonstration
from conveyor.cli import jobs as job_commands
from conveyor.cli import queues as queue_commands
from conveyor.cli import workers as supervisor
from conveyor.cli.shared import (
    DataDirOption,
    DsnOption,
    JsonOption,
    SchemaOption,
    client,
    console,
    errors,
    parse_json,
    print_json,
)
from conveyor.cli.shared import database as _database
from conveyor.client import Conveyor
from conveyor.errors import ConveyorError
from conveyor.job import Schedule
from conveyor.worker.options import WORKER_DEFAULTS

app = typer.Typer(
    name="conveyor",
    help="Conveyor: a job queue for Python that lives entirely in PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
for commands in (job_commands, action_commands, queue_commands, bench_commands):
    commands.register(app)


@app.command()
def migrate(dsn: DsnOption = None, schema: SchemaOption = None) -> None:
    """Bring the database schema to this version of Conveyor (safe to run anywhere, any time)."""
    with Conveyor(dsn, schema=schema, migrate=False) as cv:
        result = cv.migrate()
    applied = ", ".join(map(str, result.applied)) or "none"
    console.print(
        f"schema [bold]{result.schema}[/] is at version {result.version_after} "
        f"(applied: {applied})"
    )


@app.command()
def demo(
    dsn: DsnOption = None,
    schema: SchemaOption = None,
    data_dir: DataDirOption = None,
    jobs: Annotated[
        int, typer.Option(min=2, max=100_000, help="Documents in the first bulk send.")
    ] = 500,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The dashboard's port.")] = 8080,
    keep_running: Annotated[
        bool, typer.Option(help="Go on after the tour, until Ctrl-C (to explore the dashboard).")
    ] = False,
) -> None:
    """Show Conveyor at work, live, with the dashboard.

    A bulk send and a stream of jobs, a retry with backoff, a dead letter, a cron
    tick and a rate-limited queue. With no database configured it runs on an
    embedded PostgreSQL whose data stays for the next run. It ends by itself once
    the tour is complete; Ctrl-C stops it cleanly at any time.
    """
    with _database(dsn, data_dir) as url:
        demonstration.run(url, console, jobs=jobs, keep_running=keep_running, port=port,
                  schema=schema)


@app.command()
def dev(data_dir: DataDirOption = None) -> None:
    """Start only the embedded PostgreSQL and print its URL, until Ctrl-C."""
    with _database(None, data_dir, embedded=True) as url:
        console.print(f"DATABASE_URL={url}")
        console.print("Press Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


@app.command()
def worker(
    target: Annotated[
        str, typer.Argument(help="Where your client is: 'package.module:attribute'.")
    ],
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues to run (default: all registered).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Handler calls at once per queue, for every queue.")
    ] = None,
    processes: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes to run (each runs every queue).")
    ] = 1,
    shutdown_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds running jobs may finish after SIGTERM.")
    ] = WORKER_DEFAULTS["shutdown_timeout"],
    poll_only: Annotated[
        bool, typer.Option(help="Poll without LISTEN/NOTIFY (PgBouncer in transaction mode).")
    ] = not WORKER_DEFAULTS["listen"],
    json_logs: Annotated[bool, typer.Option(help="Log one JSON object per line.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve Prometheus metrics on PORT "
                     "(with --processes N, process i on PORT+i)."),
    ] = None,
    metrics_addr: Annotated[
        str, typer.Option(help="Address the metrics listen on (0.0.0.0 for a pod's scraper).")
    ] = "127.0.0.1",
) -> None:
    """Run the handlers registered on a client until SIGTERM or Ctrl-C.

    Example: conveyor worker myapp.tasks:cv --queues emails,reports --concurrency 10
    """
    supervisor.configure_logging(json_logs, log_level)
    if processes > 1:
        raise SystemExit(supervisor.supervise(processes, metrics_port))
    client = supervisor.load_client(target)
    if metrics_port is not None:
        supervisor.serve_metrics(client, metrics_port, metrics_addr)
    supervisor.run_client(
        client,
        queues=None if queues is None else [q.strip() for q in queues.split(",") if q.strip()],
        concurrency=concurrency,
        shutdown_timeout=shutdown_timeout,
        listen=not poll_only,
    )


@app.command()
def dashboard(
    dsn: DsnOption = None,
    schema: SchemaOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(envvar="CONVEYOR_DASHBOARD_TOKEN", show_envvar=True,
                     help="Require this token (bearer token, or sign-in form)."),
    ] = None,
    basic_auth: Annotated[
        str | None,
        typer.Option(envvar="CONVEYOR_DASHBOARD_BASIC_AUTH", show_envvar=True,
                     help="Require HTTP basic auth, given as USER:PASSWORD."),
    ] = None,
    read_only: Annotated[bool, typer.Option(help="Show everything, change nothing.")] = False,
    frame_ancestors: Annotated[
        str,
        typer.Option(envvar="CONVEYOR_DASHBOARD_FRAME_ANCESTORS", show_envvar=True,
                     help="Pages that may show it in a frame, as CSP sources "
                          "(\"'self' https://admin.example.com\"); none by default."),
    ] = "'none'",
    session_hours: Annotated[
        float, typer.Option(min=0.1, max=8784, help="How long a sign-in lasts.")
    ] = 12.0,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Larger request bodies are refused (413).")
    ] = 4 * 1024 * 1024,
    root_path: Annotated[
        str, typer.Option(help="The path prefix a proxy serves it under and strips (/conveyor).")
    ] = "",
) -> None:
    """Serve the dashboard, the REST API (/api, spec at /api/docs) and /metrics.

    It listens on 127.0.0.1 unless told otherwise; on any other address it needs
    --token or --basic-auth. With no database configured it opens the embedded one.

    Example: conveyor dashboard --port 8080 --read-only
    """
    try:
        import uvicorn

        from conveyor.web import WebSettings, create_app
        from conveyor.web.security import is_loopback
    except ImportError as exc:
        errors.print(f"[red]error:[/] the dashboard needs the web extra "
                     f"(pip install 'conveyor[web]'): {exc}")
        raise typer.Exit(2) from None
    try:
        settings = WebSettings(token=token, basic_auth=basic_auth, read_only=read_only,
                               frame_ancestors=frame_ancestors, max_body_bytes=max_body_bytes,
                               session_seconds=session_hours * 3600)
    except ConveyorError as exc:
        errors.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not is_loopback(host) and not settings.credentials.required:
        errors.print(f"[red]error:[/] refusing to serve on {host} without sign-in: anyone who "
                     "can reach it could retry, cancel or delete jobs; pass --token or "
                     "--basic-auth (or --host 127.0.0.1)")
        raise typer.Exit(2)
    with _database(dsn, data_dir) as url:
        app_ = create_app(dsn=url, schema=schema, settings=settings)
        console.print(f"Dashboard at [bold]http://{host}:{port}{root_path}/[/]"
                      f"{' (read-only)' if read_only else ''}")
        uvicorn.run(app_, host=host, port=port, root_path=root_path, log_level="warning")


GroupOption = Annotated[
    str | None, typer.Option("--group", help="Only this group key of the queue.")
]


@app.command()
def pause(
    queue: Annotated[str, typer.Argument(help="The queue to pause.")],
    seconds: Annotated[
        float | None,
        typer.Option("--for", min=0.001, help="Seconds to pause for (default: until resumed)."),
    ] = None,
    group: GroupOption = None,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Stop claiming a queue's jobs (or one group key's).

    Running jobs finish; sends still queue up.

    Example: conveyor pause send-message --for 300
    """
    with client(dsn, schema) as cv:
        if group is None:
            until = cv.pause_queue(queue, seconds).paused_until
        else:
            until = cv.pause_group(queue, group, seconds).paused_until
    what = queue if group is None else f"{queue} (group {group})"
    ending = "until resumed" if seconds is None else f"until {until:%Y-%m-%d %H:%M:%S} UTC"
    console.print(f"paused [bold]{what}[/] {ending}")


@app.command()
def resume(
    queue: Annotated[str, typer.Argument(help="The queue to resume.")],
    group: GroupOption = None,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """End the pause of a queue (or of one group key); idle workers wake at once."""
    with client(dsn, schema) as cv:
        if group is None:
            cv.resume_queue(queue)
        else:
            cv.resume_group(queue, group)
    console.print(f"resumed [bold]{queue if group is None else f'{queue} (group {group})'}[/]")


@app.command()
def schedules(
    as_json: JsonOption = False,
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """List the cron schedules: their next ticks (or paused) and last runs."""
    with client(dsn, schema) as cv:
        found = cv.get_schedules()
    if as_json:
        print_json(found)
        return
    # The last job's id is in --json; its state keeps the table narrow.
    table = Table("name", "queue", Column("cron", no_wrap=True), "tz", "missed",
                  "next tick (UTC)", "last run (UTC)", "last job")
    for s in found:
        last_job = "-" if s.last_job_id is None else (s.last_job_state or "gone")
        table.add_row(s.name, s.queue, s.cron, s.tz, s.missed,
                      _next_tick(s), _utc(s.last_tick_at), last_job)
    console.print(table)


def _utc(at: datetime | None) -> str:
    return "-" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def _next_tick(saved: Schedule) -> str:
    return "paused" if saved.paused else _utc(saved.next_tick)


@app.command()
def schedule(
    name: Annotated[str, typer.Argument(help="The schedule's name (and default queue).")],
    cron: Annotated[
        str, typer.Argument(help="5 cron fields, or 6 with seconds first, e.g. '30 2 * * *'.")
    ],
    data: Annotated[
        Any, typer.Option(parser=parse_json, metavar="JSON", help="The jobs' data, as JSON.")
    ] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of the cron fields.")] = "UTC",
    queue: Annotated[
        str | None, typer.Option(help="Queue of the jobs (default: the schedule's name).")
    ] = None,
    missed: Annotated[
        str, typer.Option(help="After downtime: 'once' (one job for the missed ticks) or 'skip'.")
    ] = "once",
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Create or replace a cron schedule: one job per tick, however many workers run.

    Example: conveyor schedule nightly-report '0 2 * * *' --tz Europe/Berlin --data '{"kind": 1}'
    """
    with client(dsn, schema) as cv:
        saved = cv.schedule(name, cron, data, tz=tz, queue=queue,
                            missed=cast(Missed, missed))  # checked by schedule
    ending = ("paused: no tick until resume-schedule" if saved.paused
              else f"next tick {_utc(saved.next_tick)} UTC")
    console.print(
        f"scheduled [bold]{saved.name}[/] ({saved.cron}, {saved.tz}) into queue "
        f"{saved.queue}; {ending}"
    )


@app.command()
def unschedule(
    name: Annotated[str, typer.Argument(help="The schedule to remove.")],
    dsn: DsnOption = None,
    schema: SchemaOption = None,
) -> None:
    """Remove a cron schedule; jobs it already sent stay in their queue."""
    with client(dsn, schema) as cv:
        existed = cv.unschedule(name)
    if not existed:
        errors.print(f"no schedule named [bold]{name}[/]")
        raise typer.Exit(1)
    console.print(f"unscheduled [bold]{name}[/]")


ScheduleName = Annotated[str, typer.Argument(help="The schedule's name.")]


@app.command()
def pause_schedule(name: ScheduleName, dsn: DsnOption = None, schema: SchemaOption = None) -> None:
    """Stop a schedule's ticks until resume-schedule; jobs it sent go on."""
    with client(dsn, schema) as cv:
        cv.pause_schedule(name)
    console.print(f"paused schedule [bold]{name}[/]")


@app.command()
def resume_schedule(
    name: ScheduleName, dsn: DsnOption = None, schema: SchemaOption = None,
) -> None:
    """Tick again from the next tick after now; ticks missed while paused send nothing."""
    with client(dsn, schema) as cv:
        resumed = cv.resume_schedule(name)
    console.print(f"resumed schedule [bold]{name}[/]; next tick {_utc(resumed.next_tick)} UTC")


@app.command()
def run_schedule(name: ScheduleName, dsn: DsnOption = None, schema: SchemaOption = None) -> None:
    """Send a schedule's job now, as a tick would; prints the job's id.

    Example: conveyor run-schedule nightly-report
    """
    with client(dsn, schema) as cv:
        job_id = cv.run_schedule(name)
    if job_id is None:
        errors.print("the queue's policy turned the job away; nothing was sent")
        raise typer.Exit(1)
    typer.echo(job_id)


def main() -> None:
    """Entry point of the ``conveyor`` command: typed errors print as one line and
    exit with code 1 (usage errors exit with code 2)."""
    try:
        app()
    except ConveyorError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}")
        raise SystemExit(1) from None
