"""The middleware that enforces ``security`` on every request: sign-in, read-only
and CSRF. It also hands every browser a CSRF cookie and every answer the security
headers.

It stands in front of all routes, the API's and the pages', so that no route can
forget a check; ``security`` holds the checks themselves.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match

from conveyor.web import security
from conveyor.web.paths import app_path, for_machines, mount_root
from conveyor.web.settings import WebSettings

Handler = Callable[[Request], Awaitable[Response]]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route takes for the request's path (Starlette names only
    the first route's, and the API has several routes on one path)."""
    routes = request.app.router.routes
    return ", ".join(method for method in _METHODS if any(
        route.matches({**request.scope, "method": method})[0] is Match.FULL
        for route in routes))


def guard(settings: WebSettings) -> Callable[[Request, Handler], Awaitable[Response]]:
    """The middleware that enforces ``security``: sign-in, read-only and CSRF; hands
    every browser a CSRF cookie, and every answer the security headers."""
    credentials = settings.credentials
    headers = security.security_headers(settings.frame_ancestors)

    async def guarded(request: Request, call_next: Handler) -> Response:
        response = await _checked(request, call_next)
        response.headers.update(headers)
        return response

    async def _checked(request: Request, call_next: Handler) -> Response:
        path = app_path(request)
        public = path.startswith("/static/") or path in ("/login", "/logout", "/api/health")
        admission = credentials.admits(request)
        if not admission.admitted and not public:
            if for_machines(path) or credentials.token is None:
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

    return guarded
