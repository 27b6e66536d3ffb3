"""Throttle with a move to the next slot (singleton_next_slot), and debounce
(debounce_seconds: within a window, the last send wins)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor.errors import InvalidOption

HOUR = 3600
THROTTLED = {"singleton_key": "user-1", "singleton_seconds": HOUR, "singleton_next_slot": True}


def job(cv: Conveyor, job_id: str | None) -> Job:
    assert job_id is not None
    found = cv.get_job(job_id)
    assert found is not None
    return found


def database_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    conn.rollback()  # a fresh transaction, so the next now() moves on
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def set_job(conn: psycopg.Connection[Any], schema: str, job_id: str, **columns: Any) -> None:
    """Changes a job behind Conveyor's back, as a worker's claim or hand-back would."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in columns
    )
    update = sql.SQL("UPDATE {}.job SET {} WHERE id = %(id)s")
    conn.execute(update.format(sql.Identifier(schema), assignments), {**columns, "id": job_id})
    conn.commit()


# --- throttle: the next slot ------------------------------------------------------


def test_a_second_send_in_a_taken_slot_moves_to_the_next_slot(cv: Conveyor) -> None:
    first = job(cv, cv.send("emails", {"n": 1}, **THROTTLED))
    second = job(cv, cv.send("emails", {"n": 2}, **THROTTLED))

    assert second.id != first.id
    assert first.singleton_on is not None and first.singleton_on.timestamp() % HOUR == 0
    assert second.singleton_on == first.singleton_on + timedelta(seconds=HOUR)
    assert second.data == {"n": 2}


def test_a_third_send_in_the_same_slot_is_rejected(cv: Conveyor) -> None:
    assert cv.send("emails", {"n": 1}, **THROTTLED) is not None
    assert cv.send("emails", {"n": 2}, **THROTTLED) is not None

    assert cv.send("emails", {"n": 3}, **THROTTLED) is None
    assert cv.queue_counts("emails")[JobState.CREATED] == 2


def test_a_job_moved_to_the_next_slot_does_not_start_before_that_slot(
    cv: Conveyor, conn: psycopg.Connection[Any]
) -> None:
    cv.send("emails", {"n": 1}, **THROTTLED)
    before = database_now(conn)

    moved = job(cv, cv.send("emails", {"n": 2}, **THROTTLED))

    assert moved.singleton_on is not None
    assert moved.start_after == moved.singleton_on
    assert moved.start_after > before
    assert moved.keep_until - moved.start_after == timedelta(days=14)


def test_a_later_start_after_survives_the_move_to_the_next_slot(cv: Conveyor) -> None:
    later = datetime(2100, 1, 1, tzinfo=UTC)
    cv.send("emails", {"n": 1}, **THROTTLED)

    moved = job(cv, cv.send("emails", {"n": 2}, start_after=later, **THROTTLED))

    assert moved.start_after == later


def test_a_send_without_next_slot_in_a_taken_slot_is_still_rejected(cv: Conveyor) -> None:
    cv.send("emails", {"n": 1}, **THROTTLED)

    assert cv.send("emails", {"n": 2}, singleton_key="user-1", singleton_seconds=HOUR) is None


def test_a_job_its_policy_rejects_does_not_move_to_the_next_slot(cv: Conveyor) -> None:
    cv.create_queue("q", policy="short")
    assert cv.send("q", {"n": 1}, **THROTTLED) is not None

    assert cv.send("q", {"n": 2}, **THROTTLED) is None
    assert cv.queue_counts("q")[JobState.CREATED] == 1


def test_a_job_with_a_taken_custom_id_does_not_move_to_the_next_slot(cv: Conveyor) -> None:
    custom = uuid.uuid4()
    cv.send("emails", {"n": 1}, id=custom, **THROTTLED)

    assert cv.send("emails", {"n": 2}, id=custom, **THROTTLED) is None
    assert job(cv, str(custom)).data == {"n": 1}


