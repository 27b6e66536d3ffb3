"""Queues: explicit creation with defaults, changes, deletion, and the policies the
database enforces."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from conveyor import Conveyor, JobState, QueuePolicy
from conveyor.errors import (
    InvalidOption,
    InvalidPolicy,
    PolicyViolation,
    QueueConflict,
    QueueNotFound,
    UnknownOption,
)


def test_create_queue_stores_its_policy_and_defaults(cv: Conveyor) -> None:
    queue = cv.create_queue(
        "reports", policy="singleton", retry_limit=5, retry_delay=timedelta(seconds=3),
        expire_in=60, dead_letter="reports-dlq",
    )

    assert queue.name == "reports"
    assert queue.policy is QueuePolicy.SINGLETON
    assert queue.retry_limit == 5
    assert queue.retry_delay == timedelta(seconds=3)
    assert queue.expire_in == timedelta(minutes=1)
    assert queue.dead_letter == "reports-dlq"
    assert cv.get_queue("reports") == queue
    assert cv.get_queue("reports-dlq") is not None  # created for it


def test_create_queue_again_applies_the_settings_given_and_keeps_the_rest(cv: Conveyor) -> None:
    cv.create_queue("reports", retry_limit=5, priority=2)

    queue = cv.create_queue("reports", priority=7)

    assert queue.priority == 7
    assert queue.retry_limit == 5


def test_update_queue_changes_only_the_settings_given(cv: Conveyor) -> None:
    cv.create_queue("reports", retry_limit=5, dead_letter="dlq", retry_delay_max=30)

    queue = cv.update_queue("reports", retry_backoff=True, dead_letter=None, retry_delay_max=None)

    assert queue.retry_backoff is True
    assert queue.retry_limit == 5
    assert queue.dead_letter is None
    assert queue.retry_delay_max is None


def test_update_queue_of_a_missing_queue_raises_queue_not_found(cv: Conveyor) -> None:
    with pytest.raises(QueueNotFound):
        cv.update_queue("missing", retry_limit=1)
    assert cv.get_queue("missing") is None


def test_jobs_keep_the_settings_they_were_sent_with(cv: Conveyor) -> None:
    cv.create_queue("reports", retry_limit=5)
    job_id = cv.send("reports", {})

    cv.update_queue("reports", retry_limit=1)

    job = cv.get_job(job_id)
    assert job is not None and job.retry_limit == 5
    later = cv.get_job(cv.send("reports", {}))
    assert later is not None and later.retry_limit == 1


def test_list_queues_returns_every_queue_by_name(cv: Conveyor) -> None:
    cv.send("b", {})
    cv.create_queue("a")

    assert [q.name for q in cv.list_queues()] == ["a", "b"]


def test_delete_queue_removes_the_queue_and_its_jobs(cv: Conveyor) -> None:
    job_id = cv.send("doomed", {})
    kept = cv.send("kept", {})

    assert cv.delete_queue("doomed") is True

    assert cv.get_queue("doomed") is None
    assert cv.get_job(job_id) is None
    assert cv.get_job(kept) is not None
    assert cv.delete_queue("doomed") is False


def test_a_dead_letter_queue_in_use_cannot_be_deleted(cv: Conveyor) -> None:
    cv.create_queue("reports", dead_letter="reports-dlq")

    with pytest.raises(QueueConflict, match="dead-letter"):
        cv.delete_queue("reports-dlq")

    assert cv.get_queue("reports-dlq") is not None


def test_queue_settings_are_checked_before_anything_is_written(cv: Conveyor) -> None:
    with pytest.raises(InvalidPolicy):
        cv.create_queue("bad", policy="fifo")
    with pytest.raises(InvalidOption):
        cv.create_queue("bad", retry_limit=-1)
    with pytest.raises(InvalidOption):
        cv.create_queue("bad", retry_limit=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidOption):
        cv.create_queue("bad", dead_letter="bad")
    with pytest.raises(UnknownOption):
        cv.create_queue("bad", retries=3)  # type: ignore[call-arg]

    assert cv.get_queue("bad") is None


# --- policies -------------------------------------------------------------------------


def test_standard_policy_accepts_any_number_of_jobs_per_key(cv: Conveyor) -> None:
    ids = [cv.send("q", {}, singleton_key="k") for _ in range(3)]

    assert None not in ids


def test_short_policy_keeps_one_queued_job_per_key(cv: Conveyor) -> None:
    cv.create_queue("q", policy="short")

    first = cv.send("q", {"n": 1}, singleton_key="k")
    rejected = cv.send("q", {"n": 2}, singleton_key="k")
    other_key = cv.send("q", {"n": 3}, singleton_key="other")

    assert first is not None and rejected is None and other_key is not None
    cv.fetch("q", batch_size=5)  # once the queued ones start, the key can queue again
    assert cv.send("q", {"n": 4}, singleton_key="k") is not None


def test_short_policy_without_a_key_keeps_one_queued_job_per_queue(cv: Conveyor) -> None:
    cv.create_queue("q", policy="short")

    assert cv.send("q", {}) is not None
    assert cv.send("q", {}) is None


def test_singleton_policy_runs_one_job_per_key_at_a_time(cv: Conveyor) -> None:
    cv.create_queue("q", policy="singleton")
    for n in range(3):
        cv.send("q", {"n": n}, singleton_key="k")
    cv.send("q", {"n": 9}, singleton_key="other")

    claimed = cv.fetch("q", batch_size=10)

    assert sorted(job.singleton_key for job in claimed) == ["k", "other"]  # type: ignore[type-var]
    assert cv.fetch("q", batch_size=10) == []
    cv.complete(claimed)
    assert len(cv.fetch("q", batch_size=10)) == 1


def test_singleton_policy_holds_under_concurrent_claims(cv: Conveyor) -> None:
    cv.create_queue("q", policy="singleton")
    cv.insert("q", [{"data": n, "singleton_key": "k"} for n in range(20)])
    claimed: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(5):
                claimed.extend(job.id for job in cv.fetch("q", batch_size=5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(claimed) == 1
    assert cv.queue_counts("q")[JobState.ACTIVE] == 1


def test_stately_policy_keeps_one_job_per_state_per_key(cv: Conveyor) -> None:
    cv.create_queue("q", policy="stately")

    first = cv.send("q", {"n": 1}, singleton_key="k")
    assert cv.send("q", {"n": 2}, singleton_key="k") is None
    [active] = cv.fetch("q")
    assert active.id == first
    second = cv.send("q", {"n": 3}, singleton_key="k")  # created slot is free again

    assert second is not None
    assert cv.fetch("q") == []  # the active slot is taken


def test_stately_policy_retries_the_failed_job_before_starting_the_next(cv: Conveyor) -> None:
    cv.create_queue("q", policy="stately", retry_limit=3)
    first = cv.send("q", {}, singleton_key="k")
    [job] = cv.fetch("q")
    cv.send("q", {}, singleton_key="k")

    cv.fail(job, "transient")

    [again] = cv.fetch("q", batch_size=5)
    assert again.id == first


def test_exclusive_policy_keeps_one_queued_or_active_job_per_key(cv: Conveyor) -> None:
    cv.create_queue("q", policy="exclusive")

    assert cv.send("q", {}, singleton_key="k") is not None
    [job] = cv.fetch("q")
    assert cv.send("q", {}, singleton_key="k") is None
    cv.complete(job)
    assert cv.send("q", {}, singleton_key="k") is not None


def test_a_policy_change_applies_to_jobs_sent_afterwards(cv: Conveyor) -> None:
    cv.send("q", {}, singleton_key="k")
    cv.send("q", {}, singleton_key="k")

    cv.update_queue("q", policy="short")

    assert cv.send("q", {}, singleton_key="k") is not None  # the first short job
    assert cv.send("q", {}, singleton_key="k") is None


def test_resuming_into_a_full_short_queue_raises_policy_violation(cv: Conveyor) -> None:
    cv.create_queue("q", policy="short")
    cancelled = cv.send("q", {}, singleton_key="k")
    cv.cancel(cancelled)
    cv.send("q", {}, singleton_key="k")

    with pytest.raises(PolicyViolation):
        cv.resume(cancelled)

    job = cv.get_job(cancelled)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.CANCELLED
