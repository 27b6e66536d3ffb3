"""Maintenance, run by the elected leader (``worker/leader.py``) among worker processes.

- **Schedules**: every second, the jobs of due cron ticks (``scheduler.tick``).
- **Held steps**: every second, steps of a flow whose dependencies finished but
  whose queue policy's key was taken are released once it is free
  (``release_held.sql``).
- **Retention**: every ``maintenance_interval``, finished jobs past their
  ``delete_after`` are deleted and waiting jobs past their ``retention`` fail
  (``maintenance_delete.sql``, ``maintenance_expire.sql``), in batches; workers
  whose presence expired a day ago are forgotten (``maintenance_workers.sql``).
- **Statistics**: every ``stats_interval``, a snapshot of each queue into
  ``queue_stats`` (``stats_snapshot.sql``), kept for ``stats_retention``; the
  ``stats`` hook receives it, and the ``warning`` hook a backlog over
  ``backlog_warning`` waiting jobs.
- **Warnings** (logged, and the ``warning`` hook): a maintenance statement slower
  than ``SLOW``; the application's clock more than ``SKEW`` seconds away from the
  database's; autovacuum off for the job table (checked with the statistics).

Every action runs in its own transaction behind the leader's fence, so a process
that lost the lease cannot act. Rescuing lapsed leases is not here: every worker
does it (``lease_expired.sql`` skips locked rows), so a dead leader never delays
the rescue of the jobs it held.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Operation, Plan, Run
from conveyor._ops import dependencies, validate
from conveyor.errors import ConveyorError
from conveyor.hooks import HookEvent, Hooks
from conveyor.reports import QueueStats
from conveyor.worker.leader import Leader, NotLeader, Term, fenced

log = logging.getLogger("conveyor.maintenance")


BATCH = 1000
"""Jobs deleted or expired per statement."""
ROUNDS = 20
"""Batches per retention pass at most; the next pass goes on."""
SCHEDULE_INTERVAL = 1.0
SLOW = 5.0
"""Seconds after which a maintenance statement is reported as slow."""
SKEW = 1.0
"""Seconds of clock difference with the database that are reported."""
WARN_AGAIN = 600.0
"""Seconds before the same warning is given again."""


def delete_finished(limit: int = BATCH) -> Plan[int]:
    """Deletes up to ``limit`` finished jobs past their ``delete_after`` (but none
    that steps of a flow still wait on)."""
    row = yield Execute(statements.MAINTENANCE_DELETE, {"limit": limit})
    return int(row["deleted"])


def expire_waiting(ctx: Context, limit: int = BATCH) -> Plan[int]:
    """Fails up to ``limit`` waiting jobs past their retention, and settles what
    waits for them."""
    error = validate.error_json(
        {"type": "retention", "message": "waited longer than its queue's retention "
         "without being claimed"}, 10_000)
    rows = yield from dependencies.finish(ctx, statements.MAINTENANCE_EXPIRE,
                                          {"limit": limit, "error": error})
    return len(rows)


def forget_workers() -> Plan[int]:
    """Forgets workers whose presence expired long ago (``maintenance_workers.sql``),
    and waiters of ``wait_for`` their process left behind (``maintenance_waiters.sql``)."""
    count: int = yield Execute(statements.MAINTENANCE_WORKERS)
    yield Execute(statements.MAINTENANCE_WAITERS)
    return count


def autovacuum_on() -> Plan[bool]:
    """Whether autovacuum cleans the job table (``maintenance_autovacuum.sql``)."""
    row = yield Execute(statements.MAINTENANCE_AUTOVACUUM)
    return bool(row and row["on"])


def snapshot(interval: timedelta, keep: timedelta) -> Plan[list[QueueStats]]:
    """Takes a statistics snapshot of every queue and forgets those older than
    ``keep``."""
    since = yield Execute(statements.STATS_SINCE, {"interval": interval})
    rows = yield Execute(statements.STATS_SNAPSHOT, {"since": since["since"]})
    yield Execute(statements.STATS_PRUNE, {"keep": keep})
    return [QueueStats(**row) for row in rows]


class Maintenance:
    """A worker process's part in maintenance: stand for election, and while
    leading, run what is due."""

    def __init__(
        self, run: Run, hooks: Hooks, ctx: Context, *, schedules: Callable[[], Plan[int]],
        lease: float,
        interval: float, stats_interval: float, stats_retention: float, backlog_warning: int,
        run_tasks: Run | None = None,
    ) -> None:
        """``schedules`` makes the plan that sends the jobs of due ticks. ``run``
        runs the elections; ``run_tasks`` (``run`` when None) runs the tasks, whose
        statements may rightly outlast the deadline a worker puts on its own."""
        self._run = run if run_tasks is None else run_tasks
        self._ctx = ctx
        self._hooks = hooks
        self.leader = Leader(run, lease=lease)
        self._interval = interval
        self._stats_interval = stats_interval
        self._stats_retention = stats_retention
        self._backlog_warning = backlog_warning
        self._schedules = schedules
        self._next: dict[str, float] = {}
        self._warned: dict[str, float] = {}

    async def run(self) -> None:
        """Until cancelled: renew or seek the lease every third of it, and between
        renewals run the tasks that are due while leading."""
        renew_every = self.leader.lease / 3
        next_renewal = 0.0
        while True:
            now = time.monotonic()
            if now >= next_renewal:
                next_renewal = now + renew_every * random.uniform(0.9, 1.0)
                try:
                    await self.leader.elect()
                except ConveyorError as exc:
                    log.warning("leader election failed (%s); retrying", exc)
                    next_renewal = now + min(1.0, renew_every)
                else:
                    await self._check_clock()
            term = self.leader.term
            if term is not None:
                await self._due(term)
            wake = next_renewal if term is None else min(
                next_renewal, min(self._next.values(), default=next_renewal))
            await asyncio.sleep(max(0.05, wake - time.monotonic()))

    async def stop(self) -> None:
        try:
            await self.leader.resign()
        except ConveyorError as exc:
            log.warning("could not give up the leader's lease (%s); it lapses by itself", exc)

    async def _due(self, term: Term) -> None:
        tasks: list[tuple[str, float, Callable[[Term], Awaitable[None]]]] = [
            ("schedules", SCHEDULE_INTERVAL, self._tick),
            ("held steps", SCHEDULE_INTERVAL, self._release_held),
            ("retention", self._interval, self._retention),
            ("stats", self._stats_interval, self._stats),
        ]
        for name, every, task in tasks:
            now = time.monotonic()
            if now < self._next.get(name, 0.0):
                continue
            self._next[name] = now + every
            if self.leader.term != term:
                return
            started = time.monotonic()
            try:
                await task(term)
            except NotLeader:
                return
            except ConveyorError as exc:
                log.warning("maintenance: %s failed (%s); trying again later", name, exc)
                await self._hooks.emit(HookEvent("worker_error", error=exc))
                continue
            took = time.monotonic() - started
            if took > SLOW:
                await self._warn(f"slow-{name}", f"maintenance: {name} took {took:.1f} s")

    async def _fenced(self, term: Term, plan: Plan[Any]) -> Any:
        return await self._run(Operation(fenced(term, plan), atomic=True))

    async def _tick(self, term: Term) -> None:
        await self._fenced(term, self._schedules())

    async def _release_held(self, term: Term) -> None:
        await self._fenced(term, dependencies.release_held(self._ctx, BATCH))

    async def _retention(self, term: Term) -> None:
        plans = (delete_finished, functools.partial(expire_waiting, self._ctx))
        for plan in plans:
            for _ in range(ROUNDS):
                if await self._fenced(term, plan()) < BATCH:
                    break
        await self._fenced(term, forget_workers())

    async def _stats(self, term: Term) -> None:
        stats: list[QueueStats] = await self._fenced(term, snapshot(
            timedelta(seconds=self._stats_interval),
            timedelta(seconds=self._stats_retention)))
        await self._hooks.emit(HookEvent("stats", stats=stats))
        if not await self._fenced(term, autovacuum_on()):
            await self._warn("autovacuum", "autovacuum is off for the job table: the dead "
                             "rows every claim and completion leave are never cleaned, and "
                             "the table grows; turn it on, or VACUUM the table often")
        if self._backlog_warning:
            for row in stats:
                waiting = row.created + row.retry
                if waiting > self._backlog_warning:
                    lag = f"{row.lag.total_seconds():.0f} s" if row.lag else "none due"
                    await self._warn(f"backlog-{row.queue}",
                                     f"queue {row.queue!r} has {waiting:,} jobs waiting "
                                     f"(more than {self._backlog_warning:,}); the oldest "
                                     f"due one has waited {lag}")

    async def _check_clock(self) -> None:
        skew = self.leader.clock_skew
        if abs(skew) > SKEW:
            await self._warn("clock", f"this machine's clock is {abs(skew):.1f} s "
                             f"{'behind' if skew > 0 else 'ahead of'} the database's; "
                             "times in jobs come from the database")

    async def _warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now < self._warned.get(key, 0.0):
            return
        self._warned[key] = now + WARN_AGAIN
        log.warning(message)
        await self._hooks.emit(HookEvent("warning", message=message))
