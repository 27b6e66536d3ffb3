"""What every command of the command line shares: the consoles, the common options,
the database to open, and the one JSON form of ``--json``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from conveyor.client import Conveyor
from conveyor.config import redact
from conveyor.embedded import EmbeddedPostgres, default_data_dir
from conveyor.job import JobState

console = Console()
errors = Console(stderr=True, soft_wrap=True)

DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn", help="PostgreSQL URL; defaults to $CONVEYOR_DATABASE_URL or $DATABASE_URL."
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option("--schema", help="Schema name; defaults to $CONVEYOR_SCHEMA or 'conveyor'."),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the embedded PostgreSQL; defaults to $CONVEYOR_DATA_DIR, "
        "/var/tmp/conveyor/pgdata for root, ~/.local/share/conveyor/pgdata otherwise.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of text.")
]
QueueOption = Annotated[str | None, typer.Option("--queue", "-q", help="Only this queue.")]
StatesOption = Annotated[
    list[JobState] | None,
    typer.Option("--state", "-s", help="Only jobs in this state (repeat for several).",
                 case_sensitive=False),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def client(dsn: str | None, schema: str | None) -> Conveyor:
    """A client on the configured database that leaves the schema as it is (run
    ``conveyor migrate`` to change it)."""
    return Conveyor(dsn, schema=schema, migrate=False)


def _configured_dsn(dsn: str | None) -> str | None:
    return dsn or os.environ.get("CONVEYOR_DATABASE_URL") or os.environ.get("DATABASE_URL")


@contextlib.contextmanager
def database(
    dsn: str | None, data_dir: Path | None, *, embedded: bool = False,
    announce: Console = console,
) -> Iterator[str]:
    """The configured database, or (always, with ``embedded``) an embedded one started
    for the duration; which one it is goes to ``announce``."""
    configured = None if embedded else _configured_dsn(dsn)
    if configured:
        announce.print(f"Using the database at {redact(configured)}")
        yield configured
        return
    folder = data_dir or default_data_dir()
    announce.print(f"Starting an embedded PostgreSQL in [bold]{folder}[/]")
    with EmbeddedPostgres(folder) as server:
        yield server.url


def record_fields(record: Any) -> dict[str, Any]:
    """A record's public fields by name (a ``Job``'s, say): what ``--json`` prints
    of it."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
            if not f.name.startswith("_")}


def _plain(value: Any) -> Any:
    """What ``json`` cannot write by itself: records become objects (without their
    private fields), times ISO 8601 text, durations seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return record_fields(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(value: Any) -> None:
    """Write ``value`` to standard output as the indented JSON every ``--json`` prints."""
    typer.echo(json.dumps(value, indent=2, default=_plain))


def confirm(question: str) -> None:
    """Ask on standard error (standard output stays clean for ``--json``); a no
    stops the command with exit code 1 and changes nothing."""
    if not typer.confirm(question, err=True):
        errors.print("nothing changed")
        raise typer.Exit(1)


def parse_json(text: str) -> Any:
    """The ``parser`` of options and arguments given as JSON: a syntax error is a
    usage error (exit code 2), reported with where it is."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc})") from None
