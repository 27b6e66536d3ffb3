"""Where a request stands in the app: the prefix the app is mounted under, the path
within it, and whether that path answers machines or people.

Links, cookie paths, redirects and error answers all ask these questions; they
are answered here once, so that a mounted app behaves as one at the root.
"""

from __future__ import annotations

from fastapi import Request


def mount_root(request: Request) -> str:
    """The prefix the app is mounted under (``""`` at the root), without a trailing
    slash: every link and cookie path starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def app_path(request: Request) -> str:
    """The request's path within the app, without the mount prefix."""
    return request.url.path[len(mount_root(request)):]


def for_machines(path: str) -> bool:
    """The API and ``/metrics`` answer in JSON or text; the rest, the API's
    explorer (``/api/docs``) included, are pages for people."""
    return (path.startswith("/api/") and path != "/api/docs") or path == "/metrics"
