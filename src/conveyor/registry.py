"""Handlers registered per queue, and how each is to be run."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypedDict, Unpack

from conveyor._ops import validate
from conveyor.errors import ConfigurationError, InvalidOption, QueueConflict, QueueNotFound
from conveyor.tasks import direct_callable, wrapped_function

Executor = Literal["auto", "async", "thread", "process"]
DEFAULT_CONCURRENCY = 5
DEFAULT_POLL_INTERVAL = 2.0


def default_concurrency() -> int:
    """``CONVEYOR_CONCURRENCY``, else 5."""
    raw = os.environ.get("CONVEYOR_CONCURRENCY")
    if not raw:
        return DEFAULT_CONCURRENCY
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"CONVEYOR_CONCURRENCY={raw!r} is not an int") from None
    if value < 1:
        raise ConfigurationError(f"CONVEYOR_CONCURRENCY must be at least 1, got {value}")
    return value


class HandlerOptions(TypedDict, total=False):
    """How a queue's handler runs (see ``work()``).

    - ``concurrency``: handler calls at once in this process (default 5, or
      ``CONVEYOR_CONCURRENCY``).
    - ``batch_size`` (1): with more, the handler gets a list of up to that many jobs.
    - ``poll_interval`` (2 s): seconds between looks for work without notifications.
    - ``executor`` ("auto"): "async", "thread" or "process"; auto picks async for
      ``async def`` handlers and threads for the rest.
    """

    concurrency: int | None
    batch_size: int
    poll_interval: float
    executor: Executor


@dataclass(frozen=True, slots=True)
class Registration:
    """One queue's handler and its settings."""

    queue: str
    handler: Callable[..., Any]
    concurrency: int
    batch_size: int
    poll_interval: float
    executor: Literal["async", "thread", "process"]

    @classmethod
    def make(
        cls, queue: str, handler: Callable[..., Any], **options: Unpack[HandlerOptions]
    ) -> Registration:
        validate.unknown_options(
            {k: v for k, v in options.items() if k not in HandlerOptions.__annotations__},
            HandlerOptions.__annotations__,
        )
        concurrency = options.get("concurrency")
        batch_size = options.get("batch_size", 1)
        poll_interval = options.get("poll_interval", DEFAULT_POLL_INTERVAL)
        executor = options.get("executor", "auto")
        name = validate.queue_name(queue)
        if not callable(handler):
            raise InvalidOption(f"the handler for {name!r} must be callable, not {handler!r}")
        function = wrapped_function(handler)
        is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - an object with async __call__
        )
        if executor == "auto":
            chosen: Literal["async", "thread", "process"] = "async" if is_async else "thread"
        elif executor in ("async", "thread", "process"):
            chosen = executor
        else:
            raise InvalidOption(
                f"executor must be 'auto', 'async', 'thread' or 'process', not {executor!r}"
            )
        if chosen == "async" and not is_async:
            raise InvalidOption(f"executor='async' needs an async def handler for {name!r}")
        if chosen != "async" and is_async:
            raise InvalidOption(f"an async def handler for {name!r} runs with executor='async'")
        interval = validate.positive_duration(poll_interval, "poll_interval").total_seconds()
        return cls(
            queue=name,
            handler=handler if chosen == "process" else direct_callable(handler),
            concurrency=validate.integer(
                default_concurrency() if concurrency is None else concurrency,
                "concurrency", minimum=1,
            ),
            batch_size=validate.integer(batch_size, "batch_size", minimum=1),
            poll_interval=interval,
            executor=chosen,
        )


class Registry:
    """The registrations of one client, by queue."""

    def __init__(self) -> None:
        self._by_queue: dict[str, Registration] = {}

    def add(self, registration: Registration) -> None:
        if registration.queue in self._by_queue:
            raise QueueConflict(f"queue {registration.queue!r} already has a handler")
        self._by_queue[registration.queue] = registration

    def select(
        self, queues: Iterable[str] | None = None, concurrency: int | None = None
    ) -> list[Registration]:
        """The registrations to run: all, or those of ``queues``; ``concurrency``
        overrides each one's (the command line's ``--concurrency``)."""
        chosen = list(self._by_queue.values())
        if queues is not None:
            wanted = [validate.queue_name(q) for q in queues]
            missing = [q for q in wanted if q not in self._by_queue]
            if missing:
                known = ", ".join(self._by_queue) or "none"
                raise QueueNotFound(f"no handler registered for {', '.join(missing)} "
                                    f"(registered: {known})")
            chosen = [self._by_queue[q] for q in wanted]
        if concurrency is not None:
            count = validate.integer(concurrency, "concurrency", minimum=1)
            chosen = [replace(r, concurrency=count) for r in chosen]
        return chosen

    def __bool__(self) -> bool:
        return bool(self._by_queue)
