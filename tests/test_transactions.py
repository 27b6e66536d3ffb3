"""Jobs commit or roll back with the caller's own transaction."""

from __future__ import annotations

import psycopg
import pytest

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor.errors import InvalidArgument


@pytest.fixture
def orders(conn: psycopg.Connection, schema: str, cv: Conveyor) -> str:
    """A business table of the application's own, next to Conveyor's schema."""
    table = f'"{schema}".orders'
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text)")
    conn.commit()
    return table


@pytest.fixture
def order_job(cv: Conveyor, conn: psycopg.Connection, orders: str) -> Job:
    """Order 1, committed as 'new', and the claimed job that fulfils it."""
    conn.execute(f"INSERT INTO {orders} VALUES (1, 'new')")
    conn.commit()
    cv.send("fulfil", {"order": 1})
    [job] = cv.fetch("fulfil")
    return job


def test_a_job_sent_in_a_committed_transaction_is_stored(
    cv: Conveyor, conn: psycopg.Connection, orders: str
) -> None:
    with conn.transaction():
        conn.execute(f"INSERT INTO {orders} VALUES (1, 'new')")
        job_id = cv.send("fulfil", {"order": 1}, conn=conn)

    assert cv.get_job(job_id) is not None  # type: ignore[arg-type]


def test_a_job_sent_in_a_rolled_back_transaction_disappears(
    cv: Conveyor, conn: psycopg.Connection, orders: str
) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute(f"INSERT INTO {orders} VALUES (1, 'new')")
        job_id = cv.send("fulfil", {"order": 1}, conn=conn)
        raise RuntimeError("the request failed")

    assert cv.get_job(job_id) is None  # type: ignore[arg-type]
    assert conn.execute(f"SELECT count(*) FROM {orders}").fetchone() == (0,)


