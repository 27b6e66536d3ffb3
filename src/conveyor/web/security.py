"""Who may use the web app, and how a browser is kept from being tricked into
acting (see the guide's Dashboard section).

- **Authentication** (when configured): a bearer token (``Authorization: Bearer
  T``) or HTTP basic auth. A browser that signs in with the token at ``/login``
  gets a session cookie holding a keyed hash of it, never the token itself.
- **Read-only**: every request that could change something is refused (403).
- **CSRF**: a request that changes something and comes from a browser (it
  carries cookies, ``Origin`` or ``Sec-Fetch-Site``) must repeat the
  ``conveyor_csrf`` cookie in the ``X-CSRF-Token`` header, which a page of
  another site cannot read. Requests signed with a bearer token need no such
  header: browsers never add that header by themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

CSRF_COOKIE = "conveyor_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "conveyor_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What lets a request in: a token, a user and password, or neither (open)."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic_user is not None

    def session_value(self) -> str:
        """The session cookie's value for a browser that signed in with the token."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"conveyor-session", hashlib.sha256).hexdigest()

    def admits(self, conn: HTTPConnection) -> tuple[bool, bool]:
        """(admitted, by bearer token) for this request."""
        if not self.required:
            return True, False
        authorization = conn.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if self.token is not None:
            if scheme.lower() == "bearer" and _same(value.strip(), self.token):
                return True, True
            cookie = conn.cookies.get(SESSION_COOKIE)
            if cookie is not None and _same(cookie, self.session_value()):
                return True, False
        if self.basic_user is not None and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, False
            if _same(user, self.basic_user) and _same(password, self.basic_password or ""):
                return True, False
        return False, False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def from_browser(conn: HTTPConnection) -> bool:
    """Whether a browser could have sent this request on a page's behalf."""
    headers = conn.headers
    return "cookie" in headers or "origin" in headers or "sec-fetch-site" in headers


def csrf_ok(conn: HTTPConnection) -> bool:
    """The CSRF header repeats the cookie."""
    cookie = conn.cookies.get(CSRF_COOKIE)
    header = conn.headers.get(CSRF_HEADER)
    return bool(cookie) and header is not None and _same(header, cookie or "")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    return host in {"localhost", "::1"} or host.startswith("127.")
