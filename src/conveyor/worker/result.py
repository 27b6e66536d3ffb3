"""What one handler call came to, as a value.

Running a call (``execution.py``) writes nothing: it returns one of these, and
the recorder (``recorder.py``) writes it down (the completer, a pause, the jobs
handed back, hooks). A new way for a call to end is a new type here and a branch
in the recorder.

Not frozen: a frozen dataclass costs twice as much to build, and one is built for
every handler call. Nothing changes a result once it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from conveyor.errors import NonRetryableError, PauseGroup, RetryAfter
from conveyor.worker.control import StopReason


@dataclass(slots=True)
class Completed:
    """The handler returned: its jobs complete with ``output``."""

    returned: Any
    """What the handler returned (the ``job_completed`` hook's ``output``)."""
    output: str | None
    """``returned`` as JSON, as the job stores it."""


@dataclass(slots=True)
class CompletedInTransaction:
    """The handler completed its job(s) in its own transaction
    (``complete(job, output, conn=...)``), then returned ``returned``."""

    returned: Any


@dataclass(slots=True)
class Failed:
    """The attempt failed: retried by the job's policy, after ``retry_after`` when
    the handler asked (``RetryAfter``), or never again when ``final``."""

    error: BaseException
    retry_after: timedelta | None = None
    final: bool = False

    @classmethod
    def of(cls, error: BaseException) -> Failed:
        """The failure ``error`` means: ``RetryAfter`` asks for a delay,
        ``NonRetryableError`` for no retry."""
        return cls(
            error,
            retry_after=timedelta(seconds=error.seconds) if isinstance(error, RetryAfter)
            else None,
            final=isinstance(error, NonRetryableError))


@dataclass(slots=True)
class Paused:
    """The handler asked to pause its queue (``group_keys`` None) or its jobs'
    group keys; the jobs go back to the queue without counting an attempt."""

    queue: str
    pause: PauseGroup
    group_keys: list[str] | None


@dataclass(slots=True)
class Stopped:
    """The worker stopped the call before its handler finished: cancelled (the job
    was cancelled, rescued or deleted: nothing to write) or shutting down (the jobs
    are handed back uncounted). A call that ran past its time limit is ``Failed``."""

    reason: StopReason


Result = Completed | CompletedInTransaction | Failed | Paused | Stopped
