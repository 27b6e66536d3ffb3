"""What Conveyor reports about itself: a queue's statistics and summary, the
workers alive, the maintenance leader and the health of the whole system. Plain
typed values read from the database, no I/O; also importable from ``conveyor.job``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue at one statistics snapshot (see ``get_stats``): its live jobs by
    state (``created`` due, ``scheduled`` due later), the jobs that finished since
    the snapshot before by outcome, and ``lag``, how long its oldest due job had
    waited (None when none was due)."""

    queue: str
    taken_at: datetime
    created: int
    scheduled: int
    retry: int
    active: int
    completed: int
    cancelled: int
    failed: int
    lag: timedelta | None


@dataclass(frozen=True, slots=True)
class LeaderLease:
    """Who leads maintenance (see ``get_leader``): the holder (host, pid and a
    random part), its term number, and whether its lease is still current."""

    role: str
    holder: str
    term: int
    elected_at: datetime
    expires_at: datetime
    current: bool


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """A queue as it is now (see ``queue_summaries``).

    Live jobs, counted at each call: ``created`` (waiting and due), ``scheduled``
    (created, due later), ``retry`` (waiting out a retry delay) and ``active``.
    ``failed`` is exact up to 1,000; above that it is the count of the last
    statistics snapshot (never below 1,001), so reading it stays quick however many
    failed jobs are kept. ``completed`` and ``cancelled`` are the finished jobs kept,
    and ``completed_total``, ``cancelled_total`` and ``failed_total`` the jobs that
    finished so since the queue's first snapshot; the maintenance leader counts all
    five at each statistics snapshot, at ``counted_at`` (None before the first, when
    they read 0). ``completed_last_hour`` and ``failed_last_hour`` come from the
    statistics history; ``lag`` is how long the oldest due job has waited, and
    ``paused_until`` until when the queue is paused."""

    name: str
    created: int
    scheduled: int
    retry: int
    active: int
    failed: int
    completed: int
    cancelled: int
    counted_at: datetime | None
    completed_total: int
    cancelled_total: int
    failed_total: int
    completed_last_hour: int
    failed_last_hour: int
    lag: timedelta | None
    paused_until: datetime | None

    @property
    def waiting(self) -> int:
        """Jobs that are due and wait for a worker: ``created + retry``."""
        return self.created + self.retry


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process that announced itself (see ``get_workers``): alive while it
    keeps renewing its presence. ``id`` is the same name it stands for leader with."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: datetime
    seen_at: datetime
    alive: bool


@dataclass(frozen=True, slots=True)
class Health:
    """The state of the whole system (see ``health``). ``healthy`` is false when
    ``problems`` names any: the schema is behind this code, or due jobs wait with
    no worker alive. ``warnings`` name what deserves a look without being a fault:
    a queue with a large backlog, no current maintenance leader."""

    healthy: bool
    problems: list[str]
    warnings: list[str]
    schema_version: int
    expected_version: int
    workers_alive: int
    leader: LeaderLease | None
