"""Waiting: ``wait_for`` (for a job to finish) and ``fetch`` with ``wait`` (for jobs
to arrive).

A waiter registers in ``job_waiter``, then locks the job, marks it as waited for
and reads its state (``mark_waited.sql``, as a flow does with the jobs its steps
depend on): the transaction that finishes the job then either committed before
(the state read is final) or sees the mark and the waiter, and notifies the
``<schema>.finished`` channel with the job's id (``settle_dependents.sql``). A
waiting fetch watches its queue on the schema's own channel, which sends, retries
due at once and releases notify with the queue's name. Each client keeps one
listening connection for all its waits, on both channels (a thread for
:class:`Conveyor`, a task for :class:`AsyncConveyor`), opened by the first wait.
Behind a transaction pooler (``pgbouncer``), where LISTEN cannot work, waits poll
instead, from 50 ms up to a second apart.

The decisions are written once, in :func:`waiting` and :func:`fetching`,
generators that yield what the face must do next: an operation to run, or a
number of seconds to wait for a notification.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Final

import psycopg
from psycopg import sql

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Operation, Plan
from conveyor._ops import admin, claims, validate
from conveyor.errors import JobNotFound, WaitTimeout
from conveyor.job import Job

log = logging.getLogger("conveyor")

RECHECK: Final = 5.0
"""Seconds between looks at a job while listening: a notification sent while the
listening connection was being replaced is not lost for longer."""
POLL_FIRST: Final = 0.05
POLL_MAX: Final = 1.0
FETCH_RECHECK: Final = 1.0
"""Seconds between claims of a waiting fetch while listening: jobs that come due
by their start time notify no one."""
_FINISHED: Final = frozenset(("completed", "failed", "cancelled"))

Waiting = Generator["Operation[Any] | float", Any, Job]


def channel(schema: str) -> str:
    """The channel a job with waiters notifies when it finishes."""
    return f"{schema}.finished"


def _register(job_id: str) -> Plan[str | None]:
    yield Execute(statements.WAIT_REGISTER, {"id": job_id})
    rows = yield Execute(statements.MARK_WAITED, {"ids": [job_id]})
    return str(rows[0]["state"]) if rows else None


def _state(job_id: str) -> Plan[str | None]:
    row = yield Execute(statements.WAIT_CHECK, {"id": job_id})
    return None if row is None else str(row["state"])


def unregister(job_id: str) -> Operation[None]:
    def plan() -> Plan[None]:
        yield Execute(statements.WAIT_UNREGISTER, {"id": job_id})

    return Operation(plan())


def fetch_calls(
    ctx: Context, queue: str, batch_size: int, visibility: Any, wait: Any,
) -> tuple[float, Callable[[], Operation[list[Job]]]]:
    """How long a fetch waits for jobs (seconds; 0: not at all), and what makes each
    of its claims: the arguments are checked at once, by the first one."""
    first = [claims.fetch(ctx, queue, batch_size, visibility=visibility, wait=wait)]

    def claim() -> Operation[list[Job]]:
        return first.pop() if first else claims.fetch(ctx, queue, batch_size,
                                                      visibility=visibility)

    seconds = 0.0 if wait is None else validate.duration(wait, "wait").total_seconds()
    return seconds, claim


def check(id: object, timeout: object) -> tuple[str, float]:
    """The job's id as text and the timeout in seconds, or a typed error."""
    return str(validate.job_id(id)), validate.positive_duration(timeout, "timeout").total_seconds()


def waiting(ctx: Context, job_id: str, timeout: float, listening: bool) -> Waiting:
    """Until the job finished: its state, checked at registration (when
    ``listening``), then after each wake-up or pause; the finished Job at the end.
    Raises :class:`JobNotFound` and :class:`WaitTimeout`."""
    deadline = time.monotonic() + timeout
    if listening:
        state = yield Operation(_register(job_id), atomic=True)
    else:
        state = yield Operation(_state(job_id))
    delay = POLL_FIRST
    while state not in _FINISHED:
        if state is None:
            raise JobNotFound(f"there is no job {job_id} to wait for")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"job {job_id} had not finished after {timeout:g} s "
                              f"(it is {state})")
        yield min(remaining, RECHECK if listening else delay)
        delay = min(delay * 2, POLL_MAX)
        state = yield Operation(_state(job_id))
    job = yield admin.get_job(ctx, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} was deleted while it was waited for")
    return job  # type: ignore[no-any-return]


