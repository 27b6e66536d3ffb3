"""The API's routes on cron schedules (``/api/schedules...``): list them with their
next tick and last run, pause and resume one, run one now.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor.web.api.answers import ScheduleOut, SentOut
from conveyor.web.api.client import Client
from conveyor.web.api.errors import ApiError

router = APIRouter(tags=["schedules"])


@router.get("/schedules", response_model=list[ScheduleOut])  # type: ignore[valid-type]
async def list_schedules(cv: Client) -> Any:
    """Every cron schedule with its next tick, whether it is paused, and its last
    run: when, the job it sent and that job's state."""
    return [ScheduleOut.model_validate(s) for s in await cv.get_schedules()]


@router.post("/schedules/{name:path}/pause", response_model=ScheduleOut)
async def pause_schedule(cv: Client, name: str) -> Any:
    """Stop the schedule's ticks until it is resumed; its ``next_tick`` is null
    meanwhile."""
    return ScheduleOut.model_validate(await cv.pause_schedule(name))


@router.post("/schedules/{name:path}/resume", response_model=ScheduleOut)
async def resume_schedule(cv: Client, name: str) -> Any:
    """Tick again from the first tick after now: ticks missed while paused send
    nothing."""
    return ScheduleOut.model_validate(await cv.resume_schedule(name))


@router.post("/schedules/{name:path}/run", response_model=SentOut, status_code=201)
async def run_schedule(cv: Client, name: str) -> SentOut:
    """Send the schedule's job now, as a tick would, recorded as its last run (paused
    or not); 409 when the queue's policy turns the job away."""
    job_id = await cv.run_schedule(name)
    if job_id is None:
        raise ApiError(409, "the queue's policy (or a throttle) turned the job away")
    return SentOut(id=job_id)
