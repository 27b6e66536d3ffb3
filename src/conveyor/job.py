"""Plain typed data: jobs, their states, queues and their policies, schedules. No
I/O here (what Conveyor reports about itself is in ``conveyor.reports``).

One link goes beyond data: a worker hands a handler a Job made for that attempt
alone, attached to the attempt's control (``attach_control``), which
``job.progress(...)``, ``job.heartbeat()``, ``job.cancelled`` and
``complete(job, conn=...)`` reach. The attachment is read and written only by
the functions at the end of this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, overload

from conveyor.reports import Health as Health
from conveyor.reports import LeaderLease as LeaderLease
from conveyor.reports import QueueStats as QueueStats
from conveyor.reports import QueueSummary as QueueSummary
from conveyor.reports import WorkerInfo as WorkerInfo


class JobState(StrEnum):
    """Where a job is in its life: ``created → active → completed``.

    A failed attempt moves an active job to ``retry`` while attempts remain, then to
    ``failed``. ``cancelled`` is reached by :meth:`Conveyor.cancel`. A step of a flow
    starts ``waiting`` and becomes ``created`` when its dependencies have finished.
    The order of the members is the order PostgreSQL sorts them in.
    """

    CREATED = "created"
    RETRY = "retry"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    WAITING = "waiting"
    """A step of a flow whose dependencies have not all finished (:meth:`Conveyor.flow`):
    not claimable until they have."""

    @property
    def is_finished(self) -> bool:
        """True for the states a job never leaves by itself."""
        return self in (JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED)


class QueuePolicy(StrEnum):
    """How many jobs may share a singleton key, enforced by unique indexes.

    Jobs sent without a ``singleton_key`` share one key (the empty one).
    """

    STANDARD = "standard"
    """No limit."""
    SHORT = "short"
    """At most one queued (``created``) job per key."""
    SINGLETON = "singleton"
    """At most one ``active`` job per key; others wait their turn."""
    STATELY = "stately"
    """At most one job per key in each of ``created``, ``retry`` and ``active``."""
    EXCLUSIVE = "exclusive"
    """At most one job per key that is queued, retrying or active."""


class Progress(dict[str, Any]):
    """A job's last reported progress: ``{"percent": 40, "message": "..."}``, or
    empty when none was reported.

    Inside a handler, calling it reports new progress, which the worker stores with
    its next heartbeat (within a second); ``get_job`` then shows it::

        job.progress(40, "page 4 of 10")
    """

    __slots__ = ("_control",)

    def __init__(self, value: dict[str, Any] | None = None) -> None:
        if value:
            super().__init__(value)
        self._control: AttemptControl | None = None

    def __call__(self, percent: float, message: str | None = None) -> None:
        if self._control is None:
            raise RuntimeError("progress can be reported inside a worker's handler only")
        self._control.report_progress(percent, message)

    def __reduce__(self) -> tuple[Any, ...]:  # crosses into worker processes without control
        return (Progress, (dict(self),))

    @property
    def percent(self) -> float | None:
        return self.get("percent")

    @property
    def message(self) -> str | None:
        return self.get("message")


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored. Durations are ``timedelta``; times are aware ``datetime``."""

    id: str
    queue: str
    state: JobState
    data: Any
    output: Any
    error: dict[str, Any] | None
    priority: int
    retry_count: int
    retry_limit: int
    start_after: datetime
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    singleton_key: str | None
    progress: Progress
    """The last progress reported (empty when none); inside a handler, call it to
    report: ``job.progress(40, "page 4 of 10")``."""
    attempt: int
    """How many times the job was claimed; fences completions of a stale attempt."""
    retry_delay: timedelta
    retry_backoff: bool
    retry_delay_max: timedelta | None
    expire_in: timedelta
    keep_until: datetime
    delete_after: timedelta
    dead_letter: str | None
    singleton_on: datetime | None
    policy: QueuePolicy
    lease_expires_at: datetime | None
    group_key: str | None
    """What the job belongs to (a tenant, a channel): per-key limits, pauses and
    fair claiming count by it."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Every failed attempt's error, oldest first (``error`` is the last one)."""
    trace_context: dict[str, str] | None = None
    """The W3C trace context (``traceparent``, ``tracestate``) of the span that sent
    the job, when :mod:`conveyor.tracing` was on; ``None`` otherwise."""
    source_id: str | None = None
    """On a dead-letter copy, the id of the job that failed for good (whose final
    error is the copy's ``error``); ``None`` on every other job."""
    source_queue: str | None = None
    """On a dead-letter copy, the queue of the job that failed for good."""
    dependency_outputs: dict[str, Any] = field(default_factory=dict)
    """For a step of a flow: the outputs of the jobs it depends on that completed, by
    their ref in the flow (by id for jobs from outside it). Empty for other jobs."""
    dependency_counts: dict[str, int] | None = None
    """For a step of a flow: how many of its dependencies ``completed``, ``failed``
    and were ``cancelled`` (a batch's callback reads its batch's counts here);
    ``None`` for other jobs."""
    has_dependents: bool = False
    """Whether something waits for this job: a step of a flow that depends on it, or
    a caller of ``wait_for``. Its finishing then settles them in the same
    transaction."""
    _control: AttemptControl | None = field(default=None, repr=False, compare=False)
    """The running attempt's control, inside a handler: see ``attach_control``."""

    # --- inside a handler ----------------------------------------------------------------

    def heartbeat(self) -> None:
        """Ask for more time: the attempt's time limit starts again from now
        (``expire_in`` more), and the lease is renewed at the next heartbeat."""
        control = self._control
        if control is None:
            raise RuntimeError("heartbeat() works inside a worker's handler only")
        control.extend()

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled, timed out, or the worker is stopping.
        Thread and process handlers cannot be interrupted: long ones should check
        this between steps and return early."""
        control = self._control
        return control is not None and control.cancelled


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue's policy and the defaults its jobs take when a send leaves them out."""

    name: str
    policy: QueuePolicy
    priority: int
    retry_limit: int
    retry_delay: timedelta
    retry_backoff: bool
    retry_delay_max: timedelta | None
    expire_in: timedelta
    retention: timedelta
    delete_after: timedelta
    dead_letter: str | None
    created_at: datetime
    updated_at: datetime
    paused_until: datetime | None
    """No job is claimed before this time (``None``: not paused). A pause without an
    end is stored as the last day of year 9999."""
    rate_limit: int | None
    """At most this many jobs started per ``rate_period``, across all workers."""
    rate_period: timedelta | None
    group_concurrency: int | None
    """At most this many active jobs per group key (unless the key overrides it)."""
    group_rate_limit: int | None
    """At most this many jobs started per ``group_rate_period`` per group key."""
    group_rate_period: timedelta | None
    fair: bool
    """Claims take jobs from every group key in turn rather than oldest first."""


