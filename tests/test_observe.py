"""Looking at the system as a whole from the client: queue summaries, the workers'
presence, health, the job list's key and search filters, and bulk actions."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from test_worker import running, wait_until

from conveyor import AsyncConveyor, Conveyor, JobState
from conveyor._db.plan import Operation
from conveyor._db.queries import latest_version
from conveyor.errors import ConnectionLost, InvalidArgument
from conveyor.worker.maintenance import snapshot


def test_queue_summaries_count_waiting_active_and_failed_jobs(cv: Conveyor) -> None:
    cv.insert("reports", [{"data": {"n": n}} for n in range(3)])
    cv.send("reports", {"n": "later"}, start_after=3600)
    claimed = cv.fetch("reports", batch_size=2)
    cv.fail(claimed[0].id, {"message": "boom"}, retry=False)
    cv.create_queue("idle")

    summaries = {s.name: s for s in cv.queue_summaries()}

    reports = summaries["reports"]
    assert (reports.created, reports.scheduled, reports.active, reports.failed) == (1, 1, 1, 1)
    assert reports.waiting == 1  # the job due in an hour is scheduled, not waiting
    assert reports.lag is not None and reports.lag >= timedelta(0)
    assert reports.paused_until is None
    idle = summaries["idle"]
    assert (idle.created, idle.active, idle.failed, idle.lag) == (0, 0, 0, None)


def test_queue_summaries_show_a_paused_queue_and_the_last_hours_throughput(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    cv.create_queue("mail")
    cv.pause_queue("mail", 600)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".queue_stats (queue, taken_at, created, retry, active, '
            "completed, cancelled, failed) VALUES "
            "('mail', now() - interval '10 minutes', 0, 0, 0, 40, 0, 2), "
            "('mail', now() - interval '5 minutes', 0, 0, 0, 60, 0, 1), "
            "('mail', now() - interval '2 hours', 0, 0, 0, 999, 0, 999)")

    (mail,) = cv.queue_summaries()

    assert mail.paused_until is not None
    assert (mail.completed_last_hour, mail.failed_last_hour) == (100, 3)


def test_finished_totals_are_those_of_the_last_snapshot(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    cv.insert("reports", [{"data": {"n": n}} for n in range(4)])
    first, second, third = cv.fetch("reports", batch_size=3)
    cv.complete(first.id)
    cv.complete(second.id)
    cv.cancel(third.id)
    (before,) = cv.queue_summaries()
    snapshot_now(cv)
    cv.delete(first.id)  # gone from the table, still finished once
    (after,) = cv.queue_summaries()
    [fourth] = cv.fetch("reports")
    cv.complete(fourth.id)
    snapshot_now(cv)
    (between,) = cv.queue_summaries()  # the finished job is added, the deletion not seen
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"UPDATE \"{schema}\".queue_totals "
                     "SET recounted_at = recounted_at - interval '11 minutes'")
    snapshot_now(cv)
    (recounted,) = cv.queue_summaries()

    assert before.counted_at is None
    assert (before.completed, before.cancelled, before.completed_total) == (0, 0, 0)
    assert after.counted_at is not None
    assert (after.completed, after.cancelled) == (2, 1)  # as counted, not read now
    assert (after.completed_total, after.cancelled_total, after.failed_total) == (2, 1, 0)
    assert (between.completed, between.completed_total) == (3, 3)
    assert (recounted.completed, recounted.completed_total) == (2, 3)  # a counter never goes back
    assert recounted.counted_at is not None and recounted.counted_at > after.counted_at


def test_failed_jobs_are_counted_exactly_up_to_a_thousand_then_by_the_snapshot(
    cv: Conveyor, database_url: str, schema: str,
) -> None:
    cv.insert("imports", [{"data": {"n": n}} for n in range(1_003)])
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(
            f'UPDATE "{schema}".job SET state = \'failed\', completed_at = now() '
            f'WHERE id IN (SELECT id FROM "{schema}".job ORDER BY id LIMIT 1002) RETURNING id')]
    (unknown,) = cv.queue_summaries()
    snapshot_now(cv)
    (counted,) = cv.queue_summaries()
    cv.retry(ids[:500])

    (fewer,) = cv.queue_summaries()

    assert unknown.failed == 1_001  # more than a thousand, not yet counted
    assert counted.failed == 1_002
    assert fewer.failed == 502  # exact again at once


def snapshot_now(cv: Conveyor) -> None:
    """Take a statistics snapshot as the maintenance leader does."""
    cv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))


async def test_a_running_worker_is_listed_alive_and_removed_when_it_stops(
    acv: AsyncConveyor,
) -> None:
    acv.work("reports", lambda job: None)
    async with running(acv, maintenance=False):
        await wait_until(lambda: _alive(acv, 1))
        (worker,) = await acv.get_workers()
        assert worker.queues == ["reports"]
        assert worker.pid > 0 and worker.concurrency >= 1
    assert await acv.get_workers() == []


async def test_a_worker_that_leads_uses_one_name_for_its_presence_and_its_lease(
    acv: AsyncConveyor,
) -> None:
    acv.work("reports", lambda job: None)
    async with running(acv):
        await wait_until(lambda: _alive(acv, 1))
        await wait_until(lambda: _leader_known(acv))
        (worker,) = await acv.get_workers()
        leader = await acv.get_leader()
        assert leader is not None and leader.holder == worker.id


async def _alive(cv: AsyncConveyor, count: int) -> bool:
    return sum(w.alive for w in await cv.get_workers()) == count


async def _leader_known(cv: AsyncConveyor) -> bool:
    return await cv.get_leader() is not None


def test_a_worker_that_stopped_renewing_is_not_alive_and_is_warned_about(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".worker (id, host, pid, queues, concurrency, seen_at, '
            "expires_at) VALUES ('gone:1:ab', 'gone', 1, '{reports}', 4, "
            "now() - interval '5 minutes', now() - interval '4 minutes')")

    (worker,) = cv.get_workers()
    report = cv.health()

    assert not worker.alive
    assert report.workers_alive == 0
    assert any("gone:1:ab" in warning for warning in report.warnings)


def test_health_is_good_on_an_idle_system(cv: Conveyor) -> None:
    cv.create_queue("reports")
    report = cv.health()
    assert report.healthy
    assert report.problems == []
    assert report.schema_version == report.expected_version == latest_version()


def test_health_reports_due_jobs_with_no_worker_alive(cv: Conveyor) -> None:
    cv.send("reports", {})
    report = cv.health()
    assert not report.healthy
    assert report.problems == ["jobs are due in reports and no worker is alive"]


def test_health_ignores_jobs_of_a_paused_queue_and_jobs_not_yet_due(cv: Conveyor) -> None:
    cv.send("later", {}, start_after=3600)
    cv.send("paused", {})
    cv.pause_queue("paused")
    assert cv.health().healthy


async def test_due_jobs_are_healthy_while_any_worker_is_alive(acv: AsyncConveyor) -> None:
    # A queue no worker serves (a dead-letter queue) is no fault of the system.
    acv.work("reports", lambda job: None, concurrency=1)
    await acv.send("reports-dlq", {})
    async with running(acv):
        await wait_until(lambda: _alive(acv, 1))
        await wait_until(lambda: _leader_known(acv))
        report = await acv.health()
    assert report.healthy, report.problems
    assert report.workers_alive == 1
    assert report.leader is not None and report.leader.current


def test_health_warns_of_a_large_backlog(cv: Conveyor) -> None:
    cv.pause_queue(cv.create_queue("reports").name)
    cv.insert("reports", [{"data": n} for n in range(5)])
    assert cv.health(backlog_warning=4).warnings == ["queue 'reports' has 5 jobs waiting"]
    assert cv.health(backlog_warning=0).warnings == []


def test_health_reports_a_schema_behind_this_code(database_url: str, schema: str) -> None:
    with Conveyor(database_url, schema=schema, migrate=False) as cv:
        report = cv.health()
    assert not report.healthy
    assert report.schema_version == 0
    assert "conveyor migrate" in report.problems[0]


def test_health_of_an_unreachable_database_raises_connection_lost() -> None:
    with (
        pytest.raises(ConnectionLost),
        Conveyor("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, migrate=False) as cv,
    ):
        cv.health()


def test_jobs_are_found_by_singleton_key_or_group_key(cv: Conveyor) -> None:
    by_singleton = cv.send("mail", {}, singleton_key="tenant-1")
    by_group = cv.send("mail", {}, group_key="tenant-1")
    cv.send("mail", {}, group_key="tenant-2")

    found = {job.id for job in cv.find_jobs("mail", key="tenant-1").jobs}

    assert found == {by_singleton, by_group}


def test_search_finds_text_in_data_output_and_error_and_a_job_by_its_id(cv: Conveyor) -> None:
    in_data = cv.send("mail", {"subject": "Invoice 42 is due"})
    in_output = cv.send("mail", {})
    in_error = cv.send("mail", {})
    assert len(cv.fetch("mail", batch_size=3)) == 3
    other = cv.send("mail", {"subject": "hello"})
    assert in_output is not None and in_error is not None
    cv.complete(in_output, {"summary": "INVOICE sent"})
    cv.fail(in_error, {"message": "invoice template missing"}, retry=False)

    found = {job.id for job in cv.find_jobs(search="invoice").jobs}
    by_id = [job.id for job in cv.find_jobs(search=other).jobs]

    assert found == {in_data, in_output, in_error}
    assert by_id == [other]


def test_search_takes_percent_and_underscore_literally(cv: Conveyor) -> None:
    literal = cv.send("mail", {"code": "100%_off"})
    cv.send("mail", {"code": "1000 off"})
    assert [job.id for job in cv.find_jobs(search="100%_").jobs] == [literal]


def test_bulk_retry_retries_every_matching_failed_job_across_pages(cv: Conveyor) -> None:
    cv.insert("mail", [{"data": n, "retry_limit": 0} for n in range(1205)])
    cv.send("other", {})
    for job in cv.fetch("mail", batch_size=1205):
        cv.fail(job.id, {"message": "smtp down"})

    retried = cv.bulk("retry", "mail", state="failed")

    assert retried == 1205
    counts = cv.queue_counts("mail")
    assert counts[JobState.RETRY] == 1205 and counts[JobState.FAILED] == 0
    assert cv.queue_counts("other")[JobState.CREATED] == 1


def test_bulk_actions_apply_only_to_jobs_matching_the_filter(cv: Conveyor) -> None:
    keep = cv.send("mail", {"to": "a@example.com"})
    drop = cv.send("mail", {"to": "b@example.com"})

    assert cv.bulk("cancel", "mail", search="b@example") == 1
    assert cv.bulk("delete", "mail", state="cancelled") == 1

    assert cv.get_job(drop) is None
    kept = cv.get_job(keep)
    assert kept is not None and kept.state is JobState.CREATED


@pytest.mark.parametrize(
    ("action", "filters", "message"),
    [
        ("purge", {"queue": "mail"}, "unknown bulk action"),
        ("delete", {}, "needs a queue, a state or ids"),
        ("delete", {"state": "finished"}, "invalid state"),
        ("delete", {"queue": "mail", "scheduled": "yes"}, "scheduled must be True or False"),
        ("cancel", {"queue": "mail", "ids": []}, "ids or filters, not both"),
        ("cancel", {"ids": ["not-an-id"]}, "not-an-id"),
    ],
)
def test_bulk_refuses_bad_input_and_changes_nothing(
    cv: Conveyor, action: str, filters: dict[str, str], message: str
) -> None:
    job_id = cv.send("mail", {})
    with pytest.raises(InvalidArgument, match=message):
        cv.bulk(action, **filters)  # type: ignore[arg-type]
    assert cv.get_job(job_id) is not None


def test_bulk_by_ids_changes_only_the_jobs_named(cv: Conveyor) -> None:
    first, second, third = (cv.send("mail", {"n": n}) for n in range(3))

    assert cv.bulk("cancel", ids=[first, third]) == 2

    states = {job_id: job_state(cv, job_id) for job_id in (first, second, third)}
    assert states == {first: JobState.CANCELLED, second: JobState.CREATED,
                      third: JobState.CANCELLED}


def test_jobs_due_later_are_found_counted_and_acted_on_apart(cv: Conveyor) -> None:
    due = cv.send("mail", {"n": "now"})
    later = cv.send("mail", {"n": "later"}, start_after=3600)
    retrying = cv.send("mail", {"n": "retry"}, retry_limit=1, retry_delay=3600)
    assert {job.id for job in cv.fetch("mail", batch_size=5)} == {due, retrying}

    scheduled = cv.find_jobs("mail", scheduled=True)
    counted = (cv.count_jobs("mail", scheduled=True), cv.count_jobs("mail", scheduled=False),
               cv.count_jobs("mail", state="created", scheduled=True), cv.count_jobs("mail"))
    cv.fail(retrying, {"message": "later"})
    retry_waits = cv.count_jobs("mail", state="retry", scheduled=True)
    cancelled = cv.bulk("cancel", "mail", scheduled=True)

    assert [job.id for job in scheduled] == [later]
    assert counted == (1, 2, 1, 3)
    assert retry_waits == 1
    assert cancelled == 2  # the job due later and the one waiting out its retry delay
    assert job_state(cv, due) is JobState.ACTIVE


def job_state(cv: Conveyor, job_id: object) -> JobState | None:
    job = cv.get_job(job_id)  # type: ignore[arg-type]
    return None if job is None else job.state


def test_count_jobs_refuses_bad_filters(cv: Conveyor) -> None:
    with pytest.raises(InvalidArgument, match="invalid state"):
        cv.count_jobs("mail", state="finished")


async def test_summaries_and_workers_are_read_by_both_faces(acv: AsyncConveyor) -> None:
    await acv.send("mail", {})
    summaries, workers = await asyncio.gather(acv.queue_summaries(), acv.get_workers())
    assert [s.name for s in summaries] == ["mail"]
    assert workers == []
