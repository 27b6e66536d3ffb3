"""The statement deadline: a worker whose connections go silent (packets dropped,
nothing closed) gives them up within the deadline and goes on with new ones;
outcomes held up meanwhile are written, not dropped; the listener reconnects;
calls the application makes are not bounded.

The worker connects through ``tcp_proxy.TcpProxy``, which the test cuts: on
loopback the kernel acknowledges every byte, so TCP's own timers never fire and
only the deadline can notice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from psycopg import sql
from tcp_proxy import TcpProxy
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Job, JobState
from conveyor._db.notify import Listener
from conveyor._db.plan import Execute, Operation, Plan
from conveyor._db.queries import Queries, Statement
from conveyor.errors import ConnectionLost

QUEUE = "work"
DEADLINE = 1.0
GIVEN_UP = f"did not answer within {DEADLINE:g} s"


@asynccontextmanager
async def through(proxy: TcpProxy, database_url: str, schema: str,
                  **settings: float) -> AsyncIterator[AsyncConveyor]:
    """A client whose connections go through ``proxy``, with a short deadline."""
    async with AsyncConveyor(proxy.dsn_through(database_url), schema=schema,
                             statement_deadline=DEADLINE, connect_timeout=2,
                             **settings) as client:
        yield client


async def test_a_worker_gives_up_connections_gone_silent_and_finishes_its_jobs_on_new_ones(
    acv: AsyncConveyor, database_url: str, schema: str, proxy: TcpProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[str] = []
    async with through(proxy, database_url, schema) as worker_cv:
        @worker_cv.task(QUEUE, concurrency=5, poll_interval=0.2)
        async def record(job: Job) -> None:
            runs.append(job.id)

        # Maintenance off: its tasks have no deadline (TCP's timers are theirs), and
        # one stuck on a silent connection would only slow the stop down.
        async with running(worker_cv, maintenance=False):
            await acv.insert(QUEUE, [{"data": {"n": n}} for n in range(20)])
            await wait_until(lambda: finished(acv, QUEUE, 20))
            # Every connection open now goes silent for good, as behind a firewall
            # that forgot them; new ones get through.
            proxy.forget()
            await acv.insert(QUEUE, [{"data": {"n": n}} for n in range(20, 40)])
            await wait_until(lambda: finished(acv, QUEUE, 40), timeout=20)

    assert GIVEN_UP in caplog.text
    assert (await acv.queue_counts(QUEUE))[JobState.COMPLETED] == 40
    assert len(runs) == len(set(runs)) == 40


async def test_outcomes_held_up_by_a_network_cut_are_written_once_it_heals(
    acv: AsyncConveyor, database_url: str, schema: str, proxy: TcpProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[str] = []
    async with through(proxy, database_url, schema) as worker_cv:
        @worker_cv.task(QUEUE, concurrency=10)
        async def record(job: Job) -> None:
            runs.append(job.id)
            await asyncio.sleep(0.3)

        # Leases of a minute: no job can be rescued and run again within the test,
        # so every completion must come from the outcomes written after the cut.
        async with running(worker_cv, lease=60, maintenance=False):
            await acv.insert(QUEUE, [{"data": {"n": n}} for n in range(10)])

            async def all_started() -> bool:
                return len(runs) == 10

            await wait_until(all_started)
            proxy.cut()
            await asyncio.sleep(3 * DEADLINE)  # the handlers finish; their outcomes wait
            assert not await finished(acv, QUEUE, 1)
            proxy.restore()
            await wait_until(lambda: finished(acv, QUEUE, 10), timeout=15)

    assert "could not record" in caplog.text and GIVEN_UP in caplog.text
    jobs = await acv.find_jobs(queue=QUEUE)
    assert {(job.state, job.attempt, job.retry_count) for job in jobs} == {
        (JobState.COMPLETED, 1, 0)}
    assert len(runs) == len(set(runs)) == 10


async def test_a_listener_whose_connection_goes_silent_reconnects(
    acv: AsyncConveyor, proxy: TcpProxy,
) -> None:
    wakes: list[str | None] = []
    listener = Listener(proxy.dsn_through(acv.settings.conninfo()), Queries(acv.schema),
                        wakes.append, deadline=DEADLINE, health_interval=0.5)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        proxy.forget()

        async def reconnected() -> bool:
            return None in wakes  # woken for every queue after reconnecting

        await wait_until(reconnected, timeout=10)
        await acv.send(QUEUE, {})

        async def notified() -> bool:
            return QUEUE in wakes

        await wait_until(notified, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_calls_the_application_makes_wait_out_a_cut_without_a_deadline(
    acv: AsyncConveyor, database_url: str, schema: str, proxy: TcpProxy,
) -> None:
    async with through(proxy, database_url, schema) as client:
        await client.send(QUEUE, {"before": True})
        proxy.cut()
        asyncio.get_running_loop().call_later(3 * DEADLINE, proxy.restore)
        started = time.monotonic()
        job_id = await client.send(QUEUE, {"during": True})
        waited = time.monotonic() - started

    assert waited >= 3 * DEADLINE - 0.1
    assert job_id is not None and await acv.get_job(job_id) is not None


async def test_a_workers_transaction_cut_off_midway_is_ended_by_the_server_locks_and_all(
    acv: AsyncConveyor, database_url: str, schema: str, proxy: TcpProxy,
) -> None:
    """A transaction of several round trips (a rescue pass, a pause) whose network
    goes silent between two statements: the worker gives its connection up, and the
    server, told the deadline at the transaction's start, ends the session waiting
    there, which frees the rows it had locked."""
    job_id = await acv.send(QUEUE, {})
    lock = sql.SQL("SELECT id FROM {}.job WHERE id = %(id)s FOR UPDATE").format(
        sql.Identifier(schema)).as_string()

    def lock_then_go_silent() -> Plan[None]:
        yield Execute(Statement("lock", text=lock), {"id": job_id})
        proxy.cut()  # nothing moves, nothing is closed: the server hears nothing more
        yield Execute(Statement("select_one", text="SELECT 1"))

    async with through(proxy, database_url, schema) as cut_off:
        with pytest.raises(ConnectionLost):
            await cut_off._run(Operation(lock_then_go_silent(), atomic=True), deadline=DEADLINE)

        # Past the row, straight to the server; the proxy stays cut meanwhile.
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as own:
            async def row_free() -> bool:
                try:
                    async with own.transaction():
                        await own.execute(lock.replace("FOR UPDATE", "FOR UPDATE NOWAIT"),
                                          {"id": job_id})
                except psycopg.errors.LockNotAvailable:
                    return False
                return True

            try:
                await wait_until(row_free, timeout=DEADLINE + 5)
            finally:
                proxy.restore()
