"""Dependencies between jobs, checked against a model: hypothesis sends random
flows (steps that depend on steps of the same flow and on existing jobs in any
state, with mixed ``on_failure`` policies) and applies random operations: fetch,
then complete, fail (retried or for good), or let the lease lapse and rescue;
settle a stale attempt; cancel, delete, resume and retry by hand. After every step
each job's state, attempt, retry count and ``waiting_for``, and every edge with its
ref, its policy and whether it is settled, must be what ``Model`` says: the
semantics in plain Python, written to be read as the specification. Invariants
read from the database alone must hold as well: a waiting job waits for an
unfinished dependency; a due or active job with dependencies has every one
settled, completed or ignored (unless it was put back by hand); a job a dependency
ended names one that ended so; a claimed step is given the outputs of exactly the
dependencies that completed.

The rescue pass is the worker's own plan (``conveyor._ops.claims.rescue``), run
directly, as in ``test_state_model.py``. The model leaves three cases out: a
flow on two running jobs (an edge it adds for a job waiting on both takes the
strictest of their policies), a flow on a waiting job that waits for a running
one, and a retry by hand of a step that still has dependencies to wait for; the
last two have a test of their own at the end.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
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
from conveyor._ops.dependencies import ON_FAILURE
from conveyor.errors import InvalidFlow, JobNotFound

WAITING = JobState.WAITING
FINISHED = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
UNFINISHED = (JobState.CREATED, JobState.RETRY, JobState.ACTIVE, WAITING)
DUE = (JobState.CREATED, JobState.RETRY)
LAPSED = '{"type": "LeaseExpired", "message": "the lease lapsed"}'


# --- the model --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dependency:
    target: str
    """A ref of the same flow, or an existing job's id."""
    is_ref: bool
    on_failure: str | None
    """The edge's own policy; ``None``: the step's."""


@dataclass(frozen=True)
class PlannedStep:
    ref: str
    depends_on: list[Dependency]
    on_dependency_failure: str | None
    """``None``: left out (``cancel``)."""
    retry_limit: int

    def as_sent(self, queue: str) -> dict[str, Any]:
        """The step as ``flow`` takes it."""
        entries = [d.target if d.on_failure is None
                   else {"ref": d.target, "on_failure": d.on_failure} for d in self.depends_on]
        policy = {} if self.on_dependency_failure is None else {
            "on_dependency_failure": self.on_dependency_failure}
        return {"ref": self.ref, "queue": queue, "data": {}, "retry_limit": self.retry_limit,
                "depends_on": entries, **policy}


@dataclass
class Modelled:
    state: JobState
    retry_limit: int
    has_dependencies: bool
    attempt: int = 0
    retry_count: int = 0
    output: str | None = None
    causes: frozenset[str] = frozenset()
    """When a dependency ended it: the dependencies whose edges carried its verdict."""
    by_hand: bool = False
    """Put back by hand (resumed or retried): it runs whatever its dependencies did."""


@dataclass
class Edge:
    ref: str | None
    """The dependency's ref in the flow; ``None``: read by its id."""
    on_failure: str
    settled: bool = False