@dataclass(frozen=True, slots=True)
class Group:
    """The settings of one group key of a queue that override the queue's
    (``None``: the queue's applies), and its pause."""

    queue: str
    group_key: str
    concurrency: int | None
    rate_limit: int | None
    rate_period: timedelta | None
    paused_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, eq=False)
class JobPage(Sequence[Job]):
    """One page of :meth:`Conveyor.find_jobs`, newest first: a read-only sequence
    of its jobs (``page[0]``, ``page[:10]``, ``len(page)``, ``if page:``, ``for job
    in page``), equal to a list of the same jobs.

    Pass ``next_cursor`` back as ``cursor`` to read the next page; it is ``None``
    on the last page.
    """

    jobs: list[Job]
    next_cursor: str | None

    @overload
    def __getitem__(self, index: int) -> Job: ...

    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...

    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        return self.jobs[index]

    def __iter__(self) -> Iterator[Job]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __bool__(self) -> bool:
        return bool(self.jobs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JobPage):
            return self.jobs == other.jobs and self.next_cursor == other.next_cursor
        if isinstance(other, list):
            return self.jobs == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule: the job it sends to ``queue`` at every tick of ``cron`` in
    the time zone ``tz`` (see :meth:`Conveyor.schedule`)."""

    name: str
    queue: str
    cron: str
    tz: str
    data: Any
    options: dict[str, Any]
    """The send options of its jobs (durations in seconds)."""
    missed: str
    """After downtime: ``"once"`` (one job for all the missed ticks) or ``"skip"``."""
    next_tick: datetime | None
    """The next tick that has not been enqueued yet; None while paused (resuming
    starts from the first tick after the resume)."""
    created_at: datetime
    updated_at: datetime
    paused: bool
    """Whether its ticks are paused (see :meth:`Conveyor.pause_schedule`)."""
    last_tick_at: datetime | None
    """When it last sent a job, at a tick or run by hand; None if it never did."""
    last_job_id: str | None
    """The id of that job; None if it never ran, or if the queue's policy turned
    the job away."""
    last_job_state: JobState | None
    """The state of that job now; None when it is gone (deleted after its
    retention) or there is none."""


# --- the running attempt ----------------------------------------------------------------


class AttemptControl(Protocol):
    """What a handler's calls on its job reach: ``worker.control.JobControl``."""

    @property
    def cancelled(self) -> bool: ...

    def extend(self) -> None: ...

    def report_progress(self, percent: float, message: str | None) -> None: ...

    def completed_in_transaction(self, output: str | None) -> None: ...


_set_control: Any = vars(Job)["_control"].__set__
"""A frozen job's ``_control`` slot, set by the slot's own setter: twice as fast as
``object.__setattr__``, and run for every job a worker starts."""


def attach_control(job: Job, control: AttemptControl) -> None:
    """Attach the running attempt's ``control`` to ``job`` and its ``progress``.

    Only for a Job made for this attempt alone (a worker's claim makes one per
    attempt): attaching to it costs less than a copy. The control outlives the
    handler call, so a thread still running after the worker stopped waiting for
    it sees ``job.cancelled``."""
    _set_control(job, control)
    job.progress._control = control


def control_of(job: object) -> AttemptControl | None:
    """The control attached to ``job``, when it is a Job a worker handed a handler."""
    return job._control if isinstance(job, Job) else None


def without_control(job: Job) -> Job:
    """A copy of ``job`` with nothing attached, for a handler in another process."""
    return replace(job, _control=None, progress=Progress(job.progress))
