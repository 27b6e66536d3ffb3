"""Tasks: handlers that know their queue, so sending to them is one typed call.

``@cv.task(queue)`` wraps a handler of jobs (``handler(job)``): :class:`Task`
calls it as before and adds ``send(data, **options)``. ``@cv.typed_task(queue)``
wraps a plain function of keyword arguments: :class:`TypedTask` stores the
arguments of ``send(...)`` as the job's data, a JSON object by parameter name, and
the worker calls the function with them. Its ``send`` has the function's own
parameters (a ``ParamSpec``), so a type checker flags a wrong payload where it is
written.

Both pickle by their import path, so a decorated module-level function also runs
with ``executor="process"``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pickle
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack

from conveyor._ops.options import Duration
from conveyor.errors import InvalidArgument, InvalidOption
from conveyor.job import Job

P = ParamSpec("P")
R = TypeVar("R")
Sent = TypeVar("Sent")


class SendOptions(TypedDict, total=False):
    """The options of ``send`` (see :meth:`~conveyor.Conveyor.send`)."""

    priority: int | None
    start_after: Duration | datetime | str | None
    retry_limit: int | None
    retry_delay: Duration | None
    retry_backoff: bool | None
    retry_delay_max: Duration | None
    expire_in: Duration | None
    retention: Duration | None
    delete_after: Duration | None
    dead_letter: str | None
    singleton_key: str | None
    singleton_seconds: Duration | None
    singleton_next_slot: bool
    debounce_seconds: Duration | None
    group_key: str | None
    id: str | uuid.UUID | None
    conn: Any


def _imported(module: str, qualname: str) -> Any:
    """The object at ``module.qualname``: how a task crosses into a worker process."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


class _Wrapper(Generic[P, R]):
    """Calls ``function`` as itself; pickles by the import path it was decorated at."""

    def __init__(self, function: Callable[P, R], queue: str) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.queue = queue

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        qualname = self.function.__qualname__
        if "<locals>" in qualname:
            raise pickle.PicklingError(
                f"the task {qualname!r} is defined inside a function; a worker process "
                "imports its task by name, so define it at module level"
            )
        return _imported, (self.function.__module__, qualname)


class Task(_Wrapper[P, R], Generic[P, R, Sent]):
    """A job handler registered with ``@cv.task(queue)``, still callable as the
    handler; ``send`` sends a job to its queue::

        @cv.task("document-parse")
        def parse(job: Job) -> dict: ...

        parse.send({"document_id": "d1"}, priority=10)
    """

    def __init__(self, function: Callable[P, R], queue: str, send: Callable[..., Sent]) -> None:
        super().__init__(function, queue)
        self._send = send

    def send(self, data: Any = None, **options: Unpack[SendOptions]) -> Sent:
        """Send a job with ``data`` to this task's queue (``cv.send(queue, data, ...)``)."""
        return self._send(self.queue, data, **options)


def keyword_parameters(function: Callable[..., Any], queue: str) -> inspect.Signature:
    """The signature of a typed task's function, which must take its arguments by
    name (they become the job's data, a JSON object)."""
    signature = inspect.signature(function)
    by_position = [p.name for p in signature.parameters.values()
                   if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
    if by_position:
        raise InvalidOption(
            f"the typed task for {queue!r} stores its arguments by name, so its function "
            f"cannot take positional-only or *args parameters ({', '.join(by_position)})"
        )
    return signature


class TypedTask(_Wrapper[P, R], Generic[P, R, Sent]):
    """A function registered with ``@cv.typed_task(queue)``: its arguments are the
    job's data. ``send`` takes exactly the function's parameters::

        @cv.typed_task("resize")
        def resize(image_id: str, width: int = 800) -> dict: ...

        resize.send("img-1", width=400)                # data {"image_id": "img-1", "width": 400}
        resize.send_with(priority=5, conn=conn)("img-2")
    """

    def __init__(self, function: Callable[P, R], queue: str, send: Callable[..., Sent]) -> None:
        super().__init__(function, queue)
        self._signature = keyword_parameters(function, queue)
        self._send = send

    def data(self, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        """The job data that ``send(*args, **kwargs)`` stores: each argument given, by
        parameter name (defaults are left to the function)."""
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{self.queue!r} cannot take these arguments: {exc}") from None
        data: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if self._signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                data.update(value)
            else:
                data[name] = value
        return data

    def send(self, *args: P.args, **kwargs: P.kwargs) -> Sent:
        """Send a job whose data is these arguments; the worker calls the function
        with them."""
        return self._send(self.queue, self.data(*args, **kwargs))

    def send_with(self, **options: Unpack[SendOptions]) -> Callable[P, Sent]:
        """``send`` with job options (``priority``, ``start_after``, ``conn``, ...)::

            resize.send_with(start_after=60)("img-1", width=400)
        """

        def send(*args: P.args, **kwargs: P.kwargs) -> Sent:
            return self._send(self.queue, self.data(*args, **kwargs), **options)

        return send



class JobCall(Generic[R]):
    """The handler a typed task registers: calls the function with the job's data
    as its arguments."""

    def __init__(self, task: TypedTask[..., R, Any]) -> None:
        self.task = task

    def __call__(self, job: Job) -> R:
        if not isinstance(job.data, dict):
            raise InvalidArgument(
                f"a job of the typed task {self.task.queue!r} carries a JSON object of its "
                f"arguments, not {type(job.data).__name__}"
            )
        return self.task.function(**job.data)


def direct_callable(handler: Callable[..., Any]) -> Callable[..., Any]:
    """What a worker may call in place of ``handler`` in its own process: a task's
    function without the wrapper that only forwards the call (a frame per job);
    anything else as it is. Process pools keep the wrapper, which pickles by name."""
    return handler.function if isinstance(handler, _Wrapper) else handler


def wrapped_function(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The user's function behind a task's handler (how it is to be run: async or
    not), or ``handler`` itself."""
    if isinstance(handler, JobCall):
        return handler.task.function
    if isinstance(handler, _Wrapper):
        return handler.function
    return handler
