"""What both clients share: settings, handler registrations and hooks, the pool's
options, and the worker a run makes.

The faces (``_clients/sync_client.py``, ``_clients/async_client.py``) add how a plan runs on a
connection, and bind every operation to a method with ``signature_of``, so that
``help()`` and the reference show the operation's own parameters.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Never,
    ParamSpec,
    TypeVar,
    Unpack,
)

from conveyor._db import connect
from conveyor._db.plan import Context, RunWithin
from conveyor._db.queries import Queries
from conveyor._ops import validate
from conveyor.config import Settings
from conveyor.errors import (
    ConnectionLost,
    InvalidArgument,
    InvalidOption,
)
from conveyor.hooks import Callback, Hooks
from conveyor.registry import HandlerOptions, Registration, Registry
from conveyor.tasks import JobCall, Task, TypedTask

if TYPE_CHECKING:  # the worker's runtime is imported when a worker runs, not to send
    from conveyor.worker.options import RunOptions
    from conveyor.worker.runner import Worker

P = ParamSpec("P")
T = TypeVar("T")
Sent = TypeVar("Sent")


class ClientBase(Generic[Sent]):
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
        validate.unknown_options(unknown, _CLIENT_ARGUMENTS, "argument")
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

    # --- handlers: registration is plain data, shared by both faces ----------------------

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
        return connect.unreachable(self.settings.dsn, self.settings.connect_timeout)

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
            context=self._context,
            registrations=self._registry.select(
                options.get("queues"), options.get("concurrency")),
            hooks=self._hooks,
            options=settings,
        )


_CLIENT_ARGUMENTS = tuple(
    name for name, parameter in inspect.signature(ClientBase.__init__).parameters.items()
    if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD)
"""What a client takes, named when an argument is unknown."""


def signature_of(op: Callable[..., Any]) -> inspect.Signature:
    """The operation's signature with ``self`` in place of its context, returning
    what its ``Operation`` gives (``help()`` and the reference show it)."""
    signature = inspect.signature(op)
    params = list(signature.parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    returns = typing.get_args(typing.get_type_hints(op)["return"])[0]
    return signature.replace(parameters=[self_param, *params[1:]], return_annotation=returns)
