"""Settings: arguments first, then the environment, then the defaults.

| setting | argument | environment |
| --- | --- | --- |
| database | ``dsn`` | ``CONVEYOR_DATABASE_URL``, then ``DATABASE_URL`` |
| schema | ``schema`` | ``CONVEYOR_SCHEMA`` (default ``conveyor``) |
| payload limit | ``max_payload_bytes`` | ``CONVEYOR_MAX_PAYLOAD_BYTES`` (1 MiB) |
| pool size | ``pool_size`` | ``CONVEYOR_POOL_SIZE`` (10) |
| connect timeout | ``connect_timeout`` | ``CONVEYOR_CONNECT_TIMEOUT`` (10 s) |
| transaction pooler | ``pgbouncer`` | ``CONVEYOR_PGBOUNCER`` (off) |
| statement deadline | ``statement_deadline`` | ``CONVEYOR_STATEMENT_DEADLINE`` (15 s) |

Conveyor's own connections (its pool, a worker's listener) also get TCP
keepalives, ``tcp_user_timeout`` and ``connect_timeout`` where the DSN sets none
(:meth:`Settings.conninfo`); the DSN's own values win.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

import psycopg.conninfo

from conveyor._ops import validate
from conveyor.errors import ConfigurationError

DEFAULT_SCHEMA = "conveyor"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_POOL_SIZE = 10
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_STATEMENT_DEADLINE = 15.0
NETWORK_DEFAULTS: Final = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
"""libpq's TCP settings for Conveyor's connections where the DSN sets none. A peer
gone without a word (a network partition, a host that lost power) sends no reset;
with the operating system's defaults an idle connection (a worker's listener)
notices after two hours of keepalive, and one waiting for an answer after about
fifteen minutes of retransmissions. With these, both notice within about a
minute: keepalive probes start after 30 s of silence, and unacknowledged data or
probes give up after 60 s (``tcp_user_timeout``, milliseconds). They do nothing on
Unix sockets, and nothing against a peer that acknowledges bytes it never
forwards (a proxy or pooler in between): the statement deadline covers that."""
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Settings:
    dsn: str
    schema: str
    max_payload_bytes: int
    pool_size: int
    connect_timeout: float
    pgbouncer: bool = False
    """The database is reached through a pooler in transaction mode (PgBouncer,
    Supavisor, RDS Proxy): no prepared statements, and workers poll only."""
    statement_deadline: float = DEFAULT_STATEMENT_DEADLINE
    """Seconds a worker waits for the answer to one of its own short operations (a
    claim, an outcome batch, a heartbeat, a rescue pass, its presence, a leader
    election, the listener's health check) before it gives the connection up as
    dead and tries again on a new one (``_db/deadline.py``). Calls made by the
    application, and maintenance, are not bounded by it."""

    @classmethod
    def resolve(
        cls,
        dsn: str | None = None,
        *,
        schema: str | None = None,
        max_payload_bytes: int | None = None,
        pool_size: int | None = None,
        connect_timeout: float | None = None,
        pgbouncer: bool | None = None,
        statement_deadline: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        url = dsn or env.get("CONVEYOR_DATABASE_URL") or env.get("DATABASE_URL")
        if not url:
            raise ConfigurationError(
                "no database configured: pass dsn=... or set DATABASE_URL; "
                "`conveyor dev` starts a local PostgreSQL and prints its URL"
            )
        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            # libpq's message quotes the whole URL, password included: leave it out.
            raise ConfigurationError(
                "invalid database URL: it could not be parsed; use "
                "postgresql://user:password@host:port/dbname or key=value pairs"
            ) from None
        return cls(
            dsn=url,
            schema=validate.schema_name(
                schema if schema is not None else env.get("CONVEYOR_SCHEMA") or DEFAULT_SCHEMA
            ),
            max_payload_bytes=_positive(
                max_payload_bytes, env, "CONVEYOR_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES, int
            ),
            pool_size=_positive(pool_size, env, "CONVEYOR_POOL_SIZE", DEFAULT_POOL_SIZE, int),
            connect_timeout=_positive(
                connect_timeout, env, "CONVEYOR_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, float
            ),
            pgbouncer=_switch(pgbouncer, env, "CONVEYOR_PGBOUNCER"),
            statement_deadline=_positive(
                statement_deadline, env, "CONVEYOR_STATEMENT_DEADLINE",
                DEFAULT_STATEMENT_DEADLINE, float,
            ),
        )

    def conninfo(self) -> str:
        """The DSN Conveyor's own connections use: ``dsn``, with ``NETWORK_DEFAULTS``
        and ``connect_timeout`` (whole seconds, rounded up) added where it sets none.
        """
        given = psycopg.conninfo.conninfo_to_dict(self.dsn)
        defaults = {**NETWORK_DEFAULTS, "connect_timeout": str(math.ceil(self.connect_timeout))}
        return psycopg.conninfo.make_conninfo(
            self.dsn, **{name: value for name, value in defaults.items() if name not in given})


N = TypeVar("N", int, float)


def _positive(
    given: N | None, env: Mapping[str, str], variable: str, default: N, kind: type[N]
) -> N:
    source = variable.removeprefix("CONVEYOR_").lower()
    if given is None:
        raw = env.get(variable)
        if raw is None or raw == "":
            return default
        source = f"{variable}={raw!r}"
        try:
            given = kind(raw)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise ConfigurationError(
                f"{source} is not {expected}: give a positive {expected.removeprefix('a ')}, "
                f"like {default}") from None
    if (
        isinstance(given, bool) or not isinstance(given, int | float)
        or not math.isfinite(given) or given <= 0
    ):
        raise ConfigurationError(f"{source} must be a positive, finite number, got {given!r}")
    return given


def _switch(given: bool | None, env: Mapping[str, str], variable: str) -> bool:
    if given is None:
        raw = env.get(variable, "")
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ConfigurationError(
            f"{variable}={raw!r} is not a switch: use 1, true, yes or on to turn it on, "
            "0, false, no or off to turn it off"
        )
    if not isinstance(given, bool):
        source = variable.removeprefix("CONVEYOR_").lower()
        raise ConfigurationError(f"{source} must be True or False, got {given!r}")
    return given


def redact(dsn: str) -> str:
    """The DSN with its password replaced, for messages and logs."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable database URL>"
    if "password" in parts:
        parts["password"] = "***"
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in parts.items()})
