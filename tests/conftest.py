"""Every test runs against a real PostgreSQL: the one at CONVEYOR_TEST_DATABASE_URL
when it is set, otherwise an embedded one this session starts in a temporary
directory. Each test gets a schema of its own, dropped afterwards."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from processes import Workers
from tcp_proxy import TcpProxy

from conveyor import AsyncConveyor, Conveyor
from conveyor.embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    configured = os.environ.get("CONVEYOR_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with (
        tempfile.TemporaryDirectory(prefix="conveyor-test-") as folder,
        EmbeddedPostgres(Path(folder) / "pgdata", cleanup="delete") as server,
    ):
        yield server.url


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def cv(database_url: str, schema: str) -> Iterator[Conveyor]:
    with Conveyor(database_url, schema=schema) as client:
        yield client


@pytest.fixture
async def acv(database_url: str, schema: str) -> AsyncIterator[AsyncConveyor]:
    async with AsyncConveyor(database_url, schema=schema) as client:
        yield client


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A plain connection of the application's own, outside Conveyor's pool."""
    with psycopg.connect(database_url) as connection:
        yield connection


@pytest.fixture
async def aconn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        yield connection


@pytest.fixture(scope="module")
def private_server() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test module's own, which its tests may restart or break;
    never the shared one."""
    with tempfile.TemporaryDirectory(prefix="conveyor-private-") as folder:
        server = EmbeddedPostgres(Path(folder) / "pgdata", cleanup="delete")
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy on 127.0.0.1 in front of the test database, which the test may
    cut like a network partition (``tcp_proxy.py``)."""
    with TcpProxy(database_url) as tcp_proxy:
        yield tcp_proxy


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Worker subprocesses for this test; whatever is left is killed at teardown and
    their logs printed."""
    spawned = Workers(tmp_path)
    try:
        yield spawned
    finally:
        spawned.close()
