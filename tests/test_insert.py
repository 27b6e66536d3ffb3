"""insert: many jobs in one COPY and one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from conveyor import Conveyor, JobState
from conveyor._db import statements
from conveyor._db.queries import Queries
from conveyor.errors import InvalidOption, InvalidPayload, UnknownOption


def test_insert_of_a_hundred_thousand_jobs_stores_them_all(cv: Conveyor) -> None:
    count = cv.insert("bulk", ({"data": {"i": i}} for i in range(100_000)))

    assert count == 100_000
    assert cv.queue_counts("bulk")[JobState.CREATED] == 100_000
    sample = cv.find_jobs("bulk", data_contains={"i": 99_999}).jobs
    assert [job.data for job in sample] == [{"i": 99_999}]


def test_insert_applies_each_items_own_options(cv: Conveyor) -> None:
    custom = uuid.uuid4()
    cv.insert(
        "bulk",
        [
            {"data": "urgent", "priority": 9, "retry_limit": 5},
            {"data": "later", "start_after": 3600},
            {"data": "mine", "id": custom, "singleton_key": "k", "expire_in": 30},
        ],
    )

    mine = cv.get_job(custom)
    assert mine is not None and mine.singleton_key == "k" and mine.expire_in.total_seconds() == 30
    [first] = cv.fetch("bulk")
    assert first.data == "urgent" and first.retry_limit == 5
    later = cv.find_jobs("bulk", data_contains="later").jobs[0]
    assert later.start_after > later.created_at


def test_insert_stores_each_items_group_key(cv: Conveyor) -> None:
    cv.insert("messages", [{"data": n, "group_key": f"tenant-{n % 2}"} for n in range(4)] +
              [{"data": "plain"}])

    keys = sorted(str(job.group_key) for job in cv.find_jobs("messages").jobs)
    assert keys == ["None", "tenant-0", "tenant-0", "tenant-1", "tenant-1"]


def test_an_item_with_a_bad_group_key_inserts_nothing(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="group_key"):
        cv.insert("messages", [{"data": 1, "group_key": "ok"}, {"data": 2, "group_key": ""}])

    assert cv.get_queue("messages") is None


def test_insert_creates_the_queue_on_first_use(cv: Conveyor) -> None:
    cv.insert("brand-new", [{"data": 1}])

    assert cv.get_queue("brand-new") is not None


def test_insert_counts_only_the_jobs_the_policy_accepted(cv: Conveyor) -> None:
    cv.create_queue("q", policy="short")

    count = cv.insert("q", [{"data": n, "singleton_key": f"k{n % 3}"} for n in range(9)])

    assert count == 3
    assert cv.queue_counts("q")[JobState.CREATED] == 3


def test_insert_with_an_existing_custom_id_keeps_the_existing_job(cv: Conveyor) -> None:
    custom = uuid.uuid4()
    cv.send("q", "original", id=custom)

    assert cv.insert("q", [{"data": "copy", "id": custom}, {"data": "new"}]) == 1

    job = cv.get_job(custom)
    assert job is not None and job.data == "original"


def test_one_bad_item_inserts_nothing(cv: Conveyor) -> None:
    cv.send("q", "before")

    def items() -> Iterator[dict[str, Any]]:
        for n in range(1000):
            yield {"data": n}
        yield {"data": object()}

    with pytest.raises(InvalidPayload):
        cv.insert("q", items())

    assert cv.queue_counts("q")[JobState.CREATED] == 1


def test_an_unknown_item_key_is_refused_by_name(cv: Conveyor) -> None:
    with pytest.raises(UnknownOption, match="retries"):
        cv.insert("q", [{"data": 1}, {"data": 2, "retries": 3}])

    assert cv.get_queue("q") is None


def test_an_item_that_is_not_a_mapping_is_refused(cv: Conveyor) -> None:
    with pytest.raises(Exception, match="mapping"):
        cv.insert("q", [{"data": 1}, [1, 2]])  # type: ignore[list-item]
    assert cv.get_queue("q") is None


def test_insert_of_no_items_inserts_nothing(cv: Conveyor) -> None:
    assert cv.insert("q", []) == 0


_OPTION_FIELDS = ("policy", "priority", "retry_limit", "retry_delay", "retry_backoff",
                  "retry_delay_max", "expire_in", "delete_after", "dead_letter", "singleton_key",
                  "group_key", "state", "attempt", "retry_count")


def test_bulk_inserted_jobs_take_the_same_defaults_as_sent_ones(cv: Conveyor) -> None:
    cv.create_queue("tuned", priority=3, retry_limit=7, retry_delay=5, retry_backoff=True,
                    retry_delay_max=60, expire_in=30, retention=3600, delete_after=120,
                    dead_letter="tuned-dlq")
    sent = cv.get_job(cv.send("tuned", "sent"))
    cv.insert("tuned", [{"data": "inserted"}, {"data": "own", "priority": 1, "retention": 60,
                                               "group_key": "g", "singleton_key": "s"}])
    inserted = cv.find_jobs("tuned", data_contains="inserted").jobs[0]
    own = cv.find_jobs("tuned", data_contains="own").jobs[0]

    assert sent is not None
    assert {f: getattr(inserted, f) for f in _OPTION_FIELDS} == {
        f: getattr(sent, f) for f in _OPTION_FIELDS}
    assert inserted.keep_until - inserted.start_after == sent.keep_until - sent.start_after
    assert inserted.start_after == inserted.created_at
    assert (own.priority, own.group_key, own.singleton_key) == (1, "g", "s")
    assert (own.keep_until - own.start_after).total_seconds() == 60
    assert own.retry_limit == 7


def test_bulk_inserted_jobs_are_claimed_in_the_order_given(cv: Conveyor) -> None:
    cv.insert("ordered", [{"data": n} for n in range(2000)])

    claimed = cv.fetch("ordered", batch_size=2000)

    assert [job.data for job in claimed] == list(range(2000))
    assert [job.id for job in claimed] == sorted(job.id for job in claimed)
    assert all(uuid.UUID(job.id).version == 7 for job in claimed)


def test_after_a_large_bulk_insert_claims_read_the_claim_index_in_order(
    cv: Conveyor, database_url: str
) -> None:
    # Without fresh statistics the planner takes the new queue for a few rows and
    # sorts all of them at every claim (80 ms a claim for 100,000 jobs).
    cv.insert("older", [{"data": n} for n in range(20_000)])
    cv.insert("bulk", [{"data": n} for n in range(20_000)])

    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + Queries(cv.schema)[statements.CLAIM]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(explain, {"queue": "bulk", "limit": 500, "lease": None,
                                       "visibility": None})
        plan = "\n".join(row[0] for row in rows)
        conn.rollback()

    assert "Index Scan using job_claim" in plan
    assert "Sort Key: j_1.priority DESC" not in plan, plan


def test_a_mixed_bulk_insert_counts_each_kind_of_item_once(cv: Conveyor) -> None:
    existing = uuid.uuid4()
    cv.send("mixed", "existing", id=existing)
    fresh = uuid.uuid4()

    count = cv.insert("mixed", [
        {"data": "plain"},
        {"data": "duplicate id", "id": existing},
        {"data": "fresh id", "id": fresh},
        {"data": "throttled 1", "singleton_key": "t", "singleton_seconds": 3600},
        {"data": "throttled 2", "singleton_key": "t", "singleton_seconds": 3600},
        {"data": "debounced 1", "singleton_key": "d", "debounce_seconds": 60},
        {"data": "debounced 2", "singleton_key": "d", "debounce_seconds": 60},
        {"data": "plain again"},
    ])

    assert count == 5  # plain x2, fresh id, one throttled, one debounced
    datas = sorted(str(job.data) for job in cv.find_jobs("mixed").jobs)
    assert datas == ["debounced 2", "existing", "fresh id", "plain", "plain again", "throttled 1"]


def test_an_item_starting_near_the_end_of_pythons_calendar_is_still_inserted(
    cv: Conveyor,
) -> None:
    # Its keep_until (start + 14 days) is past year 9999: the server computes it.
    late = datetime(9999, 12, 30, tzinfo=UTC)

    assert cv.insert("late", [{"data": "soon"}, {"data": "late", "start_after": late}]) == 2
    assert cv.queue_counts("late")[JobState.CREATED] == 2


def test_a_bulk_insert_into_a_policy_queue_lets_the_policy_decide(cv: Conveyor) -> None:
    cv.create_queue("one-at-a-time", policy="exclusive")

    assert cv.insert("one-at-a-time", [{"data": n} for n in range(5)]) == 1
