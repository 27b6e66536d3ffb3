"""``conveyor demo``: the tour ends by itself having shown each part, Ctrl-C stops it
cleanly, and with no database configured it runs on an embedded PostgreSQL whose
data stays for the next run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from web_server import free_port

from conveyor.embedded import EmbeddedPostgres

DEMO = [sys.executable, "-c", "from conveyor.cli.main import main; main()", "demo"]
# Ctrl-C as a terminal delivers it. A process started with SIGINT ignored (a
# background job of a non-interactive shell, and so a test run launched as one)
# passes the ignoring on to its children, and Python then never turns SIGINT into
# KeyboardInterrupt: the handler is put back first.
DEMO_INTERRUPTIBLE = [
    sys.executable, "-c",
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from conveyor.cli.main import main; main()",
    "demo",
]
TIMEOUT = 150.0


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CONVEYOR_DATABASE_URL", "CONVEYOR_SCHEMA")}
    return {**env, "COLUMNS": "120", **extra}


def test_the_tour_shows_each_part_and_ends_by_itself(database_url: str, schema: str) -> None:
    done = subprocess.run(
        [*DEMO, "--dsn", database_url, "--schema", schema, "--jobs", "60",
         "--port", str(free_port())],
        env=_environment(), capture_output=True, text=True, timeout=TIMEOUT, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # The closing summary (the live table's event lines scroll out of view).
    assert re.search(r"\b2 retries with exponential backoff; corrupt.pdf failed for good", out)
    assert re.search(r"\b[1-9]\d* cron ticks of demo.heartbeat", out)
    assert "demo.messages sent at most 10 messages a second" in out
    with psycopg.connect(database_url) as conn:
        (dead,) = conn.execute(
            f'SELECT count(*) FROM "{schema}".job WHERE queue = %s', ["demo.documents.dead"]
        ).fetchone() or (0,)
    assert dead == 1


def test_ctrl_c_stops_the_demo_cleanly_and_leaves_no_job_running(
    database_url: str, schema: str
) -> None:
    process = subprocess.Popen(
        [*DEMO_INTERRUPTIBLE, "--dsn", database_url, "--schema", schema, "--jobs", "20",
         "--keep-running", "--port", str(free_port())],
        env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_jobs(database_url, schema)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, out
    assert "Stopped; the data stays for the next run." in out
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f'SELECT state::text, count(*) FROM "{schema}".job GROUP BY state').fetchall()
    states = dict(rows)
    assert states.get("completed", 0) > 0
    assert "active" not in states


def _wait_for_jobs(database_url: str, schema: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(database_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", [f'"{schema}".job']).fetchone()
            if found and found[0]:
                (done,) = conn.execute(
                    f"SELECT count(*) FROM \"{schema}\".job WHERE state = 'completed'"
                ).fetchone() or (0,)
                if done >= 5:
                    return
        time.sleep(0.2)
    pytest.fail("the demo completed no job within 60 s")


@pytest.mark.slow
def test_with_no_database_configured_the_demo_runs_on_an_embedded_one_that_keeps_its_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "pgdata"
    for _ in range(2):
        done = subprocess.run(
            [*DEMO, "--data-dir", str(data_dir), "--jobs", "20", "--port", str(free_port())],
            env=_environment(), capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Starting an embedded PostgreSQL" in done.stdout
        assert "corrupt.pdf failed for good" in done.stdout
    with (
        EmbeddedPostgres(data_dir, cleanup="delete") as server,
        psycopg.connect(server.url) as conn,
    ):
        (versions,) = conn.execute("SELECT count(*) FROM conveyor.migration").fetchone() or (0,)
    assert versions > 0
