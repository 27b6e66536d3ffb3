"""``Client``: the started :class:`~conveyor.AsyncConveyor` a route of the API is
given, as a FastAPI dependency.

Routes take it as a parameter (``cv: Client``) instead of reaching for the app's
state, so each route reads as the client call it is a face for.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from conveyor.client import AsyncConveyor
from conveyor.web.state import started_client

Client = Annotated[AsyncConveyor, Depends(started_client)]
