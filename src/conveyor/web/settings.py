"""``WebSettings``: how the web app behaves (sign-in, read-only, framing, limits).

The settings are checked when they are made, so a mistyped value fails at start-up
with a message saying what to pass rather than on the first request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.errors import ConfigurationError
from conveyor.web.security import Credentials

_FRAME_SOURCES = re.compile(r"[A-Za-z0-9'*:/.\- ]+")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How the web app behaves (docs/security.md).

    - ``token`` (at least 16 characters) or ``basic_auth`` (``"user:password"``,
      neither empty) require sign-in; a browser's session from the sign-in form
      lasts ``session_seconds`` (12 hours).
    - ``read_only`` refuses every change.
    - ``frame_ancestors``: the pages that may show the dashboard in a frame, as
      CSP sources (``'none'``: none; ``'self' https://admin.example.com`` for a
      dashboard embedded in your own admin).
    - ``max_body_bytes``: larger request bodies are refused (413) before they
      are read.
    - ``backlog_warning``: the waiting-job count above which a queue is reported
      in ``/api/health``.

    Bad settings raise :class:`~conveyor.errors.ConfigurationError` here.
    """

    token: str | None = None
    basic_auth: str | None = None
    read_only: bool = False
    backlog_warning: int = 10_000
    title: str = "Conveyor"
    frame_ancestors: str = "'none'"
    max_body_bytes: int = 4 * 1024 * 1024
    session_seconds: float = 12 * 3600

    def __post_init__(self) -> None:
        if not _FRAME_SOURCES.fullmatch(self.frame_ancestors):
            raise ConfigurationError(
                f"frame_ancestors takes CSP sources separated by spaces ('none', 'self', "
                f"https://admin.example.com), not {self.frame_ancestors!r}")
        if isinstance(self.max_body_bytes, bool) or not (
                isinstance(self.max_body_bytes, int) and self.max_body_bytes >= 1024):
            raise ConfigurationError(
                f"max_body_bytes must be a whole number of at least 1024, "
                f"not {self.max_body_bytes!r}")
        if not (isinstance(self.session_seconds, int | float)
                and 60 <= self.session_seconds <= 366 * 86400):
            raise ConfigurationError(
                f"session_seconds must be between 60 and a year, not {self.session_seconds!r}")
        if self.basic_auth is not None and ":" not in self.basic_auth:
            raise ConfigurationError("basic_auth takes USER:PASSWORD")
        self.credentials  # noqa: B018  (checks the token and the basic-auth pair)

    @property
    def credentials(self) -> Credentials:
        user, password = (None, None)
        if self.basic_auth is not None:
            user, _, password = self.basic_auth.partition(":")
        return Credentials(self.token, user, password, self.session_seconds)
