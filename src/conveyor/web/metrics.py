"""``GET /metrics``: the whole queue for Prometheus, measured from the database at
each scrape, followed by this process's own metrics.

The database-wide gauges (every queue, whichever worker runs it):

- ``conveyor_jobs{queue,state}``: jobs ``created``, ``retry``, ``active`` and ``failed``;
- ``conveyor_queue_lag_seconds{queue}``: how long the oldest due job has waited (0
  when none waits);
- ``conveyor_queue_paused{queue}``: 1 while the queue is paused;
- ``conveyor_queue_completed_last_hour{queue}``, ``conveyor_queue_failed_last_hour{queue}``:
  jobs finished in the last hour, by the statistics snapshots;
- ``conveyor_workers_alive``: worker processes that keep renewing their presence;
- ``conveyor_leader_term``: the term of the maintenance leader's lease (absent
  before any worker has led); it grows by one at each election.

Then Prometheus's default registry: the process's own metrics, and the worker's
(``conveyor.metrics``) when the app runs inside a worker process. A database that
cannot be reached answers 503, which Prometheus records as a failed scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from conveyor.errors import ConveyorError
from conveyor.job import LeaderLease, QueueSummary, WorkerInfo
from conveyor.web.app import web_state

router = APIRouter()

_STATES = ("created", "retry", "active", "failed")


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
            "conveyor_jobs", "Jobs in the queue by state (waiting, running, failed).",
            labels=["queue", "state"])
        lag = GaugeMetricFamily(
            "conveyor_queue_lag_seconds", "How long the oldest due job has waited.",
            labels=["queue"])
        paused = GaugeMetricFamily(
            "conveyor_queue_paused", "1 while the queue is paused.", labels=["queue"])
        completed = GaugeMetricFamily(
            "conveyor_queue_completed_last_hour", "Jobs completed in the last hour.",
            labels=["queue"])
        failed = GaugeMetricFamily(
            "conveyor_queue_failed_last_hour", "Jobs failed for good in the last hour.",
            labels=["queue"])
        for queue in self._queues:
            for state in _STATES:
                jobs.add_metric([queue.name, state], getattr(queue, state))
            lag.add_metric([queue.name], 0.0 if queue.lag is None else queue.lag.total_seconds())
            paused.add_metric([queue.name], 0.0 if queue.paused_until is None else 1.0)
            completed.add_metric([queue.name], queue.completed_last_hour)
            failed.add_metric([queue.name], queue.failed_last_hour)
        yield from (jobs, lag, paused, completed, failed)
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
