"""``assert_enqueued`` and its kin: what is waiting in a queue, checked.

Re-exported by :mod:`conveyor.testing`, the import path to use. A matching job is
one waiting (``created`` or ``retry``) in the queue whose data contains what is
given and whose fields equal the keywords; a failure lists what is waiting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor._db.plan import Context, Operation, Plan
from conveyor._ops import admin, validate
from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import InvalidArgument
from conveyor.job import Job, JobState


def check_face(cv: object, face: type, instead: str) -> None:
    if not isinstance(cv, face):
        raise InvalidArgument(
            f"this helper takes a {face.__name__}, not {type(cv).__name__}; use {instead}")


_WAITING = (JobState.CREATED, JobState.RETRY)
_PAGE = 1000
_SHOWN = 20
_MATCHABLE = tuple(f.name for f in dataclasses.fields(Job)
                   if f.name not in ("queue", "data", "_control"))
_DURATIONS = frozenset(f.name for f in dataclasses.fields(Job) if "timedelta" in str(f.type))


@dataclass(frozen=True, slots=True)
class _Expectation:
    """What an assertion looks for among a queue's waiting jobs."""

    queue: str
    data: Any
    fields: Mapping[str, Any]

    @classmethod
    def make(cls, queue: str, data: Any, fields: Mapping[str, Any]) -> _Expectation:
        validate.unknown_options(
            {k: v for k, v in fields.items() if k not in _MATCHABLE}, _MATCHABLE)
        wanted = {name: validate.duration(value, name)
                  if name in _DURATIONS and value is not None else value
                  for name, value in fields.items()}
        return cls(validate.queue_name(queue), data, wanted)

    @property
    def contains(self) -> Any:
        """The data to match by containment in SQL: a dict or a list."""
        return self.data if isinstance(self.data, Mapping | list) else None

    def matches(self, job: Job) -> bool:
        if self.data is not None and self.contains is None and not _same_scalar(
                job.data, self.data):
            return False
        return all(getattr(job, name) == value for name, value in self.fields.items())

    def describe(self) -> str:
        parts = []
        if self.contains is not None:
            parts.append(f"data containing {self.data!r}")
        elif self.data is not None:
            parts.append(f"data == {self.data!r}")
        parts += [f"{name}={value!r}" for name, value in self.fields.items()]
        return ", ".join(parts) or "any data"

    def show(self, job: Job) -> str:
        shown = "".join(f" {name}={getattr(job, name)!r}" for name in self.fields)
        return f"  - {job.state} {job.id} data={job.data!r}{shown}"

    def listing(self, jobs: list[Job]) -> str:
        if not jobs:
            return f"nothing is waiting in {self.queue!r}"
        lines = [self.show(job) for job in jobs[:_SHOWN]]
        if len(jobs) > _SHOWN:
            lines.append(f"  ... and {len(jobs) - _SHOWN} more")
        return f"waiting in {self.queue!r} ({len(jobs)}):\n" + "\n".join(lines)


