"""fetch, complete and fail: claiming jobs and settling their outcome."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from conveyor import Conveyor, Job, JobState
from conveyor._db.plan import Operation
from conveyor._db.rows import JobDefaults
from conveyor._ops.claims import claim, flow_state
from conveyor.errors import InvalidArgument


def test_fetch_claims_jobs_and_marks_them_active_with_a_lease(cv: Conveyor) -> None:
    job_id = cv.send("q", {"n": 1}, expire_in=30)

    [job] = cv.fetch("q")

    assert job.id == job_id
    assert job.state is JobState.ACTIVE
    assert job.attempt == 1
    assert job.started_at is not None and job.lease_expires_at is not None
    assert job.lease_expires_at - job.started_at == timedelta(seconds=30)
    stored = cv.get_job(job_id)
    assert stored is not None and stored.state is JobState.ACTIVE


def test_fetch_takes_the_highest_priority_first_then_the_oldest(cv: Conveyor) -> None:
    low_old = cv.send("q", "low-old", priority=0)
    high = cv.send("q", "high", priority=5)
    low_new = cv.send("q", "low-new", priority=0)
    urgent = cv.send("q", "urgent", priority=9)

    claimed = [job.id for job in cv.fetch("q", batch_size=10)]

    assert claimed == [urgent, high, low_old, low_new]


@pytest.mark.parametrize("flow", [False, True], ids=["plain", "flow-controlled"])
def test_one_claim_returns_its_jobs_by_priority_then_start_after_then_id(
    cv: Conveyor, flow: bool
) -> None:
    if flow:
        cv.create_queue("q", group_concurrency=1000)
    now = datetime.now(UTC)
    items = [{"data": n, "priority": n % 3, "group_key": f"g{n % 4}",
              "start_after": now - timedelta(seconds=(n * 7919) % 60)} for n in range(300)]
    items += [{"data": 300 + n, "priority": 1, "group_key": "same", "start_after": now
               - timedelta(seconds=90)} for n in range(30)]  # ties broken by id
    cv.insert("q", items)

    claimed = cv.fetch("q", batch_size=400)

    assert len(claimed) == 330 or (flow and len(claimed) >= 300)  # fair claims go by depth
    keys = [(-job.priority, job.start_after, uuid.UUID(job.id)) for job in claimed]
    assert keys == sorted(keys)


def _worker_claim(cv: Conveyor, schema: str, queue: str, limit: int,
                  lease: timedelta | None = None,
                  defaults: JobDefaults | None = None) -> list[Job]:
    """A claim as a worker makes it: with the flow state (and the queue's job
    defaults) read first, on Conveyor's own connections."""
    flow = cv._run(Operation(flow_state(queue)))
    assert flow.defaults is not None
    if defaults is not None:
        flow = flow._replace(defaults=defaults)
    return cv._run(Operation(claim(queue, limit, lease, schema=schema, flow=flow)))


# Defaults no job has: every setting then comes back in the rows.
_UNLIKE_ANY_JOB = JobDefaults(priority=-7, retry_limit=99, retry_delay=timedelta(hours=9),
                              retry_backoff=True, expire_in=timedelta(hours=9),
                              delete_after=timedelta(hours=9), retention=timedelta(hours=9),
                              policy="singleton")


