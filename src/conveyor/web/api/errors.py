"""How the API says no: ``ApiError`` for what a route refuses itself, the status
that answers each of Conveyor's typed errors, and the error answers every route
declares in the OpenAPI spec.

The app (``error_answers.py``) turns both into ``{"detail": "..."}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from conveyor.errors import (
    ConnectionLost,
    ConveyorError,
    InvalidArgument,
    JobNotFound,
    NotStarted,
    PolicyViolation,
    QueueConflict,
    QueueNotFound,
    ScheduleNotFound,
    UnknownOption,
)


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    401: {"model": ErrorOut, "description": "Sign-in required"},
    403: {"model": ErrorOut, "description": "Read-only, or a missing CSRF token"},
    404: {"model": ErrorOut, "description": "No such job, queue or schedule"},
    409: {"model": ErrorOut, "description": "The job or queue is not in a state for this"},
    503: {"model": ErrorOut, "description": "The database cannot be reached"},
}
"""The error answers of every route, as the OpenAPI spec states them."""


class ApiError(Exception):
    """An error answer: its status and what to tell the caller."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def answer_of(exc: ConveyorError) -> tuple[int, str]:
    """The status and message that answer one of Conveyor's typed errors."""
    if isinstance(exc, JobNotFound | QueueNotFound | ScheduleNotFound):
        return 404, str(exc)
    if isinstance(exc, PolicyViolation | QueueConflict):
        return 409, str(exc)
    if isinstance(exc, InvalidArgument | UnknownOption):
        return 400, str(exc)
    if isinstance(exc, ConnectionLost | NotStarted):
        return 503, f"the database cannot be reached: {exc}"
    return 500, str(exc)
