"""The schedules page (``/schedules``): the cron schedules with their next ticks and
last runs, refreshed through ``/partials/schedules``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conveyor.web.dashboard.live import Live, live, partial
from conveyor.web.dashboard.rendering import page
from conveyor.web.state import started_client

router = APIRouter(include_in_schema=False)


async def _schedules_part(request: Request) -> Live:
    schedules = await (await started_client(request)).get_schedules()
    return live(request, "partial_schedules.html", "/partials/schedules", schedules=schedules)


@router.get("/schedules", response_class=HTMLResponse)
async def schedules(request: Request) -> HTMLResponse:
    """The cron schedules and their next ticks."""
    return page(request, "schedules.html", schedules=await _schedules_part(request))


@router.get("/partials/schedules")
async def schedules_partial(request: Request) -> Response:
    return partial(request, await _schedules_part(request))
