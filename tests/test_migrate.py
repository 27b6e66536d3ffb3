"""Migrations: applied on start, exactly once however many processes start together,
refused when the database is newer than the code, and available from the CLI."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from conveyor import AsyncConveyor, Conveyor, MigrationResult
from conveyor._db import statements
from conveyor._db.queries import Queries, latest_version
from conveyor.errors import InvalidSchemaName, NotStarted, SchemaTooNew

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none"
PROCESSES = 10
WAIT = 60.0  # seconds; every wait on another process is bounded by this
CLI_ENV_VARIABLES = ("DATABASE_URL", "CONVEYOR_DATABASE_URL", "CONVEYOR_SCHEMA")


def _recorded(database_url: str, schema: str) -> list[tuple[Any, ...]]:
    """Each version in the schema's migration table with how often it is recorded, and
    when it was first applied."""
    query = sql.SQL(
        "SELECT version, count(*), min(applied_at) FROM {}.migration "
        "GROUP BY version ORDER BY version"
    ).format(sql.Identifier(schema))
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _versions_once(database_url: str, schema: str) -> list[tuple[int, int]]:
    return [(version, count) for version, count, _ in _recorded(database_url, schema)]


def _every_version_once() -> list[tuple[int, int]]:
    return [(version, 1) for version in range(1, latest_version() + 1)]


def _schema_exists(database_url: str, schema: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", [schema]
        ).fetchone()
    assert row is not None
    return bool(row[0])


def _names_number(message: str, number: int, schema: str) -> bool:
    """Whether ``number`` appears in ``message`` as a number of its own (the schema's
    hex suffix could contain its digits)."""
    return re.search(rf"\b{number}\b", message.replace(schema, "")) is not None


# --- on start -------------------------------------------------------------------------


def test_start_migrates_a_fresh_schema_to_the_latest_version(cv: Conveyor) -> None:
    assert cv.schema_version() == latest_version()


async def test_async_start_migrates_a_fresh_schema_to_the_latest_version(
    acv: AsyncConveyor,
) -> None:
    assert await acv.schema_version() == latest_version()


def test_migration_table_records_each_version_once(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    assert _versions_once(database_url, schema) == _every_version_once()


def test_starting_again_on_a_migrated_schema_applies_nothing(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    before = _recorded(database_url, schema)
    with Conveyor(database_url, schema=schema) as again:
        result = again.migrate()
    assert isinstance(result, MigrationResult)
    assert result.applied == []
    assert result.version_before == result.version_after == latest_version()
    assert _recorded(database_url, schema) == before  # same rows, same applied_at


def test_start_without_migrate_does_not_create_the_schema(
    database_url: str, schema: str
) -> None:
    with Conveyor(database_url, schema=schema, migrate=False) as client:
        assert client.schema_version() == 0
    assert not _schema_exists(database_url, schema)


# --- many processes at once -----------------------------------------------------------


def _start_and_migrate(
    database_url: str, schema: str, barrier: Any, results: Any
) -> None:
    """Runs in a spawned process: wait for the others, then start and migrate."""
    try:
        barrier.wait(timeout=WAIT)
        client = Conveyor(database_url, schema=schema, migrate=False).start()
        try:
            results.put(("ok", len(client.migrate().applied)))
        finally:
            client.stop()
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow
def test_ten_processes_starting_at_once_migrate_exactly_once(
    database_url: str, schema: str
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_start_and_migrate, args=(database_url, schema, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=WAIT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=WAIT)
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert errors == []
    assert sum(applied for _, applied in outcomes) == latest_version()
    assert _versions_once(database_url, schema) == _every_version_once()


# --- a newer database -----------------------------------------------------------------


def _record_future_version(database_url: str, schema: str) -> int:
    future = latest_version() + 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.migration (version, name) VALUES (%s, %s)").format(
                sql.Identifier(schema)
            ),
            [future, "from_the_future"],
        )
    return future


def test_schema_newer_than_the_code_is_refused_at_start(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    future = _record_future_version(database_url, schema)
    with pytest.raises(SchemaTooNew) as info:
        Conveyor(database_url, schema=schema).start()
    message = str(info.value)
    assert _names_number(message, future, schema), message
    assert _names_number(message, latest_version(), schema), message


def _backends_left(database_url: str, tag: str) -> int:
    """How many backends of the client tagged ``tag`` remain once they had time to go
    (a backend exits asynchronously after its client hangs up: bounded wait)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [tag]
            ).fetchone()
            assert row is not None
            if row[0] == 0:
                break
            time.sleep(0.05)
    return int(row[0])


def _tagged(database_url: str) -> tuple[str, str]:
    tag = f"conveyor-refused-{uuid.uuid4().hex[:8]}"
    return psycopg.conninfo.make_conninfo(database_url, application_name=tag), tag


