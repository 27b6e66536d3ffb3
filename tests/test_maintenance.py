"""Maintenance: one elected leader at a time, retention of finished and waiting
jobs, and statistics snapshots.

Elections are driven directly through ``Leader`` (with the client's runner), then
under real conditions: worker processes, one of which leads, and the leader killed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from processes import WorkerProcess, Workers, query, wait_until
from psycopg import sql

from conveyor import AsyncConveyor, Conveyor, Job, JobState, QueueStats
from conveyor._db.plan import Operation, Plan
from conveyor._ops import schedules as scheduler
from conveyor.errors import InvalidArgument
from conveyor.hooks import HookEvent, Hooks
from conveyor.worker.leader import Leader, NotLeader, Term, fenced
from conveyor.worker.maintenance import Maintenance, delete_finished, expire_waiting, snapshot

QUEUE = "maint"
T = TypeVar("T")


def candidate(acv: AsyncConveyor, lease: float) -> Leader:
    return Leader(acv._run, lease=lease)


async def as_leader(acv: AsyncConveyor, term: Term, plan: Plan[T]) -> T:
    result: T = await acv._run(Operation(fenced(term, plan), atomic=True))
    return result


def backdate(dsn: str, schema: str, ids: list[str], column: str, age: str) -> None:
    """Move a timestamp of these jobs ``age`` into the past."""
    query(dsn, sql.SQL("UPDATE {}.job SET {} = now() - %s::interval WHERE id = ANY(%s::uuid[])")
          .format(sql.Identifier(schema), sql.Identifier(column)), (age, ids))


# --- elections -------------------------------------------------------------------------


async def test_only_one_candidate_leads_and_the_holder_renews_its_term(
    acv: AsyncConveyor,
) -> None:
    first, second = candidate(acv, 5), candidate(acv, 5)

    won = await first.elect()
    lost = await second.elect()
    renewed = await first.elect()

    assert won is not None and won.number == 1
    assert lost is None and second.term is None
    assert renewed == won and first.term == won


async def test_a_leader_stops_before_another_can_take_over(acv: AsyncConveyor) -> None:
    old, new = candidate(acv, 1.0), candidate(acv, 1.0)
    assert await old.elect() is not None

    # The old leader stops renewing (as if it hung). The new one is refused until the
    # database's lease lapses, and by then the old one has stopped leading.
    took_over = None
    deadline = time.monotonic() + 5
    while took_over is None and time.monotonic() < deadline:
        took_over = await new.elect()
        if took_over is None:
            await asyncio.sleep(0.02)
        else:
            assert old.term is None  # stopped before the new term began

    assert took_over is not None and took_over.number == 2


async def test_a_deposed_leader_can_no_longer_act(
    acv: AsyncConveyor, database_url: str, schema: str,
) -> None:
    job_id = await acv.send(QUEUE, {"n": 1})
    assert job_id is not None
    backdate(database_url, schema, [job_id], "keep_until", "1 second")
    old, new = candidate(acv, 0.5), candidate(acv, 0.5)
    old_term = await old.elect()
    assert old_term is not None
    await asyncio.sleep(0.6)
    new_term = await new.elect()
    assert new_term is not None

    with pytest.raises(NotLeader):
        await as_leader(acv, old_term, expire_waiting(acv.context))
    untouched = await acv.get_job(job_id)
    expired = await as_leader(acv, new_term, expire_waiting(acv.context))

    assert untouched is not None and untouched.state is JobState.CREATED
    assert expired == 1


async def test_a_leader_that_resigns_is_replaced_at_once(acv: AsyncConveyor) -> None:
    first, second = candidate(acv, 30), candidate(acv, 30)
    await first.elect()

    await first.resign()
    taken = await second.elect()

    assert taken is not None and taken.number == 2


# --- retention -------------------------------------------------------------------------


def finished_job(cv: Conveyor, outcome: str, **options: Any) -> str:
    job_id = cv.send(QUEUE, {"outcome": outcome}, retry_limit=0, **options)
    assert job_id is not None
    if outcome == "cancelled":
        cv.cancel(job_id)
        return job_id
    [job] = cv.fetch(QUEUE)
    assert job.id == job_id
    if outcome == "completed":
        cv.complete(job)
    else:
        cv.fail(job, "no")
    return job_id


def test_retention_deletes_exactly_the_finished_jobs_past_their_delete_after(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    old = [finished_job(cv, outcome) for outcome in ("completed", "failed", "cancelled")]
    kept_forever = finished_job(cv, "completed", delete_after=0)
    short = finished_job(cv, "completed", delete_after=60)
    recent = finished_job(cv, "completed")
    waiting = cv.send(QUEUE, {"waiting": True})
    assert waiting is not None
    backdate(database_url, schema, [*old, kept_forever], "completed_at", "8 days")
    backdate(database_url, schema, [short], "completed_at", "2 minutes")
    backdate(database_url, schema, [waiting], "created_at", "30 days")

    deleted = cv._run(Operation(delete_finished()))

    assert deleted == 4
    assert {job_id for job_id in [*old, short] if cv.get_job(job_id) is not None} == set()
    assert all(cv.get_job(job_id) is not None for job_id in (kept_forever, recent, waiting))


def test_retention_fails_jobs_that_waited_past_their_retention_with_the_reason(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    stale = cv.send(QUEUE, {"n": 1}, retention=3600)
    fresh = cv.send(QUEUE, {"n": 2}, retention=3600)
    assert stale is not None and fresh is not None
    backdate(database_url, schema, [stale], "keep_until", "1 second")

    expired = cv._run(Operation(expire_waiting(cv.context)))
    job = cv.get_job(stale)
    other = cv.get_job(fresh)

    assert expired == 1
    assert job is not None and job.state is JobState.FAILED
    assert job.error is not None and job.error["type"] == "retention"
    assert job.completed_at is not None
    assert other is not None and other.state is JobState.CREATED


def test_retention_is_batched(cv: Conveyor, database_url: str, schema: str) -> None:
    ids = [finished_job(cv, "cancelled") for _ in range(5)]
    backdate(database_url, schema, ids, "completed_at", "8 days")

    assert [cv._run(Operation(delete_finished(limit=2))) for _ in range(4)] == [2, 2, 1, 0]


# --- statistics ------------------------------------------------------------------------


def test_a_snapshot_counts_live_jobs_finished_jobs_and_the_lag(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    cv.create_queue("idle")
    finished_job(cv, "completed")
    finished_job(cv, "failed")
    waiting = [cv.send(QUEUE, {"n": n}) for n in range(3)]
    backdate(database_url, schema, [str(waiting[0])], "start_after", "120 seconds")
    backdate(database_url, schema, [str(waiting[1])], "start_after", "90 seconds")
    [active] = cv.fetch(QUEUE)

    stats = {row.queue: row for row in cv._run(Operation(snapshot(
        timedelta(minutes=1), timedelta(days=1))))}

    row = stats[QUEUE]
    assert (row.created, row.retry, row.active) == (2, 0, 1)
    assert (row.completed, row.failed, row.cancelled) == (1, 1, 0)
    assert active.id == waiting[0]  # the oldest due job was claimed; the next one waits
    assert row.lag is not None and timedelta(seconds=89) <= row.lag < timedelta(seconds=119)
    idle = stats["idle"]
    assert (idle.created, idle.active, idle.completed, idle.lag) == (0, 0, 0, None)


def test_a_snapshot_counts_only_jobs_finished_since_the_one_before(cv: Conveyor) -> None:
    finished_job(cv, "completed")
    first = cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))
    finished_job(cv, "completed")
    finished_job(cv, "completed")
    second = cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))

    assert [r.completed for r in first if r.queue == QUEUE] == [1]
    assert [r.completed for r in second if r.queue == QUEUE] == [2]


def test_snapshots_older_than_the_stats_retention_are_forgotten(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    cv.create_queue(QUEUE)
    cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))
    query(database_url, sql.SQL("UPDATE {}.queue_stats SET taken_at = taken_at - "
                                "interval '2 days'").format(sql.Identifier(schema)))

    cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))
    [(count,)] = query(database_url, sql.SQL("SELECT count(*) FROM {}.queue_stats").format(
        sql.Identifier(schema)))

    assert count == 1


def test_get_stats_reads_the_snapshots_of_one_queue_or_of_all(cv: Conveyor) -> None:
    cv.create_queue("other")
    finished_job(cv, "completed")
    for _ in range(2):
        cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))

    mine = cv.get_stats(QUEUE)
    every = cv.get_stats(since=timedelta(minutes=5))

    assert [row.queue for row in mine] == [QUEUE, QUEUE]
    assert mine[0].taken_at < mine[1].taken_at
    assert [row.completed for row in mine] == [1, 0]
    assert {row.queue for row in every} == {QUEUE, "other"} and len(every) == 4


@pytest.mark.parametrize(("queue", "since"), [("bad queue!", 60), (QUEUE, -1), (QUEUE, 0)])
def test_get_stats_refuses_bad_arguments(cv: Conveyor, queue: str, since: float) -> None:
    with pytest.raises(InvalidArgument):
        cv.get_stats(queue, since=since)


async def test_get_leader_names_the_leading_process_and_whether_it_still_leads(
    acv: AsyncConveyor,
) -> None:
    before = await acv.get_leader()
    process = candidate(acv, 30)
    term = await process.elect()
    leading = await acv.get_leader()
    await process.resign()
    after = await acv.get_leader()

    assert before is None and term is not None
    assert leading is not None and (leading.holder, leading.term, leading.current) == (
        process.holder, term.number, True)
    assert after is not None and not after.current


# --- in a running worker ---------------------------------------------------------------

FAST = {"heartbeat_interval": 0.2, "rescue_interval": 0.2, "handle_signals": False}


async def test_the_leading_worker_reports_statistics_and_a_large_backlog(
    acv: AsyncConveyor,
) -> None:
    await acv.create_queue(QUEUE)
    await acv.pause_queue(QUEUE)  # due jobs that no worker takes
    await acv.insert(QUEUE, [{"data": {"n": n}} for n in range(30)])
    await acv.insert(QUEUE, [{"data": {"n": n}, "start_after": 3600} for n in range(50)])
    events: list[HookEvent] = []
    seen = asyncio.Event()

    @acv.on("stats")
    def stats(event: HookEvent) -> None:
        events.append(event)

    @acv.on("warning")
    def warning(event: HookEvent) -> None:
        events.append(event)
        seen.set()

    @acv.task(QUEUE)
    async def handle(job: Job) -> None:
        pass

    task = asyncio.create_task(acv.run(**FAST, stats_interval=0.2, backlog_warning=20))
    try:
        await asyncio.wait_for(seen.wait(), 10)
    finally:
        worker = acv._active_worker
        if worker is not None:
            worker.stop()
        await asyncio.wait_for(task, 30)

    [snap] = [e.stats for e in events if e.name == "stats"][:1]
    [row] = [r for r in snap if r.queue == QUEUE]
    assert isinstance(row, QueueStats) and (row.created, row.scheduled) == (30, 50)
    [message] = {e.message for e in events if e.name == "warning"
                 and e.message and QUEUE in e.message}
    assert "30" in message


async def test_the_leader_warns_when_autovacuum_does_not_clean_the_job_table(
    acv: AsyncConveyor, database_url: str, schema: str,
) -> None:
    query(database_url, sql.SQL("ALTER TABLE {}.job SET (autovacuum_enabled = false)").format(
        sql.Identifier(schema)))
    warnings: list[str] = []
    seen = asyncio.Event()

    @acv.on("warning")
    def warning(event: HookEvent) -> None:
        if event.message and "autovacuum" in event.message:
            warnings.append(event.message)
            seen.set()

    @acv.task(QUEUE)
    async def handle(job: Job) -> None:
        pass

    task = asyncio.create_task(acv.run(**FAST, stats_interval=0.2))
    try:
        await asyncio.wait_for(seen.wait(), 10)
        await asyncio.sleep(1)  # several more snapshots
    finally:
        worker = acv._active_worker
        if worker is not None:
            worker.stop()
        await asyncio.wait_for(task, 30)

    assert len(warnings) == 1  # once, not at every snapshot


async def test_a_worker_with_maintenance_off_never_leads(
    acv: AsyncConveyor, database_url: str, schema: str,
) -> None:
    @acv.task(QUEUE)
    async def handle(job: Job) -> None:
        pass

    task = asyncio.create_task(acv.run(**FAST, maintenance=False))
    await asyncio.sleep(1.0)
    worker = acv._active_worker
    assert worker is not None
    worker.stop()
    await asyncio.wait_for(task, 30)

    assert query(database_url, sql.SQL("SELECT holder FROM {}.leader").format(
        sql.Identifier(schema))) == []


async def test_a_clock_far_from_the_databases_is_reported(
    acv: AsyncConveyor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = time.time
    monkeypatch.setattr("conveyor.worker.leader.time.time", lambda: real() + 30)
    warnings: list[str | None] = []
    hooks = Hooks()
    hooks.add("warning", lambda event: warnings.append(event.message)
              if event.message and "clock" in event.message else None)  # not autovacuum's
    maintenance = Maintenance(acv._run, hooks, acv.context,
                              schedules=lambda: scheduler.tick(acv.context),
                              lease=5, interval=60, stats_interval=60, stats_retention=3600,
                              backlog_warning=0)

    task = asyncio.create_task(maintenance.run())
    try:
        await asyncio.wait_for(_until(lambda: bool(warnings)), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await maintenance.stop()

    assert len(warnings) == 1
    assert warnings[0] is not None and "30" in warnings[0] and "ahead of" in warnings[0]


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.02)


# --- worker processes ------------------------------------------------------------------


def current_leader(dsn: str, schema: str) -> tuple[int, int] | None:
    """(pid, term) of the current leader, if any."""
    rows = query(dsn, sql.SQL("SELECT holder, term FROM {}.leader WHERE role = 'maintenance' "
                              "AND expires_at > now()").format(sql.Identifier(schema)))
    if not rows:
        return None
    holder, term = rows[0]
    return int(holder.split(":")[1]), int(term)


def three_workers(dsn: str, schema: str, workers: Workers) -> list[WorkerProcess]:
    """Three worker processes (``worker_app.py``, leader lease 1.5 s), once one leads."""
    query(dsn, sql.SQL("CREATE TABLE {}.executions (job_id uuid, attempt integer, "
                       "pid integer, at timestamptz)").format(sql.Identifier(schema)))
    started = [workers.script(dsn, schema, leader_lease=1.5) for _ in range(3)]
    for worker in started:
        worker.wait_started()
    wait_until(lambda: current_leader(dsn, schema) is not None, 10, "a leader")
    return started


@pytest.mark.slow
def test_when_the_leader_is_killed_another_worker_takes_over_with_the_next_term(
    cv: Conveyor, database_url: str, schema: str, workers: Workers,
) -> None:
    started = three_workers(database_url, schema, workers)
    found = current_leader(database_url, schema)
    assert found is not None
    pid, term = found
    assert pid in {w.pid for w in started}

    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: (current_leader(database_url, schema) or (pid, term))[0] != pid,
               10, "another leader")
    took = time.monotonic() - killed_at
    new = current_leader(database_url, schema)

    assert new is not None and new[0] != pid and new[1] == term + 1
    assert took < 1.5 + 1.5  # about the lease, plus one renewal period at most


@pytest.mark.slow
def test_a_schedule_ticks_exactly_once_per_second_through_a_change_of_leader(
    cv: Conveyor, database_url: str, schema: str, workers: Workers,
) -> None:
    cv.schedule("every-second", "* * * * * *", {"tick": True}, queue="ticks")
    started = three_workers(database_url, schema, workers)
    time.sleep(2)
    found = current_leader(database_url, schema)
    assert found is not None
    os.kill(found[0], signal.SIGKILL)
    wait_until(lambda: (current_leader(database_url, schema) or found)[0] != found[0],
               10, "another leader")
    [(taken_over,)] = query(database_url, "SELECT now()")

    def ticks_so_far() -> list[Any]:
        return [row[0] for row in query(database_url, sql.SQL(
            "SELECT tick FROM {}.schedule_tick WHERE schedule = 'every-second' ORDER BY tick")
            .format(sql.Identifier(schema)))]

    def enough() -> bool:  # however slow the machine: six in all, three after the change
        ticks = ticks_so_far()
        return len(ticks) >= 6 and sum(tick > taken_over for tick in ticks) >= 3

    wait_until(enough, 15, "six ticks, three of them from the new leader")
    for worker in started:
        if worker.pid != found[0]:
            worker.signal(signal.SIGTERM)
    for worker in started:
        if worker.pid != found[0]:
            worker.wait_exit()

    ticks = ticks_so_far()
    [(jobs,)] = query(database_url, sql.SQL(
        "SELECT count(*) FROM {}.job WHERE queue = 'ticks'").format(sql.Identifier(schema)))
    gaps = [b - a for a, b in itertools.pairwise(ticks) if b - a != timedelta(seconds=1)]

    assert len(ticks) >= 6  # before, across and after the change of leader
    assert gaps == []  # no tick missed
    assert jobs == len(ticks)  # and one job each
