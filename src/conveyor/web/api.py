"""The REST API under ``/api``: jobs, queues, schedules, workers, statistics and
health. Every route is a thin face over a client method (the client checks the
input, so the API and Python callers get the same rules and messages); errors
come back as ``{"detail": "..."}`` with a 4xx status, or 503 when the database
cannot be reached. The OpenAPI spec is served at ``/api/openapi.json``.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from conveyor import _validate
from conveyor.client import AsyncConveyor
from conveyor.errors import (
    ConnectionLost,
    ConveyorError,
    InvalidArgument,
    NotStarted,
    PolicyViolation,
    QueueConflict,
    QueueNotFound,
    ScheduleNotFound,
    UnknownOption,
)
from conveyor.job import (
    Job,
    JobState,
    LeaderLease,
    QueueStats,
    QueueSummary,
    Schedule,
    WorkerInfo,
)
from conveyor.web.state import WebState, web_state


class ErrorOut(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    401: {"model": ErrorOut, "description": "Sign-in required"},
    403: {"model": ErrorOut, "description": "Read-only, or a missing CSRF token"},
    404: {"model": ErrorOut, "description": "No such job, queue or schedule"},
    409: {"model": ErrorOut, "description": "The job or queue is not in a state for this"},
    503: {"model": ErrorOut, "description": "The database cannot be reached"},
}

router = APIRouter(prefix="/api", responses=_ERRORS)
"""Errors raised by the routes are answered by the app (``app.py``), which knows
whether the request was the API's or a page's."""


class ApiError(Exception):
    """An error answer: its status and what to tell the caller."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def answer_of(exc: ConveyorError) -> tuple[int, str]:
    """The status and message that answer one of Conveyor's typed errors."""
    if isinstance(exc, QueueNotFound | ScheduleNotFound):
        return 404, str(exc)
    if isinstance(exc, PolicyViolation | QueueConflict):
        return 409, str(exc)
    if isinstance(exc, InvalidArgument | UnknownOption):
        return 400, str(exc)
    if isinstance(exc, ConnectionLost | NotStarted):
        return 503, f"the database cannot be reached: {exc}"
    return 500, str(exc)


async def _client(state: Annotated[WebState, Depends(web_state)]) -> AsyncConveyor:
    return await state.client()


Client = Annotated[AsyncConveyor, Depends(_client)]


# --- models ----------------------------------------------------------------------------

_OUT = ConfigDict(from_attributes=True, ser_json_timedelta="float")
"""Answers are read from the client's dataclasses; durations go out as seconds."""


def _mirror(
    source: type, *, name: str, exclude: frozenset[str] = frozenset(),
    doc: str | None = None, **extra: Any,
) -> type[BaseModel]:
    """A response model with the fields of one of the client's dataclasses (less
    ``exclude``, plus ``extra`` as ``(type, default or FieldInfo)``), so the API's
    answers follow the dataclasses without a second copy of their fields."""
    hints = typing.get_type_hints(source)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], ...) for f in dataclasses.fields(source)
        if f.name not in exclude and not f.name.startswith("_")
    }
    return pydantic.create_model(name, __config__=_OUT, __doc__=doc or source.__doc__,
                                 **{**fields, **extra})


JobOut = _mirror(
    Job, name="JobOut", exclude=frozenset({"singleton_on", "trace_context"}),
    doc="A job; durations are in seconds.",
    errors=(list[dict[str, Any]], Field(description="each failed attempt's error, oldest first")),
    progress=(dict[str, Any], ...))
ScheduleOut = _mirror(Schedule, name="ScheduleOut")
WorkerOut = _mirror(WorkerInfo, name="WorkerOut")
StatsOut = _mirror(QueueStats, name="StatsOut")
LeaderOut = _mirror(LeaderLease, name="LeaderOut")
QueueOut = _mirror(
    QueueSummary, name="QueueOut", doc="A queue now; ``lag`` in seconds.",
    waiting=(int, Field(description="created + retry")), paused=(bool, ...))


class JobPageOut(BaseModel):
    model_config = _OUT

    jobs: list[JobOut]  # type: ignore[valid-type]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


# What the input models take, stated in the spec as the server enforces it:
# numbers are numbers (never true or "5"), names match the client's pattern.
_NAME_PATTERN = f"^{_validate.QUEUE_NAME_PATTERN}$"
QueueName = Annotated[StrictStr, Field(pattern=_NAME_PATTERN, min_length=1, max_length=128,
                                       description="letters, digits and _ . : / -")]
Key = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Seconds = Annotated[StrictFloat | StrictInt, Field(description="seconds")]
Integer = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]


