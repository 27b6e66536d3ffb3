"""Conveyor and AsyncConveyor: the same operations from one implementation."""

from __future__ import annotations

import inspect

import pytest

from conveyor import AsyncConveyor, Conveyor, JobState

LIFECYCLE = {"start", "stop"}
# Plain data on both faces (or, for make_worker, a worker not yet running): no I/O,
# nothing to await.
REGISTRATION = {"work", "task", "typed_task", "on", "make_worker"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and name not in LIFECYCLE
    }


def test_both_clients_offer_the_same_methods_with_the_same_signatures() -> None:
    sync_methods = public_methods(Conveyor)
    async_methods = public_methods(AsyncConveyor)

    assert sync_methods.keys() == async_methods.keys()
    assert {"send", "insert", "fetch", "complete", "fail", "get_job"} <= sync_methods.keys()
    for name, signature in sync_methods.items():
        assert signature == async_methods[name], name


def test_every_async_method_that_does_io_is_a_coroutine_function() -> None:
    for name in public_methods(AsyncConveyor).keys() - REGISTRATION:
        assert inspect.iscoroutinefunction(getattr(AsyncConveyor, name)), name


def test_every_method_is_documented() -> None:
    for name in public_methods(Conveyor):
        assert getattr(Conveyor, name).__doc__, name


async def test_the_async_client_runs_the_whole_lifecycle(acv: AsyncConveyor) -> None:
    await acv.create_queue("docs", retry_limit=0, dead_letter="docs-dlq")
    first = await acv.send("docs", {"n": 1}, priority=5)
    assert await acv.insert("docs", [{"data": {"n": n}} for n in range(2, 5)]) == 3

    jobs = await acv.fetch("docs", batch_size=2)
    assert jobs[0].id == first
    assert await acv.complete(jobs[0], output={"ok": True}) == 1
    assert await acv.fail(jobs[1], ValueError("bad")) == 1
    assert await acv.cancel((await acv.fetch("docs"))[0]) == 1

    counts = await acv.queue_counts("docs")
    assert counts[JobState.COMPLETED] == 1
    assert counts[JobState.FAILED] == 1
    assert counts[JobState.CANCELLED] == 1
    assert counts[JobState.CREATED] == 1
    assert len(await acv.find_jobs("docs-dlq")) == 1
    assert [q.name for q in await acv.list_queues()] == ["docs", "docs-dlq"]


def test_a_client_is_usable_with_start_and_stop(database_url: str, schema: str) -> None:
    cv = Conveyor(database_url, schema=schema)
    assert not cv.started
    cv.start()
    try:
        assert cv.started
        assert cv.send("q", {}) is not None
    finally:
        cv.stop()
    assert not cv.started
    cv.stop()  # a second stop does nothing


async def test_the_async_client_says_whether_it_is_started(database_url: str, schema: str) -> None:
    acv = AsyncConveyor(database_url, schema=schema)
    assert not acv.started
    async with acv:
        assert acv.started
    assert not acv.started


@pytest.mark.parametrize("cls", [Conveyor, AsyncConveyor])
def test_a_client_names_its_schema(cls: type, database_url: str) -> None:
    assert cls(database_url, schema="my_app_jobs").schema == "my_app_jobs"


