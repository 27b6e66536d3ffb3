"""Consuming a queue without a worker: fetch with a visibility timeout, redelivery
when a lease lapses, extend, release, long-polling fetches, and pop."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor._clients import waiting
from conveyor.errors import InvalidOption, InvalidQueueName

BOUND = 30.0
"""Seconds any wait for a lease to lapse may take at most (the leases are short)."""


def _fetch_again(cv: Conveyor, queue: str, **options: object) -> list[Job]:
    """Fetches until a job comes (a lease lapses within a second here), or BOUND."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        jobs = cv.fetch(queue, **options)  # type: ignore[arg-type]
        if jobs:
            return jobs
        time.sleep(0.1)
    raise AssertionError(f"nothing came back to {queue!r} within {BOUND} s")


def _job(cv: Conveyor, job_id: str) -> Job:
    job = cv.get_job(job_id)
    assert job is not None
    return job


def test_a_fetched_job_is_leased_for_its_visibility(cv: Conveyor) -> None:
    cv.send("wf", {})
    before = datetime.now(UTC)

    [job] = cv.fetch("wf", visibility=3600)

    assert job.lease_expires_at is not None
    # An hour, where the queue's expire_in (15 minutes) would cap a worker's lease.
    assert job.lease_expires_at - before > timedelta(minutes=59)
    assert cv.fetch("wf") == []


def test_a_job_whose_consumer_died_is_fetched_again_with_no_worker_anywhere(
    cv: Conveyor,
) -> None:
    job_id = cv.send("wf", {"n": 1})
    [first] = cv.fetch("wf", visibility=0.3)  # and the consumer dies

    [again] = _fetch_again(cv, "wf", visibility=30)

    assert again.id == job_id and again.attempt == first.attempt + 1
    assert again.retry_count == 1
    assert [error["type"] for error in again.errors] == ["conveyor.errors.LeaseExpired"]
    assert cv.complete(first) == 0  # the dead consumer's attempt is stale
    assert cv.complete(again, "done") == 1


def test_retry_limit_bounds_deliveries_and_the_dead_letter_queue_takes_the_rest(
    cv: Conveyor,
) -> None:
    cv.create_queue("wf", retry_limit=1, dead_letter="wf-dead")
    job_id = cv.send("wf", {"n": 1})
    cv.fetch("wf", visibility=0.2)
    _fetch_again(cv, "wf", visibility=0.2)  # the second and last delivery lapses too

    deadline = time.monotonic() + BOUND
    while _job(cv, job_id).state is not JobState.FAILED and time.monotonic() < deadline:
        assert cv.fetch("wf") == []
        time.sleep(0.1)

    failed = _job(cv, job_id)
    assert failed.state is JobState.FAILED and failed.attempt == 2
    [copy] = cv.fetch("wf-dead")
    assert copy.source_id == job_id and copy.data == {"n": 1}


def test_extend_keeps_a_job_from_coming_back(cv: Conveyor) -> None:
    cv.send("wf", {})
    [job] = cv.fetch("wf", visibility=0.5)

    assert cv.extend(job, 60) == 1
    time.sleep(1.0)  # twice the first lease

    assert cv.fetch("wf") == []
    extended = _job(cv, job.id)
    assert extended.state is JobState.ACTIVE and extended.attempt == job.attempt
    assert extended.lease_expires_at is not None
    assert extended.lease_expires_at - datetime.now(UTC) > timedelta(seconds=50)


def test_a_stale_attempt_cannot_extend_release_or_complete(cv: Conveyor) -> None:
    cv.send("wf", {})
    [stale] = cv.fetch("wf", visibility=0.2)
    [current] = _fetch_again(cv, "wf", visibility=60)

    assert cv.extend(stale, 600) == 0
    assert cv.release(stale) == 0
    assert cv.complete(stale) == 0
    job = _job(cv, current.id)
    assert job.state is JobState.ACTIVE and job.attempt == current.attempt
    assert job.lease_expires_at == current.lease_expires_at


def test_release_gives_a_job_back_without_counting_a_failed_attempt(cv: Conveyor) -> None:
    job_id = cv.send("wf", {})
    [job] = cv.fetch("wf", visibility=60)

    assert cv.release(job) == 1

    released = _job(cv, job_id)
    assert released.state is JobState.CREATED and released.retry_count == 0
    assert released.errors == [] and released.lease_expires_at is None
    [again] = cv.fetch("wf")
    assert again.id == job_id and again.attempt == 2  # the attempt counts deliveries


