"""``found``: what a lookup of one job or queue finds, or the error that says it is
missing.

The API answers a missing job 404 and the dashboard shows a page saying so; both
take a malformed id or name (which the client refuses with ``InvalidArgument``) as
missing too, and this one function is where that is decided.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from conveyor.errors import InvalidArgument

T = TypeVar("T")


async def found(lookup: Awaitable[T | None], missing: Exception) -> T:
    """What ``lookup`` finds; raises ``missing`` when it finds nothing or is given
    an id or name that cannot exist."""
    try:
        value = await lookup
    except InvalidArgument:
        value = None
    if value is None:
        raise missing
    return value
