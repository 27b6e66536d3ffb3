"""What importing Conveyor loads: an application that only sends jobs never loads
the worker's runtime (``conveyor.worker``, maintenance included); a worker
imports it when it runs. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

RUNTIME = ("conveyor.worker",)

SYNC_SEND = """
from conveyor import Conveyor
with Conveyor(DSN, schema=SCHEMA) as cv:
    sent = cv.send("imports", {"n": 1})
"""

ASYNC_SEND = """
import asyncio
from conveyor import AsyncConveyor

async def main():
    async with AsyncConveyor(DSN, schema=SCHEMA) as cv:
        return await cv.send("imports", {"n": 1})

sent = asyncio.run(main())
"""

REPORT = """
import json, sys
print(json.dumps({"sent": sent, "modules": sorted(sys.modules)}))
"""


def _run_fresh(program: str, database_url: str, schema: str) -> dict[str, Any]:
    """What ``program`` sent and which modules it had loaded, run in a new interpreter."""
    setup = f"DSN = {database_url!r}\nSCHEMA = {schema!r}\n"
    finished = subprocess.run([sys.executable, "-c", setup + program + REPORT],
                              capture_output=True, text=True, timeout=60, check=True)
    report: dict[str, Any] = json.loads(finished.stdout)
    return report


@pytest.mark.parametrize("program", [SYNC_SEND, ASYNC_SEND], ids=["sync", "async"])
def test_sending_a_job_loads_no_worker_runtime(
    program: str, database_url: str, schema: str
) -> None:
    report = _run_fresh(program, database_url, schema)
    assert isinstance(report["sent"], str)
    loaded = [name for name in report["modules"] if name.startswith(RUNTIME)]
    assert loaded == []
