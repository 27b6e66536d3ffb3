"""The drawing of a job's flow on its page: the jobs joined to it by dependencies,
walked both ways from it, in layers (each job to the right of every job it waits
for), as the boxes and curves of an inline SVG the template draws.

Each job of the walk costs two reads of its edges, and the page refreshes every
2 s, so the walk stops at ``MAX_NODES`` jobs: a larger flow (a batch of thousands)
is drawn in part, and the drawing says so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from conveyor.client import AsyncConveyor
from conveyor.job import Job
from conveyor.web.dashboard.shown_state import shown_state
from conveyor.web.job_links import Link, job_links

MAX_NODES = 50
"""Jobs in one drawing at most."""

NODE_WIDTH, NODE_HEIGHT = 168, 44
COLUMN_GAP, ROW_GAP = 56, 12
ARROW = 8
"""The arrowhead's length: a curve stops short of its box by that much."""
_LABEL_LENGTH = 22
"""Characters of a box's label (its ref, or its queue) that fit its width."""

Pair = tuple[str, str]
"""An edge: the id of the dependency, then the id of the job that waits for it."""


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A job's box: where it is, what it reads, and whether it is the page's job."""

    job: Job
    state: str
    label: str
    ref: str | None
    x: int
    y: int
    current: bool


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """A curve from a dependency's box to the box of the job that waits for it."""

    path: str
    link: Link
    dependency: GraphNode
    dependent: GraphNode


@dataclass(frozen=True, slots=True)
class FlowGraph:
    """The drawing: its boxes and curves, its size in pixels, and whether it holds
    every job of the flow."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: int
    height: int
    complete: bool
    node_width: int = NODE_WIDTH
    node_height: int = NODE_HEIGHT
    arrow: int = ARROW


async def flow_graph(
    cv: AsyncConveyor, job: Job, dependencies: list[Link], dependents: list[Link],
) -> FlowGraph:
    """The drawing of ``job``'s flow, given the edges of ``job`` already read."""
    jobs, edges, complete = await _walk(cv, job, dependencies, dependents)
    waits_for: dict[str, list[str]] = {job_id: [] for job_id in jobs}
    for dependency, dependent in edges:
        waits_for[dependent].append(dependency)
    return _drawn(job, jobs, edges, waits_for, complete)


async def _walk(
    cv: AsyncConveyor, start: Job, dependencies: list[Link], dependents: list[Link],
) -> tuple[dict[str, Job], dict[Pair, Link], bool]:
    """The jobs joined to ``start`` (at most ``MAX_NODES``, nearest first) and the
    edges among them; false when some joined job was left out."""
    jobs = {start.id: start}
    edges: dict[Pair, Link] = {}
    complete = True
    to_visit = deque([start.id])
    while to_visit:
        job_id = to_visit.popleft()
        ups, downs = (dependencies, dependents) if job_id == start.id else (
            await job_links(cv, job_id, limit=MAX_NODES + 1),
            await job_links(cv, job_id, dependents=True, limit=MAX_NODES + 1))
        ends = [(link, (link.job.id, job_id)) for link in ups]
        ends += [(link, (job_id, link.job.id)) for link in downs]
        for link, pair in ends:
            if link.job.id not in jobs:
                if len(jobs) == MAX_NODES:
                    complete = False
                    continue
                jobs[link.job.id] = link.job
                to_visit.append(link.job.id)
            edges[pair] = link
    return jobs, edges, complete


def _layers(waits_for: Mapping[str, list[str]]) -> dict[str, int]:
    """Each job's column: 0 for a job that waits for none of these, else one more
    than the furthest of those it waits for (Kahn's order)."""
    waited_by: dict[str, list[str]] = {job_id: [] for job_id in waits_for}
    for job_id, parents in waits_for.items():
        for parent in parents:
            waited_by[parent].append(job_id)
    unplaced = {job_id: len(parents) for job_id, parents in waits_for.items()}
    ready = deque(sorted(job_id for job_id, count in unplaced.items() if count == 0))
    layer: dict[str, int] = {}
    while ready:
        job_id = ready.popleft()
        layer[job_id] = max((layer[parent] + 1 for parent in waits_for[job_id]), default=0)
        for child in waited_by[job_id]:
            unplaced[child] -= 1
            if unplaced[child] == 0:
                ready.append(child)
    # Flows refuse cycles; should edges still form one, its jobs go last, not nowhere.
    last = max(layer.values(), default=-1) + 1
    return {job_id: layer.get(job_id, last) for job_id in waits_for}


def _label(text: str) -> str:
    return text if len(text) <= _LABEL_LENGTH else text[:_LABEL_LENGTH - 1] + "\u2026"


def _drawn(
    current: Job, jobs: Mapping[str, Job], edges: Mapping[Pair, Link],
    waits_for: Mapping[str, list[str]], complete: bool,
) -> FlowGraph:
    """Boxes in columns by layer; in each column, the jobs in the order of those
    they wait for (so that curves cross less), then oldest first."""
    layers = _layers(waits_for)
    columns: list[list[str]] = [[] for _ in range(max(layers.values()) + 1)]
    for job_id in sorted(jobs):
        columns[layers[job_id]].append(job_id)
    tallest = max(len(column) for column in columns)
    row: dict[str, float] = {}  # where a box stands, in rows from the top (columns centred)

    def after_parents(job_id: str) -> float:
        parents = [row[parent] for parent in waits_for[job_id] if parent in row]
        return sum(parents) / len(parents) if parents else 0.0

    for column in columns:
        column.sort(key=after_parents)  # a stable sort: oldest first among equals
        offset = (tallest - len(column)) / 2
        row.update((job_id, offset + index) for index, job_id in enumerate(column))
    # The ref its dependents read a job's output by is its name in the flow.
    refs = {dependency: link.ref for (dependency, _), link in edges.items() if link.ref}
    nodes: dict[str, GraphNode] = {}
    for job_id, job in jobs.items():
        ref = refs.get(job_id)
        nodes[job_id] = GraphNode(job, shown_state(job), _label(ref or job.queue), ref,
                                  layers[job_id] * (NODE_WIDTH + COLUMN_GAP),
                                  round(row[job_id] * (NODE_HEIGHT + ROW_GAP)),
                                  job_id == current.id)
    return FlowGraph(
        list(nodes.values()),
        [_edge(nodes[dependency], nodes[dependent], link)
         for (dependency, dependent), link in edges.items()],
        len(columns) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP,
        tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP,
        complete)


def _edge(dependency: GraphNode, dependent: GraphNode, link: Link) -> GraphEdge:
    """A curve from the right side of the dependency's box to the left side of the
    dependent's, ending where the arrowhead starts."""
    x1, y1 = dependency.x + NODE_WIDTH, dependency.y + NODE_HEIGHT // 2
    x2, y2 = dependent.x - ARROW, dependent.y + NODE_HEIGHT // 2
    middle = (x1 + x2) // 2
    return GraphEdge(f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}", link,
                     dependency, dependent)
