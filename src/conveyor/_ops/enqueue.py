"""Sending jobs: ``send`` and ``insert``.

Like every operation module, each public function checks its arguments at once
(bad input raises before anything is written) and returns an
:class:`~conveyor._db.plan.Operation` whose plan yields the statements to run;
:mod:`conveyor.client` turns each into a method of both clients, and the
docstrings here are the methods' documentation.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, Never

from conveyor import tracing
from conveyor._db import statements
from conveyor._db.plan import Context, Copy, Execute, Operation, Plan, Step
from conveyor._db.queries import Statement
from conveyor._db.session import EncodedJsonb, UuidInt
from conveyor._ops import options as _options
from conveyor._ops import validate
from conveyor._ops.options import Duration
from conveyor.errors import InvalidOption, QueueNotFound

_ANALYZE_AFTER = 10_000


def _ensure_queue_then(queue: str, step: Step) -> Plan[Mapping[str, Any]]:
    """Runs an ``enqueue`` step; when the queue does not exist yet, creates it with
    the defaults and runs the step again."""
    result = yield step
    if not result["queue_found"]:
        yield Execute(statements.QUEUE_ENSURE, {"names": [queue]})
        result = yield step
        if not result["queue_found"]:
            raise QueueNotFound(f"queue {queue!r} was deleted while jobs were being sent to it")
    return result  # type: ignore[no-any-return]


def _statement(row: _options.JobRow) -> Statement:
    """The enqueue statement a job takes: debounced jobs, and jobs that may move to
    the next throttle slot, have their own; the rest share the plain one."""
    if row.debounce_seconds is not None:
        return statements.ENQUEUE_DEBOUNCE
    if row.singleton_next_slot:
        return statements.ENQUEUE_NEXT_SLOT
    return statements.ENQUEUE


# Each send statement with its insert through the staging table. The debounce
# statement goes first: when the queue's policy refuses debounced jobs, nothing has
# been written yet.
_INSERT_ORDER: Final = (
    (statements.ENQUEUE_DEBOUNCE, statements.ENQUEUE_DEBOUNCE_STAGED),
    (statements.ENQUEUE, statements.ENQUEUE_STAGED),
    (statements.ENQUEUE_NEXT_SLOT, statements.ENQUEUE_NEXT_SLOT_STAGED),
)


def _debounce_refused(queue: str, policy: str) -> InvalidOption:
    return InvalidOption(
        f"queue {queue!r} has the {policy!r} policy, whose unique index could turn a "
        "debounced job away; debounce_seconds works in standard and singleton queues "
        "(nothing was sent)"
    )


def send_one(ctx: Context, queue: str, row: _options.JobRow, notify: bool) -> Plan[str | None]:
    """The plan of one checked job's send (``send``, and each tick of a schedule):
    the job's id, or ``None`` when the queue's policy turned it away."""
    params = _options.enqueue_params(queue, row)
    params["channel"] = ctx.queries.schema
    params["notify"] = notify
    result = yield from _ensure_queue_then(queue, Execute(_statement(row), params))
    if result.get("debounce_refused_by"):
        raise _debounce_refused(queue, result["debounce_refused_by"])
    return None if result["first_id"] is None else str(result["first_id"])


def _checked_rows(
    items: Iterable[Mapping[str, Any]], max_payload_bytes: int, needed: set[Statement],
    trace_context: str | None,
) -> Iterator[_options.JobRow]:
    """Each item checked as COPY takes it, with the trace context of the insert,
    noting the statements the rows need besides the plain one."""
    for item in items:
        row = _options.item_row(item, max_payload_bytes)
        if trace_context is not None:
            row = row._replace(trace_context=trace_context)
        if row.debounce_seconds is not None or row.singleton_next_slot:
            needed.add(_statement(row))
        yield row


_DIRECT_TYPES: Final = (
    "uuid", "text", "text", "int4", "jsonb", "int4", "interval", "bool", "interval",
    "interval", "timestamptz", "timestamptz", "interval", "text", "text", "text", "jsonb",
)
"""The binary COPY types of ``enqueue_direct.sql``'s columns (checked against the job
table's by ``tests/test_row_shapes.py``)."""

_NO_DELAY: Final = timedelta(0)