def test_a_send_that_waits_on_a_concurrent_send_of_its_slot_moves_to_the_next_slot(
    cv: Conveyor, conn: psycopg.Connection[Any], database_url: str
) -> None:
    cv.create_queue("emails")
    # The transaction commits before the pool waits for the blocked send.
    with ThreadPoolExecutor(1) as pool, conn.transaction():
        first = cv.get_job(cv.send("emails", {"n": 1}, conn=conn, **THROTTLED), conn=conn)
        waiting = pool.submit(cv.send, "emails", {"n": 2}, **THROTTLED)
        wait_until_blocked_by(database_url, conn.info.backend_pid)
    # The first try waited for the uncommitted job of the slot, and met it once it
    # committed; the second try took the next slot in the same statement.
    second = job(cv, waiting.result(timeout=30))
    assert first is not None and first.singleton_on is not None
    assert second.singleton_on == first.singleton_on + timedelta(seconds=HOUR)


def wait_until_blocked_by(database_url: str, blocker: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as monitor:
        for _ in range(300):
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY (pg_blocking_pids(pid))",
                [blocker],
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the second send never waited for the first")


def test_insert_moves_items_in_a_taken_slot_to_the_next_slot(cv: Conveyor) -> None:
    items = [{"data": {"n": n}, **THROTTLED} for n in range(3)]

    assert cv.insert("emails", items) == 2

    jobs = cv.find_jobs("emails").jobs
    slots = sorted(j.singleton_on for j in jobs if j.singleton_on is not None)
    assert len(slots) == 2
    assert slots[1] - slots[0] == timedelta(seconds=HOUR)


def test_insert_moves_an_item_whose_slot_an_earlier_send_took(cv: Conveyor) -> None:
    first = job(cv, cv.send("emails", {"n": 0}, **THROTTLED))

    assert cv.insert("emails", [{"data": {"n": 1}, **THROTTLED}, {"data": {"n": 2}}]) == 2

    [moved] = cv.find_jobs("emails", data_contains={"n": 1}).jobs
    assert first.singleton_on is not None
    assert moved.singleton_on == first.singleton_on + timedelta(seconds=HOUR)


def test_singleton_next_slot_without_singleton_seconds_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="singleton_seconds"):
        cv.send("emails", {}, singleton_key="k", singleton_next_slot=True)

    assert cv.list_queues() == []


# --- debounce ---------------------------------------------------------------------


def test_a_debounced_job_starts_after_its_window(cv: Conveyor) -> None:
    sent = job(cv, cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30))

    assert sent.start_after - sent.created_at == timedelta(seconds=30)


def test_a_second_debounced_send_replaces_the_data_and_returns_the_same_id(cv: Conveyor) -> None:
    first = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)

    second = cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30)

    assert second == first
    assert job(cv, first).data == {"v": 2}
    assert cv.queue_counts("index")[JobState.CREATED] == 1


def test_a_second_debounced_send_pushes_the_start_back(
    cv: Conveyor, conn: psycopg.Connection[Any]
) -> None:
    first = job(cv, cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30))
    before = database_now(conn)

    cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=600)

    after = database_now(conn)
    replaced = job(cv, first.id)
    assert before + timedelta(seconds=600) <= replaced.start_after <= after + timedelta(seconds=600)
    assert replaced.keep_until - replaced.start_after == timedelta(days=14)
    assert replaced.created_at == first.created_at


def test_a_replaced_debounced_job_takes_every_option_from_the_last_send(cv: Conveyor) -> None:
    cv.create_queue("index", retry_limit=4)
    first = cv.send("index", {}, singleton_key="doc-1", debounce_seconds=30, priority=5,
                    retry_limit=9, group_key="tenant-a")

    cv.send("index", {}, singleton_key="doc-1", debounce_seconds=30, expire_in=45)

    replaced = job(cv, first)
    assert replaced.priority == 0
    assert replaced.retry_limit == 4
    assert replaced.expire_in == timedelta(seconds=45)
    assert replaced.group_key is None


def test_a_debounced_job_that_has_started_is_not_replaced(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str
) -> None:
    first = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)
    assert first is not None
    set_job(conn, schema, first, state="active", attempt=1)

    second = cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30)

    assert second is not None and second != first
    assert job(cv, first).data == {"v": 1}
    assert job(cv, second).data == {"v": 2}


def test_a_debounced_job_handed_back_to_its_queue_is_not_replaced(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str
) -> None:
    first = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)
    assert first is not None
    set_job(conn, schema, first, state="created", attempt=1)

    second = cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30)

    assert second is not None and second != first
    assert job(cv, first).data == {"v": 1}


