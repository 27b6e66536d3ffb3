"""Faults: a killed backend, a restarted server, an unreachable one, a client used
before start. Every failure surfaces as ConnectionLost and the same client recovers.
Connections carry TCP keepalives and a user timeout, so a vanished server is noticed.

Restarts use a PostgreSQL cluster of this module's own, never the shared one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import psycopg.conninfo
import pytest
from tcp_proxy import TcpProxy

from conveyor import AsyncConveyor, Conveyor, JobState
from conveyor.config import NETWORK_DEFAULTS
from conveyor.embedded import EmbeddedPostgres
from conveyor.errors import ConnectionLost, ConnectionRejected, NotStarted

T = TypeVar("T")

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none"
UNREACHABLE_WITH_PASSWORD = "postgresql://user:s3cret@127.0.0.1:1/none"
MAX_ATTEMPTS = 5
PAUSE = 0.2  # seconds between attempts after an outage


def _tagged(database_url: str, tag: str) -> str:
    """The DSN with an application_name, so this test's backends can be told apart."""
    return psycopg.conninfo.make_conninfo(database_url, application_name=tag)


def _terminate_backends(database_url: str, tag: str) -> int:
    """Terminate the backends of the client tagged ``tag`` and wait (bounded) until
    they are gone; returns how many there were."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        terminated = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            [tag],
        ).fetchone()
        assert terminated is not None
        for _ in range(100):
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [tag]
            ).fetchone()
            assert left is not None
            if left[0] == 0:
                break
            time.sleep(0.05)
    return int(terminated[0])


def _until_reconnected(call: Callable[[], T]) -> tuple[T, int]:
    """The call's result once it succeeds, and how many ConnectionLost came first.
    Any other error propagates; more than MAX_ATTEMPTS failures fail the test."""
    for lost in range(MAX_ATTEMPTS):
        try:
            return call(), lost
        except ConnectionLost:
            time.sleep(PAUSE)
    pytest.fail(f"still ConnectionLost after {MAX_ATTEMPTS} attempts")


async def _until_reconnected_async(call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    for lost in range(MAX_ATTEMPTS):
        try:
            return await call(), lost
        except ConnectionLost:
            await asyncio.sleep(PAUSE)
    pytest.fail(f"still ConnectionLost after {MAX_ATTEMPTS} attempts")


# --- a terminated backend -------------------------------------------------------------


def test_terminated_backend_raises_connection_lost_and_the_same_client_recovers(
    database_url: str, schema: str
) -> None:
    tag = f"conveyor-kill-{uuid.uuid4().hex[:8]}"
    with Conveyor(_tagged(database_url, tag), schema=schema) as client:
        job_id = client.send("q", {"n": 1})
        assert _terminate_backends(database_url, tag) >= 1
        # The pool may hand out the killed connection (ConnectionLost) or a healthy
        # one; either way at most three more calls are needed, and nothing but
        # ConnectionLost may be raised on the way.
        counts, lost = _until_reconnected(lambda: client.queue_counts("q"))
        assert lost <= 3
        assert counts[JobState.CREATED] == 1
        assert client.get_job(job_id) is not None
        assert client.send("q", {"n": 2}) is not None


async def test_terminated_backend_raises_connection_lost_and_the_same_async_client_recovers(
    database_url: str, schema: str
) -> None:
    tag = f"conveyor-kill-{uuid.uuid4().hex[:8]}"
    async with AsyncConveyor(_tagged(database_url, tag), schema=schema) as client:
        job_id = await client.send("q", {"n": 1})
        assert _terminate_backends(database_url, tag) >= 1
        counts, lost = await _until_reconnected_async(lambda: client.queue_counts("q"))
        assert lost <= 3
        assert counts[JobState.CREATED] == 1
        assert await client.get_job(job_id) is not None


# --- a restarted server ---------------------------------------------------------------


@pytest.mark.slow
def test_client_survives_a_postgres_restart_and_keeps_its_jobs(
    private_server: EmbeddedPostgres,
) -> None:
    schema = f"restart_{uuid.uuid4().hex[:12]}"
    with Conveyor(private_server.url, schema=schema) as client:
        for n in range(5):
            client.send("q", {"n": n})
        private_server.restart()
        _, lost = _until_reconnected(lambda: client.send("q", {"n": 5}))
        assert lost < MAX_ATTEMPTS
        counts = client.queue_counts("q")
    assert counts[JobState.CREATED] == 6  # the five from before, and the one after


@pytest.mark.slow
async def test_async_client_survives_a_postgres_restart_and_keeps_its_jobs(
    private_server: EmbeddedPostgres,
) -> None:
    schema = f"restart_{uuid.uuid4().hex[:12]}"
    async with AsyncConveyor(private_server.url, schema=schema) as client:
        for n in range(5):
            await client.send("q", {"n": n})
        await asyncio.to_thread(private_server.restart)
        _, lost = await _until_reconnected_async(lambda: client.send("q", {"n": 5}))
        assert lost < MAX_ATTEMPTS
        counts = await client.queue_counts("q")
    assert counts[JobState.CREATED] == 6


# --- an unreachable server ------------------------------------------------------------


def test_unreachable_database_raises_connection_lost_at_start() -> None:
    client = Conveyor(UNREACHABLE, connect_timeout=1)
    with pytest.raises(ConnectionLost):
        client.start()
    with pytest.raises(NotStarted):  # the failed start left no pool behind
        client.schema_version()


async def test_unreachable_database_raises_connection_lost_at_async_start() -> None:
    client = AsyncConveyor(UNREACHABLE, connect_timeout=1)
    with pytest.raises(ConnectionLost):
        await client.start()
    with pytest.raises(NotStarted):
        await client.schema_version()


def test_connection_lost_at_start_does_not_reveal_the_password() -> None:
    with pytest.raises(ConnectionLost) as info:
        Conveyor(UNREACHABLE_WITH_PASSWORD, connect_timeout=1).start()
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value)
    assert "127.0.0.1" in str(info.value)  # it does say where it tried


def _elsewhere(database_url: str, **parts: str) -> str:
    """The test database's URL with ``parts`` (dbname, user) replaced."""
    return psycopg.conninfo.make_conninfo(database_url, **parts)