def _uuid7s(now: datetime) -> Iterator[int]:
    """UUIDv7s (as integers, for :class:`UuidInt`) in increasing order, as RFC 9562
    lets a generator count within one millisecond: new ids land at the right edge
    of the primary key and claim indexes. Like the server's ``uuid7()``, the 12
    bits after the millisecond hold its fraction (here of the transaction's time),
    so ids sort by creation time; 61 random bits start the count, so two inserts
    in the same instant do not meet."""
    millis = now.timestamp() * 1000
    return itertools.count(
        (int(millis) << 80) | (0x7 << 76) | (int((millis % 1) * 4096) << 64)
        | (0b10 << 62) | secrets.randbits(61)
    )


_PLAIN: Final = (None,) * 16
"""A ``JobRow``'s options from ``priority`` to ``group_key`` when none is given."""


class _Direct:
    """Rows of a bulk insert into a standard queue, completed with the queue's
    defaults for ``enqueue_direct.sql``. Rows that a unique index could turn away
    (a custom id, a throttle, a debounce) are set aside in ``rest``, for the
    statements that handle them."""

    def __init__(self, queue: str, target: Mapping[str, Any]) -> None:
        self.queue, self.target = queue, target
        self.rest: list[_options.JobRow] = []
        self.count = 0

    def records(self, rows: Iterable[_options.JobRow]) -> Iterator[tuple[Any, ...]]:
        queue, q, rest = self.queue, self.target, self.rest
        now = q["now"]
        ids = _uuid7s(now)
        head = (queue, "standard", q["priority"])
        # The columns after data of a job with no options of its own.
        plain = (q["retry_limit"], q["retry_delay"], q["retry_backoff"], q["retry_delay_max"],
                 q["expire_in"], now, now + q["retention"], q["delete_after"], q["dead_letter"],
                 None, None)
        count = 0
        try:
            for row in rows:
                if row[0] is None and row[2:18] == _PLAIN:
                    count += 1
                    yield (next(ids), *head, row[1], *plain, row[18])
                    continue
                record = self.record(next(ids), row)
                if record is None:
                    rest.append(row)
                else:
                    count += 1
                    yield record
        finally:
            self.count = count

    def record(self, id: int, row: _options.JobRow) -> tuple[Any, ...] | None:
        """The direct record of one row, with ``id`` (a UUID as an integer), or
        ``None`` when a unique index could turn the row away."""
        if (row.id is not None or row.singleton_seconds is not None
                or row.debounce_seconds is not None or row.singleton_next_slot):
            return None
        q = self.target
        start = row.start_at if row.start_at is not None else q["now"] + (row.start_in or _NO_DELAY)
        try:
            keep = start + (q["retention"] if row.retention is None else row.retention)
        except OverflowError:  # past Python's year 9999; the server's range is wider
            return None
        return (
            id, self.queue, "standard",
            q["priority"] if row.priority is None else row.priority,
            row.data,
            q["retry_limit"] if row.retry_limit is None else row.retry_limit,
            q["retry_delay"] if row.retry_delay is None else row.retry_delay,
            q["retry_backoff"] if row.retry_backoff is None else row.retry_backoff,
            q["retry_delay_max"] if row.retry_delay_max is None else row.retry_delay_max,
            q["expire_in"] if row.expire_in is None else row.expire_in,
            start, keep,
            q["delete_after"] if row.delete_after is None else row.delete_after,
            q["dead_letter"] if row.dead_letter is None else row.dead_letter,
            row.singleton_key, row.group_key, row.trace_context,
        )


def _insert_staged(
    ctx: Context, queue: str, rows: Iterable[_options.JobRow], needed: set[Statement],
) -> Plan[int]:
    """Rows through the staging table and the enqueue statements, which let the
    queue's unique indexes decide (``ON CONFLICT DO NOTHING``)."""
    yield Execute(statements.ENQUEUE_STAGE)
    yield Copy(statements.ENQUEUE_COPY, rows, _options.STAGED_TYPES)
    params = {"queue": queue, "channel": ctx.queries.schema, "notify": True}
    inserted, refused_by = 0, None
    for staged in (staged for one, staged in _INSERT_ORDER if one in needed):
        step = Execute(staged, params)
        result = yield from _ensure_queue_then(queue, step)
        refused_by = result.get("debounce_refused_by")
        if refused_by:
            break
        inserted += result["inserted"]
    # Dropped now rather than at commit: the caller's transaction may insert again.
    yield Execute(statements.ENQUEUE_UNSTAGE)
    if refused_by:
        raise _debounce_refused(queue, refused_by)
    return inserted


