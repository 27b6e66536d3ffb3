"""One implementation, two faces: operations are plans, drivers run them.

Every public operation is written once, as a generator that yields the statements
it needs (:class:`Execute`, naming a declaration of :mod:`conveyor._db.statements`) and
receives their results. It does no I/O itself.
:func:`run_sync` drives a plan on a psycopg ``Connection``, :func:`run_async` on an
``AsyncConnection``; these two small loops are the only code that differs between
:class:`~conveyor.Conveyor` and :class:`~conveyor.AsyncConveyor`.

A database error is thrown into the plan as a Conveyor error, so an operation can
handle the failures it expects (a policy's unique index, say) where its logic is.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.rows import dict_row, tuple_row

from conveyor._db import statements
from conveyor._db.notify import NotifyGate, Wakeup
from conveyor._db.queries import Queries, Statement
from conveyor.errors import ConnectionLost, ConveyorError, DatabaseError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``statement`` with ``params``. What the step returns (a row count, a row
    or the rows, as tuples or dicts) is part of the statement's declaration."""

    statement: Statement
    params: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """Stream ``rows`` into a ``COPY ... FROM STDIN (FORMAT BINARY)`` statement.

    ``rows`` is consumed while the data is sent, so a check that fails on a late
    row aborts the COPY, and the transaction around it writes nothing.
    """

    statement: Statement
    rows: Iterable[Sequence[Any]]
    types: Sequence[str]
    dumpers: Sequence[type[Dumper]] = ()
    """Dumpers chosen by type instead of psycopg's, on the COPY's own cursor."""


@dataclass(frozen=True, slots=True)
class Together:
    """Run ``steps`` back to back in one transaction of their own, sent to the
    server at once (a pipeline): the server commits without waiting for the client
    in between, so locks taken by the first steps are held only as long as the
    server works. The plan receives the steps' results, as a list, after the
    commit. On a caller's connection they go where any atomic operation's
    statements go (see ``_transaction``)."""

    steps: tuple[Execute, ...]


Step = Execute | Copy | Together
Plan = Generator[Step, Any, T]


@dataclass(frozen=True, slots=True)
class Context:
    """What operations need from the client that runs them."""

    queries: Queries
    max_payload_bytes: int
    notify_gate: NotifyGate = field(default_factory=NotifyGate)


@dataclass(slots=True)
class Operation(Generic[T]):
    """A plan with what it needs to run: the caller's connection, if any, whether
    its statements must commit together (``atomic``), and, for a send on the
    client's own pool, what it decided about notifying (``wakeup``), which the
    client reports to its :class:`~conveyor._db.notify.NotifyGate` once it committed."""

    plan: Plan[T]
    conn: Any = None
    atomic: bool = False
    wakeup: Wakeup | None = None


Run = Callable[[Operation[Any]], Awaitable[Any]]
"""Runs an operation on a connection of the client's pool: what the worker's parts
and the leader's maintenance are given to reach the database."""


class RunWithin(Protocol):
    """A ``Run`` that gives the connection up when no answer comes within
    ``deadline`` seconds (None: no deadline); ``AsyncConveyor._run`` is one."""

    def __call__(self, op: Operation[Any], deadline: float | None = None) -> Awaitable[Any]: ...


def guarded(op: Operation[T], seconds: float) -> Operation[T]:
    """``op``, whose transaction (when it is ``atomic``) the server ends if the
    client leaves it waiting longer than ``seconds`` for its next statement
    (``idle_guard.sql``; the server's side of a statement deadline, ``_db/deadline.py``)."""
    if not op.atomic:
        return op
    return replace(op, plan=_guarded(op.plan, str(math.ceil(seconds * 1000))))


def _guarded(plan: Plan[T], milliseconds: str) -> Plan[T]:
    yield Execute(statements.IDLE_GUARD, {"milliseconds": milliseconds})
    return (yield from plan)


