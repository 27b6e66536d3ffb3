"""What operations share: argument types, and turning rows into Jobs and Queues."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from conveyor.job import Job, JobState, Progress, Queue, QueuePolicy

JobRef = str | uuid.UUID | Job
"""A job id (UUID or its text), or the Job itself (which also fences by attempt)."""


_STATES = {state.value: state for state in JobState}
_POLICIES = {policy.value: policy for policy in QueuePolicy}


class _Unfrozen:
    """Job's slots, in Job's order, without its frozen ``__setattr__``.

    Workers build thousands of jobs a second. A frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``, a call per field; here a job is
    filled in as an ``_Unfrozen`` with plain attribute stores, then becomes a Job
    by assigning its class, which Python allows between classes of the same slots
    (3.7 against 1.0 µs a job, measured). The test of ``job_from_row`` checks the
    result against Job's own constructor, field by field.
    """

    __slots__ = Job.__slots__


_new = object.__new__


def job_from_row(row: Sequence[Any]) -> Job:
    """The Job of a row of ``{job_columns}`` (the Job's fields, in order; the id as
    text, and no errors as NULL, which are cheaper to read than a UUID and ``[]``)."""
    (id_, queue, state, data, output, error, priority, retry_count, retry_limit,
     start_after, created_at, started_at, completed_at, singleton_key, progress, attempt,
     retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until, delete_after,
     dead_letter, singleton_on, policy, lease_expires_at, group_key, errors,
     trace_context) = row
    job: Any = _new(_Unfrozen)
    job.id = id_
    job.queue = queue
    job.state = _STATES[state]
    job.data = data
    job.output = output
    job.error = error
    job.priority = priority
    job.retry_count = retry_count
    job.retry_limit = retry_limit
    job.start_after = start_after
    job.created_at = created_at
    job.started_at = started_at
    job.completed_at = completed_at
    job.singleton_key = singleton_key
    job.progress = Progress(progress)
    job.attempt = attempt
    job.retry_delay = retry_delay
    job.retry_backoff = retry_backoff
    job.retry_delay_max = retry_delay_max
    job.expire_in = expire_in
    job.keep_until = keep_until
    job.delete_after = delete_after
    job.dead_letter = dead_letter
    job.singleton_on = singleton_on
    job.policy = _POLICIES[policy]
    job.lease_expires_at = lease_expires_at
    job.group_key = group_key
    job.errors = [] if errors is None else errors
    job.trace_context = trace_context
    job._control = None  # attached by a worker
    job.__class__ = Job
    return job  # type: ignore[no-any-return]


_FIELDS = [field.name for field in dataclasses.fields(Job)]  # {job_columns}, in order
_BY_PRIORITY = itemgetter(_FIELDS.index("priority"))
_BY_START_AFTER_THEN_ID = itemgetter(_FIELDS.index("start_after"), _FIELDS.index("id"))


def in_claim_order(rows: list[Any]) -> list[Any]:
    """Rows of ``{job_columns}`` in the order claims take jobs: highest priority
    first, then earliest ``start_after``, then id (uuid7s sort as their text does).
    Two stable sorts, the second reversed, which keeps equal priorities in the
    order of the first."""
    rows.sort(key=_BY_START_AFTER_THEN_ID)
    rows.sort(key=_BY_PRIORITY, reverse=True)
    return rows


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
