"""Reaching PostgreSQL when a client starts: a refusal that waiting cannot heal
fails at once, naming its cause; anything else is tried again until the connect
timeout.

A client starts by opening one connection of its own, before its pool. A pool
that cannot connect retries in the background, logging a warning per attempt,
and its ``open`` reports only that the timeout passed, so a mistyped database
name would cost the whole timeout and then be blamed on the network. The first
connection says what really happened:

- the server answered and refused this client for good: an unknown database or
  role, a wrong or missing password, no ``pg_hba.conf`` entry. That raises
  :class:`~conveyor.errors.ConnectionRejected` at once;
- anything else may heal by itself (connection refused while the server
  restarts, "the database system is starting up", too many clients, a timeout):
  tried again with backoff until the connect timeout, then
  :class:`~conveyor.errors.ConnectionLost` with the last cause.

libpq reports these failures as text, without a SQLSTATE, so the permanent ones
are recognised by the server's English messages; a server set to another
language for its messages gets the retrying path, as before.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator

import psycopg

from conveyor.config import redact
from conveyor.errors import ConnectionLost, ConnectionRejected

_FOR_GOOD = re.compile(
    r'database "[^"]*" does not exist'
    r'|role "[^"]*" does not exist'
    r"|password authentication failed"
    r"|no pg_hba\.conf entry"
    r"|no password supplied"
    r"|authentication failed for user"
    r"|Peer authentication failed"
    r"|is not permitted to log in"
    r"|permission denied for database",
)
_FIRST_DELAY = 0.1
_MAX_DELAY = 1.0


def _cause(exc: psycopg.Error) -> str:
    """The last line libpq gave, without its "connection failed: ..." prefixes."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split("failed: ")[-1].removeprefix("FATAL:").strip()


def _judge(exc: psycopg.Error, dsn: str) -> None:
    """Raise :class:`ConnectionRejected` when ``exc`` will not heal by waiting."""
    if _FOR_GOOD.search(str(exc)):
        raise ConnectionRejected(
            f"PostgreSQL at {redact(dsn)} refused the connection: {_cause(exc)}; "
            "waiting will not help: check the database URL (database, user, password) "
            "and the server's pg_hba.conf"
        ) from None


def unreachable(dsn: str, timeout: float, last: psycopg.Error | None = None) -> ConnectionLost:
    """The error of a start that found no server within ``timeout`` seconds."""
    seen = "" if last is None else f" (last error: {_cause(last)})"
    return ConnectionLost(
        f"could not connect to PostgreSQL at {redact(dsn)} within {timeout:g} s{seen}; "
        "check that it is running and reachable"
    )


def _pauses(timeout: float) -> Iterator[float]:
    """The pauses between attempts, doubling, the last one ending at ``timeout``
    seconds from the first call."""
    deadline = time.monotonic() + timeout
    delay = _FIRST_DELAY
    while (left := deadline - time.monotonic()) > 0:
        yield min(delay, left)
        delay = min(delay * 2, _MAX_DELAY)


def reach(conninfo: str, dsn: str, timeout: float) -> None:
    """Connect once to ``conninfo`` (the DSN with Conveyor's settings), retrying
    what may heal until ``timeout``; ``dsn`` is what messages name."""
    last: psycopg.Error | None = None
    for pause in itertools.chain((0.0,), _pauses(timeout)):
        time.sleep(pause)
        try:
            psycopg.connect(conninfo, autocommit=True).close()
            return
        except psycopg.OperationalError as exc:
            _judge(exc, dsn)
            last = exc
    raise unreachable(dsn, timeout, last)


async def reach_async(conninfo: str, dsn: str, timeout: float) -> None:
    """:func:`reach` for the async client."""
    last: psycopg.Error | None = None
    for pause in itertools.chain((0.0,), _pauses(timeout)):
        await asyncio.sleep(pause)
        try:
            await (await psycopg.AsyncConnection.connect(conninfo, autocommit=True)).close()
            return
        except psycopg.OperationalError as exc:
            _judge(exc, dsn)
            last = exc
    raise unreachable(dsn, timeout, last)
