"""What there is to read about the system as a whole: the statistics history and
who leads (``get_stats``, ``get_leader``; the leader writes both, see
``worker/maintenance.py`` and ``worker/leader.py``), each queue as it is now
(``queue_summaries``), the workers alive (``get_workers``; see
``worker/presence.py``) and a verdict on all of it (``health``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor._db import migrate as migrations
from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Operation, Plan
from conveyor._db.queries import latest_version
from conveyor._ops import validate
from conveyor._ops.options import Duration
from conveyor.reports import Health, LeaderLease, QueueStats, QueueSummary, WorkerInfo

MAINTENANCE = "maintenance"
"""The role whose leader runs schedules, retention and statistics."""
_RECENTLY = timedelta(hours=1)
"""How far back a worker that stopped renewing its presence is reported."""


def get_stats(
    ctx: Context, /, queue: str | None = None, *, since: Duration = 3600, conn: Any = None,
) -> Operation[list[QueueStats]]:
    """The statistics snapshots the leader took in the last ``since`` (seconds or a
    timedelta; an hour by default), of ``queue`` or of every queue, oldest first:
    per snapshot and queue, the jobs waiting and active, the jobs finished since
    the snapshot before (throughput), and the lag of the oldest due job."""
    name = None if queue is None else validate.queue_name(queue)
    window = validate.positive_duration(since, "since")

    def plan() -> Plan[list[QueueStats]]:
        rows = yield Execute(statements.STATS_HISTORY, {"queue": name, "since": window})
        return [QueueStats(**row) for row in rows]

    return Operation(plan(), conn)


def get_leader(ctx: Context, /, *, conn: Any = None) -> Operation[LeaderLease | None]:
    """Who leads maintenance, with its term and whether its lease is current; None
    when no worker has led yet."""

    return Operation(_leader(), conn)


def _leader() -> Plan[LeaderLease | None]:
    row = yield Execute(statements.LEADER_GET, {"role": MAINTENANCE})
    return None if row is None else LeaderLease(**row)


def _summaries() -> Plan[list[QueueSummary]]:
    return [QueueSummary(**row) for row in (yield Execute(statements.QUEUE_SUMMARIES))]


def _workers() -> Plan[list[WorkerInfo]]:
    return [WorkerInfo(**row) for row in (yield Execute(statements.WORKER_LIST))]


def queue_summaries(ctx: Context, /, *, conn: Any = None) -> Operation[list[QueueSummary]]:
    """Every queue as it is now, by name: jobs waiting, running and failed, the
    jobs finished in the last hour (from the statistics history), the lag of the
    oldest due job and until when it is paused. Counts read the live jobs' own
    indexes, never the finished history, so this stays quick on large tables."""
    return Operation(_summaries(), conn)


def get_workers(ctx: Context, /, *, conn: Any = None) -> Operation[list[WorkerInfo]]:
    """The worker processes that announced themselves, alive first: those that
    stopped without a clean shutdown stay listed, not alive, for a day."""
    return Operation(_workers(), conn)


def health(
    ctx: Context, /, *, backlog_warning: int = 10_000, conn: Any = None
) -> Operation[Health]:
    """A verdict on the whole system, for health checks and dashboards::

        report = cv.health()
        if not report.healthy:
            print(report.problems)

    Problems (``healthy`` false): the schema is not this code's version; due jobs
    wait and no worker is alive. Warnings: a queue with more than
    ``backlog_warning`` jobs waiting (0 never warns), workers alive with no current
    maintenance leader, a worker that stopped without a clean shutdown in the last
    hour. A database that cannot be reached raises, as every call does."""
    threshold = validate.integer(backlog_warning, "backlog_warning", minimum=0)
    expected = latest_version()

    def plan() -> Plan[Health]:
        version = yield from migrations.schema_version(ctx).plan
        if version != expected:
            problem = (f"the schema is at version {version}, this code expects {expected}: "
                       "run `conveyor migrate`")
            return Health(False, [problem], [], version, expected, 0, None)
        summaries = yield from _summaries()
        workers = yield from _workers()
        leader = yield from _leader()
        return _verdict(threshold, version, expected, summaries, workers, leader)

    return Operation(plan(), conn)


def _verdict(
    backlog_warning: int, version: int, expected: int, summaries: list[QueueSummary],
    workers: list[WorkerInfo], leader: LeaderLease | None,
) -> Health:
    problems: list[str] = []
    warnings: list[str] = []
    alive = [w for w in workers if w.alive]
    due = [s.name for s in summaries if s.lag is not None and s.paused_until is None]
    if due and not alive:
        problems.append(f"jobs are due in {', '.join(due)} and no worker is alive")
    if alive and (leader is None or not leader.current):
        warnings.append("no maintenance leader: schedules, retention and statistics are not "
                        "running (is every worker started with maintenance=False?)")
    for s in summaries:
        if backlog_warning and s.waiting > backlog_warning:
            warnings.append(f"queue {s.name!r} has {s.waiting:,} jobs waiting")
    now = datetime.now(UTC)
    for w in workers:
        if not w.alive and now - w.seen_at < _RECENTLY:
            warnings.append(f"worker {w.id} stopped renewing its presence at "
                            f"{w.seen_at:%Y-%m-%d %H:%M:%S %Z} without a clean shutdown")
    return Health(not problems, problems, warnings, version, expected,
                  len(alive), leader)
