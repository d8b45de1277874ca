"""An echo server on a Unix socket or on TCP loopback (lesson 06).

Usage: python -m labkit.programs.socket_server [--lifetime S] KIND PATH

KIND is "stream" (a Unix stream socket bound at PATH: one connection after
another, each piece received sent back in capitals), "dgram" (a Unix datagram
socket at PATH: each datagram answered, in capitals, to the address it came
from) or "tcp" (like "stream", on 127.0.0.1 and a free port; PATH is unused).
The address is logged first (``ready``); then one line per connection (the
size of every recv) or per datagram.
"""
import os
import socket

from labkit.programs import serving


def main() -> None:
    kind, path = serving.start()
    if kind == "tcp":
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", 0))                 # loopback only: nobody outside can connect
        address: object = list(srv.getsockname())
    else:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "dgram"
                            else socket.SOCK_STREAM)
        srv.bind(path)                             # makes the socket file (0600: see serving)
        address = path
    if kind != "dgram":
        srv.listen(8)
    serving.hold()
    serving.log(ready=address, pid=os.getpid())
    srv.settimeout(0.05)                           # wake now and then: stopping?
    if kind == "dgram":
        while not serving.stopping():
            try:
                data, sender = srv.recvfrom(1 << 17)
            except TimeoutError:
                continue
            if sender:                             # only a client that bound an address
                try:
                    srv.sendto(data.upper(), sender)
                except OSError:
                    sender = ""                    # the client has gone (its socket file too)
            serving.log(datagram=len(data), sender=sender or "", replied=bool(sender))
    else:
        n = 0
        while not serving.stopping():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            n += 1
            pieces = []
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(1 << 16):
                        pieces.append(len(data))
                        conn.sendall(data.upper())
                except OSError:
                    pass                           # the client went away or went quiet
            serving.log(connection=n, pieces=pieces)


if __name__ == "__main__":
    main()