def test_debounce_counts_by_queue_and_key(cv: Conveyor) -> None:
    a = cv.send("index", {}, singleton_key="doc-1", debounce_seconds=30)
    b = cv.send("index", {}, singleton_key="doc-2", debounce_seconds=30)
    c = cv.send("other", {}, singleton_key="doc-1", debounce_seconds=30)

    assert len({a, b, c}) == 3


def test_a_debounced_send_leaves_plain_jobs_with_the_same_key_alone(cv: Conveyor) -> None:
    plain = cv.send("index", {"v": 0}, singleton_key="doc-1")
    debounced = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)

    assert debounced is not None and debounced != plain
    assert cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30) == debounced
    assert job(cv, plain).data == {"v": 0}


def test_insert_debounces_and_the_last_item_of_a_key_wins(cv: Conveyor) -> None:
    waiting = cv.send("index", {"v": 0}, singleton_key="doc-1", debounce_seconds=30)
    items = [
        {"data": {"v": 1}, "singleton_key": "doc-1", "debounce_seconds": 30},
        {"data": {"v": 2}, "singleton_key": "doc-2", "debounce_seconds": 30},
        {"data": {"v": 3}, "singleton_key": "doc-1", "debounce_seconds": 30},
        {"data": {"v": 4}},
    ]

    assert cv.insert("index", items) == 3

    assert job(cv, waiting).data == {"v": 3}
    assert cv.queue_counts("index")[JobState.CREATED] == 3


def test_a_debounced_job_in_a_singleton_queue_is_replaced_too(cv: Conveyor) -> None:
    cv.create_queue("index", policy="singleton")
    first = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)

    assert cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30) == first
    assert job(cv, first).data == {"v": 2}


@pytest.mark.parametrize("policy", ["short", "stately", "exclusive"])
def test_debounce_in_a_queue_whose_policy_could_reject_it_is_refused(
    cv: Conveyor, policy: str
) -> None:
    cv.create_queue("index", policy=policy)

    with pytest.raises(InvalidOption, match=policy):
        cv.send("index", {}, singleton_key="doc-1", debounce_seconds=30)

    assert cv.find_jobs("index").jobs == []


def test_an_insert_with_a_refused_debounced_item_inserts_nothing(cv: Conveyor) -> None:
    cv.create_queue("index", policy="short")
    items = [{"data": {"v": 1}}, {"data": {"v": 2}, "singleton_key": "k", "debounce_seconds": 30}]

    with pytest.raises(InvalidOption, match="short"):
        cv.insert("index", items)

    assert cv.find_jobs("index").jobs == []
    assert cv.insert("index", [{"data": {"v": 3}}]) == 1  # the staging table is gone


def test_debounce_without_singleton_key_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="singleton_key"):
        cv.send("index", {}, debounce_seconds=30)

    assert cv.list_queues() == []


def test_debounce_combined_with_singleton_seconds_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="singleton_seconds"):
        cv.send("index", {}, singleton_key="k", debounce_seconds=30, singleton_seconds=60)

    assert cv.list_queues() == []


def test_debounce_with_a_custom_id_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="id"):
        cv.send("index", {}, singleton_key="k", debounce_seconds=30, id=uuid.uuid4())

    assert cv.list_queues() == []


def test_an_insert_item_with_debounce_and_no_key_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="singleton_key"):
        cv.insert("index", [{"data": 1}, {"data": 2, "debounce_seconds": 30}])

    assert cv.list_queues() == []


def test_a_debounced_send_in_the_callers_transaction_replaces_once_committed(
    cv: Conveyor, conn: psycopg.Connection[Any]
) -> None:
    first = cv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)
    with conn.transaction():
        assert cv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30,
                       conn=conn) == first
        assert job(cv, first).data == {"v": 1}  # not committed yet

    assert job(cv, first).data == {"v": 2}


async def test_the_async_client_debounces_and_moves_to_the_next_slot(
    acv: AsyncConveyor,
) -> None:
    first = await acv.send("index", {"v": 1}, singleton_key="doc-1", debounce_seconds=30)
    assert await acv.send("index", {"v": 2}, singleton_key="doc-1", debounce_seconds=30) == first

    assert await acv.send("emails", {}, **THROTTLED) is not None
    assert await acv.send("emails", {}, **THROTTLED) is not None
    assert await acv.send("emails", {}, **THROTTLED) is None
