"""conveyor.testing: drain, assert_enqueued, inline mode, and the pytest fixtures."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from conveyor import (
    AsyncConveyor,
    Conveyor,
    Job,
    JobState,
    NonRetryableError,
    PauseQueue,
    RetryAfter,
)
from conveyor.errors import ConveyorError, InvalidArgument, QueueNotFound, UnknownOption
from conveyor.testing import (
    aassert_enqueued,
    aassert_not_enqueued,
    adrain,
    assert_enqueued,
    assert_not_enqueued,
    drain,
    inline,
)

pytest_plugins = ["pytester"]


def double(job: Job) -> dict[str, int]:
    """A module-level handler, so that a process pool can run it."""
    return {"doubled": job.data["n"] * 2}


def always_fails(job: Job) -> None:
    raise ValueError(f"cannot handle {job.data}")


def stored(cv: Conveyor, job_id: str | None) -> Job:
    assert job_id is not None
    job = cv.get_job(job_id)
    assert job is not None
    return job


def state_of(cv: Conveyor, job_id: str | None) -> JobState:
    return stored(cv, job_id).state


# --- drain ---------------------------------------------------------------------------


def test_drain_completes_due_jobs_and_stores_their_output(cv: Conveyor) -> None:
    cv.work("double", double)
    ids = [cv.send("double", {"n": n}) for n in (1, 2, 3)]

    result = drain(cv)

    assert (result.completed, result.retried, result.failed) == (3, 0, 0)
    assert [job.id for job in result.jobs] == ids
    assert [job.output for job in result.jobs] == [{"doubled": 2}, {"doubled": 4}, {"doubled": 6}]
    assert all(state_of(cv, job_id) is JobState.COMPLETED for job_id in ids)


def test_drain_runs_sync_handlers_in_a_thread_and_async_handlers_on_its_loop(
    cv: Conveyor,
) -> None:
    threads: list[str] = []

    def in_thread(job: Job) -> str:
        threads.append(threading.current_thread().name)
        return "thread"

    async def on_loop(job: Job) -> str:
        return "loop"

    cv.work("sync", in_thread)
    cv.work("async", on_loop)
    sync_id = cv.send("sync", {})
    async_id = cv.send("async", {})

    assert drain(cv).completed == 2

    assert threads and threads[0].startswith("conveyor")
    assert [stored(cv, i).output for i in (sync_id, async_id)] == ["thread", "loop"]


async def test_adrain_runs_the_jobs_of_an_async_client(acv: AsyncConveyor) -> None:
    async def embed(job: Job) -> dict[str, Any]:
        return {"chunk": job.data["chunk"], "vector": [0.5]}

    acv.work("embed", embed)
    job_id = await acv.send("embed", {"chunk": 7})

    result = await adrain(acv, "embed")

    assert result.completed == 1
    assert job_id is not None
    job = await acv.get_job(job_id)
    assert job is not None and job.output == {"chunk": 7, "vector": [0.5]}


def test_drain_retries_a_failing_job_until_it_fails_for_good(cv: Conveyor) -> None:
    cv.work("flaky", always_fails)
    job_id = cv.send("flaky", {"n": 1}, retry_limit=2, dead_letter="flaky-dead")

    result = drain(cv, "flaky")

    assert (result.completed, result.retried, result.failed) == (0, 2, 1)
    [job] = result.jobs
    assert job.id == job_id and job.state is JobState.FAILED
    assert [e["message"] for e in job.errors] == ["cannot handle {'n': 1}"] * 3
    assert job.error is not None and job.error["type"].endswith("ValueError")
    assert_enqueued(cv, "flaky-dead", {"n": 1}, count=1)


def test_drain_runs_a_retry_again_until_the_job_completes(cv: Conveyor) -> None:
    calls: list[int] = []

    def second_time_lucky(job: Job) -> str:
        calls.append(job.attempt)
        if len(calls) == 1:
            raise ConnectionError("flaky network")
        return "done"

    cv.work("q", second_time_lucky)
    cv.send("q", {})

    result = drain(cv)

    assert calls == [1, 2]
    assert (result.completed, result.retried, result.failed) == (1, 1, 0)
    assert result.jobs[0].state is JobState.COMPLETED


def test_drain_fails_at_once_on_non_retryable_error(cv: Conveyor) -> None:
    def reject(job: Job) -> None:
        raise NonRetryableError("bad input")

    cv.work("q", reject)
    cv.send("q", {}, retry_limit=5)

    result = drain(cv)

    assert (result.retried, result.failed) == (0, 1)


def test_drain_leaves_jobs_that_are_not_due_yet(cv: Conveyor) -> None:
    cv.work("double", double)
    later = cv.send("double", {"n": 1}, start_after=3600)
    now = cv.send("double", {"n": 2})

    result = drain(cv)

    assert [job.id for job in result.jobs] == [now]
    assert state_of(cv, later) is JobState.CREATED


def test_drain_leaves_a_retry_with_a_delay_waiting(cv: Conveyor) -> None:
    cv.work("q", always_fails)
    job_id = cv.send("q", {}, retry_limit=3, retry_delay=60)

    result = drain(cv)

    assert (result.completed, result.retried, result.failed) == (0, 1, 0)
    assert state_of(cv, job_id) is JobState.RETRY


def test_drain_follows_retry_after_from_the_handler(cv: Conveyor) -> None:
    def flood_wait(job: Job) -> None:
        raise RetryAfter(300)

    cv.work("q", flood_wait)
    job_id = cv.send("q", {})

    assert drain(cv).retried == 1
    job = stored(cv, job_id)
    assert job.state is JobState.RETRY
    assert job.start_after > job.created_at


def test_drain_with_include_delayed_runs_delayed_jobs_and_all_their_retries(
    cv: Conveyor,
) -> None:
    cv.work("double", double)
    cv.work("flaky", always_fails)
    later = cv.send("double", {"n": 5}, start_after=3600)
    flaky = cv.send("flaky", {}, retry_limit=2, retry_delay=60, retry_backoff=True)

    result = drain(cv, include_delayed=True)

    assert (result.completed, result.retried, result.failed) == (1, 2, 1)
    assert state_of(cv, later) is JobState.COMPLETED
    assert state_of(cv, flaky) is JobState.FAILED


def test_drain_passes_lists_of_jobs_to_batch_handlers(cv: Conveyor) -> None:
    batches: list[list[int]] = []

    def total(jobs: list[Job]) -> int:
        batches.append([job.data for job in jobs])
        return sum(job.data for job in jobs)

    cv.work("sum", total, batch_size=3)
    cv.insert("sum", [{"data": n} for n in range(7)])

    result = drain(cv)

    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert sorted(n for batch in batches for n in batch) == list(range(7))
    assert result.completed == 7
    outputs = {job.data: job.output for job in result.jobs}
    assert all(outputs[n] == sum(batch) for batch in batches for n in batch)


def test_drain_runs_process_handlers(cv: Conveyor) -> None:
    cv.work("cpu", double, executor="process")
    job_id = cv.send("cpu", {"n": 21})

    assert drain(cv).completed == 1
    assert stored(cv, job_id).output == {"doubled": 42}


def test_drain_runs_only_the_queue_it_is_given(cv: Conveyor) -> None:
    cv.work("a", double)
    cv.work("b", double)
    cv.send("a", {"n": 1})
    untouched = cv.send("b", {"n": 1})

    assert drain(cv, "a").completed == 1
    assert state_of(cv, untouched) is JobState.CREATED


def test_drain_runs_the_jobs_handlers_send_in_the_same_drain(cv: Conveyor) -> None:
    def order(job: Job) -> None:
        cv.send("invoice", {"order": job.data["order"]})

    cv.work("order", order)
    cv.work("invoice", lambda job: f"invoice for {job.data['order']}")
    cv.send("order", {"order": 7})

    result = drain(cv)

    assert [(job.queue, job.output) for job in result.jobs] == [
        ("order", None), ("invoice", "invoice for 7")]


def test_drain_stops_after_max_jobs_attempts(cv: Conveyor) -> None:
    def forever(job: Job) -> None:
        cv.send("loop", {"n": job.data["n"] + 1})

    cv.work("loop", forever)
    cv.send("loop", {"n": 0})

    result = drain(cv, max_jobs=5)

    assert result.completed == 5
    assert_enqueued(cv, "loop", {"n": 5}, count=1)


def test_drain_hands_a_paused_queues_job_back_and_stops(cv: Conveyor) -> None:
    def rate_limited(job: Job) -> None:
        raise PauseQueue(60)

    cv.work("api", rate_limited)
    job_id = cv.send("api", {})

    result = drain(cv)

    assert (result.completed, result.retried, result.failed) == (0, 0, 0)
    assert state_of(cv, job_id) is JobState.CREATED
    queue = cv.get_queue("api")
    assert queue is not None and queue.paused_until is not None


def test_drain_calls_the_clients_hooks(cv: Conveyor) -> None:
    events: list[str] = []
    cv.on("job_completed", lambda event: events.append(f"completed {event.output}"))
    cv.on("job_retried", lambda event: events.append("retried"))
    calls = iter([ValueError("once"), None])

    def handler(job: Job) -> str:
        error = next(calls)
        if error is not None:
            raise error
        return "ok"

    cv.work("q", handler)
    cv.send("q", {})

    drain(cv)

    assert events == ["retried", "completed ok"]


def test_drain_of_a_queue_without_a_handler_raises_queue_not_found(cv: Conveyor) -> None:
    cv.work("a", double)
    job_id = cv.send("b", {})

    with pytest.raises(QueueNotFound, match="no handler registered for b"):
        drain(cv, "b")
    assert state_of(cv, job_id) is JobState.CREATED


def test_drain_rejects_bad_arguments_before_claiming_anything(cv: Conveyor) -> None:
    cv.work("a", double)
    job_id = cv.send("a", {"n": 1})

    with pytest.raises(InvalidArgument, match="max_jobs"):
        drain(cv, max_jobs=0)
    with pytest.raises(InvalidArgument, match="adrain"):
        drain(AsyncConveyor(cv.settings.dsn, schema=cv.schema))  # type: ignore[arg-type]
    assert state_of(cv, job_id) is JobState.CREATED


async def test_drain_inside_an_event_loop_points_to_adrain(cv: Conveyor) -> None:
    cv.work("a", double)

    with pytest.raises(ConveyorError, match="adrain"):
        drain(cv)


# --- assert_enqueued -----------------------------------------------------------------


def test_assert_enqueued_matches_data_by_containment_and_returns_the_jobs(cv: Conveyor) -> None:
    job_id = cv.send("mail", {"to": "ada@example.com", "lang": "en"}, priority=5)

    [job] = assert_enqueued(cv, "mail", {"to": "ada@example.com"})

    assert job.id == job_id
    assert_enqueued(cv, "mail")
    assert_enqueued(cv, "mail", {"to": "ada@example.com"}, priority=5, retry_delay=0)


def test_assert_enqueued_compares_scalar_data_for_equality(cv: Conveyor) -> None:
    cv.send("q", 1)

    assert_enqueued(cv, "q", 1)
    with pytest.raises(AssertionError):
        assert_enqueued(cv, "q", True)


def test_assert_enqueued_counts_matching_jobs(cv: Conveyor) -> None:
    cv.insert("mail", [{"data": {"to": "ada"}}, {"data": {"to": "ada"}}, {"data": {"to": "bob"}}])

    assert len(assert_enqueued(cv, "mail", {"to": "ada"}, count=2)) == 2
    with pytest.raises(AssertionError, match=r"expected 3 waiting job\(s\) in 'mail'.*found 2"):
        assert_enqueued(cv, "mail", {"to": "ada"}, count=3)


def test_assert_enqueued_failure_lists_what_is_waiting(cv: Conveyor) -> None:
    cv.send("mail", {"to": "bob@example.com"}, priority=1)

    with pytest.raises(AssertionError, match=(
        r"(?s)no waiting job in 'mail' with data containing \{'to': 'ada@example.com'\}, "
        r"priority=1; waiting in 'mail' \(1\):\n  - created .* "
        r"data=\{'to': 'bob@example.com'\} priority=1"
    )):
        assert_enqueued(cv, "mail", {"to": "ada@example.com"}, priority=1)


def test_assert_enqueued_says_when_nothing_waits(cv: Conveyor) -> None:
    cv.work("mail", double)
    cv.send("mail", {"n": 1})
    drain(cv)

    with pytest.raises(AssertionError, match="nothing is waiting in 'mail'"):
        assert_enqueued(cv, "mail")


def test_assert_enqueued_rejects_fields_a_job_does_not_have(cv: Conveyor) -> None:
    with pytest.raises(UnknownOption, match="colour"):
        assert_enqueued(cv, "mail", colour="red")


def test_assert_not_enqueued_passes_when_nothing_matches_and_lists_matches_otherwise(
    cv: Conveyor,
) -> None:
    cv.send("mail", {"to": "bob"})

    assert_not_enqueued(cv, "mail", {"to": "ada"})
    assert_not_enqueued(cv, "other")
    with pytest.raises(AssertionError, match=(
        r"expected no waiting job in 'mail' with data containing \{'to': 'bob'\}, "
        r"found 1:\n  - created")):
        assert_not_enqueued(cv, "mail", {"to": "bob"})


async def test_async_assertions_check_an_async_clients_queue(acv: AsyncConveyor) -> None:
    await acv.send("embed", {"chunk": 7}, group_key="tenant-1")

    [job] = await aassert_enqueued(acv, "embed", {"chunk": 7}, group_key="tenant-1")
    assert job.data == {"chunk": 7}
    await aassert_not_enqueued(acv, "embed", {"chunk": 8})
    with pytest.raises(AssertionError, match="waiting in 'embed'"):
        await aassert_enqueued(acv, "embed", {"chunk": 8})


# --- inline mode ---------------------------------------------------------------------


def test_inline_runs_the_handler_before_send_returns(cv: Conveyor) -> None:
    cv.work("double", double)

    with inline(cv) as runs:
        job_id = cv.send("double", {"n": 4})
        assert stored(cv, job_id).output == {"doubled": 8}
        cv.insert("double", [{"data": {"n": 1}}, {"data": {"n": 2}}])

    assert [run.completed for run in runs] == [1, 2]


def test_inline_runs_the_jobs_a_handler_sends(cv: Conveyor) -> None:
    cv.work("order", lambda job: cv.send("invoice", job.data))
    cv.work("invoice", lambda job: "invoiced")

    with inline(cv) as runs:
        cv.send("order", {"order": 1})

    assert len(runs) == 1 and runs[0].completed == 2
    assert [job.queue for job in runs[0].jobs] == ["order", "invoice"]


def test_inline_does_not_run_sends_in_the_callers_transaction(
    cv: Conveyor, conn: psycopg.Connection,
) -> None:
    cv.work("double", double)

    with inline(cv) as runs, conn.transaction():
        job_id = cv.send("double", {"n": 1}, conn=conn)

    assert runs == []
    assert state_of(cv, job_id) is JobState.CREATED


def test_send_is_itself_again_after_the_inline_block(cv: Conveyor) -> None:
    cv.work("double", double)
    with inline(cv):
        pass

    job_id = cv.send("double", {"n": 1})

    assert state_of(cv, job_id) is JobState.CREATED
    assert "send" not in vars(cv)


async def test_inline_runs_async_handlers_of_an_async_client(acv: AsyncConveyor) -> None:
    outputs: list[Any] = []

    async def embed(job: Job) -> int:
        return int(job.data["chunk"]) + 1

    acv.work("embed", embed)
    acv.on("job_completed", lambda event: outputs.append(event.output))

    with inline(acv) as runs:
        await acv.send("embed", {"chunk": 1})

    assert outputs == [2]
    assert runs[0].jobs[0].output == 2


def test_inline_rejects_what_is_not_a_client() -> None:
    with pytest.raises(InvalidArgument, match="Conveyor or an AsyncConveyor"), inline("nope"):  # type: ignore[arg-type]
        pass


# --- the pytest plugin ---------------------------------------------------------------

PLUGIN_TESTS = '''
import psycopg
import pytest
from conveyor import Job
from conveyor.testing import adrain, drain

SEEN = []

def test_client_works_on_a_schema_of_its_own(conveyor_client, conveyor_schema):
    assert conveyor_client.schema == conveyor_schema
    SEEN.append(conveyor_schema)
    conveyor_client.work("q", lambda job: job.data * 2)
    job_id = conveyor_client.send("q", 21)
    assert drain(conveyor_client).completed == 1
    assert conveyor_client.get_job(job_id).output == 42

@pytest.mark.asyncio
async def test_async_client_works(conveyor_async_client):
    async def handler(job: Job) -> str:
        return "ok"
    conveyor_async_client.work("q", handler)
    await conveyor_async_client.send("q", {})
    assert (await adrain(conveyor_async_client)).completed == 1

def test_the_schema_of_the_first_test_was_dropped(conveyor_dsn, conveyor_schema):
    with psycopg.connect(conveyor_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (SEEN[0],)).fetchone()
    assert row[0] == 0
    assert conveyor_schema != SEEN[0]
'''


@pytest.fixture
def plugin_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester run that loads exactly the plugins named on its command line, so
    it behaves the same whether the entry point is installed or not."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CONVEYOR_TEST_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return pytester


def test_plugin_fixtures_give_each_test_a_started_client_on_its_own_schema(
    plugin_pytester: pytest.Pytester, database_url: str,
) -> None:
    plugin_pytester.makepyfile(test_app=PLUGIN_TESTS)

    result = plugin_pytester.runpytest_subprocess(
        "-p", "conveyor.testing_plugin", "-p", "asyncio", "-o", "asyncio_mode=strict",
        "-o", "asyncio_default_fixture_loop_scope=function",
        f"--conveyor-dsn={database_url}")

    result.assert_outcomes(passed=3)


def test_plugin_reads_the_database_from_the_environment(
    plugin_pytester: pytest.Pytester, database_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    plugin_pytester.makepyfile(test_app="def test_it(conveyor_client):\n"
                                        "    assert conveyor_client.health().schema_version\n")

    result = plugin_pytester.runpytest_subprocess("-p", "conveyor.testing_plugin")

    result.assert_outcomes(passed=1)


def test_plugin_without_a_database_says_how_to_configure_one(
    plugin_pytester: pytest.Pytester,
) -> None:
    plugin_pytester.makepyfile(test_app="def test_it(conveyor_client):\n    pass\n")

    result = plugin_pytester.runpytest_subprocess("-p", "conveyor.testing_plugin")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*pass --conveyor-dsn URL or set CONVEYOR_TEST_DATABASE_URL*"])