@dataclass
class Model:
    """The semantics of dependencies between jobs, in plain Python."""

    jobs: dict[str, Modelled] = field(default_factory=dict)
    edges: dict[tuple[str, str], Edge] = field(default_factory=dict)
    """(dependent, dependency) -> the edge."""

    def waits_for(self, job_id: str) -> list[str]:
        """The dependencies of ``job_id`` not settled yet."""
        return [parent for (child, parent), edge in self.edges.items()
                if child == job_id and not edge.settled]

    def dependencies(self, job_id: str) -> dict[str, Edge]:
        return {parent: edge for (child, parent), edge in self.edges.items() if child == job_id}

    def add_flow(self, steps: list[PlannedStep], ids: dict[str, str]) -> None:
        """A step with dependencies waits; one without is due. A step on a running
        job extends that job: what waits for the job waits for the step (and for the
        steps after it in the flow) too, with the same policy. Dependencies that had
        finished already are settled at once."""
        for step in steps:
            self.jobs[ids[step.ref]] = Modelled(WAITING if step.depends_on else JobState.CREATED,
                                                step.retry_limit, bool(step.depends_on))
        for step in steps:
            for dependency in step.depends_on:
                parent = ids[dependency.target] if dependency.is_ref else dependency.target
                policy = dependency.on_failure or step.on_dependency_failure or "cancel"
                self.edges[ids[step.ref], parent] = Edge(
                    dependency.target if dependency.is_ref else None, policy)
        existing = {d.target for step in steps for d in step.depends_on if not d.is_ref}
        for parent in sorted(existing):
            if self.jobs[parent].state is JobState.ACTIVE:
                self._extend(parent, steps, ids)
        self.settle([parent for parent in sorted(existing) if self.jobs[parent].state in FINISHED])

    def _extend(self, parent: str, steps: list[PlannedStep], ids: dict[str, str]) -> None:
        """The jobs that wait for the running ``parent`` (none of the flow's own
        steps, and none a step depends on) wait for the steps after it too."""
        added = set(ids.values())
        after: set[str] = set()
        frontier = [parent]
        while frontier:
            done = frontier.pop()
            for step in steps:
                if ids[step.ref] not in after and any(
                        (ids[d.target] if d.is_ref else d.target) == done for d in step.depends_on):
                    after.add(ids[step.ref])
                    frontier.append(ids[step.ref])
        waiters = [(child, edge.on_failure) for (child, dependency), edge in self.edges.items()
                   if dependency == parent and not edge.settled and child not in added
                   and self.jobs[child].state is WAITING]
        for child, policy in waiters:
            for step_id in sorted(after):
                # A job the step depends on, through any edge, is not made to wait
                # for it: that would be a cycle.
                if child not in self._ancestors(step_id):
                    self.edges.setdefault((child, step_id), Edge(None, policy))

    def _ancestors(self, job_id: str) -> set[str]:
        """Every job ``job_id`` depends on, through edges settled or not."""
        seen: set[str] = set()
        frontier = [job_id]
        while frontier:
            current = frontier.pop()
            for child, parent in self.edges:
                if child == current and parent not in seen:
                    seen.add(parent)
                    frontier.append(parent)
        return seen

    def settle(self, finished: list[str], *, removing: bool = False) -> None:
        """What waits for ``finished``, jobs that just finished (or, ``removing``,
        are about to be deleted: they count as cancelled unless they completed).

        A completed dependency, or one that failed or was cancelled on an edge that
        says ``ignore``, is done: a waiting step with nothing left to wait for is
        released (``created``). Otherwise the edge's policy ends the waiting step
        (``cancel``: cancelled, ``fail``: failed, ``fail`` winning when both reach
        it), and the ending goes on through that step's own edges, each by its own
        policy. Every edge from a job that ended is settled."""
        ended: dict[str, JobState] = {}
        for job_id in finished:
            state = self.jobs[job_id].state
            if removing and state is not JobState.COMPLETED:
                state = JobState.CANCELLED
            if state in FINISHED:
                ended[job_id] = state
        reached: dict[str, dict[str, set[str]]] = {}  # step -> policy -> its causes
        frontier = [job_id for job_id, state in ended.items() if state is not JobState.COMPLETED]
        while frontier:
            cause = frontier.pop()
            for (child, parent), edge in self.edges.items():
                if (parent == cause and not edge.settled and edge.on_failure != "ignore"
                        and self.jobs[child].state is WAITING):
                    if child not in reached:
                        frontier.append(child)
                    reached.setdefault(child, {}).setdefault(edge.on_failure, set()).add(cause)
        for child, policies in reached.items():
            verdict = "fail" if "fail" in policies else "cancel"
            job = self.jobs[child]
            job.state = JobState.FAILED if verdict == "fail" else JobState.CANCELLED
            job.causes = frozenset(policies[verdict])
        for (_, parent), edge in self.edges.items():
            if parent in ended or parent in reached:
                edge.settled = True
        for job_id, job in self.jobs.items():
            if job.state is WAITING and not self.waits_for(job_id):
                job.state = JobState.CREATED

    def complete(self, job_id: str, output: str) -> None:
        job = self.jobs[job_id]
        job.state, job.output = JobState.COMPLETED, output
        self.settle([job_id])

    def fail(self, job_id: str, *, final: bool) -> None:
        job = self.jobs[job_id]
        if not final and job.retry_count < job.retry_limit:
            job.state, job.retry_count = JobState.RETRY, job.retry_count + 1
            return
        job.state = JobState.FAILED
        self.settle([job_id])

    def cancel(self, job_id: str) -> bool:
        if self.jobs[job_id].state not in UNFINISHED:
            return False
        self.jobs[job_id].state = JobState.CANCELLED
        self.settle([job_id])
        return True

    def delete(self, job_id: str) -> None:
        self.settle([job_id], removing=True)
        del self.jobs[job_id]
        self.edges = {pair: edge for pair, edge in self.edges.items() if job_id not in pair}

    def put_back(self, job_id: str) -> None:
        """Resumed or retried by hand: it waits again for what it still waits for."""
        job = self.jobs[job_id]
        job.state = WAITING if self.waits_for(job_id) else job.state
        job.causes, job.by_hand = frozenset(), True

    def resume(self, job_id: str) -> bool:
        if self.jobs[job_id].state is not JobState.CANCELLED:
            return False
        self.jobs[job_id].state = JobState.CREATED
        self.put_back(job_id)
        return True

    def retry(self, job_id: str) -> bool:
        job = self.jobs[job_id]
        if job.state is not JobState.FAILED:
            return False
        job.retry_limit = max(job.retry_limit, job.retry_count + 1)
        job.state, job.retry_count = JobState.RETRY, job.retry_count + 1
        self.put_back(job_id)
        return True

    def given(self, job_id: str) -> tuple[dict[str, Any], dict[str, int] | None]:
        """What a claim of ``job_id`` gives its handler: the outputs of the
        dependencies that completed, by ref (or id), and how many ended each way."""
        if not self.jobs[job_id].has_dependencies:
            return {}, None
        parents = self.dependencies(job_id)
        states = Counter(self.jobs[parent].state for parent in parents)
        return ({edge.ref or parent: self.jobs[parent].output for parent, edge in parents.items()
                 if self.jobs[parent].state is JobState.COMPLETED},
                {state.value: states[state] for state in FINISHED})


