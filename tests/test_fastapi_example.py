"""examples/fastapi_jobs.py: a FastAPI app that sends jobs and reports their status."""

from __future__ import annotations

import contextlib
import importlib.util
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from test_worker import running, wait_until


def load_example(database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", database_url)
    monkeypatch.setenv("CONVEYOR_SCHEMA", schema)
    path = Path(__file__).resolve().parents[1] / "examples" / "fastapi_jobs.py"
    spec = importlib.util.spec_from_file_location("fastapi_jobs_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


@contextlib.asynccontextmanager
async def serving(example: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The example app with its lifespan running, and a client that calls it."""
    app = example.app
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_the_example_sends_a_job_and_reports_its_progress_and_output(
    database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load_example(database_url, schema, monkeypatch)
    async with serving(example) as client:
        sent = await client.post("/reports", json={"customer_id": "c-1", "months": 3})
        job_id = sent.json()["job"]
        waiting = await client.get(f"/jobs/{job_id}")

        seen: list[dict[str, Any]] = []

        async def reached(state: str, *, with_progress: bool = False) -> bool:
            seen.append((await client.get(f"/jobs/{job_id}")).json())
            return bool(seen[-1]["state"] == state and (seen[-1]["progress"] or not with_progress))

        async with running(example.conveyor):
            await wait_until(lambda: reached("active", with_progress=True))
            in_progress = seen[-1]
            await wait_until(lambda: reached("completed"))
        done = seen[-1]

    assert sent.status_code == 202
    assert waiting.json()["state"] == "created"
    assert in_progress["progress"]["message"].startswith("month ")
    assert done["output"]["months"][-1] == {"month": 3, "total": 300}


async def test_the_example_answers_404_for_an_unknown_job_and_422_for_bad_input(
    database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load_example(database_url, schema, monkeypatch)
    async with serving(example) as client:
        unknown = await client.get(f"/jobs/{uuid.uuid4()}")
        malformed = await client.get("/jobs/not-a-uuid")
        too_long = await client.post("/reports", json={"customer_id": "c-1", "months": 99})

    assert (unknown.status_code, malformed.status_code, too_long.status_code) == (404, 422, 422)
