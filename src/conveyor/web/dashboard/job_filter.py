"""``JobFilter``: the job list's filters as its query string gives them, and what
follows from them: the query string again, the body of a bulk action, the count
a bulk action would change, and the filters in words for a confirmation.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import InvalidArgument
from conveyor.job import JobState
from conveyor.web.dashboard.job_actions import JOB_ACTIONS, JobAction

if TYPE_CHECKING:
    from conveyor.web.dashboard.state_tabs import StateTab

_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The job list's filters, as the query string gives them (empty means any).
    ``scheduled`` keeps only the jobs due later (true) or only the others (false)."""

    queue: str | None = None
    state: str | None = None
    key: str | None = None
    q: str | None = None
    scheduled: bool | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> JobFilter:
        """The filters of a query string; raises ``InvalidArgument`` when
        ``scheduled`` is neither ``true`` nor ``false``."""

        def given(name: str) -> str | None:
            return query.get(name, "").strip() or None

        scheduled = given("scheduled")
        if scheduled is not None and scheduled not in _BOOLEANS:
            raise InvalidArgument(f"scheduled must be true or false, not {scheduled[:20]!r}")
        return cls(given("queue"), given("state"), given("key"), given("q"),
                   None if scheduled is None else _BOOLEANS[scheduled])

    def as_query(self) -> dict[str, str]:
        """The filters that are set, as the job list's query string."""
        return {name: str(value).lower() if isinstance(value, bool) else value
                for name, value in self.as_body().items()}

    def as_body(self) -> dict[str, str | bool]:
        """The filters that are set, as the body of a bulk action on the jobs they
        match."""
        fields = {"queue": self.queue, "state": self.state, "key": self.key, "q": self.q,
                  "scheduled": self.scheduled}
        return {name: value for name, value in fields.items() if value is not None}

    def showing(self, tab: StateTab) -> JobFilter:
        """These filters with the state (and scheduled) of ``tab``."""
        return dataclasses.replace(self, state=tab.state, scheduled=tab.scheduled)

    def _states_for(self, action: JobAction) -> list[str]:
        """The states a bulk ``action`` changes among the jobs this filter matches
        (none: every state)."""
        if self.state is not None:
            return [self.state]
        if action.states == frozenset(JobState):
            return []
        return [state.value for state in JobState if state in action.states]

    def describe(self, states: Sequence[str] | None = None) -> str:
        """The filters in words, for a confirmation: ``in queue "emails", in state
        failed``; ``states`` stands for the filter's state when given."""
        states = ([self.state] if self.state else []) if states is None else states
        words = []
        if self.queue:
            words.append(f'in queue "{self.queue}"')
        if states:
            words.append(f"in state {states[0]}" if len(states) == 1
                         else f"in states {', '.join(states[:-1])} or {states[-1]}")
        if self.scheduled is not None:
            words.append("due later" if self.scheduled else "due now")
        if self.key:
            words.append(f'with key "{self.key}"')
        if self.q:
            words.append(f'matching "{self.q}"')
        return ", ".join(words) if words else "at all"

    def describe_for(self, action: JobAction) -> str:
        """The jobs a bulk ``action`` on this filter changes, in words."""
        return self.describe(self._states_for(action))

    def count_query(self, action: JobAction) -> str:
        """The query of ``GET /api/jobs/count`` for the jobs a bulk ``action`` on this
        filter changes."""
        filters = {name: value for name, value in self.as_query().items() if name != "state"}
        return urllib.parse.urlencode(
            [*filters.items(), *(("state", state) for state in self._states_for(action))])

    def bulk_actions(self) -> list[JobAction]:
        """The actions that can apply to some job this filter matches; none without a
        queue or a state, which ``bulk`` requires so that one click cannot touch
        every job there is."""
        if self.state is None:
            return list(JOB_ACTIONS) if self.queue else []
        return [action for action in JOB_ACTIONS if self.state in action.states]
