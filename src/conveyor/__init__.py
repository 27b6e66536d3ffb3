"""Conveyor: a job queue for Python that lives entirely in PostgreSQL."""

from conveyor.client import AsyncConveyor, Conveyor
from conveyor.job import Job, JobPage, JobState, Queue, QueuePolicy
from conveyor.migrate import MigrationResult

__all__ = [
    "AsyncConveyor",
    "Conveyor",
    "Job",
    "JobPage",
    "JobState",
    "MigrationResult",
    "Queue",
    "QueuePolicy",
]
