"""Cron schedules: ``schedule``, ``unschedule``, ``get_schedules``, pausing,
resuming and running one by hand, and the ``tick`` that the elected leader runs
every second or so.

**Exactly one job per tick.** A schedule row holds the next tick it has not
enqueued (``next_tick``). ``tick`` runs as one transaction: it locks the due
schedules ``FOR UPDATE SKIP LOCKED`` (a process ticking at the same time skips
them, and once the first commits their ``next_tick`` has moved on), records each
tick in ``schedule_tick`` (primary key: schedule and tick) before it sends the
tick's job, and moves ``next_tick`` on. The job, the tick's record and the new
``next_tick`` commit together or not at all; and should two transactions ever
reach the same tick, the primary key lets one of them record it, and only that
one sends a job. A new leader starts from ``next_tick``, so a change of leader
loses no tick.

**Late ticks.** A tick due for at most :data:`ON_TIME` is on time and gets its own
job, however many are due at once (a leader that took over after a few seconds
catches up tick by tick). Ticks older than that were missed (nothing was ticking:
downtime). With ``missed="once"`` (the default) they get one job between them,
recorded under the first missed tick; with ``missed="skip"``, none.

**Daylight saving.** Cron fields are read on the wall clock of the schedule's time
zone (with cronsim: standard 5 fields, or 6 with seconds first):

- A wall time the clock skips (02:30 on the night 02:00 jumps to 03:00) fires
  shifted forward by the length of the jump: at 03:30 summer time, the same real
  time after midnight as on any other night. Two ticks that land on one instant
  that way make one tick.
- A wall time that happens twice (01:30 on the night 02:00 goes back to 01:00)
  fires once, at its first occurrence, so a daily job runs once. Schedules whose
  hour field is ``*`` fire at both occurrences: "every 5 minutes" goes on every
  5 minutes of real time through the repeated hour.

**Pausing and running by hand.** A paused schedule is skipped by ``tick``.
Resuming it starts from the first tick after the resume: the ticks it missed
while paused send nothing, whatever ``missed`` says (that setting is about
downtime, when nobody chose to stop the schedule). ``run_schedule`` sends the
schedule's job at once, paused or not, and leaves its next tick alone. Each job
a schedule sends, at a tick or by hand, is recorded as its last run in the
transaction that sends it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Operation, Plan
from conveyor._ops import enqueue, validate
from conveyor._ops import options as _options
from conveyor.errors import InvalidArgument, InvalidOption, InvalidSchedule, ScheduleNotFound
from conveyor.job import JobState, Schedule

log = logging.getLogger("conveyor.scheduler")

ON_TIME: Final = timedelta(minutes=5)
"""How late a tick may be and still get a job of its own; later ticks were missed."""

Missed = Literal["once", "skip"]
_MISSED: Final = ("once", "skip")

# Options that make no sense repeated at every tick: one id would keep one job
# for good, and a schedule that debounces itself would replace its own jobs.
_NOT_SCHEDULED: Final = frozenset({"id", "debounce_seconds"})
_SCHEDULE_OPTIONS: Final = tuple(o for o in _options.JOB_OPTIONS if o not in _NOT_SCHEDULED)


class Cron:
    """A cron expression in a time zone: which instants are its ticks."""

    def __init__(self, expression: str, tz: str) -> None:
        if not isinstance(expression, str):
            raise InvalidSchedule(f"cron must be a string like '0 2 * * *', not {expression!r}")
        self.expression = " ".join(expression.split())
        self.zone = _zone(tz)
        try:
            next(CronSim(self.expression, datetime(2000, 1, 1)))
        except (CronSimError, StopIteration) as exc:
            raise InvalidSchedule(
                f"invalid cron expression {expression!r} ({exc}); use 5 fields "
                "(minute hour day month weekday, e.g. '30 2 * * *') or 6 with seconds first "
                "(e.g. '*/10 * * * * *')"
            ) from None
        # The hour field is the fourth from the end, with or without seconds.
        self._every_hour = self.expression.split()[-4] == "*"

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after ``instant`` (an aware datetime), in UTC."""
        # Wall times map to instants in order except near an offset change, where
        # a wall time up to the size of the change before (or after) another can
        # fire after (or before) it: look that far back, and that far ahead.
        spread = self._spread(instant)
        start = instant.astimezone(self.zone).replace(tzinfo=None) - spread
        best: datetime | None = None
        horizon: datetime | None = None
        for wall in CronSim(self.expression, start):
            if horizon is not None and wall > horizon:
                break
            later = [t for t in self._instants(wall) if t > instant]
            if later:
                first = min(later)
                if best is None or first < best:
                    best = first
                if horizon is None:
                    horizon = wall + self._spread(first)
        assert best is not None  # a valid expression ticks again
        return best

    def _spread(self, instant: datetime) -> timedelta:
        """How far the zone's offset changes within three hours of ``instant``."""
        offsets = [
            (instant + timedelta(hours=hours)).astimezone(self.zone).utcoffset() or timedelta(0)
            for hours in (-3, 0, 3)
        ]
        return max(offsets) - min(offsets)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The instants at which a wall time fires, by the daylight-saving rule."""
        first = wall.replace(tzinfo=self.zone).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        skipped = first.astimezone(self.zone).replace(tzinfo=None) != wall
        # fold=0 of a skipped time reads it with the offset before the jump, which
        # is the wall time shifted forward by the jump.
        if skipped or not self._every_hour:
            return [first]
        return [first, second]

    def ticks(self, since: datetime, until: datetime) -> Iterator[datetime]:
        """The ticks in ``(since, until]``."""
        tick = self.next_after(since)
        while tick <= until:
            yield tick
            tick = self.next_after(tick)


def _zone(tz: object) -> ZoneInfo:
    try:
        if isinstance(tz, str):
            return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise InvalidSchedule(
        f"unknown time zone {tz!r}; use an IANA name such as 'UTC', 'Europe/Berlin' or "
        "'America/New_York'"
    )


def _stored_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The given job options as JSON: durations in seconds. They were checked."""
    stored: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name in _NOT_SCHEDULED:
            raise InvalidOption(f"{name} cannot be given to a schedule: every tick sends a job")
        if name == "start_after" and isinstance(value, datetime):
            raise InvalidOption(
                "a schedule's start_after is a delay after each tick (seconds or timedelta), "
                "not a datetime"
            )
        stored[name] = value.total_seconds() if isinstance(value, timedelta) else value
    return stored


