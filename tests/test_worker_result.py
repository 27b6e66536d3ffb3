"""What a handler call's exception means as a result (``conveyor.worker.result``)."""

from __future__ import annotations

from datetime import timedelta

from conveyor.errors import NonRetryableError, RetryAfter
from conveyor.worker.result import Failed


def test_a_plain_exception_fails_the_attempt_under_the_jobs_retry_policy() -> None:
    error = ValueError("no such invoice")

    assert Failed.of(error) == Failed(error, retry_after=None, final=False)


def test_retry_after_asks_for_its_delay() -> None:
    error = RetryAfter(300)

    assert Failed.of(error) == Failed(error, retry_after=timedelta(seconds=300), final=False)


def test_a_non_retryable_error_fails_the_job_for_good() -> None:
    error = NonRetryableError("the account is closed")

    assert Failed.of(error) == Failed(error, retry_after=None, final=True)
