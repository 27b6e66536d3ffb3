"""Every Python snippet in the README and docs/ runs, against a real PostgreSQL.

Snippets are written for readers, so they lean on names a reader supplies (a
``parse`` function, an ``order_id``, an ``app``, a SQLAlchemy ``engine`` and
``Order`` model): those come from ``_reader_names``, stand-ins that behave
plausibly. ``cv`` is a started client on the test's schema,
and ``Conveyor()`` finds the same schema through the environment. ``run()`` runs
the worker until no job is due or running (at most ``RUN_LIMIT`` seconds), so a
snippet ending in ``cv.run()`` shows its handlers at work and returns; a metrics
server takes a free port. Top-level
``await`` and ``async with`` run in an event loop.

A snippet that cannot run here says so in the line before it:
``<!-- docs-test: skip (the reason) -->``.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from web_server import free_port

from conveyor import AsyncConveyor, Conveyor, Job

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- docs-test: skip \((?P<skip>[^)]*)\) -->\n)?```python\n(?P<code>.*?)```", re.S)
RUN_LIMIT = 15.0


def _snippets() -> Iterator[Any]:
    for path in FILES:
        text = path.read_text("utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            name = f"{path.relative_to(ROOT)}:{line}"
            marks = [pytest.mark.skip(reason=match["skip"])] if match["skip"] else []
            yield pytest.param(match["code"], id=name, marks=marks)


def _worker_of(cv: Conveyor | AsyncConveyor) -> Any:
    twin = cv._twin if isinstance(cv, Conveyor) else cv
    return None if twin is None else twin._active_worker


def _stop_when_idle(cv: Conveyor | AsyncConveyor, database_url: str, schema: str) -> None:
    """Stop ``cv``'s worker once no job is due or running (or after ``RUN_LIMIT``)."""
    deadline = time.monotonic() + RUN_LIMIT
    idle = 0
    while time.monotonic() < deadline and idle < 3:
        time.sleep(0.2)
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM \"{schema}\".job WHERE state = 'active' "
                "OR (state < 'active' AND start_after <= now())").fetchone()
        idle = idle + 1 if row and row[0] == 0 else 0
    while (worker := _worker_of(cv)) is None and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    if worker is not None:
        worker.stop()


@pytest.fixture
def bounded_runs(
    monkeypatch: pytest.MonkeyPatch, database_url: str, schema: str
) -> None:
    """``run()`` of either client returns once the work is done."""
    sync_run, async_run = Conveyor.run, AsyncConveyor.run

    def run(self: Conveyor, **options: Any) -> None:
        threading.Thread(target=_stop_when_idle, args=(self, database_url, schema),
                         daemon=True).start()
        sync_run(self, **{**options, "handle_signals": False})

    async def arun(self: AsyncConveyor, **options: Any) -> None:
        threading.Thread(target=_stop_when_idle, args=(self, database_url, schema),
                         daemon=True).start()
        await async_run(self, **{**options, "handle_signals": False})

    monkeypatch.setattr(Conveyor, "run", run)
    monkeypatch.setattr(AsyncConveyor, "run", arun)


@pytest.fixture
def free_metrics_ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A snippet's metrics server takes a free port rather than the one it names
    (which another process may hold), and stops after the snippet."""
    from conveyor import metrics

    serve, servers = metrics.serve_metrics, []

    def serve_on_a_free_port(port: int, addr: str = "127.0.0.1", **options: Any) -> Any:
        server = serve(free_port(), addr, **options)
        servers.append(server)
        return server

    monkeypatch.setattr(metrics, "serve_metrics", serve_on_a_free_port)
    yield
    for server in servers:
        server.shutdown()


class FloodWait(Exception):
    def __init__(self, seconds: int) -> None:
        super().__init__(f"wait {seconds} s")
        self.seconds = seconds


def _reader_names(database_url: str, schema: str) -> dict[str, Any]:
    """The names snippets take from their reader's own code."""
    from fastapi import FastAPI

    async def parse_document(document_id: str) -> int:
        return 12

    sent: list[tuple[Any, Any]] = []
    return {
        **_sqlalchemy_names(database_url, schema),
        "asyncio": asyncio, "psycopg": psycopg, "Job": Job, "FloodWait": FloodWait,
        "url": f"{database_url}{'&' if '?' in database_url else '?'}"
               f"options=-csearch_path%3D{schema}",
        "dsn": database_url, "order_id": str(uuid.uuid4()), "app": FastAPI(),
        "parse": lambda document_id: 12, "parse_document": parse_document,
        "telegram": SimpleNamespace(send=lambda chat, text: sent.append((chat, text))),
        "alert": lambda message: None, "pages": lambda data: range(3), "total": 3,
        "render": lambda page: None, "build_report": lambda job: {"rows": 3},
    }


