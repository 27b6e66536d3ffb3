"""The worker, in process: handlers of every kind, outcomes, retries, time limits,
progress, cancellation, wake-ups, hooks and a graceful stop. Faults (killed
processes, restarts) are in test_worker_faults.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest

from conveyor import (
    AsyncConveyor,
    Conveyor,
    HookEvent,
    Job,
    JobState,
    NonRetryableError,
    RetryAfter,
)
from conveyor.errors import ConveyorError, InvalidOption, QueueConflict

FAST = {"heartbeat_interval": 0.2, "rescue_interval": 0.2, "handle_signals": False}


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(cv: AsyncConveyor, **options: Any) -> AsyncIterator[asyncio.Task[None]]:
    """The client's worker, running in a task for the duration of the block."""
    task = asyncio.create_task(cv.run(**{**FAST, **options}))
    try:
        yield task
    finally:
        worker = cv._active_worker
        if worker is not None:
            worker.stop()
        await asyncio.wait_for(task, 30)


async def state_of(cv: AsyncConveyor, job_id: str | None) -> JobState:
    assert job_id is not None
    job = await cv.get_job(job_id)
    assert job is not None
    return job.state


async def finished(cv: AsyncConveyor, queue: str, count: int) -> bool:
    counts = await cv.queue_counts(queue)
    return counts[JobState.COMPLETED] + counts[JobState.FAILED] >= count


def whose_process(job: Job) -> int:
    """A process handler must be importable: module level."""
    return os.getpid()


# --- handlers of every kind -------------------------------------------------------------


async def test_a_worker_runs_an_async_handler_and_stores_its_output(acv: AsyncConveyor) -> None:
    @acv.task("q")
    async def double(job: Job) -> dict[str, int]:
        return {"double": job.data * 2}

    job_id = await acv.send("q", 21)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED
    assert job.output == {"double": 42}


async def test_a_plain_function_handler_runs_in_a_thread(acv: AsyncConveyor) -> None:
    acv.work("q", lambda job: threading.current_thread().name)

    job_id = await acv.send("q", None)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.output.startswith("conveyor")


async def test_a_process_handler_runs_in_another_process(acv: AsyncConveyor) -> None:
    acv.work("q", whose_process, executor="process", concurrency=1)

    job_id = await acv.send("q", None)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1), timeout=30)

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED
    assert isinstance(job.output, int) and job.output != os.getpid()


async def test_a_batch_handler_receives_lists_of_jobs(acv: AsyncConveyor) -> None:
    sizes: list[int] = []

    @acv.task("q", batch_size=4, concurrency=1)
    async def handle(jobs: list[Job]) -> str:
        sizes.append(len(jobs))
        return "batched"

    await acv.insert("q", [{"data": n} for n in range(10)])
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 10))

    assert sum(sizes) == 10 and max(sizes) <= 4 and max(sizes) > 1
    assert {j.output for j in await acv.find_jobs("q")} == {"batched"}


async def test_a_sync_client_runs_its_handlers_until_stopped(
    database_url: str, schema: str
) -> None:
    cv = Conveyor(database_url, schema=schema)
    cv.work("q", lambda job: job.data + 1)
    with cv:
        job_id = cv.send("q", 1)
        runner = threading.Thread(target=cv.run, kwargs=FAST)
        runner.start()
        deadline = time.monotonic() + 15
        while cv.get_job(job_id).state is not JobState.COMPLETED:  # type: ignore[union-attr,arg-type]
            assert time.monotonic() < deadline
            time.sleep(0.02)
    runner.join(timeout=15)

    assert not runner.is_alive()
    with Conveyor(database_url, schema=schema) as check:
        assert check.get_job(job_id).output == 2  # type: ignore[union-attr,arg-type]


# --- ordering, concurrency, delays ------------------------------------------------------


async def test_concurrency_is_never_exceeded(acv: AsyncConveyor) -> None:
    now = peak = 0

    @acv.task("q", concurrency=3)
    async def handle(job: Job) -> None:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.05)
        now -= 1

    await acv.insert("q", [{"data": n} for n in range(30)])
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 30))

    assert peak == 3


