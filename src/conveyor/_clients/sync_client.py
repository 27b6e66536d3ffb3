"""The synchronous client, :class:`Conveyor`: each operation bound to a method that
runs its plan on a connection of a psycopg pool (``run_sync``). ``run()`` runs the
worker in an :class:`~conveyor.AsyncConveyor` twin on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    ParamSpec,
    Self,
    TypeVar,
    Unpack,
)

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from conveyor._clients import waiting
from conveyor._clients.async_client import AsyncConveyor
from conveyor._clients.base import ClientBase, signature_of
from conveyor._db import connect, session
from conveyor._db import migrate as migrations
from conveyor._db.notify import Wakeup, WakeupThread
from conveyor._db.plan import Context, Operation, run_sync
from conveyor._db.rows import JobRef
from conveyor._ops import admin, claims, dependencies, enqueue, schedules, status
from conveyor._ops import flow as flow_control
from conveyor._ops.options import Duration
from conveyor.errors import (
    ConnectionLost,
    ConveyorError,
    NotStarted,
)
from conveyor.job import Job

if TYPE_CHECKING:  # the worker's runtime is imported when a worker runs, not to send
    from conveyor.worker.options import RunOptions
    from conveyor.worker.runner import Worker

log = logging.getLogger("conveyor")

P = ParamSpec("P")
T = TypeVar("T")


def _sync(
    op: Callable[Concatenate[Context, P], Operation[T]],
) -> Callable[Concatenate[Conveyor, P], T]:
    @functools.wraps(op)
    def method(self: Conveyor, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(op(self._context, *args, **kwargs))

    method.__signature__ = signature_of(op)  # type: ignore[attr-defined]
    return method


class Conveyor(ClientBase[str | None]):
    """The synchronous client::

        with Conveyor() as cv:              # dsn= or DATABASE_URL
            job_id = cv.send("document-parse", {"document_id": "d1"})

    ``start()`` opens a connection pool and migrates the schema; ``stop()`` closes
    it. Every method takes the same arguments as on :class:`AsyncConveyor`.
    """

    _pool: ConnectionPool | None = None
    _twin: AsyncConveyor | None = None
    _wakeups: WakeupThread | None = None
    _listener: waiting.ThreadListener | None = None
    _listener_lock = threading.Lock()

    def start(self) -> Self:
        """Open the connection pool and migrate the schema (unless ``migrate=False``)."""
        if self._pool is not None:
            return self
        settings = self.settings
        connect.reach(settings.conninfo(), settings.dsn, settings.connect_timeout)
        pool = ConnectionPool(
            configure=functools.partial(session.configure, queries=self._context.queries),
            **self._pool_options())
        try:
            pool.open(wait=True, timeout=self.settings.connect_timeout)
        except PoolTimeout:
            pool.close()
            raise self._unreachable() from None
        self._pool = pool
        self._wakeups = WakeupThread(self._context.notify_gate, self._notify)
        if self._migrate_on_start:
            try:
                self.migrate()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        """Stop a running worker gracefully (see :meth:`run`), send the
        notifications still owed for quiet sends, then close the connection pool.
        Calling it again does nothing."""
        twin = self._twin
        worker = None if twin is None else twin._active_worker
        if worker is not None:
            worker.stop()
            worker.finished.result()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        wakeups, self._wakeups = self._wakeups, None
        if wakeups is not None:
            wakeups.close()
            owed = self._context.notify_gate.settle()
            if owed:
                self._notify(owed)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def run(self, **options: Unpack[RunOptions]) -> None:
        """Run the registered handlers until stopped: by SIGTERM or SIGINT (in the
        main thread) or by :meth:`stop` from another thread. Options: ``queues``,
        ``concurrency``, ``shutdown_timeout`` (30 s), ``listen``, ``lease`` (30 s),
        ``heartbeat_interval``, ``rescue_interval``, ``handle_signals``, ``tune_gc``
        (see the guide's Workers section)."""
        twin = AsyncConveyor(
            self.settings.dsn, schema=self.settings.schema,
            max_payload_bytes=self.settings.max_payload_bytes, pool_size=self.settings.pool_size,
            connect_timeout=self.settings.connect_timeout, pgbouncer=self.settings.pgbouncer,
            statement_deadline=self.settings.statement_deadline, migrate=self._migrate_on_start,
        )
        twin._registry, twin._hooks = self._registry, self._hooks
        self._twin = twin
        try:
            asyncio.run(twin.run(**options))
        finally:
            self._twin = None

    def run_operation(self, op: Operation[T]) -> T:
        """Run an operation (a plan of ``conveyor``'s operation modules, made with
        :attr:`context`) on ``op.conn`` or a connection of the pool, as every
        method does."""
        return self._run(op)

    def make_worker(self, **options: Unpack[RunOptions]) -> Worker:
        """A worker over this client's pool, not running: its ``run_call`` runs one
        handler call and records it as :meth:`run` would (``conveyor.testing``'s
        ``drain``). Takes the options of :meth:`run`; ``close()`` it after use."""
        client = self

        async def run(op: Operation[T], deadline: float | None = None) -> T:
            return client._run(op)  # no deadline: the sync client bounds no call

        return self._worker(run, options)

    def wait_for(self, id: JobRef, timeout: float = 30.0) -> Job:
        """Wait until the job has finished (completed, failed for good or cancelled)
        and return it. Raises :class:`~conveyor.errors.WaitTimeout` after ``timeout``
        seconds, :class:`~conveyor.errors.JobNotFound` for an unknown id. Woken by a
        notification (one listening connection per client); behind a transaction
        pooler it polls::

            job = cv.wait_for(cv.send("thumbnail", {"image": "i1"}), timeout=60)
        """
        job_id, seconds = waiting.check(id, timeout)
        if self._pool is None:
            raise NotStarted("call start() before waiting for jobs")
        listener = self._listening()
        key = waiting.finished_key(self.schema, job_id)
        event = (threading.Event() if listener is None
                 else listener.watch(key, min(seconds, 5.0)))
        try:
            return self._drive(
                waiting.waiting(self._context, job_id, seconds, listener is not None), event)
        finally:
            if listener is not None:
                listener.unwatch(key, event)
                with contextlib.suppress(ConveyorError):
                    self._run(waiting.unregister(job_id))

    def fetch(self, queue: str, batch_size: int = 1, *, visibility: Duration | None = None,
              wait: Duration | None = None) -> list[Job]:
        seconds, claim = waiting.fetch_calls(self._context, queue, batch_size, visibility, wait)
        if not seconds:
            return self._run(claim())
        listener = self._listening()
        key = waiting.queue_key(self.schema, queue)
        event = (threading.Event() if listener is None
                 else listener.watch(key, min(seconds, 5.0)))
        try:
            return self._drive(waiting.fetching(claim, seconds, listener is not None), event)
        finally:
            if listener is not None:
                listener.unwatch(key, event)

    fetch.__doc__ = claims.fetch.__doc__

    def _listening(self) -> waiting.ThreadListener | None:
        """The client's listening connection, opened by the first wait; ``None``
        behind a transaction pooler, where waits poll."""
        if self.settings.pgbouncer:
            return None
        with self._listener_lock:
            if self._listener is None:
                self._listener = waiting.ThreadListener(self.settings.conninfo(), self.schema)
            return self._listener

    def _drive(self, steps: Generator[Operation[Any] | float, Any, T],
               event: threading.Event) -> T:
        """Runs a waiting generator: its operations, and its pauses until ``event``."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, Operation):
                    result = self._run(step)
                else:
                    event.wait(step)
                    event.clear()
                    result = None
                step = steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, op: Operation[T]) -> T:
        queries = self._context.queries
        if op.conn is not None:
            self._own_connection(op.conn, psycopg.Connection)
            return run_sync(op.conn, queries, op)
        pool = self._pool
        if pool is None:
            raise NotStarted("call start() (or use `with Conveyor() as cv:`) before using it")
        try:
            with pool.connection() as conn:
                result = run_sync(conn, queries, op)
        except PoolTimeout:
            raise self._unreachable() from None
        except ConnectionLost:
            pool.check()  # replace every idle connection the outage broke
            raise
        if op.wakeup is not None:
            self._committed(op.wakeup)
        return result

    def _committed(self, wakeup: Wakeup) -> None:
        delay = self._context.notify_gate.committed(wakeup)
        wakeups = self._wakeups
        if delay is not None and wakeups is not None:
            wakeups.schedule(delay)

    def _notify(self, queues: list[str]) -> None:
        """Send the notifications owed for quiet sends (``notify.NotifyGate``)."""
        try:
            self._run(enqueue.wake(self._context, queues))
        except ConveyorError as exc:  # the workers' poll still finds the jobs
            log.warning("could not wake the workers of %s (%s)", ", ".join(queues), exc)

    migrate = _sync(migrations.migrate)
    schema_version = _sync(migrations.schema_version)
    send = _sync(enqueue.send)
    insert = _sync(enqueue.insert)
    pop = _sync(claims.pop)
    extend = _sync(claims.extend)
    release = _sync(claims.release)
    complete = _sync(claims.complete)
    fail = _sync(claims.fail)
    get_job = _sync(admin.get_job)
    find_jobs = _sync(admin.find_jobs)
    count_jobs = _sync(admin.count_jobs)
    bulk = _sync(admin.bulk)
    cancel = _sync(admin.cancel)
    resume = _sync(admin.resume)
    retry = _sync(admin.retry)
    delete = _sync(admin.delete)
    queue_counts = _sync(admin.queue_counts)
    create_queue = _sync(admin.create_queue)
    update_queue = _sync(admin.update_queue)
    delete_queue = _sync(admin.delete_queue)
    get_queue = _sync(admin.get_queue)
    list_queues = _sync(admin.list_queues)
    pause_queue = _sync(flow_control.pause_queue)
    resume_queue = _sync(flow_control.resume_queue)
    pause_group = _sync(flow_control.pause_group)
    resume_group = _sync(flow_control.resume_group)
    set_group = _sync(flow_control.set_group)
    get_group = _sync(flow_control.get_group)
    schedule = _sync(schedules.schedule)
    unschedule = _sync(schedules.unschedule)
    get_schedules = _sync(schedules.get_schedules)
    pause_schedule = _sync(schedules.pause_schedule)
    resume_schedule = _sync(schedules.resume_schedule)
    run_schedule = _sync(schedules.run_schedule)
    get_stats = _sync(status.get_stats)
    get_leader = _sync(status.get_leader)
    get_workers = _sync(status.get_workers)
    queue_summaries = _sync(status.queue_summaries)
    health = _sync(status.health)
    flow = _sync(dependencies.flow)
    batch = _sync(dependencies.batch)
    get_dependencies = _sync(dependencies.get_dependencies)
    get_dependents = _sync(dependencies.get_dependents)
