"""Security: user text never becomes SQL (injection attempts through every way in
are refused or taken as plain text, and change nothing), and the least-privilege
roles of docs/security.md, granted exactly as that page writes them, can do what
the page says and nothing more."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Conveyor, JobState
from conveyor.errors import (
    DatabaseError,
    InvalidArgument,
    InvalidQueueName,
    InvalidSchemaName,
)
from conveyor.web import WebSettings, create_app

SECURITY_PAGE = Path(__file__).resolve().parent.parent / "docs" / "security.md"
INJECTIONS = ["q'; DROP TABLE job; --", 'q"; DROP SCHEMA public CASCADE; --', "q) OR (1=1",
              "q\\'; SELECT pg_sleep(10); --"]


def job_count(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.job").format(
        sql.Identifier(schema))).fetchone()
    assert row is not None
    return int(row[0])


# --- injection ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_queue_name_carrying_sql_is_refused_and_changes_nothing(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str, name: str
) -> None:
    cv.send("q", {"n": 1})
    before = job_count(conn, schema)

    for call in (lambda: cv.send(name, {}), lambda: cv.fetch(name),
                 lambda: cv.insert(name, [{}]), lambda: cv.create_queue(name),
                 lambda: cv.pause_queue(name)):
        with pytest.raises(InvalidQueueName):
            call()

    assert job_count(conn, schema) == before
    assert [q.name for q in cv.list_queues()] == ["q"]


@pytest.mark.parametrize("name", ["conveyor; DROP SCHEMA public", 'x"."job', "Conveyor", ""])
def test_a_schema_name_carrying_sql_is_refused_before_connecting(
    database_url: str, name: str
) -> None:
    with pytest.raises(InvalidSchemaName):
        Conveyor(database_url, schema=name)


def test_filters_and_search_carrying_sql_are_taken_as_plain_text(
    cv: Conveyor, conn: psycopg.Connection[Any], schema: str
) -> None:
    cv.send("q", {"name": "plain"}, singleton_key="k")
    before = job_count(conn, schema)

    for text in INJECTIONS:
        assert cv.find_jobs("q", search=text).jobs == []
        assert cv.find_jobs("q", singleton_key=text).jobs == []
        assert cv.find_jobs("q", key=text).jobs == []
        assert cv.find_jobs("q", data_contains={"name": text}).jobs == []
        with pytest.raises(InvalidArgument):
            cv.find_jobs("q", cursor=text)

    assert job_count(conn, schema) == before
    assert len(cv.find_jobs("q").jobs) == 1


def test_sql_in_job_data_and_keys_is_stored_as_sent(cv: Conveyor) -> None:
    text = INJECTIONS[0]
    job_id = cv.send("q", {"note": text}, singleton_key=text, group_key=text)

    job = cv.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None
    assert (job.data, job.singleton_key, job.group_key) == ({"note": text}, text, text)
    assert [j.id for j in cv.find_jobs("q", search=text).jobs] == [job_id]


async def test_the_rest_api_takes_sql_in_filters_as_text_and_refuses_it_in_queue_names(
    acv: AsyncConveyor,
) -> None:
    await acv.send("q", {"n": 1})
    transport = httpx.ASGITransport(app=create_app(acv))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        for text in INJECTIONS:
            for name in ("q", "key"):
                listed = await api.get("/api/jobs", params={"queue": "q", name: text})
                assert listed.status_code == 200 and listed.json()["jobs"] == []
            sent = await api.post("/api/jobs", json={"queue": text, "data": {}})
            assert 400 <= sent.status_code < 500
        everything = await api.get("/api/jobs", params={"queue": "q"})
    assert len(everything.json()["jobs"]) == 1


# --- least-privilege roles, as docs/security.md grants them --------------------------------


def documented_grants(section: str) -> list[str]:
    """The SQL blocks under ``### section`` of docs/security.md."""
    page = SECURITY_PAGE.read_text("utf-8")
    start = page.index(f"### {section}\n") + len(section) + 5
    heading = re.search(r"^#{2,3} ", page[start:], flags=re.MULTILINE)
    part = page[start:start + heading.start()] if heading else page[start:]
    return re.findall(r"```sql\n(.*?)```", part, flags=re.DOTALL)


