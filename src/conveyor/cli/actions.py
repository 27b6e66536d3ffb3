"""``retry``, ``cancel`` and ``delete``: one command per action, each acting on the
jobs named by id, or on every job a filter matches (after a confirmation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import typer

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
    print_json,
)
from conveyor.client import Conveyor
from conveyor.job import JobState

Action = Literal["retry", "cancel", "delete"]
_PAGE = 1000
_DONE = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}


def _count_matching(
    cv: Conveyor, queue: str | None, states: list[JobState] | None, key: str | None,
    search: str | None,
) -> int:
    """How many jobs the filter matches, counted a page at a time."""
    matched, cursor = 0, None
    while True:
        page = cv.find_jobs(queue, state=states, key=key, search=search, limit=_PAGE,
                            cursor=cursor)
        matched += len(page)
        cursor = page.next_cursor
        if cursor is None:
            return matched


def _describe(queue: str | None, states: list[JobState] | None, key: str | None,
              search: str | None) -> str:
    parts = [f"{name} {value}" for name, value in (
        ("queue", queue), ("state", None if not states else "/".join(states)), ("key", key),
        ("search", None if search is None else repr(search))) if value is not None]
    return ", ".join(parts)


def _act(
    action: Action, ids: list[str] | None, queue: str | None,
    states: list[JobState] | None, key: str | None, search: str | None, yes: bool,
    dsn: str | None, schema: str | None,
) -> int:
    if ids and (queue or states or key or search):
        raise typer.BadParameter("give job ids or a filter (--queue, --state, --key, "
                                 "--search), not both")
    if not ids and not (queue or states):
        raise typer.BadParameter(
            f"name the jobs to {action}: job ids (conveyor {action} ID ...), or a filter with "
            f"--queue and/or --state, e.g. conveyor {action} --queue emails --state failed")
    with client(dsn, schema) as cv:
        if ids:
            by_id = {"retry": cv.retry, "cancel": cv.cancel, "delete": cv.delete}[action]
            return by_id(ids)
        matched = _count_matching(cv, queue, states, key, search)
        if matched == 0:
            return 0
        if not yes:
            confirm(f"{action.capitalize()} the {matched} jobs matching "
                    f"{_describe(queue, states, key, search)}? Jobs the action does not "
                    "apply to are left alone")
        return cv.bulk(action, queue, state=states, key=key, search=search)


def _command(action: Action, summary: str) -> Callable[..., None]:
    def command(
        ids: Annotated[list[str] | None, typer.Argument(
            metavar="ID", help="Job ids; leave out to act on a filter instead.")] = None,
        queue: QueueOption = None,
        state: StatesOption = None,
        key: Annotated[str | None, typer.Option(
            help="Only jobs with this singleton key or group key.")] = None,
        search: Annotated[str | None, typer.Option(
            help="Only jobs whose data, output or error contains this text.")] = None,
        yes: YesOption = False,
        as_json: JsonOption = False,
        dsn: DsnOption = None,
        schema: SchemaOption = None,
    ) -> None:
        changed = _act(action, ids, queue, state, key, search, yes, dsn, schema)
        if as_json:
            print_json({"action": action, "changed": changed})
        else:
            console.print(f"{_DONE[action]} {changed} jobs")

    command.__name__ = action
    command.__doc__ = (
        f"{summary}\n\nBy id, or every job a filter matches (it asks first; --yes does "
        f"not).\n\nExample: conveyor {action} --queue emails --state failed --yes"
    )
    return command


def register(app: typer.Typer) -> None:
    app.command("retry")(_command(
        "retry", "Send failed jobs round again, due now, with one more attempt."))
    app.command("cancel")(_command("cancel", "Cancel jobs that have not finished."))
    app.command("delete")(_command("delete", "Delete jobs, whatever their state."))
