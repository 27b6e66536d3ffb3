"""The clients: :class:`Conveyor` (sync) and :class:`AsyncConveyor` (asyncio).

Both faces are generated from the one set of operations in ``_enqueue``,
``_claims``, ``_admin``, ``_flow``, ``scheduler`` and ``_status``: a method only
hands its arguments to the operation and runs the resulting plan on a
connection, so the two cannot drift. What they share is in ``_client_base.py``;
each face is a module of its own (``_sync_client.py``, ``_async_client.py``).
This module is the import path: ``from conveyor.client import Conveyor``.
"""

from conveyor._async_client import AsyncConveyor
from conveyor._sync_client import Conveyor

__all__ = ["AsyncConveyor", "Conveyor"]
