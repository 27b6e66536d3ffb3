"""Leases: how a worker keeps its running attempts, and how dead workers' are found.

Every running attempt holds a lease (``lease``, 30 s by default). A heartbeat,
every ``heartbeat_interval``, renews the leases of the attempts running here,
stores their progress, stops those past their time limit (``expire_in``), and
stops the handlers of jobs whose lease it no longer holds (cancelled, rescued or
deleted). A rescue pass, every ``rescue_interval`` (with jitter), settles jobs
whose lease lapsed, their worker having died, as failed attempts: crash recovery
needs nothing but workers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta

from conveyor._db.plan import Context, Operation, Run
from conveyor._ops import claims, validate
from conveyor.errors import ConveyorError, LeaseExpired
from conveyor.worker.control import JobControl, StopReason
from conveyor.worker.recorder import progress_json

log = logging.getLogger("conveyor.worker")


_RESCUE_BATCH = 500


class Leases:
    def __init__(
        self, run: Run, running: dict[str, JobControl], ctx: Context, *, lease: timedelta,
        heartbeat_interval: float, rescue_interval: float,
    ) -> None:
        """``running``: the worker's running attempts by job id, which it keeps."""
        self._run = run
        self._running = running
        self._lease = lease
        self._heartbeat_interval = heartbeat_interval
        self._rescue_interval = rescue_interval
        self._max_payload = ctx.max_payload_bytes
        self._ctx = ctx

    async def heartbeats(self) -> None:
        """Renew, time and check the running attempts' leases, until cancelled."""
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            controls = list(self._running.values())
            if not controls:
                continue
            now = time.monotonic()
            for control in controls:  # time limits, checked at every beat
                if control.deadline <= now:
                    control.stop(StopReason.TIMED_OUT)
            progress = [progress_json(control, self._max_payload) for control in controls]
            plan = claims.heartbeat([c.id for c in controls],
                                     [c.attempt for c in controls], progress, self._lease)
            try:
                held = await self._run(Operation(plan))
            except ConveyorError as exc:
                log.warning("heartbeat failed (%s); leases renew at the next one", exc)
                continue
            for control in controls:
                if control.id not in held and control.id in self._running:
                    control.stop(StopReason.CANCELLED)

    async def rescues(self) -> None:
        """Settle jobs whose lease lapsed as failed attempts, until cancelled."""
        error = validate.error_json(
            LeaseExpired("the worker running this attempt stopped renewing its lease"),
            self._max_payload,
        )
        while True:
            await asyncio.sleep(self._rescue_interval * random.uniform(0.5, 1.5))
            try:
                rescued = await self._run(
                    Operation(claims.rescue(self._ctx, _RESCUE_BATCH, error),
                              atomic=True))
            except ConveyorError as exc:
                log.warning("rescue pass failed (%s)", exc)
                continue
            if rescued:
                log.warning("rescued %d jobs whose lease lapsed", rescued)
