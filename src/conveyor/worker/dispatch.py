"""Between the claimers and the pools: claimed jobs become handler calls, and
calls that are over give their slots back.

``Dispatch`` keeps the attempts running in this worker (``running``, by job id),
which the heartbeat renews (``leases.py``) and a shutdown stops. A claimer hands
it the jobs of a claim (``start``); a pool tells it when a call is over
(``finish``). Jobs claimed once the worker is stopping go back to their queue
through the recorder. The worker waits on it for the running calls to end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from conveyor.job import Job
from conveyor.registry import Registration
from conveyor.worker.claimer import Slots
from conveyor.worker.control import HandlerCall, JobControl, StopReason
from conveyor.worker.pool import HandlerPool
from conveyor.worker.recorder import Recorder
from conveyor.worker.result import Result

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Dispatch:
    """A worker's handler calls from claim to finish, across its queues' pools."""

    def __init__(self, recorder: Recorder, stopping: asyncio.Event) -> None:
        """``stopping``: once set, claimed jobs are handed back instead of run. The
        queues' pools are added with ``add_pool`` (they call back ``finish``)."""
        self.running: dict[str, JobControl] = {}
        self.pools: dict[str, HandlerPool[Result]] = {}
        self._recorder = recorder
        self._stopping = stopping

    def add_pool(self, queue: str, pool: HandlerPool[Result]) -> None:
        self.pools[queue] = pool

    def start(self, reg: Registration, slots: Slots, jobs: list[Job]) -> int:
        """Start a handler call per job (per batch for batch handlers); jobs claimed
        while stopping go back to their queue. Returns how many calls started."""
        interruptible, now = reg.executor == "async", time.monotonic()
        chunks = ([job] for job in jobs) if reg.batch_size == 1 else _chunks(jobs, reg.batch_size)
        calls = [HandlerCall(chunk, interruptible, now) for chunk in chunks]
        if self._stopping.is_set():
            for call in calls:
                self._recorder.hand_back(call.controls)
            return 0
        running = self.running
        for call in calls:
            for control in call.controls:
                running[control.id] = control
            call.slots = slots
        slots.take(len(calls))
        self.pools[reg.queue].submit(calls)
        return len(calls)

    def finish(self, call: HandlerCall) -> None:
        """A call is over: its jobs stop running, and its slot is given back."""
        for control in call.controls:
            self.running.pop(control.id, None)
        slots, thread = call.slots, call.thread
        call.finish()
        if thread is None or thread.done():
            slots.give()
        else:  # a thread or process cannot be interrupted: its slot stays taken
            loop = asyncio.get_running_loop()
            thread.add_done_callback(lambda _: loop.call_soon_threadsafe(slots.give))

    @property
    def active(self) -> int:
        """Calls waiting for a runner or running."""
        return sum(pool.active for pool in self.pools.values())

    def stop_all(self, reason: StopReason) -> None:
        for control in list(self.running.values()):
            control.stop(reason)

    async def calls_done(self, timeout: float, forced: asyncio.Event | None = None) -> None:
        """Until no handler call is running, ``timeout`` passes, or ``forced`` is set."""
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._pools_empty())}
        if forced is not None:
            waits.add(asyncio.ensure_future(forced.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            # Read what the waits ended with, so that none is reported unread.
            await asyncio.gather(*waits, return_exceptions=True)

    async def _pools_empty(self) -> None:
        """Until no pool has a call (none gets new calls: claiming has stopped)."""
        for pool in self.pools.values():
            await pool.wait_empty()

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))

