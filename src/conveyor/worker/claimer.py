"""Claiming: keeps one queue's handler slots filled.

A claim is one statement sized to the free slots (``claim.sql``). Its round trip,
a commit included, takes milliseconds, in which short handlers finish and free
their slots; a worker that waited for each answer before asking again would idle
for most of that time. So a busy queue keeps up to ``IN_FLIGHT`` claims under way
at once, each for the slots free when it was sent (reserved until it answers).

- After a full claim, claim again as soon as a quarter of the slots are free (or
  ``PATIENCE`` has passed), so that claims stay large under load.
- After a short one, wait for the claims still under way, then for a notification
  or the poll interval (with jitter). A claim that found work is followed by
  another ``FOUND_RECHECK`` (2 ms) later, which takes at once most sends whose
  notifications were debounced (``notify.DEBOUNCE``); 2 ms rather than 5 took
  about a millisecond off the pickup at 1,000 jobs/s (docs/benchmarks.md). A
  debounced send that commits after that claim is announced by its client
  once the window is over (``notify.NotifyGate``), never left for the poll.
- Queues under flow control (limits or fairness) are claimed through
  ``claim_flow.sql``; when a short claim left due jobs waiting (a rate window or
  a key's slots are full), the next claim comes as soon as this worker has
  recorded outcomes (which may free keys' slots; recorded while the claim was
  under way counts too), else ``HELD_BACK_RECHECK`` later.
  Whether a queue is under flow control, and whether it holds due jobs without
  a group key (which flow claims then look for), is read at most once a second.
- A failed claim (database down) backs off, doubling up to 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from conveyor._db.plan import Context, Operation, Run
from conveyor._ops import claims as _claims
from conveyor.errors import ConveyorError
from conveyor.hooks import HookEvent, Hooks
from conveyor.job import Job
from conveyor.registry import Registration

log = logging.getLogger("conveyor.worker")

Start = Callable[[Registration, "Slots", list[Job]], int]
"""Starts handler calls for claimed jobs, taking a reserved slot for each; returns
how many it started."""

PATIENCE = 0.01
"""Seconds a busy queue waits for more free slots before claiming."""
IN_FLIGHT = 2
"""Claims of one queue under way at once."""
FLOW_REFRESH = 1.0
"""Seconds a claimer trusts what it last read of its queue's flow control."""
HELD_BACK_RECHECK = 0.2
"""Seconds between claims while a flow-controlled queue's limits hold jobs back."""
FOUND_RECHECK = 0.002
"""Seconds after a claim that found work before the next: sends debounce their
notifications (``notify.DEBOUNCE``), so more jobs may have come whose
notification is still to come."""


