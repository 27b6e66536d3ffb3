"""``create_app``: the REST API (``/api``), the dashboard (``/``) and Prometheus
metrics (``/metrics``) as one FastAPI application.

This module only assembles the parts: the settings (``settings.py``) and the
shared state with its client (``state.py``), the middleware (``guard.py``,
``body_limit.py``), the error answers (``error_answers.py``) and the routers of
the API, the dashboard, the metrics and the API's explorer.

The application talks to the database through an :class:`~conveyor.AsyncConveyor`:
one given by the caller (already started, or started here on first use), or its
own, made from the settings and started on first use. Starting on first use,
rather than in a lifespan handler, lets the app work when mounted inside another
ASGI application, whose server runs only the outer app's lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from conveyor.client import AsyncConveyor
from conveyor.web import api, api_explorer, dashboard, metrics
from conveyor.web.body_limit import BodyLimit
from conveyor.web.error_answers import answer_errors
from conveyor.web.guard import guard
from conveyor.web.settings import WebSettings
from conveyor.web.state import WebState

STATIC = Path(__file__).parent / "static"


def create_app(
    client: AsyncConveyor | None = None,
    *,
    dsn: str | None = None,
    schema: str | None = None,
    settings: WebSettings | None = None,
) -> FastAPI:
    """The web application. Without ``client`` it makes its own
    :class:`~conveyor.AsyncConveyor` from ``dsn`` and ``schema`` (or the
    environment) and closes it when the app shuts down.

    Mounted in a FastAPI application::

        app = FastAPI()
        app.mount("/conveyor", create_app(settings=WebSettings(token="...")))
    """
    settings = settings or WebSettings()
    owned = client is None
    state = WebState(settings, client or AsyncConveyor(dsn, schema=schema), owned)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title=f"{settings.title} API",
        version=_version(),
        description="Jobs, queues, schedules and health of a Conveyor job queue.",
        lifespan=lifespan,
        docs_url=None,  # served by api_explorer, from the vendored files rather than a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.conveyor = state
    app.middleware("http")(guard(settings))
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    answer_errors(app)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api_explorer.router)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "0"
