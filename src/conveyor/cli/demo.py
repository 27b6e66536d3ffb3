"""What ``conveyor demo`` shows: the whole system at work, in one process.

A producer bulk-sends documents and keeps sending a trickle of them and of
messages; a worker parses the documents (one is corrupt: it is retried with
backoff, then lands in the dead-letter queue), sends the messages through a
queue limited to 10 a second, and a cron schedule ticks every 5 seconds. A live
table shows every queue; the dashboard serves the same, when the ``web`` extra is
installed. The tour ends by itself once each of these has been seen (or runs on
with ``keep_running``); Ctrl-C stops everything cleanly at any time, and the
data stays for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from conveyor.client import AsyncConveyor
from conveyor.hooks import HookEvent
from conveyor.job import Job
from conveyor.reports import QueueSummary

DOCUMENTS = "demo.documents"
DEAD_LETTERS = "demo.documents.dead"
MESSAGES = "demo.messages"
TICKS = "demo.ticks"
SCHEDULE = "demo.heartbeat"
MESSAGES_PER_SECOND = 10
_REFRESH = 0.25
_TIME_LIMIT = 120.0
"""Seconds after which the tour ends even if something was not seen."""


class CorruptDocument(Exception):
    """What the demo's handler raises for the one document it cannot parse."""


@dataclass
class Tour:
    """What has happened so far, for the live display and the end of the tour."""

    sent: int = 0
    completed: dict[str, int] = field(default_factory=dict)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    retried: int = 0
    dead_lettered: bool = False
    ticks: int = 0
    summaries: list[QueueSummary] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, message: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:5.1f}s  {message}")

    def complete(self, initial: int) -> bool:
        """Each part of the tour was seen, and the first batch is done."""
        by_name = {s.name: s for s in self.summaries}
        documents = by_name.get(DOCUMENTS)
        return (self.dead_lettered and self.ticks >= 1 and documents is not None
                and documents.waiting + documents.active == 0 and self.sent >= initial)


def _parse(job: Job) -> dict[str, object]:
    document = job.data["document"]
    if document == "corrupt.pdf":
        raise CorruptDocument(f"{document}: unexpected end of stream")
    digest = hashlib.sha256(document.encode()).hexdigest()
    return {"pages": 1 + int(digest[:2], 16) % 40, "sha256": digest[:16]}


async def _deliver(job: Job) -> dict[str, object]:
    await asyncio.sleep(0.01)  # the provider's API call
    return {"delivered_to": job.data["to"]}


async def _tick(job: Job) -> None:
    return None


async def _reset(cv: AsyncConveyor) -> None:
    """Each run starts from empty demo queues (the queue first: it names the other)."""
    await cv.unschedule(SCHEDULE)
    for name in (DOCUMENTS, DEAD_LETTERS, MESSAGES, TICKS):
        await cv.delete_queue(name)
    await cv.create_queue(DOCUMENTS, retry_limit=2, retry_delay=1, retry_backoff=True,
                          dead_letter=DEAD_LETTERS)
    await cv.create_queue(MESSAGES, rate_limit=MESSAGES_PER_SECOND, rate_period=1)
    await cv.create_queue(TICKS)
    await cv.schedule(SCHEDULE, "*/5 * * * * *", {"beat": True}, queue=TICKS)


def _hooks(cv: AsyncConveyor, tour: Tour) -> None:
    def retried(event: HookEvent) -> None:
        if event.job is not None:
            tour.retried += 1
            tour.note(f"[yellow]retry[/] {escape(str(event.job.data.get('document')))}: "
                      f"attempt {event.job.attempt} failed ({escape(str(event.error))}); "
                      "backing off")

    def failed(event: HookEvent) -> None:
        if event.job is not None and event.job.queue == DOCUMENTS:
            tour.dead_lettered = True
            tour.note(f"[red]failed for good[/] {escape(event.job.data['document'])} after "
                      f"{event.job.attempt} attempts; a copy went to {DEAD_LETTERS}")

    def completed(event: HookEvent) -> None:
        if event.job is None:
            return
        tour.completed[event.job.queue] = tour.completed.get(event.job.queue, 0) + 1
        if event.job.queue == TICKS:
            tour.ticks += 1
            tour.note(f"[cyan]cron tick[/] {SCHEDULE} ('*/5 * * * * *') sent a job")

    cv.on("job_retried", retried)
    cv.on("job_failed", failed)
    cv.on("job_completed", completed)


