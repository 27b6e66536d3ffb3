"""Clickjacking, in a real browser: a page of another site that frames the
dashboard gets nothing rendered in its frame, unless ``frame_ancestors`` names it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from test_dashboard_browser import chromium  # noqa: F401  (the browser fixture)
from web_server import free_port, serve

from conveyor import Conveyor
from conveyor.web import WebSettings, create_app

pytestmark = pytest.mark.slow


def framing_site(target: str) -> Starlette:
    """A page that shows ``target`` in a frame, as an attacker's (or an admin's) would."""

    async def page(_: Any) -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><iframe id="framed" src="{target}" '
                            'width="800" height="600"></iframe>')

    return Starlette(routes=[Route("/", page)])


@pytest.fixture
def job_id(cv: Conveyor) -> Iterator[str]:
    job = cv.send("invoices", {"customer": "ada"})
    assert job is not None
    yield job


def framed_text(chromium: Any, site: str, job_id: str) -> str:  # noqa: F811
    page = chromium.new_page()
    try:
        page.goto(site)
        page.wait_for_load_state("load")
        frame = page.frame_locator("#framed")
        try:
            return str(frame.locator("body").inner_text(timeout=5_000))
        except Exception:  # a blocked frame has no document of the dashboard's
            return ""
    finally:
        page.close()


def test_a_page_of_another_site_cannot_show_the_dashboard_in_a_frame(
    chromium: Any, database_url: str, schema: str, job_id: str,  # noqa: F811
) -> None:
    with serve(create_app(dsn=database_url, schema=schema)) as dashboard, \
            serve(framing_site(f"{dashboard}/jobs/{job_id}")) as attacker:
        text = framed_text(chromium, attacker.replace("127.0.0.1", "localhost"), job_id)

    assert job_id not in text and "invoices" not in text


def test_frame_ancestors_lets_a_named_site_show_the_dashboard(
    chromium: Any, database_url: str, schema: str, job_id: str,  # noqa: F811
) -> None:
    port = free_port()
    admin = f"http://localhost:{port}"
    settings = WebSettings(frame_ancestors=f"'self' {admin}")
    with serve(create_app(dsn=database_url, schema=schema, settings=settings)) as dashboard:
        site = framing_site(f"{dashboard}/jobs/{job_id}")
        with serve(site, port=port):
            text = framed_text(chromium, admin, job_id)

    assert job_id in text
