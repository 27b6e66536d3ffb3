"""Dependencies between jobs: ``flow`` (steps that wait for others), ``batch`` (jobs
with a callback once all have finished), the edges of a job, and the plans that
settle what waits for jobs that finished.

A step with dependencies is written ``waiting`` (not claimable) with
``waiting_for`` counting its unsettled edges. Whatever finishes a job (a
completion, a final failure, a cancel, an expiry, a delete) runs
``settle_dependents.sql`` next, in the same transaction: completed dependencies
count their dependents down and release them at 0; failed or cancelled ones
apply each edge's ``on_failure``. The statement names no queue and scans no
waiting job: it starts from the edges of the jobs that finished.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from conveyor._db import statements
from conveyor._db.plan import Context, Copy, Execute, Operation, Plan
from conveyor._db.queries import Statement
from conveyor._db.rows import JobRef, job_from_row
from conveyor._db.session import UuidInt
from conveyor._ops import options as _options
from conveyor._ops import validate
from conveyor._ops.enqueue import FlowStep, _uuid7s, insert_steps
from conveyor.errors import InvalidFlow, InvalidOption, JobNotFound, PolicyViolation
from conveyor.job import Job

ON_FAILURE: Final = ("cancel", "ignore", "fail")
"""What a dependent does when a job it depends on fails for good or is cancelled."""
_FLOW_KEYS: Final = ("ref", "queue", "depends_on", "on_dependency_failure")
_STEP_KEYS: Final = (*_FLOW_KEYS, "data", *_options.JOB_OPTIONS)
_FINISHED: Final = frozenset(("completed", "failed", "cancelled"))
_EDGE_TYPES: Final = ("uuid", "uuid", "text", "text")
"""The binary COPY types of ``flow_edges.sql``'s columns (the ids as integers)."""


# --- settling: run by every operation that finishes jobs ------------------------------


def settle(ctx: Context, ids: Sequence[Any], *, removing: bool = False) -> Execute:
    """The step that settles what waits for ``ids`` (which just finished, or, with
    ``removing``, are about to be deleted), in the transaction that finished them."""
    return Execute(statements.SETTLE_DEPENDENTS,
                   {"ids": ids, "removing": removing, "channel": ctx.queries.schema})


def finish(ctx: Context, statement: Statement, params: Mapping[str, Any],
           ids: Sequence[Any] | None = None) -> Plan[Any]:
    """Runs a statement that finishes jobs, then settles their dependents; returns
    the statement's result. ``ids`` are the jobs it may have finished, or ``None``
    for the ids of the rows it returns."""
    result = yield Execute(statement, params)
    finished = [row["id"] for row in result] if ids is None else ids
    if finished:
        yield settle(ctx, finished)
    return result


def release_held(ctx: Context, limit: int = 1000) -> Plan[int]:
    """Releases held steps whose policy key is free (``release_held.sql``); the
    leader's maintenance runs it every second."""
    row = yield Execute(statements.RELEASE_HELD, {"limit": limit, "channel": ctx.queries.schema})
    return int(row["released"])


# --- flows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Edge:
    parent: str | uuid.UUID
    """A ref of the same flow (str), or an existing job's id."""
    on_failure: str


@dataclass(slots=True)
class _Step:
    ref: str
    queue: str
    row: _options.JobRow
    """Without the id, unless the caller gave it."""
    edges: list[_Edge]
    """One to each job it waits for."""
    id: uuid.UUID


def _edge(entry: object, refs: set[str], policy: str, ref: str) -> _Edge:
    on_failure = policy
    if isinstance(entry, Mapping):
        unknown = {k: v for k, v in entry.items() if k not in ("ref", "on_failure")}
        validate.unknown_options(unknown, ("ref", "on_failure"), "depends_on key")
        on_failure = _policy(entry.get("on_failure", policy), f"step {ref!r}: on_failure")
        entry = entry.get("ref")
    if isinstance(entry, str) and entry in refs:
        if entry == ref:
            raise InvalidFlow(f"step {ref!r} depends on itself")
        return _Edge(entry, on_failure)
    if isinstance(entry, Job | uuid.UUID):
        return _Edge(validate.job_id(entry), on_failure)
    if isinstance(entry, str):
        try:
            return _Edge(uuid.UUID(entry), on_failure)
        except ValueError:
            pass
    raise InvalidFlow(f"step {ref!r} depends on {entry!r}, which is neither a ref of this "
                      f"flow ({', '.join(sorted(refs))}) nor a job id")


