"""Row shapes written twice, once in SQL and once in Python, agree by name and
order: the positional tuples and binary COPYs that make sends and claims fast
depend on it, and a field added to one side only fails here, naming the column."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources

import psycopg
import pytest

from conveyor import Conveyor
from conveyor._db import queries, statements
from conveyor._db import rows as _rows
from conveyor._ops import dependencies, enqueue, options
from conveyor.job import Job

CLAIM_KNOWS = ("queue", "state", "lease_expires_at")
"""The job columns a worker's claim leaves out of its rows (``claimed_jobs``)."""

_TYPE_NAMES = {"integer": "int4", "boolean": "bool", "double precision": "float8"}
"""SQL's type names as psycopg's binary COPY names them."""


def _sql(name: str) -> str:
    text = (resources.files("conveyor._db") / "sql" / f"{name}.sql").read_text("utf-8")
    return re.sub(r"--[^\n]*", "", text)


def _top_level_items(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses."""
    items, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:at])
            start = at + 1
    items.append(text[start:])
    return [item.strip() for item in items]


def _selected_names(name: str) -> list[str]:
    """The names of a select list's columns: each one's alias, or its column."""
    return [re.split(r"\s+AS\s+", item, flags=re.IGNORECASE)[-1].split(".")[-1]
            for item in _top_level_items(_sql(name))]


def _copied_names(name: str) -> list[str]:
    """The columns a ``COPY ... (columns) FROM STDIN`` statement names, with its
    fragments in place."""
    statement = next(s for s in statements.CATALOGUE if s.name == name)
    found = re.search(r"\(([^()]*)\)\s*FROM STDIN", queries.render(statement, "conveyor"))
    assert found is not None, f"{name}.sql has no COPY column list"
    return _top_level_items(found.group(1))


DEPENDENCY_FIELDS = ["dependency_outputs", "dependency_counts"]


def _unpacked_names(function: Callable[..., object]) -> list[str]:
    """The names a function unpacks each row into, in order (``id_`` is ``id``):
    ``(...) = row`` or ``for (...) in rows``."""
    tree = ast.parse(inspect.getsource(function))
    targets = [node.targets[0] for node in ast.walk(tree)
               if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
               and node.value.id == "row"]
    targets += [node.target for node in ast.walk(tree) if isinstance(node, ast.For)]
    unpacked = [target for target in targets if isinstance(target, ast.Tuple)]
    assert len(unpacked) == 1, f"{function.__name__} should unpack one row"
    return [element.id.rstrip("_") for element in unpacked[0].elts
            if isinstance(element, ast.Name)]


def _assert_in_step(left_name: str, left: Sequence[str], right_name: str,
                    right: Sequence[str]) -> None:
    for position, (one, other) in enumerate(zip(left, right, strict=False)):
        assert one == other, (
            f"position {position}: {left_name} has {one!r} where {right_name} has {other!r}")
    assert len(left) == len(right), (
        f"{left_name} has {len(left)} columns, {right_name} {len(right)}: "
        f"{list(left[len(right):]) or list(right[len(left):])} on one side only")


def _job_fields() -> list[str]:
    return [field.name for field in dataclasses.fields(Job) if not field.name.startswith("_")]


def test_job_columns_are_the_fields_of_job_in_order() -> None:
    # One column, the dependencies' results, fills two fields (rows._dependencies).
    columns = [name for column in _selected_names("fragments/job_columns")
               for name in (DEPENDENCY_FIELDS if column == "dependency_results" else [column])]
    _assert_in_step("job_columns.sql", columns, "Job", _job_fields())


def test_job_from_row_reads_the_job_columns_in_order() -> None:
    _assert_in_step("job_from_row", _unpacked_names(_rows.job_from_row),
                    "job_columns.sql", _selected_names("fragments/job_columns"))


def test_claimed_columns_are_the_job_columns_a_claim_does_not_know() -> None:
    expected = [name for name in _selected_names("fragments/job_columns")
                if name not in CLAIM_KNOWS]
    _assert_in_step("claimed_columns.sql", _selected_names("fragments/claimed_columns"),
                    "job_columns.sql less what a claim knows", expected)


def test_claimed_jobs_reads_the_claimed_columns_in_order() -> None:
    _assert_in_step("claimed_jobs", _unpacked_names(_rows.claimed_jobs),
                    "claimed_columns.sql", _selected_names("fragments/claimed_columns"))


def test_the_staging_table_has_the_fields_of_job_row_with_the_staged_types() -> None:
    found = re.search(r"\((.*)\)\s*ON COMMIT DROP", _sql("enqueue_stage"), re.DOTALL)
    assert found is not None
    columns = [item.split(None, 1) for item in _top_level_items(found.group(1))]
    _assert_in_step("enqueue_stage.sql", [name for name, _ in columns],
                    "JobRow", options.JobRow._fields)
    _assert_in_step("enqueue_stage.sql's types",
                    [_TYPE_NAMES.get(kind, kind) for _, kind in columns],
                    "STAGED_TYPES", options.STAGED_TYPES)


def test_the_staged_copy_writes_the_fields_of_job_row_in_order() -> None:
    _assert_in_step("enqueue_copy.sql", _copied_names("enqueue_copy"),
                    "JobRow", options.JobRow._fields)


def _column_types(conn: psycopg.Connection, schema: str, table: str) -> dict[str, str]:
    """A table's columns and their types, as psycopg's binary COPY names them (an enum,
    which a binary COPY takes as its label, as text)."""
    rows = conn.execute(
        "SELECT column_name, CASE WHEN data_type = 'USER-DEFINED' THEN 'text' ELSE udt_name END"
        " FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table)).fetchall()
    return dict(rows)


@pytest.mark.parametrize(("copy", "table", "types"), [
    ("enqueue_direct", "job", enqueue._DIRECT_TYPES),
    ("enqueue_flow", "job", enqueue._FLOW_TYPES),
    ("flow_edges", "job_dependency", dependencies._EDGE_TYPES),
])
def test_each_direct_copy_sends_its_columns_with_the_tables_types(
    cv: Conveyor, schema: str, conn: psycopg.Connection, copy: str, table: str,
    types: tuple[str, ...],
) -> None:
    found = _column_types(conn, schema, table)
    _assert_in_step(f"{copy}.sql's column types", [found[name] for name in _copied_names(copy)],
                    "the types the COPY sends", types)


def test_a_flows_steps_are_written_with_the_direct_columns_then_their_own() -> None:
    assert _copied_names("enqueue_flow")[:len(enqueue._DIRECT_TYPES)] == _copied_names(
        "enqueue_direct")


def test_direct_records_have_a_value_for_each_direct_column() -> None:
    defaults = {"now": datetime.now(UTC), "priority": 0, "retry_limit": 2,
                "retry_delay": timedelta(0), "retry_backoff": False, "retry_delay_max": None,
                "expire_in": timedelta(minutes=15), "retention": timedelta(days=14),
                "delete_after": timedelta(days=7), "dead_letter": None}
    plain = options.JobRow(None, "{}", *(None,) * 17)
    direct = enqueue._Direct("shapes", defaults)

    records = list(direct.records([plain, plain._replace(priority=5)]))

    assert [len(record) for record in records] == [len(enqueue._DIRECT_TYPES)] * 2