def fetching(fetch: Callable[[], Operation[list[Job]]], seconds: float,
             listening: bool) -> Generator[Operation[Any] | float, Any, list[Job]]:
    """A fetch that waits up to ``seconds`` for jobs: it claims, and while it claims
    nothing, waits for the queue's notification (rechecking every second, for jobs
    that come due by their start time, which no one notifies) or, behind a
    transaction pooler, polls from 50 ms up to a second apart, with jitter. The face
    watches the queue before the first claim, so no notification is missed."""
    deadline = time.monotonic() + seconds
    delay = POLL_FIRST
    while True:
        jobs: list[Job] = yield fetch()
        remaining = deadline - time.monotonic()
        if jobs or remaining <= 0:
            return jobs
        pause = FETCH_RECHECK if listening else delay * random.uniform(0.5, 1.5)
        yield min(remaining, pause)
        delay = min(delay * 2, POLL_MAX)


def _listen_statement(schema: str) -> sql.Composed:
    """Both channels: jobs that finished (``wait_for``) and queues with new jobs
    (``fetch`` with ``wait``), which the schema's name is."""
    return sql.SQL("LISTEN {}; LISTEN {}").format(sql.Identifier(channel(schema)),
                                                   sql.Identifier(schema))


Key = tuple[str, str]
"""What a notification is for: its channel and its payload."""


def finished_key(schema: str, job_id: str) -> Key:
    """The notification of a job that finished (``settle_dependents.sql``)."""
    return channel(schema), job_id


def queue_key(schema: str, queue: str) -> Key:
    """The notification of a queue with jobs due (a send, a retry, a release)."""
    return schema, queue


class _Watchers:
    """Events by key, set when a notification of the key arrives."""

    def __init__(self) -> None:
        self._events: dict[Key, list[Any]] = {}

    def add(self, key: Key, event: Any) -> None:
        self._events.setdefault(key, []).append(event)

    def remove(self, key: Key, event: Any) -> None:
        events = self._events.get(key, [])
        if event in events:
            events.remove(event)
        if not events:
            self._events.pop(key, None)

    def wake(self, key: Key) -> None:
        for event in self._events.get(key, ()):
            event.set()

    def wake_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()


class ThreadListener:
    """The synchronous client's listening connection, on a thread of its own."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._conninfo, self._schema = conninfo, schema
        self._watchers = _Watchers()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-wait", daemon=True)
        self._thread.start()

    def watch(self, key: Key, ready_within: float) -> threading.Event:
        """An event set when ``key`` is notified; waits (up to ``ready_within``
        seconds) until the connection listens, so no notification is missed."""
        event = threading.Event()
        with self._lock:
            self._watchers.add(key, event)
        self._ready.wait(ready_within)
        return event

    def unwatch(self, key: Key, event: threading.Event) -> None:
        with self._lock:
            self._watchers.remove(key, event)

    def _loop(self) -> None:
        delay = 0.1
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(_listen_statement(self._schema))
                    self._ready.set()
                    with self._lock:  # what finished while not listening
                        self._watchers.wake_all()
                    delay = 0.1
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=0.5):
                            with self._lock:
                                self._watchers.wake((note.channel, note.payload))
            except psycopg.Error as exc:
                self._ready.clear()
                log.warning("wait_for's listening connection failed (%s); reconnecting", exc)
                self._closing.wait(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=5)


class TaskListener:
    """The asynchronous client's listening connection, in a task of its own."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self._conninfo, self._schema = conninfo, schema
        self._watchers = _Watchers()
        self._ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="conveyor-wait")

    async def watch(self, key: Key, ready_within: float) -> asyncio.Event:
        event = asyncio.Event()
        self._watchers.add(key, event)
        # Past ready_within, the first state check and the rechecks still see the job finish.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), ready_within)
        return event

    def unwatch(self, key: Key, event: asyncio.Event) -> None:
        self._watchers.remove(key, event)

    async def _loop(self) -> None:
        delay = 0.1
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True) as conn:
                    await conn.execute(_listen_statement(self._schema))
                    self._ready.set()
                    self._watchers.wake_all()
                    delay = 0.1
                    async for note in conn.notifies():
                        self._watchers.wake((note.channel, note.payload))
            except psycopg.Error as exc:
                self._ready.clear()
                log.warning("wait_for's listening connection failed (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
