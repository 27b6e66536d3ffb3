"""What operations share: argument types, and turning rows into Jobs and Queues."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.job import Job, JobState, Progress, Queue, QueuePolicy

JobRef = str | uuid.UUID | Job
"""A job id (UUID or its text), or the Job itself (which also fences by attempt)."""


_STATES = {state.value: state for state in JobState}
_POLICIES = {policy.value: policy for policy in QueuePolicy}


def job_from_row(row: Sequence[Any]) -> Job:
    """The Job of a row of ``{job_columns}`` (the Job's fields, in order; the id as
    text, and no errors as NULL, which are cheaper to read than a UUID and ``[]``)."""
    values = list(row)
    values[2] = _STATES[values[2]]
    values[14] = Progress(values[14])
    values[24] = _POLICIES[values[24]]
    if values[26] is None:
        values[26] = []
    return Job(*values)


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
