"""Helpers for testing code that uses Conveyor, against a real PostgreSQL.

- :func:`drain` (:func:`adrain` for an :class:`~conveyor.AsyncConveyor`) runs the
  due jobs of the registered queues in the test itself, with the worker's own
  outcome logic, and says what happened.
- :func:`assert_enqueued` and :func:`assert_not_enqueued` (``aassert_...`` for
  the async client) check what is waiting in a queue.
- :func:`inline` makes ``send`` and ``insert`` run the handlers at once.

Example::

    from conveyor.testing import assert_enqueued, drain

    def test_signup_sends_a_welcome_mail(cv):
        signup(cv, "ada@example.com")
        assert_enqueued(cv, "mail", {"to": "ada@example.com"})

        result = drain(cv, "mail")

        assert result.completed == 1

The pytest fixtures (``conveyor_client``, ...) are in :mod:`conveyor.testing_plugin`;
see ``docs/testing.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from conveyor._assertions import (
    aassert_enqueued,
    aassert_not_enqueued,
    assert_enqueued,
    assert_not_enqueued,
    check_face,
)
from conveyor._db import statements
from conveyor._db.plan import Execute, Operation, Plan, Run
from conveyor._ops import admin, claims, validate
from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import ConveyorError, InvalidArgument
from conveyor.job import Job, JobState
from conveyor.worker.options import RunOptions

__all__ = [
    "DrainResult",
    "aassert_enqueued",
    "aassert_not_enqueued",
    "adrain",
    "assert_enqueued",
    "assert_not_enqueued",
    "drain",
    "inline",
]

T = TypeVar("T")

DEFAULT_MAX_JOBS = 10_000

# A drain is a worker without its loops: no listener, heartbeats, leader or signals.
_WORKER_OPTIONS: RunOptions = {
    "listen": False, "maintenance": False, "handle_signals": False, "tune_gc": False}


# --- drain ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What a drain ran. The counts are of attempts, so a job that failed twice
    and then completed counts two ``retried`` and one ``completed``."""

    completed: int
    """Attempts that completed their job (its output stored)."""
    retried: int
    """Attempts that failed with attempts left: their job went to ``retry``."""
    failed: int
    """Attempts that failed their job for good (``failed``; a copy went to its
    dead-letter queue when it has one)."""
    jobs: list[Job]
    """Every job that ran, as the drain left it, in the order they first ran."""


def _make_due(queue: str) -> Plan[int]:
    count: int = yield Execute(statements.JOBS_MAKE_DUE, {"queue": queue})
    return count


async def _drain(
    cv: Conveyor | AsyncConveyor, run: Run, queue: str | None, max_jobs: int,
    include_delayed: bool,
) -> DrainResult:
    """The one implementation behind :func:`drain` and :func:`adrain`.

    Each call goes through the worker's ``run_call``: the handler's result or
    exception becomes a completion, a retry (``RetryAfter`` and the job's retry
    policy), a final failure (``NonRetryableError``, ``InvalidPayload``) or a pause
    (``PauseGroup``) exactly as under ``run()``, written by a completer, with the
    client's hooks called."""
    limit = validate.integer(max_jobs, "max_jobs", minimum=1)
    make_due = validate.boolean(include_delayed, "include_delayed")
    queues = None if queue is None else [queue]
    options: RunOptions = {**_WORKER_OPTIONS, "queues": queues}
    worker = cv.make_worker(**options)
    context = cv.context
    counts = {JobState.COMPLETED: 0, JobState.RETRY: 0, JobState.FAILED: 0}
    ran: dict[str, Job] = {}
    attempts = 0
    try:
        while attempts < limit:
            before = attempts
            for reg in worker.registrations:
                if attempts >= limit:
                    break
                if make_due:
                    await run(Operation(_make_due(reg.queue)))
                jobs: list[Job] = await run(
                    claims.fetch(context, reg.queue, min(reg.batch_size, limit - attempts)))
                if not jobs:
                    continue
                attempts += len(jobs)
                await worker.run_call(reg, jobs)
                for job in jobs:
                    stored: Job | None = await run(admin.get_job(context, job.id))
                    if stored is None:  # the handler deleted its own job
                        ran.pop(job.id, None)
                        continue
                    ran[job.id] = stored
                    if stored.state in counts:
                        counts[stored.state] += 1
            if attempts == before:
                break
    finally:
        worker.close()
    return DrainResult(completed=counts[JobState.COMPLETED], retried=counts[JobState.RETRY],
                       failed=counts[JobState.FAILED], jobs=list(ran.values()))


def _sync_run(cv: Conveyor) -> Run:
    async def run(op: Operation[T]) -> T:
        return cv.run_operation(op)

    return run