async def test_every_slot_fills_when_handlers_wait(acv: AsyncConveyor) -> None:
    release = asyncio.Event()
    now = 0

    @acv.task("q", concurrency=200)
    async def handle(job: Job) -> None:
        nonlocal now
        now += 1
        await release.wait()

    await acv.insert("q", [{"data": n} for n in range(200)])
    async with running(acv):
        async def all_started() -> bool:
            return now == 200
        await wait_until(all_started)
        release.set()
        await wait_until(lambda: finished(acv, "q", 200))


async def test_calls_that_never_wait_are_run_by_one_runner_without_waking_the_rest() -> None:
    from conveyor.worker.control import HandlerCall
    from conveyor.worker.pool import HandlerPool

    runners: list[asyncio.Task[Any] | None] = []

    async def execute(call: HandlerCall) -> None:
        runners.append(call.task)

    pool = HandlerPool("q", 100, execute, lambda call, result: None, lambda call: None)
    pool.start()
    await asyncio.sleep(0)  # the runners go idle
    loop = asyncio.get_running_loop()
    wakes = 0

    def counted(*args: Any, **kwargs: Any) -> Any:  # a woken runner is a callback scheduled
        nonlocal wakes
        wakes += 1
        return type(loop).call_soon(loop, *args, **kwargs)

    loop.call_soon = counted  # type: ignore[method-assign]
    try:
        for _ in range(50):
            pool.submit([HandlerCall([], interruptible=True)])
    finally:
        del loop.call_soon
    await pool.wait_empty()
    await pool.close()

    assert wakes == 1
    assert len(runners) == 50
    assert len(set(runners)) == 1


async def test_jobs_run_in_priority_order(acv: AsyncConveyor) -> None:
    order: list[int] = []

    @acv.task("q", concurrency=1)
    async def handle(job: Job) -> None:
        order.append(job.priority)

    await acv.insert("q", [{"data": n, "priority": n % 4} for n in range(12)])
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 12))

    assert order == sorted(order, reverse=True)


async def test_a_delayed_job_never_starts_early(acv: AsyncConveyor) -> None:
    started: dict[str, float] = {}

    @acv.task("q")
    async def handle(job: Job) -> None:
        started[job.id] = time.time()

    job_id = await acv.send("q", None, start_after=1.5)
    sent = time.time()
    async with running(acv, lease=5):
        await wait_until(lambda: finished(acv, "q", 1))

    assert job_id is not None and started[job_id] - sent >= 1.4


async def test_a_send_wakes_an_idle_worker_before_its_poll(acv: AsyncConveyor) -> None:
    @acv.task("q", poll_interval=60)
    async def handle(job: Job) -> None:
        return None

    async with running(acv):
        await asyncio.sleep(0.5)  # the worker found nothing and waits for a minute
        job_id = await acv.send("q", None)
        await wait_until(lambda: finished(acv, "q", 1), timeout=5)

    assert await state_of(acv, job_id) is JobState.COMPLETED


async def _bursts_all_start_promptly(
    acv: AsyncConveyor, send: Callable[[int], Awaitable[None]],
) -> None:
    """Bursts of three sends, 0 to 15 ms apart, to a worker that polls once a minute:
    every job must start within half a second of its send, whichever of them the
    client's debounce left without a notification of its own."""
    started: dict[int, float] = {}

    @acv.task("q", poll_interval=60, concurrency=10)
    async def handle(job: Job) -> None:
        started[job.data] = time.monotonic()

    sent: dict[int, float] = {}
    numbers = itertools.count()
    async with running(acv):
        await asyncio.sleep(0.3)  # idle, waiting for its minute
        for _ in range(3):
            for gap in range(16):
                burst = []
                for _ in range(3):
                    n = next(numbers)
                    await send(n)
                    sent[n] = time.monotonic()
                    burst.append(n)
                    await asyncio.sleep(gap / 1000)
                deadline = time.monotonic() + 5
                while not all(n in started for n in burst) and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                late = {n: round(started.get(n, time.monotonic()) - sent[n], 3) for n in burst
                        if started.get(n, time.monotonic()) - sent[n] > 0.5}
                assert not late, f"gap {gap} ms: jobs started late (seconds after the send): {late}"
                await asyncio.sleep(0.03)  # the worker goes back to waiting for the poll


