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
import html
import math
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.client import AsyncConveyor
from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.web import security
from conveyor.web.security import Credentials

STATIC = Path(__file__).parent / "static"


_FRAME_SOURCES = re.compile(r"[A-Za-z0-9'*:/.\- ]+")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the web app behaves (docs/security.md).

    - ``token`` (at least 16 characters) or ``basic_auth`` (``"user:password"``,
      neither empty) require sign-in; a browser's session from the sign-in form
      lasts ``session_seconds`` (12 hours).
    - ``read_only`` refuses every change.
    - ``frame_ancestors``: the pages that may show the dashboard in a frame, as
      CSP sources (``'none'``: none; ``'self' https://admin.example.com`` for a
      dashboard embedded in your own admin).
    - ``max_body_bytes``: larger request bodies are refused (413) before they
      are read.
    - ``backlog_warning``: the waiting-job count above which a queue is reported
      in ``/api/health``.

    Bad settings raise :class:`~conveyor.errors.ConfigurationError` here.
    """

    token: str | None = None
    basic_auth: str | None = None
    read_only: bool = False
    backlog_warning: int = 10_000
    title: str = "Conveyor"
    frame_ancestors: str = "'none'"
    max_body_bytes: int = 4 * 1024 * 1024
    session_seconds: float = 12 * 3600

    def __post_init__(self) -> None:
        if not _FRAME_SOURCES.fullmatch(self.frame_ancestors):
            raise ConfigurationError(
                f"frame_ancestors takes CSP sources separated by spaces ('none', 'self', "
                f"https://admin.example.com), not {self.frame_ancestors!r}")
        if isinstance(self.max_body_bytes, bool) or not (
                isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 1024):
            raise ConfigurationError(
                f"max_body_bytes must be a whole number of at least 1024, "
                f"not {self.max_body_bytes!r}")
        if not (isinstance(self.session_seconds, int | float)
                and 60 <= self.session_seconds <= 366 * 86400):
            raise ConfigurationError(
                f"session_seconds must be between 60 and a year, not {self.session_seconds!r}")
        if self.basic_auth is not None and ":" not in self.basic_auth:
            raise ConfigurationError("basic_auth takes USER:PASSWORD")
        self.credentials  # noqa: B018  (checks the token and the basic-auth pair)

    @property
    def credentials(self) -> Credentials:
        user, password = (None, None)
        if self.basic_auth is not None:
            user, _, password = self.basic_auth.partition(":")
        return Credentials(self.token, user, password, self.session_seconds)


@dataclass
class WebState:
    """What every route reads from ``request.app.state.conveyor``."""

    settings: WebSettings
    _client: AsyncConveyor
    _owned: bool
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sign_ins: security.SignInThrottle = field(default_factory=security.SignInThrottle)

    async def client(self) -> AsyncConveyor:
        """The started client (started here on first use)."""
        if not self._client.started:
            async with self._lock:
                if not self._client.started:
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
    """The API and ``/metrics`` answer in JSON or text; the rest, the API's
    explorer (``/api/docs``) included, are pages for people."""
    return (path.startswith("/api/") and path != "/api/docs") or path == "/metrics"


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
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _answer_errors(app)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/docs", include_in_schema=False)
    async def api_explorer(request: Request) -> Response:
        # FastAPI's own page starts Swagger UI with an inline script, which the
        # Content Security Policy forbids: this one loads static/api-docs.js.
        return HTMLResponse(_API_DOCS.format(
            root=html.escape(mount_root(request)), title=html.escape(f"{settings.title} API")))

    return app


_API_DOCS = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{root}/static/swagger-ui.css">
  <script src="{root}/static/swagger-ui-bundle.js" defer></script>
  <script src="{root}/static/api-docs.js" defer></script>
</head>
<body data-openapi-url="{root}/api/openapi.json">
  <div id="swagger-ui"></div>
</body>
</html>
"""


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
    """The middleware that enforces ``security``: sign-in, read-only and CSRF; hands
    every browser a CSRF cookie, and every answer the security headers."""
    credentials = settings.credentials
    headers = security.security_headers(settings.frame_ancestors)

    async def guard(request: Request, call_next: Handler) -> Response:
        response = await _checked(request, call_next)
        response.headers.update(headers)
        return response

    async def _checked(request: Request, call_next: Handler) -> Response:
        path = app_path(request)
        public = path.startswith("/static/") or path in ("/login", "/logout", "/api/health")
        admission = credentials.admits(request)
        if not admission.admitted and not public:
            if _for_machines(path) or credentials.token is None:
                challenge = {"WWW-Authenticate": 'Basic realm="conveyor"'} if (
                    credentials.basic_user is not None) else {}
                return JSONResponse({"detail": "sign in: send the token as a bearer token"
                                     if credentials.token else "sign in"},
                                    status_code=401, headers=challenge)
            # Back to the page asked for after sign-in (not to a page's live part).
            wanted = path + (f"?{request.url.query}" if request.url.query else "")
            query = "" if wanted == "/" or path.startswith("/partials/") else (
                urllib.parse.urlencode({"next": wanted}))
            return Response(status_code=303, headers={
                "Location": f"{mount_root(request)}/login{'?' + query if query else ''}"})
        # Signing in and out change no job: a form may post them without the header.
        if request.method not in security.SAFE_METHODS and path not in ("/login", "/logout"):
            if settings.read_only:
                return JSONResponse({"detail": "this dashboard is read-only"}, status_code=403)
            needs_csrf = admission.by_session or (
                not admission.by_token and security.from_browser(request))
            if needs_csrf and not security.csrf_ok(request):
                return JSONResponse(
                    {"detail": "missing or wrong X-CSRF-Token header (repeat the "
                     f"{security.CSRF_COOKIE} cookie)"}, status_code=403)
        token = request.cookies.get(security.CSRF_COOKIE) or security.new_csrf_token()
        request.state.csrf_token = token
        request.state.signed_in = admission.by_session
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


class BodyLimit:
    """Refuses a request whose body is larger than ``limit`` bytes (413) before the
    app reads it: by its ``Content-Length``, or, for a body sent in chunks without
    one, by reading at most ``limit`` bytes of it first (then handed on)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse(
            {"detail": f"the request body is larger than {self.limit:,} bytes"},
            status_code=413, headers={"connection": "close"})
        await answer(scope, receive, send)
