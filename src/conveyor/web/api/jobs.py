"""The API's routes on jobs (``/api/jobs...``): list and count them by filters, send
one, act on one or on every job a filter matches, delete one.

Each route is a thin face over the client method of the same name; a job that
does not exist is a 404 here, where the client answers None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query

from conveyor.client import AsyncConveyor
from conveyor.job import Job, JobState
from conveyor.web.api.answers import ChangedOut, CountOut, JobOut, JobPageOut, MatchedOut, SentOut
from conveyor.web.api.client import Client
from conveyor.web.api.errors import ApiError
from conveyor.web.api.inputs import SCHEDULED, FilterIn, SendIn
from conveyor.web.lookup import found

router = APIRouter(tags=["jobs"])

JobAction = Literal["retry", "cancel", "resume"]


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The filters ``GET /api/jobs`` and ``GET /api/jobs/count`` take from the query
    string; a job must match every one given."""

    queue: str | None
    state: list[JobState] | None
    key: str | None
    search: str | None
    scheduled: bool | None

    def options(self) -> dict[str, Any]:
        """The filters but the queue, as the client's keyword arguments."""
        return {"state": self.state, "key": self.key, "search": self.search,
                "scheduled": self.scheduled}


def _job_query(
    queue: str | None = None,
    state: Annotated[list[JobState] | None, Query(description="one or more states")] = None,
    key: Annotated[str | None, Query(description="singleton key or group key")] = None,
    q: Annotated[str | None, Query(description="an id, or text in data, output or error")] = None,
    scheduled: Annotated[bool | None, Query(description=SCHEDULED)] = None,
) -> JobQuery:
    return JobQuery(queue, state, key, q, scheduled)


Filters = Annotated[JobQuery, Depends(_job_query)]


@router.get("/jobs", response_model=JobPageOut)
async def list_jobs(
    cv: Client,
    filters: Filters,
    source_id: Annotated[
        str | None, Query(description="the job whose dead-letter copies to list")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> JobPageOut:
    """Jobs matching every filter given, newest first, a page at a time."""
    page = await cv.find_jobs(filters.queue, **filters.options(), source_id=source_id,
                              limit=limit, cursor=cursor)
    return JobPageOut.model_validate(page)


@router.get("/jobs/count", response_model=MatchedOut)
async def count_jobs(cv: Client, filters: Filters) -> MatchedOut:
    """How many jobs match the filters of ``GET /api/jobs``: what a bulk action with
    the same filters would look at."""
    return MatchedOut(count=await cv.count_jobs(filters.queue, **filters.options()))


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


async def existing_job(cv: AsyncConveyor, job_id: str) -> Job:
    """The job, or a 404 when there is none (or the id is malformed)."""
    return await found(cv.get_job(job_id), ApiError(404, f"no job with id {job_id!r}"))


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(cv: Client, job_id: str) -> Any:
    """One job, with its data, output, progress and each attempt's error."""
    return JobOut.model_validate(await existing_job(cv, job_id))


@router.post("/jobs/{job_id}/{action}", response_model=ChangedOut)
async def act_on_job(cv: Client, job_id: str, action: JobAction) -> ChangedOut:
    """Retry a failed job, cancel an unfinished one, or resume a cancelled one; 409
    when the job is not in a state the action applies to."""
    job = await existing_job(cv, job_id)
    method = {"retry": cv.retry, "cancel": cv.cancel, "resume": cv.resume}[action]
    if not await method(job.id):
        raise ApiError(409, f"cannot {action} job {job.id}: it is {job.state.value}")
    return ChangedOut(id=job.id, state=(await existing_job(cv, job.id)).state)


@router.delete("/jobs/{job_id}", status_code=204)
async def delete_job(cv: Client, job_id: str) -> None:
    """Delete a job in any state."""
    job = await existing_job(cv, job_id)
    if not await cv.delete(job.id):
        raise ApiError(404, f"no job with id {job_id!r}")
