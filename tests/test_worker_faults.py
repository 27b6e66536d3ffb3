"""Workers under faults: a killed worker process, SIGTERM, a PostgreSQL restart,
terminated backends, and the ``--processes`` supervisor.

Workers run in subprocesses (``worker_app.py``: queue ``work``, a sync handler that
records each execution in ``executions`` and then sleeps ``data["sleep"]``). Each
worker writes its log to a file, printed at teardown, so a failure shows what the
workers said. Every wait is bounded. The restart uses a PostgreSQL cluster of this
module's own, never the shared one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from processes import EXIT, Workers, alive, children, query, wait_until
from psycopg import sql

from conveyor import Conveyor
from conveyor.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow

QUEUE = "work"
DRAIN = 60.0  # seconds the jobs of a test may take to finish
STATES = ("created", "retry", "active", "completed", "cancelled", "failed")


# --- database helpers -------------------------------------------------------------------


def create_executions(dsn: str, schema: str) -> None:
    query(dsn, sql.SQL(
        "CREATE TABLE {}.executions (run uuid PRIMARY KEY, job_id uuid NOT NULL, "
        "attempt integer NOT NULL, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT now())"
    ).format(sql.Identifier(schema)))


def counts(dsn: str, schema: str) -> dict[str, int]:
    """Jobs of the queue by state (every state present)."""
    found = dict(query(dsn, sql.SQL(
        "SELECT state::text, count(*) FROM {}.job WHERE queue = %s GROUP BY state"
    ).format(sql.Identifier(schema)), [QUEUE]))
    return {state: int(found.get(state, 0)) for state in STATES}


def counts_or_none(dsn: str, schema: str) -> dict[str, int] | None:
    try:
        return counts(dsn, schema)
    except psycopg.OperationalError:  # the server is restarting
        return None


def executions(dsn: str, schema: str) -> list[tuple[str, int, int]]:
    """(job id, attempt, pid) of every recorded execution, in the order they started."""
    return [(str(job_id), attempt, pid) for job_id, attempt, pid in query(dsn, sql.SQL(
        "SELECT job_id, attempt, pid FROM {}.executions ORDER BY at, attempt"
    ).format(sql.Identifier(schema)))]


def jobs(dsn: str, schema: str) -> dict[str, tuple[str, int, int]]:
    """Job id -> (state, attempt, retry_count)."""
    return {str(job_id): (state, attempt, retry_count) for job_id, state, attempt, retry_count
            in query(dsn, sql.SQL(
                "SELECT id, state::text, attempt, retry_count FROM {}.job WHERE queue = %s"
            ).format(sql.Identifier(schema)), [QUEUE])}


def send_jobs(
    cv: Conveyor, sleeps: list[float], data: dict[str, Any] | None = None, **options: Any
) -> None:
    """One job per sleep, with ``data`` added to each one's data and ``options``."""
    items = [{"data": {"sleep": s, **(data or {})}, **options} for s in sleeps]
    assert cv.insert(QUEUE, items) == len(sleeps)


def tagged(dsn: str, tag: str) -> str:
    """The DSN with an application_name, so that a worker's backends can be told apart."""
    return psycopg.conninfo.make_conninfo(dsn, application_name=tag)


def terminate_backends(dsn: str, tag: str) -> int:
    """pg_terminate_backend on every backend named ``tag``; how many there were."""
    [(terminated,)] = query(
        dsn,
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE pid <> pg_backend_pid() AND application_name = %s",
        [tag],
    )
    return int(terminated)


@pytest.fixture
def app(database_url: str, schema: str) -> Iterator[Conveyor]:
    """A client on this test's schema, migrated, with the executions table made."""
    with Conveyor(database_url, schema=schema) as client:
        create_executions(database_url, schema)
        yield client


# --- a killed worker --------------------------------------------------------------------


