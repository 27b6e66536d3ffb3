"""What a person can do to a job from the dashboard (retry, resume, cancel,
delete) and the states each applies to.

The job page offers the actions of the job's state, and the job list the actions
of its filter, from this one table; the changes themselves go through the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.job import JobState


@dataclass(frozen=True, slots=True)
class JobAction:
    """What a person can do to a job, in the states it applies to. ``done`` is the
    past participle the page reports afterwards (``3 jobs retried``)."""

    name: str
    label: str
    states: frozenset[JobState]
    done: str

    @property
    def danger(self) -> bool:
        return self.name in ("cancel", "delete")


_UNFINISHED = frozenset({JobState.CREATED, JobState.RETRY, JobState.ACTIVE, JobState.WAITING})
JOB_ACTIONS = (
    JobAction("retry", "Retry", frozenset({JobState.FAILED}), "retried"),
    JobAction("resume", "Resume", frozenset({JobState.CANCELLED}), "resumed"),
    JobAction("cancel", "Cancel", _UNFINISHED, "cancelled"),
    JobAction("delete", "Delete", frozenset(JobState), "deleted"),
)
