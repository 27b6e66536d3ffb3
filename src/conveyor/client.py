"""The clients: :class:`Conveyor` (sync) and :class:`AsyncConveyor` (asyncio).

Both faces are generated from the one set of operations in ``_enqueue``,
``_claims``, ``_admin``, ``_flow``, ``scheduler`` and ``_status``: a method here
only hands its arguments to the operation and runs the resulting plan on a
connection, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Never,
    ParamSpec,
    Self,
    TypeVar,
    Unpack,
)

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from conveyor import (
    _admin,
    _claims,
    _connect,
    _enqueue,
    _flow,
    _session,
    _status,
    _validate,
    scheduler,
)
from conveyor import migrate as migrations
from conveyor._deadline import Deadline, Unanswered
from conveyor._plan import Context, Operation, RunWithin, guarded, run_async, run_sync
from conveyor.config import Settings
from conveyor.errors import (
    ConnectionLost,
    ConveyorError,
    InvalidArgument,
    InvalidOption,
    NotStarted,
)
from conveyor.hooks import Callback, Hooks
from conveyor.notify import Wakeup, WakeupThread
from conveyor.queries import Queries
from conveyor.registry import HandlerOptions, Registration, Registry
from conveyor.tasks import JobCall, Task, TypedTask

if TYPE_CHECKING:  # the worker's runtime is imported when a worker runs, not to send
    from conveyor.worker.options import RunOptions
    from conveyor.worker.runner import Worker

log = logging.getLogger("conveyor")

P = ParamSpec("P")
T = TypeVar("T")
Sent = TypeVar("Sent")


class _Client(Generic[Sent]):
    """Settings and state shared by both faces; ``Sent`` is what ``send`` returns."""

    send: Callable[..., Sent]

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str | None = None,
        max_payload_bytes: int | None = None,
        pool_size: int | None = None,
        connect_timeout: float | None = None,
        pgbouncer: bool | None = None,
        statement_deadline: float | None = None,
        migrate: bool = True,
        **unknown: Never,
    ) -> None:
        _validate.unknown_options(unknown, _CLIENT_ARGUMENTS, "argument")
        self.settings = Settings.resolve(
            dsn,
            schema=schema,
            max_payload_bytes=max_payload_bytes,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pgbouncer=pgbouncer,
            statement_deadline=statement_deadline,
        )
        self._context = Context(Queries(self.settings.schema), self.settings.max_payload_bytes)
        self._migrate_on_start = migrate
        self._registry = Registry()
        self._hooks = Hooks()

    # --- handlers: registration is plain data, shared by both faces ---

    def work(
        self, queue: str, handler: Callable[..., Any], **options: Unpack[HandlerOptions]
    ) -> None:
        """Register ``handler`` for ``queue``; :meth:`run` then runs it on claimed jobs.

        - ``handler(job)`` returns the job's output (stored as JSON), or raises:
          :class:`~conveyor.errors.RetryAfter` to retry after exactly that delay,
          :class:`~conveyor.errors.NonRetryableError` to fail at once, anything
          else to fail the attempt (retried by the job's policy).
        - ``async def`` handlers run on the event loop; plain ``def`` handlers in a
          thread pool; ``executor="process"`` runs a module-level function in a
          process pool (for CPU-bound work).
        - ``concurrency``: handler calls at once in this process (default 5, or
          ``CONVEYOR_CONCURRENCY``). ``batch_size > 1`` passes a list of up to that
          many jobs; the return value becomes each one's output.
        - ``poll_interval``: seconds between looks for work when no notification
          arrives (notifications wake the worker at once).

        Example::

            cv.work("send-message", send_message, concurrency=20)
        """
        self._registry.add(Registration.make(queue, handler, **options))

    def task(
        self, queue: str, **options: Unpack[HandlerOptions]
    ) -> Callable[[Callable[P, T]], Task[P, T, Sent]]:
        """Decorator form of :meth:`work`; the handler comes back as a
        :class:`~conveyor.tasks.Task`, still callable as itself, whose ``send``
        sends to its queue::

            @cv.task("document-parse", concurrency=5)
            async def parse(job: Job) -> dict:
                ...

            parse.send({"document_id": "d1"}, priority=10)
        """

        def register(handler: Callable[P, T]) -> Task[P, T, Sent]:
            task = Task(handler, queue, self.send)
            self.work(queue, task, **options)
            return task

        return register

    def typed_task(
        self, queue: str, **options: Unpack[HandlerOptions]
    ) -> Callable[[Callable[P, T]], TypedTask[P, T, Sent]]:
        """Register a function of keyword arguments for ``queue``: a job's data is a
        JSON object of its arguments, and the worker calls ``function(**job.data)``.
        The :class:`~conveyor.tasks.TypedTask` it returns is still callable as the
        function; its ``send`` takes the function's own parameters, so a type
        checker flags a wrong payload::

            @cv.typed_task("resize")
            def resize(image_id: str, width: int = 800) -> dict: ...

            resize.send("img-1", width=400)
            resize.send_with(priority=5, conn=conn)("img-2")

        The function cannot take positional-only or ``*args`` parameters, nor a
        ``batch_size`` other than 1.
        """
        if options.get("batch_size", 1) != 1:
            raise InvalidOption(f"a typed task takes one job at a time; {queue!r} cannot "
                                "have a batch_size")

        def register(function: Callable[P, T]) -> TypedTask[P, T, Sent]:
            task = TypedTask(function, queue, self.send)
            self.work(queue, JobCall(task), **options)
            return task

        return register

    def on(self, event: str, callback: Callback | None = None) -> Any:
        """Call ``callback(HookEvent)`` on ``event``: ``job_started``,
        ``job_completed``, ``job_failed``, ``job_retried``, ``worker_started``,
        ``worker_stopped`` or ``worker_error``. Works as a decorator when
        ``callback`` is left out."""
        if callback is not None:
            self._hooks.add(event, callback)
            return callback

        def register(function: Callback) -> Callback:
            self._hooks.add(event, function)
            return function

        return register

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this client's tables."""
        return self.settings.schema

    @property
    def started(self) -> bool:
        """Whether ``start()`` has opened the connection pool (and ``stop()`` not
        closed it)."""
        return getattr(self, "_pool", None) is not None

    def _pool_options(self) -> dict[str, Any]:
        return {
            "conninfo": self.settings.conninfo(),
            "min_size": 1,
            "max_size": self.settings.pool_size,
            # A transaction pooler runs each transaction on any server connection,
            # where psycopg's prepared statements (made on a statement's sixth run)
            # may not exist: with ``pgbouncer`` on, none are made.
            "kwargs": {"autocommit": True, **({"prepare_threshold": None}
                                             if self.settings.pgbouncer else {})},
            "timeout": self.settings.connect_timeout,
            "open": False,
            "name": f"conveyor-{self.settings.schema}",
        }

    def _unreachable(self) -> ConnectionLost:
        return _connect.unreachable(self.settings.dsn, self.settings.connect_timeout)

    def _own_connection(self, conn: object, kind: type) -> None:
        if not isinstance(conn, kind):
            raise InvalidArgument(
                f"{type(self).__name__} needs a {kind.__module__}.{kind.__qualname__} as conn, "
                f"not {type(conn).__name__}"
            )

    @property
    def context(self) -> Context:
        """What every operation takes first: the schema's statements and the payload
        limit. With :meth:`run_operation`, the seam for code that runs Conveyor's
        operations itself (``conveyor.testing``)."""
        return self._context

    def _worker(self, run: RunWithin, options: RunOptions) -> Worker:
        from conveyor.worker.runner import Worker

        settings = {k: v for k, v in options.items() if k not in ("queues", "concurrency")}
        if self.settings.pgbouncer:
            # LISTEN holds a server connection's session, which a transaction
            # pooler hands to other clients: workers behind one poll only.
            if settings.get("listen") is True:
                raise InvalidArgument(
                    "listen=True cannot work through a pooler in transaction mode "
                    "(pgbouncer is on): leave listen unset, and workers poll"
                )
            settings["listen"] = False
        return Worker(
            run,
            dsn=self.settings.conninfo(),
            statement_deadline=self.settings.statement_deadline,
            queries=self._context.queries,
            max_payload_bytes=self.settings.max_payload_bytes,
            registrations=self._registry.select(
                options.get("queues"), options.get("concurrency")),
            hooks=self._hooks,
            options=settings,
        )


_CLIENT_ARGUMENTS = tuple(
    name for name, parameter in inspect.signature(_Client.__init__).parameters.items()
    if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD)
"""What a client takes, named when an argument is unknown."""


def _signature_of(op: Callable[..., Any]) -> inspect.Signature:
    """The operation's signature with ``self`` in place of its context, returning
    what its ``Operation`` gives (``help()`` and the reference show it)."""
    signature = inspect.signature(op)
    params = list(signature.parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    returns = typing.get_args(typing.get_type_hints(op)["return"])[0]
    return signature.replace(parameters=[self_param, *params[1:]], return_annotation=returns)


def _sync(
    op: Callable[Concatenate[Context, P], Operation[T]],
) -> Callable[Concatenate[Conveyor, P], T]:
    @functools.wraps(op)
    def method(self: Conveyor, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(op(self._context, *args, **kwargs))

    method.__signature__ = _signature_of(op)  # type: ignore[attr-defined]
    return method


def _async(
    op: Callable[Concatenate[Context, P], Operation[T]],
) -> Callable[Concatenate[AsyncConveyor, P], Awaitable[T]]:
    @functools.wraps(op)
    async def method(self: AsyncConveyor, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(op(self._context, *args, **kwargs))

    method.__signature__ = _signature_of(op)  # type: ignore[attr-defined]
    return method


class Conveyor(_Client[str | None]):
    """The synchronous client::

        with Conveyor() as cv:              # dsn= or DATABASE_URL
            job_id = cv.send("document-parse", {"document_id": "d1"})

    ``start()`` opens a connection pool and migrates the schema; ``stop()`` closes
    it. Every method takes the same arguments as on :class:`AsyncConveyor`.
    """

    _pool: ConnectionPool | None = None
    _twin: AsyncConveyor | None = None
    _wakeups: WakeupThread | None = None

    def start(self) -> Self:
        """Open the connection pool and migrate the schema (unless ``migrate=False``)."""
        if self._pool is not None:
            return self
        settings = self.settings
        _connect.reach(settings.conninfo(), settings.dsn, settings.connect_timeout)
        pool = ConnectionPool(
            configure=functools.partial(_session.configure, queries=self._context.queries),
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
            self._run(_enqueue.wake(self._context, queues))
        except ConveyorError as exc:  # the workers' poll still finds the jobs
            log.warning("could not wake the workers of %s (%s)", ", ".join(queues), exc)

    migrate = _sync(migrations.migrate)
    schema_version = _sync(migrations.schema_version)
    send = _sync(_enqueue.send)
    insert = _sync(_enqueue.insert)
    fetch = _sync(_claims.fetch)
    complete = _sync(_claims.complete)
    fail = _sync(_claims.fail)
    get_job = _sync(_admin.get_job)
    find_jobs = _sync(_admin.find_jobs)
    count_jobs = _sync(_admin.count_jobs)
    bulk = _sync(_admin.bulk)
    cancel = _sync(_admin.cancel)
    resume = _sync(_admin.resume)
    retry = _sync(_admin.retry)
    delete = _sync(_admin.delete)
    queue_counts = _sync(_admin.queue_counts)
    create_queue = _sync(_admin.create_queue)
    update_queue = _sync(_admin.update_queue)
    delete_queue = _sync(_admin.delete_queue)
    get_queue = _sync(_admin.get_queue)
    list_queues = _sync(_admin.list_queues)
    pause_queue = _sync(_flow.pause_queue)
    resume_queue = _sync(_flow.resume_queue)
    pause_group = _sync(_flow.pause_group)
    resume_group = _sync(_flow.resume_group)
    set_group = _sync(_flow.set_group)
    get_group = _sync(_flow.get_group)
    schedule = _sync(scheduler.schedule)
    unschedule = _sync(scheduler.unschedule)
    get_schedules = _sync(scheduler.get_schedules)
    pause_schedule = _sync(scheduler.pause_schedule)
    resume_schedule = _sync(scheduler.resume_schedule)
    run_schedule = _sync(scheduler.run_schedule)
    get_stats = _sync(_status.get_stats)
    get_leader = _sync(_status.get_leader)
    get_workers = _sync(_status.get_workers)
    queue_summaries = _sync(_status.queue_summaries)
    health = _sync(_status.health)


class AsyncConveyor(_Client[Awaitable[str | None]]):
    """The asyncio client: the methods of :class:`Conveyor`, awaited::

        async with AsyncConveyor() as cv:
            job_id = await cv.send("document-parse", {"document_id": "d1"})
    """

    _pool: AsyncConnectionPool | None = None
    _active_worker: Worker | None = None
    _wakeup_timer: asyncio.TimerHandle | None = None
    _wakeup_task: asyncio.Task[None] | None = None

    async def start(self) -> Self:
        """Open the connection pool and migrate the schema (unless ``migrate=False``)."""
        if self._pool is not None:
            return self
        settings = self.settings
        await _connect.reach_async(settings.conninfo(), settings.dsn, settings.connect_timeout)
        pool = AsyncConnectionPool(
            configure=functools.partial(_session.configure_async, queries=self._context.queries),
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
        many seconds (``_deadline.py``: for a worker's own operations)."""
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
            await self._run(_enqueue.wake(self._context, queues))
        except ConveyorError as exc:  # the workers' poll still finds the jobs
            log.warning("could not wake the workers of %s (%s)", ", ".join(queues), exc)

    migrate = _async(migrations.migrate)
    schema_version = _async(migrations.schema_version)
    send = _async(_enqueue.send)
    insert = _async(_enqueue.insert)
    fetch = _async(_claims.fetch)
    complete = _async(_claims.complete)
    fail = _async(_claims.fail)
    get_job = _async(_admin.get_job)
    find_jobs = _async(_admin.find_jobs)
    count_jobs = _async(_admin.count_jobs)
    bulk = _async(_admin.bulk)
    cancel = _async(_admin.cancel)
    resume = _async(_admin.resume)
    retry = _async(_admin.retry)
    delete = _async(_admin.delete)
    queue_counts = _async(_admin.queue_counts)
    create_queue = _async(_admin.create_queue)
    update_queue = _async(_admin.update_queue)
    delete_queue = _async(_admin.delete_queue)
    get_queue = _async(_admin.get_queue)
    list_queues = _async(_admin.list_queues)
    pause_queue = _async(_flow.pause_queue)
    resume_queue = _async(_flow.resume_queue)
    pause_group = _async(_flow.pause_group)
    resume_group = _async(_flow.resume_group)
    set_group = _async(_flow.set_group)
    get_group = _async(_flow.get_group)
    schedule = _async(scheduler.schedule)
    unschedule = _async(scheduler.unschedule)
    get_schedules = _async(scheduler.get_schedules)
    pause_schedule = _async(scheduler.pause_schedule)
    resume_schedule = _async(scheduler.resume_schedule)
    run_schedule = _async(scheduler.run_schedule)
    get_stats = _async(_status.get_stats)
    get_leader = _async(_status.get_leader)
    get_workers = _async(_status.get_workers)
    queue_summaries = _async(_status.queue_summaries)
    health = _async(_status.health)