def test_release_with_a_delay_makes_the_job_due_after_it(cv: Conveyor) -> None:
    job_id = cv.send("wf", {})
    [job] = cv.fetch("wf")
    before = datetime.now(UTC)

    assert cv.release([job], delay=timedelta(minutes=10)) == 1

    assert cv.fetch("wf") == []
    assert _job(cv, job_id).start_after - before > timedelta(minutes=9)


def test_bad_consumer_input_raises_a_typed_error_and_changes_nothing(cv: Conveyor) -> None:
    job_id = cv.send("wf", {})
    [job] = cv.fetch("wf", visibility=60)
    for bad in (
        lambda: cv.fetch("wf", visibility=-1),
        lambda: cv.fetch("wf", visibility=0),
        lambda: cv.fetch("wf", wait=-1),
        lambda: cv.extend(job, 0),
        lambda: cv.extend(job_id, 60),  # type: ignore[arg-type]
        lambda: cv.release(job_id),  # type: ignore[arg-type]
        lambda: cv.release(job, delay=-5),
        lambda: cv.pop("wf", batch_size=0),
    ):
        with pytest.raises(InvalidOption):
            bad()
    with pytest.raises(InvalidQueueName):
        cv.pop("not a queue!")
    unchanged = _job(cv, job_id)
    assert unchanged.state is JobState.ACTIVE and unchanged.attempt == job.attempt
    assert unchanged.lease_expires_at == job.lease_expires_at


def test_pop_never_delivers_a_job_twice(cv: Conveyor) -> None:
    cv.insert("wf", [{"data": {"n": n}} for n in range(200)])
    sent = {job.id for job in cv.find_jobs("wf", limit=1000).jobs}
    popped: list[list[Job]] = [[], [], [], []]

    def consume(into: list[Job]) -> None:
        while batch := cv.pop("wf", batch_size=7):
            into.extend(batch)

    threads = [threading.Thread(target=consume, args=(into,)) for into in popped]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    ids = [job.id for into in popped for job in into]
    assert len(ids) == len(set(ids)) == 200 and set(ids) == sent
    assert {job.state for into in popped for job in into} == {JobState.COMPLETED}
    assert cv.count_jobs("wf", state="completed") == 200


def test_pop_releases_what_waits_for_the_popped_job(cv: Conveyor) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a", "data": 1},
                   {"ref": "b", "queue": "b", "depends_on": ["a"]}])

    [popped] = cv.pop("a")

    assert popped.id == ids["a"] and popped.state is JobState.COMPLETED
    [step] = cv.fetch("b")
    assert step.id == ids["b"] and step.dependency_outputs == {"a": None}


def test_a_waiting_fetch_is_woken_by_the_send_of_a_job(
    cv: Conveyor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No recheck within the test: only the send's notification can end the wait early.
    monkeypatch.setattr(waiting, "FETCH_RECHECK", 60.0)
    sender = threading.Timer(0.5, lambda: cv.send("wf", {"late": True}))
    sender.start()
    started = time.monotonic()

    jobs = cv.fetch("wf", wait=120)

    sender.join()
    assert [job.data for job in jobs] == [{"late": True}]
    assert time.monotonic() - started < 30


def test_a_waiting_fetch_on_an_empty_queue_returns_nothing_after_its_wait(cv: Conveyor) -> None:
    started = time.monotonic()

    assert cv.fetch("wf", wait=1.5) == []

    assert 1.4 <= time.monotonic() - started < 10


def test_a_waiting_fetch_polls_behind_a_transaction_pooler(
    database_url: str, schema: str,
) -> None:
    with Conveyor(database_url, schema=schema, pgbouncer=True) as pooled:
        sender = threading.Timer(0.5, lambda: pooled.send("wf", {}))
        sender.start()
        jobs = pooled.fetch("wf", wait=20, visibility=60)
        sender.join()
    assert len(jobs) == 1


async def test_the_async_client_consumes_with_visibility_wait_extend_release_and_pop(
    acv: AsyncConveyor,
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.5)
        await acv.send("wf", {"n": 1})

    sending = asyncio.create_task(send_later())
    [job] = await acv.fetch("wf", visibility=0.5, wait=20)
    await sending
    assert await acv.extend(job, 60) == 1
    assert await acv.release(job) == 1
    [popped] = await acv.pop("wf")
    assert popped.id == job.id and popped.state is JobState.COMPLETED
    assert await acv.fetch("wf", wait=0.2) == []
