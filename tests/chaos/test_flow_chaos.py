"""The chaos suite's flow scenario: three worker processes run many small flows
(chains, diamonds, and batches whose callback waits for every item: fan-out and
fan-in) while a worker is killed with ``SIGKILL`` again and again, at random
intervals, and replaced, on a PostgreSQL cluster of this module's own. New flows
are sent throughout the kills, so every kill finds flows half done; the victim is
drawn among the workers running a step at that moment. Then every step is checked
one by one:

- all completed, none left waiting, every edge settled;
- each ran, and ran again only after the lease of its earlier attempt lapsed (the
  rescue records a ``LeaseExpired`` error with that attempt): no attempt ran twice,
  and no step ran twice while its lease was healthy;
- no step started before every dependency had completed: each execution, and the
  claim of the attempt that completed (``started_at``), is later than every
  dependency's ``completed_at``, and was given every dependency's output;
- each output is the step's own value plus those of its dependencies, worked out
  again here from the flows sent: an output read early or twice would show.

Workers are ``tests/dependency_app.py`` (queues ``step`` and ``join``, a handler
that records each execution through a connection of its own). The figures are
printed, and appended to ``$CONVEYOR_CHAOS_REPORT`` as ``test_chaos.py`` does.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pytest
from processes import WorkerProcess, Workers, query, wait_until
from psycopg import sql
from test_chaos import Report

from conveyor import Conveyor
from conveyor.embedded import EmbeddedPostgres
from conveyor.errors import LeaseExpired

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("CONVEYOR_TEST_DATABASE_URL")),
                       reason="the chaos suite runs on its own cluster, in the other pass"),
]

WORKERS = 3
CONCURRENCY = 10  # per queue and worker
QUEUES = 2
KILLS = 5
KILL_GAP = (0.5, 1.5)  # seconds between two kills, drawn at random
WAVE_GAP = 0.2  # seconds between two waves of new flows
ATTEMPTS = 25  # retries enough that the kills never exhaust them
DRAIN = 60.0  # seconds the steps may take to finish after the last kill
LEASE_EXPIRED = f"{LeaseExpired.__module__}.{LeaseExpired.__qualname__}"  # a rescue's error

# Flows by shape: each step's refs of the steps it depends on.
CHAIN = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "e": ["d"]}
DIAMOND = {"top": [], "left": ["top"], "right": ["top"], "bottom": ["left", "right"]}
BATCH = 6  # items of a batch, whose callback waits for all of them


@dataclass(frozen=True)
class Sent:
    value: int
    dependencies: list[str]


def _value() -> int:
    return random.randint(1, 9)


def _data(value: int) -> dict[str, Any]:
    return {"value": value, "sleep": random.uniform(0.01, 0.1)}


def send_flow(cv: Conveyor, shape: dict[str, list[str]], sent: dict[str, Sent]) -> None:
    """A flow of ``shape``; steps with more than one dependency go to ``join``."""
    values = {ref: _value() for ref in shape}
    ids = cv.flow([{"ref": ref, "queue": "join" if len(parents) > 1 else "step",
                    "data": _data(values[ref]), "depends_on": parents, "retry_limit": ATTEMPTS}
                   for ref, parents in shape.items()])
    for ref, parents in shape.items():
        sent[ids[ref]] = Sent(values[ref], [ids[parent] for parent in parents])


def send_batch(cv: Conveyor, sent: dict[str, Sent]) -> None:
    values, callback_value = [_value() for _ in range(BATCH)], _value()
    ids, callback_id = cv.batch(
        [{"data": _data(value), "retry_limit": ATTEMPTS} for value in values], queue="step",
        on_complete={"queue": "join", "data": _data(callback_value), "retry_limit": ATTEMPTS})
    assert callback_id is not None
    for job_id, value in zip(ids, values, strict=True):
        sent[job_id] = Sent(value, [])
    sent[callback_id] = Sent(callback_value, ids)


def send_wave(cv: Conveyor, sent: dict[str, Sent]) -> None:
    send_flow(cv, CHAIN, sent)
    send_flow(cv, CHAIN, sent)
    send_flow(cv, DIAMOND, sent)
    send_batch(cv, sent)


def expected_value(job_id: str, sent: dict[str, Sent], memo: dict[str, int]) -> int:
    if job_id not in memo:
        step = sent[job_id]
        memo[job_id] = step.value + sum(expected_value(d, sent, memo) for d in step.dependencies)
    return memo[job_id]


@dataclass(frozen=True)
class Stored:
    state: str
    attempt: int
    started_at: datetime
    completed_at: datetime
    output: Any
    lapsed: frozenset[int]
    """The attempts whose lease lapsed (rescued)."""


@dataclass(frozen=True)
class Execution:
    job_id: str
    attempt: int
    pid: int
    outputs: int
    """How many dependency outputs the handler was given."""
    at: datetime


def stored_jobs(dsn: str, schema: str) -> dict[str, Stored]:
    rows = query(dsn, sql.SQL(
        "SELECT id::text, state::text, attempt, started_at, completed_at, output, errors "
        "FROM {}.job").format(sql.Identifier(schema)))
    return {job_id: Stored(state, attempt, started_at, completed_at, output, frozenset(
        int(error["attempt"]) for error in errors or [] if error.get("type") == LEASE_EXPIRED))
        for job_id, state, attempt, started_at, completed_at, output, errors in rows}


def executions(dsn: str, schema: str) -> list[Execution]:
    return [Execution(*row) for row in query(dsn, sql.SQL(
        "SELECT job_id::text, attempt, pid, outputs, at FROM {}.executions ORDER BY at"
    ).format(sql.Identifier(schema)))]


def edges(dsn: str, schema: str) -> dict[tuple[str, str], bool]:
    """(dependent, dependency) -> settled."""
    return {(job_id, depends_on): settled for job_id, depends_on, settled in query(dsn, sql.SQL(
        "SELECT job_id::text, depends_on::text, settled FROM {}.job_dependency"
    ).format(sql.Identifier(schema)))}


def running_steps(dsn: str, schema: str) -> set[int]:
    """The processes running a step now (its attempt active, its handler started)."""
    return {pid for (pid,) in query(dsn, sql.SQL(
        "SELECT DISTINCT e.pid FROM {s}.executions AS e "
        "JOIN {s}.job AS j ON j.id = e.job_id AND j.attempt = e.attempt "
        "WHERE j.state = 'active'").format(s=sql.Identifier(schema)))}


def completed(dsn: str, schema: str) -> int:
    [(count,)] = query(dsn, sql.SQL(
        "SELECT count(*) FROM {}.job WHERE state = 'completed'").format(sql.Identifier(schema)))
    return int(count)


def test_killed_workers_run_every_step_once_per_lease_and_never_before_its_dependencies(
    private_server: EmbeddedPostgres, workers: Workers
) -> None:
    dsn = private_server.url
    schema = f"chaos_flow_{uuid.uuid4().hex[:12]}"

    def start_worker() -> WorkerProcess:
        return workers.script(dsn, schema, app="dependency_app.py", concurrency=CONCURRENCY,
                              lease=2, rescue=1)

    def running() -> list[WorkerProcess]:
        return [w for w in workers.started
                if w.process.poll() is None and "worker started" in w.text()]

    sent: dict[str, Sent] = {}
    killed: set[int] = set()
    with Conveyor(dsn, schema=schema) as cv:
        query(dsn, sql.SQL(
            "CREATE TABLE {}.executions (job_id uuid NOT NULL, attempt integer NOT NULL, "
            "pid integer NOT NULL, outputs integer NOT NULL, "
            "at timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(schema)))
        started = time.monotonic()
        for _ in range(WORKERS):
            start_worker().wait_started()
        replacement: WorkerProcess | None = None
        next_kill = time.monotonic() + random.uniform(*KILL_GAP)
        while len(killed) < KILLS:
            send_wave(cv, sent)
            if time.monotonic() >= next_kill:
                if replacement is not None:  # never down to fewer than two workers
                    replacement.wait_started()
                candidates = running()
                busy = running_steps(dsn, schema)
                victim = random.choice([w for w in candidates if w.pid in busy] or candidates)
                victim.signal(signal.SIGKILL)
                assert victim.wait_exit() == -signal.SIGKILL
                killed.add(victim.pid)
                last_kill, last_kill_at = time.monotonic(), time.time()
                replacement = start_worker()
                next_kill = time.monotonic() + random.uniform(*KILL_GAP)
            time.sleep(WAVE_GAP)
        wait_until(lambda: completed(dsn, schema) == len(sent), DRAIN,
                   f"all {len(sent)} steps to complete")
        finished = time.monotonic()
        assert replacement is not None
        replacement.wait_started()

    jobs = stored_jobs(dsn, schema)
    runs = executions(dsn, schema)
    lost = len(sent.keys() - {run.job_id for run in runs})
    assert {job_id: job.state for job_id, job in jobs.items()} == dict.fromkeys(sent, "completed")
    assert edges(dsn, schema) == {(job_id, parent): True for job_id, step in sent.items()
                                  for parent in step.dependencies}

    # Once per lease: an attempt runs once, and a step runs again only when the lease
    # of its earlier attempt lapsed.
    per_attempt = Counter((run.job_id, run.attempt) for run in runs)
    assert [key for key, n in per_attempt.items() if n > 1] == []
    assert [job_id for job_id, job in jobs.items()
            if (job_id, job.attempt) not in per_attempt] == [], "the completing attempt never ran"
    again = [run for run in runs if run.attempt != jobs[run.job_id].attempt]
    assert [run for run in again if run.attempt not in jobs[run.job_id].lapsed] == []
    assert again, "the kills interrupted no step: the test proved nothing"

    # Never before the dependencies: every execution, and the claim that completed,
    # came after each dependency completed, and was given each one's output.
    early = [(run.job_id, parent) for run in runs for parent in sent[run.job_id].dependencies
             if run.at <= jobs[parent].completed_at]
    assert early == []
    assert [(job_id, parent) for job_id, step in sent.items() for parent in step.dependencies
            if jobs[job_id].started_at <= jobs[parent].completed_at] == []
    assert [run for run in runs if run.outputs != len(sent[run.job_id].dependencies)] == []
    memo: dict[str, int] = {}
    assert {job_id: job.output for job_id, job in jobs.items()} == {
        job_id: {"value": expected_value(job_id, sent, memo)} for job_id in sent}

    assert len(running()) == WORKERS
    after = [run.at.timestamp() for run in runs if run.at.timestamp() > last_kill_at]
    report = Report(
        scenario=f"flows (chains, diamonds, batches) with a worker SIGKILLed {KILLS} times",
        jobs=len(sent), faults=KILLS, completed=len(sent), lost=lost,
        duplicates=len({run.job_id for run in again}),
        in_flight_bound=KILLS * 2 * QUEUES * CONCURRENCY,
        seconds=round(finished - started, 1),
        recovery_seconds=round(max(0.0, min(after, default=last_kill_at) - last_kill_at), 2),
        drain_seconds=round(finished - last_kill, 1))
    print(json.dumps(asdict(report)),
          f"re-runs after a kill: {sum(run.pid in killed for run in again)} of {len(again)}")
    if path := os.environ.get("CONVEYOR_CHAOS_REPORT"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(report)) + "\n")
