"""What a running worker does to its process: lighter garbage collection, and
SIGTERM/SIGINT turned into a stop request.

Both are process-wide, so both are undone when the worker stops, and both are
left alone where they would surprise the application: thresholds it set itself,
signals outside the main thread. ``StopRequest`` is the one way to ask a worker
to stop, from a signal, ``Worker.stop()`` or another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger("conveyor.worker")

_PYTHON_GC_THRESHOLDS = (700, 10, 10)
_WORKER_GC_THRESHOLDS = (7000, 10, 10)


@contextlib.contextmanager
def fewer_collections(enabled: bool) -> Iterator[None]:
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


class StopRequest:
    """Whether a worker was asked to stop (``stopping``), and asked again or told
    not to wait for its handlers (``forced``). Made in the worker's event loop;
    ``request`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.stopping = asyncio.Event()
        self.forced = asyncio.Event()

    def request(self, force: bool = False) -> None:
        if threading.get_ident() == self._thread:
            self._set(force)
        else:
            self._loop.call_soon_threadsafe(self._set, force)

    def _set(self, force: bool) -> None:
        if self.stopping.is_set() or force:
            self.forced.set()
        self.stopping.set()


@contextlib.contextmanager
def stop_on_signals(enabled: bool, stop: StopRequest, shutdown_timeout: float) -> Iterator[None]:
    """While inside: SIGTERM and SIGINT ask ``stop`` for a graceful stop, and a
    second one for an immediate one. Only in the main thread, where Python
    delivers signals; the handlers are removed on the way out."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.stopping.is_set():
            log.warning("second %s: stopping now", name)
        else:
            log.info("%s: finishing running jobs (up to %.0f s); send it again to stop now",
                     name, shutdown_timeout)
        stop.request(force=False)

    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
