"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against
a real server and worker: filtering, an action with its confirmation, live refresh
without reloading, job data that never runs as script, every page at desktop and
phone widths, the charts, and times in the viewer's time zone.

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
from zoneinfo import ZoneInfo

import psycopg
import pytest
from web_server import serve

from conveyor import Conveyor, Job, JobState
from conveyor.web import WebSettings, create_app

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TOKEN = "s3cret-s3cret-s3cret"
VIEWER_ZONE = "Asia/Kolkata"  # not UTC, and half an hour off it
LONG_QUEUE = ("tenant-" + "0123456789abcdef" * 8)[:128]
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


def fail_with_a_long_traceback(cv: Conveyor, queue: str) -> str:
    """A failed job whose error message and traceback hold a line of 640 characters."""
    job_id = cv.send(queue, {"report": "r" * 300}, retry_limit=0)
    assert job_id is not None
    [job] = cv.fetch(queue)
    try:
        raise RuntimeError("the warehouse answered " + "0123456789abcdef" * 40)
    except RuntimeError as error:
        cv.fail(job, error)
    return job_id


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#token", TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")


def assert_fits_the_viewport(page: Any, what: str) -> None:
    """Nothing scrolls sideways, and every link and button of the top bar is on screen."""
    width = page.evaluate("window.innerWidth")
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{what} is {scroll_width} px wide in a {width} px window"
    for control in page.locator(".topbar a, .topbar button").all():
        box = control.bounding_box()
        assert box is not None, f"{what}: {control.text_content()} is not shown"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (
            f"{what}: {control.text_content()!r} is outside the window: {box}")


@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["desktop", "phone"])
def test_every_page_fits_the_window_width_without_scrolling_sideways(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, viewport: dict[str, int],
    tmp_path: Path,
) -> None:
    expect = sync_api.expect
    cv.insert("emails", ({"data": {"n": n}} for n in range(20_000)))
    failed = fail_with_a_long_traceback(cv, LONG_QUEUE)
    cv.schedule("nightly-" + "report-" * 10, "0 3 * * *", {"kind": "full" * 40},
                queue=LONG_QUEUE, tz="Europe/Paris")
    settings = WebSettings(token=TOKEN)

    with serve(create_app(dsn=database_url, schema=schema, settings=settings)) as base:
        page = chromium.new_page(viewport=viewport)
        page.goto(f"{base}/login")
        assert_fits_the_viewport(page, "the sign-in page")
        sign_in(page, base)

        expect(page.locator("#charts")).to_have_attribute("aria-busy", "false")
        expect(page.locator("table.queues")).to_contain_text("20,000")
        assert_fits_the_viewport(page, "the overview")
        if viewport == PHONE:
            save_screenshot(page, "dashboard-phone.png", tmp_path)
        for path, what in [
            ("/jobs", "the job list"), (f"/jobs?queue={LONG_QUEUE}", "a filtered job list"),
            (f"/jobs/{failed}", "a failed job's page"), ("/schedules", "the schedules"),
            ("/jobs/no-such-job", "the error page"),
        ]:
            page.goto(f"{base}{path}")
            assert_fits_the_viewport(page, what)
        page.goto(f"{base}/jobs/{failed}")
        expect(page.locator(".traceback pre")).to_contain_text("0123456789abcdef" * 4)
        assert page.evaluate(
            "(() => { const pre = document.querySelector('.traceback pre');"
            " return pre.scrollWidth > pre.clientWidth; })()"), "the traceback scrolls in its box"