def _policy(value: object, argument: str) -> str:
    if value not in ON_FAILURE:
        raise InvalidOption(f"{argument} must be one of {', '.join(ON_FAILURE)}, not {value!r}")
    return str(value)


def _check_order(steps: list[_Step]) -> None:
    """Refuses a cycle among the steps (Kahn's algorithm), naming steps on it."""
    waiting = {s.ref: {e.parent for e in s.edges if isinstance(e.parent, str)} for s in steps}
    dependents: dict[str, list[str]] = {s.ref: [] for s in steps}
    for ref, parents in waiting.items():
        for parent in parents:
            dependents[parent].append(ref)
    ready = [ref for ref, parents in waiting.items() if not parents]
    done = 0
    while ready:
        ref = ready.pop()
        done += 1
        for child in dependents[ref]:
            waiting[child].discard(ref)
            if not waiting[child]:
                ready.append(child)
    if done < len(steps):
        stuck = sorted(ref for ref, parents in waiting.items() if parents)
        raise InvalidFlow(f"the flow's dependencies form a cycle through {', '.join(stuck)}")


def _check_flow(ctx: Context, steps: object) -> list[_Step]:
    if isinstance(steps, Mapping | str) or not isinstance(steps, Iterable):
        raise InvalidFlow("a flow is a list of steps, each a mapping with a ref and a queue")
    raw = list(steps)
    if not raw:
        raise InvalidFlow("a flow needs at least one step")
    refs: set[str] = set()
    for index, step in enumerate(raw):
        if not isinstance(step, Mapping):
            raise InvalidFlow(f"step {index} must be a mapping, not {type(step).__name__}")
        ref = step.get("ref")
        if not isinstance(ref, str) or not ref:
            raise InvalidFlow(f"step {index} needs a ref (a non-empty string), not {ref!r}")
        validate.text(ref, f"step {index}: ref")
        if ref in refs:
            raise InvalidFlow(f"two steps have the ref {ref!r}; refs name steps, once each")
        refs.add(ref)
    ids = _uuid7s(datetime.now(UTC))
    checked = []
    for step in raw:
        ref = step["ref"]
        validate.unknown_options({k: v for k, v in step.items() if k not in _STEP_KEYS},
                                 _STEP_KEYS)
        if step.get("debounce_seconds") is not None:
            raise InvalidOption(f"step {ref!r}: a step of a flow cannot be debounced")
        queue = validate.queue_name(step.get("queue"), f"step {ref!r}: queue")
        policy = _policy(step.get("on_dependency_failure", "cancel"),
                         f"step {ref!r}: on_dependency_failure")
        depends_on = step.get("depends_on") or []
        if isinstance(depends_on, str | uuid.UUID | Job | Mapping):
            depends_on = [depends_on]
        # A parent named twice is waited for once, with the policy it was first named with.
        edges: dict[str | uuid.UUID, _Edge] = {}
        for entry in depends_on:
            edge = _edge(entry, refs, policy, ref)
            edges.setdefault(edge.parent, edge)
        item = {k: v for k, v in step.items() if k not in _FLOW_KEYS}
        row = _options.item_row(item, ctx.max_payload_bytes)  # raises on a bad option
        job_id = row.id if row.id is not None else uuid.UUID(int=next(ids))
        checked.append(_Step(ref, queue, row, list(edges.values()), job_id))
    _check_order(checked)
    return checked


