"""The runtime that runs jobs: the worker, its claimer, pool, completer and presence.

Registrations and hooks live beside the client (``conveyor.registry``,
``conveyor.hooks``) and are re-exported here; the client imports this package
only when a worker runs, so sending never loads it. ``Worker`` is imported on
first use, so that reading the worker's options (``options.py``: the command
line's defaults) loads none of the runtime.
"""

from typing import TYPE_CHECKING, Any

from conveyor.hooks import EVENTS, HookEvent, Hooks
from conveyor.registry import Registration, Registry

if TYPE_CHECKING:
    from conveyor.worker.runner import Worker

__all__ = ["EVENTS", "HookEvent", "Hooks", "Registration", "Registry", "Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from conveyor.worker.runner import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
