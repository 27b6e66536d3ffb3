"""The API's routes on flows: send one (``POST /api/flows``), and read a job's
edges (``GET /api/jobs/{id}/dependencies`` and ``/dependents``) with each edge's
ref, failure policy and whether it settled.

Sending is a thin face over ``flow``: a flow it refuses (a duplicate or unknown
ref, a cycle, a bad option) is a 400, a dependency on a job that does not exist a
404, a step a queue's policy turns away a 409, and in each case nothing is sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from conveyor.client import AsyncConveyor
from conveyor.web.api.answers import LinkOut
from conveyor.web.api.client import Client
from conveyor.web.api.inputs import FlowIn
from conveyor.web.api.jobs import existing_job
from conveyor.web.job_links import job_links

router = APIRouter(tags=["flows"])


@router.post("/flows", response_model=dict[str, str], status_code=201,
             response_description="each step's id, by its ref")
async def send_flow(cv: Client, flow: FlowIn) -> dict[str, str]:
    """Send the steps of a flow in one transaction; answers each step's id by its
    ref. A step waits until every job it depends on has finished: it runs once
    they have completed, and a failed or cancelled one applies its policy."""
    return await cv.flow([step.model_dump(exclude_none=True) for step in flow.steps])


Limit = Annotated[int, Query(ge=1, le=1000, description="edges a page (1000)")]
After = Annotated[str | None, Query(
    description="the id of the last job of the page before: the page after it")]


async def _links(cv: AsyncConveyor, job_id: str, *, dependents: bool, limit: int,
                 after: str | None) -> list[LinkOut]:
    job = await existing_job(cv, job_id)
    return [LinkOut.model_validate(link)
            for link in await job_links(cv, job.id, dependents=dependents, limit=limit,
                                        after=after)]


@router.get("/jobs/{job_id}/dependencies", response_model=list[LinkOut])
async def list_dependencies(cv: Client, job_id: str, limit: Limit = 1000,
                            after: After = None) -> Any:
    """The jobs this job waits for (or waited for), oldest first: each with the ref
    this job reads its output by, this job's policy should it fail, and whether it
    has finished (settled). A page of ``limit``; the next one starts ``after`` the
    last job of this one."""
    return await _links(cv, job_id, dependents=False, limit=limit, after=after)


@router.get("/jobs/{job_id}/dependents", response_model=list[LinkOut])
async def list_dependents(cv: Client, job_id: str, limit: Limit = 1000,
                          after: After = None) -> Any:
    """The jobs that wait (or waited) for this job, oldest first, with the same
    fields seen from the other end, a page at a time as for the dependencies."""
    return await _links(cv, job_id, dependents=True, limit=limit, after=after)