def drain(
    cv: Conveyor, queue: str | None = None, *, max_jobs: int = DEFAULT_MAX_JOBS,
    include_delayed: bool = False,
) -> DrainResult:
    """Run the due jobs of ``queue`` (or of every queue with a handler) with the
    registered handlers, here and now, until none is due; returns what ran.

    Outcomes are recorded as the worker records them: the output is stored, a
    failure is retried by the job's policy and the retry runs in the same drain
    when it is due at once (``retry_delay`` 0, the default), until the job
    completes or fails for good (then its dead-letter copy is sent).

    - Jobs that are not due (``start_after``, a retry delay or backoff) stay
      waiting; ``include_delayed=True`` makes them due first, in every round, so
      delayed jobs and all their retries run now.
    - Calls run one at a time: ``async def`` handlers on an event loop of the
      drain's own, plain ones in a thread, ``executor="process"`` ones in a
      process pool; batch handlers get lists of up to ``batch_size`` jobs.
    - At most ``max_jobs`` attempts run, so a handler that keeps sending jobs
      cannot loop forever. Paused queues and keys, and flow limits, hold jobs back
      as for a worker.
    - It cannot run inside an event loop (an ``async def`` test): use
      :func:`adrain` with an :class:`~conveyor.AsyncConveyor` there.

    Example::

        cv.work("mail", send_mail)
        cv.send("mail", {"to": "ada@example.com"})
        assert drain(cv).completed == 1
    """
    check_face(cv, Conveyor, "`await adrain(cv)` for an AsyncConveyor")
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running: the usual case
        pass
    else:
        raise ConveyorError("drain() cannot run inside an event loop; in async tests use "
                            "an AsyncConveyor and `await adrain(cv)`")
    return asyncio.run(_drain(cv, _sync_run(cv), queue, max_jobs, include_delayed))


async def adrain(
    cv: AsyncConveyor, queue: str | None = None, *, max_jobs: int = DEFAULT_MAX_JOBS,
    include_delayed: bool = False,
) -> DrainResult:
    """:func:`drain` for an :class:`~conveyor.AsyncConveyor`, on the running event
    loop::

        await cv.send("embed", {"chunk": 7})
        result = await adrain(cv, "embed")
    """
    check_face(cv, AsyncConveyor, "drain(cv) for a Conveyor")
    return await _drain(cv, cv.run_operation, queue, max_jobs, include_delayed)


# --- inline mode ------------------------------------------------------------------------

_SENDING = ("send", "insert", "flow", "batch")


@contextlib.contextmanager
def inline(
    cv: Conveyor | AsyncConveyor, queue: str | None = None, *,
    include_delayed: bool = False, max_jobs: int = DEFAULT_MAX_JOBS,
) -> Iterator[list[DrainResult]]:
    """Inside the block, each ``send``, ``insert``, ``flow`` and ``batch`` on ``cv``
    drains right after sending (see :func:`drain`), so the caller finds the jobs
    finished when the call returns. Yields the list of each drain's :class:`DrainResult`::

        with inline(cv) as runs:
            job_id = cv.send("mail", {"to": "ada@example.com"})
        assert cv.get_job(job_id).state == "completed"
        assert runs[0].completed == 1

    It drains ``queue``, or every queue with a handler, so the jobs handlers send
    run too (a send from inside a handler only sends; the drain under way picks
    its job up). The limits of :func:`drain` hold: one call at a time, in the
    test's own process, no leases or heartbeats. A send with ``conn=`` is not
    drained (its job is not committed yet): call :func:`drain` after the commit.
    Works for both clients (``await cv.send(...)`` on an ``AsyncConveyor``).
    """
    # Validated now, not at the first send.
    validate.integer(max_jobs, "max_jobs", minimum=1)
    validate.boolean(include_delayed, "include_delayed")
    if queue is not None:
        validate.queue_name(queue)
    results: list[DrainResult] = []
    draining = False

    def wrap_sync(send: Callable[..., Any]) -> Callable[..., Any]:
        assert isinstance(cv, Conveyor)

        def sending(*args: Any, **kwargs: Any) -> Any:
            nonlocal draining
            sent = send(*args, **kwargs)
            if not draining and kwargs.get("conn") is None:
                draining = True
                try:
                    results.append(drain(cv, queue, max_jobs=max_jobs,
                                         include_delayed=include_delayed))
                finally:
                    draining = False
            return sent

        return sending

    def wrap_async(send: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        assert isinstance(cv, AsyncConveyor)

        async def sending(*args: Any, **kwargs: Any) -> Any:
            nonlocal draining
            sent = await send(*args, **kwargs)
            if not draining and kwargs.get("conn") is None:
                draining = True
                try:
                    results.append(await adrain(cv, queue, max_jobs=max_jobs,
                                                include_delayed=include_delayed))
                finally:
                    draining = False
            return sent

        return sending

    if not isinstance(cv, Conveyor | AsyncConveyor):
        raise InvalidArgument(f"inline() takes a Conveyor or an AsyncConveyor, not "
                              f"{type(cv).__name__}")
    wrap: Callable[[Any], Any] = wrap_async if isinstance(cv, AsyncConveyor) else wrap_sync
    # Instance attributes shadow the class's methods for the block only.
    attributes = vars(cv)
    saved = {name: attributes.get(name) for name in _SENDING}
    for name in _SENDING:
        attributes[name] = wrap(getattr(cv, name))
    try:
        yield results
    finally:
        for name, previous in saved.items():
            if previous is None:
                del attributes[name]
            else:
                attributes[name] = previous
