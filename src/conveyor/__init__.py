"""Conveyor: a job queue for Python that lives entirely in PostgreSQL."""

from conveyor._db.migrate import MigrationResult
from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import NonRetryableError, PauseGroup, PauseQueue, RetryAfter
from conveyor.hooks import HookEvent
from conveyor.job import Group, Job, JobPage, JobState, Progress, Queue, QueuePolicy, Schedule
from conveyor.reports import Health, LeaderLease, QueueStats, QueueSummary, WorkerInfo

__all__ = [
    "AsyncConveyor",
    "Conveyor",
    "Group",
    "Health",
    "HookEvent",
    "Job",
    "JobPage",
    "JobState",
    "LeaderLease",
    "MigrationResult",
    "NonRetryableError",
    "PauseGroup",
    "PauseQueue",
    "Progress",
    "Queue",
    "QueuePolicy",
    "QueueStats",
    "QueueSummary",
    "RetryAfter",
    "Schedule",
    "WorkerInfo",
]
