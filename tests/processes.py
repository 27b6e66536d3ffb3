"""Worker processes for the tests that run workers in subprocesses
(``test_worker_faults.py``, ``test_flow.py``): start them, read their logs, wait
for them (every wait bounded), and kill whatever is left at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

TESTS = Path(__file__).resolve().parent
STARTUP = 30.0  # seconds a worker may take to start
EXIT = 30.0  # seconds a stopped worker may take to exit


def query(dsn: str, statement: sql.Composed | str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection (which survives restarts in between)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(n) for n in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def is_worker(pid: int) -> bool:
    """Whether ``pid`` is a live worker process of these tests (Linux)."""
    try:
        return b"_app" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_started(self, count: int = 1) -> None:
        """Until the log says ``count`` workers started (a supervisor's children share
        its log)."""

        def started() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.text()}")
            return self.text().count("worker started") >= count

        wait_until(started, STARTUP, f"{self.name} to start")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = EXIT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running {timeout:g} s after it was told to stop")


@dataclass
class Workers:
    """Starts worker subprocesses; kills any left at teardown and prints their logs."""

    folder: Path
    started: list[WorkerProcess] = field(default_factory=list)
    adopted: set[int] = field(default_factory=set)

    def adopt(self, pids: set[int]) -> None:
        """Also kill these processes (a supervisor's workers) at teardown if they live."""
        self.adopted |= pids

    def _env(self, dsn: str, schema: str, **settings: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "CONVEYOR_"))}
        env.update(APP_DSN=dsn, APP_SCHEMA=schema, PYTHONUNBUFFERED="1")
        env.update({f"APP_{k.upper()}": str(v) for k, v in settings.items()})
        return env

    def _spawn(self, command: list[str], env: dict[str, str]) -> WorkerProcess:
        name = f"worker-{len(self.started) + 1}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=TESTS, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)
        worker = WorkerProcess(process, log, name)
        self.started.append(worker)
        return worker

    def script(
        self, dsn: str, schema: str, app: str = "worker_app.py", **settings: Any
    ) -> WorkerProcess:
        """``python <app>`` from the tests folder (``worker_app.py``: short leases);
        ``settings`` become APP_* variables (``lease``, ``rescue``, ``shutdown``,
        ``concurrency``)."""
        command = [sys.executable, str(TESTS / app)]
        return self._spawn(command, self._env(dsn, schema, **settings))

    def cli(self, dsn: str, schema: str, *arguments: str, **settings: Any) -> WorkerProcess:
        """``python -m conveyor worker worker_app:cv ARGUMENTS``."""
        command = [sys.executable, "-m", "conveyor", "worker", "worker_app:cv", *arguments]
        return self._spawn(command, self._env(dsn, schema, **settings))

    def close(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                self.adopted |= children(worker.pid)  # a supervisor's worker processes
                worker.process.kill()
                worker.process.wait(10)
        for pid in self.adopted:
            if is_worker(pid):  # never a process that merely reused the pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for worker in self.started:
            print(f"----- {worker.name} (pid {worker.pid}, exit {worker.process.returncode}) "
                  f"-----\n{worker.text()}")
