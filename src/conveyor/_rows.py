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


_STATES = {state.value: state for state in JobState}
_POLICIES = {policy.value: policy for policy in QueuePolicy}


def job_from_row(row: dict[str, Any]) -> Job:
    """The Job of a ``SELECT *`` row (which it takes over: the row is changed)."""
    row["id"] = str(row["id"])
    row["state"] = _STATES[row["state"]]
    row["policy"] = _POLICIES[row["policy"]]
    row["progress"] = Progress(row["progress"])
    return Job(**row)


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
