"""What a worker knows about one running attempt, and what its handler can ask of it.

Handlers run on the event loop, in threads or in processes. What a handler sets
here is one attribute assignment (atomic in CPython), read by the worker's
heartbeat on the event loop, so no lock is needed: reported progress is a new
object each time, and the heartbeat sends it when it is not the one it sent last.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from enum import Enum
from typing import Any

from conveyor.job import Job, attach_control


class StopReason(Enum):
    """Why the worker stopped an attempt before its handler returned."""

    CANCELLED = "the job was cancelled, rescued or deleted"
    TIMED_OUT = "the attempt ran past its expire_in"
    SHUTDOWN = "the worker is stopping"


NOT_SETTLED: Any = object()
"""``JobControl.settled_output`` of an attempt its handler did not complete itself."""


class JobControl:
    """One running attempt: its deadline, pending progress and stop request, and
    whether its handler completed it in a transaction of its own."""

    __slots__ = ("_progress", "_sent", "attempt", "call", "deadline", "expire_in", "id",
                 "settled_output", "waited")

    def __init__(self, job: Job, call: HandlerCall, now: float) -> None:
        self.id = job.id
        self.attempt = job.attempt
        self.waited = job.has_dependents
        """Whether something waited for the job when it was claimed (see
        ``worker/completer.py``)."""
        self.expire_in = job.expire_in.total_seconds()
        attach_control(job, self)
        self.call = call
        self.deadline = now + self.expire_in
        self._progress: dict[str, Any] | None = None
        self._sent: dict[str, Any] | None = None
        self.settled_output: str | None = NOT_SETTLED
        """The output (JSON, or None) with which the handler completed this attempt
        in its own transaction, or ``NOT_SETTLED``."""

    # --- called by handlers (any thread) -------------------------------------------------

    def report_progress(self, percent: float, message: str | None) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise TypeError(f"percent must be a number, not {percent!r}")
        self._progress = {"percent": percent, "message": message}

    def extend(self) -> None:
        self.deadline = time.monotonic() + self.expire_in

    def completed_in_transaction(self, output: str | None) -> None:
        """The handler completes this attempt in its own transaction, with
        ``output`` (JSON text, or None to store what the handler returns)."""
        self.settled_output = output
        self.call.settled = True

    @property
    def cancelled(self) -> bool:
        return self.call.stop_reason is not None

    # --- called by the worker (event loop) -----------------------------------------------

    def take_progress(self) -> dict[str, Any] | None:
        """The progress reported since the last time, if any."""
        progress = self._progress
        if progress is self._sent:
            return None
        self._sent = progress
        return progress

    def stop(self, reason: StopReason) -> None:
        """Stop this attempt and the others its handler call holds."""
        self.call.stop(reason)


class HandlerCall:
    """One call of a handler: one job, or a batch. It is stopped as a whole."""

    __slots__ = ("controls", "in_handler", "interruptible", "jobs", "settled", "slots",
                 "started", "stop_reason", "task", "thread")

    def __init__(self, jobs: list[Job], interruptible: bool, now: float | None = None) -> None:
        """``now``: ``time.monotonic()``, from which the jobs' time limits run; one
        reading serves all the calls of a claim."""
        self.jobs = jobs
        if now is None:
            now = time.monotonic()
        self.controls = (
            [JobControl(jobs[0], self, now)] if len(jobs) == 1
            else [JobControl(job, self, now) for job in jobs])
        self.task: asyncio.Task[Any] | None = None
        self.in_handler = False
        self.interruptible = interruptible
        """An async handler can be cancelled; a thread or process cannot."""
        self.stop_reason: StopReason | None = None
        self.settled = False
        """Whether the handler completed any of its jobs in its own transaction."""
        self.slots: Any = None
        """The queue's slots (``claimer.Slots``), given back when the call is over."""
        self.started = now
        """When the call began to run (``time.monotonic()``), for its duration."""
        self.thread: Future[Any] | None = None
        """The thread or process running the handler, which cannot be interrupted:
        its slot is given back only once it returns."""

    def stop(self, reason: StopReason) -> None:
        """The first reason given wins. An async handler is cancelled at once. A
        thread or process handler sees ``job.cancelled``; the worker stops waiting
        for it, except when shutting down: then its job is handed back only once
        the handler has returned, so it never runs in two places."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        waits = not self.interruptible and reason is StopReason.SHUTDOWN
        if self.in_handler and self.task is not None and not waits:
            self.task.cancel()

    def finish(self) -> None:
        """Drop the links from the call to its jobs and controls once it is over,
        so that reference counting frees them at once rather than the garbage
        collector later (at thousands of jobs a second, collecting them costs more
        than running them). ``job.cancelled`` still works for a handler that kept
        its job: the job points to its control, and the control to the call."""
        self.jobs = []
        self.controls = []
        self.task = None
