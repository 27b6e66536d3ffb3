"""The chaos suite: three worker processes burn down a backlog while faults are
injected, on a PostgreSQL cluster of this module's own, and then every job is
checked one by one: all completed, none left active, each executed at least once,
and the jobs executed more than once no more than were in flight at the faults.

Workers are ``tests/worker_app.py`` (queue ``work``: a sync handler that records
every execution, with its job id, attempt and process, in ``executions`` through a
connection of its own). Scenarios:

1. ``SIGKILL`` a random worker every two seconds, and start a replacement;
2. restart PostgreSQL in the middle of the run;
3. ``pg_terminate_backend`` on every connection of the workers, every second;
4. every connection the server allows taken and held for five seconds;
5. a transaction left open (its snapshot held) for the rest of the run, which keeps
   vacuum and index clean-up from removing the dead rows of claims and completions;
6. the network between the workers and the database cut for ten seconds: the
   workers connect through a TCP proxy on 127.0.0.1 (``tcp_proxy.py``), which then
   moves no byte either way and accepts nothing, closing nothing, as a partition
   drops packets; afterwards the held bytes are delivered and the connections go on,
   as when a partition heals before TCP gives up. The workers record their
   executions beside the proxy, and run with a statement deadline of 2 s (scaled
   down like their leases), which abandons the statements the cut holds up.

Each scenario's figures (jobs, faults, lost, duplicates, seconds from the last
fault to the first job started after it and to the last job done) are printed,
and appended as JSON lines to ``$CONVEYOR_CHAOS_REPORT`` when it is set
(``docs/reliability.md`` is made from them). ``CONVEYOR_CHAOS_JOBS``
sets the backlog (20,000; at most 5,000 for the network cut, whose ten still
seconds would otherwise make it the longest scenario by far). The suite runs once
per test run: on the pass without ``CONVEYOR_TEST_DATABASE_URL`` (it never uses
that database anyway).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from processes import Workers, query, wait_until
from psycopg import sql
from tcp_proxy import TcpProxy
from test_worker_faults import STATES, counts_or_none, create_executions, terminate_backends

from conveyor import Conveyor
from conveyor.embedded import EmbeddedPostgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("CONVEYOR_TEST_DATABASE_URL")),
                       reason="the chaos suite runs on its own cluster, in the other pass"),
]

QUEUE = "work"
JOBS = int(os.environ.get("CONVEYOR_CHAOS_JOBS", "20000"))
CUT_JOBS = min(JOBS, 5000)
WORKERS = 3
CONCURRENCY = 10
DRAIN = 300.0  # seconds the whole backlog may take
CUT = 10.0  # seconds the network is cut
CUT_DEADLINE = 2.0  # the workers' statement deadline in the network cut


@dataclass
class Report:
    scenario: str
    jobs: int
    faults: int
    completed: int
    lost: int
    duplicates: int
    in_flight_bound: int
    seconds: float
    recovery_seconds: float
    """From the end of the faults to the first job started after them."""
    drain_seconds: float
    """From the end of the faults to the last job completed."""


@dataclass
class Chaos:
    dsn: str
    schema: str
    tag: str
    workers: Workers
    jobs: int
    worker_dsn: str | None = None
    """Where the workers connect, when not straight to ``dsn`` (a proxy)."""
    worker_settings: dict[str, Any] = field(default_factory=dict)
    """More APP_* settings of the workers (``worker_app.py``)."""

    def start_worker(self) -> int:
        worker = self.workers.script(
            psycopg.conninfo.make_conninfo(self.worker_dsn or self.dsn,
                                           application_name=self.tag),
            self.schema, concurrency=CONCURRENCY, lease=2, rescue=1,
            recorder_name=f"{self.tag}-recorder", recorder_dsn=self.dsn,
            **self.worker_settings)
        worker.wait_started()
        return worker.pid

    def live(self) -> list[int]:
        return [w.pid for w in self.workers.started if w.process.poll() is None]

    def completed(self) -> int:
        found = counts_or_none(self.dsn, self.schema)
        return -1 if found is None else found["completed"]

    def active(self) -> int:
        """Jobs claimed and not yet recorded as done: the only ones a fault can have
        run twice."""
        found = counts_or_none(self.dsn, self.schema)
        return -1 if found is None else found["active"]


@pytest.fixture
def chaos(
    request: pytest.FixtureRequest, private_server: EmbeddedPostgres, workers: Workers
) -> Iterator[Chaos]:
    """The backlog inserted, no worker started yet. Its size is ``JOBS`` unless the
    test gives another (``indirect`` parametrization)."""
    jobs: int = getattr(request, "param", JOBS)
    schema = f"chaos_{uuid.uuid4().hex[:12]}"
    with Conveyor(private_server.url, schema=schema) as client:
        create_executions(private_server.url, schema)
        # Short jobs, and attempts enough that faults never exhaust them.
        assert client.insert(QUEUE, [{"data": {"sleep": 0.002 * (n % 3)}, "retry_limit": 25}
                                     for n in range(jobs)]) == jobs
    yield Chaos(private_server.url, schema, f"chaos-{uuid.uuid4().hex[:8]}", workers, jobs)


@pytest.fixture
def private_proxy(private_server: EmbeddedPostgres) -> Iterator[TcpProxy]:
    """A TCP proxy on 127.0.0.1 in front of the module's cluster (which listens on a
    Unix socket only), for the network cut."""
    with TcpProxy(private_server.url) as proxy:
        yield proxy


def run(
    chaos: Chaos, scenario: str, inject: Callable[[], int],
    in_flight: Callable[[], int] | None = None,
) -> Report:
    """Start the workers, let ``inject`` cause faults while the backlog burns down
    (it returns how many), wait for every job, and check them one by one.
    ``in_flight``: the jobs in flight at the faults, measured by ``inject``; without
    it, the most each worker can hold per fault (its running handlers and the
    outcomes in its completer's window)."""
    jobs = chaos.jobs
    started = time.monotonic()
    for _ in range(WORKERS):
        chaos.start_worker()
    # The faults begin once the workers are well under way, early enough that on a
    # fast machine the backlog outlasts them (checked below).
    wait_until(lambda: chaos.completed() >= jobs // 20, DRAIN, "a twentieth of the jobs")
    faults = inject()
    last_fault, last_fault_at = time.monotonic(), time.time()
    assert 0 < chaos.completed() < jobs, "the faults came after the backlog was done"
    wait_until(lambda: chaos.completed() == jobs, DRAIN, f"all {jobs} jobs to complete")
    finished = time.monotonic()

    found = counts_or_none(chaos.dsn, chaos.schema)
    assert found == {**dict.fromkeys(STATES, 0), "completed": jobs}
    [(jobs_run,)] = query(chaos.dsn, sql.SQL(
        "SELECT count(DISTINCT job_id) FROM {}.executions").format(sql.Identifier(chaos.schema)))
    runs = Counter(job_id for (job_id,) in query(chaos.dsn, sql.SQL(
        "SELECT job_id FROM {}.executions").format(sql.Identifier(chaos.schema))))
    [(first_after,)] = query(chaos.dsn, sql.SQL(
        "SELECT extract(epoch FROM min(at)) FROM {}.executions WHERE at > to_timestamp(%s)"
    ).format(sql.Identifier(chaos.schema)), [last_fault_at])
    report = Report(
        scenario=scenario, jobs=jobs, faults=faults, completed=found["completed"],
        lost=jobs - int(jobs_run), duplicates=sum(1 for n in runs.values() if n > 1),
        # In flight at a fault: each worker's running handlers and the outcomes in its
        # completer's window, not yet written.
        in_flight_bound=(faults * WORKERS * 2 * CONCURRENCY if in_flight is None
                         else in_flight()),
        seconds=round(finished - started, 1),
        recovery_seconds=round(max(0.0, float(first_after) - last_fault_at), 2),
        drain_seconds=round(finished - last_fault, 1))
    print(json.dumps(asdict(report)))
    if path := os.environ.get("CONVEYOR_CHAOS_REPORT"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(report)) + "\n")
    assert report.lost == 0
    assert report.duplicates <= report.in_flight_bound
    return report


def test_workers_killed_again_and_again_lose_no_job(chaos: Chaos) -> None:
    def kill_and_replace() -> int:
        kills = 0
        for _ in range(4):
            if kills:  # the faults end with the last kill, not 2 s after it
                time.sleep(2)
            victim = random.choice(chaos.live())
            os.kill(victim, signal.SIGKILL)
            kills += 1
            chaos.start_worker()
        return kills

    run(chaos, "SIGKILL a random worker every 2 s, 4 times, and replace it", kill_and_replace)
    assert len(chaos.live()) == WORKERS


def test_a_postgres_restart_loses_no_job_and_the_workers_recover_by_themselves(
    chaos: Chaos, private_server: EmbeddedPostgres
) -> None:
    def restart() -> int:
        private_server.restart()
        return 1

    run(chaos, "restart PostgreSQL mid-run", restart)
    assert len(chaos.live()) == WORKERS, "a worker died instead of recovering"


def test_terminated_backends_lose_no_job_and_the_workers_recover_by_themselves(
    chaos: Chaos,
) -> None:
    def terminate() -> int:
        rounds = 0
        for _ in range(5):
            hit = terminate_backends(chaos.dsn, chaos.tag)
            hit += terminate_backends(chaos.dsn, f"{chaos.tag}-recorder")
            assert hit >= 1
            rounds += 1
            time.sleep(1)
        return rounds

    run(chaos, "pg_terminate_backend on every worker connection, every 1 s, 5 times", terminate)
    assert len(chaos.live()) == WORKERS, "a worker died instead of recovering"


def test_connections_exhausted_for_a_while_lose_no_job(chaos: Chaos) -> None:
    def exhaust() -> int:
        held: list[psycopg.Connection] = []
        try:
            for _ in range(500):  # bounded: max_connections is far below
                try:
                    held.append(psycopg.connect(chaos.dsn, connect_timeout=5))
                except psycopg.OperationalError as exc:
                    assert "too many" in str(exc) or "reserved" in str(exc), exc
                    break
            else:
                pytest.fail("the server never ran out of connections")
            time.sleep(5)
        finally:
            for conn in held:
                conn.close()
        return 1

    run(chaos, "every connection the server allows held for 5 s", exhaust)
    assert len(chaos.live()) == WORKERS, "a worker died instead of recovering"


def test_a_transaction_holding_back_vacuum_loses_no_job(chaos: Chaos) -> None:
    with psycopg.connect(chaos.dsn, autocommit=True) as blocker:
        blocker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        blocker.execute("SELECT count(*) FROM pg_class")  # takes the snapshot
        run(chaos, "a transaction holding its snapshot for the whole run", lambda: 1)
        [(xmin,)] = blocker.execute(
            "SELECT backend_xmin FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchall()
        assert xmin is not None  # its snapshot held vacuum back all along
        blocker.execute("ROLLBACK")


@pytest.mark.parametrize("chaos", [CUT_JOBS], indirect=True, ids=[f"{CUT_JOBS}-jobs"])
def test_a_network_cut_loses_no_job_and_the_workers_recover_by_themselves(
    chaos: Chaos, private_proxy: TcpProxy
) -> None:
    chaos.worker_dsn = private_proxy.dsn_through(chaos.dsn)
    chaos.worker_settings["statement_deadline"] = CUT_DEADLINE

    active_at_cut: list[int] = []

    def cut() -> int:
        private_proxy.cut()
        # Read past the proxy: what the cut caught claimed and not yet recorded done.
        # Outcomes held up in the cut can lose the race with rescue once it heals,
        # and a rescued job runs again; no other job can.
        active_at_cut.append(chaos.active())
        try:
            time.sleep(1)
            frozen = chaos.completed()
            time.sleep(CUT - 1)
            assert chaos.completed() == frozen, "jobs completed during the cut: it leaked"
        finally:
            private_proxy.restore()
        return 1

    run(chaos, f"network cut between workers and database for {CUT:g} s", cut,
        in_flight=lambda: active_at_cut[0])
    assert len(chaos.live()) == WORKERS, "a worker died instead of recovering"
    gave_up = f"did not answer within {CUT_DEADLINE:g} s"
    assert all(gave_up in worker.text() for worker in chaos.workers.started), (
        "a worker never gave a silent connection up: the cut did not test the deadline")
