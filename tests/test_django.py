"""Conveyor in a Django project (conveyor.contrib.django): settings, sending inside
Django's transactions, and the ``conveyor_worker`` management command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import django
import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import override_settings
from psycopg.conninfo import conninfo_to_dict

from conveyor import Conveyor, JobState
from conveyor.contrib.django import get_client, psycopg_connection, reset_client
from conveyor.contrib.django.management.commands.conveyor_worker import Command
from conveyor.errors import ConfigurationError


def django_databases(database_url: str) -> dict[str, dict[str, object]]:
    params = conninfo_to_dict(database_url)
    return {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": params.get("dbname", ""),
            "USER": params.get("user", ""),
            "PASSWORD": params.get("password", ""),
            "HOST": params.get("host", ""),
            "PORT": params.get("port", ""),
        },
        "local": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }


@pytest.fixture(scope="module")
def django_project(database_url: str) -> Iterator[None]:
    if not settings.configured:
        settings.configure(
            DATABASES=django_databases(database_url),
            INSTALLED_APPS=["conveyor.contrib.django"],
            USE_TZ=True,
        )
        django.setup()
    yield
    reset_client()
    connections.close_all()


@pytest.fixture
def project_client(django_project: None, schema: str) -> Iterator[Conveyor]:
    """``get_client()`` on a fresh schema, configured by the ``CONVEYOR`` setting."""
    with override_settings(CONVEYOR={"schema": schema}):
        yield get_client()


def waiting(cv: Conveyor, queue: str) -> int:
    return cv.queue_counts(queue)[JobState.CREATED]


def test_the_client_uses_djangos_database_and_the_configured_schema(
    project_client: Conveyor, schema: str
) -> None:
    assert project_client.schema == schema
    assert project_client.health() is not None
    assert get_client() is project_client


def test_a_job_sent_in_an_atomic_block_that_rolls_back_does_not_exist(
    project_client: Conveyor,
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        project_client.send("orders", {"order_id": 1}, conn=psycopg_connection())
        raise RuntimeError("the order could not be saved")

    assert waiting(project_client, "orders") == 0


def test_a_job_sent_in_an_atomic_block_commits_with_it(project_client: Conveyor) -> None:
    with transaction.atomic():
        job_id = project_client.send("orders", {"order_id": 1}, conn=psycopg_connection())
        assert project_client.get_job(job_id) is None  # type: ignore[arg-type]

    job = project_client.get_job(job_id)  # type: ignore[arg-type]
    assert job is not None and job.data == {"order_id": 1}


def test_a_typed_task_sends_inside_djangos_transaction(project_client: Conveyor) -> None:
    @project_client.typed_task("welcome")
    def welcome(user_id: int) -> None:
        return None

    with pytest.raises(RuntimeError), transaction.atomic():
        welcome.send_with(conn=psycopg_connection())(7)
        raise RuntimeError("the sign-up failed")
    with transaction.atomic():
        welcome.send_with(conn=psycopg_connection())(8)

    assert [job.data for job in project_client.find_jobs(queue="welcome").jobs] == [
        {"user_id": 8}
    ]


def test_unknown_conveyor_settings_are_refused(django_project: None) -> None:
    with override_settings(CONVEYOR={"shema": "typo"}), pytest.raises(
        ConfigurationError, match="shema"
    ):
        get_client()


def test_a_database_other_than_postgresql_gets_a_clear_error(django_project: None) -> None:
    with override_settings(CONVEYOR={"database": "local"}):
        with pytest.raises(ConfigurationError, match="not PostgreSQL"):
            get_client()
        with pytest.raises(ConfigurationError, match="psycopg 3"):
            psycopg_connection()


def test_the_worker_command_takes_queues_and_concurrency() -> None:
    parsed = Command().create_parser("manage.py", "conveyor_worker").parse_args(
        ["--queues", "mail", "sms", "--concurrency", "3"])
    assert (parsed.queues, parsed.concurrency) == (["mail", "sms"], 3)


TASKS = '''
from conveyor.contrib.django import get_client


@get_client().typed_task("mail")
def send_mail(to: str) -> str:
    return f"sent to {to}"
'''

SETTINGS = '''
DATABASES = {databases!r}
INSTALLED_APPS = ["conveyor.contrib.django"]
USE_TZ = True
CONVEYOR = {{"schema": {schema!r}, "tasks": ["project_tasks"]}}
'''


@pytest.mark.slow
def test_the_worker_command_runs_the_registered_handlers(
    database_url: str, schema: str, tmp_path: Path
) -> None:
    (tmp_path / "project_tasks.py").write_text(TASKS)
    (tmp_path / "project_settings.py").write_text(textwrap.dedent(SETTINGS.format(
        databases=django_databases(database_url), schema=schema)))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project_settings",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with Conveyor(database_url, schema=schema) as cv:
        job_id = cv.send("mail", {"to": "ada@example.com"})
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "conveyor_worker", "--queues", "mail"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            job = cv.get_job(job_id)  # type: ignore[arg-type]
            while job is not None and job.state is not JobState.COMPLETED:
                assert worker.poll() is None, worker.communicate()[0].decode()
                assert time.monotonic() < deadline, "the job was not completed within 60 s"
                time.sleep(0.1)
                job = cv.get_job(job_id)  # type: ignore[arg-type]
        finally:
            worker.send_signal(signal.SIGTERM)
            output = worker.communicate(timeout=60)[0].decode()

    assert job is not None and job.output == "sent to ada@example.com"
    assert worker.returncode == 0, output
