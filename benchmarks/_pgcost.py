"""What a stretch of work cost PostgreSQL: WAL generated and server CPU time.

Wrap the measured work in ``PgCost``::

    from _pgcost import PgCost

    with PgCost(url) as cost:          # or PgCost(conn): an open autocommit connection
        run_the_benchmark()
    cost.wal_bytes                     # int | None: WAL generated in between
    cost.cpu_seconds                   # float | None: CPU time of the server's processes
    cost.seconds                       # float | None: wall time in between
    cost.cores_busy                    # float | None: cpu_seconds / seconds
    cost.per_1000(jobs)                # WAL bytes and CPU seconds per 1,000 jobs (a dict)

- WAL: ``pg_current_wal_insert_lsn()`` at enter and at exit, subtracted with
  ``pg_wal_lsn_diff``. The insert position rather than ``pg_current_wal_lsn()``
  (the write position), so that WAL not yet written out when the work ends (with
  ``synchronous_commit=off``) counts too. It covers the whole server: other
  sessions' WAL in the meantime counts as well. ``None`` on a standby.
- CPU: user + system time (``/proc/<pid>/stat``, in ``SC_CLK_TCK`` ticks) of the
  postmaster and of all its children (backends, WAL writer, checkpointer,
  autovacuum ...) read at enter and at exit; other sessions' work in the meantime
  counts as well. Children that exit in between (a benchmark's connections) are
  counted through the postmaster's ``cutime`` and ``cstime``, which the kernel
  adds their times to when the postmaster reaps them. The postmaster is found as
  the parent of this connection's backend (``pg_backend_pid()``), so this works
  only when the server runs on this machine, in the same process namespace; the
  match is checked against the server's own record of when it and the backend
  started. When the processes cannot be read,
  ``cpu_seconds`` is ``None`` and ``cpu_unavailable`` says why. Clock-tick
  resolution (usually 10 ms per process), so measure runs of a second or more.

The figures include the cost of the two small queries this class runs. If the
``with`` block raises, nothing is measured (the figures stay ``None``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TOLERANCE = 1.0  # seconds by which the two records of a backend's age may differ
SNAPSHOT_TRIES = 5


@dataclass(frozen=True, slots=True)
class _Stat:
    comm: str
    ppid: int
    own: int  # utime + stime, in clock ticks
    reaped: int  # cutime + cstime: the children this process has waited for
    start: int  # starttime, clock ticks after boot


def _stat(pid: int) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or no /proc
        return None
    close = text.rindex(")")  # the command may hold spaces and parentheses
    fields = text[close + 2:].split()  # fields[0] is field 3 of proc(5), state
    return _Stat(comm=text[text.index("(") + 1:close], ppid=int(fields[1]),
                 own=int(fields[11]) + int(fields[12]), reaped=int(fields[13]) + int(fields[14]),
                 start=int(fields[19]))


def find_postmaster(conn: psycopg.Connection[Any]) -> tuple[int | None, str | None]:
    """The postmaster's pid on this machine, or ``None`` and the reason."""
    row = conn.execute(
        "SELECT pid, extract(epoch FROM backend_start - pg_postmaster_start_time()) "
        "FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
    if row is None:
        return None, "pg_stat_activity does not show this connection's backend"
    backend_pid, age = int(row[0]), float(row[1])
    backend = _stat(backend_pid)
    if backend is None or backend.comm != "postgres":
        return None, f"backend pid {backend_pid} is not a local postgres process"
    postmaster = _stat(backend.ppid)
    if postmaster is None or postmaster.comm != "postgres":
        return None, f"the parent of backend pid {backend_pid} is not a postgres process"
    local_age = (backend.start - postmaster.start) / CLOCK_TICKS
    if abs(local_age - age) > START_TOLERANCE:
        return None, (f"local process {backend_pid} is not this connection's backend "
                      "(start times differ): is the server on another machine?")
    return backend.ppid, None


def server_cpu_ticks(postmaster: int) -> int | None:
    """CPU ticks used so far by the postmaster, its live children and the children
    it has reaped; ``None`` once the postmaster is gone."""
    total = None
    for _ in range(SNAPSHOT_TRIES):
        first = _stat(postmaster)
        if first is None:
            return None
        children = 0
        with os.scandir("/proc") as entries:
            for entry in entries:
                if entry.name.isdigit():
                    stat = _stat(int(entry.name))
                    if stat is not None and stat.ppid == postmaster:
                        children += stat.own + stat.reaped
        last = _stat(postmaster)
        if last is None:
            return None
        total = last.own + last.reaped + children
        # A child reaped during the scan was counted twice or not at all: read again.
        if last.reaped == first.reaped:
            break
    return total


class PgCost:
    """WAL bytes and server CPU seconds spent between ``__enter__`` and ``__exit__``.

    ``target`` is a connection URL (a connection of its own is opened and closed)
    or an open connection in autocommit mode, which is only used for two queries at
    enter and two at exit.
    """

    def __init__(self, target: str | psycopg.Connection[Any]) -> None:
        self._target = target
        self._conn: psycopg.Connection[Any] | None = None
        self._lsn: str | None = None
        self._ticks: int | None = None
        self._started = 0.0
        self._postmaster: int | None = None
        self.wal_bytes: int | None = None
        self.cpu_seconds: float | None = None
        self.cpu_unavailable: str | None = None
        self.seconds: float | None = None

    def __enter__(self) -> PgCost:
        if isinstance(self._target, str):
            self._conn = psycopg.connect(self._target, autocommit=True)
        conn = self._connection()
        self._postmaster, self.cpu_unavailable = find_postmaster(conn)
        self._lsn = self._wal_position(conn)
        if self._postmaster is not None:
            self._ticks = server_cpu_ticks(self._postmaster)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None:
                return
            self.seconds = time.perf_counter() - self._started
            if self._postmaster is not None and self._ticks is not None:
                ticks = server_cpu_ticks(self._postmaster)
                if ticks is None:
                    self.cpu_unavailable = "the postmaster exited"
                else:
                    self.cpu_seconds = (ticks - self._ticks) / CLOCK_TICKS
            conn = self._connection()
            after = self._wal_position(conn)
            if self._lsn is not None and after is not None:
                row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)",
                                   [after, self._lsn]).fetchone()
                assert row is not None
                self.wal_bytes = int(row[0])
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def cores_busy(self) -> float | None:
        """Server CPU seconds per wall second: how many cores the server kept busy."""
        if self.cpu_seconds is None or not self.seconds:
            return None
        return self.cpu_seconds / self.seconds

    def per_1000(self, jobs: int) -> dict[str, float | None]:
        """``wal_bytes_per_1000`` and ``cpu_seconds_per_1000`` for ``jobs`` jobs."""
        return {
            "wal_bytes_per_1000": None if self.wal_bytes is None
            else self.wal_bytes * 1000 / jobs,
            "cpu_seconds_per_1000": None if self.cpu_seconds is None
            else self.cpu_seconds * 1000 / jobs,
        }

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None:
            return self._conn
        assert not isinstance(self._target, str)
        return self._target

    @staticmethod
    def _wal_position(conn: psycopg.Connection[Any]) -> str | None:
        row = conn.execute(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE pg_current_wal_insert_lsn()::text END").fetchone()
        return None if row is None or row[0] is None else str(row[0])
