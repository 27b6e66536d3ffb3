"""A worker's presence: the row that tells dashboards, health checks and metrics
that this process is alive (the ``worker`` table, migration 0008).

The row is written at start, its expiry pushed forward every ``INTERVAL``
seconds, and removed at a clean stop. A process that dies stops renewing: it
counts as alive for at most ``TTL`` seconds more, and the leader forgets its row
later (``maintenance_workers.sql``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from conveyor._db import statements
from conveyor._db.plan import Execute, Operation, Plan, Run
from conveyor.errors import ConveyorError

log = logging.getLogger("conveyor.worker")

INTERVAL: Final = 10.0
TTL: Final = 3 * INTERVAL
"""A worker is alive while it renewed its row within this many seconds."""



def _announce(params: dict[str, Any]) -> Plan[None]:
    yield Execute(statements.WORKER_ANNOUNCE, params)


def _leave(worker_id: str) -> Plan[None]:
    yield Execute(statements.WORKER_LEAVE, {"id": worker_id})


class Presence:
    """Keeps this worker's row fresh while :meth:`run` runs."""

    def __init__(self, run: Run, worker_id: str, queues: Sequence[str], concurrency: int) -> None:
        self._run = run
        self.id = worker_id
        self._params = {
            "id": worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": list(queues), "concurrency": concurrency,
            "ttl": timedelta(seconds=TTL),
        }

    async def run(self) -> None:
        """Until cancelled: announce now and every ``INTERVAL`` seconds. A failed
        announcement is tried again at the next one."""
        while True:
            try:
                await self._run(Operation(_announce(self._params)))
            except ConveyorError as exc:
                log.warning("could not renew this worker's presence (%s)", exc)
            await asyncio.sleep(INTERVAL)

    async def leave(self) -> None:
        """Remove the row (a clean stop)."""
        try:
            await self._run(Operation(_leave(self.id)))
        except ConveyorError as exc:
            log.warning("could not remove this worker's presence (%s); it expires", exc)