# --- the state machine ------------------------------------------------------------------


def test_the_database_always_agrees_with_a_model_of_dependencies(
    cv: Conveyor, schema: str, database_url: str
) -> None:
    queues = iter(range(10_000))
    outputs = iter(range(1_000_000))
    tables = {name: sql.Identifier(schema, name) for name in ("job", "job_dependency")}

    class Dependencies(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.queue = f"model-{next(queues)}"
            self.model = Model()
            self.held: dict[str, Job] = {}  # the Job of each id's latest claim
            self.stale: list[Job] = []  # Jobs of attempts that no longer hold
            self.deleted: list[str] = []

        @initialize()
        def connect(self) -> None:
            self.conn = psycopg.connect(database_url, autocommit=True)

        def teardown(self) -> None:
            conn = getattr(self, "conn", None)
            if conn is not None:
                conn.close()

        def _draw_job(self, data: st.DataObject, *states: JobState) -> str:
            """A job of the model, in one of ``states`` if any are given (one must be)."""
            return data.draw(st.sampled_from(sorted(
                i for i, job in self.model.jobs.items() if not states or job.state in states)))

        # --- steps -----------------------------------------------------------------

        @rule(data=st.data(), size=st.integers(1, 4))
        def flow(self, data: st.DataObject, size: int) -> None:
            """A random DAG: each step on earlier steps and on existing jobs in any
            state. A flow on a running job extends it. Such a flow depends on one
            running job at most (with two, an edge added for a job waiting for both
            takes the strictest policy, which the model does not follow), and on no
            waiting job (one waiting for the running job is not extended with a step
            that waits for it: a test at the end)."""
            jobs = self.model.jobs
            running = sorted(i for i, job in jobs.items() if job.state is JobState.ACTIVE)
            on_running = None
            if data.draw(st.booleans()) and running:
                on_running = data.draw(st.sampled_from(running))
            existing = ([on_running, *sorted(i for i, job in jobs.items()
                                            if job.state not in (JobState.ACTIVE, WAITING))]
                        if on_running else sorted(i for i in jobs if i not in running))
            policies = st.none() | st.sampled_from(ON_FAILURE)
            steps = []
            for n in range(size):
                refs = [f"s{k}" for k in range(n) if data.draw(st.booleans())]
                jobs_on = data.draw(st.lists(st.sampled_from(existing), max_size=2,
                                             unique=True)) if existing else []
                steps.append(PlannedStep(
                    f"s{n}", [Dependency(target, target in refs, data.draw(policies))
                              for target in [*refs, *jobs_on]],
                    data.draw(policies), data.draw(st.integers(0, 1))))
            ids = cv.flow([step.as_sent(self.queue) for step in steps])
            assert sorted(ids) == sorted(step.ref for step in steps)
            self.model.add_flow(steps, ids)

        @precondition(lambda self: self.deleted)
        @rule(data=st.data())
        def flow_on_a_deleted_job(self, data: st.DataObject) -> None:
            gone = data.draw(st.sampled_from(self.deleted))
            with pytest.raises(JobNotFound):
                cv.flow([{"ref": "late", "queue": self.queue, "depends_on": [gone]}])

        @rule(batch=st.integers(1, 4))
        def fetch(self, batch: int) -> None:
            due = [i for i, job in self.model.jobs.items() if job.state in DUE]
            claimed = cv.fetch(self.queue, batch_size=batch)
            assert len(claimed) == min(batch, len(due))
            for job in claimed:
                modelled = self.model.jobs[job.id]
                assert modelled.state in DUE
                outputs, counts = self.model.given(job.id)
                assert (job.dependency_outputs, job.dependency_counts) == (outputs, counts)
                modelled.state, modelled.attempt = JobState.ACTIVE, modelled.attempt + 1
                assert job.attempt == modelled.attempt
                if job.id in self.held:
                    self.stale.append(self.held[job.id])
                self.held[job.id] = job

        @precondition(lambda self: self.held)
        @rule(data=st.data(), outcome=st.sampled_from(["complete", "fail", "fail for good"]))
        def settle(self, data: st.DataObject, outcome: str) -> None:
            """Complete or fail a job's latest attempt: taken only while it holds."""
            job = data.draw(st.sampled_from(sorted(self.held.values(), key=lambda j: j.id)))
            modelled = self.model.jobs[job.id]
            holds = modelled.state is JobState.ACTIVE and modelled.attempt == job.attempt
            if outcome == "complete":
                output = f"output-{next(outputs)}"
                assert cv.complete(job, output) == int(holds)
                if holds:
                    self.model.complete(job.id, output)
            else:
                final = outcome == "fail for good"
                assert cv.fail(job, "boom", retry=not final) == int(holds)
                if holds:
                    self.model.fail(job.id, final=final)

        @precondition(lambda self: self.stale)
        @rule(data=st.data(), complete=st.booleans())
        def settle_a_stale_attempt(self, data: st.DataObject, complete: bool) -> None:
            job = data.draw(st.sampled_from(self.stale))
            assert (cv.complete(job, "late") if complete else cv.fail(job, "late")) == 0

        @precondition(lambda self: any(j.state is JobState.ACTIVE
                                       for j in self.model.jobs.values()))
        @rule(data=st.data())
        def lease_lapses_and_is_rescued(self, data: st.DataObject) -> None:
            job_id = self._draw_job(data, JobState.ACTIVE)
            self.conn.execute(sql.SQL(
                "UPDATE {} SET lease_expires_at = now() - interval '1 second' WHERE id = %s"
            ).format(tables["job"]), [job_id])
            assert cv._run(Operation(rescue(cv.context, 100, LAPSED), atomic=True)) == 1
            self.model.fail(job_id, final=False)

        @precondition(lambda self: self.model.jobs)
        @rule(data=st.data(), action=st.sampled_from(["cancel", "resume", "delete"]))
        def act_by_hand(self, data: st.DataObject, action: str) -> None:
            job_id = self._draw_job(data)
            if action == "delete":
                assert cv.delete(job_id) == 1
                self.model.delete(job_id)
                if job_id in self.held:
                    self.stale.append(self.held.pop(job_id))
                self.deleted.append(job_id)
            else:
                moved = getattr(self.model, action)(job_id)
                assert getattr(cv, action)(job_id) == int(moved)

        def _retriable(self) -> list[str]:
            """Failed jobs with nothing left to wait for (one that still waits for a
            dependency goes back to waiting: a test at the end)."""
            return sorted(i for i, job in self.model.jobs.items()
                          if job.state is JobState.FAILED and not self.model.waits_for(i))

        @precondition(lambda self: self._retriable())
        @rule(data=st.data())
        def retry_by_hand(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(self._retriable()))
            assert self.model.retry(job_id)
            assert cv.retry(job_id) == 1

        # --- the database agrees -------------------------------------------------------

        def _stored(self) -> tuple[dict[str, tuple[Any, ...]], dict[tuple[str, str], Edge]]:
            jobs = self.conn.execute(sql.SQL(
                "SELECT id::text, state::text, attempt, retry_count, waiting_for, error "
                "FROM {} WHERE queue = %s").format(tables["job"]), [self.queue]).fetchall()
            edges = self.conn.execute(sql.SQL(
                "SELECT d.job_id::text, d.depends_on::text, d.ref, d.on_failure, d.settled "
                "FROM {} AS d JOIN {} AS j ON j.id = d.job_id WHERE j.queue = %s"
            ).format(tables["job_dependency"], tables["job"]), [self.queue]).fetchall()
            return ({row[0]: row[1:] for row in jobs},
                    {(child, parent): Edge(ref, on_failure, settled)
                     for child, parent, ref, on_failure, settled in edges})

        @invariant()
        def the_database_agrees_with_the_model(self) -> None:
            if not hasattr(self, "conn"):
                return
            jobs, edges = self._stored()
            assert edges == self.model.edges
            assert {i: row[:4] for i, row in jobs.items()} == {
                i: (job.state.value, job.attempt, job.retry_count, len(self.model.waits_for(i)))
                for i, job in self.model.jobs.items()}

        @invariant()
        def dependencies_hold_in_the_database(self) -> None:
            """Read from the database alone, but for who was put back by hand and which
            dependencies could have ended a job. No queue here has a policy that
            could hold a released step back."""
            if not hasattr(self, "conn"):
                return
            jobs, edges = self._stored()
            states = {i: JobState(row[0]) for i, row in jobs.items()}
            for job_id, state in states.items():
                mine = {parent: edge for (child, parent), edge in edges.items()
                        if child == job_id}
                modelled = self.model.jobs.get(job_id, Modelled(state, 0, False))
                if state is WAITING:
                    assert any(not edge.settled for edge in mine.values()), job_id
                    assert all(states[parent] in UNFINISHED
                               for parent, edge in mine.items() if not edge.settled), job_id
                elif state in (*DUE, JobState.ACTIVE):
                    assert all(edge.settled for edge in mine.values()), job_id
                    assert modelled.by_hand or all(
                        edge.on_failure == "ignore" or states[parent] is JobState.COMPLETED
                        for parent, edge in mine.items()), job_id
                elif modelled.causes and state in (JobState.FAILED, JobState.CANCELLED):
                    error = jobs[job_id][4]
                    assert error["type"] == "dependency", job_id
                    assert error["dependency"] in modelled.causes, job_id

    run_state_machine_as_test(Dependencies, settings=settings(
        max_examples=50, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))


# --- cases the model leaves out ------------------------------------------------------------


def test_a_step_on_a_running_job_and_on_a_job_waiting_for_it_makes_no_cycle(
    cv: Conveyor,
) -> None:
    parent = cv.send("parent", {})
    [running] = cv.fetch("parent")
    waiter = cv.flow([{"ref": "waiter", "queue": "waiter", "depends_on": [parent]}])["waiter"]
    try:
        step = cv.flow([{"ref": "step", "queue": "step", "depends_on": [parent, waiter]}])["step"]
    except InvalidFlow:  # refusing the cycle is as good a fix as running both
        return
    cv.complete(running, "out")

    [first] = cv.fetch("waiter")
    cv.complete(first)
    [second] = cv.fetch("step")
    assert (first.id, second.id) == (waiter, step)


def test_a_step_retried_by_hand_still_waits_for_its_unfinished_dependencies(
    cv: Conveyor,
) -> None:
    ids = cv.flow([{"ref": "a", "queue": "a"}, {"ref": "b", "queue": "b"},
                   {"ref": "c", "queue": "c", "depends_on": ["a", "b"],
                    "on_dependency_failure": "fail"}])
    [a] = cv.fetch("a")
    cv.fail(a, "boom", retry=False)

    assert cv.retry(ids["c"]) == 1

    assert cv.fetch("c") == []
    job = cv.get_job(ids["c"])
    assert job is not None and job.state is WAITING
