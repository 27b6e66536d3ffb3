"""The clients: :class:`Conveyor` (sync) and :class:`AsyncConveyor` (asyncio).

Both faces are generated from the one set of operations in ``_ops/`` (sending,
claiming, administration, flow control, schedules, status): a method only
hands its arguments to the operation and runs the resulting plan on a
connection, so the two cannot drift. What they share is in ``_clients/base.py``;
each face is a module of its own (``_clients/sync_client.py``, ``_clients/async_client.py``).
This module is the import path: ``from conveyor.client import Conveyor``.
"""

from conveyor._clients.async_client import AsyncConveyor
from conveyor._clients.sync_client import Conveyor

__all__ = ["AsyncConveyor", "Conveyor"]