def schedule(
    ctx: Context,
    /,
    name: str,
    cron: str,
    data: Any = None,
    *,
    tz: str = "UTC",
    queue: str | None = None,
    missed: Missed = "once",
    conn: Any = None,
    **job_options: Any,
) -> Operation[Schedule]:
    """Create the schedule ``name``, or replace it: at every tick of ``cron`` in the
    time zone ``tz``, one job with ``data`` goes to ``queue`` (by default, the queue
    named like the schedule, created on first use).

    - ``cron``: 5 fields (minute hour day month weekday), or 6 with seconds first.
    - ``tz``: an IANA time zone; the daylight-saving rule is in the guide.
    - ``missed``: after downtime, ``"once"`` sends one job for all the missed ticks,
      ``"skip"`` none.
    - ``job_options``: :meth:`send`'s options for every job (but ``id`` and
      ``debounce_seconds``); ``start_after`` is a delay after each tick.

    An invalid cron expression, time zone or option raises before anything is
    written. Exactly one job is sent per tick, however many workers run.

    Example::

        cv.schedule("nightly-report", "0 2 * * *", {"kind": "daily"},
                    tz="Europe/Berlin", retry_limit=5)
    """
    schedule_name = validate.queue_name(name, "schedule")
    target = schedule_name if queue is None else validate.queue_name(queue)
    ticks = Cron(cron, tz)
    if missed not in _MISSED:
        raise InvalidOption(f"missed must be 'once' or 'skip', not {missed!r}")
    unknown = {key: value for key, value in job_options.items()
               if key not in _options.JOB_OPTIONS}
    validate.unknown_options(unknown, _SCHEDULE_OPTIONS)
    stored = _stored_options(job_options)
    row = _options.job_row(data, ctx.max_payload_bytes, stored)
    params = {
        "name": schedule_name, "queue": target, "cron": ticks.expression, "tz": tz,
        "data": row.data, "options": validate.encode_json(stored, ctx.max_payload_bytes,
                                                           "options"),
        "missed": missed, "next_tick": ticks.next_after(datetime.now(UTC)),
    }

    def plan() -> Plan[Schedule]:
        return _schedule_from_row((yield Execute(statements.SCHEDULE_SAVE, params)))

    return Operation(plan(), conn)


