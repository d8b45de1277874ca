"""Sockets for lesson 06: an echo server, a separate program, on a Unix socket or on TCP.

The server's code is ``labkit/programs/socket_server.py``; this module starts
it, tells the lab where to reach it and what it has seen, and stops it when
the ``with`` block ends (the Unix socket file goes with the block).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import objects
from ._validate import seconds as _seconds
from .servers import ServerProgram
from .waiting import wait_until

__all__ = ["SocketServer", "socket_server"]


@dataclass
class SocketServer:
    """A running :func:`socket_server`: where to reach it, and what it has seen.

    ``address`` is a path for the Unix kinds and ``("127.0.0.1", port)``
    for TCP. ``log`` lists one entry per connection (``pieces``: the size of
    each ``recv`` the server made) or per datagram (``datagram``: its size).
    """

    kind: str
    address: Any
    pid: int
    _program: ServerProgram = field(repr=False)

    @property
    def log(self) -> list[dict]:
        """What the server has handled so far."""
        return [d for d in self._program.lines() if "connection" in d or "datagram" in d]

    def wait_logged(self, n: int, timeout: float = 5.0) -> list[dict]:
        """Wait until ``n`` connections or datagrams have been handled; return the log."""
        def enough() -> list[dict]:
            done = self.log
            return done if len(done) >= n else []

        return wait_until(enough, timeout, lambda: f"the server handled {len(self.log)} of {n}",
                          every=0.005)


@contextlib.contextmanager
def socket_server(kind: str = "stream", lifetime: float = 60.0) -> Iterator[SocketServer]:
    """Run an echo server as a separate program on a Unix socket or on TCP loopback.

    ``kind`` is ``"stream"`` (a Unix stream socket: one connection after
    another, each piece it receives sent back in capitals), ``"dgram"`` (a
    Unix datagram socket: each datagram answered, in capitals, to the address
    it came from; the client must bind an address of its own to get replies)
    or ``"tcp"`` (like ``"stream"``, on 127.0.0.1 and a free port). The Unix
    socket file lives in the session's private directory and is removed when
    the block ends.

    >>> import socket
    >>> with socket_server("stream") as server:
    ...     with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    ...         s.connect(str(server.address))
    ...         s.sendall(b"echo")
    ...         s.recv(100)
    b'ECHO'
    """
    if kind not in ("stream", "dgram", "tcp"):
        raise ValueError(f"kind must be 'stream' (Unix stream socket), 'dgram' (Unix datagram "
                         f"socket) or 'tcp' (TCP on loopback), got {kind!r}")
    _seconds("lifetime", lifetime, 1.0, 3600.0)
    with objects.scope() as owned:  # the socket file the server binds goes with the scope
        path = owned.socket_path(kind) if kind != "tcp" else None
        with ServerProgram("socket_server", [kind, str(path) if path else ""],
                           lifetime) as program:
            ready = program.wait_for("ready", 10.0, f"the {kind} socket server")
            address = tuple(ready["ready"]) if kind == "tcp" else path
            yield SocketServer(kind, address, program.pid, program)