class SendIn(BaseModel):
    """A job to send; the options are those of ``send`` (durations in seconds)."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName
    data: Any = None
    priority: Integer | None = None
    start_after: StrictFloat | StrictInt | StrictStr | None = Field(
        None, description="a delay in seconds, or when to start: ISO 8601 with an offset")
    retry_limit: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None = None
    retry_delay: Seconds | None = None
    retry_backoff: StrictBool | None = None
    retry_delay_max: Seconds | None = None
    expire_in: Seconds | None = None
    retention: Seconds | None = None
    delete_after: Seconds | None = None
    dead_letter: QueueName | None = None
    singleton_key: Key | None = None
    singleton_seconds: Seconds | None = None
    singleton_next_slot: StrictBool = False
    debounce_seconds: Seconds | None = None
    group_key: Key | None = None
    id: StrictStr | None = Field(None, description="a UUID of your own")


class SentOut(BaseModel):
    id: str


_SCHEDULED = "true: only jobs waiting for a later start; false: the others"


class FilterIn(BaseModel):
    """Which jobs a bulk action applies to: the job list's filters (a queue or a
    state at least)."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = None
    state: list[JobState] | JobState | None = None
    key: Key | None = None
    q: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="search text, as in the job list")
    scheduled: StrictBool | None = Field(None, description=_SCHEDULED)
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="the jobs to act on, instead of the filters")


class CountOut(BaseModel):
    count: int = Field(description="how many jobs changed")


class MatchedOut(BaseModel):
    count: int = Field(description="how many jobs match the filters")


class ChangedOut(BaseModel):
    id: str
    state: JobState


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: Seconds | None = Field(None, description="how long; until resumed when left out")


class QueueStateOut(BaseModel):
    model_config = _OUT

    name: str
    paused_until: datetime | None


class HealthOut(BaseModel):
    model_config = _OUT

    healthy: bool
    database: bool
    problems: list[str]
    warnings: list[str]
    schema_version: int | None
    expected_version: int | None
    workers_alive: int
    leader: LeaderOut | None  # type: ignore[valid-type]


# --- jobs ------------------------------------------------------------------------------

JobAction = Literal["retry", "cancel", "resume"]


