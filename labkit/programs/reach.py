"""Which of the lab's named objects can a brand-new, unrelated process open? (lesson 06)

Usage: python reach.py FIFO MQUEUE SHM STREAM_PATH DGRAM_PATH TCP_PORT

This process is started afresh (not forked): it shares no memory and no open
descriptor with the lab, only the names on its command line. It tries to open
each one and prints one JSON object: for each mechanism "yes", or the name of
the exception that refused it.
"""
import json
import os
import socket
import sys

import posix_ipc

fifo, mq, shm, stream, dgram, port = sys.argv[1:7]
seen: dict[str, str] = {}


def attempt(what, open_it):
    """Try one way in; note "yes" or why not."""
    try:
        open_it()
        seen[what] = "yes"
    except (OSError, posix_ipc.Error) as e:
        seen[what] = type(e).__name__


def connect(family, address, kind=socket.SOCK_STREAM):
    with socket.socket(family, kind) as s:
        s.connect(address)


# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
attempt("FIFO (named pipe)", lambda: os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)))
attempt("POSIX message queue", lambda: posix_ipc.MessageQueue(mq).close())
attempt("shared memory", lambda: posix_ipc.SharedMemory(shm).close_fd())
attempt("Unix stream socket", lambda: connect(socket.AF_UNIX, stream))
attempt("Unix datagram socket", lambda: connect(socket.AF_UNIX, dgram, socket.SOCK_DGRAM))
attempt("TCP (loopback)", lambda: connect(socket.AF_INET, ("127.0.0.1", int(port))))
print(json.dumps(seen))
