"""The dashboard: HTML pages rendered on the server and kept live by htmx.

Each part of a page that changes by itself (health, queues, workers, the job
list, a job, schedules) is also served alone under ``/partials/...``, and the
page polls it every 2 s. A poll carries the digest of the HTML it shows; when
nothing changed the answer is ``204 No Content``, which htmx leaves unswapped,
so an opened traceback or a selection of text survives the refresh.

Pages only read. Every change (retry, cancel, pause...) goes through the JSON
API (``api.py``) from ``static/app.js``, after a confirmation, so the API's
checks are the only ones. Templates are autoescaped: job data, output and
errors reach the page as text, never as markup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from conveyor.client import AsyncConveyor
from conveyor.errors import ConveyorError, InvalidArgument
from conveyor.job import Job, JobState, QueueSummary
from conveyor.web import security
from conveyor.web.paths import app_path, mount_root
from conveyor.web.state import web_state

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
"""Jobs on one page of the job list unless ``limit`` says otherwise."""


# --- how values read on a page ----------------------------------------------------------


_NOTHING = "\u2013"
"""What a missing time or duration reads (an en dash)."""


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _duration(value: timedelta | float | None) -> str:
    """``timedelta(seconds=75)`` reads ``1 min 15 s``; under a minute, tenths show."""
    if value is None:
        return _NOTHING
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def _ago(moment: datetime | None) -> str:
    """How far ``moment`` is from now: ``12 s ago`` or ``in 3 min``."""
    if moment is None:
        return _NOTHING
    gap = moment - datetime.now(UTC)
    if abs(gap) < timedelta(seconds=1):
        return "now"
    if gap > timedelta(0):
        return f"in {_duration(gap)}"
    return f"{_duration(-gap)} ago"


def _number(value: int | float | None) -> str:
    """A count with thousands separators: ``12,000``."""
    if value is None:
        return _NOTHING
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _due_later(job: Job) -> bool:
    """Whether ``job`` waits for a later start: what ``find_jobs(scheduled=True)``
    keeps (created, or waiting out a retry delay, due in the future)."""
    return job.state in (JobState.CREATED, JobState.RETRY) and job.start_after > datetime.now(UTC)


def _shown_state(job: Job) -> str:
    """The state a page shows: ``scheduled`` for a created job due later."""
    return "scheduled" if job.state is JobState.CREATED and _due_later(job) else job.state.value


def _when(moment: datetime | None) -> str:
    return _NOTHING if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _path_part(value: str) -> str:
    """A value as one segment of a URL path (queue names may hold ``/``)."""
    return urllib.parse.quote(value, safe="")


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(
    pretty_json=_pretty_json, compact_json=_compact_json, duration=_duration, ago=_ago,
    when=_when, path_part=_path_part, number=_number, shown_state=_shown_state,
)
_templates.tests.update(due_later=_due_later)


def _render(request: Request, template: str, context: Mapping[str, Any]) -> str:
    settings = web_state(request).settings
    return _templates.get_template(template).render(
        context,
        root=mount_root(request),
        here=app_path(request),
        title=settings.title,
        read_only=settings.read_only,
        csrf_token=getattr(request.state, "csrf_token", ""),
        signed_in=getattr(request.state, "signed_in", False),
    )


def _page(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return HTMLResponse(_render(request, template, context), status_code=status_code)


def problem_page(
    request: Request, status_code: int, heading: str, message: str
) -> HTMLResponse:
    """The page that says what went wrong (also for errors the app answers)."""
    return _page(request, "error.html", status_code, heading=heading, message=message)


# --- parts that refresh themselves ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Live:
    """One rendered part of a page that polls ``/partials/...`` for itself, with the
    digest of its content. Jinja inserts it as markup (``__html__``): it was
    rendered by the autoescaping templates."""

    html: str
    digest: str

    def __html__(self) -> str:
        return self.html


def _live(
    request: Request, template: str, poll: str, query: Mapping[str, str] | None = None,
    **context: Any,
) -> Live:
    """Render ``template`` inside the wrapper that polls ``poll`` (a path under the
    app's root) every 2 s, or at once on a ``refresh`` event (after an action)."""
    content = _render(request, template, context)
    digest = hashlib.blake2b(content.encode(), digest_size=8).hexdigest()
    url = f"{mount_root(request)}{poll}?{urllib.parse.urlencode({**(query or {}), 'v': digest})}"
    html = _templates.get_template("live.html").render(poll_url=url, content=Markup(content))
    return Live(html, digest)


def _partial(request: Request, live: Live) -> Response:
    """A poll's answer: nothing when the poller already shows this content."""
    if request.query_params.get("v") == live.digest:
        return Response(status_code=204)
    return HTMLResponse(live.html)


async def _client(request: Request) -> AsyncConveyor:
    return await web_state(request).client()


async def _health_part(request: Request) -> Live:
    cv = await _client(request)
    health = await cv.health(backlog_warning=web_state(request).settings.backlog_warning)
    return _live(request, "partial_health.html", "/partials/health", health=health)


def _queues_part(request: Request, summaries: list[QueueSummary]) -> Live:
    return _live(request, "partial_queues.html", "/partials/queues", queues=summaries)


async def _workers_part(request: Request) -> Live:
    cv = await _client(request)
    workers, leader = await cv.get_workers(), await cv.get_leader()
    leader_id = leader.holder if leader is not None and leader.current else None
    return _live(request, "partial_workers.html", "/partials/workers",
                 workers=workers, leader_id=leader_id)


async def _schedules_part(request: Request) -> Live:
    schedules = await (await _client(request)).get_schedules()
    return _live(request, "partial_schedules.html", "/partials/schedules", schedules=schedules)


# --- the job list -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobAction:
    """What a person can do to a job, in the states it applies to. ``done`` is the
    past participle the page reports afterwards (``3 jobs retried``)."""

    name: str
    label: str
    states: frozenset[JobState]
    done: str

    @property
    def danger(self) -> bool:
        return self.name in ("cancel", "delete")


_UNFINISHED = frozenset({JobState.CREATED, JobState.RETRY, JobState.ACTIVE})
JOB_ACTIONS = (
    JobAction("retry", "Retry", frozenset({JobState.FAILED}), "retried"),
    JobAction("resume", "Resume", frozenset({JobState.CANCELLED}), "resumed"),
    JobAction("cancel", "Cancel", _UNFINISHED, "cancelled"),
    JobAction("delete", "Delete", frozenset(JobState), "deleted"),
)


_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The job list's filters, as the query string gives them (empty means any).
    ``scheduled`` keeps only the jobs due later (true) or only the others (false)."""

    queue: str | None = None
    state: str | None = None
    key: str | None = None
    q: str | None = None
    scheduled: bool | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> JobFilter:
        """The filters of a query string; raises ``InvalidArgument`` when
        ``scheduled`` is neither ``true`` nor ``false``."""

        def given(name: str) -> str | None:
            return query.get(name, "").strip() or None

        scheduled = given("scheduled")
        if scheduled is not None and scheduled not in _BOOLEANS:
            raise InvalidArgument(f"scheduled must be true or false, not {scheduled[:20]!r}")
        return cls(given("queue"), given("state"), given("key"), given("q"),
                   None if scheduled is None else _BOOLEANS[scheduled])

    def as_query(self) -> dict[str, str]:
        """The filters that are set, as the job list's query string."""
        return {name: str(value).lower() if isinstance(value, bool) else value
                for name, value in self.as_body().items()}

    def as_body(self) -> dict[str, str | bool]:
        """The filters that are set, as the body of a bulk action on the jobs they
        match."""
        fields = {"queue": self.queue, "state": self.state, "key": self.key, "q": self.q,
                  "scheduled": self.scheduled}
        return {name: value for name, value in fields.items() if value is not None}

    def showing(self, tab: StateTab) -> JobFilter:
        """These filters with the state (and scheduled) of ``tab``."""
        return dataclasses.replace(self, state=tab.state, scheduled=tab.scheduled)

    def _states_for(self, action: JobAction) -> list[str]:
        """The states a bulk ``action`` changes among the jobs this filter matches
        (none: every state)."""
        if self.state is not None:
            return [self.state]
        if action.states == frozenset(JobState):
            return []
        return [state.value for state in JobState if state in action.states]

    def describe(self, states: Sequence[str] | None = None) -> str:
        """The filters in words, for a confirmation: ``in queue "emails", in state
        failed``; ``states`` stands for the filter's state when given."""
        states = ([self.state] if self.state else []) if states is None else states
        words = []
        if self.queue:
            words.append(f'in queue "{self.queue}"')
        if states:
            words.append(f"in state {states[0]}" if len(states) == 1
                         else f"in states {', '.join(states[:-1])} or {states[-1]}")
        if self.scheduled is not None:
            words.append("due later" if self.scheduled else "due now")
        if self.key:
            words.append(f'with key "{self.key}"')
        if self.q:
            words.append(f'matching "{self.q}"')
        return ", ".join(words) if words else "at all"

    def describe_for(self, action: JobAction) -> str:
        """The jobs a bulk ``action`` on this filter changes, in words."""
        return self.describe(self._states_for(action))

    def count_query(self, action: JobAction) -> str:
        """The query of ``GET /api/jobs/count`` for the jobs a bulk ``action`` on this
        filter changes."""
        filters = {name: value for name, value in self.as_query().items() if name != "state"}
        return urllib.parse.urlencode(
            [*filters.items(), *(("state", state) for state in self._states_for(action))])

    def bulk_actions(self) -> list[JobAction]:
        """The actions that can apply to some job this filter matches; none without a
        queue or a state, which ``bulk`` requires so that one click cannot touch
        every job there is."""
        if self.state is None:
            return list(JOB_ACTIONS) if self.queue else []
        return [action for action in JOB_ACTIONS if self.state in action.states]


@dataclass(frozen=True, slots=True)
class StateTab:
    """One tab of the job list: the jobs in a state (created ones split into those
    due now, waiting, and those due later, scheduled) and how many there are.
    ``count`` is None when it is not known: finished jobs are counted by the
    maintenance leader's statistics snapshot, at ``counted_at``."""

    label: str
    state: str | None
    scheduled: bool | None
    count: int | None
    counted_at: datetime | None = None

    def selected(self, job_filter: JobFilter) -> bool:
        return (self.state, self.scheduled) == (job_filter.state, job_filter.scheduled)


def state_tabs(summaries: Sequence[QueueSummary], queue: str | None = None) -> list[StateTab]:
    """The job list's tabs with the counts of ``queue`` (every queue when None)."""
    chosen = [s for s in summaries if queue is None or s.name == queue]
    counted = [s.counted_at for s in chosen if s.counted_at is not None]
    # Finished jobs are known once every queue was counted; the oldest count stands.
    known = len(counted) == len(chosen)
    counted_at = min(counted) if known and counted else None

    def total(field: str) -> int:
        return sum(getattr(summary, field) for summary in chosen)

    def finished(field: str) -> int | None:
        return total(field) if known else None

    tabs = [
        StateTab("Waiting", JobState.CREATED.value, False, total("created")),
        StateTab("Scheduled", JobState.CREATED.value, True, total("scheduled")),
        StateTab("Retrying", JobState.RETRY.value, None, total("retry")),
        StateTab("Active", JobState.ACTIVE.value, None, total("active")),
        StateTab("Completed", JobState.COMPLETED.value, None, finished("completed"),
                 counted_at),
        StateTab("Cancelled", JobState.CANCELLED.value, None, finished("cancelled"),
                 counted_at),
        StateTab("Failed", JobState.FAILED.value, None, total("failed")),
    ]
    counts = [tab.count for tab in tabs]
    every = None if None in counts else sum(count or 0 for count in counts)
    return [StateTab("All", None, None, every, counted_at), *tabs]


def _page_size(query: Mapping[str, str]) -> int:
    given = query.get("limit", "").strip()
    if not given:
        return PAGE_SIZE
    # ASCII digits only ("²".isdigit() is true), and few of them: int() refuses
    # thousands of digits, and find_jobs refuses any page over 1,000 anyway.
    if not (given.isascii() and given.isdigit() and len(given) <= 6):
        raise InvalidArgument(f"limit must be a whole number from 1 to 1000, not {given[:20]!r}")
    return int(given)


async def _jobs_part(request: Request) -> Live:
    """The state tabs with their counts and one page of the jobs the query string's
    filters match. Raises the client's error when a filter is invalid."""
    query = request.query_params
    job_filter, cursor, limit = JobFilter.from_query(query), query.get("cursor"), _page_size(query)
    cv = await _client(request)
    page = await cv.find_jobs(
        job_filter.queue, state=job_filter.state, key=job_filter.key, search=job_filter.q,
        scheduled=job_filter.scheduled, limit=limit, cursor=cursor or None)
    tabs = state_tabs(await cv.queue_summaries(), job_filter.queue)
    shown = job_filter.as_query()
    if limit != PAGE_SIZE:
        shown["limit"] = str(limit)
    older = None
    if page.next_cursor is not None:
        older = urllib.parse.urlencode({**shown, "cursor": page.next_cursor})
    newest = urllib.parse.urlencode(shown) if cursor else None
    return _live(request, "partial_jobs.html", "/partials/jobs",
                 {**shown, "cursor": cursor} if cursor else shown,
                 page=page, filter=job_filter, tabs=tabs, older=older, newest=newest)


# --- one job ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A moment of a job's life on its timeline; ``error`` is the failed attempt's."""

    at: datetime | None
    title: str
    kind: str
    error: Mapping[str, Any] | None = None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_ENDINGS = {JobState.COMPLETED: "Completed", JobState.CANCELLED: "Cancelled",
            JobState.FAILED: "Failed"}


def timeline(job: Job) -> list[Event]:
    """The job's life in order: created, each failed attempt with its error, the
    current attempt's start, the next due time, and how it ended."""
    events = [Event(job.created_at, "Created", "created")]
    for record in job.errors:
        attempt = record.get("attempt", "?")
        events.append(Event(_moment(record.get("failed_at")), f"Attempt {attempt} failed",
                            "failed", record))
    if job.started_at is not None:
        events.append(Event(job.started_at, f"Attempt {job.attempt} started", "started"))
    if job.state in (JobState.CREATED, JobState.RETRY) and job.start_after > job.created_at:
        events.append(Event(job.start_after, "Due", "due"))
    if job.state in _ENDINGS:
        events.append(Event(job.completed_at, _ENDINGS[job.state], job.state.value))
    known = sorted((e for e in events if e.at is not None), key=lambda e: e.at or job.created_at)
    return known + [e for e in events if e.at is None]


_MAX_COPIES = 10
"""Dead-letter copies of a job listed on its page (a job retried by hand and
failed again has one per failure)."""


async def _job_part(request: Request, job_id: str) -> Live | None:
    """The job's part of its page, or None when there is no such job."""
    try:
        job = await (await _client(request)).get_job(job_id)
    except InvalidArgument:
        return None
    if job is None:
        return None
    actions = [action for action in JOB_ACTIONS if job.state in action.states]
    copies = [] if job.dead_letter is None or job.state is not JobState.FAILED else (
        await (await _client(request)).find_jobs(source_id=job.id, limit=_MAX_COPIES)).jobs
    return _live(request, "partial_job.html", f"/partials/jobs/{job.id}", job=job,
                 events=timeline(job), actions=actions, copies=copies)


def _no_job(request: Request, job_id: str) -> HTMLResponse:
    return problem_page(request, 404, "Job not found",
                    f"There is no job with id {job_id}: it may have been deleted after its "
                    "retention, or the id is mistyped.")


# --- one queue --------------------------------------------------------------------------


async def _queue_part(request: Request, name: str) -> Live | None:
    """The queue's settings, counts by state and actions, or None when there is no
    such queue."""
    cv = await _client(request)
    try:
        queue = await cv.get_queue(name)
    except InvalidArgument:
        return None
    if queue is None:
        return None
    summaries = await cv.queue_summaries()
    summary = next((s for s in summaries if s.name == queue.name), None)
    return _live(request, "partial_queue.html", f"/partials/queues/{_path_part(queue.name)}",
                 queue=queue, summary=summary, tabs=state_tabs(summaries, queue.name),
                 filter=JobFilter(queue=queue.name), failed=JobFilter(queue.name, "failed"),
                 retry=next(action for action in JOB_ACTIONS if action.name == "retry"))


def _no_queue(request: Request, name: str) -> HTMLResponse:
    return problem_page(request, 404, "Queue not found",
                        f"There is no queue named {name!r}: sending a job to a queue "
                        "creates it, and deleting it removes it.")


# --- pages ------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    """Health, throughput and depth charts, queues and workers."""
    summaries = await (await _client(request)).queue_summaries()
    return _page(request, "overview.html", health=await _health_part(request),
                 queues=_queues_part(request, summaries), workers=await _workers_part(request),
                 queue_names=[summary.name for summary in summaries])


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(request: Request) -> HTMLResponse:
    """The job list: state tabs with counts, filters, one page of matching jobs,
    bulk actions on the checked jobs or on every matching one."""
    queue_names = [queue.name for queue in await (await _client(request)).list_queues()]
    job_filter = JobFilter()
    part: Live | None = None
    problem: str | None = None
    status = 200
    try:
        job_filter = JobFilter.from_query(request.query_params)
        part = await _jobs_part(request)
    except ConveyorError as error:
        problem = str(error)
        status = 400 if isinstance(error, ValueError | TypeError) else 503
    return _page(request, "jobs.html", status, filter=job_filter, queue_names=queue_names,
                 jobs=part, problem=problem, actions=JOB_ACTIONS)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job(request: Request, job_id: str) -> HTMLResponse:
    """One job: its data, output, progress, and every attempt on a timeline."""
    part = await _job_part(request, job_id)
    if part is None:
        return _no_job(request, job_id)
    return _page(request, "job.html", job_id=job_id, job=part)


@router.get("/queues/{name:path}", response_class=HTMLResponse)
async def queue(request: Request, name: str) -> HTMLResponse:
    """One queue: its settings, counts by state, charts and actions."""
    part = await _queue_part(request, name)
    if part is None:
        return _no_queue(request, name)
    return _page(request, "queue.html", name=name, queue=part)


@router.get("/schedules", response_class=HTMLResponse)
async def schedules(request: Request) -> HTMLResponse:
    """The cron schedules and their next ticks."""
    return _page(request, "schedules.html", schedules=await _schedules_part(request))


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    """The sign-in form (a note when the dashboard needs no token)."""
    token_required = web_state(request).settings.credentials.token is not None
    return _page(request, "login.html", token_required=token_required, problem=None,
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
        page = _page(request, "login.html", 429, token_required=credentials.token is not None,
                     next=security.safe_next(wanted),
                     problem="Too many failed sign-ins from this address: wait a minute.")
        page.headers["retry-after"] = str(math.ceil(wait))
        return page
    if not credentials.token_matches(given):
        state.sign_ins.failed(client)
        return _page(request, "login.html", 401, token_required=credentials.token is not None,
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


# --- partials: what the pages poll ------------------------------------------------------


@router.get("/partials/health")
async def health_partial(request: Request) -> Response:
    return _partial(request, await _health_part(request))


@router.get("/partials/queues")
async def queues_partial(request: Request) -> Response:
    summaries = await (await _client(request)).queue_summaries()
    return _partial(request, _queues_part(request, summaries))


@router.get("/partials/workers")
async def workers_partial(request: Request) -> Response:
    return _partial(request, await _workers_part(request))


@router.get("/partials/schedules")
async def schedules_partial(request: Request) -> Response:
    return _partial(request, await _schedules_part(request))


@router.get("/partials/queues/{name:path}")
async def queue_partial(request: Request, name: str) -> Response:
    part = await _queue_part(request, name)
    if part is None:
        return _no_queue(request, name)
    return _partial(request, part)


@router.get("/partials/jobs")
async def jobs_partial(request: Request) -> Response:
    try:
        part = await _jobs_part(request)
    except ConveyorError as error:
        return problem_page(request, 400, "Invalid filter", str(error))
    return _partial(request, part)


@router.get("/partials/jobs/{job_id}")
async def job_partial(request: Request, job_id: str) -> Response:
    part = await _job_part(request, job_id)
    if part is None:
        return _no_job(request, job_id)
    return _partial(request, part)
