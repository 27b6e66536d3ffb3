"""The REST API under ``/api``: jobs, flows, queues, schedules, workers, statistics
and health. Every route is a thin face over a client method (the client checks the
input, so the API and Python callers get the same rules and messages); errors
come back as ``{"detail": "..."}`` with a 4xx status, or 503 when the database
cannot be reached. The OpenAPI spec is served at ``/api/openapi.json``.

The routes live in one module per resource (``jobs``, ``flows``, ``queues``,
``schedules``, ``workers``, ``health``); what they take is in ``inputs``, what they
answer in ``answers``, and how they refuse in ``errors``.
"""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.web.api import flows, health, jobs, queues, schedules, workers
from conveyor.web.api.errors import ERRORS, ApiError, answer_of
from conveyor.web.api.inputs import FilterIn, FlowIn, SendIn, StepIn

__all__ = ["ApiError", "FilterIn", "FlowIn", "SendIn", "StepIn", "answer_of", "router"]

router = APIRouter(prefix="/api", responses=ERRORS)
"""Errors raised by the routes are answered by the app (``error_answers.py``),
which knows whether the request was the API's or a page's."""

for _resource in (jobs, flows, queues, schedules, workers, health):
    router.include_router(_resource.router)
