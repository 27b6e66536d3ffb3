"""``WebState``: what every route of the app shares, kept on ``app.state.conveyor``.

It holds the settings and the client, started on first use rather than in a
lifespan handler, so that the app also works mounted inside another ASGI app
(whose server runs only the outer app's lifespan).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request

from conveyor.client import AsyncConveyor
from conveyor.web import security
from conveyor.web.settings import WebSettings


@dataclass
class WebState:
    """What every route reads from ``request.app.state.conveyor``."""

    settings: WebSettings
    _client: AsyncConveyor
    _owned: bool
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sign_ins: security.SignInThrottle = field(default_factory=security.SignInThrottle)

    async def client(self) -> AsyncConveyor:
        """The started client (started here on first use)."""
        if not self._client.started:
            async with self._lock:
                if not self._client.started:
                    await self._client.start()
        return self._client

    async def close(self) -> None:
        if self._owned:
            await self._client.stop()


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.conveyor
    return state


async def started_client(request: Request) -> AsyncConveyor:
    """The app's client, started: what a route calls to reach the database."""
    return await web_state(request).client()
