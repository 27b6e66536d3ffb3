"""What operations share: argument types, and turning rows into Jobs and Queues."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.job import Job, JobState, Progress, Queue, QueuePolicy

JobRef = str | uuid.UUID | Job
"""A job id (UUID or its text), or the Job itself (which also fences by attempt)."""


_STATES = {state.value: state for state in JobState}
_POLICIES = {policy.value: policy for policy in QueuePolicy}

# A frozen dataclass's __init__ sets each field through object.__setattr__. Workers
# build thousands of jobs a second from rows that hold every field already, so
# those are set through the slots' own descriptors instead: a third cheaper.
_JOB_FIELDS = tuple(getattr(Job, f.name).__set__ for f in dataclasses.fields(Job))
_new_job = Job.__new__


def job_from_row(row: Sequence[Any]) -> Job:
    """The Job of a row of ``{job_columns}`` (the Job's fields, in order; the id as
    text, and no errors as NULL, which are cheaper to read than a UUID and ``[]``)."""
    values = list(row)
    values[2] = _STATES[values[2]]
    values[14] = Progress(values[14])
    values[24] = _POLICIES[values[24]]
    if values[27] is None:
        values[27] = []
    values.append(None)  # _control: attached by a worker
    job = _new_job(Job)
    for set_field, value in zip(_JOB_FIELDS, values, strict=True):
        set_field(job, value)
    return job


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
