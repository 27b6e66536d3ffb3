"""The dashboard's pages and live parts over HTTP: what each page shows, that user
data is always escaped, read-only mode, sign-in, and links under a mount prefix."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from test_worker import running, wait_until

from conveyor import AsyncConveyor
from conveyor._db.plan import Operation
from conveyor.web import WebSettings, create_app
from conveyor.web.security import CSRF_COOKIE, SESSION_COOKIE
from conveyor.worker.maintenance import snapshot

SCRIPT = "<script>alert(1)</script>"

TOKEN = "s3cret-s3cret-s3cret"


@contextlib.asynccontextmanager
async def browsing(
    acv: AsyncConveyor, settings: WebSettings | None = None, mount: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the dashboard, served at the root or under ``mount``."""
    app = create_app(acv, settings=settings)
    if mount:
        outer = FastAPI()
        outer.mount(mount, app)
        app = outer
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
async def dashboard(acv: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    async with browsing(acv) as client:
        yield client


async def failed_job(
    acv: AsyncConveyor, queue: str = "reports", data: Any = None,
    message: str = "upstream timed out",
) -> str:
    """A job whose only attempt raised ``RuntimeError(message)``."""
    job_id = await acv.send(queue, data if data is not None else {"report": 7}, retry_limit=0)
    assert job_id is not None
    [job] = await acv.fetch(queue)
    try:
        raise RuntimeError(message)
    except RuntimeError as error:
        await acv.fail(job, error)
    return job_id


async def completed_job(acv: AsyncConveyor, queue: str, output: Any) -> str:
    job_id = await acv.send(queue, {"n": 1})
    assert job_id is not None
    [job] = await acv.fetch(queue)
    await acv.complete(job, output)
    return job_id


def poll_url(html: str, part: str) -> str:
    """Where the live part polls, as the page says (``hx-get``)."""
    found = re.search(rf'hx-get="([^"]*/partials/{part}\?[^"]*)"', html)
    assert found is not None, f"no live part {part} in the page"
    return found.group(1).replace("&amp;", "&")


# --- overview ---------------------------------------------------------------------------


async def test_overview_shows_health_queues_and_the_charts(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("emails", {"to": "a@example.com"})
    await failed_job(acv, "reports")

    page = await dashboard.get("/")

    assert page.status_code == 200
    assert "Unhealthy" in page.text and "no worker is alive" in page.text
    assert 'href="/queues/emails"' in page.text
    assert 'href="/jobs?queue=reports&amp;state=failed"' in page.text
    assert 'data-stats-url="/api/stats"' in page.text
    assert '<option value="reports">reports</option>' in page.text


def _queue_row(page: str, name: str) -> list[str]:
    """The cells of a queue's row in the overview's table, as text."""
    row = re.search(rf'<tr>\s*<td class="queue-name">.*?>{re.escape(name)}<.*?</tr>', page, re.S)
    assert row is not None, f"no row for {name}"
    return [re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row[0], re.S)]


async def test_overview_counts_scheduled_jobs_apart_and_the_finished_jobs_once_counted(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.insert("emails", [{"data": n} for n in range(3)])
    await acv.insert("emails", [{"data": n, "start_after": 3600} for n in range(1_200)])
    first, second = await acv.fetch("emails", batch_size=2)
    await acv.complete(first.id)
    await acv.cancel(second.id)
    before = _queue_row((await dashboard.get("/")).text, "emails")
    await acv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))

    after = _queue_row((await dashboard.get("/")).text, "emails")

    # queue, queued, scheduled, retrying, active, failed, completed, cancelled, ...
    assert before[1:8] == ["1", "1,200", "0", "0", "0", "\u2013", "\u2013"]
    assert after[1:8] == ["1", "1,200", "0", "0", "0", "1", "1"]


