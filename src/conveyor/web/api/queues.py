"""The API's routes on queues (``/api/queues...``, ``/api/stats``): every queue as
it is now, pausing and resuming one, and the statistics snapshots behind the
dashboard's charts.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from conveyor.web.api.answers import QueueOut, QueueStateOut, StatsOut
from conveyor.web.api.client import Client
from conveyor.web.api.inputs import PauseIn

router = APIRouter(tags=["queues"])


@router.get("/queues", response_model=list[QueueOut])  # type: ignore[valid-type]
async def list_queues(cv: Client) -> Any:
    """Every queue as it is now: counts, lag, the last hour's throughput, paused."""
    return [QueueOut.model_validate({**dataclasses.asdict(s), "waiting": s.waiting,
                                     "paused": s.paused_until is not None})
            for s in await cv.queue_summaries()]


@router.post("/queues/{name:path}/pause", response_model=QueueStateOut)
async def pause_queue(
    cv: Client, name: str, pause: Annotated[PauseIn | None, Body()] = None,
) -> QueueStateOut:
    """Stop claiming the queue's jobs, for ``seconds`` or until resumed."""
    return QueueStateOut.model_validate(
        await cv.pause_queue(name, None if pause is None else pause.seconds))


@router.post("/queues/{name:path}/resume", response_model=QueueStateOut)
async def resume_queue(cv: Client, name: str) -> QueueStateOut:
    """Claim the queue's jobs again."""
    return QueueStateOut.model_validate(await cv.resume_queue(name))


@router.get("/stats", response_model=list[StatsOut])  # type: ignore[valid-type]
async def statistics(
    cv: Client, queue: str | None = None,
    since: Annotated[float, Query(gt=0, le=366 * 86400, description="seconds back")] = 3600,
) -> Any:
    """The statistics snapshots of the last ``since`` seconds, oldest first."""
    return [StatsOut.model_validate(s) for s in await cv.get_stats(queue, since=since)]