def seed_backlog(database_url: str, schema: str, waiting: int, active: int) -> None:
    """Ten minutes of snapshots of a queue holding ``waiting`` jobs while ``active`` run."""
    now = datetime.now(UTC)
    rows = [("emails", now - timedelta(minutes=minutes_ago), waiting, 0, active, 60, 0, 1, None)
            for minutes_ago in range(10, 0, -1)]
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {schema}.queue_stats (queue, taken_at, created, retry, active, "
            "completed, cancelled, failed, lag) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows)


# What the overview's charts look like to the page: their axes' labels and sizes, where
# a count lands, and what each legend shows.
READ_CHARTS = """() => {
  const {throughput, depth} = document.getElementById("charts").charts;
  const counts = depth.axes[1];
  const running = depth.series[2].scale;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = getComputedStyle(depth.root).font;  // the page's 14 px: a little wider
  const moment = Date.UTC(2024, 4, 1, 3, 0) / 1000;
  const legend = (chart) => Array.from(chart.root.querySelectorAll(".u-legend .u-value"),
                                       (cell) => cell.textContent);
  return {
    countLabels: counts.values(depth, [0, 10000, 20000], 1, 50, 10000),
    axisWidth: depth.bbox.left / devicePixelRatio,
    labelWidth: measure.measureText("20,000").width,
    timeLabel: depth.axes[0].values(depth, [moment], 0, 50, 600)[0],
    activeHeight: depth.valToPos(0, running) - depth.valToPos(5, running),
    cursors: [throughput.cursor.idx, depth.cursor.idx],
    legends: [legend(throughput), legend(depth)],
  };
}"""


def test_charts_show_a_large_backlog_in_local_24_hour_time_with_linked_cursors(
    chromium: Any, cv: Conveyor, database_url: str, schema: str
) -> None:
    expect = sync_api.expect
    seed_backlog(database_url, schema, waiting=20_000, active=5)

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=VIEWPORT, timezone_id=VIEWER_ZONE)
        page.goto(f"{base}/")
        expect(page.locator("#charts")).to_have_attribute("aria-busy", "false")
        # ICU may say the zone's older name, Asia/Calcutta
        expect(page.locator(".chart-zone")).to_contain_text(re.compile(r"Asia/(Kolkata|Calcutta)"))
        over = page.locator('[data-chart="depth"] .u-over')
        box = over.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
        charts = page.evaluate(READ_CHARTS)

    assert charts["countLabels"] == ["0", "10,000", "20,000"]
    assert charts["axisWidth"] >= charts["labelWidth"] + 10, "the y-axis cuts its labels"
    assert charts["timeLabel"].startswith("08:30"), charts["timeLabel"]  # 03:00 UTC in India
    assert charts["activeHeight"] > 50, "5 running jobs must not lie on the floor"
    assert charts["cursors"][0] == charts["cursors"][1] and charts["cursors"][0] is not None
    (when, completed, failed), (when_too, waiting, running) = charts["legends"]
    assert when == when_too and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", when), when
    assert (completed, failed, waiting, running) == ("60", "1", "20,000", "5")


def test_times_show_in_the_viewers_time_zone_with_utc_on_hover(
    chromium: Any, cv: Conveyor, database_url: str, schema: str
) -> None:
    expect = sync_api.expect
    failed = fail_with_a_long_traceback(cv, "reports")
    job = cv.get_job(failed)
    assert job is not None
    local = job.created_at.astimezone(ZoneInfo(VIEWER_ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    utc = job.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=PHONE, timezone_id=VIEWER_ZONE)
        page.goto(f"{base}/jobs/{failed}")
        created = page.locator(".job-facts time").first
        expect(created).to_have_text(re.compile("^" + re.escape(local)))
        expect(created).to_have_attribute("title", utc)

        page.goto(f"{base}/jobs?queue=reports")
        relative = page.locator("table.jobs time").first
        expect(relative).to_have_text(re.compile(r" ago$|^now$"))
        expect(relative).to_have_attribute("title", re.compile(re.escape(local) + ".*" + utc))
        page.evaluate("document.querySelector('table.jobs').dataset.before = 'swap'")
        expect(page.locator("table.jobs[data-before]")).to_have_count(0, timeout=LIVE)
        expect(relative).to_have_attribute("title", re.compile(re.escape(local) + ".*" + utc))
        assert relative.evaluate("(time) => getComputedStyle(time).whiteSpace") == "nowrap"


# --- the job list's selection and counts, and a queue's page, at both widths -----------

BOTH_WIDTHS = pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["desktop", "phone"])


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
    cv.create_queue(LONG_QUEUE, retry_limit=3, dead_letter="emails-dead", rate_limit=100,
                    rate_period=60)
    fail_now(cv, LONG_QUEUE, 1)
    cv.send(LONG_QUEUE, {"to": "ann@example.com"})
    cv.send(LONG_QUEUE, {"to": "bob@example.com"}, start_after=600)
    errors: list[str] = []

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/")
        page.locator(f'table.queues a[title="{LONG_QUEUE}"]').click()

        expect(page.locator("h1.queue-name-full")).to_have_text(LONG_QUEUE)
        expect(page.locator("#charts")).to_have_attribute("aria-busy", "false")
        counts = page.locator(".queue-counts")
        expect(counts.locator("div", has_text="Scheduled").locator("a")).to_have_text("1")
        expect(counts.locator("div", has_text="Failed").first.locator("a")).to_have_text("1")
        expect(page.locator(".queue-settings")).to_contain_text("100 per 1 min")
        assert_fits_the_viewport(page, "the queue page")
        if viewport == VIEWPORT:
            save_screenshot(page, "dashboard-queue.png", tmp_path)

        page.get_by_role("button", name="Pause").click()
        confirm_text(page)
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator(".queue-title .badge")).to_have_text("paused", timeout=LIVE)
        assert_fits_the_viewport(page, "the queue page")

        counts.locator("div", has_text="Scheduled").locator("a").click()
        expect(page.locator("table.jobs tbody tr")).to_have_count(1)
        expect(page.locator("table.jobs .state-scheduled")).to_have_text("scheduled")
        expect(page.locator(".state-tab.current")).to_contain_text("Scheduled")
    assert errors == []


