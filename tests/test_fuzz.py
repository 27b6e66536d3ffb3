"""The public API under generated input: every call either does its job or raises a
typed ``ConveyorError``, never another exception, and a call that raises changes
nothing. Option names come from the documented ones and some that are not;
values are of every type, including the awkward ones (NaN, huge integers, naive
datetimes, NUL characters, nested containers)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from conveyor import Conveyor
from conveyor._ops.options import JOB_OPTIONS
from conveyor.errors import ConveyorError

ODD_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70), st.integers(-5, 5),
    st.sampled_from([2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan),
    ODD_TEXT, st.sampled_from(["", "q", "\x00", "1 day", "standard", "stately"]),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=3)),
    st.lists(st.integers(), max_size=3), st.dictionaries(ODD_TEXT, st.integers(), max_size=3),
    st.uuids().map(str), st.binary(max_size=8),
)
OPTION_NAMES = st.sampled_from([*sorted(JOB_OPTIONS), "start_in", "Priority", "trace_context", "x"])
OPTIONS = st.dictionaries(OPTION_NAMES, VALUES, max_size=4)
QUEUES = st.one_of(st.sampled_from(["fuzz", "fuzz-2", "a/b:c.d"]), ODD_TEXT)
DATA = st.one_of(VALUES, st.dictionaries(ODD_TEXT, VALUES, max_size=3))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def counts(conn: psycopg.Connection[Any], schema: str) -> tuple[int, int]:
    row = conn.execute(sql.SQL(
        "SELECT (SELECT count(*) FROM {s}.job), (SELECT count(*) FROM {s}.queue)"
    ).format(s=sql.Identifier(schema))).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def typed_or_done(call: Any, conn: psycopg.Connection[Any], schema: str) -> Any:
    """``call()``'s result; when it raises, the error is typed and nothing changed."""
    before = counts(conn, schema)
    try:
        return call()
    except ConveyorError:
        assert counts(conn, schema) == before
        return None


@FUZZ
@given(queue=QUEUES, data=DATA, options=OPTIONS)
def test_send_does_its_job_or_raises_a_typed_error(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, queue: str, data: Any,
    options: dict[str, Any],
) -> None:
    conn.autocommit = True
    job_id = typed_or_done(lambda: cv.send(queue, data, **options), conn, schema)
    if job_id is not None:
        job = cv.get_job(job_id)
        assert job is not None and job.queue == queue


@FUZZ
@given(queue=QUEUES, items=st.lists(st.one_of(
    OPTIONS.map(lambda o: {"data": o.pop("data", None), **o}), VALUES), max_size=4))
def test_insert_writes_all_its_items_or_none(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, queue: str, items: list[Any],
) -> None:
    conn.autocommit = True
    before = counts(conn, schema)[0]
    inserted = typed_or_done(lambda: cv.insert(queue, items), conn, schema)
    if inserted is not None:
        assert counts(conn, schema)[0] == before + inserted


@FUZZ
@given(queue=QUEUES, batch=VALUES, ref=VALUES, output=DATA, error=DATA,
       filters=st.dictionaries(st.sampled_from(
           ["state", "singleton_key", "key", "search", "data_contains", "limit", "cursor"]),
           VALUES, max_size=3))
def test_claims_outcomes_and_listings_do_their_job_or_raise_a_typed_error(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, queue: str, batch: Any,
    ref: Any, output: Any, error: Any, filters: dict[str, Any],
) -> None:
    conn.autocommit = True
    cv.send("fuzz", {"n": 1})
    typed_or_done(lambda: cv.fetch(queue, batch_size=batch), conn, schema)
    typed_or_done(lambda: cv.complete(ref, output), conn, schema)
    typed_or_done(lambda: cv.fail(ref, error), conn, schema)
    typed_or_done(lambda: cv.cancel(ref), conn, schema)
    typed_or_done(lambda: cv.get_job(ref), conn, schema)
    typed_or_done(lambda: cv.find_jobs(queue, **filters), conn, schema)
    typed_or_done(lambda: cv.queue_counts(queue), conn, schema)


def test_the_fuzzed_values_include_the_awkward_ones() -> None:
    """The strategies above reach what they are meant to (a guard against a strategy
    that quietly stops generating them)."""
    seen: set[str] = set()

    @settings(max_examples=400, database=None)
    @given(value=VALUES)
    def collect(value: Any) -> None:
        if isinstance(value, float) and math.isnan(value):
            seen.add("nan")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**64:
            seen.add("huge")
        if isinstance(value, datetime) and value.tzinfo is None:
            seen.add("naive")
        if isinstance(value, str) and "\x00" in value:
            seen.add("nul")

    collect()
    assert seen == {"nan", "huge", "naive", "nul"}
