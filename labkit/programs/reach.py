"""Which of the lab's named objects can a brand-new, unrelated process open? (lesson 06)

Usage: python -m labkit.programs.reach FIFO MQUEUE SHM STREAM_PATH DGRAM_PATH TCP_PORT

This process is started afresh (not forked): it shares no memory and no open
descriptor with the lab, only the names on its command line. It tries to open
each one and prints one JSON object: for each mechanism "yes", or the name of
the exception that refused it.
"""
import json
import os
import socket
import sys
from collections.abc import Callable

import posix_ipc


def attempt(seen: dict[str, str], what: str, open_it: Callable[[], object]) -> None:
    """Try one way in; note "yes" or why not."""
    try:
        open_it()
        seen[what] = "yes"
    except (OSError, posix_ipc.Error) as e:
        seen[what] = type(e).__name__


def connect(family: int, address: str | tuple[str, int], kind: int = socket.SOCK_STREAM) -> None:
    with socket.socket(family, kind) as s:
        s.connect(address)


def main() -> None:
    fifo, mq, shm, stream, dgram, port = sys.argv[1:7]
    seen: dict[str, str] = {}
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    attempt(seen, "FIFO (named pipe)",
            lambda: os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)))
    attempt(seen, "POSIX message queue", lambda: posix_ipc.MessageQueue(mq).close())
    attempt(seen, "shared memory", lambda: posix_ipc.SharedMemory(shm).close_fd())
    attempt(seen, "Unix stream socket", lambda: connect(socket.AF_UNIX, stream))
    attempt(seen, "Unix datagram socket",
            lambda: connect(socket.AF_UNIX, dgram, socket.SOCK_DGRAM))
    attempt(seen, "TCP (loopback)", lambda: connect(socket.AF_INET, ("127.0.0.1", int(port))))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
