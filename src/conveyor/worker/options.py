"""A worker's options, their meaning and their defaults: the one place they are
declared. ``Worker`` checks and reads them, ``run()`` takes them, the command
line's flags default to them, and ``tests/test_worker_options.py`` fails when a
docstring or a page of the docs states another default."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict


class WorkerOptions(TypedDict, total=False):
    """How a worker runs; every option has a default (``WORKER_DEFAULTS``).

    - ``shutdown_timeout`` (30 s): how long running handlers may finish when
      stopping; jobs still running then go back to their queue uncounted.
    - ``listen`` (True): wake up on notifications; False polls only (PgBouncer in
      transaction mode).
    - ``lease`` (30 s): how long an attempt's lease lasts between heartbeats, at most
      the job's ``expire_in``; a dead worker's jobs are rescued after about this.
    - ``heartbeat_interval`` (0.5 s): how often leases, progress, time limits and
      cancellations are synced.
    - ``rescue_interval`` (15 s): how often lapsed leases are looked for.
    - ``handle_signals`` (True): stop on SIGTERM and SIGINT when in the main thread.
    - ``tune_gc`` (True): while the worker runs, the garbage collector skips the
      objects alive when it started and collects new ones ten times less often
      (see ``process.fewer_collections``); False leaves the collector alone.
    - ``maintenance`` (True): stand for election as the leader that runs cron
      schedules, retention and statistics (``worker/maintenance.py``); one process of all
      those with it on leads at a time.
    - ``leader_lease`` (15 s): how long the leader's lease lasts; a dead leader is
      replaced after about this long.
    - ``maintenance_interval`` (60 s): how often finished jobs past ``delete_after``
      are deleted and waiting jobs past ``retention`` fail.
    - ``stats_interval`` (60 s): how often a statistics snapshot of every queue is
      taken (``get_stats``, the ``stats`` hook).
    - ``stats_retention`` (7 days): how long snapshots are kept.
    - ``backlog_warning`` (10,000): warn (log and ``warning`` hook) when a queue has
      more jobs waiting; 0 never warns.
    """

    shutdown_timeout: float
    listen: bool
    lease: float
    heartbeat_interval: float
    rescue_interval: float
    handle_signals: bool
    tune_gc: bool
    maintenance: bool
    leader_lease: float
    maintenance_interval: float
    stats_interval: float
    stats_retention: float
    backlog_warning: int


class RunOptions(WorkerOptions, total=False):
    """``run()``'s options: the worker's, and which registrations to run.

    - ``queues``: run only these queues' handlers.
    - ``concurrency``: override every queue's concurrency.
    """

    queues: Iterable[str] | None
    concurrency: int | None


WORKER_DEFAULTS: WorkerOptions = {
    "shutdown_timeout": 30.0, "listen": True, "lease": 30.0, "heartbeat_interval": 0.5,
    "rescue_interval": 15.0, "handle_signals": True, "tune_gc": True,
    "maintenance": True, "leader_lease": 15.0, "maintenance_interval": 60.0,
    "stats_interval": 60.0, "stats_retention": 7 * 86_400.0, "backlog_warning": 10_000,
}
