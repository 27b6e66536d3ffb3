"""Flow control by hand: pausing and resuming queues and group keys, and the limits
of one group key. The limits themselves are enforced where jobs are claimed
(``claim.sql`` for pauses, ``claim_flow.sql`` for limits and fairness)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from psycopg import errors as pg_errors

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Failure, Operation, Plan
from conveyor._db.queries import Statement
from conveyor._db.rows import queue_from_row
from conveyor._ops import claims, validate
from conveyor._ops.options import Duration
from conveyor.errors import InvalidOption, QueueNotFound
from conveyor.job import Group, Queue


class GroupSettings(TypedDict, total=False):
    """The limits of one group key that override its queue's (see ``set_group``)."""

    concurrency: int | None
    rate_limit: int | None
    rate_period: Duration | None


_GROUP_CHECKS: dict[str, Callable[[Any], Any]] = {
    "concurrency": lambda v: validate.integer(v, "concurrency", minimum=1),
    "rate_limit": lambda v: validate.integer(v, "rate_limit", minimum=1),
    "rate_period": lambda v: validate.positive_duration(v, "rate_period"),
}


def _pause_length(seconds: Duration | None) -> Any:
    return None if seconds is None else validate.positive_duration(seconds, "seconds")


def _group_key(value: object) -> str:
    return validate.text(value, "group_key")


def _missing_queue(name: str) -> QueueNotFound:
    return QueueNotFound(f"queue {name!r} does not exist; create_queue() makes it")


def _queue_change(
    ctx: Context, statement: Statement, params: dict[str, Any], *, notify: bool = False,
) -> Plan[Queue]:
    row = yield Execute(statement, params)
    if row is None:
        raise _missing_queue(params["name"])
    if notify:
        yield Execute(statements.NOTIFY_QUEUE,
                      {"channel": ctx.queries.schema, "queue": params["name"]})
    return queue_from_row(row)


def pause_queue(
    ctx: Context, /, name: str, seconds: Duration | None = None, *, conn: Any = None
) -> Operation[Queue]:
    """Stop claiming jobs of ``name`` for ``seconds``, or until :meth:`resume_queue`
    when not given. Running jobs finish; sends still queue up. Returns the queue.

    Example::

        cv.pause_queue("send-message", 300)   # the provider asked for five minutes
    """
    params = {"name": validate.queue_name(name), "duration": _pause_length(seconds)}
    return Operation(_queue_change(ctx, statements.QUEUE_PAUSE, params), conn)


def resume_queue(ctx: Context, /, name: str, *, conn: Any = None) -> Operation[Queue]:
    """End a queue's pause; idle workers are woken at once. Returns the queue."""
    params = {"name": validate.queue_name(name)}
    return Operation(_queue_change(ctx, statements.QUEUE_RESUME, params, notify=True), conn,
                     atomic=True)


def _group_change(
    ctx: Context, statement: Statement, params: dict[str, Any], *, notify: bool = False,
) -> Plan[Group]:
    try:
        row = yield Execute(statement, params)
    except Failure as failure:
        if isinstance(failure.cause, pg_errors.ForeignKeyViolation):
            raise _missing_queue(params["queue"]) from None
        raise
    if row is None:  # resuming a key that was never paused
        row = yield Execute(statements.GROUP_UPDATE,
                            _group_params(params["queue"], params["group_key"], {}))
    if notify:
        yield Execute(statements.NOTIFY_QUEUE,
                      {"channel": ctx.queries.schema, "queue": params["queue"]})
    return Group(**row)


def pause_group(
    ctx: Context, /, queue: str, group_key: str, seconds: Duration | None = None, *,
    conn: Any = None,
) -> Operation[Group]:
    """Stop claiming the jobs of one group key of ``queue`` for ``seconds``, or until
    :meth:`resume_group`; the queue's other keys go on. Returns the key's settings.

    Example::

        cv.pause_group("send-message", "chat-42", 30)
    """
    params = {"queue": validate.queue_name(queue), "group_key": _group_key(group_key),
              "duration": _pause_length(seconds)}
    return Operation(_group_change(ctx, statements.GROUP_PAUSE, params), conn, atomic=True)


def resume_group(
    ctx: Context, /, queue: str, group_key: str, *, conn: Any = None
) -> Operation[Group]:
    """End the pause of one group key; idle workers are woken at once."""
    params = {"queue": validate.queue_name(queue), "group_key": _group_key(group_key)}
    return Operation(_group_change(ctx, statements.GROUP_RESUME, params, notify=True), conn,
                     atomic=True)


def _group_params(queue: str, group_key: str, given: Mapping[str, Any]) -> dict[str, Any]:
    validate.unknown_options(
        {k: v for k, v in given.items() if k not in _GROUP_CHECKS}, _GROUP_CHECKS)
    if ("rate_limit" in given) != ("rate_period" in given) or (
        (given.get("rate_limit") is None) != (given.get("rate_period") is None)
    ):
        raise InvalidOption("give rate_limit and rate_period together (both None to remove)")
    params: dict[str, Any] = {"queue": queue, "group_key": group_key}
    for name, check in _GROUP_CHECKS.items():
        value = given.get(name)
        params[name] = None if value is None else check(value)
        params[f"set_{name}"] = name in given
    return params


def set_group(
    ctx: Context, /, queue: str, group_key: str, *, conn: Any = None,
    **settings: Unpack[GroupSettings],
) -> Operation[Group]:
    """Give one group key of ``queue`` limits of its own, overriding the queue's
    ``group_concurrency`` and ``group_rate_limit``/``group_rate_period``; ``None``
    removes an override. Settings left out stay as they are. Returns the key's
    settings; running workers apply them within about a second.

    Example::

        cv.set_group("llm-calls", "tenant-enterprise", concurrency=20)
        cv.set_group("send-message", "channel-7", rate_limit=20, rate_period=60)
    """
    params = _group_params(validate.queue_name(queue), _group_key(group_key), settings)
    return Operation(_group_change(ctx, statements.GROUP_UPDATE, params), conn, atomic=True)


def get_group(
    ctx: Context, /, queue: str, group_key: str, *, conn: Any = None
) -> Operation[Group | None]:
    """The settings of one group key, or ``None`` when it has none of its own."""
    params = {"queue": validate.queue_name(queue), "group_key": _group_key(group_key)}

    def plan() -> Plan[Group | None]:
        row = yield Execute(statements.GROUP_GET, params)
        return None if row is None else Group(**row)

    return Operation(plan(), conn)


# --- for workers ------------------------------------------------------------------------


def pause_and_release(
    ctx: Context, queue: str, group_keys: Sequence[str] | None, seconds: float,
    ids: Sequence[str], attempts: Sequence[int],
) -> Plan[None]:
    """A handler asked for a pause: pause its queue (``group_keys`` None) or its
    jobs' keys, and hand its jobs back without counting the attempt. Atomic."""
    duration = validate.positive_duration(seconds, "seconds")
    if group_keys is None:
        yield Execute(statements.QUEUE_PAUSE, {"name": queue, "duration": duration})
    else:
        for key in sorted(set(group_keys)):
            yield Execute(statements.GROUP_PAUSE, {"queue": queue, "group_key": key,
                                                   "duration": duration})
    yield from claims.hand_back(ctx, ids, attempts)