@BOTH_WIDTHS
def test_a_schedule_is_paused_and_run_now_on_the_schedules_page(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    expect = sync_api.expect
    cv.schedule("nightly-report", "0 3 * * *", {"report": "monthly-revenue"},
                tz="Europe/Berlin", queue="reports")
    cv.schedule("digest", "*/15 * * * *", queue="emails")

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/schedules")
        row = page.locator('tr[data-schedule="nightly-report"]')
        expect(row.locator(".last-tick")).to_contain_text("never")

        row.get_by_role("button", name="Pause").click()
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator("#toast")).to_have_text("Schedule nightly-report paused.")
        expect(row.locator(".next-tick .badge")).to_have_text("paused", timeout=LIVE)
        expect(row.get_by_role("button", name="Resume")).to_be_visible()

        row.get_by_role("button", name="Run now").click()
        page.locator('#confirm-dialog button[value="confirm"]').click()
        expect(page.locator("#toast")).to_have_text("Schedule nightly-report ran.")
        expect(row.locator(".last-tick .state")).to_have_text("created", timeout=LIVE)
        [schedule, _] = cv.get_schedules()[::-1]
        assert schedule.paused and schedule.last_job_id is not None
        expect(row.locator(".last-tick a")).to_have_attribute(
            "href", f"/jobs/{schedule.last_job_id}")
        assert_fits_the_viewport(page, "the schedules page")
        if viewport["width"] == VIEWPORT["width"]:
            save_screenshot(page, "dashboard-schedules.png", tmp_path)

        row.locator(".last-tick a").click()
        expect(page.locator(".job-state")).to_have_text("created")
        assert errors == []


@BOTH_WIDTHS
def test_a_step_of_a_flow_shows_what_it_waits_for_and_moves_on_once_it_has_run(
    chromium: Any, cv: Conveyor, database_url: str, schema: str, tmp_path: Path,
    viewport: dict[str, int],
) -> None:
    expect = sync_api.expect
    ids = cv.flow([
        {"ref": "fetch", "queue": "emails", "data": {"to": "ann@example.com"}},
        {"ref": "render", "queue": LONG_QUEUE, "depends_on": ["fetch"]},
        {"ref": "thumbnail", "queue": "images", "depends_on": ["fetch"]},
        {"ref": "publish", "queue": "publish", "depends_on": ["render", "thumbnail"]},
    ])
    errors: list[str] = []

    with serve(create_app(dsn=database_url, schema=schema)) as base:
        page = chromium.new_page(viewport=viewport)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/jobs/{ids['publish']}")
        expect(page.locator(".job-state")).to_have_text("waiting")
        expect(page.locator(".waiting-note")).to_contain_text(
            "Waits for 2 of 2 dependencies to finish: render (waiting), thumbnail (waiting)")
        expect(page.locator(".flow-graph .graph-node")).to_have_count(4)
        assert_fits_the_viewport(page, "a step's page")
        if viewport == VIEWPORT:
            save_screenshot(page, "dashboard-flow.png", tmp_path)

        with working(database_url, schema, Warehouse()):
            expect(page.locator(".flow-graph .graph-completed")).to_have_count(1, timeout=LIVE)
        expect(page.locator(".waiting-note")).to_contain_text("render (created)")

        page.locator(".flow-graph a", has_text="fetch").click()
        expect(page).to_have_url(f"{base}/jobs/{ids['fetch']}")
        expect(page.locator(".job-state")).to_have_text("completed")
        expect(page.locator(".flow table.links tbody tr")).to_have_count(2)
    assert errors == []
