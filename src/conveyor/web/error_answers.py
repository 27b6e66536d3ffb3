"""How the app answers the errors its routes raise: as JSON (``{"detail": ...}``)
for the API and ``/metrics``, as a problem page for the dashboard.

Routes raise and do not answer, so one request's error reads the same wherever
it came from; this module decides only the form the answer takes.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from conveyor.errors import ConveyorError
from conveyor.web import api, dashboard
from conveyor.web.paths import app_path, for_machines


def answer_errors(app: FastAPI) -> None:
    """Answers errors the routes raise: as JSON for the API and ``/metrics``, as a
    page for the dashboard."""

    def answer(request: Request, status: int, detail: str) -> Response:
        if for_machines(app_path(request)):
            return JSONResponse({"detail": detail}, status_code=status)
        heading = "Database unreachable" if status == 503 else "Something is wrong"
        return dashboard.problem_page(request, status, heading, detail)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, api.ApiError)
        return answer(request, exc.status, exc.detail)

    async def conveyor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConveyorError)
        return answer(request, *api.answer_of(exc))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = _json_safe(jsonable_encoder(exc.errors()))
        if for_machines(app_path(request)):
            return JSONResponse({"detail": problems}, status_code=422)
        return answer(request, 422, "; ".join(
            f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in problems))

    async def missing_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, dashboard.Missing)
        return dashboard.problem_page(request, 404, exc.heading, exc.message)

    app.add_exception_handler(api.ApiError, api_error)
    app.add_exception_handler(ConveyorError, conveyor_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(dashboard.Missing, missing_page)


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON can carry it: a validation error echoes the input,
    which may hold NaN, infinities (that Python's JSON reader takes) or lone
    surrogates (from ``\\ud800`` escapes): they come back as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
