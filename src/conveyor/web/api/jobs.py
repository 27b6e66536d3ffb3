"""The API's routes on jobs (``/api/jobs...``): list and count them by filters, send
one, act on one or on every job a filter matches, delete one.

Each route is a thin face over the client method of the same name; a job that
does not exist is a 404 here, where the client answers None.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query

from conveyor.client import AsyncConveyor
from conveyor.errors import InvalidArgument
from conveyor.job import Job, JobState
from conveyor.web.api.answers import ChangedOut, CountOut, JobOut, JobPageOut, MatchedOut, SentOut
from conveyor.web.api.client import Client
from conveyor.web.api.errors import ApiError
from conveyor.web.api.inputs import SCHEDULED, FilterIn, SendIn

router = APIRouter(tags=["jobs"])

JobAction = Literal["retry", "cancel", "resume"]


@router.get("/jobs", response_model=JobPageOut)
async def list_jobs(
    cv: Client,
    queue: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    key: Annotated[str | None, Query(description="singleton key or group key")] = None,
    q: Annotated[str | None, Query(description="an id, or text in data, output or error")] = None,
    source_id: Annotated[
        str | None, Query(description="the job whose dead-letter copies to list")] = None,
    scheduled: Annotated[bool | None, Query(description=SCHEDULED)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> JobPageOut:
    """Jobs matching every filter given, newest first, a page at a time."""
    page = await cv.find_jobs(queue, state=state, key=key, search=q, source_id=source_id,
                              scheduled=scheduled, limit=limit, cursor=cursor)
    return JobPageOut.model_validate(page)


@router.get("/jobs/count", response_model=MatchedOut)
async def count_jobs(
    cv: Client,
    queue: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    key: Annotated[str | None, Query(description="singleton key or group key")] = None,
    q: Annotated[str | None, Query(description="an id, or text in data, output or error")] = None,
    scheduled: Annotated[bool | None, Query(description=SCHEDULED)] = None,
) -> MatchedOut:
    """How many jobs match the filters of ``GET /api/jobs``: what a bulk action with
    the same filters would look at."""
    count = await cv.count_jobs(queue, state=state, key=key, search=q, scheduled=scheduled)
    return MatchedOut(count=count)


@router.post("/jobs", response_model=SentOut, status_code=201)
async def send_job(cv: Client, job: SendIn) -> SentOut:
    """Send a job; 409 when the queue's policy turns it away."""
    options = job.model_dump(exclude={"queue", "data"}, exclude_none=True)
    job_id = await cv.send(job.queue, job.data, **options)
    if job_id is None:
        raise ApiError(409, "the queue's policy (or a throttle, or an existing job with the "
                            "same id) turned the job away")
    return SentOut(id=job_id)


@router.post("/jobs/bulk/{action}", response_model=CountOut)
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


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(cv: Client, job_id: str) -> Any:
    """One job, with its data, output, progress and each attempt's error."""
    return JobOut.model_validate(await _job(cv, job_id))


@router.post("/jobs/{job_id}/{action}", response_model=ChangedOut)
async def act_on_job(cv: Client, job_id: str, action: JobAction) -> ChangedOut:
    """Retry a failed job, cancel an unfinished one, or resume a cancelled one; 409
    when the job is not in a state the action applies to."""
    job = await _job(cv, job_id)
    method = {"retry": cv.retry, "cancel": cv.cancel, "resume": cv.resume}[action]
    if not await method(job.id):
        raise ApiError(409, f"cannot {action} job {job.id}: it is {job.state.value}")
    return ChangedOut(id=job.id, state=(await _job(cv, job.id)).state)


@router.delete("/jobs/{job_id}", status_code=204)
async def delete_job(cv: Client, job_id: str) -> None:
    """Delete a job in any state."""
    job = await _job(cv, job_id)
    if not await cv.delete(job.id):
        raise ApiError(404, f"no job with id {job_id!r}")
