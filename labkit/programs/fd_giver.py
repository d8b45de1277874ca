"""A stranger that hands an open file to whoever listens at a Unix socket (lesson 09).

Usage: python -m labkit.programs.fd_giver SOCKET_PATH FILE

It opens FILE for reading, connects to the stream socket at SOCKET_PATH and sends the
open descriptor (SCM_RIGHTS, riding on the one byte b"F"), then prints its pid and exits.
It shares nothing with the receiver but the socket's path: no fork, no inherited ends.
"""
import os
import socket
import sys


def main() -> None:
    address, path = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDONLY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address)
            socket.send_fds(s, [b"F"], [fd])
    finally:
        os.close(fd)
    print(os.getpid())


if __name__ == "__main__":
    main()
