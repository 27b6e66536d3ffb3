"""The API's route on workers (``/api/workers``): the worker processes that
announced themselves, alive first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor.web.api.answers import WorkerOut
from conveyor.web.api.client import Client

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerOut])  # type: ignore[valid-type]
async def list_workers(cv: Client) -> Any:
    """The worker processes that announced themselves, alive first."""
    return [WorkerOut.model_validate(w) for w in await cv.get_workers()]