async def _produce(cv: AsyncConveyor, tour: Tour, initial: int) -> None:
    """The first batch in one COPY, then a trickle of documents and messages."""
    items = [{"data": {"document": f"report-{n:05d}.pdf"},
              "priority": 10 if n % 10 == 0 else 0} for n in range(initial - 1)]
    items.append({"data": {"document": "corrupt.pdf"}})
    started = time.perf_counter()
    tour.sent += await cv.insert(DOCUMENTS, items)
    tour.note(f"sent {initial} documents in one COPY "
              f"({(time.perf_counter() - started) * 1000:.0f} ms); every tenth has priority 10")
    n = initial
    while True:
        await cv.insert(MESSAGES, [{"data": {"to": f"user-{n + i}@example.com"}}
                                   for i in range(3)])
        await cv.send(DOCUMENTS, {"document": f"upload-{n:05d}.pdf"})
        tour.sent += 1
        n += 3
        await asyncio.sleep(0.2)


def _table(tour: Tour) -> Table:
    table = Table(title="Conveyor demo: queues now", expand=False)
    for column in ("queue", "waiting", "active", "completed", "failed", "lag"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for s in tour.summaries:
        lag = "-" if s.lag is None else f"{s.lag.total_seconds():.1f}s"
        table.add_row(s.name, f"{s.waiting:,}", f"{s.active:,}",
                      f"{tour.completed.get(s.name, 0):,}", f"{s.failed:,}", lag)
    return table


def _view(tour: Tour, dashboard: str | None) -> Group:
    lines = [Text.from_markup(line) for line in tour.events]
    footer = (f"Dashboard: {dashboard}   " if dashboard else "") + "Ctrl-C stops."
    return Group(_table(tour), *lines, Text(footer, style="dim"))


@contextlib.contextmanager
def _dashboard(url: str, schema: str | None, port: int) -> Iterator[str | None]:
    """The dashboard on 127.0.0.1:``port`` in a thread of its own, when the ``web``
    extra is installed; yields its address (or None)."""
    try:
        import uvicorn

        from conveyor.web import create_app
    except ImportError:
        yield None
        return
    server = uvicorn.Server(uvicorn.Config(create_app(dsn=url, schema=schema),
                                           host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="conveyor-demo-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/" if server.started else None
    finally:
        server.should_exit = True
        thread.join(10)


async def _tour(cv: AsyncConveyor, console: Console, initial: int, keep_running: bool,
                dashboard: str | None) -> Tour:
    tour = Tour()
    await _reset(cv)
    cv.work(DOCUMENTS, _parse, concurrency=8)
    cv.work(MESSAGES, _deliver, concurrency=4)
    cv.work(TICKS, _tick, concurrency=1)
    _hooks(cv, tour)
    worker = asyncio.create_task(cv.run(handle_signals=False, stats_interval=5))
    producer = asyncio.create_task(_produce(cv, tour, initial))
    deadline = time.monotonic() + _TIME_LIMIT
    try:
        with Live(_view(tour, dashboard), console=console, refresh_per_second=8) as live:
            while keep_running or (not tour.complete(initial) and time.monotonic() < deadline):
                tour.summaries = await cv.queue_summaries()
                live.update(_view(tour, dashboard))
                if worker.done():
                    await worker  # raises what stopped it
                await asyncio.sleep(_REFRESH)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await cv.stop()  # the worker finishes its running jobs, then the pool closes
        await asyncio.gather(worker, return_exceptions=True)
    return tour


def _summary(console: Console, tour: Tour) -> None:
    console.print()
    seen = [
        f"{tour.sent:,} documents sent, {tour.completed.get(DOCUMENTS, 0):,} parsed",
        f"{tour.retried} retries with exponential backoff; "
        + ("corrupt.pdf failed for good and a copy waits in " + DEAD_LETTERS
           if tour.dead_lettered else "the corrupt document had not failed for good yet"),
        f"{tour.ticks} cron ticks of {SCHEDULE}, exactly one job each",
        f"{MESSAGES} sent at most {MESSAGES_PER_SECOND} messages a second across all workers",
    ]
    for line in seen:
        console.print(f"  - {line}")
    console.print("Next: `conveyor dev` prints a database URL for your own code; "
                  "`conveyor dashboard` serves the dashboard; the README shows the API.")


def run(url: str, console: Console, *, jobs: int, keep_running: bool = False,
        port: int = 8080, schema: str | None = None) -> None:
    """Run the tour on the database at ``url`` until it is complete (or Ctrl-C)."""

    async def main() -> Tour:
        async with AsyncConveyor(url, schema=schema) as cv:
            with _dashboard(url, schema, port) as dashboard:
                if dashboard:
                    console.print(f"Dashboard at [bold]{dashboard}[/]")
                return await _tour(cv, console, jobs, keep_running, dashboard)

    # The live table shows what the worker's log would say; the log would break it up.
    logger = logging.getLogger("conveyor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        tour = asyncio.run(main())
    except KeyboardInterrupt:
        console.print("\nStopped; the data stays for the next run.")
        return
    finally:
        logger.setLevel(level)
    _summary(console, tour)
