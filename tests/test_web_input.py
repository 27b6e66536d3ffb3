"""No input gets a 5xx from the web app: crafted values for every field of every
route (NaN, infinities, lone surrogates, huge integers, empty strings, wrong
types) get a 4xx with a message, and change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from conveyor import AsyncConveyor
from conveyor.web import create_app
from conveyor.web.api import FilterIn, SendIn, StepIn

NAN, INF = float("nan"), float("inf")
CRAFTED: list[Any] = [NAN, INF, -INF, "a\ud800b", "\udfff", 10**30, -(10**30), "", [INF],
                      {"x": NAN}, True, "²"]
"""Values no field should turn into a server error."""


@pytest.fixture
async def web(acv: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    # A server error comes back as a 500 answer rather than raised into the test.
    transport = httpx.ASGITransport(app=create_app(acv), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def _json(value: Any) -> bytes:
    """JSON as a careless or hostile client writes it: NaN and Infinity literals,
    lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def refusal_problem(answer: httpx.Response) -> str | None:
    """What is wrong with an answer that should refuse the request, or None."""
    if not 400 <= answer.status_code < 500:
        return f"{answer.status_code}: {answer.text[:200]}"
    if answer.headers.get("content-type", "").startswith("application/json") and not (
            answer.json().get("detail")):
        return f"{answer.status_code} without a message"
    return None


def _fields(model: type) -> list[str]:
    return list(model.model_fields)  # type: ignore[attr-defined]


async def _post_each(web: httpx.AsyncClient, path: str, body: Callable[[Any], Any],
                     accepted: int) -> tuple[dict[str, str], int]:
    """Each crafted value in the ``body`` it makes: the problems, by value, of answers
    that are neither ``accepted`` (a value the field rightly takes, "²" as a key,
    say) nor a refusal, and how many were accepted."""
    problems, taken = {}, 0
    for value in CRAFTED:
        answer = await web.post(path, content=_json(body(value)),
                                headers={"content-type": "application/json"})
        if answer.status_code == accepted:
            taken += 1
        elif problem := refusal_problem(answer):
            problems[repr(value)] = problem
    return problems, taken


@pytest.mark.parametrize("field", _fields(SendIn))
async def test_a_crafted_value_in_a_sent_job_is_refused_with_a_message(
    web: httpx.AsyncClient, acv: AsyncConveyor, field: str,
) -> None:
    problems, taken = await _post_each(
        web, "/api/jobs", lambda value: {"queue": "q", "data": 1, field: value}, 201)

    assert not problems
    assert len(await acv.find_jobs()) == taken  # a refused one sent nothing


@pytest.mark.parametrize("field", _fields(FilterIn))
async def test_a_crafted_filter_of_a_bulk_action_is_refused_or_matches_nothing(
    web: httpx.AsyncClient, field: str,
) -> None:
    problems, _ = await _post_each(
        web, "/api/jobs/bulk/cancel", lambda value: {"queue": "q", field: value}, 200)

    assert not problems


async def test_a_crafted_pause_is_refused(web: httpx.AsyncClient, acv: AsyncConveyor) -> None:
    await acv.create_queue("q")

    problems, taken = await _post_each(
        web, "/api/queues/q/pause", lambda value: {"seconds": value}, 200)

    assert not problems and taken == 0

    queue = await acv.get_queue("q")
    assert queue is not None and queue.paused_until is None


@pytest.mark.parametrize("field", _fields(StepIn))
async def test_a_crafted_value_in_a_step_of_a_flow_is_refused_with_a_message(
    web: httpx.AsyncClient, acv: AsyncConveyor, field: str,
) -> None:
    def flow(value: Any) -> dict[str, Any]:
        # The second step waits for the first, by the crafted ref when it is the ref,
        # so that a crafted ref is stored with the edge too.
        return {"steps": [{"ref": "a", "queue": "q", field: value},
                          {"ref": "b", "queue": "q", "depends_on": [
                              value if field == "ref" else "a"]}]}

    problems, taken = await _post_each(web, "/api/flows", flow, 201)

    assert not problems
    assert len(await acv.find_jobs()) == 2 * taken  # a refused flow sent nothing


async def test_a_body_that_is_not_the_json_asked_for_is_refused(web: httpx.AsyncClient) -> None:
    problems = {}
    for body in [b"{", b"NaN", b"[]", b"\xff\xfe", b'{"queue": "q"' * 1000]:
        answer = await web.post("/api/jobs", content=body,
                                headers={"content-type": "application/json"})
        if problem := refusal_problem(answer):
            problems[body[:20]] = problem

    assert not problems


QUERY_VALUES = ["%C2%B2", "9" * 5000, "-1", "NaN", "Infinity", "%ED%A0%80", "%00", "",
                "%FF", "1e999"]


async def _server_errors(web: httpx.AsyncClient, method: str, template: str) -> dict[str, str]:
    errors = {}
    for value in QUERY_VALUES:
        answer = await web.request(method, template.format(value))
        if answer.status_code >= 500:
            errors[value[:20]] = f"{answer.status_code}: {answer.text[:200]}"
    return errors


@pytest.mark.parametrize("path", ["/jobs", "/partials/jobs", "/api/jobs"])
@pytest.mark.parametrize("name", ["limit", "cursor", "queue", "state", "key", "q", "source_id"])
async def test_a_crafted_job_list_filter_is_never_a_server_error(
    web: httpx.AsyncClient, path: str, name: str,
) -> None:
    assert not await _server_errors(web, "GET", f"{path}?{name}={{}}")


@pytest.mark.parametrize("path", [
    "/api/stats?since={}", "/api/stats?queue={}", "/api/jobs/{}", "/jobs/{}",
    "/partials/jobs/{}", "/api/queues/{}/pause", "/api/jobs/{}/retry",
    "/api/jobs/{}/dependencies", "/api/jobs/{}/dependents",
])
async def test_a_crafted_path_or_query_is_never_a_server_error(
    web: httpx.AsyncClient, path: str,
) -> None:
    method = "POST" if path.endswith(("pause", "retry")) else "GET"

    assert not await _server_errors(web, method, path)
