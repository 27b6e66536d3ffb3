"""The job state machine, checked against a model: hypothesis runs random sequences
of send, fetch, complete and fail (also with a stale attempt), cancel, resume,
retry, delete, and lease expiry followed by the workers' rescue pass, and after
every step each job's state, attempt and retry count in the database must be what
the model says. The rescue pass is the worker's own plan (``conveyor._ops.claims.rescue``),
run directly rather than by waiting for a worker's timer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql

from conveyor import Conveyor, Job, JobState
from conveyor._db.plan import Operation
from conveyor._ops.claims import rescue

DUE = (JobState.CREATED, JobState.RETRY)
UNFINISHED = (JobState.CREATED, JobState.RETRY, JobState.ACTIVE)


@dataclass
class Modelled:
    state: JobState
    attempt: int = 0
    retry_count: int = 0
    retry_limit: int = 0


def test_the_database_always_agrees_with_a_model_of_the_job_state_machine(
    cv: Conveyor, schema: str, database_url: str
) -> None:
    queues = iter(range(10_000))

    class JobLife(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.queue = f"model-{next(queues)}"
            self.jobs: dict[str, Modelled] = {}
            self.held: dict[str, Job] = {}  # the Job of each id's latest claim
            self.stale: list[Job] = []  # Jobs of attempts that were claimed again since

        @initialize()
        def connect(self) -> None:
            self.conn = psycopg.connect(database_url, autocommit=True)

        def teardown(self) -> None:
            conn = getattr(self, "conn", None)
            if conn is not None:
                conn.close()

        def _failed_attempt(self, job: Modelled) -> None:
            if job.retry_count < job.retry_limit:
                job.state, job.retry_count = JobState.RETRY, job.retry_count + 1
            else:
                job.state = JobState.FAILED

        # --- steps -----------------------------------------------------------------

        @rule(retry_limit=st.integers(0, 2))
        def send(self, retry_limit: int) -> None:
            job_id = cv.send(self.queue, {"n": len(self.jobs)}, retry_limit=retry_limit)
            assert job_id is not None
            self.jobs[job_id] = Modelled(JobState.CREATED, retry_limit=retry_limit)

        @rule(batch=st.integers(1, 4))
        def fetch(self, batch: int) -> None:
            due = [i for i, job in self.jobs.items() if job.state in DUE]
            claimed = cv.fetch(self.queue, batch_size=batch)
            assert len(claimed) == min(batch, len(due))
            for job in claimed:
                modelled = self.jobs[job.id]
                assert modelled.state in DUE
                modelled.state, modelled.attempt = JobState.ACTIVE, modelled.attempt + 1
                assert job.state is JobState.ACTIVE and job.attempt == modelled.attempt
                if job.id in self.held:
                    self.stale.append(self.held[job.id])
                self.held[job.id] = job

        @precondition(lambda self: self.held)
        @rule(data=st.data(), complete=st.booleans())
        def settle(self, data: st.DataObject, complete: bool) -> None:
            """Complete or fail a job's latest attempt: taken only while it holds."""
            job = data.draw(st.sampled_from(sorted(self.held.values(), key=lambda j: j.id)))
            modelled = self.jobs[job.id]
            holds = modelled.state is JobState.ACTIVE and modelled.attempt == job.attempt
            settled = cv.complete(job, {"done": True}) if complete else cv.fail(job, "boom")
            assert settled == int(holds)
            if holds and complete:
                modelled.state = JobState.COMPLETED
            elif holds:
                self._failed_attempt(modelled)

        @precondition(lambda self: self.stale)
        @rule(data=st.data(), complete=st.booleans())
        def settle_a_stale_attempt(self, data: st.DataObject, complete: bool) -> None:
            job = data.draw(st.sampled_from(self.stale))
            assert (cv.complete(job) if complete else cv.fail(job, "late")) == 0

        @precondition(lambda self: self.jobs)
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            assert cv.delete(job_id) == 1
            del self.jobs[job_id]
            self.held.pop(job_id, None)

        @precondition(lambda self: self.jobs)
        @rule(data=st.data(), action=st.sampled_from(["cancel", "resume", "retry"]))
        def act_by_hand(self, data: st.DataObject, action: str) -> None:
            """cancel: any unfinished job; resume: a cancelled one; retry: a failed one
            (one more attempt allowed if none remain)."""
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            job = self.jobs[job_id]
            moves = {"cancel": job.state in UNFINISHED, "resume": job.state is JobState.CANCELLED,
                     "retry": job.state is JobState.FAILED}[action]
            assert getattr(cv, action)(job_id) == int(moves)
            if not moves:
                return
            if action == "cancel":
                job.state = JobState.CANCELLED
            elif action == "resume":
                job.state = JobState.CREATED
            else:
                job.retry_limit = max(job.retry_limit, job.retry_count + 1)
                job.state, job.retry_count = JobState.RETRY, job.retry_count + 1

        @precondition(lambda self: any(j.state is JobState.ACTIVE for j in self.jobs.values()))
        @rule(data=st.data())
        def lease_lapses_and_is_rescued(self, data: st.DataObject) -> None:
            active = sorted(i for i, job in self.jobs.items() if job.state is JobState.ACTIVE)
            job_id = data.draw(st.sampled_from(active))
            self.conn.execute(sql.SQL(
                "UPDATE {}.job SET lease_expires_at = now() - interval '1 second' WHERE id = %s"
            ).format(sql.Identifier(schema)), [job_id])
            error = '{"type": "LeaseExpired", "message": "the lease lapsed"}'
            rescued = cv._run(Operation(rescue(cv.context, 100, error), atomic=True))
            assert rescued == 1
            self._failed_attempt(self.jobs[job_id])

        # --- the database agrees -------------------------------------------------------

        @invariant()
        def the_database_agrees_with_the_model(self) -> None:
            if not hasattr(self, "conn"):
                return
            rows = self.conn.execute(sql.SQL(
                "SELECT id::text, state::text, attempt, retry_count FROM {}.job WHERE queue = %s"
            ).format(sql.Identifier(schema)), [self.queue]).fetchall()
            stored: dict[str, Any] = {row[0]: row[1:] for row in rows}
            expected = {i: (job.state.value, job.attempt, job.retry_count)
                        for i, job in self.jobs.items()}
            assert stored == expected

    run_state_machine_as_test(JobLife, settings=settings(
        max_examples=50, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