@pytest.mark.parametrize("flow", [False, True], ids=["plain", "flow-controlled"])
@pytest.mark.parametrize("lease", [None, timedelta(seconds=45)], ids=["no-lease", "lease"])
@pytest.mark.parametrize("defaults", ["queue", "unlike"])
def test_a_workers_claim_returns_each_job_exactly_as_stored(
    cv: Conveyor, schema: str, flow: bool, lease: timedelta | None, defaults: str
) -> None:
    """A worker's claim leaves out of its rows what the worker knows (the queue's
    defaults, the state, the lease): the Jobs must still equal the stored ones,
    field by field, whether their settings are the queue's or their own."""
    cv.create_queue("q", retry_limit=4, retry_delay=3, expire_in=60, retention=3600,
                    delete_after=120, **({"group_concurrency": 1000} if flow else {}))
    retried = cv.send("q", {"retried": True}, priority=9, retry_delay=0)
    [first] = cv.fetch("q")
    assert first.id == retried
    cv.fail(first, {"message": "first"})  # waits in retry: errors, a start of its own
    cv.send("q", {"plain": True})
    cv.send("q", {"own": True}, priority=4, retry_limit=1, retry_delay=7, retry_backoff=True,
            retry_delay_max=30, expire_in=20, retention=600, delete_after=5,
            dead_letter="q-dead", singleton_key="k", group_key="g",
            start_after=datetime.now(UTC) - timedelta(seconds=30))
    cv.send("q", {"long": True}, expire_in=timedelta(days=2))  # longer than the lease
    cv.send("q", {"due earlier": True}, start_after=datetime.now(UTC) - timedelta(seconds=9))

    claimed = _worker_claim(cv, schema, "q", 10, lease,
                            _UNLIKE_ANY_JOB if defaults == "unlike" else None)

    assert len(claimed) == 5
    for job in claimed:
        stored = cv.get_job(job.id)
        assert stored is not None
        for field in dataclasses.fields(Job):
            assert getattr(job, field.name) == getattr(stored, field.name), field.name
        assert type(job) is Job and job.state is JobState.ACTIVE
    assert claimed[0].id == retried  # the highest priority


@pytest.mark.parametrize("flow", [False, True], ids=["plain", "flow-controlled"])
def test_a_workers_claim_returns_its_jobs_by_priority_then_start_after_then_id(
    cv: Conveyor, schema: str, flow: bool
) -> None:
    if flow:
        cv.create_queue("q", group_concurrency=1000)
    now = datetime.now(UTC)
    cv.insert("q", [{"data": n, "priority": n % 3, "group_key": f"g{n % 4}",
                     "start_after": now - timedelta(seconds=(n * 7919) % 60)}
                    for n in range(300)])

    claimed = _worker_claim(cv, schema, "q", 400)

    assert len(claimed) == 300 or (flow and len(claimed) >= 270)
    keys = [(-job.priority, job.start_after, uuid.UUID(job.id)) for job in claimed]
    assert keys == sorted(keys)


def test_fetch_returns_at_most_batch_size_jobs(cv: Conveyor) -> None:
    cv.insert("q", [{"data": n} for n in range(10)])

    assert len(cv.fetch("q", batch_size=3)) == 3
    assert cv.queue_counts("q")[JobState.ACTIVE] == 3


def test_fetch_skips_jobs_that_are_not_due_yet(cv: Conveyor) -> None:
    cv.send("q", "later", start_after=3600)
    now = cv.send("q", "now")

    assert [job.id for job in cv.fetch("q", batch_size=5)] == [now]


def test_fetch_does_not_return_jobs_of_other_queues(cv: Conveyor) -> None:
    cv.send("other", {})

    assert cv.fetch("q") == []