async def test_sends_a_few_ms_apart_all_start_long_before_the_poll(acv: AsyncConveyor) -> None:
    async def send(n: int) -> None:
        await acv.send("q", n)

    await _bursts_all_start_promptly(acv, send)


async def test_sends_a_few_ms_apart_from_a_sync_client_all_start_long_before_the_poll(
    acv: AsyncConveyor, database_url: str, schema: str,
) -> None:
    with Conveyor(database_url, schema=schema) as producer:
        async def send(n: int) -> None:
            await asyncio.to_thread(producer.send, "q", n)

        await _bursts_all_start_promptly(acv, send)


async def test_a_poll_only_worker_finds_jobs_by_polling(acv: AsyncConveyor) -> None:
    @acv.task("q", poll_interval=0.2)
    async def handle(job: Job) -> None:
        return None

    async with running(acv, listen=False):
        await asyncio.sleep(0.3)
        job_id = await acv.send("q", None)
        await wait_until(lambda: finished(acv, "q", 1), timeout=5)

    assert await state_of(acv, job_id) is JobState.COMPLETED


# --- failures and retries ---------------------------------------------------------------


async def test_a_raising_handler_fails_the_attempt_with_its_traceback(acv: AsyncConveyor) -> None:
    @acv.task("q")
    async def handle(job: Job) -> None:
        raise ValueError("page 7 is unreadable")

    job_id = await acv.send("q", None, retry_limit=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.FAILED
    assert job.error is not None and job.error["type"] == "builtins.ValueError"
    assert "page 7 is unreadable" in job.error["traceback"]


async def test_retries_back_off_exponentially(acv: AsyncConveyor) -> None:
    starts: list[float] = []

    @acv.task("q", poll_interval=0.05)
    async def handle(job: Job) -> None:
        starts.append(time.monotonic())
        raise RuntimeError("flaky")

    await acv.send("q", None, retry_limit=3, retry_delay=1, retry_backoff=True)
    async with running(acv, listen=False):
        await wait_until(lambda: finished(acv, "q", 1), timeout=20)

    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # Each delay is between half and all of 1 s, 2 s, 4 s; polling (and a busy
    # machine) adds a little, never subtracts.
    assert len(gaps) == 3
    for gap, full in zip(gaps, (1, 2, 4), strict=True):
        assert full / 2 - 0.1 <= gap <= full + 1.0, gaps


async def test_retry_after_retries_after_exactly_that_delay(acv: AsyncConveyor) -> None:
    starts: list[float] = []

    @acv.task("q", poll_interval=0.05)
    async def handle(job: Job) -> str:
        starts.append(time.monotonic())
        if len(starts) == 1:
            raise RetryAfter(1.2)
        return "done"

    job_id = await acv.send("q", None, retry_delay=60, retry_backoff=True)
    async with running(acv, listen=False):
        await wait_until(lambda: finished(acv, "q", 1), timeout=10)

    assert 1.1 <= starts[1] - starts[0] <= 2.5  # exactly 1.2 s, plus polling; not 60 s
    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.retry_count == 1 and job.output == "done"


async def test_a_non_retryable_error_fails_the_job_at_once(acv: AsyncConveyor) -> None:
    calls = 0

    @acv.task("q")
    async def handle(job: Job) -> None:
        nonlocal calls
        calls += 1
        raise NonRetryableError("the document is encrypted")

    job_id = await acv.send("q", None, retry_limit=5)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.FAILED and job.retry_count == 0
    assert calls == 1


async def test_an_output_that_is_not_json_fails_the_attempt(acv: AsyncConveyor) -> None:
    @acv.task("q")
    async def handle(job: Job) -> object:
        return object()

    job_id = await acv.send("q", None, retry_limit=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.FAILED
    assert job.error is not None and job.error["type"] == "conveyor.errors.InvalidPayload"


# --- time limits, progress, cancellation, leases ------------------------------------------


async def test_a_job_past_its_expire_in_is_stopped_and_fails_with_job_timeout(
    acv: AsyncConveyor,
) -> None:
    stopped = asyncio.Event()

    @acv.task("q")
    async def handle(job: Job) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise

    job_id = await acv.send("q", None, expire_in=1, retry_limit=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1), timeout=10)

    assert stopped.is_set()
    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.error is not None
    assert job.error["type"] == "conveyor.errors.JobTimeout"


async def test_a_heartbeat_by_hand_extends_the_time_limit(acv: AsyncConveyor) -> None:
    @acv.task("q")
    async def handle(job: Job) -> str:
        for _ in range(6):
            await asyncio.sleep(0.3)
            job.heartbeat()
        return "finished"

    job_id = await acv.send("q", None, expire_in=1, retry_limit=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1), timeout=10)

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED and job.output == "finished"


