"""Prometheus metrics of a worker process, fed by the client's hooks.

    from conveyor import metrics

    metrics.instrument(cv)        # count what this process's worker does
    metrics.serve_metrics(9464)   # http://127.0.0.1:9464/metrics

``conveyor worker app:cv --metrics-port 9464`` does both. These are the jobs this
process ran; the queue as a whole (jobs waiting, lag, workers alive) is measured
from the database by the web app's ``/metrics`` (``conveyor.web``). Every metric
is labelled with the ``queue``:

- ``conveyor_jobs_completed_total``, ``conveyor_jobs_failed_total`` (failed for
  good), ``conveyor_jobs_retried_total`` (failed attempts that will be retried);
- ``conveyor_job_duration_seconds``: how long handler calls ran, whatever their
  outcome (a batch handler's call counts once for each of its jobs);
- ``conveyor_jobs_running``: jobs whose handlers are running now.

Needs ``prometheus-client`` (``pip install 'conveyor[metrics]'``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client import start_http_server as _start_http_server
except ImportError as missing:
    raise ImportError(
        "conveyor.metrics needs prometheus-client: pip install 'conveyor[metrics]'"
    ) from missing

from conveyor.errors import ConfigurationError
from conveyor.hooks import HookEvent

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from conveyor.client import AsyncConveyor, Conveyor

DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0, 1800.0,
)
"""Seconds: from the few milliseconds of a database update to half an hour of a
document's parsing."""


class WorkerMetrics:
    """The metrics of one registry, shared by every client instrumented into it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.completed = Counter(
            "conveyor_jobs_completed", "Jobs this process completed.", ["queue"],
            registry=registry)
        self.failed = Counter(
            "conveyor_jobs_failed", "Jobs this process failed for good (no attempt left, "
            "or a non-retryable error).", ["queue"], registry=registry)
        self.retried = Counter(
            "conveyor_jobs_retried", "Failed attempts of this process whose jobs will be "
            "retried.", ["queue"], registry=registry)
        self.duration = Histogram(
            "conveyor_job_duration_seconds", "How long handler calls ran, whatever their "
            "outcome.", ["queue"], buckets=DURATION_BUCKETS, registry=registry)
        self.running = Gauge(
            "conveyor_jobs_running", "Jobs whose handlers are running in this process.",
            ["queue"], registry=registry)


_metrics_of: weakref.WeakKeyDictionary[CollectorRegistry, WorkerMetrics] = (
    weakref.WeakKeyDictionary())
_instrumented: weakref.WeakSet[Conveyor | AsyncConveyor] = weakref.WeakSet()


class _RunningJobs:
    """The jobs one client's worker is running, by queue. A job handed back without
    an outcome (a pause, a cancellation) is forgotten when it runs again or when
    the worker stops, so the gauge cannot drift for good."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._ids: dict[str, set[str]] = {}

    def started(self, queue: str, job_id: str) -> None:
        ids = self._ids.setdefault(queue, set())
        if job_id not in ids:
            ids.add(job_id)
            self._gauge.labels(queue).inc()

    def finished(self, queue: str, job_id: str) -> None:
        ids = self._ids.get(queue)
        if ids is not None and job_id in ids:
            ids.remove(job_id)
            self._gauge.labels(queue).dec()

    def clear(self) -> None:
        for queue, ids in self._ids.items():
            self._gauge.labels(queue).dec(len(ids))
        self._ids.clear()


def instrument(client: Conveyor | AsyncConveyor, registry: CollectorRegistry = REGISTRY) -> None:
    """Count the jobs ``client``'s worker runs, in ``registry`` (Prometheus's default
    one unless given). Attaches hooks once per client; calling it again does nothing.

    Example::

        cv = Conveyor()
        metrics.instrument(cv)
        metrics.serve_metrics(9464)
        cv.run()
    """
    if client in _instrumented:
        return
    measured = _metrics_of.get(registry)
    if measured is None:
        measured = _metrics_of[registry] = WorkerMetrics(registry)
    running = _RunningJobs(measured.running)

    def started(event: HookEvent) -> None:
        assert event.job is not None
        running.started(event.job.queue, event.job.id)

    def finished(counter: Counter) -> Callable[[HookEvent], None]:
        def count(event: HookEvent) -> None:
            assert event.job is not None
            queue = event.job.queue
            counter.labels(queue).inc()
            if event.duration is not None:
                measured.duration.labels(queue).observe(event.duration)
            running.finished(queue, event.job.id)

        return count

    client.on("job_started", started)
    client.on("job_completed", finished(measured.completed))
    client.on("job_failed", finished(measured.failed))
    client.on("job_retried", finished(measured.retried))
    client.on("worker_stopped", lambda _: running.clear())
    _instrumented.add(client)


def serve_metrics(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> WSGIServer:
    """Serve ``registry`` at ``http://addr:port/metrics`` from a background thread
    (for Prometheus to scrape) and return the server (``shutdown()`` stops it).
    Listens on the loopback interface unless ``addr`` says otherwise, such as
    ``"0.0.0.0"`` for a scraper on another host."""
    try:
        server, _ = _start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve metrics on {addr}:{port} ({exc.strerror or exc}); choose a free "
            "port") from None
    return server
