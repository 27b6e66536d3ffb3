"""The REST API: every endpoint, its answers to bad input (4xx with a message,
never a 500), and health."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from test_worker import running, wait_until

from conveyor import AsyncConveyor, JobState
from conveyor.web import WebSettings, create_app


@pytest.fixture
async def api(acv: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(acv))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def _failed_job(acv: AsyncConveyor, queue: str = "mail", data: Any = None) -> str:
    job_id = await acv.send(queue, data or {}, retry_limit=0)
    assert job_id is not None
    (job,) = await acv.fetch(queue)
    await acv.fail(job.id, {"message": "smtp down"})
    return job_id


async def test_a_job_sent_through_the_api_is_read_back_with_its_options(
    api: httpx.AsyncClient,
) -> None:
    sent = await api.post("/api/jobs", json={
        "queue": "mail", "data": {"to": "a@example.com"}, "priority": 5, "retry_delay": 2.5,
        "start_after": 60, "group_key": "tenant-1"})
    assert sent.status_code == 201
    job_id = sent.json()["id"]

    job = (await api.get(f"/api/jobs/{job_id}")).json()

    assert job["data"] == {"to": "a@example.com"}
    assert (job["state"], job["priority"], job["retry_delay"]) == ("created", 5, 2.5)
    assert job["group_key"] == "tenant-1"
    assert job["errors"] == [] and job["progress"] == {}


async def test_a_job_the_queue_policy_turns_away_answers_409(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("nightly", policy="short")
    first = await api.post("/api/jobs", json={"queue": "nightly", "singleton_key": "k"})
    second = await api.post("/api/jobs", json={"queue": "nightly", "singleton_key": "k"})
    assert first.status_code == 201
    assert second.status_code == 409
    assert "policy" in second.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"queue": "bad name!"}, 422, "queue"),
        ({"queue": "emails\n"}, 422, "queue"),
        ({"queue": "mail", "start_after": -5}, 400, "start_after"),
        ({"queue": "mail", "start_after": "2030-01-01T00:00:00"}, 400, "offset"),
        ({"queue": "mail", "retry_limit": -1}, 422, "retry_limit"),
        ({"queue": "mail", "retry_delay": True}, 422, "retry_delay"),
        ({"queue": "mail", "colour": "red"}, 422, "colour"),
        ({"queue": "mail", "priority": "high"}, 422, "priority"),
        ({"data": {}}, 422, "queue"),
    ],
)
async def test_sending_bad_input_answers_4xx_with_a_message_and_sends_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor, body: dict[str, Any], status: int, message: str
) -> None:
    answer = await api.post("/api/jobs", json=body)
    assert answer.status_code == status
    assert message in answer.text
    assert (await acv.find_jobs()).jobs == []


async def test_the_job_list_filters_by_queue_state_key_and_search_and_pages(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.insert("mail", [{"data": {"n": n}, "group_key": "t1"} for n in range(5)])
    await acv.send("mail", {"n": "other"}, group_key="t2")
    failed = await _failed_job(acv, "reports", {"invoice": 7})
    await acv.send("reports", {"n": 1})

    first = (await api.get("/api/jobs", params={"queue": "mail", "key": "t1", "limit": 3})).json()
    rest = (await api.get("/api/jobs", params={
        "queue": "mail", "key": "t1", "limit": 3, "cursor": first["next_cursor"]})).json()
    by_state = (await api.get("/api/jobs", params=[("state", "failed"), ("state", "active")]))
    by_search = (await api.get("/api/jobs", params={"q": "invoice"})).json()

    assert len(first["jobs"]) == 3 and len(rest["jobs"]) == 2
    assert rest["next_cursor"] is None
    assert {j["data"]["n"] for j in first["jobs"] + rest["jobs"]} == set(range(5))
    assert [j["id"] for j in by_state.json()["jobs"]] == [failed]
    assert [j["id"] for j in by_search["jobs"]] == [failed]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"state": "finished"}, 422),
        ({"queue": "bad name!"}, 400),
        ({"limit": 0}, 422),
        ({"limit": 5000}, 422),
        ({"cursor": "not-a-cursor"}, 400),
    ],
)
async def test_the_job_list_answers_bad_filters_with_4xx(
    api: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    answer = await api.get("/api/jobs", params=params)
    assert answer.status_code == status
    assert answer.json()["detail"]


@pytest.mark.parametrize("job_id", ["01a20907-79dc-7fd4-9c85-3838b03f52ef", "not-an-id"])
async def test_a_missing_or_malformed_job_id_answers_404(
    api: httpx.AsyncClient, job_id: str
) -> None:
    for answer in (
        await api.get(f"/api/jobs/{job_id}"),
        await api.post(f"/api/jobs/{job_id}/retry"),
        await api.delete(f"/api/jobs/{job_id}"),
    ):
        assert answer.status_code == 404
        assert job_id in answer.json()["detail"]


async def test_a_failed_job_is_retried_and_a_retry_of_a_queued_job_answers_409(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    failed = await _failed_job(acv)
    queued = await acv.send("mail", {})

    retried = await api.post(f"/api/jobs/{failed}/retry")
    refused = await api.post(f"/api/jobs/{queued}/retry")

    assert retried.status_code == 200
    assert retried.json() == {"id": failed, "state": "retry"}
    assert refused.status_code == 409
    assert "it is created" in refused.json()["detail"]


async def test_a_job_is_cancelled_resumed_and_deleted(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("mail", {})

    cancelled = await api.post(f"/api/jobs/{job_id}/cancel")
    resumed = await api.post(f"/api/jobs/{job_id}/resume")
    deleted = await api.delete(f"/api/jobs/{job_id}")

    assert cancelled.json()["state"] == "cancelled"
    assert resumed.json()["state"] == "created"
    assert deleted.status_code == 204
    assert await acv.get_job(job_id) is None


async def test_an_unknown_job_action_answers_422(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("mail", {})
    assert (await api.post(f"/api/jobs/{job_id}/explode")).status_code == 422


async def test_a_bulk_action_applies_to_every_job_matching_the_filter(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    failed = [await _failed_job(acv) for _ in range(3)]
    await acv.send("mail", {})

    answer = await api.post("/api/jobs/bulk/retry", json={"queue": "mail", "state": "failed"})

    assert answer.json() == {"count": 3}
    for job_id in failed:
        job = await acv.get_job(job_id)
        assert job is not None and job.state is JobState.RETRY


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/jobs/bulk/delete", {}, 400),
        ("/api/jobs/bulk/delete", {"queue": "mail", "extra": 1}, 422),
        ("/api/jobs/bulk/purge", {"queue": "mail"}, 422),
        ("/api/jobs/bulk/delete", {"state": "gone"}, 422),
        ("/api/jobs/bulk/delete", {"ids": ["not-an-id"]}, 422),
        ("/api/jobs/bulk/delete", {"ids": []}, 422),
        ("/api/jobs/bulk/delete", {"ids": [str(uuid.uuid4())] * 1001}, 422),
        ("/api/jobs/bulk/delete", {"ids": [str(uuid.uuid4())], "queue": "mail"}, 400),
        ("/api/jobs/bulk/delete", {"queue": "mail", "scheduled": "yes"}, 422),
    ],
)
async def test_a_bulk_action_refuses_bad_input_and_changes_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor, path: str, body: dict[str, Any], status: int
) -> None:
    job_id = await acv.send("mail", {})
    answer = await api.post(path, json=body)
    assert answer.status_code == status
    assert await acv.get_job(job_id) is not None


async def test_a_bulk_action_on_ids_changes_only_those_jobs(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    first, second, third = [await acv.send("mail", {"n": n}) for n in range(3)]

    answer = await api.post("/api/jobs/bulk/cancel", json={"ids": [str(first), str(third)]})

    assert answer.json() == {"count": 2}
    states = [(await acv.get_job(job_id)).state for job_id in (first, second, third)]  # type: ignore[union-attr]
    assert states == [JobState.CANCELLED, JobState.CREATED, JobState.CANCELLED]


async def test_jobs_are_counted_and_listed_by_whether_they_are_due_later(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("mail", {"n": "now"})
    later = await acv.send("mail", {"n": "later"}, start_after=3600)

    scheduled = (await api.get("/api/jobs", params={"scheduled": "true"})).json()
    counts = [(await api.get("/api/jobs/count", params=params)).json()
              for params in ({"queue": "mail"}, {"scheduled": "true"},
                             {"state": "created", "scheduled": "false"})]
    refused = await api.get("/api/jobs/count", params={"state": "gone"})

    assert [job["id"] for job in scheduled["jobs"]] == [str(later)]
    assert counts == [{"count": 2}, {"count": 1}, {"count": 1}]
    assert refused.status_code == 422


PIPELINE = [
    {"ref": "fetch", "queue": "download", "data": {"url": "https://example.com"}},
    {"ref": "parse", "queue": "parse", "depends_on": ["fetch"], "priority": 3},
    {"ref": "index", "queue": "index", "on_dependency_failure": "fail",
     "depends_on": [{"ref": "parse", "on_failure": "ignore"}, "fetch"]},
]


async def test_a_flow_sent_through_the_api_answers_each_steps_id_by_its_ref(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    sent = await api.post("/api/flows", json={"steps": PIPELINE})

    assert sent.status_code == 201
    ids = sent.json()
    assert set(ids) == {"fetch", "parse", "index"}
    jobs = {ref: await acv.get_job(job_id) for ref, job_id in ids.items()}
    assert {ref: job.state if job else None for ref, job in jobs.items()} == {
        "fetch": JobState.CREATED, "parse": JobState.WAITING, "index": JobState.WAITING}
    assert jobs["parse"] is not None and jobs["parse"].priority == 3
    assert [job.id for job in await acv.get_dependencies(ids["index"])] == [
        ids["fetch"], ids["parse"]]


async def test_a_flow_step_may_wait_for_a_job_sent_before_by_its_id(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    earlier = await acv.send("download", {})

    sent = await api.post("/api/flows", json={"steps": [
        {"ref": "parse", "queue": "parse", "depends_on": [earlier]}]})

    assert sent.status_code == 201
    [dependency] = await acv.get_dependencies(sent.json()["parse"])
    assert dependency.id == earlier


async def test_a_flow_with_a_cycle_answers_400_naming_it_and_sends_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    answer = await api.post("/api/flows", json={"steps": [
        {"ref": "a", "queue": "q", "depends_on": ["c"]},
        {"ref": "b", "queue": "q", "depends_on": ["a"]},
        {"ref": "c", "queue": "q", "depends_on": ["b"]},
    ]})

    assert answer.status_code == 400
    assert answer.json()["detail"] == "the flow's dependencies form a cycle through a, b, c"
    assert (await acv.find_jobs()).jobs == []


@pytest.mark.parametrize(
    ("steps", "status", "message"),
    [
        ([{"ref": "a", "queue": "q"}, {"ref": "a", "queue": "q"}], 400, "two steps have the ref"),
        ([{"ref": "a", "queue": "q", "depends_on": ["b"]}], 400, "neither a ref of this flow"),
        ([{"ref": "a", "queue": "q", "depends_on": ["a"]}], 400, "depends on itself"),
        ([{"ref": "a", "queue": "q", "depends_on": ["01a20907-79dc-7fd4-9c85-3838b03f52ef"]}],
         404, "do not exist"),
        ([{"ref": "a", "queue": "q", "retry_delay": -1}], 400, "retry_delay"),
        ([{"ref": "a", "queue": "q", "on_dependency_failure": "retry"}], 422,
         "on_dependency_failure"),
        ([{"ref": "a", "queue": "q", "depends_on": [{"ref": "b", "on_failure": "x"}]}], 422,
         "on_failure"),
        ([{"ref": "a", "queue": "q", "debounce_seconds": 5}], 422, "debounce_seconds"),
        ([{"ref": "a\u0000", "queue": "q"}], 422, "NUL"),
        ([{"ref": "", "queue": "q"}], 422, "ref"),
        ([{"queue": "q"}], 422, "ref"),
        ([{"ref": "a", "queue": "bad name!"}], 422, "queue"),
        ([], 422, "steps"),
    ],
)
async def test_a_flow_that_cannot_run_answers_4xx_with_a_message_and_sends_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor, steps: list[Any], status: int, message: str
) -> None:
    answer = await api.post("/api/flows", json={"steps": steps})

    assert answer.status_code == status
    assert message in answer.text
    assert (await acv.find_jobs()).jobs == []


async def test_a_flow_step_the_queue_policy_turns_away_answers_409_and_sends_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("nightly", policy="short")
    before = await acv.send("nightly", {}, singleton_key="k")

    answer = await api.post("/api/flows", json={"steps": [
        {"ref": "fetch", "queue": "download"},
        {"ref": "report", "queue": "nightly", "singleton_key": "k"}]})

    assert answer.status_code == 409 and "nothing was sent" in answer.json()["detail"]
    assert [job.id for job in (await acv.find_jobs()).jobs] == [before]


async def test_a_read_only_api_refuses_a_flow_and_sends_nothing(acv: AsyncConveyor) -> None:
    transport = httpx.ASGITransport(app=create_app(acv, settings=WebSettings(read_only=True)))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post("/api/flows", json={"steps": PIPELINE})

    assert answer.status_code == 403
    assert (await acv.find_jobs()).jobs == []


async def test_a_steps_dependencies_answer_each_edge_with_its_ref_policy_and_settlement(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await acv.flow(PIPELINE)
    [fetch] = await acv.fetch("download")
    await acv.complete(fetch, {"pages": 3})

    answer = await api.get(f"/api/jobs/{ids['index']}/dependencies")

    assert answer.status_code == 200
    edges = [(link["job"]["id"], link["job"]["state"], link["ref"], link["on_failure"],
              link["settled"]) for link in answer.json()]
    assert edges == [(ids["fetch"], "completed", "fetch", "fail", True),
                     (ids["parse"], "created", "parse", "ignore", False)]
    assert set(answer.json()[0]["job"]) == {
        "id", "queue", "state", "created_at", "started_at", "completed_at"}


async def test_a_jobs_dependents_answer_the_jobs_that_wait_for_it(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    ids = await acv.flow(PIPELINE)

    answer = await api.get(f"/api/jobs/{ids['fetch']}/dependents")

    assert answer.status_code == 200
    assert [(link["job"]["id"], link["job"]["queue"], link["job"]["state"], link["ref"],
             link["on_failure"], link["settled"]) for link in answer.json()] == [
        (ids["parse"], "parse", "waiting", "fetch", "cancel", False),
        (ids["index"], "index", "waiting", "fetch", "fail", False)]


async def test_a_callbacks_dependencies_and_an_items_dependents_come_a_page_at_a_time(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    sent = await acv.batch([{"data": {"n": n}} for n in range(5)], queue="pages",
                           on_complete={"queue": "done"})
    assert sent.callback is not None
    pages, after = [], None
    for _ in range(5):
        query = {"limit": 2} if after is None else {"limit": 2, "after": after}
        answer = await api.get(f"/api/jobs/{sent.callback}/dependencies", params=query)
        assert answer.status_code == 200
        page = [link["job"]["id"] for link in answer.json()]
        pages.append(page)
        if not page:
            break
        after = page[-1]

    assert pages == [sent.ids[0:2], sent.ids[2:4], sent.ids[4:5], []]
    answer = await api.get(f"/api/jobs/{sent.ids[0]}/dependents", params={"limit": 1})
    assert [link["job"]["id"] for link in answer.json()] == [sent.callback]
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": "not-an-id"}):
        answer = await api.get(f"/api/jobs/{sent.callback}/dependencies", params=bad)
        assert answer.status_code == (400 if "after" in bad else 422), (bad, answer.status_code)


async def test_a_job_outside_any_flow_has_no_dependencies_or_dependents(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    job_id = await acv.send("mail", {})

    for edge in ("dependencies", "dependents"):
        answer = await api.get(f"/api/jobs/{job_id}/{edge}")
        assert answer.status_code == 200 and answer.json() == []


@pytest.mark.parametrize("edge", ["dependencies", "dependents"])
@pytest.mark.parametrize("job_id", ["01a20907-79dc-7fd4-9c85-3838b03f52ef", "not-an-id"])
async def test_the_edges_of_a_missing_or_malformed_job_answer_404(
    api: httpx.AsyncClient, job_id: str, edge: str
) -> None:
    answer = await api.get(f"/api/jobs/{job_id}/{edge}")

    assert answer.status_code == 404
    assert job_id in answer.json()["detail"]


async def test_queues_list_counts_lag_and_pause_and_can_be_paused_and_resumed(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.insert("mail", [{"data": n} for n in range(2)])
    await _failed_job(acv, "reports")

    paused = await api.post("/api/queues/mail/pause", json={"seconds": 300})
    queues = {q["name"]: q for q in (await api.get("/api/queues")).json()}
    resumed = await api.post("/api/queues/mail/resume")

    assert paused.json()["paused_until"] is not None
    assert queues["mail"]["paused"] and queues["mail"]["waiting"] == 2
    assert queues["mail"]["lag"] >= 0
    assert queues["reports"]["failed"] == 1 and not queues["reports"]["paused"]
    assert resumed.json()["paused_until"] is None


async def test_a_queue_whose_name_holds_a_slash_is_paused_and_resumed(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("billing/invoices")
    paused = await api.post("/api/queues/billing%2Finvoices/pause")
    queue = await acv.get_queue("billing/invoices")
    resumed = await api.post("/api/queues/billing/invoices/resume")
    assert paused.json()["name"] == "billing/invoices"
    assert queue is not None and queue.paused_until is not None
    assert resumed.json()["paused_until"] is None


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/queues/nowhere/pause", None, 404),
        ("/api/queues/nowhere/resume", None, 404),
        ("/api/queues/mail/pause", {"seconds": -1}, 400),
        ("/api/queues/mail/pause", {"seconds": "long"}, 422),
    ],
)
async def test_pausing_answers_bad_input_with_4xx(
    api: httpx.AsyncClient, acv: AsyncConveyor, path: str, body: Any, status: int
) -> None:
    await acv.create_queue("mail")
    answer = await api.post(path, json=body)
    assert answer.status_code == status
    assert (await acv.get_queue("mail")).paused_until is None  # type: ignore[union-attr]


async def test_schedules_workers_and_statistics_are_listed(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("nightly", "0 3 * * *", {"full": True}, tz="Europe/Berlin")
    await acv.create_queue("mail")
    acv.work("mail", lambda job: None)
    async with running(acv, stats_interval=0.2):
        await wait_until(lambda: _has_stats(api))
        workers = (await api.get("/api/workers")).json()
    schedules = (await api.get("/api/schedules")).json()

    assert [(s["name"], s["cron"], s["tz"]) for s in schedules] == [
        ("nightly", "0 3 * * *", "Europe/Berlin")]
    assert workers[0]["alive"] and workers[0]["queues"] == ["mail"]
    stats = (await api.get("/api/stats", params={"queue": "mail", "since": 600})).json()
    assert stats and stats[0]["queue"] == "mail"


async def test_a_schedule_is_paused_run_now_and_resumed_and_listed_with_its_last_run(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("nightly", "0 3 * * *", {"full": True}, queue="reports")

    paused = await api.post("/api/schedules/nightly/pause")
    ran = await api.post("/api/schedules/nightly/run")
    [listed] = (await api.get("/api/schedules")).json()
    resumed = await api.post("/api/schedules/nightly/resume")

    assert paused.status_code == 200
    assert paused.json()["paused"] is True and paused.json()["next_tick"] is None
    assert ran.status_code == 201
    job = await acv.get_job(ran.json()["id"])
    assert job is not None and (job.queue, job.data) == ("reports", {"full": True})
    assert listed["paused"] is True and listed["last_tick_at"] is not None
    assert (listed["last_job_id"], listed["last_job_state"]) == (job.id, "created")
    assert resumed.json()["paused"] is False and resumed.json()["next_tick"] is not None


async def test_a_schedule_whose_name_holds_a_slash_is_paused(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.schedule("billing/nightly", "0 3 * * *")
    paused = await api.post("/api/schedules/billing%2Fnightly/pause")
    assert paused.json()["name"] == "billing/nightly" and paused.json()["paused"] is True


@pytest.mark.parametrize("action", ["pause", "resume", "run"])
async def test_an_action_on_an_unknown_schedule_answers_404(
    api: httpx.AsyncClient, acv: AsyncConveyor, action: str
) -> None:
    answer = await api.post(f"/api/schedules/nowhere/{action}")
    assert answer.status_code == 404
    assert "schedule 'nowhere' does not exist" in answer.json()["detail"]
    assert (await acv.find_jobs()).jobs == []


@pytest.mark.parametrize("action", ["pause", "resume", "run"])
async def test_an_action_on_a_bad_schedule_name_answers_400_and_changes_nothing(
    api: httpx.AsyncClient, acv: AsyncConveyor, action: str
) -> None:
    saved = await acv.schedule("nightly", "0 3 * * *")
    answer = await api.post(f"/api/schedules/bad%20name!/{action}")
    assert answer.status_code == 400 and "schedule name" in answer.json()["detail"]
    assert await acv.get_schedules() == [saved]
    assert (await acv.find_jobs()).jobs == []


@pytest.mark.parametrize("action", ["pause", "resume", "run"])
async def test_a_read_only_api_refuses_schedule_actions_and_changes_nothing(
    acv: AsyncConveyor, action: str
) -> None:
    saved = await acv.schedule("nightly", "0 3 * * *")
    transport = httpx.ASGITransport(app=create_app(acv, settings=WebSettings(read_only=True)))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.post(f"/api/schedules/nightly/{action}")
    assert answer.status_code == 403 and "read-only" in answer.json()["detail"]
    assert await acv.get_schedules() == [saved]
    assert (await acv.find_jobs()).jobs == []


async def test_running_a_schedule_whose_job_the_queue_turns_away_answers_409(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.create_queue("reports", policy="short")
    await acv.schedule("nightly", "0 3 * * *", queue="reports")
    assert (await api.post("/api/schedules/nightly/run")).status_code == 201

    again = await api.post("/api/schedules/nightly/run")

    assert again.status_code == 409 and "policy" in again.json()["detail"]


async def _has_stats(api: httpx.AsyncClient) -> bool:
    return bool((await api.get("/api/stats")).json())


async def test_statistics_refuse_a_bad_window(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/stats", params={"since": -1})).status_code == 422
    assert (await api.get("/api/stats", params={"queue": "bad name!"})).status_code == 400


async def test_health_answers_200_when_healthy(api: httpx.AsyncClient, acv: AsyncConveyor) -> None:
    await acv.create_queue("mail")
    answer = await api.get("/api/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["healthy"] and body["database"]
    assert body["schema_version"] == body["expected_version"]


async def test_health_answers_503_with_the_problem_when_jobs_wait_for_no_worker(
    api: httpx.AsyncClient, acv: AsyncConveyor
) -> None:
    await acv.send("mail", {})
    answer = await api.get("/api/health")
    assert answer.status_code == 503
    assert answer.json()["problems"] == ["jobs are due in mail and no worker is alive"]


async def test_an_unreachable_database_answers_503_to_health_api_and_pages() -> None:
    unreachable = AsyncConveyor("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    transport = httpx.ASGITransport(app=create_app(unreachable))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        health = await client.get("/api/health")
        jobs = await client.get("/api/jobs")
        page = await client.get("/")
    assert health.status_code == 503
    assert health.json()["database"] is False
    assert jobs.status_code == 503
    assert "cannot be reached" in jobs.json()["detail"]
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "cannot be reached" in page.text


async def test_the_openapi_spec_lists_every_endpoint(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/openapi.json")).json()
    assert set(spec["paths"]) >= {
        "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/{action}",
        "/api/jobs/bulk/{action}", "/api/jobs/{job_id}/dependencies",
        "/api/jobs/{job_id}/dependents", "/api/flows", "/api/queues", "/api/queues/{name}/pause",
        "/api/queues/{name}/resume", "/api/schedules", "/api/schedules/{name}/pause",
        "/api/schedules/{name}/resume", "/api/schedules/{name}/run", "/api/workers",
        "/api/stats", "/api/health"}


async def test_the_api_explorer_loads_its_files_from_the_app_not_a_cdn(
    api: httpx.AsyncClient,
) -> None:
    page = await api.get("/api/docs")
    assert page.status_code == 200
    assert "/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert (await api.get("/static/swagger-ui-bundle.js")).status_code == 200


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("OPTIONS", "/api/jobs", "GET, POST"),
    ("PUT", "/api/jobs", "GET, POST"),
    ("PATCH", "/api/jobs/0190a1b2-0000-7000-8000-000000000000", "GET, DELETE"),
    ("GET", "/api/queues/a/b/pause", "POST"),
])
async def test_a_method_a_path_does_not_take_is_answered_with_every_method_it_does(
    api: httpx.AsyncClient, method: str, path: str, allowed: str,
) -> None:
    answer = await api.request(method, path)

    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed


async def test_a_pause_of_true_seconds_is_refused_not_taken_for_one(
    api: httpx.AsyncClient, acv: AsyncConveyor,
) -> None:
    await acv.create_queue("mail")

    answer = await api.post("/api/queues/mail/pause", json={"seconds": True})

    assert answer.status_code == 422 and "seconds" in answer.text
    queue = await acv.get_queue("mail")
    assert queue is not None and queue.paused_until is None
