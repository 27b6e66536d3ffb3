"""The API's health check (``/api/health``), for load balancers and monitors: 200
when healthy, 503 otherwise, with the problems in words.

It is public (no sign-in) and answers 503 rather than an error when the database
cannot be reached, so a monitor reads one shape whatever went wrong.
"""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from conveyor.errors import ConnectionLost, NotStarted
from conveyor.web.api.answers import HealthOut
from conveyor.web.state import web_state

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut,
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