def grant(conn: psycopg.Connection[Any], statements: str, schema: str, role: str) -> None:
    for line in statements.strip().splitlines():
        # The page's examples name the schema conveyor and the roles app_*.
        line = re.sub(r"\bconveyor\b", schema, line)
        line = re.sub(r"\bapp_[a-z]+\b", role, line)
        conn.execute(line)  # type: ignore[arg-type]


@pytest.fixture
def role(database_url: str) -> Iterator[str]:
    name = f"test_role_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def as_role(database_url: str, role: str) -> str:
    return make_conninfo(database_url, user=role, password="")


def test_an_enqueue_only_role_sends_and_inserts_and_can_do_nothing_else(
    cv: Conveyor, schema: str, database_url: str, role: str
) -> None:
    cv.create_queue("mail")
    held = cv.send("mail", {"secret": "owner's"})
    with psycopg.connect(database_url, autocommit=True) as admin:
        (statements,) = documented_grants("Enqueue only")
        grant(admin, statements, schema, role)

    with Conveyor(as_role(database_url, role), schema=schema, migrate=False) as app:
        assert app.send("mail", {"n": 1}) is not None
        assert app.send("mail", {"n": 2}, priority=3, singleton_key="k", group_key="g")
        assert app.send("mail", {"n": 3}, singleton_key="t", singleton_seconds=60)
        assert app.insert("mail", [{"data": {"i": i}} for i in range(5)]) == 5
        assert app.insert("mail", [{"data": 1, "id": str(uuid.uuid4())}]) == 1
        with psycopg.connect(database_url) as admin_conn:
            written = job_count(admin_conn, schema)
        refused = [
            lambda: app.fetch("mail"), lambda: app.get_job(held),  # type: ignore[arg-type]
            lambda: app.cancel(held), lambda: app.delete(held),  # type: ignore[arg-type]
            lambda: app.find_jobs("mail"), lambda: app.send("new-queue", {}),
            lambda: app.send("mail", {}, singleton_key="d", debounce_seconds=5),
        ]
        for call in refused:
            with pytest.raises(DatabaseError, match="permission denied"):
                call()

    with psycopg.connect(database_url) as admin_conn:
        assert job_count(admin_conn, schema) == written == 10
    job = cv.get_job(held)  # type: ignore[arg-type]
    assert job is not None and job.state is JobState.CREATED


async def test_a_worker_role_runs_jobs_and_a_read_only_role_serves_the_dashboard(
    acv: AsyncConveyor, schema: str, database_url: str, role: str
) -> None:
    worker_grants, dashboard_grants = documented_grants("Workers and the dashboard")
    await acv.send("q", {"n": 1})
    reader = f"{role}_ro"
    with psycopg.connect(database_url, autocommit=True) as admin:
        grant(admin, worker_grants, schema, role)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(reader)))
        try:
            grant(admin, dashboard_grants, schema, reader)

            async with AsyncConveyor(as_role(database_url, role), schema=schema,
                                     migrate=False) as worker:
                worker.work("q", lambda job: {"done": job.data["n"]})
                async with running(worker):
                    await wait_until(lambda: finished(worker, "q", 1))

            async with AsyncConveyor(as_role(database_url, reader), schema=schema,
                                     migrate=False) as viewer:
                app = create_app(viewer, settings=WebSettings(read_only=True))
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://127.0.0.1") as api:
                    jobs = await api.get("/api/jobs", params={"queue": "q"})
                    queues = await api.get("/api/queues")
                    page = await api.get("/jobs")
                assert jobs.status_code == 200 and queues.status_code == 200
                assert page.status_code == 200
                assert [j["output"] for j in jobs.json()["jobs"]] == [{"done": 1}]
        finally:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(reader)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))
