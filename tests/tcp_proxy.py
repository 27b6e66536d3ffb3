"""A TCP proxy on 127.0.0.1 in front of a PostgreSQL, which a test can cut like a
network partition (``test_chaos.py``, ``test_deadline.py``).

A partition drops packets: it closes nothing and tells neither end. So a cut here
closes no socket; it stops moving bytes. The proxy reads nothing from either side
and accepts no new connection, so what clients send waits in the kernel's buffers
(which still acknowledge it: on loopback TCP's own timers never fire, and only a
deadline in the application notices), and nothing comes back.

- :meth:`cut` starts that; :meth:`restore` ends it the way a partition that heals
  before TCP gives up does: the held bytes are delivered, late, in both directions,
  and the connections go on (those their client gave up in between then end, after
  their last bytes). Connections waiting to be accepted are accepted then.
- :meth:`forget` silences the connections open now for good, as a firewall or NAT
  that lost their state does: their server ends are closed (as the server's own
  keepalives would, in the end), their client ends hear nothing more. Connections
  made afterwards work.

Threads: one accepts, two per connection pump bytes. Every wait is bounded by
``_TICK`` and ends once the proxy closes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg.conninfo

_TICK = 0.1  # seconds between looks at the proxy's state in every wait
_CHUNK = 65536


class _Gone(Exception):
    """The connection was forgotten, or the proxy closed."""


@dataclass
class _Link:
    """One proxied connection: the client's socket and the one to the server."""

    client: socket.socket
    server: socket.socket
    forgotten: bool = False
    pumps_done: int = 0
    threads: list[threading.Thread] = field(default_factory=list)


def _server_address(dsn: str) -> tuple[int, str | tuple[str, int]]:
    """The socket family and address of the server a DSN names: its Unix socket
    when the host is a folder, else its TCP host and port."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "/var/run/postgresql")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return socket.AF_UNIX, str(Path(host) / f".s.PGSQL.{port}")
    return socket.AF_INET, (str(params.get("hostaddr") or host), port)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` (a free one unless given) to the server of
    ``dsn``; ``dsn_through`` gives the DSN that goes through it. Use it as a
    context manager, or call :meth:`close`."""

    def __init__(self, dsn: str, port: int = 0) -> None:
        self._family, self._address = _server_address(dsn)
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(_TICK)
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    def dsn_through(self, dsn: str) -> str:
        """``dsn``, going through this proxy."""
        return psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", hostaddr="127.0.0.1",
                                              port=self.port)

    def cut(self) -> None:
        """Stop moving bytes, on every connection, in both directions."""
        self._flowing.clear()

    def restore(self) -> None:
        """Move bytes again: what was held is delivered."""
        self._flowing.set()

    def forget(self) -> None:
        """Silence the connections open now for good (their server ends close), and
        keep forwarding for new ones."""
        with self._lock:
            links = [link for link in self._links if not link.forgotten]
            for link in links:
                link.forgotten = True
        for link in links:
            _shut(link.server)  # wakes its pumps, which then stop

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        with self._lock:
            links = list(self._links)
        for link in links:
            _shut(link.client)
            _shut(link.server)
        self._acceptor.join(5)
        for link in links:
            for thread in link.threads:
                thread.join(5)
            link.client.close()
            link.server.close()
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the threads ---------------------------------------------------------------------

    def _wait_flowing(self, link: _Link | None = None) -> None:
        """Until bytes may move; raises _Gone once ``link`` is forgotten or the proxy
        closed."""
        while True:
            if self._closed or (link is not None and link.forgotten):
                raise _Gone
            if self._flowing.wait(_TICK):
                return

    def _accept(self) -> None:
        while not self._closed:
            try:
                self._wait_flowing()
                client, _ = self._listener.accept()
            except (TimeoutError, _Gone):
                continue
            except OSError:
                return
            server = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                server.connect(self._address)
            except OSError:
                client.close()
                server.close()
                continue
            link = _Link(client, server)
            link.threads = [
                threading.Thread(target=self._pump, args=(link, client, server), daemon=True),
                threading.Thread(target=self._pump, args=(link, server, client), daemon=True),
            ]
            with self._lock:
                self._links.append(link)
            for thread in link.threads:
                thread.start()

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket) -> None:
        """Copy ``source`` to ``target`` while bytes may move; hold them meanwhile."""
        try:
            while True:
                self._wait_flowing(link)
                data = source.recv(_CHUNK)
                self._wait_flowing(link)  # read just before a cut: held until it ends
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
        except _Gone:
            pass
        except OSError:
            if not link.forgotten:  # one side failed: so does the other, as on a network
                _shut(link.client)
                _shut(link.server)
        finally:
            self._pump_done(link)

    def _pump_done(self, link: _Link) -> None:
        """Close a connection once both its pumps stopped; a forgotten one stays open
        until the proxy closes, silent."""
        with self._lock:
            link.pumps_done += 1
            if link.pumps_done < 2 or link.forgotten or self._closed:
                return
            self._links.remove(link)
        link.client.close()
        link.server.close()


def _shut(sock: socket.socket) -> None:
    """Shut a socket down, which wakes a thread blocked on it (closing does not)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