def _insert_many(
    ctx: Context, queue: str, items: Iterable[Mapping[str, Any]], trace_context: str | None,
) -> Plan[int]:
    needed = {statements.ENQUEUE}
    rows = _checked_rows(items, ctx.max_payload_bytes, needed, trace_context)
    defaults = Execute(statements.ENQUEUE_DEFAULTS, {"queue": queue})
    target = yield from _ensure_queue_then(queue, defaults)
    inserted, staged = 0, True
    if target["policy"] == "standard":
        direct = _Direct(queue, target)
        yield Copy(statements.ENQUEUE_DIRECT, direct.records(rows), _DIRECT_TYPES,
                   (UuidInt, EncodedJsonb))
        inserted = direct.count
        if inserted:
            yield Execute(statements.NOTIFY_QUEUE, {"channel": ctx.queries.schema, "queue": queue})
        rows, staged = iter(direct.rest), bool(direct.rest)
    if staged:
        inserted += yield from _insert_staged(ctx, queue, rows, needed)
    yield from analyze_after(inserted)
    return inserted


class FlowStep(NamedTuple):
    """A step of a flow, checked, for :func:`insert_steps`: its id, its row (without
    the id, unless the caller gave it), how many jobs it waits for, and whether
    other jobs will wait for it."""

    id: uuid.UUID
    row: _options.JobRow
    waiting_for: int
    waited: bool


_FLOW_TYPES: Final = (*_DIRECT_TYPES, "text", "int4", "bool", "bool")
"""``_DIRECT_TYPES``, then a step's state (an enum is sent as its label),
``waiting_for``, ``has_dependencies`` and ``has_dependents`` (``enqueue_flow.sql``)."""


def insert_steps(
    ctx: Context, queue: str, steps: Sequence[FlowStep],
) -> Plan[tuple[int, list[uuid.UUID]]]:
    """Writes the steps of a flow that go to ``queue``; returns how many were written
    and the ids of those that went through the queue's unique indexes, written as
    any job (``flow_link.sql`` makes them wait). In a standard queue, a step with
    no id, throttle or debounce of its own cannot be turned away: it is written
    straight into the job table as ``insert`` writes, already waiting and marked
    (``enqueue_flow.sql``)."""
    target = yield from _ensure_queue_then(
        queue, Execute(statements.ENQUEUE_DEFAULTS, {"queue": queue}))
    direct = _Direct(queue, target) if target["policy"] == "standard" else None
    records, rest = [], []
    for step in steps:
        record = None if direct is None or step.row.id is not None else direct.record(
            step.id.int, step.row)
        if record is None:
            rest.append(step)
        else:
            records.append((*record, "waiting" if step.waiting_for else "created",
                            step.waiting_for, step.waiting_for > 0, step.waited))
    inserted = len(records)
    if records:
        yield Copy(statements.ENQUEUE_FLOW, records, _FLOW_TYPES, (UuidInt, EncodedJsonb))
        if any(record[-4] == "created" for record in records):
            yield Execute(statements.NOTIFY_QUEUE, {"channel": ctx.queries.schema, "queue": queue})
    if rest:
        needed = {statements.ENQUEUE}
        rows = [step.row._replace(id=step.id) for step in rest]
        for row in rows:
            if row.singleton_next_slot:
                needed.add(_statement(row))
        inserted += yield from _insert_staged(ctx, queue, rows, needed)
    yield from analyze_after(inserted)
    return inserted, [step.id for step in rest]


def analyze_after(inserted: int) -> Plan[None]:
    """Analyzes the job table after a bulk insert of ``inserted`` jobs, when that is
    many: claims read the jobs in index order only when the planner knows how many
    there are; a table that just grew by a bulk load still has the statistics of an
    empty one until autovacuum analyzes it, up to a minute later."""
    if inserted >= _ANALYZE_AFTER:
        sample = yield Execute(statements.JOBS_ANALYZE_SAMPLE)
        yield Execute(statements.JOBS_ANALYZE)
        yield Execute(statements.JOBS_ANALYZE_SAMPLE_RESTORE, {"previous": sample["previous"]})


