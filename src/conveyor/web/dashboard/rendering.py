"""Rendering the dashboard's templates (``web/templates/``) into pages, with what
every page needs to know: the mount prefix, the path, the title, read-only, the
CSRF token and whether a session is signed in.

Templates are autoescaped and refuse undefined names, so job data, output and
errors reach a page as text, and a misspelt variable fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from conveyor.web.dashboard import formatting
from conveyor.web.dashboard.shown_state import due_later, shown_state
from conveyor.web.paths import app_path, mount_root
from conveyor.web.state import web_state

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    pretty_json=formatting.pretty_json, compact_json=formatting.compact_json,
    duration=formatting.duration, ago=formatting.ago, when=formatting.when,
    path_part=formatting.path_part, number=formatting.number, shown_state=shown_state,
)
templates.tests.update(due_later=due_later)


def render(request: Request, template: str, context: Mapping[str, Any]) -> str:
    settings = web_state(request).settings
    return templates.get_template(template).render(
        context,
        root=mount_root(request),
        here=app_path(request),
        title=settings.title,
        read_only=settings.read_only,
        csrf_token=getattr(request.state, "csrf_token", ""),
        signed_in=getattr(request.state, "signed_in", False),
    )


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(request, template, context), status_code=status_code)


def problem_page(
    request: Request, status_code: int, heading: str, message: str
) -> HTMLResponse:
    """The page that says what went wrong (also for errors the app answers)."""
    return page(request, "error.html", status_code, heading=heading, message=message)


class Missing(Exception):
    """The job or queue a page shows does not exist. The app answers it with a 404
    page under ``heading`` (``error_answers.py``), for the page and its poll alike."""

    def __init__(self, heading: str, message: str) -> None:
        super().__init__(message)
        self.heading = heading
        self.message = message
