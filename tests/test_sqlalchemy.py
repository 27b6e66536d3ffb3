"""Sending inside a SQLAlchemy Session's transaction (conveyor.contrib.sqlalchemy)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from conveyor import AsyncConveyor, Conveyor, JobState
from conveyor.contrib.sqlalchemy import async_psycopg_connection, psycopg_connection
from conveyor.errors import ConfigurationError


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    yield engine
    engine.dispose()


@pytest.fixture
async def async_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    yield engine
    await engine.dispose()


def waiting(cv: Conveyor, queue: str) -> int:
    return cv.queue_counts(queue)[JobState.CREATED]


def test_a_job_sent_in_a_session_that_rolls_back_does_not_exist(
    cv: Conveyor, engine: Engine
) -> None:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        cv.send("orders", {"order_id": 1}, conn=psycopg_connection(session))
        session.rollback()

    assert waiting(cv, "orders") == 0


def test_a_job_sent_in_a_session_commits_with_it(cv: Conveyor, engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        job_id = cv.send("orders", {"order_id": 1}, conn=psycopg_connection(session))
        assert cv.get_job(job_id) is None  # type: ignore[arg-type]  # not committed yet

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.data == {"order_id": 1}


def test_a_failed_session_transaction_takes_its_jobs_with_it(
    cv: Conveyor, engine: Engine
) -> None:
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        cv.insert("orders", [{"data": i} for i in range(3)], conn=psycopg_connection(session))
        raise RuntimeError("the order could not be saved")

    assert waiting(cv, "orders") == 0


async def test_a_job_sent_in_an_async_session_commits_or_rolls_back_with_it(
    acv: AsyncConveyor, async_engine: AsyncEngine
) -> None:
    async with AsyncSession(async_engine) as session:
        await acv.send("orders", 1, conn=await async_psycopg_connection(session))
        await session.rollback()
    async with AsyncSession(async_engine) as session, session.begin():
        kept = await acv.send("orders", 2, conn=await async_psycopg_connection(session))

    counts = await acv.queue_counts("orders")
    job = await acv.get_job(kept)  # type: ignore[arg-type]
    assert counts[JobState.CREATED] == 1 and job is not None and job.data == 2


def test_a_session_on_another_driver_gets_a_clear_error() -> None:
    with Session(create_engine("sqlite://")) as session, pytest.raises(
        ConfigurationError, match=r"postgresql\+psycopg://"
    ):
        psycopg_connection(session)
