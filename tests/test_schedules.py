"""Cron schedules: creating, replacing and removing them, the ticks they fire at
(daylight-saving nights included), after downtime, from the command line, and
exactly one job per tick with three processes ticking at once
(``ticker_app.py``).

Ticks are driven through time with ``tick(now=...)``; a test that needs a schedule
to wait for a given night sets its ``next_tick`` as if it had been created the
day before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from processes import Workers, query
from psycopg import sql
from typer.testing import CliRunner

from conveyor import AsyncConveyor, Conveyor, JobState, Schedule
from conveyor._db.plan import Operation, run_sync
from conveyor._db.queries import Queries
from conveyor._ops import schedules as scheduler
from conveyor._ops.schedules import Cron
from conveyor.cli.main import app as cli_app
from conveyor.errors import (
    InvalidArgument,
    InvalidOption,
    InvalidSchedule,
    ScheduleNotFound,
    UnknownOption,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def tick(cv: Conveyor, now: datetime | None = None) -> int:
    """One run of the scheduler's tick, as the leader runs it: one transaction."""
    with psycopg.connect(cv.settings.dsn, autocommit=True) as conn:
        plan = scheduler.tick(cv.context, now)
        return run_sync(conn, Queries(cv.schema), Operation(plan, atomic=True))


def at(text: str, tz: str = "UTC") -> datetime:
    """An aware datetime from ISO text read in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def set_next_tick(cv: Conveyor, name: str, instant: datetime) -> None:
    query(cv.settings.dsn, sql.SQL("UPDATE {}.schedule SET next_tick = %s WHERE name = %s")
          .format(sql.Identifier(cv.schema)), (instant, name))


def recorded_ticks(cv: Conveyor, name: str) -> list[tuple[datetime, Any]]:
    """The schedule's recorded ticks with their jobs, oldest first."""
    return query(cv.settings.dsn, sql.SQL(
        "SELECT tick, job FROM {}.schedule_tick WHERE schedule = %s ORDER BY tick"
    ).format(sql.Identifier(cv.schema)), (name,))


def job_count(cv: Conveyor, queue: str) -> int:
    return len(cv.find_jobs(queue, limit=1000))


def drive(cv: Conveyor, start: datetime, end: datetime, step: timedelta) -> int:
    """Tick at every ``step`` from ``start`` to ``end``; the jobs sent."""
    sent, now = 0, start
    while now <= end:
        sent += tick(cv, now)
        now += step
    return sent


# --- creating, replacing, removing ---------------------------------------------------------


def test_a_schedule_is_saved_with_its_next_tick_and_listed(cv: Conveyor) -> None:
    before = datetime.now(UTC)
    saved = cv.schedule("nightly", "30 2 * * *", {"kind": "report"}, tz=BERLIN, priority=3)

    assert isinstance(saved, Schedule)
    assert (saved.name, saved.queue, saved.cron, saved.tz, saved.missed) == (
        "nightly", "nightly", "30 2 * * *", BERLIN, "once")
    assert saved.data == {"kind": "report"} and saved.options == {"priority": 3}
    assert saved.next_tick == Cron("30 2 * * *", BERLIN).next_after(before)
    assert cv.get_schedules() == [saved]


def test_saving_a_schedule_again_replaces_it(cv: Conveyor) -> None:
    cv.schedule("report", "0 * * * *", {"v": 1})
    cv.schedule("report", "*/5 * * * *", {"v": 2}, queue="reports", missed="skip")

    [only] = cv.get_schedules()
    assert (only.cron, only.data, only.queue, only.missed) == (
        "*/5 * * * *", {"v": 2}, "reports", "skip")


def test_unschedule_removes_the_schedule_and_says_whether_it_existed(cv: Conveyor) -> None:
    cv.schedule("cleanup", "* * * * * *")

    assert cv.unschedule("cleanup") is True
    assert cv.unschedule("cleanup") is False
    assert cv.get_schedules() == []
    assert tick(cv, datetime.now(UTC) + timedelta(seconds=5)) == 0


