"""Signing in and out of the dashboard (``/login``, ``/logout``): the form, the
check of the posted token with its throttle, and the session cookie.

``security`` decides what a token or a session is worth; these routes only hand
the cookie out and take it back.
"""

from __future__ import annotations

import math
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from conveyor.web import security
from conveyor.web.dashboard.rendering import page
from conveyor.web.paths import mount_root
from conveyor.web.state import web_state

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    """The sign-in form (a note when the dashboard needs no token)."""
    token_required = web_state(request).settings.credentials.token is not None
    return page(request, "login.html", token_required=token_required, problem=None,
                next=security.safe_next(request.query_params.get("next")))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the posted token; when it is right, set the session cookie and go to
    the page that was asked for (the overview by default). Repeated failures from
    one address are answered 429 for a while (``security.SignInThrottle``)."""
    state = web_state(request)
    credentials = state.settings.credentials
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
    given, wanted = (form.get("token") or [""])[0], (form.get("next") or [""])[0]
    client = request.client.host if request.client is not None else "?"
    wait = state.sign_ins.wait(client)
    if wait > 0:
        refused = page(request, "login.html", 429, token_required=credentials.token is not None,
                       next=security.safe_next(wanted),
                       problem="Too many failed sign-ins from this address: wait a minute.")
        refused.headers["retry-after"] = str(math.ceil(wait))
        return refused
    if not credentials.token_matches(given):
        state.sign_ins.failed(client)
        return page(request, "login.html", 401, token_required=credentials.token is not None,
                    next=security.safe_next(wanted),
                    problem="That is not the token this dashboard was started with.")
    state.sign_ins.succeeded(client)
    root = mount_root(request)
    response = RedirectResponse(f"{root}{security.safe_next(wanted)}", status_code=303)
    response.set_cookie(security.SESSION_COOKIE, credentials.session_value(), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https",
                        path=root or "/", max_age=int(credentials.session_seconds))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End this browser's session and go to the sign-in form."""
    root = mount_root(request)
    response = RedirectResponse(f"{root}/login", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE, path=root or "/", httponly=True,
                           samesite="strict")
    return response
