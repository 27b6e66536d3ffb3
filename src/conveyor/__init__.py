"""Conveyor: a job queue for Python that lives entirely in PostgreSQL."""

from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import NonRetryableError, RetryAfter
from conveyor.job import Job, JobPage, JobState, Progress, Queue, QueuePolicy
from conveyor.migrate import MigrationResult
from conveyor.worker import HookEvent

__all__ = [
    "AsyncConveyor",
    "Conveyor",
    "HookEvent",
    "Job",
    "JobPage",
    "JobState",
    "MigrationResult",
    "NonRetryableError",
    "Progress",
    "Queue",
    "QueuePolicy",
    "RetryAfter",
]
