"""A queue's page (``/queues/{name}``): its settings, counts by state, charts and
actions, with the part that refreshes itself under ``/partials/queues/{name}``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conveyor.web.dashboard.formatting import path_part
from conveyor.web.dashboard.job_actions import JOB_ACTIONS
from conveyor.web.dashboard.job_filter import JobFilter
from conveyor.web.dashboard.live import Live, live, partial
from conveyor.web.dashboard.rendering import Missing, page
from conveyor.web.dashboard.state_tabs import state_tabs
from conveyor.web.lookup import found
from conveyor.web.state import started_client

router = APIRouter(include_in_schema=False)


async def _queue_part(request: Request, name: str) -> Live:
    """The queue's settings, counts by state and actions; raises ``Missing`` when
    there is no such queue."""
    cv = await started_client(request)
    queue = await found(cv.get_queue(name), Missing(
        "Queue not found", f"There is no queue named {name!r}: sending a job to a queue "
        "creates it, and deleting it removes it."))
    summaries = await cv.queue_summaries()
    summary = next((s for s in summaries if s.name == queue.name), None)
    return live(request, "partial_queue.html", f"/partials/queues/{path_part(queue.name)}",
                queue=queue, summary=summary, tabs=state_tabs(summaries, queue.name),
                filter=JobFilter(queue=queue.name), failed=JobFilter(queue.name, "failed"),
                retry=next(action for action in JOB_ACTIONS if action.name == "retry"))


@router.get("/queues/{name:path}", response_class=HTMLResponse)
async def queue(request: Request, name: str) -> HTMLResponse:
    """One queue: its settings, counts by state, charts and actions."""
    return page(request, "queue.html", name=name, queue=await _queue_part(request, name))


@router.get("/partials/queues/{name:path}")
async def queue_partial(request: Request, name: str) -> Response:
    return partial(request, await _queue_part(request, name))
