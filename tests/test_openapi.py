"""The REST API against its own OpenAPI spec: schemathesis sends generated
requests, valid and invalid, to every operation of a real server; no answer may be
a 5xx, and every answer must match the spec (status, content type, body).

Besides what the spec suggests, the generated bodies and queries get values that
a careless or hostile client sends and a spec never describes: NaN and
infinities (which Python's JSON reader takes), lone surrogates (``\\ud800``
escapes), integers past 64 bits, empty strings and lists of them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks as openapi_checks
from web_server import serve

from conveyor.web import create_app

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def base_url(database_url: str, schema: str) -> Iterator[str]:
    with serve(create_app(dsn=database_url, schema=schema)) as url:
        yield url


# The spec does not depend on the database: an app that never connects gives it.
spec = schemathesis.openapi.from_dict(create_app(dsn="postgresql://127.0.0.1:1/unused").openapi())

CRAFTED = st.sampled_from([math.nan, math.inf, -math.inf, "a\ud800b", "\udfff", 10**30,
                           -(10**30), "", [math.inf], True, "²"])
CRAFTED_TEXT = st.sampled_from(["NaN", "Infinity", "-1e999", "9" * 5000, "²", "\ufffd", "",
                                "\x00"])
"""Query values; a lone surrogate cannot go in a URL (test_web_input.py sends its
UTF-8-like bytes by hand)."""


def _with_one_crafted(values: Any, crafted: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``values`` (a body or a query), or it with one field set to a crafted value."""
    if not isinstance(values, dict) or not values:
        return st.just(values)
    return st.one_of(st.just(values), st.tuples(st.sampled_from(sorted(values)), crafted).map(
        lambda field: {**values, field[0]: field[1]}))


@spec.hook
def before_generate_body(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    return strategy.flatmap(lambda body: _with_one_crafted(body, CRAFTED))


@spec.hook
def before_generate_query(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    return strategy.flatmap(lambda query: _with_one_crafted(query, CRAFTED_TEXT))


@spec.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_generated_request_gets_a_server_error_or_an_answer_off_the_spec(
    case: schemathesis.Case, base_url: str,
) -> None:
    extra: dict[str, Any] = {}
    if isinstance(case.body, dict | list) and _not_strict_json(case.body):
        # requests refuses to write NaN: send the bytes such a client sends.
        extra = {"data": json.dumps(case.body, allow_nan=True).encode(),
                 "headers": {"content-type": "application/json"}}
    case.call_and_validate(base_url=base_url, checks=CHECKS, **extra)


def _not_strict_json(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_strict_json(item) for item in value.values())
    if isinstance(value, list):
        return any(_not_strict_json(item) for item in value)
    return False
