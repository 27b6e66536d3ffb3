"""A real HTTP server for the tests that need one (schemathesis, the browser):
uvicorn on 127.0.0.1 and a free port, in a thread of its own with its own event
loop, stopped at the end of the block (start and stop bounded in time)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

START = 15.0  # seconds the server may take to start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` (on ``port``, else a free one) for the duration of the block;
    yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-web-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test web server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START)
