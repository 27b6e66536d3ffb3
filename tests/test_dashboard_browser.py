"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against
a real server and worker: filtering, an action with its confirmation, live refresh
without reloading, and job data that never runs as script.

With ``CONVEYOR_SCREENSHOTS=1`` the screenshots also go to ``docs/images/``."""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from web_server import serve

from conveyor import Conveyor, Job, JobState
from conveyor.web import create_app

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
LIVE = 15_000  # ms a live change may take to show: a 2 s poll plus the work itself


class Warehouse:
    """Where the reports' figures come from: unreachable until ``recover()``."""

    def __init__(self) -> None:
        self._up = threading.Event()

    def recover(self) -> None:
        self._up.set()

    async def render_report(self, job: Job) -> dict[str, Any]:
        if not self._up.is_set():
            raise ConnectionError("warehouse at db-2:5432 refused the connection")
        return {"pages": 12, "url": f"s3://reports/{job.data['report']}.pdf"}


def deliver_email(job: Job) -> dict[str, Any]:
    return {"delivered": True, "to": job.data["to"]}


@contextlib.contextmanager
def working(database_url: str, schema: str, warehouse: Warehouse) -> Iterator[None]:
    """A worker for ``emails`` and ``reports`` in a thread of this process."""
    worker = Conveyor(database_url, schema=schema)
    worker.work("emails", deliver_email)
    worker.work("reports", warehouse.render_report)
    thread = threading.Thread(target=worker.run, name="test-dashboard-worker", daemon=True,
                              kwargs={"handle_signals": False, "heartbeat_interval": 0.2})
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(30)


def seed_history(database_url: str, schema: str) -> None:
    """An hour of statistics snapshots, one a minute, so the charts have a shape: a
    batch of work that rose and has drained by now."""
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    for minutes_ago in range(60, 0, -1):
        at = now - timedelta(minutes=minutes_ago)
        busy = math.sin(math.pi * minutes_ago / 60) ** 2
        ripple = math.sin(minutes_ago / 2)
        rows.append(("emails", at, round(45 * busy + 4 * ripple + 4), 0, round(1 + 5 * busy),
                     round(140 * busy + 12 * ripple + 14), 0, int(minutes_ago % 11 == 0),
                     timedelta(seconds=2)))
        rows.append(("reports", at, round(12 * busy), int(minutes_ago % 9 == 0),
                     round(2 * busy), round(25 * busy + 3), 0, int(minutes_ago % 13 == 0),
                     None))
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {schema}.queue_stats (queue, taken_at, created, retry, active, "
            "completed, cancelled, failed, lag) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.05)


def job_state(cv: Conveyor, job_id: str) -> JobState | None:
    job = cv.get_job(job_id)
    return None if job is None else job.state


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing = f"no Chromium at {CHROMIUM} (install Debian's chromium package)"
        if os.environ.get("CI"):  # .ci/run installs it: a skip there would hide a gap
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def save_screenshot(page: Any, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name))
    if os.environ.get("CONVEYOR_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / name))


def test_a_failed_job_found_by_filter_is_retried_and_completes_on_the_page(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, tmp_path: Path
) -> None:
    expect = sync_api.expect
    seed_history(database_url, schema)
    warehouse = Warehouse()
    for address in ("ann@example.com", "bob@example.com", "eve@example.com"):
        cv.send("emails", {"to": address, "template": "welcome"})
    report = cv.send("reports", {"report": "monthly-revenue", "month": "2024-05"},
                     retry_limit=1, retry_delay=0)
    comment = cv.send("comments", {"text": XSS})
    assert report is not None and comment is not None

    with working(database_url, schema, warehouse), serve(
            create_app(dsn=database_url, schema=schema)) as base:
        wait_for(lambda: job_state(cv, report) is JobState.FAILED, "the report fails")
        page = chromium.new_page(viewport=VIEWPORT)
        dialogs: list[str] = []
        errors: list[str] = []

        def record_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", record_dialog)
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(f"{base}/")
        expect(page.locator("#charts")).to_have_attribute("aria-busy", "false")
        expect(page.locator(".workers .badge.leader")).to_be_visible(timeout=LIVE)
        expect(page.locator("table.queues")).to_contain_text("reports")
        save_screenshot(page, "dashboard-overview.png", tmp_path)

        page.get_by_role("link", name="Jobs", exact=True).click()
        page.locator(".state-tab", has_text="Failed").click()
        expect(page).to_have_url(re.compile(r"state=failed"))
        rows = page.locator("table.jobs tbody tr")
        expect(rows).to_have_count(1)
        rows.locator("td.mono a").click()

        expect(page.locator(".job-state")).to_have_text("failed")
        expect(page.locator(".timeline")).to_contain_text(
            "ConnectionError: warehouse at db-2:5432 refused the connection")
        save_screenshot(page, "dashboard-job.png", tmp_path)

        page.evaluate("window.__samePage = true")
        warehouse.recover()
        page.get_by_role("button", name="Retry").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator("#toast")).to_have_text("Job retried.")
        expect(page.locator(".job-state")).to_have_text("completed", timeout=LIVE)
        expect(page.locator(".job-body")).to_contain_text("s3://reports/monthly-revenue.pdf")
        assert page.evaluate("window.__samePage") is True

        page.goto(f"{base}/jobs/{comment}")
        expect(page.locator(".job-body pre.json")).to_contain_text("<script>window.__xss")
        page.goto(f"{base}/jobs?queue=comments")
        expect(page.locator("table.jobs")).to_contain_text("onerror")
        with page.expect_response(re.compile(r"/partials/jobs\?")):
            pass  # one live refresh swaps the list in again
        page.wait_for_timeout(200)
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert dialogs == []
        assert errors == []