def test_a_killed_worker_loses_no_job_and_reruns_only_what_it_was_running(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    concurrency = 10
    first = workers.script(database_url, schema, concurrency=concurrency, lease=3, rescue=1)
    second = workers.script(database_url, schema, concurrency=concurrency, lease=3, rescue=1)
    first.wait_started()
    second.wait_started()
    total = 300
    send_jobs(app, [0.05 + 0.05 * (n % 11) / 10 for n in range(total)])

    def both_busy() -> bool:
        pids = {pid for _, _, pid in executions(database_url, schema)}
        return {first.pid, second.pid} <= pids and counts(database_url, schema)["completed"] >= 60

    wait_until(both_busy, DRAIN, "both workers to complete jobs")
    first.signal(signal.SIGKILL)
    assert first.wait_exit() == -signal.SIGKILL
    # What the killed worker was running: active attempts it had started. Its leases
    # last 3 s, so nothing of it is rescued yet.
    [(running_at_kill,)] = query(database_url, sql.SQL(
        "SELECT array_agg(DISTINCT e.job_id::text) FROM {s}.executions AS e "
        "JOIN {s}.job AS j ON j.id = e.job_id AND j.attempt = e.attempt "
        "WHERE e.pid = %s AND j.state = 'active'"
    ).format(s=sql.Identifier(schema)), [first.pid])
    interrupted = set(running_at_kill or [])
    replacement = workers.script(database_url, schema, concurrency=concurrency, lease=3, rescue=1)

    wait_until(lambda: counts(database_url, schema)["completed"] == total, DRAIN,
               f"all {total} jobs to complete")

    assert counts(database_url, schema) == {**dict.fromkeys(STATES, 0), "completed": total}
    assert interrupted, "the kill came when the worker ran nothing: the test proved nothing"
    # In flight at the kill: the handlers running (at most `concurrency`) and the
    # outcomes still in the completer's few-millisecond window, not yet written.
    assert len(interrupted) <= 2 * concurrency
    runs: dict[str, list[tuple[int, int]]] = {}
    for job_id, attempt, pid in executions(database_url, schema):
        runs.setdefault(job_id, []).append((attempt, pid))
    assert len(runs) == total  # every job ran
    again = {job_id for job_id, run in runs.items() if len(run) > 1}
    assert again <= interrupted, "jobs that were not running in the killed worker ran twice"
    for job_id in again:
        attempts = [attempt for attempt, _ in runs[job_id]]
        pids = [pid for _, pid in runs[job_id]]
        assert attempts == sorted(set(attempts)), (job_id, runs[job_id])
        assert pids[0] == first.pid and first.pid not in pids[1:], (job_id, runs[job_id])
    assert second.process.poll() is None and replacement.process.poll() is None


# --- SIGTERM ----------------------------------------------------------------------------


def test_sigterm_hands_unfinished_jobs_back_without_counting_an_attempt(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    worker = workers.cli(database_url, schema, "--shutdown-timeout", "1", concurrency=3)
    worker.wait_started()
    send_jobs(app, [3.0] * 6)  # twice the concurrency, each longer than the timeout
    wait_until(lambda: len(executions(database_url, schema)) == 3, DRAIN, "3 jobs to start")

    worker.signal(signal.SIGTERM)

    assert worker.wait_exit() == 0
    started = {job_id for job_id, _, _ in executions(database_url, schema)}
    assert len(started) == 3
    states = jobs(database_url, schema)
    assert counts(database_url, schema)["active"] == 0
    for job_id in started:  # back in the queue, this attempt not counted as a failure
        assert states[job_id] == ("created", 1, 0), states[job_id]
    for job_id in states.keys() - started:  # never claimed
        assert states[job_id] == ("created", 0, 0), states[job_id]


def test_a_job_is_not_handed_back_while_its_handler_still_runs(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    worker = workers.cli(database_url, schema, "--shutdown-timeout", "1", concurrency=1)
    worker.wait_started()
    send_jobs(app, [6.0], {"ignore_cancel": True})  # a handler that never looks at job.cancelled
    wait_until(lambda: len(executions(database_url, schema)) == 1, DRAIN, "the job to start")
    [job_id] = jobs(database_url, schema)

    worker.signal(signal.SIGTERM)
    wait_until(lambda: "worker stopped" in worker.text() or worker.process.poll() is not None,
               EXIT, "the worker to stop")

    # Handed back (start_after is set then), but only once the 6 s handler returned.
    [(state, ran_for)] = query(database_url, sql.SQL(
        "SELECT j.state::text, extract(epoch FROM j.start_after - e.at) "
        "FROM {schema}.job AS j JOIN {schema}.executions AS e ON e.job_id = j.id"
    ).format(schema=sql.Identifier(schema)))
    assert state == "created"
    assert ran_for >= 5.9, f"job {job_id} was handed back {ran_for:.1f} s into its handler"


def test_sigterm_lets_running_jobs_finish_within_the_shutdown_timeout(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    worker = workers.cli(database_url, schema, "--shutdown-timeout", "30", concurrency=3)
    worker.wait_started()
    send_jobs(app, [1.5] * 6)
    wait_until(lambda: len(executions(database_url, schema)) == 3, DRAIN, "3 jobs to start")

    worker.signal(signal.SIGTERM)

    assert worker.wait_exit() == 0
    started = {job_id for job_id, _, _ in executions(database_url, schema)}
    assert len(started) == 3  # nothing new was claimed after the signal
    states = jobs(database_url, schema)
    assert {states[job_id][0] for job_id in started} == {"completed"}
    assert {states[job_id] for job_id in states.keys() - started} == {("created", 0, 0)}


# --- the database goes away -------------------------------------------------------------


def test_a_worker_recovers_by_itself_from_a_postgres_restart(
    private_server: EmbeddedPostgres, workers: Workers
) -> None:
    dsn = private_server.url
    schema = f"restart_{uuid.uuid4().hex[:12]}"
    total = 500
    with Conveyor(dsn, schema=schema) as client:
        create_executions(dsn, schema)
        worker = workers.script(dsn, schema, lease=3, rescue=1)
        worker.wait_started()
        send_jobs(client, [0.02 + 0.02 * (n % 3) for n in range(total)], retry_limit=10)
    wait_until(lambda: counts(dsn, schema)["completed"] >= 100, DRAIN, "100 jobs to complete")
    assert counts(dsn, schema)["completed"] < total, "the jobs finished before the restart"

    private_server.restart()
    restarted = time.time()

    def all_completed() -> bool:
        found = counts_or_none(dsn, schema)
        return found is not None and found["completed"] == total

    wait_until(all_completed, DRAIN, f"all {total} jobs to complete after the restart")
    assert counts(dsn, schema) == {**dict.fromkeys(STATES, 0), "completed": total}
    assert worker.process.poll() is None, "the worker died"
    [(after, pids)] = query(dsn, sql.SQL(
        "SELECT count(*), array_agg(DISTINCT pid) FROM {}.executions WHERE at > to_timestamp(%s)"
    ).format(sql.Identifier(schema)), [restarted])
    assert after > 0 and pids == [worker.pid]  # the same process ran jobs after the restart


def test_a_worker_survives_its_backends_being_terminated(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    tag = f"conveyor-worker-{uuid.uuid4().hex[:8]}"
    worker = workers.script(tagged(database_url, tag), schema, lease=3, rescue=1,
                            recorder_name=f"{tag}-recorder")
    worker.wait_started()
    total = 500
    send_jobs(app, [0.08] * total, retry_limit=10)  # about 4 s of work at concurrency 10
    wait_until(lambda: counts(database_url, schema)["completed"] >= 50, DRAIN,
               "50 jobs to complete")

    terminated = []
    for _ in range(3):
        assert counts(database_url, schema)["completed"] < total, "the jobs finished too soon"
        terminated.append(terminate_backends(database_url, tag))
        time.sleep(1)

    wait_until(lambda: counts(database_url, schema)["completed"] == total, DRAIN,
               f"all {total} jobs to complete")
    assert all(n >= 1 for n in terminated), terminated  # each round hit the worker
    assert counts(database_url, schema) == {**dict.fromkeys(STATES, 0), "completed": total}
    assert worker.process.poll() is None, "the worker died"


# --- the supervisor ---------------------------------------------------------------------


def test_the_cli_runs_several_processes_and_sigterm_stops_them_all(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    supervisor = workers.cli(database_url, schema, "--processes", "2",
                             "--shutdown-timeout", "20", concurrency=4)
    supervisor.wait_started(count=2)
    workers.adopt(children(supervisor.pid))
    send_jobs(app, [0.3] * 40)
    wait_until(lambda: len({pid for _, _, pid in executions(database_url, schema)}) == 2,
               DRAIN, "both processes to run jobs")

    supervisor.signal(signal.SIGTERM)

    assert supervisor.wait_exit() == 0
    pids = {pid for _, _, pid in executions(database_url, schema)}
    assert supervisor.pid not in pids
    assert not [pid for pid in pids if alive(pid)], "worker processes outlived the supervisor"
    assert counts(database_url, schema)["active"] == 0


def test_sigterm_during_the_replacement_of_a_dead_worker_process_stops_everything(
    app: Conveyor, database_url: str, schema: str, workers: Workers
) -> None:
    supervisor = workers.cli(database_url, schema, "--processes", "2", concurrency=2)
    supervisor.wait_started(count=2)
    victim = min(children(supervisor.pid))
    workers.adopt(children(supervisor.pid))
    os.kill(victim, signal.SIGKILL)
    # The supervisor logs this, then waits a second before starting the replacement.
    wait_until(lambda: "starting another" in supervisor.text(), EXIT,
               "the supervisor to notice the dead worker process")

    supervisor.signal(signal.SIGTERM)

    with contextlib.suppress(subprocess.TimeoutExpired):
        supervisor.process.wait(10)
    assert supervisor.process.poll() is not None, (
        f"the supervisor still runs 10 s after SIGTERM, waiting for {children(supervisor.pid)}")
