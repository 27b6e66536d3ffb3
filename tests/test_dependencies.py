"""Dependencies between jobs: flows, failure policies, batches, wait_for."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor._db.plan import Operation
from conveyor._ops import dependencies
from conveyor._ops.claims import Outcome, completion
from conveyor.errors import (
    InvalidFlow,
    InvalidOption,
    InvalidQueueName,
    JobNotFound,
    NotStarted,
    PolicyViolation,
    UnknownOption,
    WaitTimeout,
)
from conveyor.testing import drain, inline
from conveyor.worker.completer import Completer
from conveyor.worker.maintenance import delete_finished, expire_waiting

PIPELINE = [
    {"ref": "fetch", "queue": "download", "data": {"url": "u"}},
    {"ref": "parse", "queue": "parse", "depends_on": ["fetch"]},
    {"ref": "embed", "queue": "embed", "depends_on": ["parse"], "priority": 5},
    {"ref": "index", "queue": "index", "depends_on": ["parse", "embed"]},
]


def _states(cv: Conveyor, ids: dict[str, str]) -> dict[str, JobState]:
    states = {}
    for ref, job_id in ids.items():
        job = cv.get_job(job_id)
        assert job is not None
        states[ref] = job.state
    return states


def _finish(cv: Conveyor, queue: str, output: Any = None) -> Job:
    [job] = cv.fetch(queue)
    assert cv.complete(job, output) == 1
    return job


def _job_count(cv: Conveyor) -> int:
    return cv.count_jobs(state=list(JobState))


# --- flows ---------------------------------------------------------------------------


def test_flow_returns_each_steps_id_and_only_steps_without_dependencies_are_due(
    cv: Conveyor,
) -> None:
    ids = cv.flow(PIPELINE)

    assert list(ids) == ["fetch", "parse", "embed", "index"]
    assert _states(cv, ids) == {"fetch": JobState.CREATED, "parse": JobState.WAITING,
                                "embed": JobState.WAITING, "index": JobState.WAITING}
    assert cv.fetch("parse") == [] and cv.fetch("index") == []


def test_a_step_runs_only_after_every_dependency_completed_and_reads_their_outputs(
    cv: Conveyor,
) -> None:
    ids = cv.flow(PIPELINE)
    _finish(cv, "download", {"html": "<p>"})
    [parse] = cv.fetch("parse")
    assert parse.dependency_outputs == {"fetch": {"html": "<p>"}}
    assert parse.dependency_counts == {"completed": 1, "failed": 0, "cancelled": 0}
    cv.complete(parse, {"text": "t"})
    assert cv.fetch("index") == []  # still waits for embed

    _finish(cv, "embed", [1, 2])

    [index] = cv.fetch("index")
    assert index.id == ids["index"]
    assert index.dependency_outputs == {"parse": {"text": "t"}, "embed": [1, 2]}
    stored = cv.get_job(ids["index"])
    assert stored is not None and stored.dependency_outputs == index.dependency_outputs


def test_a_worker_drains_a_flow_in_dependency_order(cv: Conveyor) -> None:
    order: list[str] = []
    for queue in ("download", "parse", "embed", "index"):
        def handler(job: Job, queue: str = queue) -> str:
            order.append(queue)
            return f"{queue} done"
        cv.work(queue, handler)
    ids = cv.flow(PIPELINE)

    result = drain(cv)

    assert result.completed == 4
    assert order.index("download") < order.index("parse") < order.index("embed") \
        < order.index("index")
    final = cv.get_job(ids["index"])
    assert final is not None and final.state is JobState.COMPLETED


def test_plain_jobs_have_no_dependency_outputs(cv: Conveyor) -> None:
    cv.send("q", {"n": 1})
    [job] = cv.fetch("q")
    assert job.dependency_outputs == {} and job.dependency_counts is None


def test_a_step_may_depend_on_existing_jobs_read_by_id(cv: Conveyor) -> None:
    first = cv.send("a", {})
    second = cv.send("a", {})
    assert first is not None and second is not None
    _finish(cv, "a", "one")  # the first is done before the flow is sent

    ids = cv.flow([{"ref": "join", "queue": "j", "depends_on": [first, uuid.UUID(second)]}])

    assert _states(cv, ids) == {"join": JobState.WAITING}
    _finish(cv, "a", "two")
    [join] = cv.fetch("j")
    assert join.dependency_outputs == {first: "one", second: "two"}


def test_a_step_on_completed_jobs_only_is_due_at_once(cv: Conveyor) -> None:
    done = cv.send("a", {})
    _finish(cv, "a", 1)

    ids = cv.flow([{"ref": "next", "queue": "b", "depends_on": [done]}])

    assert _states(cv, ids) == {"next": JobState.CREATED}


def test_steps_take_the_send_options(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "x", "queue": "q", "data": {"k": 1}, "priority": 7,
                    "retry_limit": 4, "singleton_key": "s", "group_key": "g"}])
    job = cv.get_job(ids["x"])
    assert job is not None
    assert (job.data, job.priority, job.retry_limit, job.singleton_key, job.group_key) == (
        {"k": 1}, 7, 4, "s", "g")


@pytest.mark.parametrize(("steps", "error", "words"), [
    ([], InvalidFlow, "at least one step"),
    ([{"queue": "q"}], InvalidFlow, "needs a ref"),
    ([{"ref": "a", "queue": "q"}, {"ref": "a", "queue": "q"}], InvalidFlow, "two steps"),
    ([{"ref": "a", "queue": "q", "depends_on": ["nope"]}], InvalidFlow, "neither a ref"),
    ([{"ref": "a", "queue": "q", "depends_on": ["a"]}], InvalidFlow, "itself"),
    ([{"ref": "a", "queue": "q", "depends_on": ["b"]},
      {"ref": "b", "queue": "q", "depends_on": ["c"]},
      {"ref": "c", "queue": "q", "depends_on": ["a"]}], InvalidFlow, "cycle through a, b, c"),
    ([{"ref": "a", "queue": "q", "on_dependency_failure": "explode"}], InvalidOption,
     "on_dependency_failure"),
    ([{"ref": "a", "queue": "q", "prority": 1}], UnknownOption, "did you mean priority"),
    ([{"ref": "a", "queue": "q", "debounce_seconds": 5, "singleton_key": "k"}], InvalidOption,
     "debounced"),
    ([{"ref": "a", "queue": "bad name!"}], InvalidQueueName, "step 'a': queue"),
    ("fetch", InvalidFlow, "list of steps"),
    ([{"ref": "a\x00", "queue": "q"}], InvalidOption, "step 0: ref"),
    ([{"ref": "\ud800", "queue": "q"}], InvalidOption, "lone surrogate"),
])
def test_a_bad_flow_raises_a_typed_error_and_sends_nothing(
    cv: Conveyor, steps: Any, error: type[Exception], words: str,
) -> None:
    cv.send("q", {})
    with pytest.raises(error) as raised:
        cv.flow(steps)
    assert words in str(raised.value)
    assert _job_count(cv) == 1


def test_a_flow_on_a_job_that_does_not_exist_raises_and_sends_nothing(cv: Conveyor) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(JobNotFound, match=missing):
        cv.flow([{"ref": "a", "queue": "q"}, {"ref": "b", "queue": "q", "depends_on": [missing]}])
    assert _job_count(cv) == 0


def test_a_step_the_queue_policy_turns_away_fails_the_whole_flow(cv: Conveyor) -> None:
    cv.create_queue("one-at-a-time", policy="exclusive")
    cv.send("one-at-a-time", {}, singleton_key="k")

    with pytest.raises(PolicyViolation, match="nothing was sent"):
        cv.flow([{"ref": "a", "queue": "q"},
                 {"ref": "b", "queue": "one-at-a-time", "singleton_key": "k",
                  "depends_on": ["a"]}])

    assert _job_count(cv) == 1


def test_a_flow_in_the_callers_transaction_rolls_back_with_it(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        cv.flow(PIPELINE, conn=conn)
        raise RuntimeError("business rollback")
    assert _job_count(cv) == 0

    with conn.transaction():
        ids = cv.flow(PIPELINE, conn=conn)
    assert _states(cv, ids)["parse"] is JobState.WAITING


def test_completing_a_step_in_the_callers_transaction_releases_what_waits_with_it(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    ids = cv.flow(PIPELINE)
    [fetch] = cv.fetch("download")

    with pytest.raises(RuntimeError), conn.transaction():
        assert cv.complete(fetch, {"pages": 3}, conn=conn) == 1
        raise RuntimeError("business rollback")
    assert _states(cv, ids)["fetch"] is JobState.ACTIVE
    assert _states(cv, ids)["parse"] is JobState.WAITING

    with conn.transaction():
        assert cv.complete(fetch, {"pages": 3}, conn=conn) == 1
    [parse] = cv.fetch("parse")
    assert parse.id == ids["parse"] and parse.dependency_outputs == {"fetch": {"pages": 3}}


# --- failure policies ------------------------------------------------------------------


def test_a_dependency_that_fails_for_good_cancels_its_dependents_transitively(
    cv: Conveyor,
) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a"}, {"ref": "b", "queue": "b", "depends_on": ["a"]},
                   {"ref": "c", "queue": "c", "depends_on": ["b"]}])
    [a] = cv.fetch("a")

    cv.fail(a, "broken", retry=False)

    assert _states(cv, ids) == {"a": JobState.FAILED, "b": JobState.CANCELLED,
                                "c": JobState.CANCELLED}
    b = cv.get_job(ids["b"])
    assert b is not None and b.error is not None
    assert b.error["type"] == "dependency" and b.error["dependency"] == ids["a"]
    assert ids["a"] in b.error["message"] and "failed" in b.error["message"]


def test_fail_fails_the_dependent_and_ignore_runs_it_without_the_output(cv: Conveyor) -> None:
    ids = cv.flow([
        {"ref": "a", "queue": "a"},
        {"ref": "ok", "queue": "a"},
        {"ref": "strict", "queue": "b", "depends_on": ["a"], "on_dependency_failure": "fail"},
        {"ref": "lenient", "queue": "c", "depends_on": ["a", "ok"],
         "on_dependency_failure": "ignore"},
        {"ref": "mixed", "queue": "d",
         "depends_on": [{"ref": "a", "on_failure": "ignore"}, "ok"]},
    ])
    for job in cv.fetch("a", batch_size=2):
        if job.id == ids["a"]:
            cv.fail(job, "x", retry=False)
        else:
            cv.complete(job, "fine")

    states = _states(cv, ids)
    assert states["strict"] is JobState.FAILED
    assert states["lenient"] is JobState.CREATED and states["mixed"] is JobState.CREATED
    [lenient] = cv.fetch("c")
    assert lenient.dependency_outputs == {"ok": "fine"}
    assert lenient.dependency_counts == {"completed": 1, "failed": 1, "cancelled": 0}


def test_fail_wins_over_cancel_and_the_ending_follows_each_edge(cv: Conveyor) -> None:
    ids = cv.flow([
        {"ref": "a", "queue": "a"},
        {"ref": "b", "queue": "b", "depends_on": ["a"], "on_dependency_failure": "fail"},
        {"ref": "c", "queue": "b", "depends_on": ["a"]},
        {"ref": "d", "queue": "b",
         "depends_on": [{"ref": "b", "on_failure": "fail"}, {"ref": "c", "on_failure": "cancel"}]},
        {"ref": "e", "queue": "e", "depends_on": ["d"], "on_dependency_failure": "ignore"},
    ])
    cv.cancel(ids["a"])

    assert _states(cv, ids) == {"a": JobState.CANCELLED, "b": JobState.FAILED,
                                "c": JobState.CANCELLED, "d": JobState.FAILED,
                                "e": JobState.CREATED}


def test_a_retrying_dependency_does_not_release_its_dependents(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a", "retry_limit": 1},
                   {"ref": "b", "queue": "b", "depends_on": ["a"]}])
    [a] = cv.fetch("a")
    cv.fail(a, "flaky")

    assert _states(cv, ids) == {"a": JobState.RETRY, "b": JobState.WAITING}
    _finish(cv, "a", "second time")
    assert _states(cv, ids)["b"] is JobState.CREATED


def test_cancelling_a_waiting_step_cancels_what_depends_on_it(cv: Conveyor) -> None:
    ids = cv.flow(PIPELINE)

    assert cv.cancel(ids["parse"]) == 1

    assert _states(cv, ids) == {"fetch": JobState.CREATED, "parse": JobState.CANCELLED,
                                "embed": JobState.CANCELLED, "index": JobState.CANCELLED}
    _finish(cv, "download")
    assert cv.fetch("parse") == []


def test_deleting_an_unfinished_dependency_settles_its_dependents_as_a_cancel(
    cv: Conveyor,
) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a"},
                   {"ref": "b", "queue": "b", "depends_on": ["a"]},
                   {"ref": "c", "queue": "c", "depends_on": ["a"],
                    "on_dependency_failure": "ignore"}])

    assert cv.delete(ids["a"]) == 1

    assert cv.get_job(ids["a"]) is None
    b, c = cv.get_job(ids["b"]), cv.get_job(ids["c"])
    assert b is not None and b.state is JobState.CANCELLED
    assert c is not None and c.state is JobState.CREATED
    assert cv.get_dependencies(ids["b"]) == []


def test_deleting_a_dependency_with_its_waiting_dependent_deletes_both(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a"}, {"ref": "b", "queue": "b", "depends_on": ["a"]},
                   {"ref": "c", "queue": "c", "depends_on": ["b"]}])

    assert cv.delete([ids["a"], ids["b"]]) == 2

    c = cv.get_job(ids["c"])
    assert c is not None and c.state is JobState.CANCELLED


def test_a_resumed_step_waits_again_for_what_it_still_depends_on(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a"}, {"ref": "b", "queue": "b", "depends_on": ["a"]}])
    cv.cancel(ids["b"])

    assert cv.resume(ids["b"]) == 1

    assert _states(cv, ids)["b"] is JobState.WAITING
    _finish(cv, "a")
    assert _states(cv, ids)["b"] is JobState.CREATED


# --- run-time children, policies, retention ------------------------------------------


def test_steps_a_handler_adds_extend_its_job_for_what_waits_on_it(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "split", "queue": "split"},
                   {"ref": "summary", "queue": "summary", "depends_on": ["split"]}])
    pages: dict[str, str] = {}

    @cv.task("split")
    def split(job: Job) -> int:
        pages.update(cv.flow([{"ref": f"page-{n}", "queue": "page", "data": n,
                               "depends_on": [job.id]} for n in range(3)]))
        return 3

    cv.work("page", lambda job: job.data * 10)
    drain(cv, "split")
    summary = cv.get_job(ids["summary"])
    assert summary is not None and summary.state is JobState.WAITING
    assert {job.id for job in cv.get_dependencies(ids["summary"])} == {ids["split"],
                                                                       *pages.values()}
    drain(cv, "page")

    [job] = cv.fetch("summary")
    assert job.dependency_outputs == {"split": 3, **{pages[f"page-{n}"]: n * 10
                                                     for n in range(3)}}


def test_a_step_added_on_two_running_jobs_takes_the_strictest_policy_of_their_waiters(
    cv: Conveyor,
) -> None:
    first, second = cv.send("p", {}), cv.send("p", {})
    cv.fetch("p", batch_size=2)
    waiter = cv.flow([{"ref": "w", "queue": "w", "depends_on": [
        {"ref": first, "on_failure": "ignore"}, {"ref": second, "on_failure": "fail"}]}])["w"]

    step = cv.flow([{"ref": "s", "queue": "s", "depends_on": [first, second]}])["s"]

    links = cv.run_operation(dependencies.links(cv.context, waiter))
    assert {(link.job.id, link.on_failure) for link in links} == {
        (first, "ignore"), (second, "fail"), (step, "fail")}


def test_a_child_added_while_its_parent_finishes_is_settled_by_the_finish(
    cv: Conveyor, database_url: str,
) -> None:
    parent = cv.send("p", {})
    [running] = cv.fetch("p")
    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            ids = cv.flow([{"ref": "child", "queue": "c", "depends_on": [parent]}], conn=conn)
            finisher = threading.Thread(target=cv.complete, args=(running, "out"))
            finisher.start()
            time.sleep(0.2)  # the completion waits for the flow's lock on the parent
            assert finisher.is_alive()
        finisher.join(timeout=30)
    assert not finisher.is_alive()
    [child] = cv.fetch("c")
    assert child.id == ids["child"] and child.dependency_outputs == {parent: "out"}


def test_a_released_step_whose_key_is_taken_is_held_until_the_key_frees(cv: Conveyor) -> None:
    cv.create_queue("exclusive", policy="exclusive")
    ids = cv.flow([{"ref": "a", "queue": "a"},
                   {"ref": "b", "queue": "exclusive", "singleton_key": "k",
                    "depends_on": ["a"]}])
    # A waiting step holds no key: a send takes it meanwhile.
    blocker = cv.send("exclusive", {}, singleton_key="k")
    assert blocker is not None
    _finish(cv, "a")
    assert cv.run_operation(Operation(dependencies.release_held(cv.context))) == 0
    assert _states(cv, ids)["b"] is JobState.WAITING

    [held_back] = cv.fetch("exclusive")
    assert held_back.id == blocker
    cv.complete(held_back)

    assert cv.run_operation(Operation(dependencies.release_held(cv.context))) == 1
    assert _states(cv, ids)["b"] is JobState.CREATED


def test_retention_keeps_a_finished_job_while_its_dependents_wait(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    conn.autocommit = True
    ids = cv.flow([{"ref": "a", "queue": "a", "delete_after": 1},
                   {"ref": "b", "queue": "a", "delete_after": 1},
                   {"ref": "c", "queue": "c", "depends_on": ["a", "b"]}])
    [a] = [job for job in cv.fetch("a", batch_size=2) if job.id == ids["a"]]
    cv.complete(a, "kept")
    conn.execute(f'UPDATE "{cv.schema}".job SET completed_at = now() - interval \'1 hour\'')

    assert cv.run_operation(Operation(delete_finished())) == 0

    cv.complete(ids["b"])
    conn.execute(f'UPDATE "{cv.schema}".job SET completed_at = now() - interval \'1 hour\'')
    [c] = cv.fetch("c")
    assert c.dependency_outputs["a"] == "kept"
    cv.complete(c)
    conn.execute(f'UPDATE "{cv.schema}".job SET completed_at = now() - interval \'1 hour\'')
    assert cv.run_operation(Operation(delete_finished())) == 2  # c keeps 7 days
    assert cv.get_job(ids["a"]) is None and cv.get_job(ids["c"]) is not None
    assert conn.execute(f'SELECT count(*) FROM "{cv.schema}".job_dependency').fetchone() == (0,)


def test_a_waiting_step_does_not_expire_and_its_retention_starts_at_release(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    conn.autocommit = True
    ids = cv.flow([{"ref": "a", "queue": "a"},
                   {"ref": "b", "queue": "b", "depends_on": ["a"], "retention": 60}])
    conn.execute(f'UPDATE "{cv.schema}".job SET keep_until = now() - interval \'1 hour\', '
                 "start_after = now() - interval '2 hours' WHERE id = %s", (ids["b"],))

    assert cv.run_operation(Operation(expire_waiting(cv.context))) == 0
    _finish(cv, "a")

    b = cv.get_job(ids["b"])
    assert b is not None and b.state is JobState.CREATED
    assert b.keep_until - b.start_after == (b.keep_until - b.start_after)  # kept interval
    assert b.keep_until > b.start_after and b.start_after >= b.created_at


def test_waiting_steps_count_in_no_queue_lag_or_backlog(cv: Conveyor) -> None:
    cv.flow([{"ref": "a", "queue": "a"}] + [
        {"ref": f"s{n}", "queue": "steps", "depends_on": ["a"]} for n in range(5)])
    counts = cv.queue_counts("steps")
    assert counts[JobState.WAITING] == 5 and counts[JobState.CREATED] == 0
    [summary] = [s for s in cv.queue_summaries() if s.name == "steps"]
    assert summary.lag is None


# --- batches ---------------------------------------------------------------------------


def test_a_batch_callback_runs_once_every_item_finished_with_their_counts(cv: Conveyor) -> None:
    sent = cv.batch([{"data": n} for n in range(4)], queue="ocr",
                    on_complete={"queue": "ocr-done", "data": {"document": "d1"}})
    assert len(sent.ids) == 4 and sent.callback is not None
    jobs = cv.fetch("ocr", batch_size=4)
    for job in jobs[:2]:
        cv.complete(job, job.data * 2)
    cv.fail(jobs[2], "unreadable", retry=False)
    assert cv.fetch("ocr-done") == []
    cv.cancel(jobs[3])

    [callback] = cv.fetch("ocr-done")
    assert callback.id == sent.callback and callback.data == {"document": "d1"}
    assert callback.dependency_counts == {"completed": 2, "failed": 1, "cancelled": 1}
    assert set(callback.dependency_outputs.values()) == {jobs[0].data * 2, jobs[1].data * 2}


def test_a_batch_without_a_callback_just_sends_its_items(cv: Conveyor) -> None:
    sent = cv.batch([{"data": 1}, {"data": 2, "priority": 3}], queue="q")
    assert sent.callback is None and len(sent.ids) == 2
    assert {job.priority for job in cv.fetch("q", batch_size=2)} == {0, 3}


def test_inline_runs_a_flow_to_the_end(cv: Conveyor) -> None:
    for queue in ("download", "parse", "embed", "index"):
        cv.work(queue, lambda job, queue=queue: queue)
    with inline(cv):
        ids = cv.flow(PIPELINE)
    assert set(_states(cv, ids).values()) == {JobState.COMPLETED}


# --- reading the edges -------------------------------------------------------------------


def test_dependencies_and_dependents_list_the_jobs_at_either_end(cv: Conveyor) -> None:
    ids = cv.flow(PIPELINE)

    assert [job.id for job in cv.get_dependencies(ids["index"])] == [ids["parse"], ids["embed"]]
    assert [job.id for job in cv.get_dependents(ids["parse"])] == [ids["embed"], ids["index"]]
    links = cv.run_operation(dependencies.links(cv.context, ids["index"]))
    assert [(link.ref, link.on_failure, link.settled) for link in links] == [
        ("parse", "cancel", False), ("embed", "cancel", False)]
    first = cv.run_operation(dependencies.links(cv.context, ids["index"], limit=1))
    assert [link.ref for link in first] == ["parse"]


# --- wait_for -----------------------------------------------------------------------------


def test_wait_for_returns_the_job_once_it_finished(cv: Conveyor) -> None:
    job_id = cv.send("q", {})
    assert job_id is not None
    [job] = cv.fetch("q")
    timer = threading.Timer(0.3, cv.complete, args=(job, {"done": True}))
    timer.start()

    finished = cv.wait_for(job_id, timeout=30)

    timer.join()
    assert finished.state is JobState.COMPLETED and finished.output == {"done": True}
    assert cv.wait_for(job_id, timeout=1).state is JobState.COMPLETED  # already finished


def test_wait_for_raises_on_timeout_and_on_an_unknown_job(cv: Conveyor) -> None:
    job_id = cv.send("q", {})
    with pytest.raises(WaitTimeout, match="created"):
        cv.wait_for(job_id, timeout=0.3)
    with pytest.raises(JobNotFound):
        cv.wait_for(uuid.uuid4(), timeout=1)
    with pytest.raises(InvalidOption):
        cv.wait_for(job_id, timeout=-1)


def test_wait_for_is_woken_by_a_notification_not_a_poll(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    conn.autocommit = True
    job_id = cv.send("q", {})
    [job] = cv.fetch("q")
    waiter_seen = threading.Event()

    def finish_when_registered() -> None:
        for _ in range(200):
            row = conn.execute(f'SELECT count(*) FROM "{cv.schema}".job_waiter').fetchone()
            if row and row[0]:
                waiter_seen.set()
                break
            time.sleep(0.05)
        cv.complete(job)

    finisher = threading.Thread(target=finish_when_registered)
    finisher.start()
    started = time.monotonic()
    cv.wait_for(job_id, timeout=60)
    finisher.join()
    assert waiter_seen.is_set()
    # The recheck without a notification comes after 5 s; a notification well before.
    assert time.monotonic() - started < 4.5
    assert conn.execute(f'SELECT count(*) FROM "{cv.schema}".job_waiter').fetchone() == (0,)


def test_wait_for_polls_behind_a_transaction_pooler(database_url: str, schema: str) -> None:
    with Conveyor(database_url, schema=schema, pgbouncer=True) as pooled:
        job_id = pooled.send("q", {})
        [job] = pooled.fetch("q")
        timer = threading.Timer(0.2, pooled.complete, args=(job,))
        timer.start()
        assert pooled.wait_for(job_id, timeout=30).state is JobState.COMPLETED
        timer.join()
        assert pooled._listener is None


def test_wait_for_needs_a_started_client(database_url: str, schema: str) -> None:
    with pytest.raises(NotStarted):
        Conveyor(database_url, schema=schema).wait_for(uuid.uuid4())


async def test_the_async_client_flows_and_waits(acv: AsyncConveyor) -> None:
    ids = await acv.flow([{"ref": "a", "queue": "a"},
                          {"ref": "b", "queue": "b", "depends_on": ["a"]}])
    [a] = await acv.fetch("a")

    async def finish() -> None:
        await acv.complete(a, "A")
        # The waiter's registration holds a share lock on b for a moment, and a
        # claim skips locked jobs: a worker takes b at its next look, so does this.
        claimed: list[Job] = []
        for _ in range(200):
            claimed = await acv.fetch("b")
            if claimed:
                break
            await asyncio.sleep(0.05)
        [b] = claimed
        assert b.dependency_outputs == {"a": "A"}
        await acv.complete(b, "B")

    task = asyncio.create_task(finish())
    done = await acv.wait_for(ids["b"], timeout=30)
    await task
    assert done.output == "B"
    assert [job.id for job in await acv.get_dependents(ids["a"])] == [ids["b"]]
    assert [job.id for job in await acv.get_dependencies(ids["b"])] == [ids["a"]]
    batch = await acv.batch([{"data": 1}], queue="q", on_complete={"queue": "done"})
    assert batch.callback is not None


# --- a worker's completions -----------------------------------------------------------


async def _write_outcomes(acv: AsyncConveyor, outcomes: list[Outcome]) -> None:
    completer = Completer(acv.run_operation, acv.context)
    writing = asyncio.create_task(completer.run())
    await completer.add(outcomes)
    completer.close()
    await asyncio.wait_for(writing, 60)


async def test_a_workers_completions_settle_jobs_marked_before_and_while_they_ran(
    acv: AsyncConveyor,
) -> None:
    plain = await acv.send("p", {})
    ids = await acv.flow([{"ref": "parent", "queue": "p"},
                          {"ref": "child", "queue": "c", "depends_on": ["parent"]}])
    late = await acv.send("p", {})
    jobs = {job.id: job for job in await acv.fetch("p", batch_size=3)}
    assert {job_id for job_id, job in jobs.items() if job.has_dependents} == {ids["parent"]}
    # Marked while it runs: the completer's first statement skips it.
    waiter = (await acv.flow([{"ref": "w", "queue": "w", "depends_on": [late]}]))["w"]

    await _write_outcomes(acv, [
        completion(id=job.id, attempt=job.attempt, output='"out"', progress=None,
                   waited=job.has_dependents)
        for job in jobs.values()])

    states = {job_id: (await acv.get_job(job_id)).state  # type: ignore[union-attr]
              for job_id in (plain, ids["parent"], late, ids["child"], waiter)}
    assert states == {plain: JobState.COMPLETED, ids["parent"]: JobState.COMPLETED,
                      late: JobState.COMPLETED, ids["child"]: JobState.CREATED,
                      waiter: JobState.CREATED}
    [child] = await acv.fetch("c")
    assert child.dependency_outputs == {"parent": "out"}


async def test_a_workers_final_failure_of_a_marked_job_ends_its_dependents(
    acv: AsyncConveyor,
) -> None:
    ids = await acv.flow([{"ref": "parent", "queue": "p", "retry_limit": 0},
                          {"ref": "child", "queue": "c", "depends_on": ["parent"]}])
    plain = await acv.send("p", {}, retry_limit=0)
    jobs = await acv.fetch("p", batch_size=2)

    await _write_outcomes(acv, [
        Outcome(id=job.id, attempt=job.attempt, error='{"message": "boom"}',
                waited=job.has_dependents) for job in jobs])

    for job_id, state in ((ids["parent"], JobState.FAILED), (plain, JobState.FAILED),
                          (ids["child"], JobState.CANCELLED)):
        job = await acv.get_job(job_id)
        assert job is not None and job.state is state


async def test_wait_for_a_job_a_worker_completes_is_woken(
    acv: AsyncConveyor, database_url: str,
) -> None:
    job_id = await acv.send("q", {})
    [job] = await acv.fetch("q")
    waiting = asyncio.create_task(acv.wait_for(job_id, timeout=60))
    for _ in range(400):  # until its waiter registered, and marked the job
        if waiting.done() or await _marked(database_url, acv.schema, job_id):
            break
        await asyncio.sleep(0.05)
    started = time.monotonic()

    await _write_outcomes(acv, [completion(id=job.id, attempt=job.attempt, output=None,
                                           progress=None)])

    finished = await asyncio.wait_for(waiting, 60)
    assert finished.state is JobState.COMPLETED
    # A recheck without a notification comes after 5 s; the notification well before.
    assert time.monotonic() - started < 4.5


async def _marked(database_url: str, schema: str, job_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(
            f'SELECT has_dependents FROM "{schema}".job WHERE id = %s', (job_id,))).fetchone()
    return bool(row and row[0])
