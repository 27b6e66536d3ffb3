"""Job data: whatever JSON can hold comes back as it went in; anything else is refused
with a typed error. Properties checked with generated values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Conveyor
from conveyor._ops.validate import encode_json
from conveyor.errors import InvalidPayload

# PostgreSQL's jsonb cannot hold NUL characters; everything else in JSON it can.
json_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(json_text, children, max_size=5),
    max_leaves=20,
)


def same_json(stored: Any, sent: Any) -> bool:
    """Equality as JSON means it. jsonb keeps numbers as decimals, so a float written
    with an exponent (1e16) comes back as the integer it equals."""
    if isinstance(sent, float):
        return isinstance(stored, int | float) and float(stored) == sent
    if isinstance(sent, list):
        return isinstance(stored, list) and len(stored) == len(sent) and all(
            same_json(a, b) for a, b in zip(stored, sent, strict=True))
    if isinstance(sent, dict):
        return isinstance(stored, dict) and stored.keys() == sent.keys() and all(
            same_json(stored[key], sent[key]) for key in sent)
    return type(stored) is type(sent) and stored == sent


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=json_values)
def test_any_json_value_round_trips_through_the_database(cv: Conveyor, data: Any) -> None:
    job_id = cv.send("roundtrip", data)

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert same_json(job.data, data)


@given(value=st.from_type(object) | st.text() | st.floats() | json_values)
def test_encoding_either_gives_json_or_raises_invalid_payload(value: Any) -> None:
    try:
        text = encode_json(value, 1 << 20, "data")
    except InvalidPayload:
        return
    if text is not None:
        json.loads(text)


def test_integers_past_64_bits_come_back_exact_among_other_numbers(cv: Conveyor) -> None:
    data = {"big": 2**64, "low": -(2**63) - 1, "huge": [10**30, 1.5, 7],
            "text": "order 1234567890123456789 " + "x" * 3000, "ids": list(range(200))}
    job_id = cv.send("roundtrip", data)

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.data == data
    assert type(job.data["big"]) is int and type(job.data["huge"][0]) is int