class Slots:
    """How many more handler calls a queue may start: ``size`` minus those running
    (``used``) minus those a claim under way may start (``reserved``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.reserved = 0
        self._many = max(1, size // 4)
        self._free = asyncio.Event()
        self._free.set()
        self._free_many = asyncio.Event()
        self._free_many.set()

    @property
    def free(self) -> int:
        return self.size - self.used - self.reserved

    def reserve(self, count: int) -> None:
        self.reserved += count
        self._changed()

    def unreserve(self, count: int) -> None:
        self.reserved -= count
        self._changed()

    def take(self, count: int) -> None:
        """Reserved slots start handler calls."""
        self.reserved -= count
        self.used += count

    def give(self) -> None:
        self.used -= 1
        self._changed()

    def _changed(self) -> None:
        free = self.free
        if free > 0:
            self._free.set()
        else:
            self._free.clear()
        if free >= self._many:
            self._free_many.set()
        else:
            self._free_many.clear()

    async def wait_free(self) -> None:
        await self._free.wait()

    async def wait_many(self, patience: float) -> None:
        """Until a quarter of the slots are free, or ``patience`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._free_many.wait(), patience)

    def open(self) -> None:
        """Release waiters (the worker is stopping)."""
        self._free.set()
        self._free_many.set()


class Claimer:
    """The claim loop of one registration."""

    def __init__(
        self, reg: Registration, ctx: Context, *, run: Run, lease: timedelta, hooks: Hooks,
        stopping: asyncio.Event, start: Start,
    ) -> None:
        self.reg = reg
        self._schema = ctx.queries.schema
        self._flow = _claims.UNLIMITED
        self._flow_read = -FLOW_REFRESH
        self._held_back = False
        self.slots = Slots(reg.concurrency)
        self.wake = asyncio.Event()
        self._run = run
        self._lease = lease
        self._hooks = hooks
        self._stopping = stopping
        self._start = start
        self._claims: set[asyncio.Task[None]] = set()
        # Each claim asks for at most its share of the slots, so that while the
        # jobs of one run, the next claim is already on its way.
        self._share = -(-reg.concurrency // IN_FLIGHT)
        self._backlog = True  # look for work at once when starting
        self._found = False
        self._delay = 0.1

    @property
    def flow_controlled(self) -> bool:
        """Whether the queue was under flow control when last read."""
        return self._flow.controlled

    def stop(self) -> None:
        self.slots.open()
        self.wake.set()

    async def run(self) -> None:
        """Claim until the worker stops, then wait for the claims under way (their
        jobs are handed back by ``start``)."""
        try:
            await self._loop()
        finally:
            if self._claims:
                await asyncio.wait(self._claims)

    async def _loop(self) -> None:
        slots = self.slots
        while True:
            await slots.wait_free()
            if self._backlog:
                await slots.wait_many(PATIENCE)
            if self._stopping.is_set():
                return
            if not self._backlog:
                if self._claims:  # decide once the claims under way have answered
                    await asyncio.wait(self._claims)
                    continue
                if self._found:
                    pause = FOUND_RECHECK
                elif self._held_back:  # a rate window or a key's slot may open soon
                    pause = min(HELD_BACK_RECHECK, self.reg.poll_interval)
                else:
                    pause = self.reg.poll_interval
                pause *= random.uniform(0.8, 1.2)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), pause)
                if self._stopping.is_set():
                    return
            if len(self._claims) >= IN_FLIGHT:
                await asyncio.wait(self._claims, return_when=asyncio.FIRST_COMPLETED)
                continue
            self.wake.clear()
            count = min(slots.free, self._share)
            if count <= 0:
                continue
            slots.reserve(count)
            task = asyncio.create_task(self._claim(count))
            self._claims.add(task)
            task.add_done_callback(self._claims.discard)

    async def _flow_state(self) -> _claims.FlowState:
        """Whether the queue is under flow control (limits or fairness) and holds
        due jobs without a group key, read at most once per ``FLOW_REFRESH``: a
        change of limits reaches running workers within about a second, and so does
        the first unkeyed job of a queue whose jobs all had keys. Pauses need no
        refresh: every claim checks them."""
        now = time.monotonic()
        if now - self._flow_read >= FLOW_REFRESH:
            self._flow = await self._run(Operation(_claims.flow_state(self.reg.queue)))
            self._flow_read = now
        return self._flow

    async def _claim(self, count: int) -> None:
        reg = self.reg
        limit = count * reg.batch_size
        try:
            flow = await self._flow_state()
            jobs = await self._run(Operation(
                _claims.claim(reg.queue, limit, self._lease, schema=self._schema, flow=flow)))
            self._held_back = flow.controlled and len(jobs) < limit and await self._run(
                Operation(_claims.held_back(reg.queue)))
        except ConveyorError as exc:
            self.slots.unreserve(count)
            log.warning("claiming from %s failed (%s); retrying in %.1f s",
                        reg.queue, exc, self._delay)
            await self._hooks.emit(HookEvent("worker_error", error=exc))
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, 5.0)
            self._backlog = True
            return
        except BaseException:
            self.slots.unreserve(count)
            raise
        self._delay = 0.1
        self._backlog = len(jobs) == limit
        self._found = bool(jobs)
        started = self._start(reg, self.slots, jobs)
        self.slots.unreserve(count - started)


class Claimers:
    """A worker's claimers, one per queue: what notifications and recorded
    outcomes wake. Made empty, so that the completer can be given
    ``wake_held_back`` before the claimers exist; filled with ``add``."""

    def __init__(self) -> None:
        self._by_queue: dict[str, Claimer] = {}

    def add(self, claimer: Claimer) -> None:
        self._by_queue[claimer.reg.queue] = claimer

    def __iter__(self) -> Iterator[Claimer]:
        return iter(self._by_queue.values())

    def wake(self, queue: str | None) -> None:
        """A notification for ``queue`` (None: for every queue)."""
        if queue is None:
            for claimer in self._by_queue.values():
                claimer.wake.set()
        elif queue in self._by_queue:
            self._by_queue[queue].wake.set()

    def wake_held_back(self) -> None:
        """Outcomes were recorded: queues under flow control may have a key's slot
        free now, so a claimer whose last claim was held back by limits looks at
        once rather than at its next recheck. The wake is kept for a claim under
        way, whose answer may predate these outcomes."""
        for claimer in self._by_queue.values():
            if claimer.flow_controlled:
                claimer.wake.set()

    def stop(self) -> None:
        for claimer in self._by_queue.values():
            claimer.stop()
