"""``BodyLimit``: the ASGI middleware that refuses a request body larger than the
settings allow (413) before any route reads it.

It is plain ASGI rather than an HTTP middleware so that it can count a body sent
in chunks as it arrives, without holding more of it than the limit.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Refuses a request whose body is larger than ``limit`` bytes (413) before the
    app reads it: by its ``Content-Length``, or, for a body sent in chunks without
    one, by reading at most ``limit`` bytes of it first (then handed on)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse(
            {"detail": f"the request body is larger than {self.limit:,} bytes"},
            status_code=413, headers={"connection": "close"})
        await answer(scope, receive, send)
