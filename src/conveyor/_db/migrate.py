"""Versioned migrations, applied under an advisory lock.

Migrations are the numbered ``.sql`` files in ``sql/migrations``. Applying them:

1. Read the schema's version without locking; when it is current (the usual case
   on every start) nothing else happens.
2. Otherwise, in one transaction, take a transaction-level advisory lock keyed by
   the schema name, read the version again, apply each missing migration and
   record it. Processes that start together queue on the lock; when they get it
   they find the work done, so each migration runs exactly once.

A database whose version is newer than this code's is refused: an older release
must not write to tables whose meaning it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor._db import statements
from conveyor._db.plan import Context, Execute, Operation, Plan
from conveyor._db.queries import Queries, Statement, latest_version
from conveyor.errors import SchemaTooNew


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """What a call to ``migrate`` found and did."""

    schema: str
    version_before: int
    version_after: int
    applied: list[int]


def _version(queries: Queries) -> Plan[int]:
    found = yield Execute(statements.MIGRATION_TABLE_EXISTS, {"schema": queries.schema})
    if not found["present"]:
        return 0
    return (yield Execute(statements.MIGRATION_VERSION))["version"]  # type: ignore[no-any-return]


def _refuse_newer(schema: str, version: int) -> None:
    if version > latest_version():
        raise SchemaTooNew(
            f"schema {schema!r} is at version {version}, newer than this Conveyor "
            f"(which knows up to {latest_version()}); upgrade Conveyor on this machine"
        )


def schema_version(ctx: Context, /) -> Operation[int]:
    """The schema's version in the database: 0 when Conveyor was never installed there."""
    return Operation(_version(ctx.queries))


def _apply(queries: Queries) -> Plan[MigrationResult]:
    # Lock first: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
    yield Execute(statements.MIGRATION_LOCK, {"schema": queries.schema})
    yield Execute(statements.MIGRATION_PREPARE)
    before = yield from _version(queries)
    _refuse_newer(queries.schema, before)
    applied = []
    for migration in queries.migrations():
        if migration.version > before:
            yield Execute(Statement(migration.name, fetch="none", text=migration.text))
            yield Execute(statements.MIGRATION_RECORD,
                          {"version": migration.version, "name": migration.name})
            applied.append(migration.version)
    return MigrationResult(queries.schema, before, max([before, *applied]), applied)


def _migrate(queries: Queries) -> Plan[MigrationResult]:
    seen = yield from _version(queries)
    _refuse_newer(queries.schema, seen)
    if seen == latest_version():
        return MigrationResult(queries.schema, seen, seen, [])
    return (yield from _apply(queries))


def migrate(ctx: Context, /) -> Operation[MigrationResult]:
    """Bring the database schema to this code's version, once, however many
    processes call it at the same time. Start-up does it unless the client was made
    with ``migrate=False``; ``conveyor migrate`` does it from the command line."""
    return Operation(_migrate(ctx.queries), atomic=True)
