"""What ``conveyor demo`` shows: the life of jobs, from a bulk send to the dead-letter
queue, driven with ``fetch``, ``complete`` and ``fail``."""

from __future__ import annotations

import hashlib
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor.client import Conveyor
from conveyor.job import Job, JobState

QUEUE = "demo.documents"
DEAD_LETTERS = "demo.documents.dead"
_BATCH = 50
_TIME_LIMIT_SECONDS = 60.0


class CorruptDocument(Exception):
    """What the demo's handler raises for the one document it cannot parse."""


def _parse(job: Job) -> dict[str, object]:
    document = job.data["document"]
    if document == "corrupt.pdf":
        raise CorruptDocument(f"{document}: unexpected end of stream")
    digest = hashlib.sha256(document.encode()).hexdigest()
    return {"pages": 1 + int(digest[:2], 16) % 40, "sha256": digest[:16]}


def _reset(cv: Conveyor) -> None:
    """Each run starts from empty demo queues (the queue first: it names the other)."""
    cv.delete_queue(QUEUE)
    cv.delete_queue(DEAD_LETTERS)
    cv.create_queue(
        QUEUE, retry_limit=2, retry_delay=1, retry_backoff=True, dead_letter=DEAD_LETTERS
    )


def _work(cv: Conveyor, progress: Progress, total: int) -> None:
    """Claim, process and settle jobs until none is left waiting or retrying."""
    task = progress.add_task("processing", total=total)
    deadline = time.monotonic() + _TIME_LIMIT_SECONDS
    while time.monotonic() < deadline:
        jobs = cv.fetch(QUEUE, batch_size=_BATCH)
        for job in jobs:
            try:
                output = _parse(job)
            except CorruptDocument as exc:
                cv.fail(job, exc)
                if job.retry_count < job.retry_limit:
                    progress.console.print(
                        f"[yellow]attempt {job.attempt} of {job.data['document']} failed; "
                        "it will be retried with backoff[/]"
                    )
                    continue
            else:
                cv.complete(job, output)
            progress.advance(task)
        counts = cv.queue_counts(QUEUE)
        if counts[JobState.CREATED] + counts[JobState.RETRY] + counts[JobState.ACTIVE] == 0:
            return
        if not jobs:
            time.sleep(0.2)  # only retries are left, waiting out their backoff


def _summary(cv: Conveyor, console: Console) -> None:
    table = Table(title="Jobs by state")
    table.add_column("queue")
    for state in JobState:
        table.add_column(state.value, justify="right")
    for queue in (QUEUE, DEAD_LETTERS):
        counts = cv.queue_counts(queue)
        table.add_row(queue, *(str(counts[state]) for state in JobState))
    console.print(table)

    failed = cv.find_jobs(QUEUE, state="failed", limit=1).jobs
    if failed:
        job = failed[0]
        assert job.error is not None
        console.print(
            f"Failed for good after {job.attempt} attempts: [bold]{job.data['document']}[/] "
            f"({job.error['type']}: {job.error['message']}); a copy waits in {DEAD_LETTERS}."
        )
    done = cv.find_jobs(QUEUE, state="completed", limit=1).jobs
    if done:
        console.print(f"A completed job keeps its result: {done[0].data} -> {done[0].output}")


def run(cv: Conveyor, console: Console, jobs: int) -> None:
    """Send ``jobs`` documents (one of them corrupt) and work through them."""
    _reset(cv)
    started = time.perf_counter()
    items = [
        {"data": {"document": f"report-{n:05d}.pdf"}, "priority": 10 if n % 10 == 0 else 0}
        for n in range(jobs - 1)
    ]
    items.append({"data": {"document": "corrupt.pdf"}})
    inserted = cv.insert(QUEUE, items)
    elapsed = time.perf_counter() - started
    console.print(
        f"Sent {inserted} jobs to [bold]{QUEUE}[/] in one COPY ({elapsed * 1000:.0f} ms); "
        "every tenth has priority 10 and runs first."
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        _work(cv, progress, inserted)
    _summary(cv, console)
    console.print(
        "Next: `conveyor dev` prints a database URL for your own code; the README shows "
        "send, fetch, complete and fail."
    )