class Failure(ConveyorError):
    """A database error thrown into a plan; ``cause`` is psycopg's exception."""

    def __init__(self, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.cause = cause


def translate(exc: psycopg.Error) -> ConveyorError:
    """The typed error a caller sees for a database error no plan handled."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not isinstance(
        exc, pg_errors.QueryCanceled | pg_errors.LockNotAvailable
    ):
        return ConnectionLost(
            f"lost the connection to PostgreSQL ({exc}); the call may or may not have taken "
            "effect, and the next call uses a fresh connection"
        )
    return DatabaseError(f"PostgreSQL refused the statement: {exc}")


def _sql(queries: Queries, statement: Statement) -> str:
    return queries[statement] if statement.text is None else statement.text


def _result(cur: Any, statement: Statement) -> Any:
    if statement.fetch == "none":
        return cur.rowcount
    if statement.fetch == "one":
        return cur.fetchone()
    return cur.fetchall()


async def _result_async(cur: Any, statement: Statement) -> Any:
    if statement.fetch == "none":
        return cur.rowcount
    if statement.fetch == "one":
        return await cur.fetchone()
    return await cur.fetchall()


def _cursor(conn: Any) -> Any:
    """A cursor whose row factory each step sets (tuples or dicts)."""
    return conn.cursor()


def _transaction(conn: Any, atomic: bool) -> Any:
    """What makes an operation's statements commit together.

    In autocommit (Conveyor's own pool) that is a transaction; inside a caller's
    open transaction, a savepoint, so a failure leaves the caller's transaction
    usable. A caller's connection that is idle outside autocommit gets nothing: the
    first statement opens the caller's implicit transaction, which the caller then
    commits or rolls back, with the jobs in it.
    """
    if not atomic:
        return contextlib.nullcontext()
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if idle and not conn.autocommit:
        return contextlib.nullcontext()
    return conn.transaction()


@dataclass(frozen=True, slots=True)
class _Done:
    value: Any


def _advance(plan: Plan[T], result: Any = None, error: psycopg.Error | None = None,
             *, first: bool = False) -> Step | _Done:
    """Hand the plan its result (or the error) and return its next step, or ``_Done``
    with its return value. An error the plan does not catch propagates translated."""
    try:
        if first:
            return next(plan)
        if error is None:
            return plan.send(result)
        try:
            return plan.throw(Failure(error))
        except Failure as unhandled:
            raise translate(unhandled.cause) from unhandled.cause
    except StopIteration as done:
        return _Done(done.value)


def _together_sync(conn: psycopg.Connection[Any], queries: Queries, step: Together) -> list[Any]:
    with conn.pipeline(), _transaction(conn, True):
        cursors = []
        for part in step.steps:
            cur = conn.cursor(row_factory=tuple_row if part.statement.tuples else dict_row)
            cur.execute(_sql(queries, part.statement), part.params)
            cursors.append(cur)
    return [_result(cur, part.statement) for cur, part in zip(cursors, step.steps, strict=True)]


async def _together_async(
    conn: psycopg.AsyncConnection[Any], queries: Queries, step: Together,
) -> list[Any]:
    async with conn.pipeline(), _transaction(conn, True):
        cursors = []
        for part in step.steps:
            cur = conn.cursor(row_factory=tuple_row if part.statement.tuples else dict_row)
            await cur.execute(_sql(queries, part.statement), part.params)
            cursors.append(cur)
    return [await _result_async(cur, part.statement)
            for cur, part in zip(cursors, step.steps, strict=True)]


def _copy_types(cur: Any, copy: Any, step: Copy) -> None:
    for dumper in step.dumpers:
        cur.adapters.register_dumper(None, dumper)
    copy.set_types(step.types)


def run_sync(conn: psycopg.Connection[Any], queries: Queries, op: Operation[T]) -> T:
    try:
        with _transaction(conn, op.atomic), _cursor(conn) as cur:
            step = _advance(op.plan, first=True)
            while not isinstance(step, _Done):
                try:
                    if isinstance(step, Copy):
                        text = _sql(queries, step.statement)
                        with conn.cursor() as own, own.copy(text) as copy:
                            _copy_types(own, copy, step)
                            for row in step.rows:
                                copy.write_row(row)
                        result = None
                    elif isinstance(step, Together):
                        result = _together_sync(conn, queries, step)
                    else:
                        statement = step.statement
                        cur.row_factory = tuple_row if statement.tuples else dict_row
                        cur.execute(_sql(queries, statement), step.params)
                        result = _result(cur, statement)
                    error = None
                except psycopg.Error as exc:
                    result, error = None, exc
                step = _advance(op.plan, result, error)
    except psycopg.Error as exc:  # from BEGIN, COMMIT or ROLLBACK
        raise translate(exc) from exc
    return step.value  # type: ignore[no-any-return]


async def run_async(conn: psycopg.AsyncConnection[Any], queries: Queries, op: Operation[T]) -> T:
    try:
        async with _transaction(conn, op.atomic), _cursor(conn) as cur:
            step = _advance(op.plan, first=True)
            while not isinstance(step, _Done):
                try:
                    if isinstance(step, Copy):
                        text = _sql(queries, step.statement)
                        async with conn.cursor() as own, own.copy(text) as copy:
                            _copy_types(own, copy, step)
                            for row in step.rows:
                                await copy.write_row(row)
                        result = None
                    elif isinstance(step, Together):
                        result = await _together_async(conn, queries, step)
                    else:
                        statement = step.statement
                        cur.row_factory = tuple_row if statement.tuples else dict_row
                        await cur.execute(_sql(queries, statement), step.params)
                        result = await _result_async(cur, statement)
                    error = None
                except psycopg.Error as exc:
                    result, error = None, exc
                step = _advance(op.plan, result, error)
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return step.value  # type: ignore[no-any-return]
