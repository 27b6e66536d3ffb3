"""The dashboard: HTML pages rendered on the server and kept live by htmx.

Each part of a page that changes by itself (health, queues, workers, the job
list, a job, schedules) is also served alone under ``/partials/...``, and the
page polls it every 2 s (``live.py``).

Pages only read. Every change (retry, cancel, pause...) goes through the JSON
API (``web/api/``) from ``static/app.js``, after a confirmation, so the API's
checks are the only ones. Templates are autoescaped: job data, output and
errors reach the page as text, never as markup (``rendering.py``).

The routes live in one module per family of pages: the overview, a queue, the
jobs, the schedules, and signing in; what they share (formatting, the state a
job shows, its actions, the job list's filters and tabs) has a module each.
"""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.web.dashboard import (
    job_pages,
    overview_pages,
    queue_pages,
    schedule_pages,
    sign_in_pages,
)
from conveyor.web.dashboard.rendering import Missing, problem_page

__all__ = ["Missing", "problem_page", "router"]

router = APIRouter(include_in_schema=False)

for _pages in (overview_pages, job_pages, queue_pages, schedule_pages, sign_in_pages):
    router.include_router(_pages.router)
