"""The worker's option defaults are declared once (``WORKER_DEFAULTS``); every place
that states one, in docstrings, the docs or the command line, says the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from conveyor import AsyncConveyor, Conveyor
from conveyor.cli.main import app
from conveyor.worker.options import WORKER_DEFAULTS, WorkerOptions

DOCS = Path(__file__).resolve().parent.parent / "docs"
UNITS = {"s": 1.0, "days": 86_400.0}


def _stated(text: str, name: str) -> list[object]:
    """Every default stated as ``name`` (value) or `name` (value) in ``text``."""
    found: list[object] = []
    value_and_unit = r"(True|False|\d(?:[\d,]*\d)?(?:\.\d+)?)(?: (s|days))?"
    for match in re.finditer(rf"`{name}`+ \({value_and_unit}[,;)]", text):
        value, unit = match.groups()
        if value in ("True", "False"):
            found.append(value == "True")
        else:
            found.append(float(value.replace(",", "")) * UNITS.get(unit or "", 1.0))
    return found


def _sources() -> dict[str, str]:
    sources = {
        "WorkerOptions": WorkerOptions.__doc__ or "",
        "Conveyor.run": Conveyor.run.__doc__ or "",
        "AsyncConveyor.run": AsyncConveyor.run.__doc__ or "",
    }
    sources.update({page.name: page.read_text("utf-8") for page in sorted(DOCS.glob("*.md"))})
    return sources


@pytest.mark.parametrize("name", sorted(WORKER_DEFAULTS))
def test_every_stated_default_of_a_worker_option_is_the_declared_one(name: str) -> None:
    default = WORKER_DEFAULTS[name]  # type: ignore[literal-required]
    for source, text in _sources().items():
        for stated in _stated(text, name):
            assert stated == default, f"{source} states {name} ({stated}), not {default}"


def test_every_worker_option_is_described_with_its_default() -> None:
    described = {name for name in WORKER_DEFAULTS if _stated(WorkerOptions.__doc__ or "", name)}

    assert described == set(WORKER_DEFAULTS)


def test_the_command_line_takes_the_worker_defaults() -> None:
    worker = typer.main.get_command(app).commands["worker"]  # type: ignore[attr-defined]
    defaults = {param.name: param.default for param in worker.params}

    assert defaults["shutdown_timeout"] == WORKER_DEFAULTS["shutdown_timeout"]
    assert defaults["poll_only"] is not WORKER_DEFAULTS["listen"]
