"""What maintenance leaves to read: the statistics history and who leads
(``get_stats``, ``get_leader``). The leader writes both (``maintenance.py``,
``leader.py``)."""

from __future__ import annotations

from typing import Any

from conveyor import _validate
from conveyor._options import Duration
from conveyor._plan import Context, Execute, Operation, Plan
from conveyor.job import LeaderLease, QueueStats
from conveyor.leader import MAINTENANCE


def get_stats(
    ctx: Context, /, queue: str | None = None, *, since: Duration = 3600, conn: Any = None,
) -> Operation[list[QueueStats]]:
    """The statistics snapshots the leader took in the last ``since`` (seconds or a
    timedelta; an hour by default), of ``queue`` or of every queue, oldest first:
    per snapshot and queue, the jobs waiting and active, the jobs finished since
    the snapshot before (throughput), and the lag of the oldest due job."""
    name = None if queue is None else _validate.queue_name(queue)
    window = _validate.positive_duration(since, "since")

    def plan() -> Plan[list[QueueStats]]:
        rows = yield Execute("stats_history", {"queue": name, "since": window})
        return [QueueStats(**row) for row in rows]

    return Operation(plan(), conn)


def get_leader(ctx: Context, /, *, conn: Any = None) -> Operation[LeaderLease | None]:
    """Who leads maintenance, with its term and whether its lease is current; None
    when no worker has led yet."""

    def plan() -> Plan[LeaderLease | None]:
        row = yield Execute("leader_get", {"role": MAINTENANCE}, "one")
        return None if row is None else LeaderLease(**row)

    return Operation(plan(), conn)
