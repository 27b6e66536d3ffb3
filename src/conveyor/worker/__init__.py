"""The runtime that runs jobs: the worker, its claimer, pool, completer and presence.

Registrations and hooks live beside the client (``conveyor.registry``,
``conveyor.hooks``) and are re-exported here; the client imports this package
only when a worker runs, so sending never loads it.
"""

from conveyor.hooks import EVENTS, HookEvent, Hooks
from conveyor.registry import Registration, Registry
from conveyor.worker.runner import Worker

__all__ = ["EVENTS", "HookEvent", "Hooks", "Registration", "Registry", "Worker"]
