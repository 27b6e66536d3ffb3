"""The state a dashboard page shows for a job, which is not always its state in
the database: a created job due later reads ``scheduled``.

One function decides that a job is due later, so the state badge, the due column
and the job page cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from conveyor.job import Job, JobState


def due_later(job: Job) -> bool:
    """Whether ``job`` waits for a later start: what ``find_jobs(scheduled=True)``
    keeps (created, or waiting out a retry delay, due in the future)."""
    return job.state in (JobState.CREATED, JobState.RETRY) and job.start_after > datetime.now(UTC)


def shown_state(job: Job) -> str:
    """The state a page shows: ``scheduled`` for a created job due later."""
    return "scheduled" if job.state is JobState.CREATED and due_later(job) else job.state.value