async def test_overview_lists_running_workers_and_marks_the_leader(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    acv.work("emails", lambda job: None)

    async def leader_elected() -> bool:
        leader = await acv.get_leader()
        return leader is not None and leader.current

    async with running(acv):
        await wait_until(leader_elected)
        [worker] = await acv.get_workers()
        page = await dashboard.get("/")

    assert worker.id in page.text
    assert 'class="badge leader"' in page.text
    assert "Workers alive</dt><dd>1</dd>" in page.text


async def test_overview_without_workers_hints_at_the_conveyor_worker_command(
    dashboard: httpx.AsyncClient,
) -> None:
    page = await dashboard.get("/")

    assert "<code>conveyor worker</code>" in page.text
    assert "<code>conveyor work</code>" not in page.text


async def test_overview_writes_counts_with_thousands_separators(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.insert("emails", ({"data": {"n": n}} for n in range(12_345)))

    page = await dashboard.get("/")

    queues = page.text[page.text.index('<table class="grid queues">'):]
    assert '<td class="num">12,345</td>' in queues


async def test_queue_table_offers_resume_for_a_paused_queue_and_pause_for_the_others(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("emails", {})
    await acv.send("reports", {})
    await acv.pause_queue("reports")

    page = (await dashboard.get("/partials/queues")).text

    assert 'data-action="/api/queues/reports/resume"' in page
    assert 'data-action="/api/queues/emails/pause"' in page
    assert 'data-action="/api/queues/reports/pause"' not in page


async def test_a_live_part_answers_204_while_nothing_changed(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await failed_job(acv)
    page = (await dashboard.get(f"/jobs/{job_id}")).text

    answer = await dashboard.get(poll_url(page, f"jobs/{job_id}"))

    assert answer.status_code == 204 and answer.text == ""


async def test_a_live_part_answers_its_new_content_once_something_changed(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await failed_job(acv)
    page = (await dashboard.get(f"/jobs/{job_id}")).text
    await acv.retry(job_id)

    answer = await dashboard.get(poll_url(page, f"jobs/{job_id}"))

    assert answer.status_code == 200
    assert answer.text.startswith('<div class="live"')
    assert 'class="job-state state state-retry"' in answer.text


# --- job list ---------------------------------------------------------------------------


async def test_job_list_shows_only_the_jobs_matching_its_filters(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    queued = await acv.send("emails", {"to": "ann@example.com"}, singleton_key="ann")
    other = await acv.send("emails", {"to": "bob@example.com"})
    failed = await failed_job(acv, "reports")
    assert queued is not None and other is not None

    by_state = (await dashboard.get("/jobs", params={"state": "failed"})).text
    by_key = (await dashboard.get("/jobs", params={"key": "ann"})).text
    by_text = (await dashboard.get("/jobs", params={"q": "BOB@"})).text

    assert f"/jobs/{failed}" in by_state and f"/jobs/{queued}" not in by_state
    assert f"/jobs/{queued}" in by_key and f"/jobs/{other}" not in by_key
    assert f"/jobs/{other}" in by_text and f"/jobs/{queued}" not in by_text


async def test_job_list_pages_older_jobs_with_a_cursor(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = [await acv.send("emails", {"n": n}) for n in range(3)]

    first = (await dashboard.get("/jobs", params={"limit": "2"})).text
    older = re.search(r'href="(/jobs\?[^"]*cursor=[^"]*)"', first)
    assert older is not None
    second = (await dashboard.get(older.group(1).replace("&amp;", "&"))).text

    assert f"/jobs/{ids[2]}" in first and f"/jobs/{ids[0]}" not in first
    assert f"/jobs/{ids[0]}" in second and f"/jobs/{ids[2]}" not in second
    assert "Newest" in second


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"state": "stuck"}, "invalid state"),
        ({"queue": "bad name!"}, "queue"),
        ({"cursor": "not-a-cursor"}, "invalid cursor"),
        ({"limit": "many"}, "limit"),
        ({"scheduled": "soon"}, "scheduled must be true or false"),
    ],
)
async def test_an_invalid_filter_shows_its_message_instead_of_failing(
    dashboard: httpx.AsyncClient, query: dict[str, str], message: str
) -> None:
    page = await dashboard.get("/jobs", params=query)

    assert page.status_code == 400
    assert 'class="alert problem"' in page.text and message in page.text


async def test_bulk_actions_send_the_filter_and_fit_the_filtered_state(
    dashboard: httpx.AsyncClient,
) -> None:
    page = (await dashboard.get("/jobs", params={"queue": "reports", "state": "failed"})).text

    buttons = dict(re.findall(r'data-action="/api/jobs/bulk/(\w+)"[^>]*data-body=\'([^\']*)\'',
                              page))

    assert set(buttons) == {"retry", "delete"}
    assert json.loads(buttons["retry"]) == {"queue": "reports", "state": "failed"}


async def test_bulk_actions_are_offered_only_once_a_queue_or_state_narrows_them(
    dashboard: httpx.AsyncClient,
) -> None:
    unfiltered = (await dashboard.get("/jobs", params={"q": "ann"})).text
    by_queue = (await dashboard.get("/jobs", params={"queue": "emails"})).text

    assert 'data-action="/api/jobs/bulk/' not in unfiltered
    assert "Choose a queue or a state" in unfiltered
    assert all(f"/api/jobs/bulk/{action}" in by_queue
               for action in ("retry", "resume", "cancel", "delete"))


def tab_counts(html: str) -> dict[str, str]:
    """Each state tab's label and the count it shows."""
    return dict(re.findall(
        r'<a class="state-tab[^"]*"[^>]*>(\w+) <span class="tab-count">([^<]*)</span>', html))


async def test_state_tabs_count_the_queues_jobs_with_scheduled_apart_from_queued(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("emails", {"n": 1})
    await acv.send("emails", {"n": 2})
    await acv.send("emails", {"n": 3}, start_after=3600)
    await failed_job(acv, "reports")

    emails = tab_counts((await dashboard.get("/jobs", params={"queue": "emails"})).text)
    every_queue = tab_counts((await dashboard.get("/jobs")).text)

    assert emails["Queued"] == "2" and emails["Scheduled"] == "1"
    assert emails["Failed"] == "0" and emails["Active"] == "0"
    assert every_queue["Failed"] == "1" and every_queue["Queued"] == "2"
    # Finished jobs are counted by the statistics snapshot, which has not run yet.
    assert every_queue["Completed"] == "\u2013" and every_queue["All"] == "\u2013"


async def test_the_scheduled_tab_lists_only_jobs_due_later_with_their_due_time(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    due = await acv.send("emails", {"n": 1})
    later = await acv.send("emails", {"n": 2}, start_after=3600)

    scheduled = (await dashboard.get("/jobs", params={"state": "created",
                                                       "scheduled": "true"})).text
    queued = (await dashboard.get("/jobs", params={"state": "created",
                                                    "scheduled": "false"})).text

    assert f"/jobs/{later}" in scheduled and f"/jobs/{due}" not in scheduled
    assert '<span class="state state-scheduled">scheduled</span>' in scheduled
    assert re.search(r'<td class="due"><time [^>]*>in (59 min|1 h)', scheduled)
    assert f"/jobs/{due}" in queued and f"/jobs/{later}" not in queued
    assert "state-scheduled" not in queued


async def test_a_state_tab_keeps_the_other_filters_and_marks_the_one_shown(
    dashboard: httpx.AsyncClient,
) -> None:
    page = (await dashboard.get("/jobs", params={"queue": "emails", "key": "ann",
                                                 "state": "failed"})).text

    tabs = dict(re.findall(r'<a class="state-tab[^"]*"[^>]*href="([^"]*)"[^>]*>(\w+) ', page))
    current = re.findall(r'<a class="state-tab current" aria-current="page"[^>]*>(\w+) ', page)

    assert {label: href for href, label in tabs.items()}["Scheduled"] == (
        "/jobs?queue=emails&amp;state=created&amp;key=ann&amp;scheduled=true")
    assert current == ["Failed"]
    assert '<input type="hidden" name="state" value="failed">' in page


async def test_a_bulk_confirmation_first_counts_the_jobs_the_action_changes(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await failed_job(acv, "reports")
    await acv.send("reports", {})

    page = (await dashboard.get("/jobs", params={"queue": "reports"})).text
    button = re.search(r'<button[^>]*data-action="/api/jobs/bulk/retry"[^>]*>', page)
    assert button is not None
    confirm = re.search(r'data-confirm="([^"]*)"', button.group(0))
    count_url = re.search(r'data-count="([^"]*)"', button.group(0))
    assert confirm is not None and count_url is not None

    assert confirm.group(1).startswith(
        "Retry {jobs} in queue &#34;reports&#34;, in state failed?")
    counted = await dashboard.get(count_url.group(1).replace("&amp;", "&"))
    assert counted.json() == {"count": 1}


async def test_job_rows_have_checkboxes_for_a_selection_unless_read_only(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("emails", {})

    page = (await dashboard.get("/jobs")).text
    async with browsing(acv, WebSettings(read_only=True)) as read_only:
        read_only_page = (await read_only.get("/jobs")).text

    assert f'class="select-job" value="{job_id}"' in page and 'class="select-page"' in page
    assert 'data-selection-action="retry"' in page
    assert "select-job" not in read_only_page and "data-selection-action" not in read_only_page


# --- one queue --------------------------------------------------------------------------


async def test_queue_page_shows_its_settings_counts_and_actions(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("billing/invoices", policy="standard", retry_limit=4,
                           retry_delay=30, retry_backoff=True, dead_letter="billing/dead",
                           rate_limit=1200, rate_period=60, group_concurrency=2)
    await acv.send("billing/invoices", {}, start_after=3600)
    await failed_job(acv, "billing/invoices")

    page = await dashboard.get("/queues/billing%2Finvoices")

    assert page.status_code == 200
    text = page.text
    assert '<h1 class="queue-name-full">billing/invoices</h1>' in text
    assert "<dt>Policy</dt><dd>standard</dd>" in text
    assert "<dt>Retry limit</dt><dd>4</dd>" in text
    assert "<dt>Rate limit</dt><dd>1,200 per 1 min</dd>" in text
    assert "<dt>Group concurrency</dt><dd>2</dd>" in text
    assert 'href="/queues/billing%2Fdead"' in text
    counts = {label: count for label, _, count in re.findall(
        r'<dt>(\w+)</dt><dd><a class="num" href="([^"]*)"[^>]*>([^<]*)</a>', text)}
    assert counts["Scheduled"] == "1" and counts["Failed"] == "1" and counts["Queued"] == "0"
    assert 'href="/jobs?queue=billing%2Finvoices&amp;state=failed"' in text
    assert 'data-action="/api/queues/billing%2Finvoices/pause"' in text
    assert 'data-action="/api/jobs/bulk/retry"' in text and "Retry all failed (1)" in text
    assert 'data-queue="billing/invoices"' in text


async def test_queue_page_of_a_name_with_a_slash_is_found_without_encoding_it_too(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("billing/invoices", {})

    page = await dashboard.get("/queues/billing/invoices")

    assert page.status_code == 200 and "queue-name-full" in page.text


@pytest.mark.parametrize("name", ["nowhere", "bad%20name!"])
async def test_a_queue_that_does_not_exist_is_a_404_page(
    dashboard: httpx.AsyncClient, name: str
) -> None:
    page = await dashboard.get(f"/queues/{name}")
    part = await dashboard.get(f"/partials/queues/{name}")

    assert page.status_code == 404 and "Queue not found" in page.text
    assert part.status_code == 404


async def test_queue_page_counts_refresh_by_themselves(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    # jobs due later: a due one would have a lag, which grows between two polls
    await acv.send("emails", {}, start_after=3600)
    page = (await dashboard.get("/queues/emails")).text

    unchanged = await dashboard.get(poll_url(page, "queues/emails"))
    await acv.send("emails", {}, start_after=3600)
    changed = await dashboard.get(poll_url(page, "queues/emails"))

    assert unchanged.status_code == 204
    assert changed.status_code == 200 and '<dt>Scheduled</dt><dd><a class="num"' in changed.text


async def test_queue_names_on_the_job_list_and_job_page_link_to_the_queue_page(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("emails", {})

    listed = (await dashboard.get("/jobs")).text
    job_page = (await dashboard.get(f"/jobs/{job_id}")).text

    link = '<a class="queue-link" href="/queues/emails" title="emails">emails</a>'
    assert link in listed and link in job_page


# --- one job ----------------------------------------------------------------------------


async def test_job_page_shows_data_output_and_progress(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor, aconn: psycopg.AsyncConnection
) -> None:
    job_id = await completed_job(acv, "reports", {"pages": 12})
    await aconn.execute(
        f"UPDATE {acv.schema}.job SET progress = %s WHERE id = %s",
        (json.dumps({"percent": 40, "message": "page 4 of 10"}), job_id))
    await aconn.commit()

    page = await dashboard.get(f"/jobs/{job_id}")

    assert page.status_code == 200
    assert "&#34;n&#34;: 1" in page.text
    assert "&#34;pages&#34;: 12" in page.text
    assert '<progress max="100" value="40">' in page.text and "page 4 of 10" in page.text
    assert 'class="job-state state state-completed"' in page.text


async def test_job_page_shows_each_attempts_error_and_traceback_on_the_timeline(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("reports", {}, retry_limit=1, retry_delay=0)
    for message in ("first failure", "second failure"):
        [job] = await acv.fetch("reports")
        try:
            raise RuntimeError(message)
        except RuntimeError as error:
            await acv.fail(job, error)

    page = (await dashboard.get(f"/jobs/{job_id}")).text

    assert "Attempt 1 failed" in page and "Attempt 2 failed" in page
    assert page.index("first failure") < page.index("second failure")
    assert page.count("Traceback (most recent call last)") == 2
    assert 'raise RuntimeError(message)' in page


async def test_job_page_offers_the_actions_its_state_allows(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    failed = await failed_job(acv)
    queued = await acv.send("emails", {})

    failed_page = (await dashboard.get(f"/jobs/{failed}")).text
    queued_page = (await dashboard.get(f"/jobs/{queued}")).text

    assert f'data-action="/api/jobs/{failed}/retry"' in failed_page
    assert f'data-action="/api/jobs/{failed}" data-method="DELETE"' in failed_page
    assert "/cancel" not in failed_page
    assert f'data-action="/api/jobs/{queued}/cancel"' in queued_page
    assert "/retry" not in queued_page


async def test_a_job_due_later_shows_as_scheduled_on_its_page(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    later = await acv.send("emails", {}, start_after=3600)
    now = await acv.send("emails", {})

    later_page = (await dashboard.get(f"/jobs/{later}")).text
    now_page = (await dashboard.get(f"/jobs/{now}")).text

    assert '<span class="job-state state state-scheduled">scheduled</span>' in later_page
    assert '<span class="job-state state state-created">created</span>' in now_page


async def test_a_failed_job_and_its_dead_letter_copy_link_to_each_other(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("reports", {"report": 7}, retry_limit=0, dead_letter="reports-dlq")
    [job] = await acv.fetch("reports")
    await acv.fail(job, "upstream timed out")
    [copy] = (await acv.find_jobs("reports-dlq")).jobs

    source_page = (await dashboard.get(f"/jobs/{job.id}")).text
    copy_page = (await dashboard.get(f"/jobs/{copy.id}")).text

    assert f'class="mono copy-link" href="/jobs/{copy.id}"' in source_page
    assert "Copied to reports-dlq" in source_page
    assert f'class="mono source-link" href="/jobs/{job.id}"' in copy_page
    assert "Dead-letter copy of" in copy_page and " in reports<" in copy_page


@pytest.mark.parametrize("path", ["/jobs/{id}", "/partials/jobs/{id}"])
@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-job-id", "%3Cb%3E"])
async def test_a_job_that_does_not_exist_is_a_404_page(
    dashboard: httpx.AsyncClient, path: str, job_id: str
) -> None:
    page = await dashboard.get(path.format(id=job_id))

    assert page.status_code == 404
    assert "Job not found" in page.text
    assert "<b>" not in page.text


async def test_job_data_output_and_errors_are_shown_escaped(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    failed = await failed_job(acv, data={"note": SCRIPT}, message=SCRIPT)
    completed = await completed_job(acv, "emails", {"html": SCRIPT})

    pages = [(await dashboard.get(path)).text for path in (
        f"/jobs/{failed}", f"/jobs/{completed}", "/jobs", "/jobs?state=failed")]

    for page in pages:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert" not in page


# --- flows ------------------------------------------------------------------------------


async def pipeline(acv: AsyncConveyor) -> dict[str, str]:
    """fetch, then parse and thumbnail, then index (which ignores a failed parse),
    then notify; fetch has completed."""
    ids = await acv.flow([
        {"ref": "fetch", "queue": "download", "data": {"url": "https://example.com"}},
        {"ref": "parse", "queue": "parse", "depends_on": ["fetch"]},
        {"ref": "thumbnail", "queue": "images", "depends_on": ["fetch"]},
        {"ref": "index", "queue": "index", "depends_on": [
            {"ref": "parse", "on_failure": "ignore"}, "thumbnail"]},
        {"ref": "notify", "queue": "emails", "depends_on": ["index"]},
    ])
    await completed_job_of(acv, "download", {"pages": 3})
    return ids


async def completed_job_of(acv: AsyncConveyor, queue: str, output: Any) -> None:
    [job] = await acv.fetch(queue)
    await acv.complete(job, output)


def section(page: str, heading: str) -> str:
    """The part of a job's flow under ``heading`` (Dependencies or Dependents)."""
    start = page.index(f"<h2>{heading} ")
    end = page.find("<h2>", start + 1)
    return page[start:end if end != -1 else page.index("</section>", start)]


def link_rows(html: str) -> dict[str, list[str]]:
    """The rows of a table of edges by the linked job's id: ref, queue, state,
    policy and settled, as text."""
    rows = {}
    for row in re.findall(r"<tr>\s*<td class=\"mono\">.*?</tr>", html, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        ref, job_id, *rest = cells
        rows[job_id] = [ref, *rest]
    return rows


async def test_a_steps_page_lists_its_dependencies_and_dependents_with_their_states(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)

    page = (await dashboard.get(f"/jobs/{ids['index']}")).text

    dependencies = link_rows(section(page, "Dependencies"))
    dependents = link_rows(section(page, "Dependents"))
    assert dependencies == {
        ids["parse"]: ["parse", "parse", "created", "ignore", "pending"],
        ids["thumbnail"]: ["thumbnail", "images", "created", "cancel", "pending"]}
    assert dependents == {ids["notify"]: ["index", "emails", "waiting", "cancel", "pending"]}
    assert f'<a href="/jobs/{ids["notify"]}">' in section(page, "Dependents")


async def test_a_dependency_that_finished_is_listed_as_settled(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)

    page = (await dashboard.get(f"/jobs/{ids['parse']}")).text

    assert link_rows(section(page, "Dependencies")) == {
        ids["fetch"]: ["fetch", "download", "completed", "cancel", "settled"]}
    assert "Dependencies <span class=\"muted\">1 · 1 completed</span>" in page


async def test_a_waiting_step_says_which_dependencies_it_still_waits_for(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)
    await completed_job_of(acv, "parse", {"words": 120})

    page = (await dashboard.get(f"/jobs/{ids['index']}")).text

    note = re.search(r'<p class="alert waiting-note">(.*?)</p>', page, re.S)
    assert note is not None
    assert "Waits for 1 of 2 dependencies to finish" in note.group(1)
    assert f'<a href="/jobs/{ids["thumbnail"]}">thumbnail</a> (created)' in note.group(1)
    assert ids["parse"] not in note.group(1)
    assert '<span class="job-state state state-waiting">waiting</span>' in page


async def test_a_held_step_says_its_dependencies_finished_and_its_key_holds_it(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("reports", policy="short")
    ids = await acv.flow([
        {"ref": "fetch", "queue": "download"},
        {"ref": "report", "queue": "reports", "singleton_key": "monthly",
         "depends_on": ["fetch"]},
    ])
    await acv.send("reports", {"sent": "meanwhile"}, singleton_key="monthly")
    await completed_job_of(acv, "download", None)

    page = (await dashboard.get(f"/jobs/{ids['report']}")).text

    assert "Its dependencies have all finished. Its queue's short policy holds it" in page


async def test_a_job_page_draws_its_flow_with_a_box_per_job_and_an_arrow_per_edge(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)

    page = (await dashboard.get(f"/jobs/{ids['parse']}")).text

    columns = {job_id: int(x) for x, job_id in re.findall(
        r'<g class="graph-node [^"]*" transform="translate\((\d+),\d+\)">\s*'
        r"<title>[^(]*\(([^)]+)\)</title>", page)}
    assert set(columns) == set(ids.values())
    assert (columns[ids["fetch"]] < columns[ids["parse"]] == columns[ids["thumbnail"]]
            < columns[ids["index"]] < columns[ids["notify"]])
    assert page.count('class="graph-edge ') == 5
    assert page.count('class="graph-edge settled"') == 2  # what waited for fetch
    assert 'class="graph-node graph-completed"' in page
    assert 'class="graph-node graph-created current"' in page
    assert f'<a href="/jobs/{ids["notify"]}">' in page
    assert f'<a href="/jobs/{ids["parse"]}">' not in page  # the page's own job


async def test_a_flow_larger_than_one_drawing_is_drawn_in_part_and_listed_in_part(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    sent = await acv.batch([{"data": {"page": n}} for n in range(60)], queue="ocr",
                           on_complete={"queue": "ocr-done"})
    assert sent.callback is not None

    page = (await dashboard.get(f"/jobs/{sent.callback}")).text

    assert page.count('<g class="graph-node ') == 50
    assert "the 50 nearest to this one are drawn" in page
    assert len(link_rows(section(page, "Dependencies"))) == 50
    assert "the API lists them all" in page
    assert "Waits for 51+ of over 50 dependencies to finish" in page and "and 41 more." in page


async def test_a_steps_page_refreshes_by_itself_once_a_dependency_finishes(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)
    page = (await dashboard.get(f"/jobs/{ids['index']}")).text

    unchanged = await dashboard.get(poll_url(page, f"jobs/{ids['index']}"))
    await completed_job_of(acv, "images", {"width": 640})
    changed = await dashboard.get(poll_url(page, f"jobs/{ids['index']}"))

    assert unchanged.status_code == 204
    assert changed.status_code == 200
    assert link_rows(section(changed.text, "Dependencies"))[ids["thumbnail"]] == [
        "thumbnail", "images", "completed", "cancel", "settled"]


async def test_a_job_outside_any_flow_shows_no_flow(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("emails", {})

    page = (await dashboard.get(f"/jobs/{job_id}")).text

    assert "<h2>Flow</h2>" not in page and "graph-node" not in page
    assert "waiting-note" not in page


async def test_a_step_ended_by_its_dependency_links_to_it_on_the_timeline(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await acv.flow([
        {"ref": "fetch", "queue": "download", "retry_limit": 0},
        {"ref": "parse", "queue": "parse", "depends_on": ["fetch"],
         "on_dependency_failure": "fail"},
    ])
    [fetch] = await acv.fetch("download")
    await acv.fail(fetch, "the site is down")

    page = (await dashboard.get(f"/jobs/{ids['parse']}")).text

    assert "Ended by a dependency" in page and "Attempt ? failed" not in page
    assert f'<a class="dependency-link" href="/jobs/{ids["fetch"]}">' in page
    assert '<span class="job-state state state-failed">failed</span>' in page


async def test_a_waiting_step_can_be_cancelled_from_its_page(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)

    page = (await dashboard.get(f"/jobs/{ids['index']}")).text

    assert f'data-action="/api/jobs/{ids["index"]}/cancel"' in page


async def test_refs_of_a_flow_are_shown_escaped(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await acv.flow([
        {"ref": SCRIPT, "queue": "download"},
        {"ref": "parse", "queue": "parse", "depends_on": [SCRIPT]},
    ])

    pages = [(await dashboard.get(f"/jobs/{job_id}")).text for job_id in ids.values()]

    for page in pages:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert" not in page


async def test_the_waiting_tab_lists_the_waiting_steps_and_says_they_are_not_counted(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await pipeline(acv)

    page = (await dashboard.get("/jobs", params={"state": "waiting"})).text

    assert tab_counts(page)["Waiting"] == "\u2013"
    assert re.search(r'state-tab current"[^>]*title="Steps of flows waiting[^"]*not counted', page)
    listed = set(re.findall(r'<td class="mono"><a href="/jobs/([^"]+)">', page))
    assert listed == {ids["index"], ids["notify"]}
    assert '<span class="state state-waiting">waiting</span>' in page
    assert 'data-action="/api/jobs/bulk/cancel"' in page


# --- schedules --------------------------------------------------------------------------


async def test_schedules_page_lists_each_schedule_with_its_next_tick(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("nightly-report", "0 3 * * *", {"kind": "full"}, queue="reports",
                       tz="Europe/Paris")

    page = await dashboard.get("/schedules")

    assert page.status_code == 200
    assert "nightly-report" in page.text and "0 3 * * *" in page.text
    assert "Europe/Paris" in page.text and "&#34;kind&#34;: &#34;full&#34;" in page.text
    assert "<time datetime=" in page.text


async def test_schedules_page_says_when_there_are_none_with_the_real_signature(
    dashboard: httpx.AsyncClient,
) -> None:
    page = await dashboard.get("/schedules")

    assert page.status_code == 200 and "No schedules" in page.text
    assert 'cv.schedule(name, cron, data=None, tz="UTC", queue=None)' in page.text


async def test_schedules_page_shows_the_last_tick_with_a_link_to_its_job_and_its_outcome(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("nightly-report", "0 3 * * *", queue="reports")
    job_id = await acv.run_schedule("nightly-report")
    await acv.cancel(job_id)  # type: ignore[arg-type]

    page = (await dashboard.get("/schedules")).text

    last_tick = page.split('class="last-tick"')[1].split("</td>")[0]
    assert f'href="/jobs/{job_id}"' in last_tick and "<time datetime=" in last_tick
    assert '<span class="state state-cancelled">cancelled</span>' in last_tick


async def test_schedules_page_says_when_a_last_job_is_gone_or_the_schedule_never_ticked(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("gone", "0 3 * * *")
    await acv.schedule("new", "0 3 * * *")
    await acv.delete(await acv.run_schedule("gone"))  # type: ignore[arg-type]

    page = (await dashboard.get("/schedules")).text

    gone, new = page.split('class="last-tick"')[1:]
    assert "gone</span>" in gone.split("</td>")[0]
    assert "never" in new.split("</td>")[0]


async def test_schedules_page_shows_a_paused_schedule_with_resume_and_run_now(
    dashboard: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("billing/nightly", "0 3 * * *")
    await acv.schedule("digest", "0 4 * * *")
    await acv.pause_schedule("billing/nightly")

    page = (await dashboard.get("/schedules")).text

    paused, running = page.split('<tr data-schedule=')[1:]
    assert '<span class="badge warn">paused</span>' in paused
    assert 'data-action="/api/schedules/billing%2Fnightly/resume"' in paused
    assert 'data-action="/api/schedules/billing%2Fnightly/run"' in paused
    assert "paused</span>" not in running and "<time datetime=" in running
    assert 'data-action="/api/schedules/digest/pause"' in running


# --- read-only, sign-in, mounting -------------------------------------------------------


async def test_a_read_only_dashboard_renders_no_action_buttons(acv: AsyncConveyor) -> None:
    failed = await failed_job(acv)
    await acv.schedule("nightly-report", "0 3 * * *")
    async with browsing(acv, WebSettings(read_only=True)) as client:
        pages = [(await client.get(path)).text for path in (
            "/", "/partials/queues", "/jobs", f"/jobs/{failed}", "/jobs?state=failed",
            "/schedules", "/partials/schedules")]

    for page in pages:
        assert "data-action" not in page
        assert 'id="confirm-dialog"' not in page
    assert "read-only" in pages[0]


async def test_pages_send_a_browser_without_a_session_to_the_login_page(
    acv: AsyncConveyor,
) -> None:
    async with browsing(acv, WebSettings(token=TOKEN)) as client:
        for path, login_page in [
            ("/", "/login"), ("/jobs?state=failed", "/login?next=%2Fjobs%3Fstate%3Dfailed"),
            ("/schedules", "/login?next=%2Fschedules"), ("/partials/queues", "/login"),
        ]:
            answer = await client.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == login_page
        login = await client.get("/login?next=%2Fjobs%3Fstate%3Dfailed")

    assert login.status_code == 200 and 'name="token"' in login.text
    assert 'name="next" value="/jobs?state=failed"' in login.text


async def test_after_sign_in_the_browser_returns_to_the_page_it_asked_for(
    acv: AsyncConveyor,
) -> None:
    async with browsing(acv, WebSettings(token=TOKEN)) as client:
        answer = await client.post("/login", data={"token": TOKEN,
                                                   "next": "/jobs?state=failed"})

    assert answer.status_code == 303 and answer.headers["location"] == "/jobs?state=failed"


@pytest.mark.parametrize("elsewhere", [
    "//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
    "evil", "/\t/evil.example",
])
async def test_sign_in_never_sends_the_browser_to_another_site(
    acv: AsyncConveyor, elsewhere: str,
) -> None:
    async with browsing(acv, WebSettings(token=TOKEN)) as client:
        answer = await client.post("/login", data={"token": TOKEN, "next": elsewhere})

    assert answer.headers["location"] == "/"


async def test_login_with_the_token_sets_the_session_cookie_and_opens_the_overview(
    acv: AsyncConveyor,
) -> None:
    settings = WebSettings(token=TOKEN)
    async with browsing(acv, settings) as client:
        answer = await client.post("/login", data={"token": TOKEN})
        overview = await client.get("/")

    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and TOKEN not in cookie
    assert f"Max-Age={int(settings.session_seconds)}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert overview.status_code == 200 and "Overview" in overview.text


async def test_login_with_a_wrong_token_is_refused_with_401(acv: AsyncConveyor) -> None:
    async with browsing(acv, WebSettings(token=TOKEN)) as client:
        answer = await client.post("/login", data={"token": "guess"})
        overview = await client.get("/")

    assert answer.status_code == 401
    assert "not the token" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert overview.status_code == 303


async def test_login_under_a_mount_prefix_scopes_the_cookie_to_it(acv: AsyncConveyor) -> None:
    async with browsing(acv, WebSettings(token=TOKEN), mount="/conveyor") as client:
        answer = await client.post("/conveyor/login", data={"token": TOKEN})

    assert answer.headers["location"] == "/conveyor/"
    assert "Path=/conveyor" in answer.headers["set-cookie"]


async def test_links_assets_and_live_parts_carry_the_mount_prefix(acv: AsyncConveyor) -> None:
    job_id = await failed_job(acv)
    async with browsing(acv, mount="/conveyor") as client:
        overview = (await client.get("/conveyor/")).text
        job_page = (await client.get(f"/conveyor/jobs/{job_id}")).text
        stylesheet = await client.get("/conveyor/static/app.css")

    assert 'href="/conveyor/jobs"' in overview and 'href="/conveyor/schedules"' in overview
    assert 'src="/conveyor/static/htmx.min.js"' in overview
    assert 'data-stats-url="/conveyor/api/stats"' in overview
    assert poll_url(overview, "queues").startswith("/conveyor/partials/queues?")
    assert f'data-action="/conveyor/api/jobs/{job_id}/retry"' in job_page
    assert stylesheet.status_code == 200


async def test_the_page_repeats_the_csrf_cookie_in_its_meta_tag(
    dashboard: httpx.AsyncClient,
) -> None:
    first = await dashboard.get("/")
    token = first.cookies[CSRF_COOKIE]
    again = await dashboard.get("/jobs")

    assert f'<meta name="csrf-token" content="{token}">' in first.text
    assert f'<meta name="csrf-token" content="{token}">' in again.text


async def test_the_fastapi_example_sends_jobs_and_serves_the_dashboard_under_conveyor(
    database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", database_url)
    monkeypatch.setenv("CONVEYOR_SCHEMA", schema)
    monkeypatch.setenv("CONVEYOR_DASHBOARD_TOKEN", TOKEN)
    path = Path(__file__).resolve().parents[1] / "examples" / "fastapi_mount.py"
    spec = importlib.util.spec_from_file_location("fastapi_mount_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    app: FastAPI = example.app

    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1") as client:
        sent = await client.post("/signups", json={"email": "ann@example.com"})
        signed_in = await client.post("/conveyor/login", data={"token": TOKEN})
        jobs = await client.get("/conveyor/jobs", params={"queue": "welcome-email"})

    assert sent.status_code == 202
    assert signed_in.headers["location"] == "/conveyor/"
    assert f'href="/conveyor/jobs/{sent.json()["job"]}"' in jobs.text
