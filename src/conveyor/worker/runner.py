"""The worker: assembles its parts and supervises them until told to stop.

One worker per process serves every registered queue. For each queue a loop claims
as many jobs as it has free slots (``concurrency``, times ``batch_size`` for batch
handlers) in one statement; after a full claim it claims again at once, otherwise
it waits for a notification or its poll interval (with jitter). The parts talk
through callables and values given at construction, never through the worker:

- claimers (``claimer.py``) hand claimed jobs to ``Dispatch`` (``dispatch.py``),
  which makes them handler calls in the queues' pools (``pool.py``) and takes
  them back when they are over;
- each handler call returns what it came to as a value (``execution.py``,
  ``result.py``), which one recorder writes (``recorder.py``): completions and
  failures through a completer, in batches (``completer.py``);
- heartbeats renew the leases of running attempts, and a rescue pass settles the
  jobs of dead workers (``leases.py``);
- a listener turns notifications into wake-ups of the claimers (``_db/notify.py``,
  ``claimer.Claimers``), unless the worker polls only (``listen=False``, for
  PgBouncer in transaction mode); recorded outcomes wake the claimers held back
  by flow control.

Every operation of the worker's own, maintenance aside, runs under the client's
statement deadline (``_db/deadline.py``), so a connection that goes silent holds up
nothing for longer than that.

Leases are short (``lease``, 30 s by default, never longer than the job's
``expire_in``) and renewed while the handler runs; ``expire_in`` is the attempt's
time limit, after which the handler is stopped and the attempt fails with
``JobTimeout``. A dead worker's jobs are therefore rescued within about one lease,
however long their time limit.

Stopping (``stop()``, SIGTERM or SIGINT): stop claiming, let running handlers
finish for up to ``shutdown_timeout``, stop the rest, hand their jobs back to the
queue without counting an attempt, write every pending outcome, close. A second
signal skips the wait (``process.py``, which also lightens garbage collection).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from typing import Any

from conveyor._db.notify import Listener
from conveyor._db.plan import Context, Run, RunWithin
from conveyor._ops import schedules as scheduler
from conveyor._ops import validate
from conveyor.errors import ConveyorError
from conveyor.hooks import HookEvent, Hooks
from conveyor.job import Job
from conveyor.registry import Registration
from conveyor.worker.claimer import Claimer, Claimers
from conveyor.worker.completer import Completer
from conveyor.worker.control import HandlerCall, StopReason
from conveyor.worker.dispatch import Dispatch
from conveyor.worker.execution import HandlerExecutor
from conveyor.worker.leader import holder_name
from conveyor.worker.leases import Leases
from conveyor.worker.maintenance import Maintenance
from conveyor.worker.options import WORKER_DEFAULTS
from conveyor.worker.pool import HandlerPool
from conveyor.worker.presence import Presence
from conveyor.worker.process import StopRequest, fewer_collections, stop_on_signals
from conveyor.worker.recorder import STOP_GRACE, Recorder
from conveyor.worker.result import Result

log = logging.getLogger("conveyor.worker")


def _seconds(settings: Mapping[str, Any], name: str) -> float:
    """A positive duration option, in seconds."""
    return validate.positive_duration(settings[name], name).total_seconds()


class Worker:
    def __init__(
        self,
        run: RunWithin,
        *,
        dsn: str,
        statement_deadline: float,
        context: Context,
        registrations: list[Registration],
        hooks: Hooks,
        options: Mapping[str, Any],
    ) -> None:
        """``options``: any of ``options.WorkerOptions``; others raise ``UnknownOption``."""
        validate.unknown_options(
            {k: v for k, v in options.items() if k not in WORKER_DEFAULTS}, WORKER_DEFAULTS
        )
        settings: dict[str, Any] = {**WORKER_DEFAULTS, **options}
        if not registrations:
            raise ConveyorError("no handlers registered: use work() or @task() first")
        # The worker's own operations are short: past the deadline, their connection
        # is given up. Maintenance's may rightly take longer, and go without.
        self._run: Run = functools.partial(run, deadline=statement_deadline)
        self._statement_deadline = statement_deadline
        self._dsn = dsn
        self._context = context
        self._registrations = registrations
        self._hooks = hooks
        self._shutdown_timeout = validate.duration(
            settings["shutdown_timeout"], "shutdown_timeout").total_seconds()
        self._listen = validate.boolean(settings["listen"], "listen")
        self._lease = validate.positive_duration(settings["lease"], "lease")
        self._handle_signals = validate.boolean(settings["handle_signals"], "handle_signals")
        self._tune_gc = validate.boolean(settings["tune_gc"], "tune_gc")
        self._heartbeat_interval = _seconds(settings, "heartbeat_interval")
        self._rescue_interval = _seconds(settings, "rescue_interval")
        self._maintenance = Maintenance(
            self._run, hooks, context, run_tasks=run,
            lease=_seconds(settings, "leader_lease"),
            interval=_seconds(settings, "maintenance_interval"),
            stats_interval=_seconds(settings, "stats_interval"),
            stats_retention=_seconds(settings, "stats_retention"),
            backlog_warning=validate.integer(
                settings["backlog_warning"], "backlog_warning", minimum=0),
            schedules=functools.partial(scheduler.tick, context),
        ) if validate.boolean(settings["maintenance"], "maintenance") else None
        self.presence = Presence(
            self._run,
            holder_name() if self._maintenance is None else self._maintenance.leader.holder,
            [reg.queue for reg in registrations],
            sum(reg.concurrency for reg in registrations))
        self._executor = HandlerExecutor(registrations, hooks, context.max_payload_bytes)
        self._stop: StopRequest | None = None
        self.finished: Future[None] = Future()
        """Done when ``run()`` has returned (or raised): ``result()`` waits for it
        from another thread, ``asyncio.wrap_future`` from a coroutine."""

    # --- one call at a time, without the loops (``conveyor.testing``) --------------------

    @property
    def registrations(self) -> list[Registration]:
        """The handlers this worker runs, one per queue."""
        return self._registrations

    async def run_call(self, reg: Registration, jobs: list[Job]) -> Result:
        """Run one handler call of ``jobs`` (claimed from ``reg``'s queue) in the
        caller's task, record what it came to exactly as under ``run()``, and return
        it once every write is done. Call ``close()`` after the last one."""
        completer = Completer(self._run, self._context)
        recorder = self._recorder(completer)
        call = HandlerCall(jobs, interruptible=reg.executor == "async")
        try:
            result = await self._executor.execute(reg, call)
            rest = recorder.record(call, result)
            if rest is not None:
                await rest
        finally:
            call.finish()
            completer.close()
            await completer.run()
        return result

    def _recorder(self, completer: Completer) -> Recorder:
        return Recorder(self._run, completer, self._hooks, self._context)

    def close(self) -> None:
        """After ``run_call``: shut the thread and process pools down, once their
        handlers have returned."""
        self._executor.close(wait=True)

    # --- running -------------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Begin a graceful stop (or, with ``force``, skip the wait for handlers).
        Safe to call from any thread; does nothing unless the worker is running."""
        if self._stop is not None:
            self._stop.request(force)

    async def run(self) -> None:
        """Claim and run jobs until stopped; then hand back and record everything."""
        try:
            with fewer_collections(self._tune_gc):
                await self._serve()
        finally:
            if not self.finished.done():
                self.finished.set_result(None)

    async def _serve(self) -> None:
        stop = self._stop = StopRequest()
        claimers = Claimers()
        completer = Completer(self._run, self._context, written=claimers.wake_held_back)
        recorder = self._recorder(completer)
        dispatch = Dispatch(recorder, stop.stopping)
        for reg in self._registrations:
            dispatch.add_pool(reg.queue, HandlerPool(
                reg.queue, reg.concurrency, functools.partial(self._executor.execute, reg),
                recorder.record, dispatch.finish))
            claimers.add(Claimer(reg, self._context, run=self._run, lease=self._lease,
                                 hooks=self._hooks, stopping=stop.stopping,
                                 start=dispatch.start))
        leases = Leases(
            self._run, dispatch.running, self._context, lease=self._lease,
            heartbeat_interval=self._heartbeat_interval, rescue_interval=self._rescue_interval)
        background: list[asyncio.Task[Any]] = []

        def keep(name: str, work: Coroutine[Any, Any, None]) -> None:
            background.append(asyncio.create_task(work, name=f"conveyor-{name}"))

        with stop_on_signals(self._handle_signals, stop, self._shutdown_timeout):
            try:
                completer_task = asyncio.create_task(completer.run(), name="conveyor-completer")
                for pool in dispatch.pools.values():
                    pool.start()
                keep("heartbeat", leases.heartbeats())
                keep("rescue", leases.rescues())
                keep("presence", self.presence.run())
                if self._maintenance is not None:
                    keep("maintenance", self._maintenance.run())
                if self._listen:
                    keep("listen", Listener(self._dsn, self._context.queries, claimers.wake,
                                            deadline=self._statement_deadline).run())
                loops = [asyncio.create_task(claimer.run(),
                                             name=f"conveyor-claim-{claimer.reg.queue}")
                         for claimer in claimers]
                log.info("worker started: %s", ", ".join(
                    f"{r.queue} (concurrency {r.concurrency}, {r.executor})"
                    for r in self._registrations))
                await self._hooks.emit(HookEvent("worker_started"))
                await stop.stopping.wait()

                log.info("stopping: no new jobs; waiting for %d running", len(dispatch.running))
                claimers.stop()
                await asyncio.gather(*loops, return_exceptions=True)
                await self._drain(dispatch, stop.forced)
                await recorder.release()
                completer.close()
                try:
                    await asyncio.wait_for(completer_task, STOP_GRACE)
                except TimeoutError:
                    log.error("gave up writing %d outcomes; their jobs will be rescued",
                              completer.backlog)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                if self._maintenance is not None:
                    await self._maintenance.stop()
                await self.presence.leave()
                await dispatch.close()
                self._executor.close(wait=False)
                self._stop = None
        await self._hooks.emit(HookEvent("worker_stopped"))
        log.info("worker stopped")

    async def _drain(self, dispatch: Dispatch, forced: asyncio.Event) -> None:
        """Wait for running handlers up to the shutdown timeout, then stop them."""
        await dispatch.calls_done(self._shutdown_timeout, forced)
        if dispatch.active:
            log.warning("stopping %d handler calls that did not finish in time",
                        dispatch.active)
            dispatch.stop_all(StopReason.SHUTDOWN)
            await dispatch.calls_done(STOP_GRACE)
        if dispatch.active:
            log.error(
                "%d thread or process handlers ignored job.cancelled; their jobs stay "
                "active and are rescued when their leases lapse", dispatch.active)
