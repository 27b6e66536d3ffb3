"""The overview page (``/``): health, throughput and depth charts, the queues and
the workers, each part also served alone under ``/partials/...`` for its poll.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conveyor.job import QueueSummary
from conveyor.web.dashboard.live import Live, live, partial
from conveyor.web.dashboard.rendering import page
from conveyor.web.state import started_client, web_state

router = APIRouter(include_in_schema=False)


async def _health_part(request: Request) -> Live:
    cv = await started_client(request)
    health = await cv.health(backlog_warning=web_state(request).settings.backlog_warning)
    return live(request, "partial_health.html", "/partials/health", health=health)


def _queues_part(request: Request, summaries: list[QueueSummary]) -> Live:
    return live(request, "partial_queues.html", "/partials/queues", queues=summaries)


async def _workers_part(request: Request) -> Live:
    cv = await started_client(request)
    workers, leader = await cv.get_workers(), await cv.get_leader()
    leader_id = leader.holder if leader is not None and leader.current else None
    return live(request, "partial_workers.html", "/partials/workers",
                workers=workers, leader_id=leader_id)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    """Health, throughput and depth charts, queues and workers."""
    summaries = await (await started_client(request)).queue_summaries()
    return page(request, "overview.html", health=await _health_part(request),
                queues=_queues_part(request, summaries), workers=await _workers_part(request),
                queue_names=[summary.name for summary in summaries])


@router.get("/partials/health")
async def health_partial(request: Request) -> Response:
    return partial(request, await _health_part(request))


@router.get("/partials/queues")
async def queues_partial(request: Request) -> Response:
    summaries = await (await started_client(request)).queue_summaries()
    return partial(request, _queues_part(request, summaries))


@router.get("/partials/workers")
async def workers_partial(request: Request) -> Response:
    return partial(request, await _workers_part(request))
