"""OpenTelemetry tracing: send spans, run spans, and the trace context that jobs
carry from one to the other (recorded by the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Conveyor, Job, tracing
from conveyor.errors import InvalidOption


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, every finished span kept in memory."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        yield exporter
    finally:
        tracing.uninstrument()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def span_id_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_id_of(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def traceparent_of(span: ReadableSpan) -> str:
    """The W3C ``traceparent`` header that names ``span``."""
    context = span.context
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def run_until_finished(acv: AsyncConveyor, queue: str, count: int) -> None:
    async with running(acv):
        await wait_until(lambda: finished(acv, queue, count))


# --- sending ---------------------------------------------------------------------------


def test_a_send_opens_a_producer_span_that_names_the_queue_and_the_job(
    cv: Conveyor, spans: InMemorySpanExporter
) -> None:
    job_id = cv.send("mail", {"to": "a@example.com"})

    (span,) = named(spans, "conveyor send mail")
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.system"] == "conveyor"
    assert span.attributes["messaging.destination.name"] == "mail"
    assert span.attributes["messaging.message.id"] == job_id


def test_a_sent_job_carries_the_context_of_its_send_span(
    cv: Conveyor, spans: InMemorySpanExporter
) -> None:
    job_id = cv.send("mail", {})
    assert job_id is not None

    job = cv.get_job(job_id)

    (span,) = named(spans, "conveyor send mail")
    assert job is not None and job.trace_context is not None
    assert job.trace_context["traceparent"] == traceparent_of(span)


def test_a_send_span_is_the_child_of_the_callers_span(
    cv: Conveyor, spans: InMemorySpanExporter, provider: TracerProvider
) -> None:
    with provider.get_tracer("app").start_as_current_span("request") as request:
        cv.send("mail", {})

    (span,) = named(spans, "conveyor send mail")
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id


def test_a_send_that_raises_leaves_an_error_span(
    cv: Conveyor, spans: InMemorySpanExporter
) -> None:
    cv.create_queue("nightly", policy="exclusive")

    with pytest.raises(InvalidOption):
        cv.send("nightly", {}, singleton_key="k", debounce_seconds=5)

    (span,) = named(spans, "conveyor send nightly")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_an_insert_opens_one_span_whose_context_every_job_carries(
    cv: Conveyor, spans: InMemorySpanExporter
) -> None:
    cv.insert("embed", [{"data": n} for n in range(3)] + [{"data": 3, "priority": 2}])

    (span,) = named(spans, "conveyor send embed")
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 4
    contexts = {job.trace_context["traceparent"] for job in cv.find_jobs("embed")
                if job.trace_context is not None}
    assert contexts == {traceparent_of(span)}


def test_without_tracing_jobs_carry_no_trace_context(cv: Conveyor) -> None:
    assert not tracing.is_instrumented()
    cv.send("mail", {})
    cv.insert("mail", [{"data": 1}, {"data": 2, "priority": 1}])

    assert [job.trace_context for job in cv.find_jobs("mail")] == [None, None, None]


def test_with_no_sdk_set_up_jobs_carry_no_trace_context(cv: Conveyor) -> None:
    tracing.instrument(trace.NoOpTracerProvider())
    try:
        job_id = cv.send("mail", {})
    finally:
        tracing.uninstrument()

    assert job_id is not None
    job = cv.get_job(job_id)
    assert job is not None and job.trace_context is None


# --- running ---------------------------------------------------------------------------


async def test_a_job_run_is_the_child_of_its_send_span_and_links_to_it(
    acv: AsyncConveyor, spans: InMemorySpanExporter
) -> None:
    @acv.task("mail")
    async def deliver(job: Job) -> None:
        return None

    job_id = await acv.send("mail", {})
    await run_until_finished(acv, "mail", 1)

    (sent,) = named(spans, "conveyor send mail")
    (ran,) = named(spans, "conveyor process mail")
    assert ran.kind is SpanKind.CONSUMER
    assert trace_id_of(ran) == trace_id_of(sent)
    assert ran.parent is not None and ran.parent.span_id == span_id_of(sent)
    assert [link.context.span_id for link in ran.links] == [span_id_of(sent)]
    assert ran.attributes is not None
    assert ran.attributes["messaging.message.id"] == job_id
    assert ran.attributes["conveyor.job.attempt"] == 1
    assert ran.status.status_code is StatusCode.UNSET


async def test_spans_an_async_handler_opens_are_children_of_the_run_span(
    acv: AsyncConveyor, spans: InMemorySpanExporter, provider: TracerProvider
) -> None:
    @acv.task("mail")
    async def deliver(job: Job) -> None:
        with provider.get_tracer("app").start_as_current_span("smtp"):
            await asyncio.sleep(0)

    await acv.send("mail", {})
    await run_until_finished(acv, "mail", 1)

    (ran,) = named(spans, "conveyor process mail")
    (inner,) = named(spans, "smtp")
    assert inner.parent is not None and inner.parent.span_id == span_id_of(ran)


async def test_spans_a_thread_handler_opens_are_children_of_the_run_span(
    acv: AsyncConveyor, spans: InMemorySpanExporter, provider: TracerProvider
) -> None:
    @acv.task("mail")
    def deliver(job: Job) -> None:
        with provider.get_tracer("app").start_as_current_span("smtp"):
            pass

    await acv.send("mail", {})
    await run_until_finished(acv, "mail", 1)

    (ran,) = named(spans, "conveyor process mail")
    (inner,) = named(spans, "smtp")
    assert inner.parent is not None and inner.parent.span_id == span_id_of(ran)


async def test_a_failing_handler_leaves_an_error_span_with_the_exception(
    acv: AsyncConveyor, spans: InMemorySpanExporter
) -> None:
    @acv.task("mail")
    async def deliver(job: Job) -> None:
        raise ConnectionRefusedError("smtp down")

    await acv.send("mail", {}, retry_limit=0)
    await run_until_finished(acv, "mail", 1)

    (ran,) = named(spans, "conveyor process mail")
    assert ran.status.status_code is StatusCode.ERROR
    assert ran.status.description == "ConnectionRefusedError: smtp down"
    (event,) = ran.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ConnectionRefusedError"


async def test_a_job_sent_without_tracing_runs_in_a_trace_of_its_own(
    acv: AsyncConveyor, provider: TracerProvider
) -> None:
    await acv.send("mail", {})
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.instrument(provider)
    try:
        @acv.task("mail")
        async def deliver(job: Job) -> None:
            return None

        with provider.get_tracer("app").start_as_current_span("worker start-up"):
            await run_until_finished(acv, "mail", 1)
    finally:
        tracing.uninstrument()

    (ran,) = named(exporter, "conveyor process mail")
    assert ran.parent is None
    assert ran.links == ()


async def test_a_batch_handler_span_links_to_the_send_span_of_every_job(
    acv: AsyncConveyor, spans: InMemorySpanExporter
) -> None:
    @acv.task("embed", batch_size=3)
    async def embed(jobs: list[Job]) -> None:
        return None

    for n in range(3):
        await acv.send("embed", n)
    async with running(acv, concurrency=1):
        await wait_until(lambda: finished(acv, "embed", 3))

    sent = {span_id_of(span) for span in named(spans, "conveyor send embed")}
    (ran,) = named(spans, "conveyor process embed")
    assert ran.parent is None
    assert {link.context.span_id for link in ran.links} == sent
    assert ran.attributes is not None
    assert ran.attributes["messaging.batch.message_count"] == 3
