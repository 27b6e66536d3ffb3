"""The job list (``/jobs``) and a job's page (``/jobs/{id}``), with the parts that
refresh themselves under ``/partials/jobs...``.

The list shows state tabs with counts, the filters, one page of matching jobs and
the bulk actions; a job's page shows its data, output, progress, the timeline of
its attempts, its dead-letter copies, and for a step of a flow the jobs it waits
for, those that wait for it, and a drawing of the flow.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conveyor.errors import ConveyorError, InvalidArgument
from conveyor.job import JobState
from conveyor.web.dashboard.flow_graph import flow_graph
from conveyor.web.dashboard.job_actions import JOB_ACTIONS
from conveyor.web.dashboard.job_filter import JobFilter
from conveyor.web.dashboard.live import Live, live, partial
from conveyor.web.dashboard.rendering import Missing, page, problem_page
from conveyor.web.dashboard.state_tabs import state_tabs
from conveyor.web.dashboard.timeline import timeline
from conveyor.web.job_links import job_links
from conveyor.web.lookup import found
from conveyor.web.state import started_client

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
"""Jobs on one page of the job list unless ``limit`` says otherwise."""

_MAX_COPIES = 10
"""Dead-letter copies of a job listed on its page (a job retried by hand and
failed again has one per failure)."""

_MAX_LINKS = 50
"""Dependencies, and dependents, listed on a job's page (a batch's callback
depends on every item of its batch)."""


def _page_size(query: Mapping[str, str]) -> int:
    given = query.get("limit", "").strip()
    if not given:
        return PAGE_SIZE
    # ASCII digits only ("²".isdigit() is true), and few of them: int() refuses
    # thousands of digits, and find_jobs refuses any page over 1,000 anyway.
    if not (given.isascii() and given.isdigit() and len(given) <= 6):
        raise InvalidArgument(f"limit must be a whole number from 1 to 1000, not {given[:20]!r}")
    return int(given)


async def _jobs_part(request: Request) -> Live:
    """The state tabs with their counts and one page of the jobs the query string's
    filters match. Raises the client's error when a filter is invalid."""
    query = request.query_params
    job_filter, cursor, limit = JobFilter.from_query(query), query.get("cursor"), _page_size(query)
    cv = await started_client(request)
    found = await cv.find_jobs(
        job_filter.queue, state=job_filter.state, key=job_filter.key, search=job_filter.q,
        scheduled=job_filter.scheduled, limit=limit, cursor=cursor or None)
    tabs = state_tabs(await cv.queue_summaries(), job_filter.queue)
    shown = job_filter.as_query()
    if limit != PAGE_SIZE:
        shown["limit"] = str(limit)
    older = None
    if found.next_cursor is not None:
        older = urllib.parse.urlencode({**shown, "cursor": found.next_cursor})
    newest = urllib.parse.urlencode(shown) if cursor else None
    return live(request, "partial_jobs.html", "/partials/jobs",
                {**shown, "cursor": cursor} if cursor else shown,
                page=found, filter=job_filter, tabs=tabs, older=older, newest=newest)


async def _job_part(request: Request, job_id: str) -> Live:
    """The job's part of its page; raises ``Missing`` when there is no such job."""
    cv = await started_client(request)
    job = await found(cv.get_job(job_id), Missing(
        "Job not found", f"There is no job with id {job_id}: it may have been deleted after "
        "its retention, or the id is mistyped."))
    actions = [action for action in JOB_ACTIONS if job.state in action.states]
    copies = [] if job.dead_letter is None or job.state is not JobState.FAILED else (
        await cv.find_jobs(source_id=job.id, limit=_MAX_COPIES)).jobs
    # One past what the page shows, so it knows there are more (a batch's callback
    # may wait for thousands).
    dependencies = await job_links(cv, job.id, limit=_MAX_LINKS + 1)
    dependents = await job_links(cv, job.id, dependents=True, limit=_MAX_LINKS + 1)
    graph = None if not (dependencies or dependents) else (
        await flow_graph(cv, job, dependencies, dependents))
    return live(request, "partial_job.html", f"/partials/jobs/{job.id}", job=job,
                events=timeline(job), actions=actions, copies=copies,
                dependencies=dependencies, dependents=dependents, graph=graph,
                pending=[link for link in dependencies if not link.settled],
                max_links=_MAX_LINKS)


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(request: Request) -> HTMLResponse:
    """The job list: state tabs with counts, filters, one page of matching jobs,
    bulk actions on the checked jobs or on every matching one."""
    queue_names = [queue.name for queue in await (await started_client(request)).list_queues()]
    job_filter = JobFilter()
    part: Live | None = None
    problem: str | None = None
    status = 200
    try:
        job_filter = JobFilter.from_query(request.query_params)
        part = await _jobs_part(request)
    except ConveyorError as error:
        problem = str(error)
        status = 400 if isinstance(error, ValueError | TypeError) else 503
    return page(request, "jobs.html", status, filter=job_filter, queue_names=queue_names,
                jobs=part, problem=problem, actions=JOB_ACTIONS)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job(request: Request, job_id: str) -> HTMLResponse:
    """One job: its data, output, progress, every attempt on a timeline, and its
    flow: what it waits for and what waits for it."""
    return page(request, "job.html", job_id=job_id, job=await _job_part(request, job_id))


@router.get("/partials/jobs")
async def jobs_partial(request: Request) -> Response:
    try:
        part = await _jobs_part(request)
    except ConveyorError as error:
        return problem_page(request, 400, "Invalid filter", str(error))
    return partial(request, part)


@router.get("/partials/jobs/{job_id}")
async def job_partial(request: Request, job_id: str) -> Response:
    return partial(request, await _job_part(request, job_id))