def _same_scalar(stored: Any, wanted: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return isinstance(stored, bool) == isinstance(wanted, bool) and bool(stored == wanted)


def _waiting(ctx: Context, queue: str, data_contains: Any) -> Plan[list[Job]]:
    """Every waiting job of ``queue`` (whose data contains ``data_contains``), oldest
    first, read page by page with ``find_jobs``."""
    jobs: list[Job] = []
    cursor = None
    while True:
        page = yield from admin.find_jobs(
            ctx, queue, state=_WAITING, data_contains=data_contains, limit=_PAGE,
            cursor=cursor).plan
        jobs += page.jobs
        cursor = page.next_cursor
        if cursor is None:
            return jobs[::-1]


def _matching(ctx: Context, expect: _Expectation) -> Plan[tuple[list[Job], list[Job]]]:
    """The waiting jobs that match, and all the waiting jobs (for the message)."""
    waiting = yield from _waiting(ctx, expect.queue, None)
    candidates = waiting
    if expect.contains is not None:
        candidates = yield from _waiting(ctx, expect.queue, expect.contains)
    return [job for job in candidates if expect.matches(job)], waiting


def _count(count: int | None) -> int | None:
    return None if count is None else validate.integer(count, "count", minimum=0)


def _check_enqueued(
    expect: _Expectation, count: int | None, found: tuple[list[Job], list[Job]],
) -> list[Job]:
    matching, waiting = found
    if count is None and not matching:
        raise AssertionError(f"no waiting job in {expect.queue!r} with {expect.describe()}; "
                             f"{expect.listing(waiting)}")
    if count is not None and len(matching) != count:
        raise AssertionError(
            f"expected {count} waiting job(s) in {expect.queue!r} with {expect.describe()}, "
            f"found {len(matching)}; {expect.listing(waiting)}")
    return matching


def _check_not_enqueued(expect: _Expectation, found: tuple[list[Job], list[Job]]) -> None:
    matching, _ = found
    if matching:
        raise AssertionError(
            f"expected no waiting job in {expect.queue!r} with {expect.describe()}, "
            f"found {len(matching)}:\n" + "\n".join(expect.show(job) for job in matching))


def assert_enqueued(
    cv: Conveyor, queue: str, data: Any = None, *, count: int | None = None, **fields: Any
) -> list[Job]:
    """Assert that ``queue`` has a waiting job (``created`` or ``retry``) that
    matches; returns the matching jobs, oldest first.

    - ``data``: a dict or list matches by JSON containment (PostgreSQL's ``@>``):
      ``{"to": "ada"}`` matches ``{"to": "ada", "lang": "en"}``; any other value
      (a string, a number) must be equal; ``None`` matches any data. For exact
      equality of a dict, compare the returned jobs' ``data``.
    - ``fields``: attributes of :class:`~conveyor.Job` that must be equal, such as
      ``priority=5``, ``singleton_key="k"``, ``group_key="t1"``, ``retry_limit=3``;
      durations take seconds or a ``timedelta`` (``retry_delay=5``).
    - ``count``: exactly this many jobs must match (``count=0`` is
      :func:`assert_not_enqueued`).

    The failure message lists what is waiting in the queue. Example::

        assert_enqueued(cv, "mail", {"to": "ada@example.com"}, priority=5)
    """
    check_face(cv, Conveyor, "`await aassert_enqueued(cv, ...)` for an AsyncConveyor")
    expect = _Expectation.make(queue, data, fields)
    expected = _count(count)
    found = cv.run_operation(Operation(_matching(cv.context, expect)))
    return _check_enqueued(expect, expected, found)


def assert_not_enqueued(cv: Conveyor, queue: str, data: Any = None, **fields: Any) -> None:
    """Assert that no waiting job of ``queue`` matches (as in :func:`assert_enqueued`);
    the failure message lists those that do::

        assert_not_enqueued(cv, "mail", {"to": "ada@example.com"})
    """
    check_face(cv, Conveyor, "`await aassert_not_enqueued(cv, ...)` for an AsyncConveyor")
    expect = _Expectation.make(queue, data, fields)
    _check_not_enqueued(expect, cv.run_operation(Operation(_matching(cv.context, expect))))


async def aassert_enqueued(
    cv: AsyncConveyor, queue: str, data: Any = None, *, count: int | None = None,
    **fields: Any,
) -> list[Job]:
    """:func:`assert_enqueued` for an :class:`~conveyor.AsyncConveyor`::

        await aassert_enqueued(cv, "embed", {"chunk": 7})
    """
    check_face(cv, AsyncConveyor, "assert_enqueued(cv, ...) for a Conveyor")
    expect = _Expectation.make(queue, data, fields)
    expected = _count(count)
    found = await cv.run_operation(Operation(_matching(cv.context, expect)))
    return _check_enqueued(expect, expected, found)


async def aassert_not_enqueued(
    cv: AsyncConveyor, queue: str, data: Any = None, **fields: Any
) -> None:
    """:func:`assert_not_enqueued` for an :class:`~conveyor.AsyncConveyor`."""
    check_face(cv, AsyncConveyor, "assert_not_enqueued(cv, ...) for a Conveyor")
    expect = _Expectation.make(queue, data, fields)
    _check_not_enqueued(expect, await cv.run_operation(Operation(_matching(cv.context, expect))))
