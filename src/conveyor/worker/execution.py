"""Running handler calls: one call in, one ``Result`` out, nothing written.

A call runs on the event loop (``async def`` handlers), in a thread or in a
process, as its registration says; the thread and process pools are made on first
use, sized by the concurrency of the queues that use them. What the call came to
(its output, its exception, a stop by the worker) becomes a ``Result``
(``result.py``), which the recorder writes (``recorder.py``). The worker's
runners and its ``run_call`` (``conveyor.testing``) share both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from conveyor import tracing
from conveyor._ops import validate
from conveyor.errors import InvalidOption, InvalidPayload, JobTimeout, PauseGroup, PauseQueue
from conveyor.hooks import HookEvent, Hooks
from conveyor.job import without_control
from conveyor.registry import Registration
from conveyor.worker import result
from conveyor.worker.control import HandlerCall, StopReason

_HANDED_BACK = result.Stopped(StopReason.SHUTDOWN)


class HandlerExecutor:
    """Runs the handler calls of ``registrations`` and says what each came to."""

    def __init__(
        self, registrations: Sequence[Registration], hooks: Hooks, max_payload_bytes: int
    ) -> None:
        self._registrations = registrations
        self._hooks = hooks
        self._max_payload = max_payload_bytes
        self._executors: dict[str, Executor] = {}

    def close(self, *, wait: bool) -> None:
        """Shut the thread and process pools down; with ``wait``, once their
        handlers have returned."""
        for executor in self._executors.values():
            executor.shutdown(wait=wait, cancel_futures=True)

    async def execute(self, reg: Registration, call: HandlerCall) -> result.Result:
        """Run one handler call (the ``job_started`` hook first) and return what it
        came to. The call's task is cancelled (by ``HandlerCall.stop``) only while
        the handler runs. A thread or process that cannot be stopped is left in
        ``call.thread``."""
        call.started = time.monotonic()
        if call.stop_reason is not None:  # stopped while waiting for a runner
            return self._stopped(call.stop_reason, call)
        if self._hooks.wants("job_started"):
            for job in call.jobs:
                await self._hooks.emit(HookEvent("job_started", job=job))
        argument = self._argument(reg, call)
        call.in_handler = True
        try:
            if reg.executor == "async" and not tracing.enabled():
                returned = await reg.handler(argument)  # the common case, without a span
            else:
                with tracing.running(reg.queue, call):
                    if reg.executor == "async":
                        returned = await reg.handler(argument)
                    else:
                        handler = (reg.handler if reg.executor == "process"
                                   else tracing.carry_context(reg.handler))
                        call.thread = self._executor(reg.executor).submit(handler, argument)
                        returned = await asyncio.wrap_future(call.thread)
        except asyncio.CancelledError:
            call.in_handler = False
            reason = call.stop_reason
            if reason is None:  # not ours: the worker itself is being cancelled
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            return self._stopped(reason, call)
        except Exception as exc:  # the handler's own failure
            call.in_handler = False
            if call.stop_reason is StopReason.SHUTDOWN:  # interrupted: hand it back
                return _HANDED_BACK
            if isinstance(exc, PauseGroup):
                return _paused(reg.queue, exc, call)
            return result.Failed.of(exc)
        call.in_handler = False
        if call.stop_reason is StopReason.SHUTDOWN:  # may have returned early
            return _HANDED_BACK
        if call.settled:
            return result.CompletedInTransaction(returned)
        try:
            return result.Completed(returned, validate.encode_json(
                returned, self._max_payload, "output"))
        except InvalidPayload as exc:
            return result.Failed.of(exc)

    @staticmethod
    def _stopped(reason: StopReason, call: HandlerCall) -> result.Result:
        if reason is StopReason.TIMED_OUT:
            limit = call.controls[0].expire_in
            return result.Failed.of(
                JobTimeout(f"the attempt ran past its expire_in of {limit:g} s"))
        return _HANDED_BACK if reason is StopReason.SHUTDOWN else result.Stopped(reason)

    def _executor(self, kind: str) -> Executor:
        if kind not in self._executors:
            workers = sum(r.concurrency for r in self._registrations if r.executor == kind)
            self._executors[kind] = (
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conveyor")
                if kind == "thread" else ProcessPoolExecutor(max_workers=workers)
            )
        return self._executors[kind]

    @staticmethod
    def _argument(reg: Registration, call: HandlerCall) -> Any:
        jobs = call.jobs
        if reg.executor == "process":  # a job crossing into a process goes without control
            jobs = [without_control(job) for job in jobs]
        return jobs if reg.batch_size > 1 else jobs[0]


def _paused(queue: str, pause: PauseGroup, call: HandlerCall) -> result.Result:
    """A pause of the queue, or of the call's group keys. A job without a group key
    cannot pause one: that attempt fails instead."""
    if isinstance(pause, PauseQueue):
        return result.Paused(queue, pause, None)
    keys = [job.group_key for job in call.jobs]
    if None in keys:
        return result.Failed.of(InvalidOption(
            "PauseGroup needs a job sent with a group_key; use PauseQueue or RetryAfter "
            "for jobs without one"))
    return result.Paused(queue, pause, [key for key in keys if key is not None])