async def test_progress_is_visible_while_the_job_runs(acv: AsyncConveyor) -> None:
    release = asyncio.Event()

    @acv.task("q")
    async def handle(job: Job) -> None:
        job.progress(40, "page 4 of 10")
        await release.wait()

    job_id = await acv.send("q", None)
    async with running(acv):

        async def reported() -> bool:
            job = await acv.get_job(job_id)  # type: ignore[arg-type]
            return job is not None and job.progress.percent == 40

        await wait_until(reported, timeout=5)
        release.set()
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.progress == {"percent": 40, "message": "page 4 of 10"}


@pytest.mark.parametrize("fails", [False, True])
async def test_progress_reported_just_before_the_end_is_kept_with_the_outcome(
    acv: AsyncConveyor, fails: bool
) -> None:
    @acv.task("q")
    async def handle(job: Job) -> None:
        if fails:
            job.progress(70, "stopped at page 7")
            raise RuntimeError("page 8 is corrupt")
        job.progress(100, "done")

    job_id = await acv.send("q", None, retry_limit=0)
    async with running(acv, heartbeat_interval=30):  # no heartbeat carries it
        await wait_until(lambda: finished(acv, "q", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.state is (JobState.FAILED if fails else JobState.COMPLETED)
    assert job.progress == ({"percent": 70, "message": "stopped at page 7"} if fails
                            else {"percent": 100, "message": "done"})


async def test_cancel_reaches_a_running_async_handler_within_a_second(
    acv: AsyncConveyor,
) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    @acv.task("q")
    async def handle(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise

    job_id = await acv.send("q", None)
    async with running(acv):
        await asyncio.wait_for(started.wait(), 10)
        await acv.cancel(job_id)  # type: ignore[arg-type]
        await asyncio.wait_for(stopped.wait(), 1.5)

    assert await state_of(acv, job_id) is JobState.CANCELLED


async def test_a_worker_goes_on_with_other_jobs_after_one_is_cancelled(
    acv: AsyncConveyor,
) -> None:
    # Concurrency 1: the one handler slot that ran the cancelled job runs the rest.
    started = asyncio.Event()
    ran: list[int] = []

    @acv.task("q", concurrency=1)
    async def handle(job: Job) -> None:
        if job.data == "slow":
            started.set()
            await asyncio.sleep(30)
        ran.append(job.data)

    slow_id = await acv.send("q", "slow", priority=10)
    async with running(acv):
        await asyncio.wait_for(started.wait(), 10)
        await acv.insert("q", [{"data": n} for n in range(5)])
        await acv.cancel(slow_id)  # type: ignore[arg-type]
        await wait_until(lambda: finished(acv, "q", 5))

    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert await state_of(acv, slow_id) is JobState.CANCELLED


async def test_a_job_past_its_expire_in_frees_its_slot_for_the_next_job(
    acv: AsyncConveyor,
) -> None:
    @acv.task("q", concurrency=1)
    async def handle(job: Job) -> str:
        if job.data == "stuck":
            await asyncio.sleep(30)
        return "done"

    stuck_id = await acv.send("q", "stuck", priority=10, expire_in=1, retry_limit=0)
    next_id = await acv.send("q", "next")
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 2))

    stuck = await acv.get_job(stuck_id)  # type: ignore[arg-type]
    assert stuck is not None and stuck.state is JobState.FAILED
    assert stuck.error is not None and stuck.error["type"] == "conveyor.errors.JobTimeout"
    done = await acv.get_job(next_id)  # type: ignore[arg-type]
    assert done is not None and done.output == "done"


async def test_cancel_raises_the_cancelled_flag_of_a_thread_handler(acv: AsyncConveyor) -> None:
    started = threading.Event()
    saw_flag = threading.Event()

    def handle(job: Job) -> None:
        started.set()
        for _ in range(300):
            if job.cancelled:
                saw_flag.set()
                return
            time.sleep(0.01)

    acv.work("q", handle)
    job_id = await acv.send("q", None)
    async with running(acv):
        await asyncio.to_thread(started.wait, 10)
        await acv.cancel(job_id)  # type: ignore[arg-type]
        assert await asyncio.to_thread(saw_flag.wait, 1.5)

    assert await state_of(acv, job_id) is JobState.CANCELLED


async def test_a_lapsed_lease_is_rescued_as_a_failed_attempt(acv: AsyncConveyor) -> None:
    await acv.send("q", {"n": 1}, expire_in=1)
    [abandoned] = await acv.fetch("q")  # a worker that claims it, then dies
    acv.work("q", lambda job: "rescued and done")

    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1), timeout=15)

    job = await acv.get_job(abandoned.id)
    assert job is not None and job.state is JobState.COMPLETED
    assert job.retry_count == 1
    assert job.errors[0]["type"] == "conveyor.errors.LeaseExpired"


