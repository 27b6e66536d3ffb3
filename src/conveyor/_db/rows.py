"""What operations share: argument types, and turning rows into Jobs and Queues."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from operator import attrgetter
from typing import Any, NamedTuple

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


def _dependencies(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A step's ``dependency_results`` (the schema's function of that name): the
    outputs of its completed dependencies, and how many ended in each state."""
    outputs = results.pop("outputs")
    return outputs, results


def job_from_row(row: Sequence[Any]) -> Job:
    """The Job of a row of ``{job_columns}`` (the Job's fields, in order; the id as
    text, and no errors as NULL, which are cheaper to read than a UUID and ``[]``).
    ``tests/test_row_shapes.py`` checks the columns, the fields and this unpacking agree."""
    (id_, queue, state, data, output, error, priority, retry_count, retry_limit,
     start_after, created_at, started_at, completed_at, singleton_key, progress, attempt,
     retry_delay, retry_backoff, retry_delay_max, expire_in, keep_until, delete_after,
     dead_letter, singleton_on, policy, lease_expires_at, group_key, errors,
     trace_context, source_id, source_queue, dependency_results, has_dependents) = row
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
    job.source_id = source_id
    job.source_queue = source_queue
    if dependency_results is None:
        job.dependency_outputs = {}
        job.dependency_counts = None
    else:
        job.dependency_outputs, job.dependency_counts = _dependencies(dependency_results)
    job.has_dependents = has_dependents
    job._control = None  # a worker attaches one (job.attach_control)
    job.__class__ = Job
    return job  # type: ignore[no-any-return]


class JobDefaults(NamedTuple):
    """What a queue's jobs take when their send leaves it out: the values a
    worker's claims leave out of the rows (``claimed_columns.sql``)."""

    priority: int
    retry_limit: int
    retry_delay: timedelta
    retry_backoff: bool
    expire_in: timedelta
    delete_after: timedelta
    retention: timedelta
    policy: str


_ACTIVE = JobState.ACTIVE


def claimed_jobs(
    rows: list[Sequence[Any]], queue: str, defaults: JobDefaults, lease: timedelta | None
) -> list[Job]:
    """The Jobs of a worker's claim: rows of ``{claimed_columns}``, with what they
    leave out filled in. The queue and the state (active) are the claim's; the
    lease ends ``min(expire_in, lease)`` after the start, as ``claim_update.sql``
    sets it; a NULL setting is the queue's default. The arithmetic is exact: the
    connections are Conveyor's own, in UTC, where PostgreSQL adds a day as 24
    hours, as ``timedelta`` does. Built as :func:`job_from_row` builds, without
    a full row in between (which cost as much again)."""
    (d_priority, d_retry_limit, d_retry_delay, d_retry_backoff, d_expire_in, d_delete_after,
     d_retention, d_policy) = defaults
    d_policy = _POLICIES[d_policy]
    jobs = []
    for (id_, data, output, error, priority, retry_count, retry_limit, start_after,
         created_at, started_at, completed_at, singleton_key, progress, attempt, retry_delay,
         retry_backoff, retry_delay_max, expire_in, keep_until, delete_after, dead_letter,
         singleton_on, policy, group_key, errors, trace_context, source_id,
         source_queue, dependency_results, has_dependents) in rows:
        job: Any = _new(_Unfrozen)
        job.id = id_
        job.queue = queue
        job.state = _ACTIVE
        job.data = data
        job.output = output
        job.error = error
        job.priority = d_priority if priority is None else priority
        job.retry_count = retry_count
        job.retry_limit = d_retry_limit if retry_limit is None else retry_limit
        if start_after is None:
            start_after = created_at
        job.start_after = start_after
        job.created_at = created_at
        job.started_at = started_at
        job.completed_at = completed_at
        job.singleton_key = singleton_key
        job.progress = Progress(progress)  # one each: a worker attaches its control
        job.attempt = attempt
        job.retry_delay = d_retry_delay if retry_delay is None else retry_delay
        job.retry_backoff = d_retry_backoff if retry_backoff is None else retry_backoff
        job.retry_delay_max = retry_delay_max
        if expire_in is None:
            expire_in = d_expire_in
        job.expire_in = expire_in
        job.keep_until = start_after + d_retention if keep_until is None else keep_until
        job.delete_after = d_delete_after if delete_after is None else delete_after
        job.dead_letter = dead_letter
        job.singleton_on = singleton_on
        job.policy = d_policy if policy is None else _POLICIES[policy]
        job.lease_expires_at = started_at + (
            expire_in if lease is None or lease > expire_in else lease)
        job.group_key = group_key
        job.errors = [] if errors is None else errors
        job.trace_context = trace_context
        job.source_id = source_id
        job.source_queue = source_queue
        if dependency_results is None:
            job.dependency_outputs = {}
            job.dependency_counts = None
        else:
            job.dependency_outputs, job.dependency_counts = _dependencies(dependency_results)
        job.has_dependents = has_dependents
        job._control = None  # a worker attaches one (job.attach_control)
        job.__class__ = Job
        jobs.append(job)
    return in_claim_order(jobs)


_BY_PRIORITY = attrgetter("priority")
_BY_START_AFTER_THEN_ID = attrgetter("start_after", "id")


def in_claim_order(jobs: list[Job]) -> list[Job]:
    """Jobs in the order claims take them: highest priority first, then earliest
    ``start_after``, then id (uuid7s sort as their text does). Two stable sorts,
    the second reversed, which keeps equal priorities in the order of the first.
    The claim statements leave this to the client, where it costs a fraction of
    what sorting whole rows costs the server."""
    jobs.sort(key=_BY_START_AFTER_THEN_ID)
    jobs.sort(key=_BY_PRIORITY, reverse=True)
    return jobs


def queue_from_row(row: Mapping[str, Any]) -> Queue:
    values = dict(row)
    values["policy"] = QueuePolicy(values["policy"])
    return Queue(**values)
