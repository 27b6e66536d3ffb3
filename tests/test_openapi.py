"""The REST API against its own OpenAPI spec: schemathesis sends generated
requests, valid and invalid, to every operation of a real server; no answer may be
a 5xx, and every answer must match the spec (status, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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


@spec.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_generated_request_gets_a_server_error_or_an_answer_off_the_spec(
    case: schemathesis.Case, base_url: str,
) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS)