# --- a handler completing its job in its own transaction -------------------------------


@pytest.fixture
async def orders(acv: AsyncConveyor, database_url: str) -> str:
    """A business table of the application's own, with order 1 'new'."""
    table = f'"{acv.schema}".orders'
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, status text)")
        await conn.execute(f"INSERT INTO {table} VALUES (1, 'new')")
    return table


async def order_status(acv: AsyncConveyor, database_url: str, table: str) -> str:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(f"SELECT status FROM {table}")).fetchone()
    assert row is not None
    return str(row[0])


async def test_a_thread_handler_completing_its_job_in_its_transaction_keeps_its_return_value(
    acv: AsyncConveyor, database_url: str, schema: str, orders: str,
) -> None:
    with Conveyor(database_url, schema=schema) as cv:

        @acv.task("charge")
        def charge(job: Job) -> dict[str, bool]:
            with psycopg.connect(database_url) as conn, conn.transaction():
                conn.execute(f"UPDATE {orders} SET status = 'paid' WHERE id = 1")
                cv.complete(job, conn=conn)
            return {"charged": True}

        job_id = await acv.send("charge", {"order": 1})
        async with running(acv):
            await wait_until(lambda: finished(acv, "charge", 1))
            await wait_until(lambda: output_of(acv, job_id, {"charged": True}))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED and job.attempt == 1
    assert await order_status(acv, database_url, orders) == "paid"


async def output_of(acv: AsyncConveyor, job_id: str | None, expected: Any) -> bool:
    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    return job is not None and job.output == expected


async def test_an_output_given_to_complete_in_the_handlers_transaction_is_stored(
    acv: AsyncConveyor, database_url: str, orders: str,
) -> None:
    @acv.task("charge")
    async def charge(job: Job) -> None:
        async with (await psycopg.AsyncConnection.connect(database_url) as conn,
                    conn.transaction()):
                await conn.execute(f"UPDATE {orders} SET status = 'paid' WHERE id = 1")
                await acv.complete(job, {"receipt": "r-1"}, conn=conn)

    job_id = await acv.send("charge", {"order": 1})
    async with running(acv):
        await wait_until(lambda: finished(acv, "charge", 1))

    assert await output_of(acv, job_id, {"receipt": "r-1"})
    assert await order_status(acv, database_url, orders) == "paid"


