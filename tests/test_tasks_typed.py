"""Tasks: decorated handlers that send to their own queue, and typed tasks whose
``send`` takes the function's own parameters (checked by mypy on typing_tasks.py)."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import psycopg
import pytest
from mypy import api as mypy_api
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor.errors import InvalidArgument, InvalidOption
from conveyor.tasks import JobCall

# Tasks of a module-level client, for the process executor: a worker process
# imports them by name.
_declared = AsyncConveyor("postgresql://localhost/unused", migrate=False)


@_declared.task("pid")
def whose_process(job: Job) -> int:
    return os.getpid()


@_declared.typed_task("scale")
def scale(value: int, factor: int = 2) -> int:
    return value * factor


def test_mypy_flags_wrong_payloads_and_accepts_right_ones() -> None:
    snippet = Path(__file__).with_name("typing_tasks.py")
    report, _, _ = mypy_api.run(["--strict", "--no-error-summary", str(snippet)])
    flagged = {int(line) for line in re.findall(r"typing_tasks\.py:(\d+): error", report)}
    marked = {number for number, text in enumerate(snippet.read_text().splitlines(), 1)
              if text.endswith("# wrong")}
    assert marked and flagged == marked, report


def test_a_task_is_still_callable_as_its_handler(cv: Conveyor) -> None:
    @cv.task("q")
    def describe(job: Job) -> str:
        return f"job {job.data}"

    job_id = describe.send(7)
    assert job_id is not None
    job = cv.get_job(job_id)
    assert job is not None and describe(job) == "job 7"
    assert describe.__name__ == "describe"


def test_a_task_sends_to_its_queue_with_options(cv: Conveyor) -> None:
    @cv.task("reports")
    def report(job: Job) -> None:
        return None

    job_id = report.send({"day": "monday"}, priority=7)

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert (job.queue, job.data, job.priority) == ("reports", {"day": "monday"}, 7)


def test_a_typed_task_stores_its_arguments_by_parameter_name(cv: Conveyor) -> None:
    @cv.typed_task("resize")
    def resize(image_id: str, width: int = 800, **extra: str) -> int:
        return width

    job_id = resize.send("img-1", width=400, format="webp")

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert job.data == {"image_id": "img-1", "width": 400, "format": "webp"}
    assert resize("img-2") == 800


def test_a_typed_task_refuses_arguments_its_function_does_not_take(cv: Conveyor) -> None:
    @cv.typed_task("resize")
    def resize(image_id: str) -> None:
        return None

    with pytest.raises(InvalidArgument, match="height"):
        resize.send("img-1", height=3)  # type: ignore[call-arg]
    assert cv.queue_counts("resize")[JobState.CREATED] == 0


def test_a_typed_task_refuses_positional_only_parameters(cv: Conveyor) -> None:
    def add(a: int, /, b: int) -> int:
        return a + b

    with pytest.raises(InvalidOption, match="positional-only"):
        cv.typed_task("add")(add)


def test_a_typed_task_takes_one_job_at_a_time(cv: Conveyor) -> None:
    with pytest.raises(InvalidOption, match="batch_size"):
        cv.typed_task("add", batch_size=10)


def test_a_typed_task_send_joins_the_callers_transaction(
    cv: Conveyor, conn: psycopg.Connection
) -> None:
    @cv.typed_task("resize")
    def resize(image_id: str) -> None:
        return None

    resize.send_with(conn=conn, priority=3)("img-1")
    conn.rollback()
    assert cv.queue_counts("resize")[JobState.CREATED] == 0

    job_id = resize.send_with(conn=conn, priority=3)("img-2")
    conn.commit()
    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and (job.data, job.priority) == ({"image_id": "img-2"}, 3)


async def test_a_worker_calls_an_async_typed_task_with_the_jobs_data(
    acv: AsyncConveyor,
) -> None:
    @acv.typed_task("greet")
    async def greet(name: str, *, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    job_id = await greet.send("ada", punctuation="?")
    async with running(acv):
        await wait_until(lambda: finished(acv, "greet", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.COMPLETED
    assert job.output == "hello ada?"


async def test_a_worker_runs_a_plain_typed_task_in_a_thread(acv: AsyncConveyor) -> None:
    @acv.typed_task("add")
    def add(a: int, b: int) -> int:
        return a + b

    job_id = await add.send(2, b=3)
    async with running(acv):
        await wait_until(lambda: finished(acv, "add", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.output == 5


async def test_a_typed_task_job_without_an_object_of_arguments_fails(
    acv: AsyncConveyor,
) -> None:
    @acv.typed_task("add")
    def add(a: int, b: int) -> int:
        return a + b

    job_id = await acv.send("add", [2, 3], retry_limit=0)
    async with running(acv):
        await wait_until(lambda: finished(acv, "add", 1))

    job = await acv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.FAILED
    assert job.error is not None and "JSON object" in job.error["message"]


@pytest.mark.slow
async def test_tasks_run_in_worker_processes(acv: AsyncConveyor) -> None:
    acv.work("pid", whose_process, executor="process", concurrency=1)
    acv.work("scale", JobCall(scale), executor="process", concurrency=1)

    pid_job = await acv.send("pid", None)
    scale_job = await acv.send("scale", scale.data(21))
    async with running(acv):
        await wait_until(lambda: finished(acv, "pid", 1), timeout=30)
        await wait_until(lambda: finished(acv, "scale", 1), timeout=30)

    pid = await acv.get_job(pid_job)  # type: ignore[arg-type]
    scaled = await acv.get_job(scale_job)  # type: ignore[arg-type]
    assert pid is not None and scaled is not None
    assert isinstance(pid.output, int) and pid.output != os.getpid()
    assert scaled.output == 42


def test_a_task_defined_inside_a_function_cannot_cross_into_a_process(cv: Conveyor) -> None:
    @cv.typed_task("local")
    def local(value: int) -> int:
        return value

    with pytest.raises(pickle.PicklingError, match="module level"):
        pickle.dumps(JobCall(local))
