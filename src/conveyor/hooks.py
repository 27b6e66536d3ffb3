"""Hooks: callbacks for what happens to jobs and workers, for logs and metrics.

``cv.on("job_completed", callback)`` (or ``@cv.on("job_completed")``). A callback
takes one :class:`HookEvent`; it may be a plain function or a coroutine function.
A callback that raises is logged and does not disturb the worker.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from conveyor.errors import InvalidOption
from conveyor.job import Job

log = logging.getLogger("conveyor.worker")

EVENTS: Final = (
    "job_started", "job_completed", "job_failed", "job_retried",
    "worker_started", "worker_stopped", "worker_error", "stats", "warning",
)


@dataclass(frozen=True, slots=True)
class HookEvent:
    """What happened. ``job`` is set for job events; ``error`` for failures,
    retries and worker errors; ``output`` for completions; ``stats`` (a list of
    ``QueueStats``) for each statistics snapshot the leader takes; ``message`` for
    warnings (a large backlog, slow maintenance, clock skew)."""

    name: str
    job: Job | None = None
    output: Any = None
    error: BaseException | None = None
    duration: float | None = None
    stats: Any = None
    message: str | None = None


Callback = Callable[[HookEvent], Any]


class Hooks:
    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callback]] = {name: [] for name in EVENTS}

    def add(self, event: str, callback: Callback) -> None:
        if event not in self._callbacks:
            raise InvalidOption(f"unknown hook {event!r}; use one of {', '.join(EVENTS)}")
        if not callable(callback):
            raise InvalidOption(f"a hook must be callable, not {callback!r}")
        self._callbacks[event].append(callback)

    def wants(self, event: str) -> bool:
        """Whether anything listens: the worker builds no event nobody reads."""
        return bool(self._callbacks[event])

    async def emit(self, event: HookEvent) -> None:
        for callback in self._callbacks[event.name]:
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("the %s hook %r raised", event.name, callback)
