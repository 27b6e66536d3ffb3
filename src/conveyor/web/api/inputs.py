"""The models of what the API takes in a request body, with the rules the server
enforces stated in the OpenAPI spec: numbers are numbers (never ``true`` or
``"5"``), names match the client's pattern, unknown fields are refused.

The client checks its input again; these models make the spec say so up front.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from conveyor._ops import validate
from conveyor.job import JobState

_NAME_PATTERN = f"^{validate.QUEUE_NAME_PATTERN}$"
QueueName = Annotated[StrictStr, Field(pattern=_NAME_PATTERN, min_length=1, max_length=128,
                                       description="letters, digits and _ . : / -")]
Key = Annotated[StrictStr, Field(min_length=1, max_length=255)]
Seconds = Annotated[StrictFloat | StrictInt, Field(description="seconds")]
Integer = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]

SCHEDULED = "true: only jobs waiting for a later start; false: the others"
"""What the ``scheduled`` filter means, wherever the API takes it."""


class _JobIn(BaseModel):
    """A job's queue, data and options: those of ``send`` (durations in seconds)."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName
    data: Any = None
    priority: Integer | None = None
    start_after: StrictFloat | StrictInt | StrictStr | None = Field(
        None, description="a delay in seconds, or when to start: ISO 8601 with an offset")
    retry_limit: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None = None
    retry_delay: Seconds | None = None
    retry_backoff: StrictBool | None = None
    retry_delay_max: Seconds | None = None
    expire_in: Seconds | None = None
    retention: Seconds | None = None
    delete_after: Seconds | None = None
    dead_letter: QueueName | None = None
    singleton_key: Key | None = None
    singleton_seconds: Seconds | None = None
    singleton_next_slot: StrictBool = False
    group_key: Key | None = None
    id: StrictStr | None = Field(None, description="a UUID of your own")


class SendIn(_JobIn):
    """A job to send; the options are those of ``send`` (durations in seconds)."""

    debounce_seconds: Seconds | None = None


def _storable(ref: str) -> str:
    # The client takes any text as a ref, and PostgreSQL cannot store a NUL.
    if "\x00" in ref:
        raise ValueError("a ref cannot hold a NUL character")
    return ref


Ref = Annotated[StrictStr, Field(min_length=1), AfterValidator(_storable)]
"""A step's name in its flow, or an existing job's id where a step names what it
waits for."""
OnFailure = Literal["cancel", "ignore", "fail"]
"""What a step does when a job it depends on fails for good or is cancelled
(``dependencies.ON_FAILURE``)."""


class DependencyIn(BaseModel):
    """A job a step waits for, with a failure policy of this edge's own."""

    model_config = ConfigDict(extra="forbid")

    ref: Ref = Field(description="a ref of the flow, or an existing job's id")
    on_failure: OnFailure | None = Field(
        None, description="instead of the step's on_dependency_failure")


class StepIn(_JobIn):
    """A step of a flow: a job (the queue, data and options of ``POST /api/jobs``)
    named by its ``ref``, with the jobs it waits for."""

    ref: Ref = Field(description="the step's name in the flow, unique in it")
    depends_on: list[Ref | DependencyIn] = Field(
        default_factory=list,
        description="what the step waits for: refs of this flow's steps, or ids of "
                    "jobs sent before")
    on_dependency_failure: OnFailure | None = Field(
        None, description="when a dependency fails for good or is cancelled: cancel this "
                          "step (the default), ignore it and run, or fail this step")


class FlowIn(BaseModel):
    """The steps of a flow, sent in one transaction (``flow``)."""

    model_config = ConfigDict(extra="forbid")

    steps: Annotated[list[StepIn], Field(min_length=1)]


class FilterIn(BaseModel):
    """Which jobs a bulk action applies to: the job list's filters (a queue or a
    state at least)."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName | None = None
    state: list[JobState] | JobState | None = None
    key: Key | None = None
    q: Annotated[StrictStr, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="search text, as in the job list")
    scheduled: StrictBool | None = Field(None, description=SCHEDULED)
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="the jobs to act on, instead of the filters")


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: Seconds | None = Field(None, description="how long; until resumed when left out")
