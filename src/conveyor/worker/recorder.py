"""Recording what handler calls came to: the one place a ``Result`` is written.

A completion or a failure goes to the completer, which writes outcomes in
batches; a pause is written at once with its jobs handed back; jobs stopped by
shutdown are kept until the worker hands them all back together; and the hooks
(``job_completed``, ``job_retried``, ``job_failed``, ``warning``) are called, and
with them metrics. The common case, a completion without a ``job_completed``
hook, takes no coroutine: ``record`` returns None.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from conveyor._db.plan import Context, Operation, Run
from conveyor._ops import claims, flow, validate
from conveyor._ops.claims import Outcome, completion
from conveyor.errors import ConveyorError, InvalidPayload
from conveyor.hooks import HookEvent, Hooks
from conveyor.worker.completer import Completer
from conveyor.worker.control import NOT_SETTLED, HandlerCall, JobControl, StopReason
from conveyor.worker.result import (
    Completed,
    CompletedInTransaction,
    Failed,
    Paused,
    Result,
    Stopped,
)

log = logging.getLogger("conveyor.worker")


STOP_GRACE = 10.0
"""Seconds for the final writes when stopping."""


def progress_json(control: JobControl, max_payload_bytes: int) -> str | None:
    """Progress reported since it was last taken (by a heartbeat or an outcome), as
    JSON."""
    taken = control.take_progress()
    return None if taken is None else validate.encode_json(
        taken, max_payload_bytes, "progress")


class Recorder:
    def __init__(
        self, run: Run, completer: Completer, hooks: Hooks, ctx: Context,
    ) -> None:
        self._handed_back: list[JobControl] = []
        """Jobs stopped by shutdown, handed back together by ``release``."""
        self._run = run
        self._completer = completer
        self._hooks = hooks
        self._ctx = ctx
        self._max_payload = ctx.max_payload_bytes

    def record(self, call: HandlerCall, result: Result) -> Awaitable[None] | None:
        """Write what ``call`` came to. Returns what is left to await (a full
        completer backlog, hooks, a statement), or None: the common case, done
        without a coroutine."""
        if type(result) is Completed:
            outcomes = [completion(id=c.id, attempt=c.attempt, output=result.output,
                                   progress=progress_json(c, self._max_payload),
                                   waited=c.waited)
                        for c in call.controls]
            offered = self._completer.offer(outcomes)
            if offered and not self._hooks.wants("job_completed"):
                return None
            return self._completed(call, result.returned, outcomes, offered)
        if isinstance(result, Failed):
            return self._failed(call, result)
        if isinstance(result, CompletedInTransaction):
            return self._settled(call, result.returned)
        if isinstance(result, Paused):
            return self._paused(call, result)
        assert isinstance(result, Stopped)
        if result.reason is StopReason.SHUTDOWN:
            self.hand_back(call.controls)
        else:
            log.info("stopped %d job(s): %s", len(call.controls), result.reason.value)
        return None

    def hand_back(self, controls: list[JobControl]) -> None:
        """Jobs to hand back to their queue, uncounted, when the worker stops."""
        self._handed_back.extend(controls)

    async def release(self) -> None:
        """Hand back every job given to ``hand_back``."""
        controls, self._handed_back = self._handed_back, []
        if not controls:
            return
        plan = claims.hand_back(self._ctx, [c.id for c in controls],
                               [c.attempt for c in controls])
        try:
            count = await asyncio.wait_for(self._run(Operation(plan)), STOP_GRACE)
            log.info("handed %d unfinished jobs back to their queues", count)
        except (ConveyorError, TimeoutError) as exc:
            log.error("could not hand %d jobs back (%s); they will be rescued when their "
                      "leases lapse", len(controls), exc)

    async def _completed(
        self, call: HandlerCall, returned: Any, outcomes: list[Outcome], offered: bool
    ) -> None:
        """The rest of a completion: room in the completer's backlog, then the hook."""
        if not offered:
            await self._completer.add(outcomes)
        await self._emit_completed(call, returned)

    async def _emit_completed(self, call: HandlerCall, returned: Any) -> None:
        if self._hooks.wants("job_completed"):
            duration = time.monotonic() - call.started
            for job in call.jobs:
                await self._hooks.emit(HookEvent("job_completed", job=job, output=returned,
                                                 duration=duration))

    async def _settled(self, call: HandlerCall, returned: Any) -> None:
        """The rest of a call whose handler completed its job(s) in its own
        transaction: the returned output for a job completed without one, and the
        completion of a job still active (the handler's transaction rolled back,
        and it returned all the same), in one fenced statement
        (``complete_settled.sql``)."""
        output: str | None
        try:
            output = validate.encode_json(returned, self._max_payload, "output")
        except InvalidPayload as exc:
            output = None
            await self._warn(f"{exc}; the handler had completed its job itself, "
                             "which keeps the output it gave")
        outcomes = []
        for control in call.controls:
            given = control.settled_output
            if given is NOT_SETTLED or given is None:
                given = output
            elif output is not None and output != given:
                await self._warn(
                    f"job {control.id} was completed by its handler's own transaction with "
                    "an output, and the handler returned another: the return value is not "
                    "stored (return None, or pass it to complete())")
            outcomes.append(Outcome(id=control.id, attempt=control.attempt, output=given,
                                    progress=progress_json(control, self._max_payload)))
        try:
            await self._run(Operation(
                claims.complete_settled(self._ctx, outcomes), atomic=True))
        except ConveyorError as exc:
            log.warning("could not record the outcome of %d jobs their handler completed "
                        "(%s); a job still active is rescued when its lease lapses",
                        len(outcomes), exc)
        await self._emit_completed(call, returned)

    async def _warn(self, message: str) -> None:
        log.warning("%s", message)
        await self._hooks.emit(HookEvent("warning", message=message))

    async def _failed(self, call: HandlerCall, failed: Failed) -> None:
        error = validate.error_json(failed.error, self._max_payload)
        await self._completer.add([
            Outcome(id=c.id, attempt=c.attempt, error=error, retry_after=failed.retry_after,
                    final=failed.final, progress=progress_json(c, self._max_payload),
                    waited=c.waited)
            for c in call.controls
        ])
        duration = time.monotonic() - call.started
        for job in call.jobs:
            retrying = not failed.final and job.retry_count < job.retry_limit
            log.log(logging.INFO if retrying else logging.WARNING,
                    "job %s (%s) failed: %s%s", job.id, job.queue, failed.error,
                    "; it will be retried" if retrying else "")
            event = "job_retried" if retrying else "job_failed"
            if self._hooks.wants(event):
                await self._hooks.emit(HookEvent(event, job=job, error=failed.error,
                                                 duration=duration))

    async def _paused(self, call: HandlerCall, paused: Paused) -> None:
        """Pause the queue or the group keys, and hand the jobs back uncounted."""
        plan = flow.pause_and_release(
            self._ctx, paused.queue, paused.group_keys, paused.pause.seconds,
            [c.id for c in call.controls], [c.attempt for c in call.controls])
        try:
            await self._run(Operation(plan, atomic=True))
        except ConveyorError as exc:  # the jobs stay active; rescue retries them later
            log.error("could not pause %s (%s); its jobs will be rescued when their leases "
                      "lapse", paused.queue, exc)
            return
        log.info("%s: %s; %d job(s) handed back", paused.queue, paused.pause,
                 len(call.controls))
