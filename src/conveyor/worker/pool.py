"""A queue's handler calls, run in turn by a fixed set of long-lived tasks.

Creating an asyncio task for every job costs more than a short job itself: the
task, its scheduling and its done-callbacks. Instead each queue keeps
``concurrency`` tasks (runners); a claimed call waits in a local line until a
runner takes it, and a runner that finishes a call takes the next one without
going back to the event loop. The runner's task is the call's task while it
runs, so stopping a call (``HandlerCall.stop``) cancels the runner's current
await; the runner then goes on with the next call.

A runner executes a call (to its result), records the result, and finishes the
call, in its own task: no coroutine is made per call beyond the execution's, and
none to record a result that can be recorded at once (``record`` returns None).

Waking a runner costs a turn of the event loop (a future resolved, the task
stepped), as much as a short call itself. So runners are woken as they are
needed, not one per call: a submitted call wakes one idle runner when none is
already on its way, and a woken runner that takes a call and sees more waiting
wakes up to two more (``_RAMP``) before it runs its call. Calls that return
without waiting are then all run by the first runner, in one turn; calls that
wait are taken up by twice as many runners in each turn of the loop, so a claim
of 500 has all its calls started within ten turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from conveyor.worker.control import HandlerCall

R = TypeVar("R")

_RAMP = 2
"""Idle runners a woken runner wakes when calls are still waiting after its first."""


class HandlerPool(Generic[R]):
    def __init__(
        self, name: str, size: int, execute: Callable[[HandlerCall], Awaitable[R]],
        record: Callable[[HandlerCall, R], Awaitable[None] | None],
        finish: Callable[[HandlerCall], None],
    ) -> None:
        """``execute`` runs a call to its result, ``record`` writes the result
        (returning what is left to await, if anything), ``finish`` is called when
        the call is over, whether or not it got that far."""
        self._name = name
        self._size = size
        self._execute = execute
        self._record = record
        self._finish = finish
        self._line: deque[HandlerCall] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = 0
        """Runners woken that have not yet looked at the line."""
        self._runners: list[asyncio.Task[None]] = []
        self.active = 0
        """Calls waiting in line or running."""
        self._empty = asyncio.Event()
        self._empty.set()

    def start(self) -> None:
        self._runners = [
            asyncio.create_task(self._run(), name=f"conveyor-{self._name}-{n}")
            for n in range(self._size)
        ]

    def submit(self, calls: list[HandlerCall]) -> None:
        """Calls to run, in order."""
        if not calls:
            return
        self._line.extend(calls)
        self.active += len(calls)
        self._empty.clear()
        if not self._waking:
            self._wake(1)

    def _wake(self, count: int) -> None:
        idle = self._idle
        while count and idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking += 1
                count -= 1

    async def wait_empty(self) -> None:
        await self._empty.wait()

    async def close(self) -> None:
        """Stop the runners (once their calls are done or stopped)."""
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        self._runners = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        line = self._line
        while True:
            woken = True
            while line:
                call = line.popleft()
                if woken:
                    woken = False
                    if line:
                        self._wake(min(_RAMP, len(line)))
                call.task = task
                try:
                    rest = self._record(call, await self._execute(call))
                    if rest is not None:
                        await rest
                finally:
                    self._finish(call)
                    self.active -= 1
                    if not self.active:
                        self._empty.set()
            waiter = loop.create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._idle.remove(waiter)
                raise
            self._waking -= 1