def unschedule(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[bool]:
    """Remove the schedule ``name``; returns whether it existed. Jobs it already
    sent stay in their queue."""
    params = {"name": validate.queue_name(name, "schedule")}

    def plan() -> Plan[bool]:
        return bool((yield Execute(statements.SCHEDULE_DELETE, params)))

    return Operation(plan(), conn)


def get_schedules(ctx: Context, /, *, conn: Any = None) -> Operation[list[Schedule]]:
    """Every schedule, by name, with its last run and the state of the job it sent."""

    def plan() -> Plan[list[Schedule]]:
        return [_schedule_from_row(row) for row in (yield Execute(statements.SCHEDULE_LIST))]

    return Operation(plan(), conn)


def pause_schedule(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[Schedule]:
    """Stop the ticks of the schedule ``name`` until :meth:`resume_schedule`; jobs it
    already sent go on. Returns the schedule (its ``next_tick`` is None while
    paused); raises :class:`~conveyor.errors.ScheduleNotFound` when there is none.

    Example::

        cv.pause_schedule("nightly-report")   # the warehouse is down for the night
    """
    params = {"name": validate.queue_name(name, "schedule")}

    def plan() -> Plan[Schedule]:
        return _schedule_from_row(_found((yield Execute(statements.SCHEDULE_PAUSE, params)),
                                         params["name"]))

    return Operation(plan(), conn)


def resume_schedule(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[Schedule]:
    """Start the ticks of a paused schedule again, from the first tick after now:
    the ticks missed while it was paused send nothing (run it by hand with
    :meth:`run_schedule` if one is needed). Resuming a schedule that is not paused
    changes nothing. Returns the schedule; raises
    :class:`~conveyor.errors.ScheduleNotFound` when there is none."""
    schedule_name = validate.queue_name(name, "schedule")

    def plan() -> Plan[Schedule]:
        row = _found((yield Execute(statements.SCHEDULE_LOCK, {"name": schedule_name})),
                     schedule_name)
        params = {"name": schedule_name,
                  "next_tick": Cron(row["cron"], row["tz"]).next_after(row["now"])}
        return _schedule_from_row((yield Execute(statements.SCHEDULE_RESUME, params)))

    return Operation(plan(), conn, atomic=True)


def run_schedule(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[str | None]:
    """Send the job of the schedule ``name`` now, as a tick would (same queue, data
    and options), and record it as the schedule's last run; paused or not, its
    next tick stays where it was. Returns the job's id, or None when the queue's
    policy turned the job away; raises :class:`~conveyor.errors.ScheduleNotFound`
    when there is no such schedule.

    Example::

        job_id = cv.run_schedule("nightly-report")   # the report is needed now
    """
    schedule_name = validate.queue_name(name, "schedule")

    def plan() -> Plan[str | None]:
        row = _found((yield Execute(statements.SCHEDULE_LOCK, {"name": schedule_name})),
                     schedule_name)
        job = _options.job_row(row["data"], ctx.max_payload_bytes, row["options"])
        job_id = yield from enqueue.send_one(ctx, row["queue"], job, True)
        yield from _record_last_run(schedule_name, row["now"], job_id)
        return job_id

    return Operation(plan(), conn, atomic=True)


def _found(row: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    if row is None:
        raise ScheduleNotFound(
            f"schedule {name!r} does not exist; get_schedules() lists them and "
            "schedule() creates one")
    return row


def _schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    state = row["last_job_state"]
    return Schedule(**{**row, "last_job_state": None if state is None else JobState(state)})


def _record_last_run(name: str, at: datetime, job_id: str | None) -> Plan[None]:
    yield Execute(statements.SCHEDULE_LAST_RUN, {"name": name, "at": at, "job": job_id})


def _due_ticks(row: Mapping[str, Any], ticks: Cron) -> tuple[list[datetime], datetime]:
    """The ticks of a due schedule that get a job, and its next tick after them."""
    now, first = row["now"], row["next_tick"]
    cutoff = now - ON_TIME
    due: list[datetime] = []
    if first <= cutoff:
        if row["missed"] == "once":
            due.append(first)
        first = ticks.next_after(cutoff)
    while first <= now:
        due.append(first)
        first = ticks.next_after(first)
    return due, first


def tick(ctx: Context, now: datetime | None = None) -> Plan[int]:
    """Send the jobs of every due tick of every schedule and move each schedule to
    its next tick; returns how many jobs were sent. Run it as one transaction
    (``Operation(tick(...), atomic=True)``), from any number of processes at once.
    ``now`` replaces the database's clock (tests drive it through time)."""
    sent = 0
    for row in (yield Execute(statements.SCHEDULE_DUE, {"now": now})):
        try:
            ticks = Cron(row["cron"], row["tz"])
            job = _options.job_row(row["data"], ctx.max_payload_bytes, row["options"])
        except InvalidArgument as exc:
            # Checked when saved, but the time zone database or the payload limit
            # may have changed since: this schedule waits, the others go on.
            log.warning("schedule %r cannot tick: %s", row["name"], exc)
            continue
        due, next_tick = _due_ticks(row, ticks)
        for instant in due:
            key = {"name": row["name"], "tick": instant}
            if (yield Execute(statements.SCHEDULE_TICK_CLAIM, key)) is None:
                continue  # enqueued already
            job_id = yield from enqueue.send_one(ctx, row["queue"], job, True)
            yield Execute(statements.SCHEDULE_TICK_JOB, {**key, "job": job_id})
            yield from _record_last_run(row["name"], row["now"], job_id)
            sent += job_id is not None
        advance = {"name": row["name"], "next_tick": next_tick, "now": row["now"]}
        yield Execute(statements.SCHEDULE_ADVANCE, advance)
    return sent