def send(
    ctx: Context,
    /,
    queue: str,
    data: Any = None,
    *,
    priority: int | None = None,
    start_after: Duration | datetime | str | None = None,
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
    singleton_next_slot: bool = False,
    debounce_seconds: Duration | None = None,
    group_key: str | None = None,
    id: str | uuid.UUID | None = None,
    conn: Any = None,
    **unknown: Never,
) -> Operation[str | None]:
    """Send one job to ``queue`` and return its id, or ``None`` when the queue's policy
    (or a throttle, or an existing job with the same ``id``) rejected it. A debounced
    send that replaced a waiting job returns that job's id.

    The queue is created with default settings the first time it is used. Options
    left out take the queue's defaults.

    - ``priority``: higher runs first.
    - ``start_after``: a delay (seconds or timedelta), an aware datetime, or ISO 8601
      text with an offset (``"2026-12-05T14:30:00Z"``).
    - ``retry_limit``: retries after the first attempt; ``retry_delay`` between them;
      ``retry_backoff`` doubles the delay each time, with jitter, up to
      ``retry_delay_max``.
    - ``expire_in``: how long one attempt may stay active before its lease lapses.
    - ``retention``: how long the job may wait to start before it is dropped.
    - ``delete_after``: how long a finished job is kept (0 keeps it for good).
    - ``dead_letter``: queue that receives a copy when the job fails for good.
    - ``singleton_key``: the key the queue's policy counts by; with
      ``singleton_seconds``, at most one job per key per time slot (a throttle).
    - ``singleton_next_slot``: when the throttle's slot is taken, the job goes to
      the next slot (and starts no sooner than that slot) instead of being rejected.
    - ``debounce_seconds``: the job starts after this long; a later debounced send
      with the same ``singleton_key`` while it still waits replaces its data and
      options, pushes its start back, and returns its id (the last send wins).
      Needs a ``singleton_key`` and a ``standard`` or ``singleton`` queue.
    - ``group_key``: what the job belongs to (a tenant, a channel); per-key limits
      and fair scheduling count by it.
    - ``id``: your own UUID; sending the same id twice keeps one job.
    - ``conn``: your psycopg connection; the job then commits or rolls back with
      your transaction.

    Example::

        job_id = cv.send("document-parse", {"document_id": "d1"}, priority=10,
                         start_after=60, retry_limit=3, retry_backoff=True)
    """
    validate.unknown_options(unknown, _options.JOB_OPTIONS)
    name = validate.queue_name(queue)
    row = _options.job_row(
        data,
        ctx.max_payload_bytes,
        {
            "priority": priority, "start_after": start_after, "retry_limit": retry_limit,
            "retry_delay": retry_delay, "retry_backoff": retry_backoff,
            "retry_delay_max": retry_delay_max, "expire_in": expire_in,
            "retention": retention, "delete_after": delete_after, "dead_letter": dead_letter,
            "singleton_key": singleton_key, "singleton_seconds": singleton_seconds,
            "singleton_next_slot": singleton_next_slot, "debounce_seconds": debounce_seconds,
            "group_key": group_key, "id": id,
        },
    )
    wakeup = None if conn is not None else ctx.notify_gate.decide(name)
    notify = wakeup is None or wakeup.notifies

    def plan(trace_context: str | None) -> Plan[str | None]:
        traced = row if trace_context is None else row._replace(trace_context=trace_context)
        return send_one(ctx, name, traced, notify)

    return Operation(tracing.sending(name, plan), conn, wakeup=wakeup)


def wake(ctx: Context, queues: list[str]) -> Operation[None]:
    """Notify the workers of ``queues`` (the notifications a client owes for the
    sends its debounce left quiet, ``notify.NotifyGate``)."""

    def plan() -> Plan[None]:
        yield Execute(statements.NOTIFY_QUEUES,
                      {"channel": ctx.queries.schema, "queues": queues})

    return Operation(plan())


def insert(
    ctx: Context, queue: str, items: Iterable[Mapping[str, Any]], *, conn: Any = None
) -> Operation[int]:
    """Insert many jobs into ``queue`` in one transaction, through COPY, and return
    how many were inserted (jobs the queue's policy rejected are not counted).

    Each item is a mapping with ``data`` and any of :meth:`send`'s options; give
    items an ``id`` of your own when you need to know each job's id::

        cv.insert("embed", [{"data": {"chunk": i}, "priority": i % 3} for i in range(100_000)])

    Items are checked as they stream to the database; one bad item raises a typed
    error and nothing is inserted. A debounced item that replaced a waiting job
    counts as inserted; of several debounced items with one key, the last wins.
    With ``conn`` the jobs commit or roll back with your transaction.
    """
    name = validate.queue_name(queue)

    def plan(trace_context: str | None) -> Plan[int]:
        return _insert_many(ctx, name, items, trace_context)

    return Operation(tracing.sending_many(name, plan), conn, atomic=True)
