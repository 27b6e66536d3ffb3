"""Managing jobs and queues by hand: look-ups, cancel, resume, retry, delete, and
the queues' settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, Unpack

from psycopg import errors as pg_errors

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Failure, Operation, Plan, Together
from conveyor._db.queries import Statement
from conveyor._db.rows import JobRef, job_from_row, queue_from_row
from conveyor._ops import dependencies, options, validate
from conveyor._ops.options import QueueSettings
from conveyor.errors import InvalidArgument, PolicyViolation, QueueConflict, QueueNotFound
from conveyor.job import Job, JobPage, JobState, Queue

_MAX_PAGE = 1000


def get_job(ctx: Context, /, id: JobRef, *, conn: Any = None) -> Operation[Job | None]:
    """The job with this id, or ``None`` when there is none."""
    job_id = validate.job_id(id)

    def plan() -> Plan[Job | None]:
        row = yield Execute(statements.JOB_GET, {"id": job_id})
        return None if row is None else job_from_row(row)

    return Operation(plan(), conn)


def _transition(
    ctx: Context, statement: Statement, jobs: object, conn: Any, action: str
) -> Operation[int]:
    ids = validate.job_ids(jobs)

    run = Execute(statement, {"ids": ids, "channel": ctx.queries.schema})
    # What waits for a cancelled job, or an unfinished one deleted, is settled in
    # the same transaction (ids that did not change settle nothing).
    steps = ((run, dependencies.settle(ctx, ids)) if statement is statements.JOBS_CANCEL else
             (dependencies.settle(ctx, ids, removing=True), run)
             if statement is statements.JOBS_DELETE else (run,))

    def plan() -> Plan[int]:
        try:
            results = yield Together(steps)
            return len(results[steps.index(run)])
        except Failure as failure:
            if isinstance(failure.cause, pg_errors.UniqueViolation):
                raise PolicyViolation(
                    f"cannot {action}: the queue's policy already holds a job with the same "
                    f"singleton key in that state ({failure.cause.diag.constraint_name})"
                ) from None
            raise

    return Operation(plan(), conn)


def cancel(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Cancel jobs that have not finished; returns how many were cancelled. What
    waits for them (steps of a flow) follows its ``on_dependency_failure``."""
    return _transition(ctx, statements.JOBS_CANCEL, jobs, conn, "cancel")


