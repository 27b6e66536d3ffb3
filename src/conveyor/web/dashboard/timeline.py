"""A job's life as the events of its page's timeline: created, each failed attempt
with its error, the current attempt's start, the next due time, and how it
ended (by a dependency that failed, for a step of a flow), in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor.job import Job, JobState


@dataclass(frozen=True, slots=True)
class Event:
    """A moment of a job's life on its timeline; ``error`` is the failed attempt's,
    and ``dependency`` the id of the job whose failure ended a step of a flow."""

    at: datetime | None
    title: str
    kind: str
    error: Mapping[str, Any] | None = None
    dependency: str | None = None


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_ENDINGS = {JobState.COMPLETED: "Completed", JobState.CANCELLED: "Cancelled",
            JobState.FAILED: "Failed"}


def timeline(job: Job) -> list[Event]:
    """The job's life in order: created, each failed attempt with its error, the
    current attempt's start, the next due time, and how it ended."""
    events = [Event(job.created_at, "Created", "created")]
    for record in job.errors:
        at = _moment(record.get("failed_at"))
        if record.get("type") == "dependency":  # written when a dependency ends it
            dependency = record.get("dependency")
            events.append(Event(at, "Ended by a dependency", "dependency", record,
                                dependency if isinstance(dependency, str) else None))
        else:
            attempt = record.get("attempt", "?")
            events.append(Event(at, f"Attempt {attempt} failed", "failed", record))
    if job.started_at is not None:
        events.append(Event(job.started_at, f"Attempt {job.attempt} started", "started"))
    if job.state in (JobState.CREATED, JobState.RETRY) and job.start_after > job.created_at:
        events.append(Event(job.start_after, "Due", "due"))
    if job.state in _ENDINGS:
        events.append(Event(job.completed_at, _ENDINGS[job.state], job.state.value))
    known = sorted((e for e in events if e.at is not None), key=lambda e: e.at or job.created_at)
    return known + [e for e in events if e.at is None]
