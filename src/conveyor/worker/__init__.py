"""The runtime that runs jobs: registrations, the worker, its completer and hooks."""

from conveyor.hooks import EVENTS, HookEvent, Hooks
from conveyor.registry import Registration, Registry
from conveyor.worker.runner import Worker

__all__ = ["EVENTS", "HookEvent", "Hooks", "Registration", "Registry", "Worker"]
