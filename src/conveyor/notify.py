"""The LISTEN side of wake-ups: one connection per worker process.

``enqueue.sql`` notifies the schema's channel with the queue's name when a job is
inserted. The listener holds a dedicated connection in autocommit, listens on that
channel, and calls ``on_wake(queue)`` for each notification. Every
``health_interval`` seconds without one it runs a trivial query, under the
statement deadline (``_deadline.py``), so a connection that died silently is
noticed within ``health_interval`` plus that deadline, whatever TCP says. When the
connection fails it reconnects with backoff (0.2 s doubling to 10 s) and then
calls ``on_wake(None)``: notifications sent while it was away are lost, so every
queue should look for work. Polling in the workers stays on as the safety net
either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import psycopg

from conveyor._deadline import Deadline
from conveyor.queries import Queries

log = logging.getLogger("conveyor.notify")

_BACKOFF_START = 0.2
_BACKOFF_MAX = 10.0
DEBOUNCE = 0.01
"""Seconds during which a client notifies a queue at most once for its sends."""


class NotifyGate:
    """Debounces the notifications of one client's sends, per queue.

    PostgreSQL serializes the commits of transactions that notify (each holds a
    cluster-wide lock through its WAL flush), so a notification per send halves
    the commit rate of busy producers. A send notifies only when this client has
    not notified its queue in the last ``DEBOUNCE`` seconds; a worker that found
    work claims again 2 ms later (``worker.claimer.FOUND_RECHECK``), so the quiet
    sends of that window are still taken at once. Sends in the caller's own transaction
    always notify: they may commit long after the window.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def should_notify(self, queue: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(queue, -DEBOUNCE) < DEBOUNCE:
            return False
        self._last[queue] = now
        return True


class Listener:
    def __init__(
        self,
        dsn: str,
        queries: Queries,
        on_wake: Callable[[str | None], None],
        *,
        deadline: float,
        health_interval: float = 30.0,
    ) -> None:
        """``dsn`` carries its ``connect_timeout`` (``Settings.conninfo``);
        ``deadline`` bounds LISTEN and each health check, in seconds."""
        self._dsn = dsn
        self._queries = queries
        self._on_wake = on_wake
        self._deadline = deadline
        self._health_interval = health_interval
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection fails."""
        delay = _BACKOFF_START
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    with Deadline(conn, self._deadline):
                        await conn.execute(self._queries["listen"])
                    self.connected.set()
                    if not first:
                        log.info("listening again for new jobs")
                        self._on_wake(None)
                    first = False
                    delay = _BACKOFF_START
                    await self._listen(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                # Unanswered (past the deadline) is a ConnectionLost: an OSError.
                self.connected.clear()
                log.warning("lost the notification connection (%s); retrying in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    async def _listen(self, conn: psycopg.AsyncConnection[object]) -> None:
        while True:
            async for notice in conn.notifies(timeout=self._health_interval):
                self._on_wake(notice.payload or None)
            with Deadline(conn, self._deadline):
                await conn.execute(self._queries["health"])
