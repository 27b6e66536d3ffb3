"""pytest fixtures for applications that use Conveyor, loaded automatically once
Conveyor is installed (the ``pytest11`` entry point ``conveyor``).

- ``conveyor_dsn`` (session): the test database, from ``--conveyor-dsn``, else
  ``CONVEYOR_TEST_DATABASE_URL``, else ``DATABASE_URL``.
- ``conveyor_schema``: a fresh schema name of the test's own, dropped afterwards.
- ``conveyor_client``: a started :class:`~conveyor.Conveyor` on that schema.
- ``conveyor_async_client``: a started :class:`~conveyor.AsyncConveyor` on that
  schema (needs pytest-asyncio).

Nothing here touches a database until a test asks for one of these fixtures.
Example::

    from conveyor.testing import drain

    def test_welcome_mail_is_sent(conveyor_client):
        conveyor_client.work("mail", send_mail)
        conveyor_client.send("mail", {"to": "ada@example.com"})
        assert drain(conveyor_client).completed == 1
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import psycopg
import pytest
from psycopg import sql

from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

_DSN_VARIABLES = ("CONVEYOR_TEST_DATABASE_URL", "DATABASE_URL")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("conveyor").addoption(
        "--conveyor-dsn", metavar="URL", default=None,
        help="PostgreSQL for the conveyor_* fixtures (default: CONVEYOR_TEST_DATABASE_URL, "
             "then DATABASE_URL); each test works in a schema of its own")


@pytest.fixture(scope="session")
def conveyor_dsn(pytestconfig: pytest.Config) -> str:
    """The PostgreSQL the ``conveyor_*`` fixtures use."""
    dsn = pytestconfig.getoption("conveyor_dsn")
    for variable in _DSN_VARIABLES:
        dsn = dsn or os.environ.get(variable)
    if not dsn:
        raise ConfigurationError(
            "the conveyor fixtures need a PostgreSQL: pass --conveyor-dsn URL or set "
            "CONVEYOR_TEST_DATABASE_URL (or DATABASE_URL)")
    return str(dsn)


@pytest.fixture
def conveyor_schema(conveyor_dsn: str) -> Iterator[str]:
    """A schema name no other test uses; the schema is dropped after the test."""
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(conveyor_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def conveyor_client(conveyor_dsn: str, conveyor_schema: str) -> Iterator[Conveyor]:
    """A started :class:`~conveyor.Conveyor` on the test's own schema."""
    with Conveyor(conveyor_dsn, schema=conveyor_schema) as client:
        yield client


def _async_fixture(function: F) -> F:
    """pytest-asyncio's fixture decorator, which works in its strict mode too; without
    it, pytest itself reports an async fixture that no plugin runs."""
    decorate: Any
    try:
        import pytest_asyncio
    except ImportError:
        decorate = pytest.fixture
    else:
        decorate = pytest_asyncio.fixture
    return cast(F, decorate(function))


@_async_fixture
async def conveyor_async_client(
    conveyor_dsn: str, conveyor_schema: str
) -> AsyncIterator[AsyncConveyor]:
    """A started :class:`~conveyor.AsyncConveyor` on the test's own schema."""
    async with AsyncConveyor(conveyor_dsn, schema=conveyor_schema) as client:
        yield client
