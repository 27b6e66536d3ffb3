"""Who may use the web app, and how a browser is kept from being tricked into
acting (docs/security.md).

- **Authentication** (when configured): a bearer token (``Authorization: Bearer
  T``, at least ``MIN_TOKEN_LENGTH`` characters) or HTTP basic auth (neither part
  empty). A browser that signs in with the token at ``/login`` gets a session
  cookie: when it ends, and a keyed hash of that and the token, never the token
  itself. Sessions end after ``session_seconds``, or at sign-out. Failed sign-ins
  from one address are slowed down (``SignInThrottle``).
- **Read-only**: every request that could change something is refused (403).
- **CSRF**: a request that changes something and is signed in by the session
  cookie, or comes from a browser (it carries cookies, ``Origin``,
  ``Sec-Fetch-Site`` or ``Referer``), must repeat the ``conveyor_csrf`` cookie in
  the ``X-CSRF-Token`` header, which a page of another site cannot read.
  Requests signed with a bearer token need no such header: browsers never add
  that header by themselves.
- **Framing and sniffing**: every answer carries a Content Security Policy
  (scripts and styles from the app only, ``frame-ancestors`` as configured,
  ``'none'`` by default), ``X-Content-Type-Options: nosniff`` and a
  ``Referrer-Policy`` (``security_headers``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

CSRF_COOKIE = "conveyor_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "conveyor_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Admission:
    """How a request got in: ``admitted`` at all, and whether by a bearer token or
    by the session cookie."""

    admitted: bool
    by_token: bool = False
    by_session: bool = False


REFUSED = Admission(False)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What lets a request in: a token, a user and password, or neither (open)."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    session_seconds: float = 12 * 3600

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"the dashboard token must be at least {MIN_TOKEN_LENGTH} characters "
                "(it is all that stands between the network and your jobs); "
                "`python -c 'import secrets; print(secrets.token_urlsafe(24))'` makes one")
        if self.basic_user is not None and not (self.basic_user and self.basic_password):
            raise ConfigurationError(
                "basic auth needs a user and a password, neither empty: USER:PASSWORD")

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic_user is not None

    def session_value(self, now: float | None = None) -> str:
        """A session cookie's value for a browser signing in with the token now:
        when the session ends and a keyed hash of that."""
        ends = int((time.time() if now is None else now) + self.session_seconds)
        return f"{ends}.{self._session_hash(ends)}"

    def _session_hash(self, ends: int) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), f"conveyor-session:{ends}".encode(),
                        hashlib.sha256).hexdigest()

    def _valid_session(self, cookie: str) -> bool:
        ends, _, given = cookie.partition(".")
        if not (ends.isascii() and ends.isdigit() and len(ends) <= 12):
            return False
        return int(ends) > time.time() and _same(given, self._session_hash(int(ends)))

    def admits(self, conn: HTTPConnection) -> Admission:
        """How (and whether) this request gets in."""
        if not self.required:
            return Admission(True)
        authorization = conn.headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if self.token is not None:
            if scheme.lower() == "bearer" and _same(value.strip(), self.token):
                return Admission(True, by_token=True)
            cookie = conn.cookies.get(SESSION_COOKIE)
            if cookie is not None and self._valid_session(cookie):
                return Admission(True, by_session=True)
        if self.basic_user is not None and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return REFUSED
            if _same(user, self.basic_user) and _same(password, self.basic_password or ""):
                return Admission(True)
        return REFUSED

    def token_matches(self, given: str) -> bool:
        return self.token is not None and _same(given, self.token)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def from_browser(conn: HTTPConnection) -> bool:
    """Whether a browser could have sent this request on a page's behalf."""
    headers = conn.headers
    return any(name in headers for name in ("cookie", "origin", "sec-fetch-site", "referer"))


def csrf_ok(conn: HTTPConnection) -> bool:
    """The CSRF header repeats the cookie."""
    cookie = conn.cookies.get(CSRF_COOKIE)
    header = conn.headers.get(CSRF_HEADER)
    return bool(cookie) and header is not None and _same(header, cookie or "")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only:
    every address the name resolves to is a loopback address (a name that does
    not resolve is not)."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def safe_next(path: str | None) -> str:
    """Where to go after sign-in: a path of this app (``/jobs?state=failed``), never
    another site (``//evil.example``, ``https://...``, ``/\\evil``)."""
    if (not path or not path.startswith("/") or path.startswith(("//", "/\\"))
            or any(ord(c) < 32 for c in path) or "\\" in path):
        return "/"
    return path


class SignInThrottle:
    """Slows repeated failed sign-ins down, per client address: after ``free``
    failures within ``window`` seconds, each further attempt is refused (429) until
    the oldest failure leaves the window. Kept in memory, per process."""

    def __init__(self, free: int = 5, window: float = 60.0, clients: int = 10_000) -> None:
        self._free = free
        self._window = window
        self._clients = clients
        self._failures: dict[str, deque[float]] = {}

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before trying again (0: it may try now)."""
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        now = time.monotonic()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if len(failures) < self._free:
            return 0.0
        return failures[0] + self._window - now

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self._clients:
            self._failures.pop(next(iter(self._failures)))  # forget the oldest client
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def security_headers(frame_ancestors: str) -> dict[str, str]:
    """The headers every answer carries. Scripts and styles come only from the app
    (no inline code anywhere), and only ``frame_ancestors`` may frame a page."""
    headers = {
        "content-security-policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
            f"form-action 'self'; frame-ancestors {frame_ancestors}"),
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }
    if frame_ancestors == "'none'":
        headers["x-frame-options"] = "DENY"  # for browsers that predate frame-ancestors
    elif frame_ancestors == "'self'":
        headers["x-frame-options"] = "SAMEORIGIN"
    return headers
