"""What a worker knows about one running attempt, and what its handler can ask of it.

Handlers run on the event loop, in threads or in processes, so everything a handler
touches here is a plain assignment under a lock; the worker's heartbeat reads it
from the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
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

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        self.id = job.id
        self.attempt = job.attempt
        self.expire_in = job.expire_in.total_seconds()
        self.job = replace(job, _control=self, progress=Progress(job.progress, control=self))
        self._loop = loop
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + self.expire_in
        self._progress: dict[str, Any] | None = None
        self.stop_reason: StopReason | None = None
        self.stopped = asyncio.Event()

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
        """Ask the attempt to stop; the first reason given wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stopped.set()