@pytest.mark.parametrize(
    ("cron", "tz", "error"),
    [
        ("61 * * * *", "UTC", InvalidSchedule),
        ("* * * *", "UTC", InvalidSchedule),
        ("0 0 30 2 *", "UTC", InvalidSchedule),
        ("every day", "UTC", InvalidSchedule),
        ("0 2 * * *", "Mars/Olympus", InvalidSchedule),
        ("0 2 * * *", "", InvalidSchedule),
    ],
)
def test_an_invalid_cron_or_time_zone_is_refused_and_nothing_is_written(
    cv: Conveyor, cron: str, tz: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        cv.schedule("bad", cron, tz=tz)
    assert cv.get_schedules() == []


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"priority": "high"}, InvalidOption),
        ({"retry_delay": -1}, InvalidOption),
        ({"missed": "sometimes"}, InvalidOption),
        ({"id": "0190a6f2-7d3c-7000-8000-000000000001"}, InvalidOption),
        ({"debounce_seconds": 5, "singleton_key": "k"}, InvalidOption),
        ({"start_after": datetime(2030, 1, 1, tzinfo=UTC)}, InvalidOption),
        ({"retry_limt": 3}, UnknownOption),
    ],
)
def test_bad_job_options_are_refused_and_nothing_is_written(
    cv: Conveyor, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        cv.schedule("bad", "* * * * *", **options)
    assert cv.get_schedules() == []


async def test_the_async_client_schedules_lists_and_unschedules(acv: AsyncConveyor) -> None:
    saved = await acv.schedule("heartbeat", "*/10 * * * * *", {"ping": True})

    assert await acv.get_schedules() == [saved]
    assert await acv.unschedule("heartbeat") is True
    assert await acv.get_schedules() == []


# --- ticks -----------------------------------------------------------------------------


def test_a_due_tick_sends_one_job_with_the_schedule_data_and_options(cv: Conveyor) -> None:
    saved = cv.schedule("digest", "* * * * *", {"kind": "digest"}, queue="mail",
                        priority=7, retry_limit=4, retry_delay=30)

    assert tick(cv, saved.next_tick - timedelta(seconds=1)) == 0
    assert tick(cv, saved.next_tick) == 1
    assert tick(cv, saved.next_tick + timedelta(seconds=1)) == 0

    [job] = cv.find_jobs("mail")
    assert job.data == {"kind": "digest"}
    assert (job.priority, job.retry_limit, job.retry_delay) == (7, 4, timedelta(seconds=30))
    assert cv.get_queue("mail") is not None  # created on first use
    assert [(t, str(job_id)) for t, job_id in recorded_ticks(cv, "digest")] == [
        (saved.next_tick, job.id)]
    [after] = cv.get_schedules()
    assert after.next_tick == saved.next_tick + timedelta(minutes=1)


def test_ticks_late_by_less_than_the_on_time_window_each_get_a_job(cv: Conveyor) -> None:
    saved = cv.schedule("per-second", "* * * * * *")

    sent = tick(cv, saved.next_tick + timedelta(seconds=9))

    assert sent == 10 == job_count(cv, "per-second")
    assert [t for t, _ in recorded_ticks(cv, "per-second")] == [
        saved.next_tick + timedelta(seconds=n) for n in range(10)]


def test_a_tick_recorded_already_never_sends_a_second_job(cv: Conveyor) -> None:
    saved = cv.schedule("guarded", "* * * * *")
    assert tick(cv, saved.next_tick) == 1

    # As if a second process reached the same tick: the tick's primary key holds.
    set_next_tick(cv, "guarded", saved.next_tick)
    assert tick(cv, saved.next_tick) == 0

    assert job_count(cv, "guarded") == 1
    [after] = cv.get_schedules()
    assert after.next_tick == saved.next_tick + timedelta(minutes=1)


def test_missed_ticks_after_downtime_send_one_job_between_them_by_default(cv: Conveyor) -> None:
    saved = cv.schedule("hourly", "0 * * * *")
    first = saved.next_tick

    # Down for three ticks; the fourth is ten seconds late, so on time.
    sent = tick(cv, first + timedelta(hours=3, seconds=10))

    assert sent == 2 == job_count(cv, "hourly")
    assert [t for t, _ in recorded_ticks(cv, "hourly")] == [first, first + timedelta(hours=3)]
    [after] = cv.get_schedules()
    assert after.next_tick == first + timedelta(hours=4)


def test_missed_ticks_after_downtime_are_dropped_when_the_schedule_skips_them(
    cv: Conveyor,
) -> None:
    saved = cv.schedule("hourly", "0 * * * *", missed="skip")
    first = saved.next_tick

    sent = tick(cv, first + timedelta(hours=3, seconds=10))

    assert sent == 1 == job_count(cv, "hourly")
    assert [t for t, _ in recorded_ticks(cv, "hourly")] == [first + timedelta(hours=3)]
    [after] = cv.get_schedules()
    assert after.next_tick == first + timedelta(hours=4)


def test_skipped_missed_ticks_with_none_on_time_send_nothing(cv: Conveyor) -> None:
    saved = cv.schedule("daily", "0 3 * * *", missed="skip")

    assert tick(cv, saved.next_tick + timedelta(days=2, hours=1)) == 0
    assert job_count(cv, "daily") == 0
    [after] = cv.get_schedules()
    assert after.next_tick == saved.next_tick + timedelta(days=3)


def test_a_schedule_that_cannot_tick_does_not_hold_up_the_others(cv: Conveyor) -> None:
    broken = cv.schedule("broken", "* * * * *")
    fine = cv.schedule("fine", "* * * * *")
    # As if the time zone database no longer knew the schedule's zone.
    query(cv.settings.dsn, sql.SQL("UPDATE {}.schedule SET tz = 'Gone/Away' WHERE name = %s")
          .format(sql.Identifier(cv.schema)), ("broken",))

    assert tick(cv, fine.next_tick) == 1

    assert (job_count(cv, "broken"), job_count(cv, "fine")) == (0, 1)
    assert [s.next_tick for s in cv.get_schedules()] == [
        broken.next_tick, fine.next_tick + timedelta(minutes=1)]


def test_a_schedule_start_after_delays_each_job_after_it_is_sent(cv: Conveyor) -> None:
    saved = cv.schedule("delayed", "* * * * *", start_after=timedelta(minutes=5))

    assert tick(cv, saved.next_tick) == 1

    [job] = cv.find_jobs("delayed")
    assert job.start_after - job.created_at == timedelta(minutes=5)


# --- pausing, resuming, running by hand ----------------------------------------------------


def test_a_paused_schedule_sends_no_tick(cv: Conveyor) -> None:
    saved = cv.schedule("digest", "* * * * *")

    paused = cv.pause_schedule("digest")

    assert paused.paused is True and paused.next_tick is None
    assert tick(cv, saved.next_tick) == 0
    assert tick(cv, saved.next_tick + timedelta(minutes=3)) == 0
    assert job_count(cv, "digest") == 0
    assert recorded_ticks(cv, "digest") == []
    assert cv.get_schedules() == [paused]


def test_a_paused_schedule_stays_paused_when_it_is_saved_again(cv: Conveyor) -> None:
    cv.schedule("digest", "* * * * *")
    cv.pause_schedule("digest")

    saved = cv.schedule("digest", "*/5 * * * *")

    assert saved.paused is True and saved.next_tick is None


def test_resuming_starts_from_the_next_tick_after_now_without_the_missed_ones(
    cv: Conveyor,
) -> None:
    cv.schedule("digest", "* * * * *")
    # Paused for half an hour: thirty ticks went by.
    set_next_tick(cv, "digest", datetime.now(UTC) - timedelta(minutes=30))
    cv.pause_schedule("digest")
    before = datetime.now(UTC)

    resumed = cv.resume_schedule("digest")

    assert resumed.paused is False and resumed.next_tick is not None
    assert before < resumed.next_tick <= before + timedelta(minutes=1, seconds=5)
    assert tick(cv, resumed.next_tick - timedelta(seconds=1)) == 0
    assert tick(cv, resumed.next_tick) == 1
    assert job_count(cv, "digest") == 1


def test_resuming_a_schedule_that_is_not_paused_keeps_its_due_tick(cv: Conveyor) -> None:
    cv.schedule("digest", "0 0 1 1 *")
    due = datetime.now(UTC) - timedelta(seconds=30)
    set_next_tick(cv, "digest", due)

    assert cv.resume_schedule("digest").next_tick == due
    assert tick(cv) == 1


def test_a_tick_is_recorded_as_the_last_run_with_its_job_and_its_state(cv: Conveyor) -> None:
    saved = cv.schedule("digest", "* * * * *", {"n": 1})
    assert (saved.last_tick_at, saved.last_job_id, saved.last_job_state) == (None, None, None)

    tick(cv, saved.next_tick)

    [job] = cv.find_jobs("digest")
    [after] = cv.get_schedules()
    assert (after.last_tick_at, after.last_job_id, after.last_job_state) == (
        saved.next_tick, job.id, JobState.CREATED)


def test_run_now_sends_the_schedule_job_and_records_it_as_the_last_run(cv: Conveyor) -> None:
    saved = cv.schedule("digest", "0 3 * * *", {"kind": "digest"}, queue="mail", priority=7)
    before = datetime.now(UTC)

    job_id = cv.run_schedule("digest")

    job = cv.get_job(job_id)
    assert job is not None
    assert (job.queue, job.data, job.priority) == ("mail", {"kind": "digest"}, 7)
    [after] = cv.get_schedules()
    assert after.last_job_id == job_id and after.last_job_state is JobState.CREATED
    assert after.last_tick_at is not None and after.last_tick_at >= before
    assert after.next_tick == saved.next_tick


def test_the_last_run_shows_the_outcome_of_its_job_and_none_once_it_is_gone(
    cv: Conveyor,
) -> None:
    cv.schedule("digest", "0 3 * * *")
    job_id = cv.run_schedule("digest")

    assert cv.cancel(job_id)
    assert cv.get_schedules()[0].last_job_state is JobState.CANCELLED
    assert cv.delete(job_id)
    [after] = cv.get_schedules()
    assert (after.last_job_id, after.last_job_state) == (job_id, None)


def test_run_now_works_on_a_paused_schedule_and_keeps_it_paused(cv: Conveyor) -> None:
    cv.schedule("digest", "* * * * *")
    cv.pause_schedule("digest")

    assert cv.run_schedule("digest") is not None

    [after] = cv.get_schedules()
    assert after.paused is True and after.last_job_state is JobState.CREATED
    assert job_count(cv, "digest") == 1


@pytest.mark.parametrize("action", ["pause_schedule", "resume_schedule", "run_schedule"])
def test_an_unknown_schedule_raises_schedule_not_found(cv: Conveyor, action: str) -> None:
    with pytest.raises(ScheduleNotFound, match="'nope' does not exist"):
        getattr(cv, action)("nope")
    assert job_count(cv, "nope") == 0


@pytest.mark.parametrize("action", ["pause_schedule", "resume_schedule", "run_schedule"])
@pytest.mark.parametrize("name", ["", "has space", "x" * 129, None, 7])
def test_a_bad_schedule_name_is_refused_and_nothing_changes(
    cv: Conveyor, action: str, name: Any,
) -> None:
    saved = cv.schedule("digest", "* * * * *")

    with pytest.raises(InvalidArgument):
        getattr(cv, action)(name)
    assert cv.get_schedules() == [saved]
    assert job_count(cv, "digest") == 0


async def test_the_async_client_pauses_resumes_and_runs_a_schedule(acv: AsyncConveyor) -> None:
    await acv.schedule("heartbeat", "*/10 * * * * *")

    assert (await acv.pause_schedule("heartbeat")).paused is True
    assert (await acv.resume_schedule("heartbeat")).paused is False
    job_id = await acv.run_schedule("heartbeat")
    assert [s.last_job_id for s in await acv.get_schedules()] == [job_id]


# --- daylight saving ---------------------------------------------------------------------


def local_ticks(cron: str, tz: str, since: str, until: str) -> list[str]:
    ticks = Cron(cron, tz)
    return [t.astimezone(ticks.zone).isoformat()
            for t in ticks.ticks(at(since, tz), at(until, tz))]


def test_a_wall_time_the_clock_skips_fires_shifted_forward_by_the_jump() -> None:
    assert local_ticks("30 2 * * *", BERLIN, "2025-03-29T00:00", "2025-03-31T23:00") == [
        "2025-03-29T02:30:00+01:00", "2025-03-30T03:30:00+02:00", "2025-03-31T02:30:00+02:00"]
    assert local_ticks("30 2 * * *", NEW_YORK, "2025-03-08T00:00", "2025-03-10T23:00") == [
        "2025-03-08T02:30:00-05:00", "2025-03-09T03:30:00-04:00", "2025-03-10T02:30:00-04:00"]


def test_skipped_ticks_that_land_on_one_instant_fire_once() -> None:
    assert local_ticks("0,30 2,3 * * *", BERLIN, "2025-03-30T00:00", "2025-03-30T05:00") == [
        "2025-03-30T03:00:00+02:00", "2025-03-30T03:30:00+02:00"]


def test_a_wall_time_that_happens_twice_fires_once_at_its_first_occurrence() -> None:
    assert local_ticks("30 2 * * *", BERLIN, "2025-10-25T00:00", "2025-10-27T23:00") == [
        "2025-10-25T02:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"]
    assert local_ticks("30 1 * * *", NEW_YORK, "2025-11-01T00:00", "2025-11-03T23:00") == [
        "2025-11-01T01:30:00-04:00", "2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]


def test_a_schedule_with_every_hour_fires_through_both_passes_of_a_repeated_hour() -> None:
    assert local_ticks("*/20 * * * *", BERLIN, "2025-10-26T01:50", "2025-10-26T03:00") == [
        "2025-10-26T02:00:00+02:00", "2025-10-26T02:20:00+02:00", "2025-10-26T02:40:00+02:00",
        "2025-10-26T02:00:00+01:00", "2025-10-26T02:20:00+01:00", "2025-10-26T02:40:00+01:00",
        "2025-10-26T03:00:00+01:00"]


def test_a_daily_schedule_sends_one_job_on_each_daylight_saving_night(cv: Conveyor) -> None:
    cv.schedule("nightly", "30 2 * * *", tz=BERLIN)
    step = timedelta(minutes=10)

    set_next_tick(cv, "nightly", at("2025-03-30T03:30", BERLIN))
    spring = drive(cv, at("2025-03-29T23:00", BERLIN), at("2025-03-30T05:00", BERLIN), step)
    spring_ticks = [t for t, _ in recorded_ticks(cv, "nightly")]
    set_next_tick(cv, "nightly", at("2025-10-26T02:30", BERLIN))
    autumn = drive(cv, at("2025-10-25T23:00", BERLIN), at("2025-10-26T05:00", BERLIN), step)

    assert (spring, autumn) == (1, 1)
    assert spring_ticks == [at("2025-03-30T01:30")]  # 03:30 summer time
    # The spring tick was forgotten (older than a day); 02:30 summer time, the first pass:
    assert [t for t, _ in recorded_ticks(cv, "nightly")] == [at("2025-10-26T00:30")]
    [after] = cv.get_schedules()
    assert after.next_tick == at("2025-10-27T02:30", BERLIN)


# --- exactly once under concurrency ------------------------------------------------------


@pytest.mark.slow
def test_three_processes_ticking_at_once_send_exactly_one_job_per_tick(
    cv: Conveyor, workers: Workers
) -> None:
    saved = cv.schedule("every-second", "* * * * * *")
    tickers = [workers.script(cv.settings.dsn, cv.schema, "ticker_app.py", seconds=5)
               for _ in range(3)]
    for ticker in tickers:
        assert ticker.wait_exit() == 0, ticker.text()

    ticks = recorded_ticks(cv, "every-second")
    [after] = cv.get_schedules()
    instants = [t for t, _ in ticks]
    jobs = [job for _, job in ticks]
    expected = int((after.next_tick - saved.next_tick).total_seconds())
    assert expected >= 4  # the processes ticked through several seconds
    assert instants == [saved.next_tick + timedelta(seconds=n) for n in range(expected)]
    assert None not in jobs and len(set(jobs)) == len(jobs)
    assert job_count(cv, "every-second") == len(jobs)
    sent = sum(int(t.text().split("sent ")[-1]) for t in tickers)
    assert sent == len(jobs)


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, schema: str) -> Iterator[Any]:
    runner = CliRunner()
    common = ["--dsn", database_url, "--schema", schema]
    yield lambda *args: runner.invoke(cli_app, [*args, *common])


def test_the_command_line_creates_lists_and_removes_a_schedule(cv: Conveyor, cli: Any) -> None:
    created = cli("schedule", "nightly", "30 2 * * *", "--tz", BERLIN,
                  "--data", '{"kind": "report"}', "--queue", "reports")
    table = cli("schedules")
    listed = cli("schedules", "--json")
    saved = cv.get_schedules()
    removed = cli("unschedule", "nightly")
    removed_again = cli("unschedule", "nightly")

    assert created.exit_code == 0, created.output
    assert [(s.name, s.queue, s.tz, s.data) for s in saved] == [
        ("nightly", "reports", BERLIN, {"kind": "report"})]
    assert table.exit_code == 0 and "nightly" in table.output and "30 2 * * *" in table.output
    rows = json.loads(listed.output)
    assert [(r["name"], r["cron"], r["data"]) for r in rows] == [
        ("nightly", "30 2 * * *", {"kind": "report"})]
    assert removed.exit_code == 0 and cv.get_schedules() == []
    assert removed_again.exit_code == 1


def test_the_command_line_sets_a_schedule_to_skip_missed_ticks(cv: Conveyor, cli: Any) -> None:
    result = cli("schedule", "checks", "*/5 * * * *", "--missed", "skip")

    assert result.exit_code == 0, result.output
    assert [s.missed for s in cv.get_schedules()] == ["skip"]


def test_the_command_line_refuses_an_invalid_cron_and_saves_nothing(
    cv: Conveyor, cli: Any
) -> None:
    result = cli("schedule", "bad", "61 * * * *")

    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidSchedule)
    assert cv.get_schedules() == []



def test_the_command_line_pauses_runs_and_resumes_a_schedule(cv: Conveyor, cli: Any) -> None:
    cv.schedule("nightly", "30 2 * * *")

    paused = cli("pause-schedule", "nightly")
    table = cli("schedules")
    ran = cli("run-schedule", "nightly")
    after_run = cv.get_schedules()
    resumed = cli("resume-schedule", "nightly")

    assert paused.exit_code == 0, paused.output
    assert "paused" in table.output
    assert ran.exit_code == 0, ran.output
    [schedule] = after_run
    assert schedule.paused and ran.output.strip() == schedule.last_job_id
    assert resumed.exit_code == 0, resumed.output
    assert "next tick" in resumed.output and not cv.get_schedules()[0].paused
    assert "created" in cli("schedules").output


@pytest.mark.parametrize("command", ["pause-schedule", "resume-schedule", "run-schedule"])
def test_the_command_line_refuses_an_unknown_schedule(
    cv: Conveyor, cli: Any, command: str
) -> None:
    result = cli(command, "nowhere")

    assert result.exit_code != 0
    assert isinstance(result.exception, ScheduleNotFound)
    assert job_count(cv, "nowhere") == 0