async def test_a_return_value_that_differs_from_the_output_given_to_complete_is_reported(
    acv: AsyncConveyor, database_url: str, orders: str,
) -> None:
    warnings: list[str] = []
    acv.on("warning", lambda event: warnings.append(event.message or ""))

    @acv.task("charge")
    async def charge(job: Job) -> str:
        async with (await psycopg.AsyncConnection.connect(database_url) as conn,
                    conn.transaction()):
                await acv.complete(job, {"receipt": "r-1"}, conn=conn)
        return "something else"

    job_id = await acv.send("charge", {"order": 1})
    assert job_id is not None

    def about_the_job() -> list[str]:  # not the leader's (autovacuum off, say)
        return [message for message in warnings if job_id in message]

    async with running(acv):
        await wait_until(lambda: finished(acv, "charge", 1))
        await wait_until(lambda: asyncio.sleep(0, bool(about_the_job())))

    assert await output_of(acv, job_id, {"receipt": "r-1"})
    assert "return value is not stored" in about_the_job()[0]


async def test_a_handler_whose_own_completion_rolled_back_but_returned_completes_its_job(
    acv: AsyncConveyor, database_url: str, orders: str,
) -> None:
    @acv.task("charge")
    async def charge(job: Job) -> str:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():
                    await conn.execute(f"UPDATE {orders} SET status = 'paid' WHERE id = 1")
                    await acv.complete(job, conn=conn)
                    raise RuntimeError("the provider said no; nothing to charge")
        return "skipped"

    job_id = await acv.send("charge", {"order": 1})
    async with running(acv):
        await wait_until(lambda: finished(acv, "charge", 1))

    assert await output_of(acv, job_id, "skipped")
    assert await order_status(acv, database_url, orders) == "new"


async def test_a_handler_that_raises_after_completing_in_its_transaction_leaves_it_completed(
    acv: AsyncConveyor, database_url: str, orders: str,
) -> None:
    @acv.task("charge")
    async def charge(job: Job) -> None:
        async with (await psycopg.AsyncConnection.connect(database_url) as conn,
                    conn.transaction()):
                await conn.execute(f"UPDATE {orders} SET status = 'paid' WHERE id = 1")
                await acv.complete(job, {"receipt": "r-1"}, conn=conn)
        raise RuntimeError("after the commit")

    job_id = await acv.send("charge", {"order": 1}, retry_limit=3)
    async with running(acv):
        await wait_until(lambda: finished(acv, "charge", 1))
        await asyncio.sleep(0.3)  # the failure, which finds the job completed

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED
    assert job.output == {"receipt": "r-1"} and job.errors == []


# --- hooks and stopping ------------------------------------------------------------------


async def test_hooks_are_called_for_job_and_worker_events(acv: AsyncConveyor) -> None:
    seen: list[tuple[str, Any]] = []

    @acv.on("job_completed")
    async def completed(event: HookEvent) -> None:
        seen.append((event.name, event.output))

    acv.on("job_retried", lambda event: seen.append((event.name, str(event.error))))
    acv.on("worker_started", lambda event: seen.append((event.name, None)))
    acv.on("worker_stopped", lambda event: seen.append((event.name, None)))
    attempts = 0

    @acv.task("q")
    async def handle(job: Job) -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first try")
        return "second try"

    await acv.send("q", None, retry_limit=1)
    async with running(acv):
        await wait_until(lambda: finished(acv, "q", 1))

    assert seen == [
        ("worker_started", None), ("job_retried", "first try"),
        ("job_completed", "second try"), ("worker_stopped", None),
    ]


async def test_stopping_lets_running_jobs_finish(acv: AsyncConveyor) -> None:
    started = asyncio.Event()

    @acv.task("q")
    async def handle(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.5)
        return "finished"

    job_id = await acv.send("q", None)
    async with running(acv, shutdown_timeout=10):
        await asyncio.wait_for(started.wait(), 10)

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED


