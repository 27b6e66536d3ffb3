"""The parts of a page that refresh themselves: each is rendered inside a wrapper
that polls ``/partials/...`` every 2 s, or at once on a ``refresh`` event (after an
action).

A poll carries the digest of the HTML it shows; when nothing changed the answer is
``204 No Content``, which htmx leaves unswapped, so an opened traceback or a
selection of text survives the refresh.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from conveyor.web.dashboard.rendering import render, templates
from conveyor.web.paths import mount_root


@dataclass(frozen=True, slots=True)
class Live:
    """One rendered part of a page that polls ``/partials/...`` for itself, with the
    digest of its content. Jinja inserts it as markup (``__html__``): it was
    rendered by the autoescaping templates."""

    html: str
    digest: str

    def __html__(self) -> str:
        return self.html


def live(
    request: Request, template: str, poll: str, query: Mapping[str, str] | None = None,
    **context: Any,
) -> Live:
    """Render ``template`` inside the wrapper that polls ``poll`` (a path under the
    app's root) every 2 s, or at once on a ``refresh`` event (after an action)."""
    content = render(request, template, context)
    digest = hashlib.blake2b(content.encode(), digest_size=8).hexdigest()
    url = f"{mount_root(request)}{poll}?{urllib.parse.urlencode({**(query or {}), 'v': digest})}"
    html = templates.get_template("live.html").render(poll_url=url, content=Markup(content))
    return Live(html, digest)


def partial(request: Request, part: Live) -> Response:
    """A poll's answer: nothing when the poller already shows this content."""
    if request.query_params.get("v") == part.digest:
        return Response(status_code=204)
    return HTMLResponse(part.html)
