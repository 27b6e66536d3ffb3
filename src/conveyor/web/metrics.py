"""``GET /metrics``: the whole queue for Prometheus, measured from the database at
each scrape, followed by this process's own metrics.

The database-wide gauges (every queue, whichever worker runs it):

- ``conveyor_jobs{queue,state}``: jobs ``created`` (due), ``scheduled`` (created,
  due later), ``retry``, ``active`` and ``failed``, and once the maintenance leader
  has counted them, the ``completed`` and ``cancelled`` jobs kept;
- ``conveyor_jobs_finished_total{queue,state}``: a counter of the jobs that
  finished ``completed``, ``cancelled`` or ``failed``, which the leader advances at
  each statistics snapshot (``increase(...[1h])`` gives the last hour's);
- ``conveyor_queue_lag_seconds{queue}``: how long the oldest due job has waited (0
  when none waits);
- ``conveyor_queue_paused{queue}``: 1 while the queue is paused;
- ``conveyor_workers_alive``: worker processes that keep renewing their presence;
- ``conveyor_leader_term``: the term of the maintenance leader's lease (absent
  before any worker has led); it grows by one at each election.

Then Prometheus's default registry: the process's own metrics, and the worker's
(``conveyor.metrics``) when the app runs inside a worker process. A database that
cannot be reached answers 503, which Prometheus records as a failed scrape.

A scrape reads one row per queue for the finished figures (``queue_totals``) and at
most 1,001 failed jobs per queue, so its cost does not grow with the finished jobs
the table keeps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from conveyor.errors import ConveyorError
from conveyor.job import LeaderLease, QueueSummary, WorkerInfo
from conveyor.web.state import web_state

router = APIRouter()

_LIVE = ("created", "scheduled", "retry", "active", "failed")
_KEPT = ("completed", "cancelled")
_FINISHED = ("completed", "cancelled", "failed")


class QueueCollector:
    """The database-wide gauges of one scrape, from what the client read."""

    def __init__(
        self, queues: Sequence[QueueSummary], workers: Sequence[WorkerInfo],
        leader: LeaderLease | None,
    ) -> None:
        self._queues = queues
        self._workers = workers
        self._leader = leader

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "conveyor_jobs", "Jobs in the queue by state.",
            labels=["queue", "state"])
        lag = GaugeMetricFamily(
            "conveyor_queue_lag_seconds", "How long the oldest due job has waited.",
            labels=["queue"])
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 while the queue is paused.", labels=["queue"])
        finished = CounterMetricFamily(
            "conveyor_jobs_finished", "Jobs that finished, by outcome (advanced at each "
            "statistics snapshot).", labels=["queue", "state"])
        for queue in self._queues:
            counted = queue.counted_at is not None
            for state in _LIVE + (_KEPT if counted else ()):
                jobs.add_metric([queue.name, state], getattr(queue, state))
            lag.add_metric([queue.name], 0.0 if queue.lag is None else queue.lag.total_seconds())
            paused.add_metric([queue.name], 0.0 if queue.paused_until is None else 1.0)
            if counted:
                for state in _FINISHED:
                    finished.add_metric([queue.name, state], getattr(queue, f"{state}_total"))
        yield from (jobs, lag, paused, finished)
        yield GaugeMetricFamily(
            "conveyor_workers_alive", "Worker processes renewing their presence.",
            value=sum(worker.alive for worker in self._workers))
        if self._leader is not None:
            yield GaugeMetricFamily(
                "conveyor_leader_term", "Term of the maintenance leader's lease.",
                value=self._leader.term)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus's text format: the queue's gauges, then this process's metrics."""
    state = web_state(request)
    try:
        cv = await state.client()
        collector = QueueCollector(
            await cv.queue_summaries(), await cv.get_workers(), await cv.get_leader())
    except ConveyorError as exc:
        return PlainTextResponse(f"cannot read the queue from the database: {exc}\n",
                                 status_code=503)
    scrape = CollectorRegistry()
    scrape.register(collector)
    body = generate_latest(scrape) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
