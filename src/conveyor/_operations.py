"""Every client operation, written once.

Each function checks its arguments at once (so bad input raises before anything is
written) and returns an :class:`~conveyor._plan.Operation` whose plan yields the
statements to run. :mod:`conveyor.client` turns each into a method of the sync and
the async client; the docstrings here are the methods' documentation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Never

from psycopg import errors as pg_errors

from conveyor import _options, _validate
from conveyor._options import UNSET
from conveyor._plan import Context, Copy, Execute, Failure, Operation, Plan, Step
from conveyor.errors import InvalidArgument, PolicyViolation, QueueConflict, QueueNotFound
from conveyor.job import Job, JobPage, JobState, Queue, QueuePolicy

Duration = int | float | timedelta
"""Seconds, or a timedelta."""
JobRef = str | uuid.UUID | Job
"""A job id (UUID or its text), or the Job itself (which also fences by attempt)."""

_CLAIM_RACE_RETRIES = 3
_MAX_PAGE = 1000


# --- reading rows ---------------------------------------------------------------------


def _job(row: Mapping[str, Any]) -> Job:
    values = dict(row)
    values["id"] = str(values["id"])
    values["state"] = JobState(values["state"])
    values["policy"] = QueuePolicy(values["policy"])
    return Job(**values)


def _queue(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)


# --- sending --------------------------------------------------------------------------


def _ensure_queue_then(queue: str, step: Step) -> Plan[Mapping[str, Any]]:
    """Runs an ``enqueue`` step; when the queue does not exist yet, creates it with
    the defaults and runs the step again."""
    result = yield step
    if not result["queue_found"]:
        yield Execute("queue_ensure", {"names": [queue]}, "none")
        result = yield step
        if not result["queue_found"]:
            raise QueueNotFound(f"queue {queue!r} was deleted while jobs were being sent to it")
    return result  # type: ignore[no-any-return]


def _send_one(queue: str, row: _options.JobRow) -> Plan[str | None]:
    step = Execute("enqueue", _options.enqueue_params(queue, row), "one")
    result = yield from _ensure_queue_then(queue, step)
    return None if result["first_id"] is None else str(result["first_id"])


def _insert_many(queue: str, rows: Iterable[_options.JobRow]) -> Plan[int]:
    yield Execute("enqueue_stage", None, "none")
    yield Copy("enqueue_copy", rows, _options.STAGED_TYPES)
    step = Execute("enqueue_staged", {"queue": queue}, "one")
    result = yield from _ensure_queue_then(queue, step)
    # Dropped now rather than at commit: the caller's transaction may insert again.
    yield Execute("enqueue_unstage", None, "none")
    return result["inserted"]  # type: ignore[no-any-return]


def send(
    ctx: Context,
    /,
    queue: str,
    data: Any = None,
    *,
    priority: int | None = None,
    start_after: Duration | datetime | None = None,
    retry_limit: int | None = None,
    retry_delay: Duration | None = None,
    retry_backoff: bool | None = None,
    retry_delay_max: Duration | None = None,
    expire_in: Duration | None = None,
    retention: Duration | None = None,
    delete_after: Duration | None = None,
    dead_letter: str | None = None,
    singleton_key: str | None = None,
    singleton_seconds: Duration | None = None,
    id: str | uuid.UUID | None = None,
    conn: Any = None,
    **unknown: Never,
) -> Operation[str | None]:
    """Send one job to ``queue`` and return its id, or ``None`` when the queue's policy
    (or a throttle, or an existing job with the same ``id``) rejected it.

    The queue is created with default settings the first time it is used. Options
    left out take the queue's defaults.

    - ``priority``: higher runs first.
    - ``start_after``: a delay (seconds or timedelta) or an aware datetime.
    - ``retry_limit``: retries after the first attempt; ``retry_delay`` between them;
      ``retry_backoff`` doubles the delay each time, with jitter, up to
      ``retry_delay_max``.
    - ``expire_in``: how long one attempt may stay active before its lease lapses.
    - ``retention``: how long the job may wait to start before it is dropped.
    - ``delete_after``: how long a finished job is kept (0 keeps it for good).
    - ``dead_letter``: queue that receives a copy when the job fails for good.
    - ``singleton_key``: the key the queue's policy counts by; with
      ``singleton_seconds``, at most one job per key per time slot (a throttle).
    - ``id``: your own UUID; sending the same id twice keeps one job.
    - ``conn``: your psycopg connection; the job then commits or rolls back with
      your transaction.

    Example::

        job_id = cv.send("document-parse", {"document_id": "d1"}, priority=10,
                         start_after=60, retry_limit=3, retry_backoff=True)
    """
    _validate.unknown_options(unknown, _options.JOB_OPTIONS)
    name = _validate.queue_name(queue)
    row = _options.job_row(
        data,
        ctx.max_payload_bytes,
        {
            "priority": priority, "start_after": start_after, "retry_limit": retry_limit,
            "retry_delay": retry_delay, "retry_backoff": retry_backoff,
            "retry_delay_max": retry_delay_max, "expire_in": expire_in,
            "retention": retention, "delete_after": delete_after, "dead_letter": dead_letter,
            "singleton_key": singleton_key, "singleton_seconds": singleton_seconds, "id": id,
        },
    )
    return Operation(_send_one(name, row), conn)


def insert(
    ctx: Context, queue: str, items: Iterable[Mapping[str, Any]], *, conn: Any = None
) -> Operation[int]:
    """Insert many jobs into ``queue`` in one transaction, through COPY, and return
    how many were inserted (jobs the queue's policy rejected are not counted).

    Each item is a mapping with ``data`` and any of :meth:`send`'s options; give
    items an ``id`` of your own when you need to know each job's id::

        cv.insert("embed", [{"data": {"chunk": i}, "priority": i % 3} for i in range(100_000)])

    Items are checked as they stream to the database; one bad item raises a typed
    error and nothing is inserted. With ``conn`` the jobs commit or roll back with
    your transaction.
    """
    name = _validate.queue_name(queue)
    limit = ctx.max_payload_bytes
    rows = (_options.item_row(item, limit) for item in items)
    return Operation(_insert_many(name, rows), conn, atomic=True)


# --- working --------------------------------------------------------------------------


def _claim(queue: str, limit: int) -> Plan[list[Job]]:
    for attempt in range(_CLAIM_RACE_RETRIES):
        try:
            rows = yield Execute("claim", {"queue": queue, "limit": limit})
        except Failure as failure:
            # Two claims raced for the same key of a singleton or stately queue: the
            # unique index let one win. The loser tries again.
            if not isinstance(failure.cause, pg_errors.UniqueViolation):
                raise
            if attempt == _CLAIM_RACE_RETRIES - 1:
                return []
            continue
        return [_job(row) for row in rows]
    return []


def fetch(ctx: Context, /, queue: str, batch_size: int = 1) -> Operation[list[Job]]:
    """Claim up to ``batch_size`` due jobs of ``queue`` and return them, now
    ``active``: highest priority first, then the longest waiting.

    Each claimed job holds a lease of its ``expire_in``. Finish it with
    :meth:`complete` or :meth:`fail`, passing the :class:`Job` so that the attempt
    fences the outcome. Concurrent fetches never return the same job.
    """
    name = _validate.queue_name(queue)
    limit = _validate.integer(batch_size, "batch_size", minimum=1)
    return Operation(_claim(name, limit))


def _fence(jobs: object) -> tuple[list[uuid.UUID], list[int | None]]:
    """Ids, and the attempt of each one given as a Job (``None`` for bare ids)."""
    items = [jobs] if isinstance(jobs, str | uuid.UUID | Job) or not isinstance(
        jobs, Iterable) else list(jobs)
    ids = [_validate.job_id(item) for item in items]
    attempts = [item.attempt if isinstance(item, Job) else None for item in items]
    return ids, attempts


def _rowcount(query: str, params: dict[str, Any]) -> Plan[int]:
    return len((yield Execute(query, params)))


def complete(
    ctx: Context, jobs: JobRef | Iterable[JobRef], output: Any = None, *, conn: Any = None
) -> Operation[int]:
    """Mark active jobs ``completed``, storing ``output`` as their result. Returns
    how many were completed.

    A :class:`Job` returned by :meth:`fetch` completes only while that attempt still
    holds it; a bare id completes the job whatever attempt is running. With ``conn``
    the completion commits with your own transaction, together with your business
    state.
    """
    ids, attempts = _fence(jobs)
    encoded = _validate.encode_json(output, ctx.max_payload_bytes, "output")
    params = {"id": ids, "attempt": attempts, "output": [encoded] * len(ids)}
    return Operation(_rowcount("complete", params), conn)


def fail(
    ctx: Context,
    /,
    jobs: JobRef | Iterable[JobRef],
    error: BaseException | Mapping[str, Any] | str | None = None,
    *,
    retry_after: Duration | None = None,
    conn: Any = None,
) -> Operation[int]:
    """Record a failed attempt of active jobs. Returns how many were updated.

    While attempts remain (``retry_count < retry_limit``) a job goes to ``retry``
    and runs again after ``retry_after`` when given, else after its backoff or
    ``retry_delay``. Otherwise it becomes ``failed``, and a copy goes to its
    dead-letter queue when it has one. ``error`` may be an exception (its type,
    message and traceback are stored), a dict or a string.
    """
    ids, attempts = _fence(jobs)
    encoded = _validate.error_json(error, ctx.max_payload_bytes)
    delay = None if retry_after is None else _validate.duration(retry_after, "retry_after")
    params = {
        "id": ids, "attempt": attempts,
        "error": [encoded] * len(ids), "retry_after": [delay] * len(ids),
    }
    return Operation(_rowcount("fail", params), conn)


# --- managing jobs --------------------------------------------------------------------


def get_job(ctx: Context, /, id: JobRef, *, conn: Any = None) -> Operation[Job | None]:
    """The job with this id, or ``None`` when there is none."""
    job_id = _validate.job_id(id)

    def plan() -> Plan[Job | None]:
        row = yield Execute("job_get", {"id": job_id}, "one")
        return None if row is None else _job(row)

    return Operation(plan(), conn)


def _transition(query: str, jobs: object, conn: Any, action: str) -> Operation[int]:
    ids = _validate.job_ids(jobs)

    def plan() -> Plan[int]:
        try:
            return len((yield Execute(query, {"ids": ids})))
        except Failure as failure:
            if isinstance(failure.cause, pg_errors.UniqueViolation):
                raise PolicyViolation(
                    f"cannot {action}: the queue's policy already holds a job with the same "
                    f"singleton key in that state ({failure.cause.diag.constraint_name})"
                ) from None
            raise

    return Operation(plan(), conn)


def cancel(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Cancel jobs that have not finished; returns how many were cancelled."""
    return _transition("jobs_cancel", jobs, conn, "cancel")


def resume(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Put cancelled jobs back in their queue, due now; returns how many."""
    return _transition("jobs_resume", jobs, conn, "resume")


def retry(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Send failed jobs round again, due now, with one more attempt; returns how many."""
    return _transition("jobs_retry", jobs, conn, "retry")


def delete(ctx: Context, /, jobs: JobRef | Iterable[JobRef], *, conn: Any = None) -> Operation[int]:
    """Delete jobs in any state; returns how many were deleted."""
    return _transition("jobs_delete", jobs, conn, "delete")


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
    values = [state] if isinstance(state, str) else list(state)
    try:
        return [JobState(value).value for value in values]
    except ValueError:
        allowed = ", ".join(s.value for s in JobState)
        raise InvalidArgument(f"invalid state in {state!r}; use {allowed}") from None


def find_jobs(
    ctx: Context,
    /,
    queue: str | None = None,
    *,
    state: JobState | str | Iterable[JobState | str] | None = None,
    singleton_key: str | None = None,
    data_contains: Mapping[str, Any] | list[Any] | None = None,
    limit: int = 100,
    cursor: str | None = None,
    conn: Any = None,
) -> Operation[JobPage]:
    """Jobs matching every filter given, newest first (by id: generated ids follow
    creation time), one page at a time.

    ``state`` takes one state or several; ``data_contains`` matches jobs whose data
    contains that JSON (PostgreSQL's ``@>``). Pass the page's ``next_cursor`` as
    ``cursor`` for the next page::

        page = cv.find_jobs("document-parse", state="failed", limit=50)
        while page.next_cursor:
            page = cv.find_jobs("document-parse", state="failed", cursor=page.next_cursor)
    """
    page_size = _validate.integer(limit, "limit", minimum=1)
    if page_size > _MAX_PAGE:
        raise InvalidArgument(f"limit must be at most {_MAX_PAGE}, got {limit}")
    params = {
        "queue": None if queue is None else _validate.queue_name(queue),
        "states": _states(state),
        "singleton_key": singleton_key,
        "data_contains": _validate.encode_json(data_contains, ctx.max_payload_bytes, "data"),
        "before_id": None if cursor is None else _parse_cursor(cursor),
        "limit": page_size + 1,
    }

    def plan() -> Plan[JobPage]:
        jobs = [_job(row) for row in (yield Execute("jobs_find", params))]
        more = len(jobs) > page_size
        jobs = jobs[:page_size]
        return JobPage(jobs, jobs[-1].id if more else None)

    return Operation(plan(), conn)


def queue_counts(
    ctx: Context, /, queue: str, *, conn: Any = None
) -> Operation[dict[JobState, int]]:
    """How many jobs of ``queue`` are in each state (every state present, 0 if none)."""
    name = _validate.queue_name(queue)

    def plan() -> Plan[dict[JobState, int]]:
        counts = dict.fromkeys(JobState, 0)
        for row in (yield Execute("queue_counts", {"queue": name})):
            counts[JobState(row["state"])] = row["count"]
        return counts

    return Operation(plan(), conn)


# --- managing queues ------------------------------------------------------------------


def _update_queue(params: dict[str, Any], create: bool) -> Plan[Queue]:
    names = [params["name"]] if create else []
    if params["dead_letter"] is not None:
        names.append(params["dead_letter"])
    if names:
        yield Execute("queue_ensure", {"names": names}, "none")
    row = yield Execute("queue_update", params, "one")
    if row is None:
        raise QueueNotFound(f"queue {params['name']!r} does not exist; create_queue() makes it")
    return _queue(row)


def create_queue(
    ctx: Context,
    /,
    name: str,
    *,
    policy: QueuePolicy | str = UNSET,
    priority: int = UNSET,
    retry_limit: int = UNSET,
    retry_delay: Duration = UNSET,
    retry_backoff: bool = UNSET,
    retry_delay_max: Duration | None = UNSET,
    expire_in: Duration = UNSET,
    retention: Duration = UNSET,
    delete_after: Duration = UNSET,
    dead_letter: str | None = UNSET,
    conn: Any = None,
    **unknown: Never,
) -> Operation[Queue]:
    """Create ``name`` with a policy and defaults for its jobs, and return it.

    Creating a queue that exists applies the settings given and keeps the others,
    so application start-up code can call it every time. A dead-letter queue that
    does not exist yet is created with defaults. Policies (see
    :class:`QueuePolicy`) apply to jobs sent after the change.

    Example::

        cv.create_queue("reports", policy="singleton", retry_limit=5, dead_letter="reports-dlq")
    """
    _validate.unknown_options(unknown, _options.QUEUE_SETTINGS)
    # locals() holds exactly the settings as named above; UNSET marks those left out.
    params = _options.queue_settings(_validate.queue_name(name), locals())
    return Operation(_update_queue(params, create=True), conn, atomic=True)


def update_queue(
    ctx: Context,
    /,
    name: str,
    *,
    policy: QueuePolicy | str = UNSET,
    priority: int = UNSET,
    retry_limit: int = UNSET,
    retry_delay: Duration = UNSET,
    retry_backoff: bool = UNSET,
    retry_delay_max: Duration | None = UNSET,
    expire_in: Duration = UNSET,
    retention: Duration = UNSET,
    delete_after: Duration = UNSET,
    dead_letter: str | None = UNSET,
    conn: Any = None,
    **unknown: Never,
) -> Operation[Queue]:
    """Change the settings given of an existing queue and return it; raises
    :class:`~conveyor.errors.QueueNotFound` when there is no such queue. Pass
    ``None`` to ``dead_letter`` or ``retry_delay_max`` to remove it. Jobs already
    sent keep the settings they were sent with."""
    _validate.unknown_options(unknown, _options.QUEUE_SETTINGS)
    params = _options.queue_settings(_validate.queue_name(name), locals())
    return Operation(_update_queue(params, create=False), conn, atomic=True)


def delete_queue(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[bool]:
    """Delete a queue and all its jobs; returns whether it existed. A queue that
    another queue names as its dead-letter queue cannot be deleted until that
    queue is changed."""
    queue = _validate.queue_name(name)

    def plan() -> Plan[bool]:
        try:
            return bool((yield Execute("queue_delete", {"name": queue})))
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
    queue = _validate.queue_name(name)

    def plan() -> Plan[Queue | None]:
        row = yield Execute("queue_get", {"name": queue}, "one")
        return None if row is None else _queue(row)

    return Operation(plan(), conn)


def list_queues(ctx: Context, /, *, conn: Any = None) -> Operation[list[Queue]]:
    """Every queue, by name."""

    def plan() -> Plan[list[Queue]]:
        return [_queue(row) for row in (yield Execute("queue_list"))]

    return Operation(plan(), conn)
