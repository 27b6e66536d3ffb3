"""Managing jobs by hand: cancel, resume, retry, delete, find_jobs, queue_counts."""

from __future__ import annotations

import uuid

import pytest

from conveyor import Conveyor, JobState
from conveyor.errors import InvalidArgument


def test_cancel_stops_a_waiting_job_from_being_claimed(cv: Conveyor) -> None:
    job_id = cv.send("q", {})

    assert cv.cancel(job_id) == 1

    job = cv.get_job(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    assert job.completed_at is not None
    assert cv.fetch("q") == []


def test_cancel_of_an_active_job_stops_its_completion_from_applying(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")

    cv.cancel(job)

    assert cv.complete(job, output="late") == 0
    stored = cv.get_job(job.id)
    assert stored is not None and stored.state is JobState.CANCELLED


def test_cancel_leaves_finished_jobs_alone(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")
    cv.complete(job)

    assert cv.cancel(job) == 0
    stored = cv.get_job(job.id)
    assert stored is not None and stored.state is JobState.COMPLETED


def test_resume_puts_a_cancelled_job_back_in_its_queue(cv: Conveyor) -> None:
    job_id = cv.send("q", {"n": 1}, start_after=3600)
    cv.cancel(job_id)

    assert cv.resume(job_id) == 1

    [job] = cv.fetch("q")  # due now, not in an hour
    assert job.id == job_id and job.data == {"n": 1}


def test_resume_ignores_jobs_that_are_not_cancelled(cv: Conveyor) -> None:
    job_id = cv.send("q", {})

    assert cv.resume(job_id) == 0


def test_retry_sends_a_failed_job_round_again_with_one_more_attempt(cv: Conveyor) -> None:
    cv.send("q", {}, retry_limit=0)
    [job] = cv.fetch("q")
    cv.fail(job, "fatal")

    assert cv.retry(job) == 1

    [again] = cv.fetch("q")
    assert again.id == job.id
    assert again.attempt == 2
    cv.fail(again, "fatal again")
    failed = cv.get_job(job.id)
    assert failed is not None and failed.state is JobState.FAILED


def test_retry_ignores_jobs_that_have_not_failed(cv: Conveyor) -> None:
    job_id = cv.send("q", {})

    assert cv.retry(job_id) == 0


def test_delete_removes_jobs_in_any_state(cv: Conveyor) -> None:
    cv.send("q", {})
    [active] = cv.fetch("q")
    waiting = cv.send("q", {})

    assert cv.delete([waiting, active]) == 2

    assert cv.get_job(waiting) is None and cv.get_job(active.id) is None


def test_actions_accept_ids_as_text_uuids_or_jobs(cv: Conveyor) -> None:
    first, second, third = (cv.send("q", {}) for _ in range(3))
    assert first and second and third

    assert cv.cancel([first, uuid.UUID(second), cv.get_job(third)]) == 3  # type: ignore[list-item]


def test_an_invalid_id_is_refused_before_anything_changes(cv: Conveyor) -> None:
    job_id = cv.send("q", {})

    with pytest.raises(InvalidArgument):
        cv.cancel([job_id, "not-a-uuid"])  # type: ignore[list-item]

    job = cv.get_job(job_id)
    assert job is not None and job.state is JobState.CREATED


def test_queue_counts_counts_jobs_by_state_with_zeros(cv: Conveyor) -> None:
    cv.insert("q", [{"data": n} for n in range(5)])
    jobs = cv.fetch("q", batch_size=2)
    cv.complete(jobs[0])

    counts = cv.queue_counts("q")

    assert counts == {
        JobState.CREATED: 3, JobState.RETRY: 0, JobState.ACTIVE: 1,
        JobState.COMPLETED: 1, JobState.CANCELLED: 0, JobState.FAILED: 0, JobState.WAITING: 0,
    }
    assert counts["created"] == 3  # type: ignore[index]


def test_find_jobs_filters_by_queue_state_key_and_data(cv: Conveyor) -> None:
    a = cv.send("q", {"tenant": "a", "kind": "pdf"}, singleton_key="a")
    b = cv.send("q", {"tenant": "b", "kind": "pdf"}, singleton_key="b")
    cv.send("other", {"tenant": "a", "kind": "pdf"})
    cv.cancel(b)

    assert {j.id for j in cv.find_jobs("q")} == {a, b}
    assert [j.id for j in cv.find_jobs("q", state="cancelled")] == [b]
    assert [j.id for j in cv.find_jobs("q", state=[JobState.CREATED])] == [a]
    assert [j.id for j in cv.find_jobs("q", singleton_key="a")] == [a]
    assert [j.id for j in cv.find_jobs("q", data_contains={"tenant": "a"})] == [a]
    assert len(cv.find_jobs(data_contains={"tenant": "a"})) == 2


def test_find_jobs_pages_through_every_job_newest_first(cv: Conveyor) -> None:
    sent = [cv.send("q", {"n": n}) for n in range(7)]

    seen: list[str] = []
    page = cv.find_jobs("q", limit=3)
    seen += [j.id for j in page]
    while page.next_cursor:
        page = cv.find_jobs("q", limit=3, cursor=page.next_cursor)
        seen += [j.id for j in page]

    assert seen == list(reversed(sent))


def test_find_jobs_refuses_a_bad_state_a_bad_cursor_and_a_huge_limit(cv: Conveyor) -> None:
    with pytest.raises(InvalidArgument):
        cv.find_jobs("q", state="running")
    with pytest.raises(InvalidArgument):
        cv.find_jobs("q", cursor="garbage")
    with pytest.raises(InvalidArgument):
        cv.find_jobs("q", limit=100_000)


def test_a_page_of_jobs_is_a_read_only_sequence_of_them(cv: Conveyor) -> None:
    ids = [cv.send("q", n) for n in range(3)]

    page = cv.find_jobs("q")

    assert [job.id for job in page] == ids[::-1]  # newest first
    assert page[0].id == ids[2] and page[-1].id == ids[0]
    assert [job.id for job in page[1:]] == ids[1::-1]
    assert len(page) == 3 and page
    assert page == list(page.jobs) and list(page.jobs) == page
    assert page == cv.find_jobs("q")
    assert page.next_cursor is None
    assert page.index(page[1]) == 1 and page[1] in page
    assert not cv.find_jobs("empty")
    with pytest.raises(IndexError):
        page[3]
    with pytest.raises(TypeError):
        page[0] = page[1]  # type: ignore[index]
