"""What operations share: argument types, and turning rows into Jobs and Queues."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from conveyor.job import Job, JobState, Progress, Queue, QueuePolicy

Duration = int | float | timedelta
"""Seconds, or a timedelta."""
JobRef = str | uuid.UUID | Job
"""A job id (UUID or its text), or the Job itself (which also fences by attempt)."""


def job_from_row(row: Mapping[str, Any]) -> Job:
    values = dict(row)
    values["id"] = str(values["id"])
    values["state"] = JobState(values["state"])
    values["policy"] = QueuePolicy(values["policy"])
    values["progress"] = Progress(values["progress"])
    return Job(**values)


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
