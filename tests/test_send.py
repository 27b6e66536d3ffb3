"""send: one job, its options, and the queue defaults it falls back on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Conveyor, JobState


def test_send_returns_the_id_of_a_stored_job_in_created_state(cv: Conveyor) -> None:
    job_id = cv.send("document-parse", {"document_id": "d1"})

    job = cv.get_job(job_id)
    assert job is not None
    assert job.id == job_id
    assert job.queue == "document-parse"
    assert job.state is JobState.CREATED
    assert job.data == {"document_id": "d1"}
    assert job.retry_count == 0
    assert job.output is None and job.error is None


def test_first_send_creates_the_queue_with_default_settings(cv: Conveyor) -> None:
    assert cv.get_queue("fresh") is None

    cv.send("fresh", None)

    queue = cv.get_queue("fresh")
    assert queue is not None
    assert queue.policy == "standard"
    assert queue.retry_limit == 2
    assert queue.expire_in == timedelta(minutes=15)
    assert queue.retention == timedelta(days=14)
    assert queue.delete_after == timedelta(days=7)


def test_options_left_out_take_the_queue_defaults(cv: Conveyor) -> None:
    cv.create_queue(
        "tuned", priority=3, retry_limit=7, retry_delay=5, retry_backoff=True,
        retry_delay_max=60, expire_in=30, retention=3600, delete_after=0, dead_letter="tuned-dlq",
    )

    job = cv.get_job(cv.send("tuned", {}))

    assert job is not None
    assert job.priority == 3
    assert job.retry_limit == 7
    assert job.retry_delay == timedelta(seconds=5)
    assert job.retry_backoff is True
    assert job.retry_delay_max == timedelta(seconds=60)
    assert job.expire_in == timedelta(seconds=30)
    assert job.keep_until - job.start_after == timedelta(hours=1)
    assert job.delete_after == timedelta(0)
    assert job.dead_letter == "tuned-dlq"


def test_options_given_override_the_queue_defaults(cv: Conveyor) -> None:
    cv.create_queue("tuned", retry_limit=7, priority=3)

    job = cv.get_job(
        cv.send(
            "tuned", {}, priority=10, retry_limit=0, retry_delay=timedelta(seconds=2),
            retry_backoff=True, retry_delay_max=timedelta(minutes=1), expire_in=45.5,
            retention=timedelta(days=1), delete_after=120, singleton_key="k1",
        )
    )

    assert job is not None
    assert job.priority == 10
    assert job.retry_limit == 0
    assert job.retry_delay == timedelta(seconds=2)
    assert job.retry_delay_max == timedelta(minutes=1)
    assert job.expire_in == timedelta(seconds=45.5)
    assert job.keep_until - job.start_after == timedelta(days=1)
    assert job.delete_after == timedelta(minutes=2)
    assert job.singleton_key == "k1"


@pytest.mark.parametrize("delay", [60, 60.0, timedelta(seconds=60)])
def test_start_after_as_a_delay_postpones_the_job(cv: Conveyor, delay: object) -> None:
    job = cv.get_job(cv.send("later", {}, start_after=delay))

    assert job is not None
    assert job.start_after - job.created_at == timedelta(seconds=60)
    assert cv.fetch("later") == []


def test_start_after_as_an_aware_datetime_sets_the_time(cv: Conveyor) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    job = cv.get_job(cv.send("later", {}, start_after=when))

    assert job is not None
    assert job.start_after == when
    assert job.keep_until == when + timedelta(days=14)


def test_sending_the_same_custom_id_twice_keeps_one_job(cv: Conveyor) -> None:
    custom = uuid.uuid4()

    first = cv.send("orders", {"n": 1}, id=custom)
    second = cv.send("orders", {"n": 2}, id=str(custom))

    assert first == str(custom)
    assert second is None
    job = cv.get_job(custom)
    assert job is not None and job.data == {"n": 1}
    assert cv.queue_counts("orders")[JobState.CREATED] == 1


def test_singleton_seconds_throttles_to_one_job_per_key_per_slot(cv: Conveyor) -> None:
    first = cv.send("emails", {"n": 1}, singleton_key="user-1", singleton_seconds=3600)
    second = cv.send("emails", {"n": 2}, singleton_key="user-1", singleton_seconds=3600)
    other_key = cv.send("emails", {"n": 3}, singleton_key="user-2", singleton_seconds=3600)

    assert first is not None
    assert second is None
    assert other_key is not None
    job = cv.get_job(first)
    assert job is not None and job.singleton_on is not None
    assert job.singleton_on.timestamp() % 3600 == 0


def test_a_throttle_slot_frees_up_when_its_job_is_cancelled(cv: Conveyor) -> None:
    first = cv.send("emails", {}, singleton_key="k", singleton_seconds=3600)
    cv.cancel(first)

    assert cv.send("emails", {}, singleton_key="k", singleton_seconds=3600) is not None


def test_send_stores_the_group_key(cv: Conveyor) -> None:
    job = cv.get_job(cv.send("messages", {"text": "hi"}, group_key="tenant-1"))

    assert job is not None and job.group_key == "tenant-1"


def test_a_job_sent_without_a_group_key_has_none(cv: Conveyor) -> None:
    job = cv.get_job(cv.send("messages", {}))

    assert job is not None and job.group_key is None


def test_data_round_trips_every_json_type(cv: Conveyor) -> None:
    data = {"s": "é✓", "i": 2**40, "f": 1.5, "b": True, "n": None, "l": [1, "two", [3]],
            "nested": {"deep": {"x": []}}}

    job = cv.get_job(cv.send("types", data))

    assert job is not None and job.data == data


def test_data_may_be_a_scalar_or_a_list(cv: Conveyor) -> None:
    assert cv.get_job(cv.send("scalars", 42)).data == 42  # type: ignore[union-attr]
    assert cv.get_job(cv.send("scalars", "text")).data == "text"  # type: ignore[union-attr]
    assert cv.get_job(cv.send("scalars", [1, 2])).data == [1, 2]  # type: ignore[union-attr]


def test_get_job_returns_none_for_an_unknown_id(cv: Conveyor) -> None:
    assert cv.get_job(uuid.uuid4()) is None


def test_generated_ids_are_uuid_version_7_in_creation_order(cv: Conveyor) -> None:
    ids = [cv.send("ordered", {"n": n}) for n in range(5)]

    parsed = [uuid.UUID(i) for i in ids if i is not None]
    assert all(u.version == 7 for u in parsed)
    # Ids sort by their millisecond first; sends a millisecond apart keep their order.
    assert [u.int >> 80 for u in parsed] == sorted(u.int >> 80 for u in parsed)


def test_ids_of_jobs_sent_one_after_another_sort_in_that_order(cv: Conveyor) -> None:
    # Many of these sends fall in the same millisecond: the sub-millisecond part of
    # the id keeps their order (RFC 9562 method 3).
    sent = [cv.send("ordered", n) for n in range(200)]

    assert sent == sorted(sent)
    assert len({uuid.UUID(job_id).version for job_id in sent if job_id}) == 1


def test_a_job_read_from_a_row_equals_the_job_its_constructor_makes(
    cv: Conveyor, schema: str, database_url: str
) -> None:
    import dataclasses
    import pickle

    import psycopg

    from conveyor._db import session, statements
    from conveyor._db.queries import Queries
    from conveyor._db.rows import job_from_row
    from conveyor.job import Job, JobState, Progress, QueuePolicy

    cv.create_queue("rows", policy="stately", dead_letter="rows-dead")
    job_id = cv.send("rows", {"n": 1}, priority=3, retry_limit=2, singleton_key="k",
                     group_key="g", expire_in=90, retry_backoff=True)
    (claimed,) = cv.fetch("rows")
    cv.fail(claimed, {"message": "first"})  # errors and error, back to retry
    queries = Queries(schema)
    with psycopg.connect(database_url) as conn:
        session.configure(conn, queries)
        row = conn.execute(queries[statements.JOB_GET], {"id": job_id}).fetchone()
    assert row is not None

    job = job_from_row(row)

    values = list(row)
    values[2], values[14], values[24] = (
        JobState(values[2]), Progress(values[14]), QueuePolicy(values[24]))
    # No dependencies: their two fields take their defaults; nothing waits for it.
    assert values[-2:] == [None, False]
    built = Job(*values[:-2], has_dependents=False)
    assert type(job) is Job
    assert job == built
    for field in dataclasses.fields(Job):
        assert getattr(job, field.name) == getattr(built, field.name), field.name
    assert job.state is JobState.RETRY and job.policy is QueuePolicy.STATELY
    assert [e["message"] for e in job.errors] == ["first"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.priority = 9  # type: ignore[misc]
    assert dataclasses.replace(job, priority=9).priority == 9
    assert pickle.loads(pickle.dumps(job)) == job