# --- the job list's selection and counts, and a queue's page, at both widths -----------

BOTH_WIDTHS = pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["desktop", "phone"])
LONG_NAME = "tenant-" + "x" * 114 + "/emails"  # 128 characters, the longest allowed


def fail_now(cv: Conveyor, queue: str, count: int) -> list[str]:
    """``count`` jobs of ``queue`` whose only attempt failed."""
    ids = [cv.send(queue, {"n": n}, retry_limit=0) for n in range(count)]
    for job in cv.fetch(queue, batch_size=count):
        cv.fail(job, {"message": "smtp down"})
    return [job_id for job_id in ids if job_id is not None]


def confirm_text(page: Any) -> str:
    dialog = page.locator("#confirm-dialog")
    sync_api.expect(dialog).to_be_visible()
    return str(dialog.locator(".confirm-message").text_content())


def fits_the_width(page: Any) -> bool:
    return bool(page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"))


@BOTH_WIDTHS
def test_two_checked_jobs_are_retried_and_only_they_change(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    expect = sync_api.expect
    ids = fail_now(cv, "emails", 4)

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        page.goto(f"{base}/jobs?queue=emails&state=failed")
        rows = page.locator("table.jobs tbody tr")
        expect(rows).to_have_count(4)
        chosen = ids[:2]
        for job_id in chosen:
            page.locator(f'input.select-job[value="{job_id}"]').check()
        expect(page.locator(".selection-count")).to_have_text("2 selected jobs:")

        # A live refresh that brings new rows keeps the checks.
        fail_now(cv, "emails", 1)
        expect(rows).to_have_count(5, timeout=LIVE)
        for job_id in chosen:
            expect(page.locator(f'input.select-job[value="{job_id}"]')).to_be_checked()
        expect(page.locator("input.select-page")).not_to_be_checked()
        if viewport == VIEWPORT:
            save_screenshot(page, "dashboard-jobs.png", tmp_path)

        page.get_by_role("button", name="Retry selected").click()
        assert confirm_text(page) == "Retry 2 selected jobs?"
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator("#toast")).to_have_text("Jobs retried: 2 of 2 selected jobs.")
        expect(rows).to_have_count(3, timeout=LIVE)

    states = {job_id: job_state(cv, job_id) for job_id in ids}
    assert all(states[job_id] is not JobState.FAILED for job_id in chosen)
    assert all(states[job_id] is JobState.FAILED for job_id in ids[2:])


@BOTH_WIDTHS
def test_a_bulk_action_on_every_matching_job_says_how_many_before_it_acts(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, viewport: dict[str, int]
) -> None:
    expect = sync_api.expect
    cv.insert("emails", [{"data": {"n": n}} for n in range(1234)])
    cv.bulk("cancel", "emails")

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        page.goto(f"{base}/jobs?queue=emails&state=cancelled")
        page.get_by_role("button", name="Resume all matching").click()
        assert confirm_text(page).startswith(
            'Resume 1,234 jobs in queue "emails", in state cancelled?')
        page.locator('#confirm-dialog button[value="cancel"]').click()
        expect(page.locator("#confirm-dialog")).to_be_hidden()

    assert cv.count_jobs("emails", state="cancelled") == 1234


@BOTH_WIDTHS
def test_a_queue_page_with_a_long_name_renders_and_fits_the_width(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    expect = sync_api.expect
    seed_history(database_url, schema)
    cv.create_queue(LONG_NAME, retry_limit=3, dead_letter="emails-dead", rate_limit=100,
                    rate_period=60)
    fail_now(cv, LONG_NAME, 1)
    cv.send(LONG_NAME, {"to": "ann@example.com"})
    cv.send(LONG_NAME, {"to": "bob@example.com"}, start_after=600)
    errors: list[str] = []

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/")
        page.locator(f'table.queues a[title="{LONG_NAME}"]').click()

        expect(page.locator("h1.queue-name-full")).to_have_text(LONG_NAME)
        expect(page.locator("#charts")).to_have_attribute("aria-busy", "false")
        counts = page.locator(".queue-counts")
        expect(counts.locator("div", has_text="Scheduled").locator("a")).to_have_text("1")
        expect(counts.locator("div", has_text="Failed").first.locator("a")).to_have_text("1")
        expect(page.locator(".queue-settings")).to_contain_text("100 per 1 min")
        assert fits_the_width(page)
        if viewport == VIEWPORT:
            save_screenshot(page, "dashboard-queue.png", tmp_path)

        page.get_by_role("button", name="Pause").click()
        confirm_text(page)
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator(".queue-title .badge")).to_have_text("paused", timeout=LIVE)
        assert fits_the_width(page)

        counts.locator("div", has_text="Scheduled").locator("a").click()
        expect(page.locator("table.jobs tbody tr")).to_have_count(1)
        expect(page.locator("table.jobs .state-scheduled")).to_have_text("scheduled")
        expect(page.locator(".state-tab.current")).to_contain_text("Scheduled")
    assert errors == []
