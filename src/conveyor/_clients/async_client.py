"""The asyncio client, :class:`AsyncConveyor`: each operation bound to a coroutine
method that runs its plan on a connection of an async psycopg pool
(``run_async``), with a statement deadline for the worker's own operations. It
also runs the worker and sends the notifications owed for quiet sends on a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Generator
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
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from conveyor._clients import waiting
from conveyor._clients.base import ClientBase, signature_of
from conveyor._db import connect, session
from conveyor._db import migrate as migrations
from conveyor._db.deadline import Deadline, Unanswered
from conveyor._db.notify import Wakeup
from conveyor._db.plan import Context, Operation, guarded, run_async
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


def _async(
    op: Callable[Concatenate[Context, P], Operation[T]],
) -> Callable[Concatenate[AsyncConveyor, P], Awaitable[T]]:
    @functools.wraps(op)
    async def method(self: AsyncConveyor, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(op(self._context, *args, **kwargs))

    method.__signature__ = signature_of(op)  # type: ignore[attr-defined]
    return method


class AsyncConveyor(ClientBase[Awaitable[str | None]]):
    """The asyncio client: the methods of :class:`Conveyor`, awaited::

        async with AsyncConveyor() as cv:
            job_id = await cv.send("document-parse", {"document_id": "d1"})
    """

    _pool: AsyncConnectionPool | None = None
    _active_worker: Worker | None = None
    _wakeup_timer: asyncio.TimerHandle | None = None
    _wakeup_task: asyncio.Task[None] | None = None
    _listener: waiting.TaskListener | None = None

    async def start(self) -> Self:
        """Open the connection pool and migrate the schema (unless ``migrate=False``)."""
        if self._pool is not None:
            return self
        settings = self.settings
        await connect.reach_async(settings.conninfo(), settings.dsn, settings.connect_timeout)
        pool = AsyncConnectionPool(
            configure=functools.partial(session.configure_async, queries=self._context.queries),
            **self._pool_options())
        try:
            await pool.open(wait=True, timeout=self.settings.connect_timeout)
        except PoolTimeout:
            await pool.close()
            raise self._unreachable() from None
        self._pool = pool
        if self._migrate_on_start:
            try:
                await self.migrate()
            except BaseException:
                await self.stop()
                raise
        return self

    async def stop(self) -> None:
        """Stop a running worker gracefully (see :meth:`run`), send the
        notifications still owed for quiet sends, then close the connection pool.
        Calling it again does nothing."""
        worker = self._active_worker
        if worker is not None:
            worker.stop()
            await asyncio.wrap_future(worker.finished)
        if self._wakeup_task is not None:  # it may schedule the next call
            await self._wakeup_task
        if self._wakeup_timer is not None:
            self._wakeup_timer.cancel()
            self._wakeup_timer = None
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        if self._pool is not None:
            owed = self._context.notify_gate.settle()
            if owed:
                await self._notify(owed)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def run(self, **options: Unpack[RunOptions]) -> None:
        """Run the registered handlers until stopped: by SIGTERM or SIGINT (in the
        main thread) or by :meth:`stop`. Starts the client first if needed. Options:
        ``queues``, ``concurrency``, ``shutdown_timeout`` (30 s), ``listen``,
        ``lease`` (30 s), ``heartbeat_interval``, ``rescue_interval``,
        ``handle_signals``, ``tune_gc`` (see the guide's Workers section)."""
        started_here = self._pool is None
        if started_here:
            await self.start()
        worker = self._worker(self._run, options)
        self._active_worker = worker
        try:
            await worker.run()
        finally:
            self._active_worker = None
            if started_here:
                await self.stop()

    async def run_operation(self, op: Operation[T]) -> T:
        """Run an operation (a plan of ``conveyor``'s operation modules, made with
        :attr:`context`) on ``op.conn`` or a connection of the pool, as every
        method does."""
        return await self._run(op)

    def make_worker(self, **options: Unpack[RunOptions]) -> Worker:
        """A worker over this client's pool, not running: its ``run_call`` runs one
        handler call and records it as :meth:`run` would (``conveyor.testing``'s
        ``adrain``). Takes the options of :meth:`run`; ``close()`` it after use."""
        return self._worker(self._run, options)

    async def wait_for(self, id: JobRef, timeout: float = 30.0) -> Job:
        """Wait until the job has finished (completed, failed for good or cancelled)
        and return it. Raises :class:`~conveyor.errors.WaitTimeout` after ``timeout``
        seconds, :class:`~conveyor.errors.JobNotFound` for an unknown id. Woken by a
        notification (one listening connection per client); behind a transaction
        pooler it polls."""
        job_id, seconds = waiting.check(id, timeout)
        if self._pool is None:
            raise NotStarted("await start() before waiting for jobs")
        listener = self._listening()
        key = waiting.finished_key(self.schema, job_id)
        event = (asyncio.Event() if listener is None
                 else await listener.watch(key, min(seconds, 5.0)))
        try:
            return await self._drive(
                waiting.waiting(self._context, job_id, seconds, listener is not None), event)
        finally:
            if listener is not None:
                listener.unwatch(key, event)
                with contextlib.suppress(ConveyorError):
                    await self._run(waiting.unregister(job_id))

    async def fetch(self, queue: str, batch_size: int = 1, *,
                    visibility: Duration | None = None,
                    wait: Duration | None = None) -> list[Job]:
        seconds, claim = waiting.fetch_calls(self._context, queue, batch_size, visibility, wait)
        if not seconds:
            return await self._run(claim())
        listener = self._listening()
        key = waiting.queue_key(self.schema, queue)
        event = (asyncio.Event() if listener is None
                 else await listener.watch(key, min(seconds, 5.0)))
        try:
            return await self._drive(
                waiting.fetching(claim, seconds, listener is not None), event)
        finally:
            if listener is not None:
                listener.unwatch(key, event)

    fetch.__doc__ = claims.fetch.__doc__

    def _listening(self) -> waiting.TaskListener | None:
        """The client's listening connection, opened by the first wait; ``None``
        behind a transaction pooler, where waits poll."""
        if self.settings.pgbouncer:
            return None
        if self._listener is None:
            self._listener = waiting.TaskListener(self.settings.conninfo(), self.schema)
        return self._listener

    async def _drive(self, steps: Generator[Operation[Any] | float, Any, T],
                     event: asyncio.Event) -> T:
        """Runs a waiting generator: its operations, and its pauses until ``event``."""
        try:
            step = next(steps)
            while True:
                if isinstance(step, Operation):
                    result = await self._run(step)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), step)
                    event.clear()
                    result = None
                step = steps.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self, op: Operation[T], deadline: float | None = None) -> T:
        """Run ``op`` on the caller's connection or one of the pool's; with
        ``deadline``, give the pool's connection up when no answer comes within that
        many seconds (``_db/deadline.py``: for a worker's own operations)."""
        queries = self._context.queries
        if op.conn is not None:
            self._own_connection(op.conn, psycopg.AsyncConnection)
            return await run_async(op.conn, queries, op)
        pool = self._pool
        if pool is None:
            raise NotStarted(
                "await start() (or use `async with AsyncConveyor() as cv:`) before using it"
            )
        try:
            async with pool.connection() as conn:
                if deadline is None:
                    result = await run_async(conn, queries, op)
                else:
                    with Deadline(conn, deadline):
                        result = await run_async(conn, queries, guarded(op, deadline))
        except PoolTimeout:
            raise self._unreachable() from None
        except Unanswered:
            # Not pool.check(): the idle connections may be as silent as this one,
            # and checking them would wait for each. Each is given up in its turn.
            raise
        except ConnectionLost:
            await pool.check()
            raise
        if op.wakeup is not None:
            self._committed(op.wakeup)
        return result

    def _committed(self, wakeup: Wakeup) -> None:
        delay = self._context.notify_gate.committed(wakeup)
        if delay is not None:
            self._wakeup_timer = asyncio.get_running_loop().call_later(delay, self._wake_owed)

    def _wake_owed(self) -> None:
        self._wakeup_timer = None
        self._wakeup_task = asyncio.get_running_loop().create_task(self._send_owed())

    async def _send_owed(self) -> None:
        due, after = self._context.notify_gate.due()
        if due:
            await self._notify(due)
        if after is not None:
            self._wakeup_timer = asyncio.get_running_loop().call_later(after, self._wake_owed)
        self._wakeup_task = None

    async def _notify(self, queues: list[str]) -> None:
        """Send the notifications owed for quiet sends (``notify.NotifyGate``)."""
        try:
            await self._run(enqueue.wake(self._context, queues))
        except ConveyorError as exc:  # the workers' poll still finds the jobs
            log.warning("could not wake the workers of %s (%s)", ", ".join(queues), exc)

    migrate = _async(migrations.migrate)
    schema_version = _async(migrations.schema_version)
    send = _async(enqueue.send)
    insert = _async(enqueue.insert)
    pop = _async(claims.pop)
    extend = _async(claims.extend)
    release = _async(claims.release)
    complete = _async(claims.complete)
    fail = _async(claims.fail)
    get_job = _async(admin.get_job)
    find_jobs = _async(admin.find_jobs)
    count_jobs = _async(admin.count_jobs)
    bulk = _async(admin.bulk)
    cancel = _async(admin.cancel)
    resume = _async(admin.resume)
    retry = _async(admin.retry)
    delete = _async(admin.delete)
    queue_counts = _async(admin.queue_counts)
    create_queue = _async(admin.create_queue)
    update_queue = _async(admin.update_queue)
    delete_queue = _async(admin.delete_queue)
    get_queue = _async(admin.get_queue)
    list_queues = _async(admin.list_queues)
    pause_queue = _async(flow_control.pause_queue)
    resume_queue = _async(flow_control.resume_queue)
    pause_group = _async(flow_control.pause_group)
    resume_group = _async(flow_control.resume_group)
    set_group = _async(flow_control.set_group)
    get_group = _async(flow_control.get_group)
    schedule = _async(schedules.schedule)
    unschedule = _async(schedules.unschedule)
    get_schedules = _async(schedules.get_schedules)
    pause_schedule = _async(schedules.pause_schedule)
    resume_schedule = _async(schedules.resume_schedule)
    run_schedule = _async(schedules.run_schedule)
    get_stats = _async(status.get_stats)
    get_leader = _async(status.get_leader)
    get_workers = _async(status.get_workers)
    queue_summaries = _async(status.queue_summaries)
    health = _async(status.health)
    flow = _async(dependencies.flow)
    batch = _async(dependencies.batch)
    get_dependencies = _async(dependencies.get_dependencies)
    get_dependents = _async(dependencies.get_dependents)