def resume(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Put cancelled jobs back in their queue, due now; returns how many."""
    return _transition(ctx, statements.JOBS_RESUME, jobs, conn, "resume")


def retry(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Send failed jobs round again, due now, with one more attempt; returns how many."""
    return _transition(ctx, statements.JOBS_RETRY, jobs, conn, "retry")


def delete(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Delete jobs in any state; returns how many were deleted. What waits for an
    unfinished one follows its ``on_dependency_failure`` as for a cancel."""
    return _transition(ctx, statements.JOBS_DELETE, jobs, conn, "delete")


def _parse_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(cursor)
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument(
            f"invalid cursor {cursor!r}: pass the next_cursor of an earlier page"
        ) from None


def _states(state: JobState | str | Iterable[JobState | str] | None) -> list[str] | None:
    if state is None:
        return None
    try:
        values = [state] if isinstance(state, str) else list(state)
        return [JobState(value).value for value in values]
    except (ValueError, TypeError):  # not a state, or not an iterable of them
        allowed = ", ".join(s.value for s in JobState)
        raise InvalidArgument(f"invalid state in {state!r}; use {allowed}") from None


def _search(text: str | None) -> tuple[str | None, uuid.UUID | None]:
    """The ILIKE pattern of a search, and the search read as an id when it is one."""
    if text is None:
        return None, None
    words = validate.text(text, "search", max_length=1000)
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    try:
        as_id: uuid.UUID | None = uuid.UUID(words)
    except ValueError:
        as_id = None
    return f"%{escaped}%", as_id


def _filter(
    ctx: Context, queue: str | None,
    state: JobState | str | Iterable[JobState | str] | None, singleton_key: str | None,
    key: str | None, search: str | None, data_contains: object, source_id: object = None,
    scheduled: object = None,
) -> dict[str, Any]:
    """The parameters of ``{job_filter}``, checked."""
    pattern, search_id = _search(search)
    return {
        "scheduled": None if scheduled is None else validate.boolean(scheduled, "scheduled"),
        "source_id": None if source_id is None else validate.job_id(source_id),
        "queue": None if queue is None else validate.queue_name(queue),
        "states": _states(state),
        "singleton_key": None if singleton_key is None else validate.text(
            singleton_key, "singleton_key"),
        "key": None if key is None else validate.text(key, "key"),
        "data_contains": validate.encode_json(data_contains, ctx.max_payload_bytes, "data"),
        "search": pattern,
        "search_id": search_id,
        "before_id": None,
    }


def find_jobs(
    ctx: Context,
    /,
    queue: str | None = None,
    *,
    state: JobState | str | Iterable[JobState | str] | None = None,
    singleton_key: str | None = None,
    key: str | None = None,
    search: str | None = None,
    data_contains: Mapping[str, Any] | list[Any] | None = None,
    source_id: str | uuid.UUID | None = None,
    scheduled: bool | None = None,
    limit: int = 100,
    cursor: str | None = None,
    conn: Any = None,
) -> Operation[JobPage]:
    """Jobs matching every filter given, newest first (by id: generated ids follow
    creation time), one page at a time.

    ``state`` takes one state or several; ``key`` matches the singleton key or the
    group key; ``search`` finds the job with that id, or jobs whose data, output or
    error contains the text (case-insensitive; this reads every job the other
    filters leave, so narrow it with ``queue`` or ``state`` on large tables);
    ``data_contains`` matches jobs whose data contains that JSON (PostgreSQL's
    ``@>``); ``source_id`` finds the dead-letter copies of that job;
    ``scheduled=True`` keeps the jobs that wait for a later start (created or
    retry, due in the future), ``False`` the others. Pass the page's
    ``next_cursor`` as ``cursor`` for the next page::

        page = cv.find_jobs("document-parse", state="failed", limit=50)
        while page.next_cursor:
            page = cv.find_jobs("document-parse", state="failed", cursor=page.next_cursor)
    """
    page_size = validate.integer(limit, "limit", minimum=1)
    if page_size > _MAX_PAGE:
        raise InvalidArgument(f"limit must be at most {_MAX_PAGE}, got {limit}")
    params = _filter(ctx, queue, state, singleton_key, key, search, data_contains, source_id,
                     scheduled)
    params["before_id"] = None if cursor is None else _parse_cursor(cursor)
    params["limit"] = page_size + 1

    def plan() -> Plan[JobPage]:
        jobs = [job_from_row(row) for row in (yield Execute(statements.JOBS_FIND, params))]
        more = len(jobs) > page_size
        jobs = jobs[:page_size]
        return JobPage(jobs, jobs[-1].id if more else None)

    return Operation(plan(), conn)


def count_jobs(
    ctx: Context,
    /,
    queue: str | None = None,
    *,
    state: JobState | str | Iterable[JobState | str] | None = None,
    singleton_key: str | None = None,
    key: str | None = None,
    search: str | None = None,
    data_contains: Mapping[str, Any] | list[Any] | None = None,
    source_id: str | uuid.UUID | None = None,
    scheduled: bool | None = None,
    conn: Any = None,
) -> Operation[int]:
    """How many jobs match every filter given (those of :meth:`find_jobs`): what a
    bulk action with the same filters would look at. It counts every matching row,
    so on large tables narrow it with ``queue`` and ``state``::

        cv.count_jobs("document-parse", state="failed")
    """
    params = _filter(ctx, queue, state, singleton_key, key, search, data_contains, source_id,
                     scheduled)
    params["before_id"] = None

    def plan() -> Plan[int]:
        row = yield Execute(statements.JOBS_COUNT, params)
        return int(row["count"])

    return Operation(plan(), conn)


BulkAction = Literal["retry", "cancel", "resume", "delete"]
_BULK_STATEMENTS: Final[dict[str, Statement]] = {
    "retry": statements.JOBS_RETRY, "cancel": statements.JOBS_CANCEL,
    "resume": statements.JOBS_RESUME, "delete": statements.JOBS_DELETE,
}


def bulk(
    ctx: Context,
    /,
    action: BulkAction,
    queue: str | None = None,
    *,
    state: JobState | str | Iterable[JobState | str] | None = None,
    key: str | None = None,
    search: str | None = None,
    data_contains: Mapping[str, Any] | list[Any] | None = None,
    scheduled: bool | None = None,
    ids: Iterable[JobRef] | None = None,
    conn: Any = None,
) -> Operation[int]:
    """Apply ``action`` (``"retry"``, ``"cancel"``, ``"resume"`` or ``"delete"``) to
    every job matching the filters of :meth:`find_jobs`, or to the jobs ``ids``
    names (then without other filters); returns how many jobs it changed. Jobs the
    action does not apply to (a retry of a completed job) are left alone. At least
    ``queue``, ``state`` or ``ids`` is required, so that no slip acts on every job.
    The jobs a filter matches are taken a thousand at a time, each page in its own
    transaction::

        cv.bulk("retry", "send-message", state="failed")
        cv.bulk("cancel", ids=[first_id, second_id])
    """
    if action not in _BULK_STATEMENTS:
        raise InvalidArgument(
            f"unknown bulk action {action!r}; use one of {', '.join(_BULK_STATEMENTS)}")
    if ids is not None:
        filters = {"queue": queue, "state": state, "key": key, "search": search,
                   "data_contains": data_contains, "scheduled": scheduled}
        given = [name for name, value in filters.items() if value is not None]
        if given:
            raise InvalidArgument(
                f"a bulk action takes ids or filters, not both (ids with {', '.join(given)})")
        return _transition(ctx, _BULK_STATEMENTS[action], ids, conn, action)
    if queue is None and state is None:
        raise InvalidArgument("a bulk action needs a queue, a state or ids to narrow it")
    params = _filter(ctx, queue, state, None, key, search, data_contains, None, scheduled)
    params["limit"] = _MAX_PAGE
    statement = _BULK_STATEMENTS[action]

    def plan() -> Plan[int]:
        changed = 0
        while True:
            ids = [row["id"] for row in (yield Execute(statements.JOBS_MATCH, params))]
            if ids:
                changed += yield from _transition(ctx, statement, ids, None, action).plan
            if len(ids) < _MAX_PAGE:
                return changed
            params["before_id"] = ids[-1]

    return Operation(plan(), conn)


def queue_counts(
    ctx: Context, /, queue: str, *, conn: Any = None
) -> Operation[dict[JobState, int]]:
    """How many jobs of ``queue`` are in each state (every state present, 0 if none)."""
    name = validate.queue_name(queue)

    def plan() -> Plan[dict[JobState, int]]:
        counts = dict.fromkeys(JobState, 0)
        for row in (yield Execute(statements.QUEUE_COUNTS, {"queue": name})):
            counts[JobState(row["state"])] = row["count"]
        return counts

    return Operation(plan(), conn)


def _update_queue(params: dict[str, Any], create: bool) -> Plan[Queue]:
    names = [params["name"]] if create else []
    if params["dead_letter"] is not None:
        names.append(params["dead_letter"])
    if names:
        yield Execute(statements.QUEUE_ENSURE, {"names": names})
    try:
        row = yield Execute(statements.QUEUE_UPDATE, params)
    except Failure as failure:
        if isinstance(failure.cause, pg_errors.CheckViolation):
            raise QueueConflict(
                f"queue {params['name']!r}: flow control (rate limits, group limits, fair) "
                "cannot be combined with the singleton or stately policies"
            ) from None
        raise
    if row is None:
        raise QueueNotFound(f"queue {params['name']!r} does not exist; create_queue() makes it")
    return queue_from_row(row)


def create_queue(
    ctx: Context, /, name: str, *, conn: Any = None, **settings: Unpack[QueueSettings]
) -> Operation[Queue]:
    """Create ``name`` with a policy and defaults for its jobs, and return it.

    Creating a queue that exists applies the settings given and keeps the others,
    so application start-up code can call it every time. A dead-letter queue that
    does not exist yet is created with defaults. Policies (see
    :class:`QueuePolicy`) apply to jobs sent after the change. The settings:
    ``policy``, ``priority``, ``retry_limit``, ``retry_delay``, ``retry_backoff``,
    ``retry_delay_max``, ``expire_in``, ``retention``, ``delete_after``,
    ``dead_letter`` (see :meth:`send`).

    Example::

        cv.create_queue("reports", policy="singleton", retry_limit=5, dead_letter="reports-dlq")
    """
    params = options.queue_settings(validate.queue_name(name), settings)
    return Operation(_update_queue(params, create=True), conn, atomic=True)


def update_queue(
    ctx: Context, /, name: str, *, conn: Any = None, **settings: Unpack[QueueSettings]
) -> Operation[Queue]:
    """Change the settings given of an existing queue and return it; raises
    :class:`~conveyor.errors.QueueNotFound` when there is no such queue. Pass
    ``None`` to ``dead_letter`` or ``retry_delay_max`` to remove it. Jobs already
    sent keep the settings they were sent with."""
    params = options.queue_settings(validate.queue_name(name), settings)
    return Operation(_update_queue(params, create=False), conn, atomic=True)


def delete_queue(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[bool]:
    """Delete a queue and all its jobs; returns whether it existed. A queue that
    another queue names as its dead-letter queue cannot be deleted until that
    queue is changed."""
    queue = validate.queue_name(name)

    def plan() -> Plan[bool]:
        try:
            return bool((yield Execute(statements.QUEUE_DELETE, {"name": queue})))
        except Failure as failure:
            if isinstance(failure.cause, pg_errors.ForeignKeyViolation):
                raise QueueConflict(
                    f"queue {queue!r} is another queue's dead-letter queue; point that queue "
                    "elsewhere with update_queue(..., dead_letter=None) first"
                ) from None
            raise

    return Operation(plan(), conn)


def get_queue(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[Queue | None]:
    """The queue with its settings, or ``None`` when it does not exist."""
    queue = validate.queue_name(name)

    def plan() -> Plan[Queue | None]:
        row = yield Execute(statements.QUEUE_GET, {"name": queue})
        return None if row is None else queue_from_row(row)

    return Operation(plan(), conn)


def list_queues(ctx: Context, /, *, conn: Any = None) -> Operation[list[Queue]]:
    """Every queue, by name."""

    def plan() -> Plan[list[Queue]]:
        return [queue_from_row(row) for row in (yield Execute(statements.QUEUE_LIST))]

    return Operation(plan(), conn)
