"""The models of what the API takes in a request body, with the rules the server
enforces stated in the OpenAPI spec: numbers are numbers (never ``true`` or
``"5"``), names match the client's pattern, unknown fields are refused.

The client checks its input again; these models make the spec say so up front.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

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


class SendIn(BaseModel):
    """A job to send; the options are those of ``send`` (durations in seconds)."""

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
    debounce_seconds: Seconds | None = None
    group_key: Key | None = None
    id: StrictStr | None = Field(None, description="a UUID of your own")


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
