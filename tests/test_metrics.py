"""Prometheus metrics: a worker's counters, histogram and gauge (``conveyor.metrics``)
and the web app's database-wide ``/metrics``."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Job, metrics
from conveyor._db import statements
from conveyor._db.plan import Operation
from conveyor._db.queries import Queries
from conveyor.errors import ConfigurationError
from conveyor.web import create_app
from conveyor.worker.maintenance import snapshot


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def web(acv: AsyncConveyor) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(acv))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a scrape, or None when it is absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def count(registry: CollectorRegistry, name: str, queue: str) -> float | None:
    return registry.get_sample_value(name, {"queue": queue})


# --- the worker's metrics ---------------------------------------------------------------


async def test_completed_jobs_are_counted_and_timed_per_queue(
    acv: AsyncConveyor, registry: CollectorRegistry
) -> None:
    metrics.instrument(acv, registry)

    @acv.task("mail")
    async def deliver(job: Job) -> None:
        await asyncio.sleep(0.02)

    await acv.insert("mail", [{"data": n} for n in range(3)])
    async with running(acv):
        await wait_until(lambda: finished(acv, "mail", 3))

    assert count(registry, "conveyor_jobs_completed_total", "mail") == 3
    assert count(registry, "conveyor_job_duration_seconds_count", "mail") == 3
    duration = count(registry, "conveyor_job_duration_seconds_sum", "mail")
    assert duration is not None and duration >= 0.06
    assert count(registry, "conveyor_jobs_running", "mail") == 0


async def test_retried_and_failed_attempts_are_counted_apart(
    acv: AsyncConveyor, registry: CollectorRegistry
) -> None:
    metrics.instrument(acv, registry)

    @acv.task("mail")
    async def deliver(job: Job) -> None:
        raise ConnectionRefusedError("smtp down")

    await acv.send("mail", {}, retry_limit=1, retry_delay=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "mail", 1))

    assert count(registry, "conveyor_jobs_retried_total", "mail") == 1
    assert count(registry, "conveyor_jobs_failed_total", "mail") == 1
    assert count(registry, "conveyor_jobs_completed_total", "mail") is None
    assert count(registry, "conveyor_job_duration_seconds_count", "mail") == 2


async def test_running_jobs_are_gauged_while_their_handlers_run(
    acv: AsyncConveyor, registry: CollectorRegistry
) -> None:
    metrics.instrument(acv, registry)
    release = asyncio.Event()

    @acv.task("mail")
    async def deliver(job: Job) -> None:
        await release.wait()

    async def both_running() -> bool:
        return count(registry, "conveyor_jobs_running", "mail") == 2

    await acv.insert("mail", [{"data": 1}, {"data": 2}])
    async with running(acv):
        await wait_until(both_running)
        release.set()
        await wait_until(lambda: finished(acv, "mail", 2))

    assert count(registry, "conveyor_jobs_running", "mail") == 0


async def test_instrumenting_a_client_twice_counts_each_job_once(
    acv: AsyncConveyor, registry: CollectorRegistry
) -> None:
    metrics.instrument(acv, registry)
    metrics.instrument(acv, registry)

    @acv.task("mail")
    async def deliver(job: Job) -> None:
        return None

    await acv.send("mail", {})
    async with running(acv):
        await wait_until(lambda: finished(acv, "mail", 1))

    assert count(registry, "conveyor_jobs_completed_total", "mail") == 1


def test_serve_metrics_answers_prometheus_over_http(registry: CollectorRegistry) -> None:
    metrics.WorkerMetrics(registry).completed.labels("mail").inc()
    server = metrics.serve_metrics(0, registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics") as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()

    assert sample(text, "conveyor_jobs_completed_total", queue="mail") == 1


def test_serve_metrics_on_a_taken_port_says_so(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ConfigurationError, match=f"127.0.0.1:{port}"):
            metrics.serve_metrics(port, registry=registry)


# --- the web app's /metrics -------------------------------------------------------------


async def test_the_metrics_endpoint_counts_each_queues_jobs_by_state(
    acv: AsyncConveyor, web: httpx.AsyncClient
) -> None:
    await acv.insert("reports", [{"data": n} for n in range(4)])
    await acv.send("reports", {"n": "later"}, start_after=3600)
    claimed = await acv.fetch("reports", batch_size=2)
    await acv.fail(claimed[0].id, {"message": "boom"}, retry=False)
    await acv.create_queue("idle")

    answer = await web.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for state, jobs in (("created", 2), ("scheduled", 1), ("retry", 0), ("active", 1),
                        ("failed", 1)):
        assert sample(text, "conveyor_jobs", queue="reports", state=state) == jobs
    assert sample(text, "conveyor_jobs", queue="idle", state="created") == 0
    # finished jobs kept are not known before the leader's first count
    assert sample(text, "conveyor_jobs", queue="reports", state="completed") is None
    lag = sample(text, "conveyor_queue_lag_seconds", queue="reports")
    assert lag is not None and lag > 0
    assert sample(text, "conveyor_queue_lag_seconds", queue="idle") == 0


async def test_the_metrics_endpoint_counts_finished_jobs_as_the_leader_counted_them(
    acv: AsyncConveyor, web: httpx.AsyncClient
) -> None:
    await acv.insert("reports", [{"data": n} for n in range(3)])
    first, second, third = await acv.fetch("reports", batch_size=3)
    await acv.complete(first.id)
    await acv.complete(second.id)
    await acv.fail(third.id, {"message": "boom"}, retry=False)
    await acv._run(Operation(snapshot(timedelta(minutes=1), timedelta(days=1))))
    await acv.delete(first.id)

    text = (await web.get("/metrics")).text

    assert sample(text, "conveyor_jobs", queue="reports", state="completed") == 2
    assert sample(text, "conveyor_jobs", queue="reports", state="cancelled") == 0
    for state, jobs in (("completed", 2), ("cancelled", 0), ("failed", 1)):
        assert sample(text, "conveyor_jobs_finished_total", queue="reports", state=state) == jobs
    assert "_last_hour" not in text  # PromQL takes increase() of the counters instead


async def test_a_scrape_reads_no_more_failed_jobs_however_many_are_kept(
    acv: AsyncConveyor, web: httpx.AsyncClient, database_url: str, schema: str
) -> None:
    await acv.insert("imports", [{"data": n} for n in range(3_000)])
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f'UPDATE "{schema}".job SET state = \'failed\', completed_at = now()')
        await conn.execute(f'VACUUM ANALYZE "{schema}".job')
        await conn.execute("SET enable_seqscan = off")  # the plan a large table gets
        [[plan]] = await (await conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + Queries(schema)[statements.QUEUE_SUMMARIES]
        )).fetchall()

    text = (await web.get("/metrics")).text

    assert sample(text, "conveyor_jobs", queue="imports", state="failed") == 1_001
    assert max(_rows_read(plan[0]["Plan"], "job")) <= 1_001


def _rows_read(node: dict[str, Any], table: str) -> list[int]:
    """The rows each scan of ``table`` in an EXPLAIN ANALYZE plan returned, per loop."""
    found = []
    if node.get("Relation Name") == table:
        found.append(int(node["Actual Rows"]))
    for child in node.get("Plans", []):
        found.extend(_rows_read(child, table))
    return found


async def test_the_metrics_endpoint_shows_which_queues_are_paused(
    acv: AsyncConveyor, web: httpx.AsyncClient
) -> None:
    await acv.create_queue("mail")
    await acv.create_queue("reports")
    await acv.pause_queue("mail", 600)

    text = (await web.get("/metrics")).text

    assert sample(text, "conveyor_queue_paused", queue="mail") == 1
    assert sample(text, "conveyor_queue_paused", queue="reports") == 0


async def test_the_metrics_endpoint_counts_the_workers_alive_and_the_leaders_term(
    acv: AsyncConveyor, web: httpx.AsyncClient
) -> None:
    @acv.task("mail")
    async def deliver(job: Job) -> None:
        return None

    async def led() -> bool:
        return await acv.get_leader() is not None

    assert sample((await web.get("/metrics")).text, "conveyor_workers_alive") == 0
    async with running(acv):
        await wait_until(led)
        text = (await web.get("/metrics")).text

    assert sample(text, "conveyor_workers_alive") == 1
    assert sample(text, "conveyor_leader_term") == 1


async def test_the_metrics_endpoint_adds_this_processs_worker_metrics(
    acv: AsyncConveyor, web: httpx.AsyncClient
) -> None:
    queue = f"mail-{uuid.uuid4().hex[:8]}"  # the default registry outlives the test
    metrics.instrument(acv)

    @acv.task(queue)
    async def deliver(job: Job) -> None:
        return None

    await acv.send(queue, {})
    async with running(acv):
        await wait_until(lambda: finished(acv, queue, 1))

    text = (await web.get("/metrics")).text
    assert sample(text, "conveyor_jobs_completed_total", queue=queue) == 1
    assert sample(text, "conveyor_jobs", queue=queue, state="created") == 0


async def test_the_metrics_endpoint_answers_503_when_the_database_is_unreachable() -> None:
    unreachable = AsyncConveyor("postgresql://postgres@127.0.0.1:1/none", connect_timeout=0.5)
    transport = httpx.ASGITransport(app=create_app(unreachable))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/metrics")

    assert answer.status_code == 503
    assert "database" in answer.text
