"""Wake-ups: a client's sends notify their queue's workers, debounced, and no send
is ever left unannounced (``notify.NotifyGate``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest

from conveyor import AsyncConveyor, Conveyor
from conveyor._db.notify import DEBOUNCE


@pytest.fixture
def listening(database_url: str, schema: str) -> Iterator[psycopg.Connection]:
    """A connection listening on the schema's channel, as a worker's listener does."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'LISTEN "{schema}"')
        yield conn


def notifications(conn: psycopg.Connection, timeout: float) -> list[tuple[str, float]]:
    """Each queue notified within ``timeout`` seconds, with when it arrived."""
    return [(notice.payload, time.monotonic()) for notice in conn.notifies(timeout=timeout)]


def test_a_quiet_send_is_announced_after_it_committed(
    cv: Conveyor, listening: psycopg.Connection,
) -> None:
    cv.send("q", 1)  # notifies
    cv.send("q", 2)  # within the debounce window: quiet
    committed = time.monotonic()

    arrived = notifications(listening, timeout=1.0)

    assert [queue for queue, _ in arrived] == ["q", "q"]
    assert arrived[1][1] >= committed
    assert arrived[1][1] - committed < 0.5


async def test_an_async_clients_quiet_send_is_announced_after_it_committed(
    database_url: str, schema: str, listening: psycopg.Connection,
) -> None:
    async with AsyncConveyor(database_url, schema=schema) as acv:
        await acv.send("q", 1)
        await acv.send("q", 2)
        await asyncio.sleep(0.5)  # the client's timer, not its stop, sends the second
        arrived = notifications(listening, timeout=0.2)

    assert [queue for queue, _ in arrived] == ["q", "q"]


def test_a_client_stopping_sends_the_notifications_it_owes(
    database_url: str, schema: str, listening: psycopg.Connection,
) -> None:
    with Conveyor(database_url, schema=schema) as cv:
        cv.send("q", 1)
        cv.send("q", 2)
    stopped = time.monotonic()

    arrived = notifications(listening, timeout=0.5)

    assert [queue for queue, _ in arrived] == ["q", "q"]
    assert arrived[1][1] - stopped < 0.5


def test_a_steady_stream_of_sends_notifies_at_most_once_per_window(
    cv: Conveyor, listening: psycopg.Connection,
) -> None:
    began = time.monotonic()
    for n in range(300):
        cv.send("q", n)
    elapsed = time.monotonic() - began
    time.sleep(4 * DEBOUNCE)  # the last owed notification

    arrived = notifications(listening, timeout=0.3)

    # Leading and owed notifications alike are at least a window apart; the last
    # owed one comes up to two windows after the last send.
    assert 2 <= len(arrived) <= elapsed / DEBOUNCE + 4


def test_sends_in_the_callers_transaction_always_notify(
    cv: Conveyor, listening: psycopg.Connection, conn: psycopg.Connection,
) -> None:
    with conn.transaction():
        for n in range(3):
            cv.send("q", n, conn=conn)

    # One transaction delivers a payload once, however many times it notified.
    assert [queue for queue, _ in notifications(listening, timeout=0.3)] == ["q"]
