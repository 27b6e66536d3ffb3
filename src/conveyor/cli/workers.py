"""What ``conveyor worker`` does besides running a client: finding it, logging,
and supervising several worker processes."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

from conveyor.client import AsyncConveyor, Conveyor
from conveyor.errors import ConfigurationError

log = logging.getLogger("conveyor.worker")

_RESTART_DELAY = 1.0


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(json_logs: bool, level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigurationError(f"unknown log level {level!r}; use debug, info, warning or error")
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_logs
        else logging.Formatter("%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def load_client(target: str) -> Conveyor | AsyncConveyor:
    """The client at ``module:attribute`` (the current directory is importable)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"expected 'package.module:attribute', got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    client = getattr(module, attribute, None)
    if not isinstance(client, Conveyor | AsyncConveyor):
        raise ConfigurationError(
            f"{target!r} is {type(client).__name__}, not a Conveyor or AsyncConveyor client"
        )
    return client


def run_client(
    client: Conveyor | AsyncConveyor, *, queues: Iterable[str] | None, concurrency: int | None,
    shutdown_timeout: float, listen: bool,
) -> None:
    options: dict[str, Any] = {
        "queues": queues, "concurrency": concurrency, "shutdown_timeout": shutdown_timeout,
        "listen": listen,
    }
    if isinstance(client, AsyncConveyor):
        asyncio.run(client.run(**options))
    else:
        with client:
            client.run(**options)


def serve_metrics(client: Conveyor | AsyncConveyor, port: int, addr: str = "127.0.0.1") -> None:
    """Count the jobs ``client`` runs and serve them to Prometheus on
    ``addr``:``port``."""
    try:  # prometheus-client is needed with --metrics-port only
        from conveyor import metrics
    except ImportError as exc:
        raise ConfigurationError(str(exc)) from None
    metrics.instrument(client)
    metrics.serve_metrics(port, addr)


def supervise(processes: int, metrics_port: int | None = None) -> int:
    """Run ``processes`` copies of this command, each with one process; restart any
    that exits on its own; pass SIGTERM and SIGINT on and wait for all to stop.
    With ``metrics_port``, process ``i`` serves its metrics on ``metrics_port + i``
    (a restarted process takes the port of the one it replaces)."""
    arguments = _without(_without(sys.argv[1:], "--processes"), "--metrics-port")
    base = [sys.executable, "-m", "conveyor", *arguments]

    def command(index: int) -> list[str]:
        if metrics_port is None:
            return base
        return [*base, "--metrics-port", str(metrics_port + index)]

    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    children.extend(subprocess.Popen(command(index)) for index in range(processes))
    log.info("supervising %d worker processes: %s", processes, [c.pid for c in children])
    while True:
        time.sleep(0.2)
        if stopping:
            break
        for index, child in enumerate(children):
            code = child.poll()
            if code is not None and not stopping:
                log.warning("worker process %d exited with %d; starting another", child.pid, code)
                time.sleep(_RESTART_DELAY)
                if stopping:  # a signal came during the pause: start nothing new
                    break
                children[index] = subprocess.Popen(command(index))
    codes = [child.wait() for child in children]
    return 0 if all(code == 0 for code in codes) else 1


def _without(arguments: list[str], option: str) -> list[str]:
    """``arguments`` without ``option`` and its value (``--option N`` or ``--option=N``)."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
            continue
        if argument == option:
            skip = True
            continue
        if argument.startswith(f"{option}="):
            continue
        kept.append(argument)
    return kept
