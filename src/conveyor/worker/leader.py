"""Leader election: one process at a time runs maintenance (schedules, retention,
statistics), elected through a lease row with a term number.

Every worker process with maintenance on is a candidate. A candidate asks for the
lease (``leader_elect.sql``) every third of the lease: the holder renews it, and
anyone takes it once it has lapsed, under the next term. Two guards keep two
leaders from acting at once:

- **Stop first.** A leader counts its lease from the moment it *sent* the renewal,
  on its own monotonic clock, and stops leading at 90 % of it unless a renewal
  succeeded meanwhile. The database counts the same lease from when it ran the
  statement, later, and only then lets another process take it over: the old
  leader has stopped before the new one may start.
- **Fencing.** Each action a leader takes runs in a transaction that first checks
  its holder and term against the row, share-locked (``leader_fence.sql``): an
  action from a deposed leader does nothing, and a takeover waits until an action
  under way has committed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from conveyor._db import statements
from conveyor._db.plan import Execute, Operation, Plan, Run
from conveyor._ops.status import MAINTENANCE

log = logging.getLogger("conveyor.leader")

T = TypeVar("T")

_SAFE_SHARE = 0.9
"""Of its lease, how much a leader trusts without a renewal."""


@dataclass(frozen=True, slots=True)
class Term:
    """A won election: who leads, under which term number."""

    role: str
    holder: str
    number: int


class NotLeader(Exception):
    """Raised inside a fenced plan when its term has ended; nothing was done."""


def holder_name() -> str:
    """This process, recognisably: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fenced(term: Term, plan: Plan[T]) -> Plan[T]:
    """``plan``, run only while ``term`` still leads (``leader_fence.sql``). Run it
    as an atomic operation: the check holds the lease row until the commit."""
    row = yield Execute(statements.LEADER_FENCE, {"role": term.role, "holder": term.holder,
                                                  "term": term.number})
    if row is None:
        raise NotLeader(f"term {term.number} of {term.role!r} has ended")
    return (yield from plan)


def _elect(role: str, holder: str, lease: timedelta) -> Plan[Any]:
    row = yield Execute(statements.LEADER_ELECT, {"role": role, "holder": holder, "lease": lease})
    return row


def _resign(role: str, holder: str) -> Plan[int]:
    count: int = yield Execute(statements.LEADER_RESIGN, {"role": role, "holder": holder})
    return count


class Leader:
    """One process's candidacy for ``role``."""

    def __init__(self, run: Run, *, lease: float, role: str = MAINTENANCE) -> None:
        self._run = run
        self.role = role
        self.holder = holder_name()
        self.lease = lease
        self._term: Term | None = None
        self._until = 0.0
        self.clock_skew = 0.0
        """Database clock minus this process's, in seconds, at the last election."""

    @property
    def term(self) -> Term | None:
        """The term this process leads under, or None when it does not lead (or
        can no longer be sure it does)."""
        if self._term is not None and time.monotonic() >= self._until:
            log.warning("%s: lost the lease of %r (no renewal in time); stopped leading",
                        self.holder, self.role)
            self._term = None
        return self._term

    async def elect(self) -> Term | None:
        """Ask for the lease (renew it when held); returns the term led, if any.
        A failed request leaves the current term to run out on its own."""
        sent = time.monotonic()
        wall = time.time()
        row = await self._run(Operation(
            _elect(self.role, self.holder, timedelta(seconds=self.lease))))
        back = time.monotonic()
        if row is None:
            if self._term is not None:
                log.warning("%s: another process leads %r now", self.holder, self.role)
            self._term = None
            return None
        self.clock_skew = row["db_time"] - (wall + (back - sent) / 2)
        term = Term(self.role, self.holder, int(row["term"]))
        if self._term != term:
            log.info("%s: leading %r, term %d", self.holder, self.role, term.number)
        self._term = term
        self._until = sent + self.lease * _SAFE_SHARE
        return term

    async def resign(self) -> None:
        """Give the lease up (a clean stop), so another process takes over at once."""
        if self._term is None:
            return
        self._term = None
        await self._run(Operation(_resign(self.role, self.holder)))