@router.get("/jobs", response_model=JobPageOut, tags=["jobs"])
async def list_jobs(
    cv: Client,
    queue: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    key: Annotated[str | None, Query(description="singleton key or group key")] = None,
    q: Annotated[str | None, Query(description="an id, or text in data, output or error")] = None,
    source_id: Annotated[
        str | None, Query(description="the job whose dead-letter copies to list")] = None,
    scheduled: Annotated[bool | None, Query(description=_SCHEDULED)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> JobPageOut:
    """Jobs matching every filter given, newest first, a page at a time."""
    page = await cv.find_jobs(queue, state=state, key=key, search=q, source_id=source_id,
                              scheduled=scheduled, limit=limit, cursor=cursor)
    return JobPageOut.model_validate(page)


@router.get("/jobs/count", response_model=MatchedOut, tags=["jobs"])
async def count_jobs(
    cv: Client,
    queue: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    key: Annotated[str | None, Query(description="singleton key or group key")] = None,
    q: Annotated[str | None, Query(description="an id, or text in data, output or error")] = None,
    scheduled: Annotated[bool | None, Query(description=_SCHEDULED)] = None,
) -> MatchedOut:
    """How many jobs match the filters of ``GET /api/jobs``: what a bulk action with
    the same filters would look at."""
    count = await cv.count_jobs(queue, state=state, key=key, search=q, scheduled=scheduled)
    return MatchedOut(count=count)


@router.post("/jobs", response_model=SentOut, status_code=201, tags=["jobs"])
async def send_job(cv: Client, job: SendIn) -> SentOut:
    """Send a job; 409 when the queue's policy turns it away."""
    options = job.model_dump(exclude={"queue", "data"}, exclude_none=True)
    job_id = await cv.send(job.queue, job.data, **options)
    if job_id is None:
        raise ApiError(409, "the queue's policy (or a throttle, or an existing job with the "
                            "same id) turned the job away")
    return SentOut(id=job_id)


@router.post("/jobs/bulk/{action}", response_model=CountOut, tags=["jobs"])
async def bulk_action(
    cv: Client, action: Literal["retry", "cancel", "resume", "delete"],
    where: Annotated[FilterIn, Body()],
) -> CountOut:
    """Apply an action to every job matching the filter, or to the jobs ``ids``
    names (at most 1,000, with no other filter)."""
    count = await cv.bulk(action, where.queue, state=where.state, key=where.key, search=where.q,
                          scheduled=where.scheduled, ids=where.ids)
    return CountOut(count=count)


async def _job(cv: AsyncConveyor, job_id: str) -> Job:
    try:
        job = await cv.get_job(job_id)
    except InvalidArgument:
        job = None
    if job is None:
        raise ApiError(404, f"no job with id {job_id!r}")
    return job


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
async def get_job(cv: Client, job_id: str) -> Any:
    """One job, with its data, output, progress and each attempt's error."""
    return JobOut.model_validate(await _job(cv, job_id))


@router.post("/jobs/{job_id}/{action}", response_model=ChangedOut, tags=["jobs"])
async def act_on_job(cv: Client, job_id: str, action: JobAction) -> ChangedOut:
    """Retry a failed job, cancel an unfinished one, or resume a cancelled one; 409
    when the job is not in a state the action applies to."""
    job = await _job(cv, job_id)
    method = {"retry": cv.retry, "cancel": cv.cancel, "resume": cv.resume}[action]
    if not await method(job.id):
        raise ApiError(409, f"cannot {action} job {job.id}: it is {job.state.value}")
    return ChangedOut(id=job.id, state=(await _job(cv, job.id)).state)


@router.delete("/jobs/{job_id}", status_code=204, tags=["jobs"])
async def delete_job(cv: Client, job_id: str) -> None:
    """Delete a job in any state."""
    job = await _job(cv, job_id)
    if not await cv.delete(job.id):
        raise ApiError(404, f"no job with id {job_id!r}")


# --- queues, schedules, workers, statistics ---------------------------------------------

@router.get("/queues", response_model=list[QueueOut], tags=["queues"])  # type: ignore[valid-type]
async def list_queues(cv: Client) -> Any:
    """Every queue as it is now: counts, lag, the last hour's throughput, paused."""
    return [QueueOut.model_validate({**dataclasses.asdict(s), "waiting": s.waiting,
                                     "paused": s.paused_until is not None})
            for s in await cv.queue_summaries()]


@router.post("/queues/{name:path}/pause", response_model=QueueStateOut, tags=["queues"])
async def pause_queue(
    cv: Client, name: str, pause: Annotated[PauseIn | None, Body()] = None,
) -> QueueStateOut:
    """Stop claiming the queue's jobs, for ``seconds`` or until resumed."""
    return QueueStateOut.model_validate(
        await cv.pause_queue(name, None if pause is None else pause.seconds))


@router.post("/queues/{name:path}/resume", response_model=QueueStateOut, tags=["queues"])
async def resume_queue(cv: Client, name: str) -> QueueStateOut:
    """Claim the queue's jobs again."""
    return QueueStateOut.model_validate(await cv.resume_queue(name))


@router.get("/schedules", response_model=list[ScheduleOut], tags=["schedules"])  # type: ignore[valid-type]
async def list_schedules(cv: Client) -> Any:
    """Every cron schedule with its next tick, whether it is paused, and its last
    run: when, the job it sent and that job's state."""
    return [ScheduleOut.model_validate(s) for s in await cv.get_schedules()]


@router.post("/schedules/{name:path}/pause", response_model=ScheduleOut, tags=["schedules"])
async def pause_schedule(cv: Client, name: str) -> Any:
    """Stop the schedule's ticks until it is resumed; its ``next_tick`` is null
    meanwhile."""
    return ScheduleOut.model_validate(await cv.pause_schedule(name))


@router.post("/schedules/{name:path}/resume", response_model=ScheduleOut, tags=["schedules"])
async def resume_schedule(cv: Client, name: str) -> Any:
    """Tick again from the first tick after now: ticks missed while paused send
    nothing."""
    return ScheduleOut.model_validate(await cv.resume_schedule(name))


@router.post("/schedules/{name:path}/run", response_model=SentOut, status_code=201,
             tags=["schedules"])
async def run_schedule(cv: Client, name: str) -> SentOut:
    """Send the schedule's job now, as a tick would, recorded as its last run (paused
    or not); 409 when the queue's policy turns the job away."""
    job_id = await cv.run_schedule(name)
    if job_id is None:
        raise ApiError(409, "the queue's policy (or a throttle) turned the job away")
    return SentOut(id=job_id)


@router.get("/workers", response_model=list[WorkerOut], tags=["workers"])  # type: ignore[valid-type]
async def list_workers(cv: Client) -> Any:
    """The worker processes that announced themselves, alive first."""
    return [WorkerOut.model_validate(w) for w in await cv.get_workers()]


@router.get("/stats", response_model=list[StatsOut], tags=["queues"])  # type: ignore[valid-type]
async def statistics(
    cv: Client, queue: str | None = None,
    since: Annotated[float, Query(gt=0, le=366 * 86400, description="seconds back")] = 3600,
) -> Any:
    """The statistics snapshots of the last ``since`` seconds, oldest first."""
    return [StatsOut.model_validate(s) for s in await cv.get_stats(queue, since=since)]


@router.get("/health", response_model=HealthOut, tags=["health"],
            responses={503: {"model": HealthOut, "description": "Unhealthy"}})
async def health(request: Request) -> JSONResponse:
    """200 when healthy; 503 when the database cannot be reached, the schema is
    behind, or due jobs wait with no worker alive."""
    state = web_state(request)
    try:
        cv = await state.client()
        report = await cv.health(backlog_warning=state.settings.backlog_warning)
    except (ConnectionLost, NotStarted) as exc:
        out = HealthOut(healthy=False, database=False, problems=[
            f"the database cannot be reached: {exc}"], warnings=[], schema_version=None,
            expected_version=None, workers_alive=0, leader=None)
        return JSONResponse(out.model_dump(mode="json"), status_code=503)
    out = HealthOut.model_validate({**dataclasses.asdict(report), "database": True})
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if report.healthy else 503)
