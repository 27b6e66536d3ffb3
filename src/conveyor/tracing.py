"""OpenTelemetry tracing of sends and job runs: ``conveyor.tracing.instrument()``.

OpenTelemetry is optional (``pip install 'conveyor[otel]'``); without it, and
until :func:`instrument` is called, Conveyor traces nothing and costs nothing:
jobs carry a NULL ``trace_context``, and the worker's check is one global lookup.

Once on, for the whole process (like OpenTelemetry's own instrumentations):

- ``send`` opens a ``conveyor send <queue>`` span (kind PRODUCER) and stores the
  span's context, as the global propagator writes it (W3C ``traceparent`` and
  ``tracestate`` by default), in the job's ``trace_context`` column; ``insert``
  opens one span for the batch, and every job of it carries that span's context.
- The worker runs each handler call inside a ``conveyor process <queue>`` span
  (kind CONSUMER) whose parent is the sending span, and which also links to it:
  the parent puts a job's run in the trace of the request that sent it (one trace
  to read from the HTTP request to the job's last database write); the link is
  what the messaging conventions prescribe and what tools that follow causality
  across traces read. A batch handler's span has many senders, so it starts a
  trace of its own and links to each of them. Spans the handler opens are
  children of the run span (async and thread handlers; a process handler runs in
  another interpreter, where the context does not follow).
- A handler that raises records the exception on its span and sets the error
  status; a call stopped at its time limit is an error too, one cancelled or
  handed back at shutdown is not.

Workers started with ``conveyor worker`` import your module in each process: call
:func:`instrument` there, next to your tracer provider's set-up.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, TypeVar

import orjson

from conveyor.errors import ConfigurationError, PauseGroup

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from conveyor._db.plan import Plan
    from conveyor.worker.control import HandlerCall

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

_tracer: Tracer | None = None
_NOT_TRACED: Final = contextlib.nullcontext()

_SYSTEM: Final = {"messaging.system": "conveyor"}


def instrument(tracer_provider: TracerProvider | None = None) -> None:
    """Trace every send and every job run of this process, with a tracer of
    ``tracer_provider`` (by default the global one). Calling it again replaces the
    provider.

    Example::

        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import conveyor.tracing

        trace.set_tracer_provider(TracerProvider())  # and an exporter
        conveyor.tracing.instrument()
    """
    global _tracer
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigurationError(
            "tracing needs OpenTelemetry: pip install 'conveyor[otel]'") from None
    _tracer = trace.get_tracer("conveyor", tracer_provider=tracer_provider)


def uninstrument() -> None:
    """Stop tracing: jobs sent from now on carry no trace context."""
    global _tracer
    _tracer = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _tracer is not None


# --- sending ----------------------------------------------------------------------------


def sending(queue: str, plan_for: Callable[[str | None], Plan[str | None]]) -> Plan[str | None]:
    """The plan of one send: ``plan_for(trace_context)``, where ``trace_context`` is
    the JSON text the job carries (``None`` when tracing is off), run inside a
    ``conveyor send`` span that records the job's id."""
    if _tracer is None:
        return plan_for(None)
    return _producer_span(_tracer, queue, plan_for, "messaging.message.id")


def sending_many(queue: str, plan_for: Callable[[str | None], Plan[int]]) -> Plan[int]:
    """Like :func:`sending`, for a bulk insert: one span, and every job carries its
    context; the span records how many jobs were inserted."""
    if _tracer is None:
        return plan_for(None)
    return _producer_span(_tracer, queue, plan_for, "messaging.batch.message_count")


def _producer_span(
    tracer: Tracer, queue: str, plan_for: Callable[[str | None], Plan[T]], result_attribute: str
) -> Plan[T]:
    # Started when the plan starts to run, in the caller's context (a plan runs in
    # the caller's thread or task), and not made current: the plan's statements
    # run between its steps, in the driver.
    from opentelemetry import propagate, trace

    span = tracer.start_span(
        f"conveyor send {queue}", kind=trace.SpanKind.PRODUCER,
        attributes={**_SYSTEM, "messaging.destination.name": queue,
                    "messaging.operation.type": "send", "messaging.operation.name": "send"},
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    try:
        # A provider that records nothing (no SDK set up) injects nothing: NULL.
        result = yield from plan_for(orjson.dumps(carrier).decode() if carrier else None)
    except Exception as exc:
        _failed(span, exc)
        raise
    else:
        if result is not None:
            span.set_attribute(result_attribute, result)  # type: ignore[arg-type]
        return result
    finally:
        span.end()


# --- running ----------------------------------------------------------------------------


def enabled() -> bool:
    """Whether :func:`instrument` is on."""
    return _tracer is not None


def running(queue: str, call: HandlerCall) -> contextlib.AbstractContextManager[object]:
    """The context a handler call runs in: a ``conveyor process`` span, current
    for the handler, when tracing is on; nothing otherwise."""
    if _tracer is None:
        return _NOT_TRACED
    return _consumer_span(_tracer, queue, call)


def carry_context(function: F) -> F:
    """``function`` bound to the current context (the run span), for a thread pool,
    whose threads do not inherit it; ``function`` itself when tracing is off."""
    if _tracer is None:
        return function
    return functools.partial(contextvars.copy_context().run, function)  # type: ignore[return-value]


@contextlib.contextmanager
def _consumer_span(tracer: Tracer, queue: str, call: HandlerCall) -> Iterator[object]:
    from opentelemetry import context, propagate, trace

    from conveyor.worker.control import StopReason  # only workers run spans; senders never

    jobs = call.jobs
    sent = [propagate.extract(job.trace_context) for job in jobs if job.trace_context]
    links = [trace.Link(span_context) for span_context in
             (trace.get_current_span(origin).get_span_context() for origin in sent)
             if span_context.is_valid]
    attributes: dict[str, str | int] = {
        **_SYSTEM, "messaging.destination.name": queue,
        "messaging.operation.type": "process", "messaging.operation.name": "process",
    }
    if len(jobs) == 1:
        attributes["messaging.message.id"] = jobs[0].id
        attributes["conveyor.job.attempt"] = jobs[0].attempt
    else:
        attributes["messaging.batch.message_count"] = len(jobs)
    # One sender: its context is the parent (and its baggage reaches the handler).
    # None, or a batch of several: a trace of its own, never the worker's context.
    parent = sent[0] if len(jobs) == 1 and links else context.Context()
    span = tracer.start_span(f"conveyor process {queue}", context=parent,
                             kind=trace.SpanKind.CONSUMER, links=links, attributes=attributes)
    token = context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    except PauseGroup as pause:  # the handler asked for a pause: not a failure
        span.add_event("conveyor.paused", {"conveyor.pause": str(pause)})
        raise
    except Exception as exc:
        _failed(span, exc)
        raise
    except BaseException:
        reason = call.stop_reason
        if reason is StopReason.TIMED_OUT:
            _failed(span, None, reason.value)
        elif reason is not None:
            span.add_event("conveyor.stopped", {"conveyor.stop_reason": reason.value})
        raise
    finally:
        context.detach(token)
        span.end()


def _failed(span: Span, exc: BaseException | None, description: str | None = None) -> None:
    from opentelemetry.trace import Status, StatusCode

    if exc is not None:
        span.record_exception(exc)
        description = f"{type(exc).__name__}: {exc}"
    span.set_status(Status(StatusCode.ERROR, description))