async def test_jobs_still_running_at_the_shutdown_timeout_go_back_uncounted(
    acv: AsyncConveyor,
) -> None:
    started = asyncio.Event()

    @acv.task("q")
    async def handle(job: Job) -> None:
        started.set()
        await asyncio.sleep(30)

    job_id = await acv.send("q", None)
    async with running(acv, shutdown_timeout=0.2):
        await asyncio.wait_for(started.wait(), 10)

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.CREATED
    assert job.retry_count == 0 and job.errors == []
    assert (await acv.queue_counts("q"))[JobState.ACTIVE] == 0


async def test_a_thread_handler_handed_back_at_shutdown_logs_no_error(
    acv: AsyncConveyor, caplog: pytest.LogCaptureFixture,
) -> None:
    started = threading.Event()

    @acv.task("q")
    def handle(job: Job) -> None:
        started.set()
        for _ in range(100):  # stops early once the worker asks
            if job.cancelled:
                return
            time.sleep(0.05)

    job_id = await acv.send("q", None)
    async with running(acv, shutdown_timeout=0.2):
        await asyncio.to_thread(started.wait, 10)
    gc.collect()  # futures nobody read report it when collected
    await asyncio.sleep(0.05)

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.CREATED


# --- registration ------------------------------------------------------------------------


def test_a_queue_takes_one_handler(cv: Conveyor) -> None:
    cv.work("q", print)

    with pytest.raises(QueueConflict):
        cv.work("q", print)


def test_an_async_handler_cannot_run_in_a_thread(cv: Conveyor) -> None:
    async def handle(job: Job) -> None:
        return None

    with pytest.raises(InvalidOption):
        cv.work("q", handle, executor="thread")
    with pytest.raises(InvalidOption):
        cv.work("q", print, executor="async")
    with pytest.raises(InvalidOption):
        cv.work("q", print, executor="fibers")  # type: ignore[arg-type]
    with pytest.raises(InvalidOption):
        cv.work("q", print, concurrency=0)


def test_an_unknown_hook_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="job_completed"):
        cv.on("job_done", print)


async def test_running_without_handlers_is_refused(acv: AsyncConveyor) -> None:
    with pytest.raises(ConveyorError, match="no handlers"):
        await acv.run(handle_signals=False)


def test_concurrency_defaults_to_the_environment(
    cv: Conveyor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_CONCURRENCY", "12")
    cv.work("q", print)

    assert cv._registry.select()[0].concurrency == 12


# --- garbage collection while running --------------------------------------------------


@pytest.fixture
def default_gc_thresholds() -> Iterator[None]:
    import gc

    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


async def thresholds_while_running(acv: AsyncConveyor, **options: Any) -> tuple[int, ...]:
    import gc

    seen: list[tuple[int, ...]] = []

    @acv.task("q")
    async def handle(job: Job) -> None:
        seen.append(gc.get_threshold())

    await acv.send("q", None)
    async with running(acv, **options):
        await wait_until(lambda: finished(acv, "q", 1))
    return seen[0]


@pytest.mark.usefixtures("default_gc_thresholds")
async def test_a_running_worker_collects_garbage_less_often_and_restores_it(
    acv: AsyncConveyor,
) -> None:
    import gc

    assert await thresholds_while_running(acv) == (7000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("default_gc_thresholds")
async def test_a_worker_leaves_thresholds_set_by_the_application(acv: AsyncConveyor) -> None:
    import gc

    gc.set_threshold(1234, 5, 5)
    assert await thresholds_while_running(acv) == (1234, 5, 5)
    assert gc.get_threshold() == (1234, 5, 5)


@pytest.mark.usefixtures("default_gc_thresholds")
async def test_tune_gc_false_leaves_the_collector_alone(acv: AsyncConveyor) -> None:
    assert await thresholds_while_running(acv, tune_gc=False) == (700, 10, 10)
