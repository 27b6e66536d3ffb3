"""The completer: writes the outcomes of attempts in batches.

Handlers finish one at a time; writing each outcome in its own round trip would
cap a worker at the database's commit rate. The completer collects outcomes for
a few milliseconds (or until a batch is full) and writes all completions with one
``complete.sql`` and all failures with one ``fail.sql``, both fenced by attempt.
Adding waits while the backlog is full, so a slow database slows claiming instead
of growing memory. A write that fails for a lost connection is retried with
backoff until it succeeds or the worker is forced to stop; nothing is dropped
quietly (an outcome never written leaves its job active until its lease lapses,
and the job runs again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from conveyor._db import statements
from conveyor._db.plan import Context, Operation, Plan, Run
from conveyor._db.queries import Statement
from conveyor._db.session import Int4s, TextUuids
from conveyor._ops.claims import Outcome, complete_params, fail_params, write_outcomes
from conveyor.errors import ConnectionLost, ConveyorError

log = logging.getLogger("conveyor.worker")



def _settle(ctx: Context, outcomes: Sequence[Outcome]) -> Plan[None]:
    completions = [o for o in outcomes if o.error is None]
    failures = [o for o in outcomes if o.error is not None]
    if completions:
        yield from _record(ctx, statements.COMPLETE, completions, complete_params, int)
    if failures:
        yield from _record(ctx, statements.FAIL, failures, lambda o: fail_params(ctx, o), len)


def _record(
    ctx: Context, statement: Statement, outcomes: list[Outcome],
    params_of: Callable[[list[Outcome]], dict[str, Any]], written: Callable[[Any], int],
) -> Plan[int]:
    """Writes ``outcomes`` with ``statement``: those whose job something waited for
    when it was claimed with the settling at once (``claims.write_outcomes``)."""
    plain = [o for o in outcomes if not o.waited]
    waited = [o for o in outcomes if o.waited]
    return (yield from write_outcomes(
        ctx, statement, _as_binary_arrays(params_of(plain)) if plain else None,
        _as_binary_arrays(params_of(waited)) if waited else None, written))


def _as_binary_arrays(params: dict[str, Any]) -> dict[str, Any]:
    """The ids and attempts in the forms Conveyor's own connections send in one
    pass each (``_db/session.py``: ``TextUuids``, ``Int4s``): a worker's outcomes always
    carry the attempt, and ids as the claim returned them."""
    params["id"] = TextUuids(map(str, params["id"]))
    params["attempt"] = Int4s(params["attempt"])
    return params


class Completer:
    def __init__(
        self,
        run: Run,
        ctx: Context,
        *,
        flush_interval: float = 0.005,
        batch_limit: int = 1000,
        backlog_limit: int = 10_000,
        written: Callable[[], None] | None = None,
    ) -> None:
        """``ctx`` names the schema, whose channel retries due at once notify.
        ``written`` is called after each batch is recorded: finished jobs free
        their keys' slots under per-key limits."""
        self._run = run
        self._on_written = written
        self._ctx = ctx
        self._flush_interval = flush_interval
        self._batch_limit = batch_limit
        self._backlog_limit = backlog_limit
        self._pending: list[Outcome] = []
        self._arrived = asyncio.Event()
        self._written = asyncio.Event()
        self._closing = False

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def add(self, outcomes: Iterable[Outcome]) -> None:
        """Queue outcomes for writing; waits while the backlog is full."""
        while not self.offer(outcomes):
            self._written.clear()
            await self._written.wait()

    def offer(self, outcomes: Iterable[Outcome]) -> bool:
        """Queue outcomes for writing unless the backlog is full (then ``add`` them,
        which waits): ``add`` without a coroutine, for once per handler call."""
        if len(self._pending) >= self._backlog_limit:
            return False
        self._pending.extend(outcomes)
        self._arrived.set()
        return True

    async def run(self) -> None:
        """Write batches until ``close()`` and the backlog is empty."""
        while not (self._closing and not self._pending):
            await self._arrived.wait()
            if not self._closing and len(self._pending) < self._batch_limit:
                await asyncio.sleep(self._flush_interval)
            batch = self._pending[: self._batch_limit]
            del self._pending[: len(batch)]
            if not self._pending:
                self._arrived.clear()
            if batch:
                await self._write(batch)
                self._written.set()
                if self._on_written is not None:
                    self._on_written()

    async def _write(self, batch: list[Outcome]) -> None:
        delay = 0.05
        while True:
            try:
                await self._run(Operation(_settle(self._ctx, batch)))
                return
            except ConnectionLost as exc:
                log.warning("could not record %d outcomes (%s); retrying", len(batch), exc)
            except ConveyorError:
                log.exception("PostgreSQL refused %d outcomes; their jobs will be rescued "
                              "when their leases lapse", len(batch))
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Stop after writing what is pending."""
        self._closing = True
        self._arrived.set()
