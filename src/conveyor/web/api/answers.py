"""The models of the API's answers, as the OpenAPI spec states them.

Most mirror one of the client's dataclasses (``_mirror``), so an answer follows
``Job``, ``Schedule`` or ``QueueSummary`` without a second copy of their fields;
the rest are the small answers of single routes.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from conveyor.job import Job, JobState, Schedule
from conveyor.reports import LeaderLease, QueueStats, QueueSummary, WorkerInfo
from conveyor.web.api.inputs import OnFailure

_OUT = ConfigDict(from_attributes=True, ser_json_timedelta="float")
"""Answers are read from the client's dataclasses; durations go out as seconds."""


def _mirror(
    source: type, *, name: str, exclude: frozenset[str] = frozenset(),
    doc: str | None = None, **extra: Any,
) -> type[BaseModel]:
    """A response model with the fields of one of the client's dataclasses (less
    ``exclude``, plus ``extra`` as ``(type, default or FieldInfo)``), so the API's
    answers follow the dataclasses without a second copy of their fields."""
    hints = typing.get_type_hints(source)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], ...) for f in dataclasses.fields(source)
        if f.name not in exclude and not f.name.startswith("_")
    }
    return pydantic.create_model(name, __config__=_OUT, __doc__=doc or source.__doc__,
                                 **{**fields, **extra})


JobOut = _mirror(
    Job, name="JobOut", exclude=frozenset({"singleton_on", "trace_context"}),
    doc="A job; durations are in seconds.",
    errors=(list[dict[str, Any]], Field(description="each failed attempt's error, oldest first")),
    progress=(dict[str, Any], ...))
ScheduleOut = _mirror(Schedule, name="ScheduleOut")
WorkerOut = _mirror(WorkerInfo, name="WorkerOut")
StatsOut = _mirror(QueueStats, name="StatsOut")
LeaderOut = _mirror(LeaderLease, name="LeaderOut")
QueueOut = _mirror(
    QueueSummary, name="QueueOut", doc="A queue now; ``lag`` in seconds.",
    waiting=(int, Field(description="created + retry")), paused=(bool, ...))


class JobSummaryOut(BaseModel):
    """A job without its data, output or errors (``GET /api/jobs/{id}`` has them)."""

    model_config = _OUT

    id: str
    queue: str
    state: JobState
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class LinkOut(BaseModel):
    """One edge of a flow, seen from either end: the job at the other end, and the
    edge's ref, failure policy and whether it settled."""

    model_config = _OUT

    job: JobSummaryOut
    ref: str | None = Field(
        description="the name the dependent reads the dependency's output by "
                    "(null: by the dependency's id)")
    on_failure: OnFailure = Field(
        description="what the dependent does if the dependency fails for good or is "
                    "cancelled")
    settled: bool = Field(description="whether the dependency has finished")


class JobPageOut(BaseModel):
    model_config = _OUT

    jobs: list[JobOut]  # type: ignore[valid-type]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class SentOut(BaseModel):
    id: str


class CountOut(BaseModel):
    count: int = Field(description="how many jobs changed")


class MatchedOut(BaseModel):
    count: int = Field(description="how many jobs match the filters")


class ChangedOut(BaseModel):
    id: str
    state: JobState


class QueueStateOut(BaseModel):
    model_config = _OUT

    name: str
    paused_until: datetime | None


class HealthOut(BaseModel):
    model_config = _OUT

    healthy: bool
    database: bool
    problems: list[str]
    warnings: list[str]
    schema_version: int | None
    expected_version: int | None
    workers_alive: int
    leader: LeaderOut | None  # type: ignore[valid-type]
