"""Bad input raises a typed error before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor import AsyncConveyor, Conveyor
from conveyor.errors import (
    ConveyorError,
    InvalidArgument,
    InvalidOption,
    InvalidPayload,
    InvalidQueueName,
    InvalidSchemaName,
    PayloadTooLarge,
    UnknownOption,
)


def assert_nothing_written(cv: Conveyor) -> None:
    assert cv.list_queues() == []


@pytest.mark.parametrize(
    "name", ["", " ", "has space", "semi;colon", "quote'", "-leading", "x" * 129, 42, None]
)
def test_an_invalid_queue_name_is_refused(cv: Conveyor, name: Any) -> None:
    with pytest.raises(InvalidQueueName):
        cv.send(name, {})
    assert_nothing_written(cv)


@pytest.mark.parametrize("name", ["emails\n", "emails\n\n", "\nemails", "emails\r", "emails\t"])
def test_a_queue_name_with_a_line_break_or_tab_is_refused(cv: Conveyor, name: str) -> None:
    with pytest.raises(InvalidQueueName):
        cv.send(name, {})
    assert_nothing_written(cv)


def test_a_schema_name_with_a_trailing_newline_is_refused(database_url: str) -> None:
    with pytest.raises(InvalidSchemaName):
        Conveyor(database_url, schema="conveyor\n")


@pytest.mark.parametrize("name", ["a", "document-parse", "tenant:42/emails", "v1.reports_x"])
def test_usual_queue_names_are_accepted(cv: Conveyor, name: str) -> None:
    assert cv.send(name, {}) is not None


@pytest.mark.parametrize(
    "data", [object(), {"f": float("nan")}, {"f": float("inf")}, {1, 2}, {"s": "nul\x00"}, b"raw"]
)
def test_data_that_is_not_json_is_refused(cv: Conveyor, data: Any) -> None:
    with pytest.raises(InvalidPayload):
        cv.send("q", data)
    assert_nothing_written(cv)


def test_data_over_the_payload_limit_is_refused(database_url: str, schema: str) -> None:
    with Conveyor(database_url, schema=schema, max_payload_bytes=1000) as small:
        assert small.send("q", "x" * 900) is not None
        with pytest.raises(PayloadTooLarge, match="1000"):
            small.send("q", "x" * 1001)
        assert small.queue_counts("q")["created"] == 1  # type: ignore[index]


def test_the_default_payload_limit_is_one_mebibyte(cv: Conveyor) -> None:
    with pytest.raises(PayloadTooLarge):
        cv.send("q", "x" * (1024 * 1024))
    assert_nothing_written(cv)


@pytest.mark.parametrize(
    "options",
    [
        {"start_after": -1}, {"retry_delay": -0.5}, {"expire_in": 0},
        {"retention": timedelta(seconds=-1)}, {"retry_delay_max": 0}, {"delete_after": -1},
        {"singleton_seconds": 0}, {"start_after": float("nan")}, {"start_after": "60"},
        {"retry_limit": -1}, {"retry_limit": 1.5}, {"priority": True}, {"priority": 2**31},
        {"retry_backoff": "yes"}, {"singleton_key": ""}, {"dead_letter": "bad name"},
        {"start_after": datetime(2030, 1, 1)}, {"group_key": ""}, {"group_key": 42},
        {"group_key": "x" * 256}, {"group_key": "nul\x00"}, {"singleton_next_slot": "yes"},
        {"debounce_seconds": 0}, {"debounce_seconds": -1, "singleton_key": "k"},
        {"retry_delay": 10**400}, {"expire_in": 1e300}, {"retention": timedelta(days=36_526)},
    ],
)
def test_an_option_with_a_bad_value_is_refused(cv: Conveyor, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        cv.send("q", {}, **options)
    assert_nothing_written(cv)


def test_a_naive_datetime_error_says_how_to_fix_it(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="aware datetime"):
        cv.send("q", {}, start_after=datetime(2030, 1, 1))


@pytest.mark.parametrize("text", [
    "2030-01-01T12:00:00+01:00", "2030-01-01T11:00:00Z", "2030-01-01 11:00:00+00:00",
    "2030-01-01T11:00:00.000Z",
])
def test_start_after_takes_iso_8601_text_with_an_offset(cv: Conveyor, text: str) -> None:
    job = cv.get_job(cv.send("q", {}, start_after=text))  # type: ignore[arg-type]

    assert job is not None
    assert job.start_after == datetime(2030, 1, 1, 11, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2030-01-01T11:00:00", "2030-01-01", "tomorrow", "60", ""])
def test_start_after_text_without_an_offset_or_not_iso_is_refused_saying_what_works(
    cv: Conveyor, text: str,
) -> None:
    with pytest.raises(InvalidOption, match="ISO 8601 text with an offset") as info:
        cv.send("q", {}, start_after=text)
    assert "aware datetime" in str(info.value) and "timedelta" in str(info.value)
    assert_nothing_written(cv)


def test_a_bad_delay_type_names_every_form_start_after_takes(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="aware datetime, or ISO 8601"):
        cv.send("q", {}, start_after=[60])  # type: ignore[arg-type]


def test_an_unknown_option_is_refused_by_name(cv: Conveyor) -> None:
    with pytest.raises(UnknownOption, match="retries"):
        cv.send("q", {}, retries=3)  # type: ignore[call-arg]
    assert_nothing_written(cv)


def test_an_unknown_option_error_suggests_the_closest_name(cv: Conveyor) -> None:
    with pytest.raises(UnknownOption, match=r"retry_limt \(did you mean retry_limit\?\)"):
        cv.send("q", {}, retry_limt=3)  # type: ignore[call-arg]


@pytest.mark.parametrize("client", [Conveyor, AsyncConveyor])
def test_a_mistyped_client_argument_is_refused_naming_the_valid_ones(
    client: type[Conveyor] | type[AsyncConveyor], database_url: str,
) -> None:
    with pytest.raises(UnknownOption) as info:
        client(database_url, pool_sise=3)  # type: ignore[call-arg]

    assert "pool_sise (did you mean pool_size?)" in str(info.value)
    for name in ("dsn", "schema", "pool_size", "connect_timeout", "statement_deadline"):
        assert name in str(info.value)


def test_an_invalid_custom_id_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidArgument):
        cv.send("q", {}, id="order-42")
    assert_nothing_written(cv)


def test_an_invalid_batch_size_is_refused(cv: Conveyor) -> None:
    with pytest.raises(InvalidArgument):
        cv.fetch("q", batch_size=0)


def test_an_output_that_is_not_json_is_refused_and_the_job_stays_active(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")

    with pytest.raises(InvalidPayload):
        cv.complete(job, output=object())

    stored = cv.get_job(job.id)
    assert stored is not None and stored.state == "active"


def test_a_huge_error_message_is_cut_rather_than_refused(cv: Conveyor) -> None:
    cv.send("q", {})
    [job] = cv.fetch("q")

    assert cv.fail(job, RuntimeError("x" * 2_000_000)) == 1

    stored = cv.get_job(job.id)
    assert stored is not None and stored.error is not None
    assert stored.error["message"].endswith("characters cut]")


def test_every_typed_error_is_a_conveyor_error_and_a_builtin() -> None:
    assert issubclass(InvalidQueueName, ConveyorError) and issubclass(InvalidQueueName, ValueError)
    assert issubclass(UnknownOption, ConveyorError) and issubclass(UnknownOption, TypeError)


def test_text_that_spells_a_nul_escape_is_not_a_nul(cv: Conveyor) -> None:
    data = {"\\u0000": "C:\\u0000\\path", "plain": "\\\\u0000"}

    job = cv.get_job(cv.send("q", data))  # type: ignore[arg-type]

    assert job is not None and job.data == data


@pytest.mark.parametrize("state", [True, 3, 1.5, [None], ["done"]])
def test_a_job_filter_with_a_state_that_is_no_state_is_refused(cv: Conveyor, state: Any) -> None:
    with pytest.raises(InvalidArgument):
        cv.find_jobs("q", state=state)