def _existing_ancestors(steps: list[_Step]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(step, existing job) for each existing job a step depends on, directly or
    through other steps of the flow."""
    by_ref = {s.ref: s for s in steps}
    pairs = []
    for step in steps:
        seen: set[str] = set()
        frontier = [step]
        found: set[uuid.UUID] = set()
        while frontier:
            current = frontier.pop()
            for edge in current.edges:
                if isinstance(edge.parent, str):
                    if edge.parent not in seen:
                        seen.add(edge.parent)
                        frontier.append(by_ref[edge.parent])
                else:
                    found.add(edge.parent)
        pairs += [(step.id, job) for job in sorted(found, key=str)]
    return pairs


def _descendants(steps: list[_Step], parent: uuid.UUID) -> list[uuid.UUID]:
    """The steps that depend on ``parent``, directly or through other steps."""
    found: set[str] = set()
    by_ref = {s.ref: s for s in steps}
    frontier = [s.ref for s in steps if any(e.parent == parent for e in s.edges)]
    while frontier:
        ref = frontier.pop()
        if ref not in found:
            found.add(ref)
            frontier.extend(s.ref for s in steps
                            if any(e.parent == ref for e in s.edges))
    return [by_ref[ref].id for ref in sorted(found)]


def _write_flow(ctx: Context, steps: list[_Step]) -> Plan[dict[str, str]]:
    ids = {s.ref: s.id for s in steps}
    existing = sorted({e.parent for s in steps for e in s.edges
                       if isinstance(e.parent, uuid.UUID)}, key=str)
    states: dict[str, str] = {}
    if existing:
        rows = yield Execute(statements.MARK_WAITED, {"ids": existing})
        states = {row["id"]: row["state"] for row in rows}
        missing = [str(job_id) for job_id in existing if str(job_id) not in states]
        if missing:
            raise JobNotFound(f"the flow depends on jobs that do not exist: {', '.join(missing)}"
                              " (nothing was sent)")
    # Steps that extend a running job they depend on: what waits for that job will
    # wait for them too (flow_extend.sql).
    pairs = [(parent, step) for parent in existing if states[str(parent)] == "active"
             for step in _descendants(steps, parent)]
    waited = {ids[e.parent] for s in steps for e in s.edges if isinstance(e.parent, str)}
    waited.update(step for _, step in pairs)
    by_queue: dict[str, list[FlowStep]] = {}
    for s in steps:
        by_queue.setdefault(s.queue, []).append(
            FlowStep(s.id, s.row, len(s.edges), s.id in waited))
    # Steps written through the queue's unique indexes, made steps after.
    staged: list[FlowStep] = []
    for queue, queue_steps in by_queue.items():
        inserted, through_indexes = yield from insert_steps(ctx, queue, queue_steps)
        if inserted != len(queue_steps):
            raise PolicyViolation(
                f"queue {queue!r} turned away {len(queue_steps) - inserted} of the flow's "
                "steps (its policy, a throttle, or an id already used); nothing was sent")
        through = set(through_indexes)
        staged += (step for step in queue_steps
                   if step.id in through and (step.waiting_for or step.waited))
    # Before the flow's own edges, which would make its steps dependents too.
    if pairs:
        roots = _existing_ancestors(steps)
        yield Execute(statements.FLOW_EXTEND, {
            "parent": [p for p, _ in pairs], "step": [s for _, s in pairs],
            "root_step": [s for s, _ in roots], "root_job": [j for _, j in roots]})
    edges = [(s.id.int, (ids[e.parent] if isinstance(e.parent, str) else e.parent).int,
              e.parent if isinstance(e.parent, str) else None, e.on_failure)
             for s in steps for e in s.edges]
    if edges:
        yield Copy(statements.FLOW_EDGES, edges, _EDGE_TYPES, (UuidInt,))
    if staged:
        yield Execute(statements.FLOW_LINK, {"id": [s.id for s in staged],
                                             "waiting_for": [s.waiting_for for s in staged],
                                             "waited": [s.waited for s in staged]})
    finished = [job_id for job_id in existing if states[str(job_id)] in _FINISHED]
    if finished:
        yield settle(ctx, finished)
    return {ref: str(job_id) for ref, job_id in ids.items()}


def flow(ctx: Context, /, steps: Iterable[Mapping[str, Any]], *, conn: Any = None,
         ) -> Operation[dict[str, str]]:
    """Send jobs that wait for other jobs, in one transaction; returns each step's
    id by its ref.

    Each step is a mapping with a ``ref`` (its name in the flow), a ``queue``, its
    ``data`` and any of :meth:`send`'s options, and:

    - ``depends_on``: the steps it waits for, by ref, or existing jobs, by id. An
      entry may be ``{"ref": "parse", "on_failure": "ignore"}`` for a policy of its
      own.
    - ``on_dependency_failure``: what the step does when a job it depends on fails
      for good or is cancelled: ``"cancel"`` (the default) cancels it, and what
      depends on it in turn; ``"ignore"`` runs it all the same (that output is
      absent); ``"fail"`` fails it with an error naming the dependency.

    A step runs when every job it depends on has completed, and reads their
    outputs in ``job.dependency_outputs``. Steps added by a handler that depend on
    its own job extend that job: what waits for it also waits for them. Duplicate
    refs, unknown refs, cycles and bad options raise before anything is written;
    a step the queue's policy turns away raises :class:`PolicyViolation` and
    nothing is sent. With ``conn`` the flow commits with your transaction::

        ids = cv.flow([
            {"ref": "fetch", "queue": "download", "data": {"url": url}},
            {"ref": "parse", "queue": "parse", "depends_on": ["fetch"]},
            {"ref": "index", "queue": "index", "depends_on": ["parse"]},
        ])
    """
    checked = _check_flow(ctx, steps)
    return Operation(_write_flow(ctx, checked), conn, atomic=True)


class Batch(NamedTuple):
    """What :meth:`batch` sent: the items' ids, in order, and the callback's id."""

    ids: list[str]
    callback: str | None


def batch(ctx: Context, /, items: Iterable[Mapping[str, Any]], *, queue: str,
          on_complete: Mapping[str, Any] | None = None, conn: Any = None,
          ) -> Operation[Batch]:
    """Send ``items`` (mappings with ``data`` and any of :meth:`send`'s options, as
    :meth:`insert` takes them) to ``queue``, and with ``on_complete`` a callback
    job that runs once when every item has finished, however it ended.
    ``on_complete`` is a mapping with the callback's ``queue``, its ``data`` and
    any options; its handler reads the items' counts in ``job.dependency_counts``
    (``completed``, ``failed``, ``cancelled``) and their outputs in
    ``job.dependency_outputs``, by position (``"0"``, ``"1"``, ...)::

        sent = cv.batch([{"data": {"page": p}} for p in range(30)], queue="ocr",
                        on_complete={"queue": "ocr-done", "data": {"document": "d1"}})
    """
    name = validate.queue_name(queue)
    steps: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidOption(f"batch item {index} must be a mapping with data and "
                                f"options, not {type(item).__name__}")
        if "ref" in item or "queue" in item or "depends_on" in item:
            raise InvalidOption(f"batch item {index}: a batch names its items and their "
                                "queue itself (no ref, queue or depends_on)")
        steps.append({**item, "ref": str(index), "queue": name})
    if on_complete is not None:
        if not isinstance(on_complete, Mapping) or "queue" not in on_complete:
            raise InvalidOption("on_complete must be a mapping with the callback's queue, "
                                "and its data and options")
        steps.append({**on_complete, "ref": "on_complete",
                      "depends_on": [step["ref"] for step in steps],
                      "on_dependency_failure": "ignore"})
    checked = _check_flow(ctx, steps)

    def plan() -> Plan[Batch]:
        ids = yield from _write_flow(ctx, checked)
        callback = ids.pop("on_complete", None) if on_complete is not None else None
        return Batch([ids[str(index)] for index in range(len(ids))], callback)

    return Operation(plan(), conn, atomic=True)


# --- reading a job's edges ------------------------------------------------------------


class Link(NamedTuple):
    """One edge of a job, seen from either end: the job at the other end, the ref
    the dependent reads its output by (``None``: by id), the dependent's
    ``on_failure`` policy, and whether the edge was settled (its dependency
    finished)."""

    job: Job
    ref: str | None
    on_failure: str
    settled: bool


def links(ctx: Context, /, id: JobRef, *, dependents: bool = False, limit: int | None = None,
          after: JobRef | None = None, conn: Any = None) -> Operation[list[Link]]:
    """The edges of a job: what it waits for, or with ``dependents`` what waits for it,
    oldest job first; the first ``limit`` of them after the job ``after`` (the last
    of the page before: a batch's callback may wait for thousands)."""
    job_id = validate.job_id(id)
    if limit is not None:
        limit = validate.integer(limit, "limit", minimum=1)
    after = None if after is None else validate.job_id(after)
    statement = statements.JOB_DEPENDENTS if dependents else statements.JOB_DEPENDENCIES

    def plan() -> Plan[list[Link]]:
        rows = yield Execute(statement, {"id": job_id, "limit": limit, "after": after})
        return [Link(job_from_row(row[:-3]), *row[-3:]) for row in rows]

    return Operation(plan(), conn)


def _jobs(op: Operation[list[Link]]) -> Operation[list[Job]]:
    def plan() -> Plan[list[Job]]:
        return [link.job for link in (yield from op.plan)]

    return Operation(plan(), op.conn)


def get_dependencies(ctx: Context, /, id: JobRef, *, conn: Any = None) -> Operation[list[Job]]:
    """The jobs this job waits for (or waited for), oldest first."""
    return _jobs(links(ctx, id, conn=conn))


def get_dependents(ctx: Context, /, id: JobRef, *, conn: Any = None) -> Operation[list[Job]]:
    """The jobs that wait (or waited) for this job, oldest first."""
    return _jobs(links(ctx, id, dependents=True, conn=conn))
