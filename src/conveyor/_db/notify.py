"""The LISTEN side of wake-ups: one connection per worker process.

``enqueue.sql`` notifies the schema's channel with the queue's name when a job is
inserted. The listener holds a dedicated connection in autocommit, listens on that
channel, and calls ``on_wake(queue)`` for each notification. Every
``health_interval`` seconds without one it runs a trivial query, under the
statement deadline (``_db/deadline.py``), so a connection that died silently is
noticed within ``health_interval`` plus that deadline, whatever TCP says. When the
connection fails it reconnects with backoff (0.2 s doubling to 10 s) and then
calls ``on_wake(None)``: notifications sent while it was away are lost, so every
queue should look for work. Polling in the workers stays on as the safety net
either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import psycopg

from conveyor._db import statements
from conveyor._db.deadline import Deadline
from conveyor._db.queries import Queries

log = logging.getLogger("conveyor.notify")

_BACKOFF_START = 0.2
_BACKOFF_MAX = 10.0
DEBOUNCE = 0.01
"""Seconds during which a client notifies a queue at most once for its sends."""


class Wakeup(NamedTuple):
    """What a send of a client's own decided about waking its queue's workers:
    whether its transaction notifies, and when that was decided."""

    queue: str
    decided_at: float
    notifies: bool


class NotifyGate:
    """Debounces the notifications of one client's sends, per queue, without
    leaving any send unannounced.

    PostgreSQL serializes the commits of transactions that notify (each holds a
    cluster-wide lock through its WAL flush), so a notification per send halves
    the commit rate of busy producers. A send notifies only when this client has
    not notified its queue in the last ``DEBOUNCE`` seconds; the others are quiet.

    A quiet send may commit after the workers have already claimed what the last
    notification announced, and they would then find it only at their next poll.
    So once a quiet send has committed, the queue is owed a notification: the
    next notifying send pays it when it was decided after that commit (its
    notification reaches the workers after the quiet job is visible); otherwise
    the client sends one on its own (``due``), ``2 * DEBOUNCE`` after the queue's
    last notification. Under a steady stream of sends the next window's first
    send pays, so the extra notification is sent only at the end of a burst.

    Sends in the caller's own transaction always notify: they may commit long
    after the window. The gate is shared by the threads of a sync client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        """When this client last decided to notify each queue."""
        self._owed: dict[str, float] = {}
        """Queues owed a notification: when their latest quiet send committed."""
        self._timer = False
        """Whether the client has a call of ``due`` scheduled."""

    def decide(self, queue: str) -> Wakeup:
        """Whether a send to ``queue`` about to run notifies."""
        now = time.monotonic()
        with self._lock:
            notifies = now - self._last.get(queue, -DEBOUNCE) >= DEBOUNCE
            if notifies:
                self._last[queue] = now
        return Wakeup(queue, now, notifies)

    def committed(self, wakeup: Wakeup) -> float | None:
        """Record that the send of ``wakeup`` committed. Returns the seconds after
        which the client should call :meth:`due`, when it has no call scheduled
        yet; otherwise ``None``."""
        now = time.monotonic()
        queue = wakeup.queue
        with self._lock:
            if wakeup.notifies:
                owed = self._owed.get(queue)
                if owed is not None and owed <= wakeup.decided_at:
                    del self._owed[queue]
                return None
            self._owed[queue] = now
            if self._timer:
                return None
            self._timer = True
            return max(0.0, self._last[queue] + 2 * DEBOUNCE - now)

    def due(self) -> tuple[list[str], float | None]:
        """The queues owed a notification now, which the caller sends at once (they
        are forgotten here), and the seconds until the next call, or ``None`` when
        nothing more is owed."""
        now = time.monotonic()
        with self._lock:
            due = [queue for queue in self._owed if self._last[queue] + 2 * DEBOUNCE <= now]
            for queue in due:
                del self._owed[queue]
                self._last[queue] = now
            if not self._owed:
                self._timer = False
                return due, None
            after = min(self._last[queue] for queue in self._owed) + 2 * DEBOUNCE - now
            return due, max(0.0, after)

    def settle(self) -> list[str]:
        """Every queue still owed a notification, forgotten here (the client is
        stopping and sends them at once)."""
        with self._lock:
            owed = list(self._owed)
            self._owed.clear()
            self._timer = False
            return owed


class WakeupThread:
    """The sync client's timer for :meth:`NotifyGate.due`: one thread, started on
    the first owed notification, that sends what is due through ``send``."""

    def __init__(self, gate: NotifyGate, send: Callable[[list[str]], None]) -> None:
        self._gate = gate
        self._send = send
        self._at: float | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, delay: float) -> None:
        with self._changed:
            if self._closed:
                return
            self._at = time.monotonic() + delay
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="conveyor-wakeups", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._closed and (self._at is None or self._at > time.monotonic()):
                    self._changed.wait(None if self._at is None else self._at - time.monotonic())
                if self._closed:
                    return
                self._at = None
            due, after = self._gate.due()
            if due:
                self._send(due)
            if after is not None:
                with self._changed:
                    if self._at is None:
                        self._at = time.monotonic() + after

    def close(self) -> None:
        """Stop the thread; the caller sends what :meth:`NotifyGate.settle` returns."""
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join()


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
                        await conn.execute(self._queries[statements.LISTEN])
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
                await conn.execute(self._queries[statements.HEALTH])
