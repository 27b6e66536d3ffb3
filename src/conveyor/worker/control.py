"""What a worker knows about one running attempt, and what its handler can ask of it.

Handlers run on the event loop, in threads or in processes, so everything a handler
touches here is a plain assignment under a lock; the worker's heartbeat reads it
from the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from enum import Enum
from typing import Any

from conveyor.job import Job, Progress


class StopReason(Enum):
    """Why the worker stopped an attempt before its handler returned."""

    CANCELLED = "the job was cancelled, rescued or deleted"
    TIMED_OUT = "the attempt ran past its expire_in"
    SHUTDOWN = "the worker is stopping"


class JobControl:
    """One running attempt: its deadline, pending progress and stop request."""

    def __init__(self, job: Job, call: HandlerCall) -> None:
        self.id = job.id
        self.attempt = job.attempt
        self.expire_in = job.expire_in.total_seconds()
        # The job was made for this attempt alone: attaching to it is cheaper than a copy.
        object.__setattr__(job, "_control", self)
        object.__setattr__(job, "progress", Progress(job.progress, control=self))
        self.job = job
        self.call = call
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + self.expire_in
        self._progress: dict[str, Any] | None = None
        self.stop_reason: StopReason | None = None

    # --- called by handlers (any thread) ---

    def report_progress(self, percent: float, message: str | None) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise TypeError(f"percent must be a number, not {percent!r}")
        with self._lock:
            self._progress = {"percent": percent, "message": message}

    def extend(self) -> None:
        with self._lock:
            self._deadline = time.monotonic() + self.expire_in

    @property
    def cancelled(self) -> bool:
        return self.stop_reason is not None

    # --- called by the worker (event loop) ---

    @property
    def deadline(self) -> float:
        with self._lock:
            return self._deadline

    def take_progress(self) -> dict[str, Any] | None:
        with self._lock:
            progress, self._progress = self._progress, None
        return progress

    def stop(self, reason: StopReason) -> None:
        """Stop this attempt and the others its handler call holds."""
        self.call.stop(reason)


class HandlerCall:
    """One call of a handler: one job, or a batch. It is stopped as a whole."""

    def __init__(self, jobs: list[Job], interruptible: bool) -> None:
        self.controls = [JobControl(job, self) for job in jobs]
        self.task: asyncio.Task[Any] | None = None
        self.in_handler = False
        self.interruptible = interruptible
        """An async handler can be cancelled; a thread or process cannot."""

    @property
    def stop_reason(self) -> StopReason | None:
        return self.controls[0].stop_reason

    def stop(self, reason: StopReason) -> None:
        """The first reason given wins. An async handler is cancelled at once. A
        thread or process handler sees ``job.cancelled``; the worker stops waiting
        for it, except when shutting down: then its job is handed back only once
        the handler has returned, so it never runs in two places."""
        if self.stop_reason is not None:
            return
        for control in self.controls:
            control.stop_reason = reason
        waits = not self.interruptible and reason is StopReason.SHUTDOWN
        if self.in_handler and self.task is not None and not waits:
            self.task.cancel()