def _sqlalchemy_names(database_url: str, schema: str) -> dict[str, Any]:
    """An engine on the test's schema and an ``Order`` model of its ``orders`` table."""
    from sqlalchemy import String, create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = "orders"
        id = mapped_column(String, primary_key=True)
        status = mapped_column(String)

    url = make_url(database_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    return {"Session": Session, "engine": engine, "Order": Order}


@pytest.mark.parametrize("code", list(_snippets()))
def test_the_snippet_runs(
    code: str, database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch,
    bounded_runs: None, free_metrics_ports: None,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CONVEYOR_SCHEMA", schema)
    monkeypatch.delenv("CONVEYOR_DATABASE_URL", raising=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".orders (id text PRIMARY KEY, status text)')
    with Conveyor(database_url, schema=schema) as cv:
        names = {"cv": cv, **_reader_names(database_url, schema)}
        _execute(code, names)


def _execute(code: str, names: dict[str, Any]) -> None:
    compiled = compile(code, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:
        coroutine: Callable[[], Any] = lambda: eval(compiled, names)  # noqa: E731
        asyncio.run(coroutine())
    else:
        exec(compiled, names)


# --- docs/reference.md against the code -----------------------------------------------

REFERENCE = (ROOT / "docs" / "reference.md").read_text("utf-8")


def _reference_rows() -> list[list[str]]:
    """The cells of every table row of the reference, backticks and escapes removed."""
    rows = []
    for line in REFERENCE.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([c.strip().replace("\\|", "|").strip("`") for c in cells])
    return rows


def _type_text(annotation: Any) -> str:
    """``list[conveyor.job.Job]`` as ``list[Job]``, ``<class 'int'>`` as ``int``."""
    text = annotation.__name__ if isinstance(annotation, type) and not getattr(
        annotation, "__args__", None) else str(annotation)
    return re.sub(r"\b(?:[a-z_]+\.)+([A-Za-z_]+)", r"\1", text).replace("NoneType", "None")


def _documented_fields(type_name: str) -> set[str]:
    """The field names in the table that follows the type's heading, or the
    paragraph that starts with its name."""
    found = re.search(rf"^(?:## `{type_name}`$|`{type_name}` \()", REFERENCE, re.M)
    assert found is not None, f"{type_name} has no heading or paragraph of its own"
    start = found.start()
    table = REFERENCE[start:].split("\n\n| field")[1].split("\n\n")[0]
    return {row.split("|")[1].strip().strip("`") for row in table.splitlines()[2:]}


@pytest.mark.parametrize("type_name", [
    "Job", "JobPage", "Queue", "Group", "Schedule", "QueueSummary", "QueueStats", "Health",
    "WorkerInfo", "LeaderLease", "MigrationResult", "HookEvent",
])
def test_the_reference_lists_every_field_of_each_type(type_name: str) -> None:
    import dataclasses

    import conveyor
    from conveyor._db.migrate import MigrationResult
    from conveyor.hooks import HookEvent

    kind = {"MigrationResult": MigrationResult, "HookEvent": HookEvent}.get(
        type_name) or getattr(conveyor, type_name)
    fields = {f.name for f in dataclasses.fields(kind) if not f.name.startswith("_")}

    assert _documented_fields(type_name) == fields


def test_the_reference_gives_every_public_method_with_its_return_type() -> None:
    documented = {row[0].split("(")[0]: row[1] for row in _reference_rows()
                  if "(" in row[0] and len(row) >= 3}
    methods = {name for name in dir(Conveyor) if not name.startswith("_")
               and callable(getattr(Conveyor, name))}

    assert set(documented) == methods
    for name in methods:
        returns = inspect.signature(getattr(Conveyor, name)).return_annotation
        if returns is not inspect.Signature.empty and not isinstance(returns, str):
            assert documented[name] == _type_text(returns), name
