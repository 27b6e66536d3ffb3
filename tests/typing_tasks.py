"""Checked by mypy in test_tasks_typed.py, never run: each line marked
``# wrong`` must be the only place mypy reports an error."""

from __future__ import annotations

from collections.abc import Awaitable

import psycopg

from conveyor import AsyncConveyor, Conveyor, Job

cv = Conveyor()
acv = AsyncConveyor()


@cv.typed_task("resize")
def resize(image_id: str, width: int = 800) -> dict[str, int]:
    return {"width": width}


@acv.typed_task("embed")
async def embed(chunk: str, *, model: str = "small") -> list[float]:
    return [0.0]


@cv.task("parse")
def parse(job: Job) -> str:
    return str(job.data)


def right(conn: psycopg.Connection) -> None:
    sent: str | None = resize.send("img-1", width=400)
    resize.send(image_id="img-2")
    resize.send_with(priority=5, conn=conn)("img-3", 100)
    output: dict[str, int] = resize("img-4")
    parse.send({"document_id": "d1"}, priority=1)
    waiting: Awaitable[str | None] = embed.send("text", model="large")
    del sent, output, waiting


def wrong(conn: psycopg.Connection) -> None:
    resize.send(42)  # wrong
    resize.send("img-1", height=400)  # wrong
    resize.send()  # wrong
    resize.send_with(priority="high")("img-1")  # wrong
    resize.send_with(prio=5)("img-1")  # wrong
    embed.send("text", "large")  # wrong
    parse.send({"document_id": "d1"}, urgent=True)  # wrong
    sent: str | None = embed.send("text")  # wrong
    del sent