def test_refused_start_leaves_no_open_pool(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    _record_future_version(database_url, schema)
    dsn, tag = _tagged(database_url)
    client = Conveyor(dsn, schema=schema)
    with pytest.raises(SchemaTooNew):
        client.start()
    # Checked before stop(), which would close a leaked pool and hide it.
    with pytest.raises(NotStarted):
        client.schema_version()
    assert _backends_left(database_url, tag) == 0
    client.stop()  # harmless after a failed start
    with pytest.raises(NotStarted):
        client.schema_version()


async def test_refused_async_start_leaves_no_open_pool(
    cv: Conveyor, database_url: str, schema: str
) -> None:
    _record_future_version(database_url, schema)
    dsn, tag = _tagged(database_url)
    client = AsyncConveyor(dsn, schema=schema)
    with pytest.raises(SchemaTooNew):
        await client.start()
    with pytest.raises(NotStarted):
        await client.schema_version()
    assert _backends_left(database_url, tag) == 0
    await client.stop()
    with pytest.raises(NotStarted):
        await client.schema_version()


# --- the command line -----------------------------------------------------------------


def _cli_environment(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in CLI_ENV_VARIABLES}
    environ.update(extra)
    return environ


def _version_of(database_url: str, schema: str) -> int:
    with Conveyor(database_url, schema=schema, migrate=False) as client:
        return client.schema_version()


def test_cli_migrate_brings_the_schema_to_the_latest_version(
    database_url: str, schema: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "conveyor", "migrate", "--dsn", database_url, "--schema", schema],
        capture_output=True, text=True, timeout=WAIT, env=_cli_environment(),
    )
    assert completed.returncode == 0, completed.stderr
    assert _names_number(completed.stdout, latest_version(), schema), completed.stdout
    assert _version_of(database_url, schema) == latest_version()


def test_cli_migrate_reads_the_database_from_database_url(
    database_url: str, schema: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "conveyor", "migrate", "--schema", schema],
        capture_output=True, text=True, timeout=WAIT,
        env=_cli_environment(DATABASE_URL=database_url),
    )
    assert completed.returncode == 0, completed.stderr
    assert _version_of(database_url, schema) == latest_version()


# --- schema names ---------------------------------------------------------------------

INVALID_SCHEMAS = [
    "Bad-Name",
    "x; drop table",
    "UpperCase",
    "1starts_with_a_digit",
    "has space",
    'quote"d',
    "a" * 64,
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("client_class", [Conveyor, AsyncConveyor])
@pytest.mark.parametrize("name", INVALID_SCHEMAS)
def test_invalid_schema_name_is_refused_when_the_client_is_made(
    client_class: type[Conveyor] | type[AsyncConveyor], name: str
) -> None:
    # The DSN is unreachable: reaching the database would raise ConnectionLost instead.
    with pytest.raises(InvalidSchemaName):
        client_class(UNREACHABLE, schema=name, connect_timeout=1)


def test_longest_valid_schema_name_is_accepted() -> None:
    name = "a" * 63
    assert Conveyor(UNREACHABLE, schema=name).schema == name


# --- data carried across ----------------------------------------------------------------


def test_jobs_waited_for_under_0013_are_marked_by_0014_and_settle_their_dependents(
    database_url: str, schema: str,
) -> None:
    queries = Queries(schema)
    parent, waiting = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(queries[statements.MIGRATION_PREPARE])
        for migration in queries.migrations():
            if migration.version <= 13:
                with conn.transaction():
                    conn.execute(migration.text)
                    conn.execute(queries[statements.MIGRATION_RECORD],
                                 {"version": migration.version, "name": migration.name})
        # A flow as 0013's code wrote it: the parent keyed in job_parent, the step waiting.
        insert = sql.SQL(
            "INSERT INTO {} (id, queue, state, waiting_for, has_dependencies, retry_limit,"
            " retry_delay, retry_backoff, expire_in, start_after, keep_until, delete_after)"
            " VALUES (%s, %s, %s, %s, %s, 0, '0', false, '15 minutes', now(),"
            " now() + interval '1 day', '7 days')").format(sql.Identifier(schema, "job"))
        conn.execute(insert, [parent, "p", "created", 0, False])
        conn.execute(insert, [waiting, "c", "waiting", 1, True])
        conn.execute(sql.SQL("INSERT INTO {} (job_id, depends_on) VALUES (%s, %s)").format(
            sql.Identifier(schema, "job_dependency")), [waiting, parent])
        conn.execute(sql.SQL("INSERT INTO {} (job_id) VALUES (%s)").format(
            sql.Identifier(schema, "job_parent")), [parent])

    with Conveyor(database_url, schema=schema) as cv:
        [running] = cv.fetch("p")
        cv.complete(running, "out")
        [step] = cv.fetch("c")

    assert step.id == str(waiting) and step.dependency_outputs == {str(parent): "out"}
    with psycopg.connect(database_url, autocommit=True) as conn:
        marked = conn.execute(sql.SQL("SELECT has_dependents FROM {} WHERE id = %s").format(
            sql.Identifier(schema, "job")), [parent]).fetchone()
        parents_table = conn.execute("SELECT to_regclass(%s)",
                                     [f'"{schema}".job_parent']).fetchone()
    assert marked == (True,) and parents_table == (None,)
