"""The worker: runs registered handlers on claimed jobs until told to stop.

One worker per process serves every registered queue. For each queue a loop claims
as many jobs as it has free slots (``concurrency``, times ``batch_size`` for batch
handlers) in one statement; after a full claim it claims again at once, otherwise
it waits for a notification or its poll interval (with jitter). Alongside:

- each handler call returns what it came to as a value (``execution.py``,
  ``result.py``), which one recorder writes (``recorder.py``): completions and
  failures through a completer, in batches (``completer.py``);
- heartbeats renew the leases of running attempts, and a rescue pass settles the
  jobs of dead workers (``leases.py``);
- a listener turns notifications into wake-ups (``notify.py``), unless the worker
  polls only (``listen=False``, for PgBouncer in transaction mode).

Every operation of the worker's own, maintenance aside, runs under the client's
statement deadline (``_deadline.py``), so a connection that goes silent holds up
nothing for longer than that.

Leases are short (``lease``, 30 s by default, never longer than the job's
``expire_in``) and renewed while the handler runs; ``expire_in`` is the attempt's
time limit, after which the handler is stopped and the attempt fails with
``JobTimeout``. A dead worker's jobs are therefore rescued within about one lease,
however long their time limit.

Stopping (``stop()``, SIGTERM or SIGINT): stop claiming, let running handlers
finish for up to ``shutdown_timeout``, stop the rest, hand their jobs back to the
queue without counting an attempt, write every pending outcome, close. A second
signal skips the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from conveyor import _validate, scheduler
from conveyor._plan import Run, RunWithin
from conveyor.errors import ConveyorError
from conveyor.hooks import HookEvent, Hooks
from conveyor.job import Job
from conveyor.leader import holder_name
from conveyor.maintenance import Maintenance
from conveyor.notify import Listener
from conveyor.queries import Queries
from conveyor.registry import Registration
from conveyor.worker.claimer import Claimer, Slots
from conveyor.worker.completer import Completer
from conveyor.worker.control import HandlerCall, JobControl, StopReason
from conveyor.worker.execution import HandlerExecutor
from conveyor.worker.leases import Leases
from conveyor.worker.options import WORKER_DEFAULTS
from conveyor.worker.pool import HandlerPool
from conveyor.worker.presence import Presence
from conveyor.worker.recorder import STOP_GRACE, Recorder
from conveyor.worker.result import Result

log = logging.getLogger("conveyor.worker")

T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_PYTHON_GC_THRESHOLDS = (700, 10, 10)
_WORKER_GC_THRESHOLDS = (7000, 10, 10)


def _seconds(settings: Mapping[str, Any], name: str) -> float:
    """A positive duration option, in seconds."""
    return _validate.positive_duration(settings[name], name).total_seconds()


@contextlib.contextmanager
def _fewer_collections(enabled: bool) -> Iterator[None]:
    """Lighter garbage collection while a worker runs.

    A claim of hundreds of jobs allocates thousands of objects at once, all alive
    until their handlers return; with Python's default thresholds the collector
    runs every 700 allocations and walks them again and again (about a tenth of a
    busy worker's time, measured). So: freeze what exists at start-up (modules,
    configuration) out of the collector's view, and collect the youngest
    generation every 7,000 allocations. Left alone when the application has set
    thresholds of its own; undone when the worker stops.
    """
    if not enabled or gc.get_threshold() != _PYTHON_GC_THRESHOLDS:
        yield
        return
    gc.freeze()
    gc.set_threshold(*_WORKER_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*_PYTHON_GC_THRESHOLDS)
        gc.unfreeze()


class Worker:
    def __init__(
        self,
        run: RunWithin,
        *,
        dsn: str,
        statement_deadline: float,
        queries: Queries,
        max_payload_bytes: int,
        registrations: list[Registration],
        hooks: Hooks,
        options: Mapping[str, Any],
    ) -> None:
        """``options``: any of ``options.WorkerOptions``; others raise ``UnknownOption``."""
        _validate.unknown_options(
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
        self._queries = queries
        self._max_payload = max_payload_bytes
        self._registrations = registrations
        self._hooks = hooks
        self._shutdown_timeout = _validate.duration(
            settings["shutdown_timeout"], "shutdown_timeout")
        self._listen = _validate.boolean(settings["listen"], "listen")
        self._lease = _validate.positive_duration(settings["lease"], "lease")
        self._handle_signals = _validate.boolean(settings["handle_signals"], "handle_signals")
        self._tune_gc = _validate.boolean(settings["tune_gc"], "tune_gc")
        self._maintenance = Maintenance(
            self._run, hooks, run_tasks=run,
            lease=_seconds(settings, "leader_lease"),
            interval=_seconds(settings, "maintenance_interval"),
            stats_interval=_seconds(settings, "stats_interval"),
            stats_retention=_seconds(settings, "stats_retention"),
            backlog_warning=_validate.integer(
                settings["backlog_warning"], "backlog_warning", minimum=0),
            schedules=functools.partial(scheduler.tick, max_payload_bytes),
        ) if _validate.boolean(settings["maintenance"], "maintenance") else None
        self.presence = Presence(
            self._run,
            holder_name() if self._maintenance is None else self._maintenance.leader.holder,
            [reg.queue for reg in registrations],
            sum(reg.concurrency for reg in registrations))
        self._running: dict[str, JobControl] = {}
        self._leases = Leases(
            self._run, self._running, lease=self._lease,
            heartbeat_interval=_seconds(settings, "heartbeat_interval"),
            rescue_interval=_seconds(settings, "rescue_interval"),
            max_payload_bytes=max_payload_bytes, schema=queries.schema)
        self._pools: dict[str, HandlerPool[Result]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._stopping: asyncio.Event | None = None
        self._forced: asyncio.Event | None = None
        self._executor = HandlerExecutor(registrations, hooks, max_payload_bytes)
        self.finished = threading.Event()

    # --- one call at a time, without the loops (``conveyor.testing``) -----------------

    @property
    def registrations(self) -> list[Registration]:
        """The handlers this worker runs, one per queue."""
        return self._registrations

    async def run_call(self, reg: Registration, jobs: list[Job]) -> Result:
        """Run one handler call of ``jobs`` (claimed from ``reg``'s queue) in the
        caller's task, record what it came to exactly as under ``run()``, and return
        it once every write is done. Call ``close()`` after the last one."""
        completer = Completer(self._run, self._queries.schema)
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
        return Recorder(self._run, completer, self._hooks, schema=self._queries.schema,
                        max_payload_bytes=self._max_payload)

    def close(self) -> None:
        """After ``run_call``: shut the thread and process pools down, once their
        handlers have returned."""
        self._executor.close(wait=True)

    # --- control ---------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Begin a graceful stop (or, with ``force``, skip the wait for handlers).
        Safe to call from any thread."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._request_stop(force)
        else:
            loop.call_soon_threadsafe(self._request_stop, force)

    def _request_stop(self, force: bool) -> None:
        assert self._stopping is not None and self._forced is not None
        if self._stopping.is_set() or force:
            self._forced.set()
        self._stopping.set()

    # --- the main loop ---------------------------------------------------------------

    async def run(self) -> None:
        with _fewer_collections(self._tune_gc):
            await self._serve()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        completer = Completer(self._run, self._queries.schema,
                              written=lambda: self._wake_held_back(claimers))
        recorder = self._recorder(completer)
        self._pools = {
            reg.queue: HandlerPool(reg.queue, reg.concurrency,
                                   functools.partial(self._executor.execute, reg),
                                   recorder.record, self._finish)
            for reg in self._registrations
        }
        start = functools.partial(self._start, recorder)
        claimers = {
            reg.queue: Claimer(reg, run=self._run, lease=self._lease, hooks=self._hooks,
                               stopping=self._stopping, start=start,
                               schema=self._queries.schema)
            for reg in self._registrations
        }
        self._install_signals()
        background: list[asyncio.Task[Any]] = []
        try:
            completer_task = asyncio.create_task(completer.run(), name="conveyor-completer")
            for pool in self._pools.values():
                pool.start()
            background.append(asyncio.create_task(
                self._leases.heartbeats(), name="conveyor-heartbeat"))
            background.append(asyncio.create_task(
                self._leases.rescues(), name="conveyor-rescue"))
            background.append(asyncio.create_task(self.presence.run(), name="conveyor-presence"))
            if self._maintenance is not None:
                background.append(asyncio.create_task(
                    self._maintenance.run(), name="conveyor-maintenance"))
            if self._listen:
                listener = Listener(self._dsn, self._queries,
                                    lambda queue: self._wake(claimers, queue),
                                    deadline=self._statement_deadline)
                background.append(asyncio.create_task(listener.run(), name="conveyor-listen"))
            loops = [asyncio.create_task(claimer.run(), name=f"conveyor-claim-{queue}")
                     for queue, claimer in claimers.items()]
            log.info("worker started: %s", ", ".join(
                f"{r.queue} (concurrency {r.concurrency}, {r.executor})"
                for r in self._registrations))
            await self._hooks.emit(HookEvent("worker_started"))
            await self._stopping.wait()

            log.info("stopping: no new jobs; waiting for %d running", len(self._running))
            for claimer in claimers.values():
                claimer.stop()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._drain()
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
            await asyncio.gather(*(pool.close() for pool in self._pools.values()))
            self._remove_signals()
            self._executor.close(wait=False)
            self._loop = None
        await self._hooks.emit(HookEvent("worker_stopped"))
        log.info("worker stopped")
        self.finished.set()

    @property
    def _active(self) -> int:
        return sum(pool.active for pool in self._pools.values())

    async def _pools_empty(self) -> None:
        """Until no pool has a call (none gets new calls: claiming has stopped)."""
        for pool in self._pools.values():
            await pool.wait_empty()

    async def _calls_done(self, timeout: float, forced: asyncio.Event | None = None) -> None:
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

    async def _drain(self) -> None:
        """Wait for running handlers up to the shutdown timeout, then stop them."""
        assert self._forced is not None
        await self._calls_done(self._shutdown_timeout.total_seconds(), self._forced)
        if self._active:
            log.warning("stopping %d handler calls that did not finish in time", self._active)
            for control in list(self._running.values()):
                control.stop(StopReason.SHUTDOWN)
            await self._calls_done(STOP_GRACE)
        if self._active:
            log.error(
                "%d thread or process handlers ignored job.cancelled; their jobs stay "
                "active and are rescued when their leases lapse", self._active)

    # --- claiming --------------------------------------------------------------------

    @staticmethod
    def _wake_held_back(claimers: dict[str, Claimer]) -> None:
        """Outcomes were recorded: queues under flow control may have a key's slot
        free now, so a claimer whose last claim was held back by limits looks at
        once rather than at its next recheck. The wake is kept for a claim under
        way, whose answer may predate these outcomes."""
        for claimer in claimers.values():
            if claimer.flow_controlled:
                claimer.wake.set()

    def _wake(self, claimers: dict[str, Claimer], queue: str | None) -> None:
        if queue is None:
            for claimer in claimers.values():
                claimer.wake.set()
        elif queue in claimers:
            claimers[queue].wake.set()

    def _start(
        self, recorder: Recorder, reg: Registration, slots: Slots, jobs: list[Job]
    ) -> int:
        """Start a handler call per job (per batch for batch handlers); jobs claimed
        while stopping go back to their queue. Returns how many calls started."""
        interruptible, now = reg.executor == "async", time.monotonic()
        chunks = ([job] for job in jobs) if reg.batch_size == 1 else _chunks(jobs, reg.batch_size)
        calls = [HandlerCall(chunk, interruptible, now) for chunk in chunks]
        if self._stopping is None or self._stopping.is_set():
            for call in calls:
                recorder.hand_back(call.controls)
            return 0
        running = self._running
        for call in calls:
            for control in call.controls:
                running[control.id] = control
            call.slots = slots
        slots.take(len(calls))
        self._pools[reg.queue].submit(calls)
        return len(calls)

    # --- running one handler call ------------------------------------------------------

    def _finish(self, call: HandlerCall) -> None:
        """A call is over: its jobs stop running, and its slot is given back."""
        for control in call.controls:
            self._running.pop(control.id, None)
        slots, thread = call.slots, call.thread
        call.finish()
        if thread is None or thread.done():
            slots.give()
        else:  # a thread or process cannot be interrupted: its slot stays taken
            loop = asyncio.get_running_loop()
            thread.add_done_callback(lambda _: loop.call_soon_threadsafe(slots.give))

    # --- signals -------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            self._handle_signals = False
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _remove_signals(self) -> None:
        if self._handle_signals and self._loop is not None:
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        assert self._stopping is not None
        if self._stopping.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
        else:
            log.info("%s: finishing running jobs (up to %.0f s); send it again to stop now",
                     signal.Signals(signum).name, self._shutdown_timeout.total_seconds())
        self._request_stop(force=False)