def test_concurrent_fetches_never_claim_the_same_job(cv: Conveyor) -> None:
    cv.insert("q", [{"data": n} for n in range(300)])
    claimed: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        for _ in range(100):
            jobs = cv.fetch("q", batch_size=7)
            if not jobs:
                return
            with lock:
                claimed.extend(job.id for job in jobs)

    threads = [threading.Thread(target=drain) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(claimed) == 300
    assert len(set(claimed)) == 300


def test_complete_stores_the_output_and_finishes_the_job(cv: Conveyor) -> None:
    cv.send("q", {"document_id": "d1"})
    [job] = cv.fetch("q")

    assert cv.complete(job, output={"pages": 12}) == 1

    done = cv.get_job(job.id)
    assert done is not None
    assert done.state is JobState.COMPLETED
    assert done.output == {"pages": 12}
    assert done.completed_at is not None
    assert done.lease_expires_at is None


def test_complete_by_id_works_on_many_jobs_at_once(cv: Conveyor) -> None:
    cv.insert("q", [{"data": n} for n in range(4)])
    ids = [job.id for job in cv.fetch("q", batch_size=4)]

    assert cv.complete(ids, output="ok") == 4
    assert cv.queue_counts("q")[JobState.COMPLETED] == 4


def test_complete_ignores_jobs_that_are_not_active(cv: Conveyor) -> None:
    waiting = cv.send("q", {})

    assert cv.complete(waiting) == 0
    job = cv.get_job(waiting)
    assert job is not None and job.state is JobState.CREATED


def test_a_stale_attempt_cannot_complete_a_job_that_was_claimed_again(cv: Conveyor) -> None:
    cv.send("q", {})
    [first_attempt] = cv.fetch("q")
    # The first worker lost its lease; the job went back and another worker took it.
    cv.fail(first_attempt.id, "lease lapsed")
    [second_attempt] = cv.fetch("q")
    assert second_attempt.attempt == first_attempt.attempt + 1

    assert cv.complete(first_attempt, output="stale") == 0
    assert cv.fail(first_attempt, "stale") == 0

    assert cv.complete(second_attempt, output="fresh") == 1
    job = cv.get_job(second_attempt.id)
    assert job is not None and job.output == "fresh"


def test_fail_with_attempts_left_moves_the_job_to_retry(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=2)
    [job] = cv.fetch("q")

    assert cv.fail(job, RuntimeError("boom")) == 1

    failed = cv.get_job(job.id)
    assert failed is not None
    assert failed.state is JobState.RETRY
    assert failed.retry_count == 1
    assert failed.completed_at is None
    assert failed.error is not None
    assert failed.error["type"] == "builtins.RuntimeError"
    assert failed.error["message"] == "boom"


def test_a_retrying_job_is_claimed_again_and_counts_its_attempts(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=1)
    [job] = cv.fetch("q")
    cv.fail(job, "first")

    [again] = cv.fetch("q")

    assert again.id == job.id
    assert again.attempt == 2
    assert again.retry_count == 1


def test_fail_without_attempts_left_fails_the_job_for_good(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=0)
    [job] = cv.fetch("q")

    cv.fail(job, "fatal")

    failed = cv.get_job(job.id)
    assert failed is not None
    assert failed.state is JobState.FAILED
    assert failed.completed_at is not None
    assert cv.fetch("q") == []


def test_every_failed_attempt_keeps_its_error(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=2)
    for n in range(3):
        [job] = cv.fetch("q")
        cv.fail(job, f"attempt {n + 1}")

    job = cv.get_job(job.id)
    assert job is not None and job.state is JobState.FAILED
    assert [e["message"] for e in job.errors] == ["attempt 1", "attempt 2", "attempt 3"]
    assert [e["attempt"] for e in job.errors] == [1, 2, 3]
    assert all(e["failed_at"] for e in job.errors)
    assert job.error == job.errors[-1]


def test_an_exception_is_stored_with_its_traceback(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")
    try:
        raise ValueError("bad page 7")
    except ValueError as exc:
        cv.fail(job, exc)

    stored = cv.get_job(job.id)
    assert stored is not None and stored.error is not None
    assert stored.error["type"] == "builtins.ValueError"
    assert "raise ValueError" in stored.error["traceback"]


def test_a_dict_error_is_stored_as_given(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")

    cv.fail(job, {"code": 429, "message": "rate limited"})

    stored = cv.get_job(job.id)
    assert stored is not None and stored.error is not None
    assert stored.error["code"] == 429 and stored.error["message"] == "rate limited"
    assert stored.error["attempt"] == 1


def test_retry_delay_postpones_the_next_attempt(cv: Conveyor) -> None:
    cv.send("q", {}, retry_delay=30)
    [job] = cv.fetch("q")

    cv.fail(job, "later")

    retrying = cv.get_job(job.id)
    assert retrying is not None
    assert timedelta(seconds=29) < retrying.start_after - job.started_at < timedelta(seconds=35)  # type: ignore[operator]
    assert cv.fetch("q") == []


def test_retry_after_overrides_the_queue_delay(cv: Conveyor) -> None:
    cv.send("q", {}, retry_delay=1)
    [job] = cv.fetch("q")

    cv.fail(job, "flood wait", retry_after=300)

    retrying = cv.get_job(job.id)
    assert retrying is not None
    assert timedelta(seconds=299) < retrying.start_after - job.started_at < timedelta(seconds=310)  # type: ignore[operator]


def test_backoff_doubles_the_delay_with_jitter_and_respects_the_cap(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=5, retry_delay=10, retry_backoff=True, retry_delay_max=35)
    delays = []
    for _ in range(4):
        job_id = cv.find_jobs("q").jobs[0].id
        with psycopg.connect(cv.settings.dsn, autocommit=True) as conn:  # make it due now
            conn.execute(
                f'UPDATE "{cv.schema}".job SET start_after = now() WHERE id = %s', (job_id,)
            )
        [job] = cv.fetch("q")
        cv.fail(job, "again")
        retrying = cv.get_job(job.id)
        assert retrying is not None and job.started_at is not None
        delays.append((retrying.start_after - job.started_at).total_seconds())

    # Delay n is between half and all of 10 * 2^n seconds, capped at 35.
    assert 5 <= delays[0] <= 10.5
    assert 10 <= delays[1] <= 20.5
    assert 20 <= delays[2] <= 35.5
    assert 20 <= delays[3] <= 35.5


def test_a_job_failed_for_good_is_copied_to_its_dead_letter_queue(cv: Conveyor) -> None:
    cv.create_queue("dlq", retry_limit=9)
    cv.send("q", {"document": "corrupt.pdf"}, retry_limit=0, dead_letter="dlq", priority=4)
    [job] = cv.fetch("q")

    cv.fail(job, "corrupt")

    [copy] = cv.find_jobs("dlq").jobs
    assert copy.id != job.id
    assert copy.data == {"document": "corrupt.pdf"}
    assert copy.state is JobState.CREATED
    assert copy.retry_limit == 9  # the dead-letter queue's own default
    original = cv.get_job(job.id)
    assert original is not None and original.state is JobState.FAILED


def test_a_job_that_will_retry_is_not_copied_to_the_dead_letter_queue(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=1, dead_letter="dlq")
    [job] = cv.fetch("q")

    cv.fail(job, "transient")

    assert cv.get_queue("dlq") is None or cv.find_jobs("dlq").jobs == []


def test_a_missing_dead_letter_queue_is_created_when_first_needed(cv: Conveyor) -> None:
    cv.send("q", {"x": 1}, retry_limit=0, dead_letter="made-on-demand")
    [job] = cv.fetch("q")

    cv.fail(job, "fatal")

    assert cv.get_queue("made-on-demand") is not None
    assert [j.data for j in cv.find_jobs("made-on-demand").jobs] == [{"x": 1}]


def test_a_dead_letter_copy_names_its_source_and_carries_its_final_error(cv: Conveyor) -> None:
    cv.send("q", {"chat": 7}, retry_limit=0, dead_letter="dlq", group_key="chat-7")
    [job] = cv.fetch("q")
    traced = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    with psycopg.connect(cv.settings.dsn, autocommit=True) as conn:
        conn.execute(f'UPDATE "{cv.schema}".job SET trace_context = %s WHERE id = %s',
                     (psycopg.types.json.Jsonb(traced), job.id))

    cv.fail(job, ValueError("chat 7 is gone"))

    [copy] = cv.find_jobs("dlq").jobs
    original = cv.get_job(job.id)
    assert original is not None and original.error is not None
    assert (copy.source_id, copy.source_queue) == (job.id, "q")
    assert copy.error == original.error
    assert copy.error["message"] == "chat 7 is gone"
    assert copy.errors == []  # attempts of its own only
    assert copy.group_key == "chat-7"
    assert copy.trace_context == traced
    assert (original.source_id, original.source_queue) == (None, None)
    assert [j.id for j in cv.find_jobs(source_id=job.id)] == [copy.id]


def test_finding_copies_by_a_source_that_is_not_a_job_id_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidArgument, match="UUID"):
        cv.find_jobs(source_id="not-an-id")


def test_dead_letter_copies_take_their_place_among_jobs_by_creation_time(cv: Conveyor) -> None:
    older = cv.send("dlq", "sent before the failure")
    cv.send("q", "fails", retry_limit=0, dead_letter="dlq")
    [job] = cv.fetch("q")
    cv.fail(job, "fatal")
    newer = cv.send("dlq", "sent after the failure")

    listed = [j.id for j in cv.find_jobs("dlq").jobs]  # newest first

    [copy] = [j for j in cv.find_jobs("dlq").jobs if j.source_id == job.id]
    assert uuid.UUID(copy.id).version == 7
    assert listed == [newer, copy.id, older]
