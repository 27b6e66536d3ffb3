"""``create_app``: the REST API (``/api``), the dashboard (``/``) and Prometheus
metrics (``/metrics``) as one FastAPI application.

The application talks to the database through an :class:`~conveyor.AsyncConveyor`:
one given by the caller (already started, or started here on first use), or its
own, made from the settings and started on first use. Starting on first use,
rather than in a lifespan handler, lets the app work when mounted inside another
ASGI application, whose server runs only the outer app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match

from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError
from conveyor.web import security
from conveyor.web.security import Credentials

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the web app behaves. ``token`` or ``basic_auth`` (``"user:password"``)
    require sign-in; ``read_only`` refuses every change; ``backlog_warning`` is
    the waiting-job count above which a queue is reported in ``/api/health``."""

    token: str | None = None
    basic_auth: str | None = None
    read_only: bool = False
    backlog_warning: int = 10_000
    title: str = "Conveyor"

    @property
    def credentials(self) -> Credentials:
        user, password = (None, None)
        if self.basic_auth is not None:
            user, _, password = self.basic_auth.partition(":")
        return Credentials(self.token or None, user, password)


@dataclass
class WebState:
    """What every route reads from ``request.app.state.conveyor``."""

    settings: WebSettings
    _client: AsyncConveyor
    _owned: bool
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def client(self) -> AsyncConveyor:
        """The started client (started here on first use)."""
        if self._client._pool is None:
            async with self._lock:
                if self._client._pool is None:
                    await self._client.start()
        return self._client

    async def close(self) -> None:
        if self._owned:
            await self._client.stop()


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.conveyor
    return state


def mount_root(request: Request) -> str:
    """The prefix the app is mounted under (``""`` at the root), without a trailing
    slash: every link and cookie path starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def app_path(request: Request) -> str:
    """The request's path within the app, without the mount prefix."""
    return request.url.path[len(mount_root(request)):]


def _for_machines(path: str) -> bool:
    """The API and ``/metrics`` answer in JSON or text; the rest are pages."""
    return path.startswith("/api/") or path == "/metrics"


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
    from conveyor.web import api, dashboard, metrics

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
        docs_url=None,  # served below, from the vendored files rather than a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.conveyor = state
    app.middleware("http")(_guard(settings))
    _answer_errors(app)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/docs", include_in_schema=False)
    async def api_explorer(request: Request) -> Response:
        root = mount_root(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}/api/openapi.json", title=f"{settings.title} API",
            swagger_js_url=f"{root}/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static/swagger-ui.css", swagger_favicon_url="")

    return app


def _answer_errors(app: FastAPI) -> None:
    """Answers errors the routes raise: as JSON for the API and ``/metrics``, as a
    page for the dashboard."""
    from conveyor.web import api, dashboard

    def answer(request: Request, status: int, detail: str) -> Response:
        if _for_machines(app_path(request)):
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
        if _for_machines(app_path(request)):
            return JSONResponse({"detail": problems}, status_code=422)
        return answer(request, 422, "; ".join(
            f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in problems))

    app.add_exception_handler(api.ApiError, api_error)
    app.add_exception_handler(ConveyorError, conveyor_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "0"


Handler = Callable[[Request], Awaitable[Response]]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes for the request's path (Starlette names only
    the first route's, and the API has several routes on one path)."""
    routes = request.app.router.routes
    return ", ".join(method for method in _METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL
        for route in routes))


def _guard(settings: WebSettings) -> Callable[[Request, Handler], Awaitable[Response]]:
    """The middleware that enforces ``security``: sign-in, read-only and CSRF, and
    hands every browser a CSRF cookie."""
    credentials = settings.credentials

    async def guard(request: Request, call_next: Handler) -> Response:
        path = app_path(request)
        public = path.startswith("/static/") or path in ("/login", "/api/health")
        admitted, by_token = credentials.admits(request)
        if not admitted and not public:
            if _for_machines(path) or credentials.token is None:
                headers = {"WWW-Authenticate": 'Basic realm="conveyor"'} if (
                    credentials.basic_user is not None) else {}
                return JSONResponse({"detail": "sign in: send the token as a bearer token"
                                     if credentials.token else "sign in"},
                                    status_code=401, headers=headers)
            return Response(status_code=303,
                            headers={"Location": f"{mount_root(request)}/login"})
        if request.method not in security.SAFE_METHODS and path != "/login":
            if settings.read_only:
                return JSONResponse({"detail": "this dashboard is read-only"}, status_code=403)
            if not by_token and security.from_browser(request) and not security.csrf_ok(request):
                return JSONResponse(
                    {"detail": "missing or wrong X-CSRF-Token header (repeat the "
                     f"{security.CSRF_COOKIE} cookie)"}, status_code=403)
        token = request.cookies.get(security.CSRF_COOKIE) or security.new_csrf_token()
        request.state.csrf_token = token
        response = await call_next(request)
        if response.status_code == 405:
            response.headers["allow"] = _allowed_methods(request)
        # Pages hand out the cookie, the API does not: a script keeping cookies
        # would otherwise be taken for a browser and asked for the header.
        page = response.headers.get("content-type", "").startswith("text/html")
        if page and security.CSRF_COOKIE not in request.cookies:
            response.set_cookie(security.CSRF_COOKIE, token, httponly=True, samesite="strict",
                                path=mount_root(request) or "/")
        return response

    return guard
