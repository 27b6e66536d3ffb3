"""Conveyor through a real PgBouncer in transaction pooling mode.

The module starts a PgBouncer of its own in front of the test database (never a
system one) and stops it afterwards. Without the ``pgbouncer`` binary the tests
skip, unless ``CI`` is set: CI installs it, so there they fail.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC

import psycopg
import psycopg.conninfo
import pytest
from test_worker import finished, running, wait_until

from conveyor import AsyncConveyor, Conveyor, Job, JobState
from conveyor._db.queries import Queries, latest_version
from conveyor.config import Settings
from conveyor.errors import ConfigurationError, DatabaseError, InvalidArgument

QUEUE = "bounced"


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if found is None:
        reason = "the pgbouncer binary is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it (.ci/run does)")
        pytest.skip(reason)
    return found


def _version(binary: str) -> tuple[int, int]:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"PgBouncer (\d+)\.(\d+)", output.stdout)
    assert found is not None, output.stdout
    return int(found[1]), int(found[2])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as(host: str) -> list[str]:
    """PgBouncer refuses to run as root: then it switches to a user who can reach
    the server (the owner of the socket folder, for a Unix socket)."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwuid(os.stat(host).st_uid).pw_name if host.startswith("/") else "nobody"
    return ["-u", user]


@pytest.fixture(scope="module")
def bouncer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PgBouncer in transaction mode in front of the test database.
    ``server_round_robin`` hands each transaction the server connection idle the
    longest, so consecutive transactions of one client meet different sessions."""
    binary = _pgbouncer_binary()
    server = psycopg.conninfo.conninfo_to_dict(database_url)
    host = str(server.get("host") or "/var/run/postgresql")
    target = {
        "host": host, "port": server.get("port") or 5432, "dbname": server.get("dbname"),
        "user": server.get("user"), "password": server.get("password"),
    }
    folder = tmp_path_factory.mktemp("pgbouncer")
    (folder / "users.txt").write_text(f'"{target["user"]}" ""\n')
    port = _free_port()
    settings = [
        "[databases]",
        "conveyor = " + " ".join(f"{k}={v}" for k, v in target.items() if v),
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {folder / 'users.txt'}",
        "pool_mode = transaction",
        "server_round_robin = 1",
        "logfile =",
        "pidfile =",
    ]
    if _version(binary) >= (1, 21):
        settings.append("max_prepared_statements = 0")  # as in releases before 1.21
    (folder / "pgbouncer.ini").write_text("\n".join(settings) + "\n")
    log = folder / "pgbouncer.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, *_run_as(host), str(folder / "pgbouncer.ini")],
            stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"postgresql://{target['user']}@127.0.0.1:{port}/conveyor"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def bcv(bouncer: str, schema: str) -> Iterator[Conveyor]:
    with Conveyor(bouncer, schema=schema, pgbouncer=True) as client:
        yield client


def _two_server_connections(url: str) -> None:
    """Make PgBouncer open a second server connection: two transactions at once."""
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        first.execute("SELECT 1")
        second.execute("SELECT 1")


# --- the setting ---

def test_pgbouncer_is_off_by_default() -> None:
    assert Settings.resolve("postgresql:///x", environ={}).pgbouncer is False


@pytest.mark.parametrize("raw", ["1", "true", "Yes", "on"])
def test_conveyor_pgbouncer_turns_the_setting_on(raw: str) -> None:
    settings = Settings.resolve("postgresql:///x", environ={"CONVEYOR_PGBOUNCER": raw})
    assert settings.pgbouncer is True


def test_pgbouncer_argument_wins_over_conveyor_pgbouncer() -> None:
    settings = Settings.resolve(
        "postgresql:///x", pgbouncer=False, environ={"CONVEYOR_PGBOUNCER": "1"})
    assert settings.pgbouncer is False


def test_malformed_conveyor_pgbouncer_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CONVEYOR_PGBOUNCER='maybe'"):
        Settings.resolve("postgresql:///x", environ={"CONVEYOR_PGBOUNCER": "maybe"})


def test_non_boolean_pgbouncer_argument_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="pgbouncer must be True or False"):
        Settings.resolve("postgresql:///x", pgbouncer=1, environ={})  # type: ignore[arg-type]


def test_connection_already_in_utc_is_sent_no_set(database_url: str) -> None:
    from conveyor._db import session

    utc = psycopg.conninfo.make_conninfo(database_url, options="-c TimeZone=UTC")
    with psycopg.connect(utc) as conn:
        session.configure(conn, Queries("conveyor"))
        # Any statement would have opened a transaction on this connection.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# --- what the setting is for ---

def test_prepared_statements_fail_through_pgbouncer_without_the_setting(
    bouncer: str, schema: str
) -> None:
    with Conveyor(bouncer, schema=schema, pool_size=1) as cv:
        _two_server_connections(bouncer)
        with pytest.raises(DatabaseError, match="prepared statement"):
            for _ in range(10):
                cv.get_queue(QUEUE)


def test_with_the_setting_repeated_statements_run_on_any_server_connection(
    bouncer: str, schema: str
) -> None:
    with Conveyor(bouncer, schema=schema, pool_size=1, pgbouncer=True) as cv:
        _two_server_connections(bouncer)
        for _ in range(10):
            assert cv.get_queue(QUEUE) is None


def test_times_stay_in_utc_when_another_client_changed_the_server_connections_zone(
    bouncer: str, bcv: Conveyor
) -> None:
    job_id = bcv.send(QUEUE, {})
    with psycopg.connect(bouncer, autocommit=True) as other:
        other.execute("SET TIME ZONE 'Asia/Tokyo'")
        for _ in range(4):
            job = bcv.get_job(job_id)
            assert job is not None and job.created_at.tzinfo is UTC
            other.execute("SELECT 1")


# --- Conveyor through PgBouncer ---

def test_start_migrates_the_schema_through_pgbouncer(bcv: Conveyor) -> None:
    assert bcv.schema_version() == latest_version()


def test_clients_starting_together_through_pgbouncer_migrate_once(
    bouncer: str, schema: str
) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with Conveyor(bouncer, schema=schema, pgbouncer=True) as cv:
                assert cv.schema_version() == latest_version()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_send_and_bulk_insert_work_through_pgbouncer(bcv: Conveyor) -> None:
    assert bcv.send(QUEUE, {"n": 0}) is not None
    assert bcv.insert(QUEUE, [{"data": {"n": n}} for n in range(1, 501)]) == 500
    assert bcv.queue_counts(QUEUE)[JobState.CREATED] == 501


def test_find_cancel_and_retry_work_through_pgbouncer(bcv: Conveyor) -> None:
    waiting = bcv.send(QUEUE, {"n": 1})
    failing = bcv.send(QUEUE, {"n": 2}, priority=1)
    assert [job.id for job in bcv.find_jobs(QUEUE, state="created")] == [failing, waiting]
    assert bcv.cancel(waiting) == 1
    assert bcv.fail(bcv.fetch(QUEUE), "broken", retry=False) == 1
    assert bcv.retry(failing) == 1
    assert [job.id for job in bcv.find_jobs(QUEUE, state="cancelled")] == [waiting]
    assert [job.id for job in bcv.find_jobs(QUEUE, state="retry")] == [failing]


def test_flow_controlled_claims_work_through_pgbouncer(bcv: Conveyor) -> None:
    bcv.create_queue(QUEUE, group_concurrency=1)
    for key in ("a", "a", "b"):
        bcv.send(QUEUE, {}, group_key=key)
    for _ in range(3):  # past psycopg's threshold for preparing a statement
        claimed = bcv.fetch(QUEUE, 10)
        assert sorted(job.group_key for job in claimed) in (["a", "b"], ["a"], [])
        bcv.complete(claimed)
    assert bcv.queue_counts(QUEUE)[JobState.COMPLETED] == 3


def test_schedules_are_saved_and_listed_through_pgbouncer(bcv: Conveyor) -> None:
    bcv.schedule("nightly", "0 3 * * *", {"report": True}, queue=QUEUE)
    assert [s.name for s in bcv.get_schedules()] == ["nightly"]


async def test_worker_behind_pgbouncer_polls_and_completes_jobs(
    bouncer: str, schema: str
) -> None:
    done: list[int] = []

    async def handle(job: Job) -> None:
        done.append(job.data["n"])

    async with AsyncConveyor(bouncer, schema=schema, pgbouncer=True) as cv:
        cv.work(QUEUE, handle, poll_interval=0.05)
        await cv.insert(QUEUE, [{"data": {"n": n}} for n in range(20)])
        async with running(cv):
            await wait_until(lambda: finished(cv, QUEUE, 20))
            await asyncio.sleep(0)
        assert sorted(done) == list(range(20))


async def test_worker_refuses_to_listen_through_pgbouncer(bouncer: str, schema: str) -> None:
    async with AsyncConveyor(bouncer, schema=schema, pgbouncer=True) as cv:
        cv.work(QUEUE, lambda job: None)
        with pytest.raises(InvalidArgument, match="listen=True"):
            await cv.run(listen=True, handle_signals=False)
