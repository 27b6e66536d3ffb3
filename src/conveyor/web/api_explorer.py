"""The API's explorer at ``/api/docs``: Swagger UI over ``/api/openapi.json``.

FastAPI's own page starts Swagger UI with an inline script, which the Content
Security Policy forbids; this page loads the vendored files and
``static/api-docs.js`` instead, so it needs no CDN either.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from conveyor.web.paths import mount_root
from conveyor.web.state import web_state

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{root}/static/swagger-ui.css">
  <script src="{root}/static/swagger-ui-bundle.js" defer></script>
  <script src="{root}/static/api-docs.js" defer></script>
</head>
<body data-openapi-url="{root}/api/openapi.json">
  <div id="swagger-ui"></div>
</body>
</html>
"""


@router.get("/api/docs")
async def api_explorer(request: Request) -> Response:
    title = f"{web_state(request).settings.title} API"
    return HTMLResponse(_PAGE.format(root=html.escape(mount_root(request)),
                                     title=html.escape(title)))