@pytest.mark.parametrize(("part", "cause"), [
    ({"dbname": "no_such_database"}, 'database "no_such_database" does not exist'),
    ({"user": "no_such_role"}, 'role "no_such_role" does not exist'),
])
def test_a_database_or_role_that_does_not_exist_fails_at_once_naming_it(
    database_url: str, part: dict[str, str], cause: str, caplog: pytest.LogCaptureFixture,
) -> None:
    client = Conveyor(_elsewhere(database_url, **part), connect_timeout=30)
    began = time.monotonic()

    with pytest.raises(ConnectionRejected) as info:
        client.start()

    assert time.monotonic() - began < 5  # not the 30 s timeout
    assert cause in str(info.value)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]
    with pytest.raises(NotStarted):
        client.schema_version()


async def test_an_async_client_naming_a_missing_database_fails_at_once(
    database_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    client = AsyncConveyor(_elsewhere(database_url, dbname="no_such_database"),
                           connect_timeout=30)
    began = time.monotonic()

    with pytest.raises(ConnectionRejected, match='database "no_such_database" does not exist'):
        await client.start()

    assert time.monotonic() - began < 5
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]


def test_a_refused_connection_is_tried_until_the_timeout_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    began = time.monotonic()

    with pytest.raises(ConnectionLost) as info:
        Conveyor(UNREACHABLE, connect_timeout=1.5).start()

    assert time.monotonic() - began >= 1.0  # it kept trying
    assert "Connection refused" in str(info.value)
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]


def test_a_client_started_while_the_server_is_down_connects_once_it_is_up(
    database_url: str, schema: str,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: connections are refused
    down = psycopg.conninfo.make_conninfo(database_url, host="127.0.0.1",
                                          hostaddr="127.0.0.1", port=port)
    client = Conveyor(down, schema=schema, connect_timeout=60)
    starting = threading.Thread(target=client.start)
    starting.start()
    time.sleep(1.0)
    assert starting.is_alive()  # still trying: a refused connection is not for good

    with TcpProxy(database_url, port=port):  # the server is up
        starting.join(timeout=60)
        try:
            assert not starting.is_alive()
            assert client.schema_version() > 0
        finally:
            client.stop()


# --- before start ---------------------------------------------------------------------


def test_call_before_start_raises_not_started(database_url: str, schema: str) -> None:
    with pytest.raises(NotStarted):
        Conveyor(database_url, schema=schema).send("q", {"n": 1})


async def test_async_call_before_start_raises_not_started(database_url: str, schema: str) -> None:
    with pytest.raises(NotStarted):
        await AsyncConveyor(database_url, schema=schema).send("q", {"n": 1})


def test_call_after_stop_raises_not_started(cv: Conveyor) -> None:
    cv.stop()
    with pytest.raises(NotStarted):
        cv.send("q", {"n": 1})


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York"])
def test_times_are_read_in_utc_whatever_the_session_zone(
    database_url: str, schema: str, zone: str
) -> None:
    from datetime import UTC

    local = psycopg.conninfo.make_conninfo(database_url, options=f"-c TimeZone={zone}")
    with Conveyor(local, schema=schema) as client:
        job_id = client.send("q", None)
        job = client.get_job(job_id)  # type: ignore[arg-type]

    assert job is not None
    assert job.created_at.tzinfo is UTC
    assert job.start_after.utcoffset() is not None and not job.start_after.utcoffset()


async def test_times_are_read_in_utc_by_the_async_client(database_url: str, schema: str) -> None:
    from datetime import UTC

    local = psycopg.conninfo.make_conninfo(database_url, options="-c TimeZone=Asia/Tokyo")
    async with AsyncConveyor(local, schema=schema) as client:
        job_id = await client.send("q", None)
        job = await client.get_job(job_id)  # type: ignore[arg-type]

    assert job is not None and job.created_at.tzinfo is UTC


def test_pool_connections_carry_tcp_keepalives_and_a_user_timeout(cv: Conveyor) -> None:
    assert cv._pool is not None
    with cv._pool.connection() as conn:
        params = conn.info.get_parameters()
    assert {name: params.get(name) for name in NETWORK_DEFAULTS} == NETWORK_DEFAULTS


def test_the_dsns_own_keepalive_setting_wins(database_url: str, schema: str) -> None:
    dsn = psycopg.conninfo.make_conninfo(database_url, keepalives_idle=7)
    with Conveyor(dsn, schema=schema) as client:
        assert client._pool is not None
        with client._pool.connection() as conn:
            assert conn.info.get_parameters()["keepalives_idle"] == "7"
