"""The job list's state tabs (All, Queued, Scheduled, Waiting, Retrying, ...) with
how many jobs each holds, for every queue or one.

Unfinished jobs are counted live; finished ones come from the maintenance
leader's statistics snapshot, so a tab says when its count is not known. The
waiting steps of flows are not counted: ``queue_summaries`` does not count them,
and counting them here would read the whole job table at every refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from conveyor.job import JobState
from conveyor.reports import QueueSummary
from conveyor.web.dashboard.formatting import when
from conveyor.web.dashboard.job_filter import JobFilter

_NOT_COUNTED_YET = ("Not counted yet: the maintenance leader counts finished jobs with its "
                    "statistics snapshot.")
_WAITING_NOT_COUNTED = ("Steps of flows waiting for the jobs they depend on; not counted, "
                        "here or in All, to keep the page quick.")


@dataclass(frozen=True, slots=True)
class StateTab:
    """One tab of the job list: the jobs in a state (created ones split into those
    due now, queued, and those due later, scheduled) and how many there are.
    ``count`` is None when it is not known: finished jobs are counted by the
    maintenance leader's statistics snapshot, at ``counted_at``; ``note`` says why
    a tab that is never counted is not."""

    label: str
    state: str | None
    scheduled: bool | None
    count: int | None
    counted_at: datetime | None = None
    note: str | None = None

    def selected(self, job_filter: JobFilter) -> bool:
        return (self.state, self.scheduled) == (job_filter.state, job_filter.scheduled)

    @property
    def title(self) -> str | None:
        """What hovering the tab says of its count, if anything."""
        if self.note is not None:
            return self.note
        if self.count is None:
            return _NOT_COUNTED_YET
        if self.counted_at is not None:
            return f"Finished jobs as counted at {when(self.counted_at)}"
        return None


def state_tabs(summaries: Sequence[QueueSummary], queue: str | None = None) -> list[StateTab]:
    """The job list's tabs with the counts of ``queue`` (every queue when None)."""
    chosen = [s for s in summaries if queue is None or s.name == queue]
    counted = [s.counted_at for s in chosen if s.counted_at is not None]
    # Finished jobs are known once every queue was counted; the oldest count stands.
    known = len(counted) == len(chosen)
    counted_at = min(counted) if known and counted else None

    def total(field: str) -> int:
        return sum(getattr(summary, field) for summary in chosen)

    def finished(field: str) -> int | None:
        return total(field) if known else None

    tabs = [
        StateTab("Queued", JobState.CREATED.value, False, total("created")),
        StateTab("Scheduled", JobState.CREATED.value, True, total("scheduled")),
        StateTab("Waiting", JobState.WAITING.value, None, None, note=_WAITING_NOT_COUNTED),
        StateTab("Retrying", JobState.RETRY.value, None, total("retry")),
        StateTab("Active", JobState.ACTIVE.value, None, total("active")),
        StateTab("Completed", JobState.COMPLETED.value, None, finished("completed"),
                 counted_at),
        StateTab("Cancelled", JobState.CANCELLED.value, None, finished("cancelled"),
                 counted_at),
        StateTab("Failed", JobState.FAILED.value, None, total("failed")),
    ]
    # All adds up the tabs that are counted: never the waiting steps (see the note).
    counts = [tab.count for tab in tabs if tab.note is None]
    every = None if None in counts else sum(count or 0 for count in counts)
    return [StateTab("All", None, None, every, counted_at), *tabs]