def test_an_uncommitted_job_is_invisible_to_other_connections(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    job_id = cv.send("fulfil", {}, conn=conn)  # conn is not in autocommit: still open

    assert cv.get_job(job_id) is None  # type: ignore[arg-type]
    assert cv.fetch("fulfil") == []
    conn.commit()
    assert cv.get_job(job_id) is not None  # type: ignore[arg-type]


def test_a_bulk_insert_rolls_back_with_the_callers_transaction(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    cv.create_queue("bulk")
    with pytest.raises(RuntimeError), conn.transaction():
        assert cv.insert("bulk", [{"data": n} for n in range(100)], conn=conn) == 100
        raise RuntimeError("abort")

    assert cv.queue_counts("bulk")[JobState.CREATED] == 0


def test_a_bulk_insert_commits_with_the_callers_transaction(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    with conn.transaction():
        cv.insert("bulk", [{"data": n} for n in range(100)], conn=conn)

    assert cv.queue_counts("bulk")[JobState.CREATED] == 100


def test_complete_commits_together_with_business_state(
    cv: Conveyor, conn: psycopg.Connection, orders: str, order_job: Job
) -> None:
    with conn.transaction():
        conn.execute(f"UPDATE {orders} SET status = 'shipped' WHERE id = 1")
        cv.complete(order_job, output={"shipped": True}, conn=conn)

    done = cv.get_job(order_job.id)
    assert done is not None and done.state is JobState.COMPLETED
    assert conn.execute(f"SELECT status FROM {orders}").fetchone() == ("shipped",)


def test_a_completion_rolled_back_with_business_state_leaves_the_job_active(
    cv: Conveyor, conn: psycopg.Connection, orders: str, order_job: Job
) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute(f"UPDATE {orders} SET status = 'shipped' WHERE id = 1")
        cv.complete(order_job, output={"shipped": True}, conn=conn)
        raise RuntimeError("payment provider down")

    still = cv.get_job(order_job.id)
    assert still is not None and still.state is JobState.ACTIVE
    assert conn.execute(f"SELECT status FROM {orders}").fetchone() == ("new",)


def test_fail_rolls_back_with_the_callers_transaction(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    cv.send("fulfil", {}, retry_limit=0, dead_letter="dlq")
    [job] = cv.fetch("fulfil")

    with pytest.raises(RuntimeError), conn.transaction():
        cv.fail(job, "fatal", conn=conn)
        raise RuntimeError("abort")

    still = cv.get_job(job.id)
    assert still is not None and still.state is JobState.ACTIVE
    assert cv.get_queue("dlq") is None


def test_the_sync_client_refuses_an_async_connection(
    cv: Conveyor, aconn: psycopg.AsyncConnection
) -> None:
    with pytest.raises(InvalidArgument, match="Connection"):
        cv.send("q", {}, conn=aconn)


async def test_an_async_send_commits_with_the_callers_transaction(
    acv: AsyncConveyor, aconn: psycopg.AsyncConnection
) -> None:
    async with aconn.transaction():
        job_id = await acv.send("fulfil", {"order": 1}, conn=aconn)

    assert await acv.get_job(job_id) is not None  # type: ignore[arg-type]


async def test_an_async_send_rolls_back_with_the_callers_transaction(
    acv: AsyncConveyor, aconn: psycopg.AsyncConnection
) -> None:
    with pytest.raises(RuntimeError):
        async with aconn.transaction():
            job_id = await acv.send("fulfil", {"order": 1}, conn=aconn)
            await acv.insert("fulfil", [{"data": 2}], conn=aconn)
            raise RuntimeError("abort")

    assert await acv.get_job(job_id) is None  # type: ignore[arg-type]
    assert (await acv.queue_counts("fulfil"))[JobState.CREATED] == 0


async def test_an_async_complete_commits_with_the_callers_transaction(
    acv: AsyncConveyor, aconn: psycopg.AsyncConnection
) -> None:
    await acv.send("fulfil", {})
    [job] = await acv.fetch("fulfil")

    async with aconn.transaction():
        await acv.complete(job, output=1, conn=aconn)

    done = await acv.get_job(job.id)
    assert done is not None and done.state is JobState.COMPLETED


async def test_the_async_client_refuses_a_sync_connection(
    acv: AsyncConveyor, conn: psycopg.Connection
) -> None:
    with pytest.raises(InvalidArgument, match="AsyncConnection"):
        await acv.send("q", {}, conn=conn)


def test_a_bulk_insert_on_an_idle_connection_waits_for_the_callers_commit(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    cv.insert("bulk", [{"data": n} for n in range(10)], conn=conn)  # opens conn's transaction

    assert cv.queue_counts("bulk")[JobState.CREATED] == 0
    conn.rollback()
    assert cv.queue_counts("bulk")[JobState.CREATED] == 0


def test_create_queue_on_an_idle_connection_rolls_back_with_the_caller(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    cv.create_queue("reports", retry_limit=4, conn=conn)
    conn.rollback()

    assert cv.get_queue("reports") is None


def test_two_bulk_inserts_in_one_transaction_both_land(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    with conn.transaction():
        cv.insert("bulk", [{"data": n} for n in range(10)], conn=conn)
        cv.insert("bulk", [{"data": n} for n in range(5)], conn=conn)

    assert cv.queue_counts("bulk")[JobState.CREATED] == 15


def test_a_failed_bulk_insert_leaves_the_callers_transaction_usable(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    with conn.transaction():
        cv.send("bulk", "kept", conn=conn)
        with pytest.raises(InvalidArgument):
            cv.insert("bulk", [{"data": 1}, {"data": 2, "priority": "high"}], conn=conn)
        cv.insert("bulk", [{"data": 3}], conn=conn)

    assert cv.queue_counts("bulk")[JobState.CREATED] == 2


def test_a_large_bulk_insert_leaves_the_callers_statistics_target_as_it_was(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    with conn.transaction():
        conn.execute("SET LOCAL default_statistics_target = 250")
        cv.insert("bulk", [{"data": n} for n in range(10_000)], conn=conn)  # runs ANALYZE
        target = conn.execute("SHOW default_statistics_target").fetchone()

    assert target == ("250",)
    assert cv.queue_counts("bulk")[JobState.CREATED] == 10_000
