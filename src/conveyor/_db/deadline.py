"""Deadlines on a worker's own statements: a connection that stops answering is
given up, and the statement tried again on another.

A network that drops packets (a partition, a firewall or NAT that forgot the
connection) closes nothing, so a statement sent into it waits for its answer
forever, and so does whatever waits on it: the claim loop, the completer, the
heartbeat. TCP's own timers (``config.NETWORK_DEFAULTS``) notice a vanished peer
after about a minute, and never when something in between acknowledges the bytes
(a proxy, a pooler, loopback). So each of a worker's own short operations (claims,
outcome batches, heartbeats, rescue passes, presence, leader elections, the
listener's LISTEN and health check) runs under ``statement_deadline``. Past it:

- the connection's socket is shut down. Whatever waits on it wakes at once with a
  connection error, as if the server had closed it; psycopg marks the connection
  broken, its transaction is not rolled back over the dead path, and the pool
  discards it rather than hand it out again. Cancelling the waiting task instead
  would have psycopg send a cancel request, over the same dead path, and wait for
  the statement to end: ten seconds more, for nothing.
- the caller gets :class:`Unanswered`, a ``ConnectionLost``, and retries as after
  any lost connection: claims after their backoff, outcome batches until written
  (they are fenced by attempt, so one that committed after all is not applied
  twice), heartbeats at the next beat, the listener by reconnecting.

As after any lost connection, whether the statement took effect is unknown: a
claim that committed leaves jobs active with no one to run them, and rescue
retries them once their lease lapses.

The server has its side too. A worker's transaction of several round trips (a
rescue pass, a pause with its jobs handed back, maintenance) cut off in the middle
would leave its session idle in transaction, holding its rows' locks, until the
server's own keepalives ended it (two hours by default). So such a transaction
first sets ``idle_in_transaction_session_timeout`` to the deadline, for itself
only (``plan.guarded``): the server then ends it, locks and all, once the deadline
has passed without a word from the worker.

Calls the application makes (``send``, ``insert``, ``migrate``...) and maintenance
(whole-table statistics and batched deletes, which may rightly take longer) run
without a deadline: TCP's timers are theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType
from typing import Any, Self

import psycopg

from conveyor.errors import ConnectionLost


class Unanswered(ConnectionLost):
    """PostgreSQL did not answer within the statement deadline: the connection was
    given up."""


class Deadline:
    """Gives ``conn`` up unless the block ends within ``seconds``::

        with Deadline(conn, 15.0):
            await conn.execute(...)     # raises Unanswered past 15 s

    Past the deadline the connection's socket is shut down; the block then fails
    with :class:`Unanswered`. A block that finished anyway (its answer came in the
    same moment) keeps its result, but the connection is closed all the same.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any], seconds: float) -> None:
        self._conn = conn
        self._seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self.expired = False

    def __enter__(self) -> Self:
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expire)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.expired:
            return
        self._conn.pgconn.finish()  # broken: the pool discards it
        if isinstance(exc, psycopg.Error | ConnectionLost):
            raise Unanswered(
                f"PostgreSQL did not answer within {self._seconds:g} s (statement_deadline); "
                "gave the connection up, and the next try uses another"
            ) from exc

    def _expire(self) -> None:
        self.expired = True
        _shut_down(self._conn)


def _shut_down(conn: psycopg.AsyncConnection[Any]) -> None:
    """Shut the connection's socket down: reads see its end, writes fail, and no
    byte needs to cross the network for either. The descriptor stays libpq's."""
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:  # already lost
        return
    sock = socket.socket(fileno=fd)
    try:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.detach()

