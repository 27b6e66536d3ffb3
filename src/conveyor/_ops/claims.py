"""Claiming jobs and settling their outcome: ``fetch``, ``complete``, ``fail``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from psycopg import errors as pg_errors

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Failure, Operation, Plan, Together
from conveyor._db.queries import Statement
from conveyor._db.rows import JobDefaults, JobRef, claimed_jobs, in_claim_order, job_from_row
from conveyor._ops import dependencies, validate
from conveyor._ops.options import Duration
from conveyor.errors import InvalidOption, LeaseExpired
from conveyor.job import Job, control_of

_CLAIM_RACE_RETRIES = 3


def claim(
    queue: str, limit: int, lease: timedelta | None = None, *, schema: str,
    flow: FlowState | None = None, visibility: timedelta | None = None, pop: bool = False,
    lapsed: Callable[[], Plan[object]] | None = None,
) -> Plan[list[Job]]:
    """Claims up to ``limit`` jobs; ``lease`` shortens their leases below
    ``expire_in`` for workers that renew them by heartbeat, and ``visibility``
    (a fetch's) replaces ``expire_in`` for the attempt. With ``pop`` the jobs are
    completed in the same statement (``pop_update.sql``). When the queue's flow
    state is looked up here and says a lease lapsed, ``lapsed`` settles such jobs
    first (a fetch's: decision 42), and the state is read again.

    ``flow`` says whether the queue is under flow control (limits or fairness,
    ``claim_flow.sql``) and whether it may hold jobs without a group key; ``None``
    looks it up first. A flow claim takes the queue's lock and claims in one
    transaction of its own, sent at once, so the lock is held only while the
    server works.

    A worker passes the ``flow`` it read with the queue's defaults, on Conveyor's
    own connections: its claims then return only what the worker cannot know
    (``claimed_columns.sql``). Without it (``fetch``, possibly on a connection of
    the caller's, in any time zone) they return every column.
    """
    params: dict[str, Any] = {"queue": queue, "limit": limit, "lease": lease,
                              "visibility": visibility}
    # Looked up here means run in one transaction (fetch), where a failed statement
    # ends the transaction: a lost race then claims nothing rather than retrying.
    retries = _CLAIM_RACE_RETRIES if flow is not None else 1
    defaults = None if flow is None else flow.defaults
    if flow is None:
        flow = yield from flow_state(queue)
        if flow.lapsed and lapsed is not None:
            yield from lapsed()
            flow = yield from flow_state(queue)
    plain, flowing = statements.CLAIM, statements.CLAIM_FLOW
    if pop:
        plain, flowing = statements.POP, statements.POP_FLOW
    elif defaults is not None:
        params.update(defaults._asdict())
        plain, flowing = statements.CLAIM_WORKER, statements.CLAIM_FLOW_WORKER
    if flow.controlled:
        params["unkeyed"] = flow.unkeyed
        _, rows = yield Together((
            Execute(statements.CLAIM_FLOW_LOCK, {"schema": schema, "queue": queue}),
            Execute(flowing, params)))
        return _jobs(rows, queue, defaults, lease)
    for attempt in range(retries):
        try:
            rows = yield Execute(plain, params)
        except Failure as failure:
            # Two claims raced for the same key of a singleton or stately queue: the
            # unique index let one win. The loser tries again.
            if not isinstance(failure.cause, pg_errors.UniqueViolation):
                raise
            if attempt == retries - 1:
                return []
            continue
        return _jobs(rows, queue, defaults, lease)
    return []


def _jobs(
    rows: list[Any], queue: str, defaults: JobDefaults | None, lease: timedelta | None
) -> list[Job]:
    """The Jobs of a claim's rows: every column (``job_columns.sql``), or a worker's
    (``claimed_columns.sql``) when it sent the queue's ``defaults``."""
    if defaults is None:
        return in_claim_order([job_from_row(row) for row in rows])
    return claimed_jobs(rows, queue, defaults, lease)


def held_back(queue: str) -> Plan[bool]:
    """Whether ``queue`` has due jobs waiting after a claim (``queue_held_back.sql``)."""
    row = yield Execute(statements.QUEUE_HELD_BACK, {"queue": queue})
    return bool(row and row["held_back"])


class FlowState(NamedTuple):
    """How claims of a queue go (``queue_flow.sql``)."""

    controlled: bool
    """Through flow control (``claim_flow.sql``): the queue has limits or is fair."""
    unkeyed: bool
    """Due jobs without a group key may be waiting, so flow claims look for them."""
    defaults: JobDefaults | None = None
    """The queue's job defaults, which a worker's claims leave out of the rows."""
    lapsed: bool = False
    """An active job's lease lapsed: a fetch settles such jobs before it claims."""


UNLIMITED = FlowState(controlled=False, unkeyed=False)


def flow_state(queue: str) -> Plan[FlowState]:
    """Whether claims of ``queue`` go through flow control, whether due jobs
    without a group key wait in it, and the defaults of its jobs
    (``queue_flow.sql``)."""
    row = yield Execute(statements.QUEUE_FLOW, {"queue": queue})
    if not row:
        return UNLIMITED
    return FlowState(bool(row["flow"]), bool(row["unkeyed"]),
                     JobDefaults(*(row[name] for name in JobDefaults._fields)),
                     bool(row["lapsed"]))


def fetch(ctx: Context, /, queue: str, batch_size: int = 1, *,
          visibility: Duration | None = None, wait: Duration | None = None,
          ) -> Operation[list[Job]]:
    """Claim up to ``batch_size`` due jobs of ``queue`` and return them, now
    ``active``: highest priority first, then the longest waiting.

    Each claimed job holds a lease of ``visibility`` (seconds or a timedelta; by
    default its ``expire_in``): until then no other fetch or worker gets it. Finish
    it with :meth:`complete` or :meth:`fail`, passing the :class:`Job` so that the
    attempt fences the outcome; :meth:`extend` lengthens the lease and
    :meth:`release` gives the job back. Concurrent fetches never return the same
    job.

    A job whose lease lapsed comes back without any worker running: each fetch
    first settles up to ``batch_size`` lapsed jobs of its queue as failed attempts
    (``LeaseExpired``), so ``retry_limit`` counts deliveries and ``dead_letter``
    takes a job delivered too often, and a job retried at once is fetched again.

    With ``wait`` (seconds), a fetch that finds nothing waits up to that long for
    jobs to arrive (woken by the queue's notification, holding no connection while
    it waits; behind a transaction pooler it polls) and returns what it claimed
    then, or an empty list::

        for job in cv.fetch("wf", batch_size=10, visibility=30, wait=5):
            ...
            cv.complete(job, output)
    """
    name = validate.queue_name(queue)
    limit = validate.integer(batch_size, "batch_size", minimum=1)
    lease = None if visibility is None else validate.positive_duration(visibility, "visibility")
    if wait is not None:
        validate.duration(wait, "wait")  # the faces wait; checked here with the rest
    error = validate.error_json(
        LeaseExpired("the lease of a fetched attempt lapsed before it was finished"),
        ctx.max_payload_bytes)

    def plan() -> Plan[list[Job]]:
        return (yield from claim(name, limit, schema=ctx.queries.schema, visibility=lease,
                                 lapsed=lambda: rescue(ctx, limit, error, queue=name)))

    return Operation(plan(), atomic=True)


def pop(ctx: Context, /, queue: str, batch_size: int = 1) -> Operation[list[Job]]:
    """Claim up to ``batch_size`` due jobs of ``queue`` and complete them in the same
    statement, returning them ``completed``: at most once, as PGMQ's ``pop``. A job
    popped is never delivered again, whatever happens to the caller; what waits for
    it (the steps of a flow) is released at once."""
    name = validate.queue_name(queue)
    limit = validate.integer(batch_size, "batch_size", minimum=1)

    def plan() -> Plan[list[Job]]:
        jobs = yield from claim(name, limit, schema=ctx.queries.schema, pop=True)
        waited = [job.id for job in jobs if job.has_dependents]
        if waited:
            yield dependencies.settle(ctx, waited)
        return jobs

    return Operation(plan(), atomic=True)


def extend(ctx: Context, /, jobs: Job | Iterable[Job], visibility: Duration, *,
           conn: Any = None) -> Operation[int]:
    """Make the leases of fetched jobs end ``visibility`` (seconds or a timedelta)
    from now, for as long as each attempt still holds its job; returns how many
    were extended. A job left out of the count is no longer yours: its lease lapsed
    and it was fetched again, or it was cancelled or finished. Stop working on it."""
    ids, attempts = _attempts(jobs, "extend")
    lease = validate.positive_duration(visibility, "visibility")

    def plan() -> Plan[int]:
        rows = yield Execute(statements.EXTEND, {"id": ids, "attempt": attempts,
                                                 "lease": lease})
        return len(rows)

    return Operation(plan(), conn)


def release(ctx: Context, /, jobs: Job | Iterable[Job], delay: Duration = 0, *,
            conn: Any = None) -> Operation[int]:
    """Give fetched jobs back to their queue, due again after ``delay`` (seconds or a
    timedelta; at once by default), without counting a failed attempt; returns how
    many were given back (fenced by attempt, as :meth:`complete`). A job's
    ``attempt`` keeps counting its deliveries, so one released over and over shows
    an ``attempt`` far above its ``retry_count``."""
    ids, attempts = _attempts(jobs, "release")
    after = validate.duration(delay, "delay")
    return Operation(hand_back(ctx, ids, attempts, after), conn)


def _attempts(jobs: object, action: str) -> tuple[list[uuid.UUID], list[int]]:
    """The ids and attempts of fetched jobs: only a :class:`Job` names its attempt."""
    items = validate.job_refs(jobs)
    fetched = [item for item in items if isinstance(item, Job)]
    if len(fetched) < len(items):
        raise InvalidOption(f"{action} takes the Job that fetch returned (its attempt "
                            "fences the change), not an id")
    return [validate.job_id(job) for job in fetched], [job.attempt for job in fetched]


def _fence(jobs: object) -> tuple[list[uuid.UUID], list[int | None]]:
    """Ids, and the attempt of each one given as a Job (``None`` for bare ids)."""
    items = validate.job_refs(jobs)
    ids = [validate.job_id(item) for item in items]
    attempts = [item.attempt if isinstance(item, Job) else None for item in items]
    return ids, attempts


def _failed(ctx: Context, params: dict[str, Any]) -> Plan[int]:
    """Records failed attempts, and settles what waits for the jobs that failed for good."""
    return (yield from write_outcomes(ctx, statements.FAIL, params, None, len))


def _completed(ctx: Context, params: dict[str, Any]) -> Plan[int]:
    return (yield from write_outcomes(ctx, statements.COMPLETE, params, None, int))


def write_outcomes(
    ctx: Context, statement: Statement, plain: dict[str, Any] | None,
    waited: dict[str, Any] | None, written: Callable[[Any], int],
) -> Plan[int]:
    """Writes outcomes with ``statement`` (``complete.sql`` or ``fail.sql``; its
    parameters for the jobs not known to be waited for, ``plain``, and for those
    known to be, ``waited``); returns how many jobs it changed (``written`` counts
    a statement's result).

    The plain jobs are written by the statement alone, which skips jobs marked as
    waited for (``has_dependents``): one statement, with nothing to settle. The
    waited-for jobs are written with the settling of what waits for them
    (``settle_dependents.sql``). Both go in one transaction sent at once (a
    pipeline), or the first alone when there are no waited-for jobs. When the first
    wrote fewer jobs than it was given (one was marked while it ran, or was fenced
    out, which it cannot tell apart), they are written again with the settling. A
    marked job is never finished without its settling, so no crash between two
    statements leaves a dependent behind; and a job marked while it ran is skipped
    once its mark committed (``mark_waited.sql``), so the settling sees what was
    added."""
    steps: list[Execute] = []
    if plain is not None:
        steps.append(Execute(statement, {**plain, "unwaited": True}))
    if waited is not None:
        steps += [Execute(statement, waited), dependencies.settle(ctx, waited["id"])]
    results = [(yield steps[0])] if len(steps) == 1 else (yield Together(tuple(steps)))
    counts = [written(result) for result, step in zip(results, steps, strict=True)
              if step.statement is statement]
    if plain is not None and counts[0] < len(plain["id"]):
        again = yield Together((Execute(statement, plain), dependencies.settle(ctx, plain["id"])))
        counts.append(written(again[0]))
    return sum(counts)


def complete(
    ctx: Context, jobs: JobRef | Iterable[JobRef], output: Any = None, *, conn: Any = None
) -> Operation[int]:
    """Mark active jobs ``completed``, storing ``output`` as their result. Returns
    how many were completed.

    A :class:`Job` returned by :meth:`fetch` completes only while that attempt still
    holds it; a bare id completes the job whatever attempt is running. With ``conn``
    the completion commits with your own transaction, together with your business
    state.

    Inside a worker's handler, completing the handler's own job with ``conn`` is the
    way to make business state and job state commit together::

        @cv.task("charge")
        def charge(job: Job) -> dict:
            with psycopg.connect(url) as conn, conn.transaction():
                conn.execute("UPDATE orders SET paid = true WHERE id = %s", (job.data["order"],))
                cv.complete(job, conn=conn)
            return {"charged": True}       # stored as the output: complete() gave none

    The worker then records only what is left: the handler's return value, when
    ``complete`` gave no output (an output given to ``complete`` wins, and a
    different return value is reported by a warning), and its completion if your
    transaction rolled back while the handler still returned.
    """
    ids, attempts = _fence(jobs)
    encoded = validate.encode_json(output, ctx.max_payload_bytes, "output")
    if conn is not None:
        for item in validate.job_refs(jobs):
            control = control_of(item)  # a handler's own running job
            if control is not None:
                control.completed_in_transaction(encoded)
    outcomes = [
        Outcome(job_id, attempt, output=encoded)
        for job_id, attempt in zip(ids, attempts, strict=True)
    ]
    return Operation(_completed(ctx, complete_params(outcomes)), conn, atomic=True)


class Outcome(NamedTuple):
    """How one attempt ended, as the batched statements take it: ``output`` for a
    completion, ``error`` (JSON text) for a failure, and ``progress`` (JSON text)
    reported since the last heartbeat, which would otherwise be lost."""

    id: uuid.UUID | str
    attempt: int | None
    output: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None
    final: bool = False
    progress: str | None = None
    waited: bool = False
    """Whether something waited for the job when it was claimed: the completer
    writes it with the settling at once."""


_new_tuple = tuple.__new__


def completion(
    *, id: uuid.UUID | str, attempt: int | None, output: str | None, progress: str | None,
    waited: bool = False,
) -> Outcome:
    """``Outcome(id=..., attempt=..., output=..., progress=...)`` in a third less
    time: one is made for every job a worker completes, and a NamedTuple's own
    constructor is slow with keyword arguments."""
    return _new_tuple(Outcome, (id, attempt, output, None, None, False, progress, waited))


def _sparse(values: list[str | None]) -> list[str | None] | None:
    """``values``, or a NULL array when all are NULL (common: no outputs, no
    progress), which unnest pads with NULLs, instead of adapting one NULL per job."""
    return values if any(value is not None for value in values) else None


def complete_params(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {
        "id": [o.id for o in outcomes],
        "attempt": [o.attempt for o in outcomes],
        "output": _sparse([o.output for o in outcomes]),
        "progress": _sparse([o.progress for o in outcomes]),
        "unwaited": False,
    }


def complete_settled(ctx: Context, outcomes: Sequence[Outcome]) -> Plan[int]:
    """Records the outcomes of jobs their handler completed in its own transaction
    (``complete_settled.sql``), and settles what waits for them; returns how many
    rows it changed. Run atomically."""
    params = complete_params(outcomes)
    count: int = yield from dependencies.finish(ctx, statements.COMPLETE_SETTLED, params,
                                                params["id"])
    return count


def fail_params(ctx: Context, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Parameters of ``fail.sql``; the schema's channel is notified of retries that
    are due at once."""
    return {
        "channel": ctx.queries.schema,
        "id": [o.id for o in outcomes],
        "attempt": [o.attempt for o in outcomes],
        "error": [o.error for o in outcomes],
        "retry_after": [o.retry_after for o in outcomes],
        "final": [o.final for o in outcomes],
        "progress": _sparse([o.progress for o in outcomes]),
        "unwaited": False,
    }


def fail(
    ctx: Context,
    /,
    jobs: JobRef | Iterable[JobRef],
    error: BaseException | Mapping[str, Any] | str | None = None,
    *,
    retry_after: Duration | None = None,
    retry: bool = True,
    conn: Any = None,
) -> Operation[int]:
    """Record a failed attempt of active jobs. Returns how many were updated.

    While attempts remain (``retry_count < retry_limit``) a job goes to ``retry``
    and runs again after ``retry_after`` when given, else after its backoff or
    ``retry_delay``. Otherwise, or with ``retry=False``, it becomes ``failed``, and
    a copy goes to its dead-letter queue when it has one. ``error`` may be an
    exception (its type, message and traceback are stored), a dict or a string.
    """
    ids, attempts = _fence(jobs)
    encoded = validate.error_json(error, ctx.max_payload_bytes)
    delay = None if retry_after is None else validate.duration(retry_after, "retry_after")
    final = not validate.boolean(retry, "retry")
    outcomes = [
        Outcome(job_id, attempt, error=encoded, retry_after=delay, final=final)
        for job_id, attempt in zip(ids, attempts, strict=True)
    ]
    return Operation(_failed(ctx, fail_params(ctx, outcomes)), conn, atomic=True)


# --- for workers ------------------------------------------------------------------------


def heartbeat(
    ids: Sequence[uuid.UUID | str], attempts: Sequence[int], progress: Sequence[str | None],
    lease: timedelta,
) -> Plan[set[str]]:
    """Renews leases and stores progress; returns the ids whose attempt still holds
    its job."""
    rows = yield Execute(statements.HEARTBEAT, {"id": ids, "attempt": attempts,
                                                "progress": _sparse(list(progress)),
                                                "lease": lease})
    return {str(row["id"]) for row in rows}


def rescue(ctx: Context, limit: int, error: str, *, queue: str | None = None) -> Plan[int]:
    """Settles up to ``limit`` jobs whose lease lapsed as failed attempts (retried or
    failed by their policy), of every queue or of ``queue``. Run atomically: the
    rows stay locked in between."""
    if queue is None:
        rows = yield Execute(statements.LEASE_EXPIRED, {"limit": limit})
    else:
        rows = yield Execute(statements.LEASE_EXPIRED_QUEUE, {"limit": limit, "queue": queue})
    if not rows:
        return 0
    outcomes = [Outcome(row["id"], row["attempt"], error=error) for row in rows]
    return (yield from _failed(ctx, fail_params(ctx, outcomes)))


def hand_back(ctx: Context, ids: Sequence[uuid.UUID | str], attempts: Sequence[int],
              delay: timedelta = timedelta(0)) -> Plan[int]:
    """Hands jobs back to their queue without counting an attempt (a worker that
    stops, a consumer's ``release``), due after ``delay``."""
    params = {"id": ids, "attempt": attempts, "channel": ctx.queries.schema, "delay": delay}
    return len((yield Execute(statements.RELEASE, params)))
