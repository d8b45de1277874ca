"""The eight mechanisms of lesson 07, and lesson 09's zero-copy pipes, as channels with two ends.

A channel is made in the lab before the fork (the pipes, sockets, queues and
segment it needs); ``end(side)`` runs in each worker after it and keeps only
that side's ends. Every end has the same four verbs (prepare, send, recv,
close), so the harness times every mechanism with the same loop. Named
objects come from :mod:`labkit.objects` and die with the channel's scope.
"""
from __future__ import annotations

import ctypes
import os
import socket
from pathlib import Path
from typing import Any

import posix_ipc

from . import objects
from .segment import PAGE_SIZE

__all__ = ["CHANNELS", "LABELS", "MECHANISMS", "SHM_SLOTS", "ZERO_COPY", "Channel", "End",
           "message_bytes"]

MECHANISMS = ("pipe", "fifo", "unix", "tcp", "mqueue", "mp_queue", "mp_pipe", "shm")
# Lesson 09's additions, measured on the same harness but not part of lesson 07's ranking
# (its exercises name the eight above).
ZERO_COPY = ("splice", "vmsplice")
LABELS = {
    "pipe": "pipe",
    "fifo": "FIFO (named pipe)",
    "unix": "Unix stream socket",
    "tcp": "TCP on loopback",
    "mqueue": "POSIX message queue",
    "mp_queue": "multiprocessing.Queue",
    "mp_pipe": "multiprocessing.Pipe",
    "shm": "shared memory + semaphores",
    "splice": "pipe, splice in and out (Linux)",
    "vmsplice": "pipe, vmsplice in, read out (Linux)",
}

SHM_SLOTS = 2          # the shared-memory ring: the sender may fill one slot while one is read


# --- the channels: one class per mechanism, two ends each ------------------------------
#
# An end has prepare(view) -> something send() takes (done once per step, untimed),
# send(message), recv(size) -> the message (a view into a reused buffer where the
# mechanism allows it), and close(). Every channel carries messages both ways: a -> b
# for the data, b -> a for acknowledgements and echoes.


class End:
    """One side of a channel, in a worker: the four verbs the harness times."""

    def prepare(self, view: memoryview) -> Any:
        """What ``send`` takes for this message (made once per step, untimed)."""
        return view

    def send(self, message: Any) -> None:
        """Send one message (blocking while the channel is full)."""
        raise NotImplementedError

    def recv(self, size: int) -> Any:
        """Receive one message of ``size`` bytes (a view into a reused buffer where possible)."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of this side's ends."""


class _FdEnd(End):
    """Byte streams over two descriptors: os.write, and os.readv into one reused buffer."""

    def __init__(self, rfd: int, wfd: int, max_size: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.buf = memoryview(bytearray(max_size))   # zero-filled: every page touched

    def send(self, view: Any) -> None:
        n = os.write(self.wfd, view)
        while n < len(view):                     # only a signal cuts a blocking write short
            n += os.write(self.wfd, view[n:])

    def recv(self, size: int) -> memoryview:
        got = os.readv(self.rfd, [self.buf[:size]])
        while got < size:
            n = os.readv(self.rfd, [self.buf[got:size]])
            if not n:
                raise EOFError(f"the other side closed after {got} of {size} bytes")
            got += n
        return self.buf[:size]

    def close(self) -> None:
        for fd in {self.rfd, self.wfd}:
            os.close(fd)


class _SockEnd(End):
    def __init__(self, sock: socket.socket, max_size: int) -> None:
        self.sock = sock
        self.buf = memoryview(bytearray(max_size))

    def send(self, view: Any) -> None:
        self.sock.sendall(view)

    def recv(self, size: int) -> memoryview:
        got = self.sock.recv_into(self.buf[:size])
        while got < size:
            n = self.sock.recv_into(self.buf[got:size])
            if not n:
                raise EOFError(f"the other side closed after {got} of {size} bytes")
            got += n
        return self.buf[:size]

    def close(self) -> None:
        self.sock.close()


class _MQEnd(End):
    def __init__(self, out: posix_ipc.MessageQueue, inbox: posix_ipc.MessageQueue) -> None:
        self.out, self.inbox = out, inbox

    def prepare(self, view: memoryview) -> bytes:
        return bytes(view)

    def send(self, message: Any) -> None:
        self.out.send(message)

    def recv(self, size: int) -> bytes:
        return self.inbox.receive()[0]
    # close(): nothing; the scope that created the queues closes and removes them.


class _MPQueueEnd(End):
    def __init__(self, out: Any, inbox: Any) -> None:
        self.out, self.inbox = out, inbox

    def prepare(self, view: memoryview) -> bytes:
        return bytes(view)

    def send(self, message: Any) -> None:
        self.out.put(message)

    def recv(self, size: int) -> bytes:
        return self.inbox.get()

    def close(self) -> None:
        # Flush our feeder thread before the worker ends with os._exit: without this
        # a message put last could be lost (lesson 06's trap).
        self.out.close()
        self.out.join_thread()


class _MPPipeEnd(End):
    def __init__(self, conn: Any, max_size: int) -> None:
        self.conn = conn
        self.buf = bytearray(max_size)
        self.view = memoryview(self.buf)

    def send(self, message: Any) -> None:
        self.conn.send_bytes(message)

    def recv(self, size: int) -> memoryview:
        n = self.conn.recv_bytes_into(self.buf)
        return self.view[:n]

    def close(self) -> None:
        self.conn.close()


class _ShmEnd(End):
    """A ring of SHM_SLOTS slots each way, counted by an empty and a full semaphore.

    The sender waits for an empty slot, copies the message in (the one copy)
    and posts "full". The receiver waits for "full" and gets a view of the
    slot itself: zero copies. The slot is handed back (posts "empty") at its
    next receive, so a message stays valid until then.
    """

    def __init__(self, seg: Any, out: tuple, inbox: tuple, prefault: bool) -> None:
        self.seg = seg
        self.mm = seg.buf
        self.out_base, self.out_slot, self.out_empty, self.out_full = out
        self.in_base, self.in_slot, self.in_empty, self.in_full = inbox
        self.sent = self.received = 0
        self.held = False
        self.whole = memoryview(self.mm)
        if prefault:
            span = SHM_SLOTS * self.out_slot
            for off in range(0, span, 1 << 20):        # our outgoing slots: written
                n = min(1 << 20, span - off)
                self.mm[self.out_base + off:self.out_base + off + n] = bytes(n)
            for off in range(self.in_base, self.in_base + SHM_SLOTS * self.in_slot, PAGE_SIZE):
                self.whole[off]                        # incoming slots: read once each page

    def send(self, view: Any) -> None:
        self.out_empty.acquire()
        off = self.out_base + (self.sent % SHM_SLOTS) * self.out_slot
        self.whole[off:off + len(view)] = view
        self.sent += 1
        self.out_full.release()

    def recv(self, size: int) -> memoryview:
        if self.held:
            self.in_empty.release()                    # the previous message's slot
        self.in_full.acquire()
        off = self.in_base + (self.received % SHM_SLOTS) * self.in_slot
        self.received += 1
        self.held = True
        return self.whole[off:off + size]

    def close(self) -> None:
        self.whole.release()


class Channel:
    """Made in the lab before the fork; ``end(side)`` runs in each worker after it."""

    mechanism = ""

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        self.max_size, self.small = max_size, small

    def end(self, side: int, prefault: bool) -> End:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the lab itself holds once the workers have it."""


class _PipeChannel(Channel):
    mechanism = "pipe"
    ends: tuple[type[_FdEnd], type[_FdEnd]] = (_FdEnd, _FdEnd)   # the sender's, the receiver's

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ab = os.pipe()
        self.ba = os.pipe()

    def end(self, side: int, prefault: bool) -> End:
        mine = (self.ba[0], self.ab[1]) if side == 0 else (self.ab[0], self.ba[1])
        for fd in (*self.ab, *self.ba):
            if fd not in mine:
                os.close(fd)
        return self.ends[side](*mine, self.max_size if side else self.small)

    def close(self) -> None:
        for fd in (*self.ab, *self.ba):
            os.close(fd)


class _SpliceOut(_FdEnd):
    """The sender: each message is staged, untimed, in a memfd of its own (standing for data
    already in the kernel, as a file's pages are); ``send`` splices those pages into the
    pipe without copying them. A fresh memfd per message, because the pipe holds references
    to the pages themselves: rewriting one still in the pipe would change what is read."""

    staged = -1

    def prepare(self, view: memoryview) -> tuple[int, int]:
        self._unstage()
        self.staged = os.memfd_create("splice-out", os.MFD_CLOEXEC)
        written = 0
        while written < len(view):
            written += os.write(self.staged, view[written:])
        return self.staged, len(view)

    def send(self, message: Any) -> None:
        fd, size = message
        done = 0
        while done < size:
            done += os.splice(fd, self.wfd, size - done, offset_src=done)

    def _unstage(self) -> None:
        if self.staged >= 0:
            os.close(self.staged)
            self.staged = -1

    def close(self) -> None:
        self._unstage()
        super().close()


class _SpliceIn(_FdEnd):
    """The receiver: splices each message out of the pipe into a memfd it has mapped, so the
    bytes arrive in its memory (the kernel copies them once, as a read would)."""

    def __init__(self, rfd: int, wfd: int, max_size: int) -> None:
        import mmap

        self.rfd, self.wfd = rfd, wfd
        self.sink = os.memfd_create("splice-in", os.MFD_CLOEXEC)
        os.ftruncate(self.sink, max_size)
        self.map = mmap.mmap(self.sink, max_size)
        self.buf = memoryview(self.map)

    def recv(self, size: int) -> memoryview:
        got = 0
        while got < size:
            n = os.splice(self.rfd, self.sink, size - got, offset_dst=got)
            if not n:
                raise EOFError(f"the other side closed after {got} of {size} bytes")
            got += n
        return self.buf[:size]

    def close(self) -> None:
        self.buf.release()
        self.map.close()
        os.close(self.sink)
        super().close()


class _VmspliceOut(_FdEnd):
    """The sender: ``vmsplice`` (through ctypes: Python has no binding) hands the pipe
    references to the pages of the sender's own buffer instead of copying them. Those pages
    must then stay unchanged until the reader has them, so every staged buffer is kept until
    the receiver's next acknowledgement, and only the one in use after it."""

    def __init__(self, rfd: int, wfd: int, max_size: int) -> None:
        super().__init__(rfd, wfd, max_size)
        self.held: list[Any] = []
        self.vmsplice = _vmsplice()

    def prepare(self, view: memoryview) -> Any:
        staged = (ctypes.c_char * len(view)).from_buffer_copy(view)
        self.held.append(staged)
        return staged

    def send(self, message: Any) -> None:
        base, size, done = ctypes.addressof(message), len(message), 0
        while done < size:
            iov = _Iovec(base + done, size - done)
            n = self.vmsplice(self.wfd, ctypes.byref(iov), 1, 0)
            if n < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"vmsplice into the pipe failed: {os.strerror(err)}")
            done += n

    def recv(self, size: int) -> memoryview:
        got = super().recv(size)
        self.held = self.held[-1:]   # everything sent before this answer has been read
        return got


def _vmsplice() -> Any:
    """libc's vmsplice, or NotSupportedHere."""
    from ._platform import libc
    from .errors import NotSupportedHere

    c = libc()
    if not hasattr(c, "vmsplice"):
        raise NotSupportedHere("vmsplice is a Linux system call; this C library has none")
    fn = c.vmsplice
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_uint]
    fn.restype = ctypes.c_ssize_t
    return fn


class _Iovec(ctypes.Structure):
    """struct iovec: one piece of memory, for vmsplice."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _VmspliceChannel(_PipeChannel):
    mechanism = "vmsplice"
    ends = (_VmspliceOut, _FdEnd)


class _SpliceChannel(_PipeChannel):
    mechanism = "splice"
    ends = (_SpliceOut, _SpliceIn)

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        from .mux import needs

        needs("splice")
        needs("memfd")
        super().__init__(objs, max_size, small)


class _FifoChannel(Channel):
    mechanism = "fifo"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ab = objs.fifo("ab")
        self.ba = objs.fifo("ba")

    def end(self, side: int, prefault: bool) -> End:
        from .pipes import open_fifo  # lesson 02's timed FIFO open

        def reader(path: Path) -> int:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # never waits
            os.set_blocking(fd, True)
            return fd

        # Opening for writing waits for a reader; each side opens its reading end first
        # where the other side waits for it, so neither waits forever.
        if side == 0:
            w = open_fifo(self.ab, "w", timeout=10)
            r = reader(self.ba)
        else:
            r = reader(self.ab)
            w = open_fifo(self.ba, "w", timeout=10)
        return _FdEnd(r, w, self.max_size if side else self.small)


class _DuplexChannel(Channel):
    """Two connected two-way ends (a socket pair, a ``multiprocessing.Pipe``): one per side."""

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ends = self._pair()

    def _pair(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def _wrap(self, end: Any, max_size: int) -> End:
        raise NotImplementedError

    def end(self, side: int, prefault: bool) -> End:
        self.ends[1 - side].close()
        return self._wrap(self.ends[side], self.max_size if side else self.small)

    def close(self) -> None:
        for e in self.ends:
            e.close()


class _UnixChannel(_DuplexChannel):
    mechanism = "unix"

    def _pair(self) -> tuple[socket.socket, socket.socket]:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def _wrap(self, end: socket.socket, max_size: int) -> End:
        return _SockEnd(end, max_size)


class _TcpChannel(_UnixChannel):
    mechanism = "tcp"

    def _pair(self) -> tuple[socket.socket, socket.socket]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))              # loopback only
            listener.listen(1)
            a = socket.create_connection(listener.getsockname())
            b, _ = listener.accept()
        for s in (a, b):  # send small messages at once instead of batching them (Nagle)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return a, b


class _MQChannel(Channel):
    mechanism = "mqueue"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        from .mq import limits

        depth = min(10, limits().msg_max)
        self.ab = objs.message_queue(depth, max_size, label="benchab")
        self.ba = objs.message_queue(depth, small, label="benchba")

    def end(self, side: int, prefault: bool) -> End:
        return _MQEnd(self.ab, self.ba) if side == 0 else _MQEnd(self.ba, self.ab)


class _MPQueueChannel(Channel):
    mechanism = "mp_queue"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        import multiprocessing

        ctx = multiprocessing.get_context("fork")  # explicit: 3.14 defaults to forkserver
        self.ab, self.ba = ctx.Queue(), ctx.Queue()

    def end(self, side: int, prefault: bool) -> End:
        return _MPQueueEnd(self.ab, self.ba) if side == 0 else _MPQueueEnd(self.ba, self.ab)

    def close(self) -> None:
        for q in (self.ab, self.ba):
            q.close()


class _MPPipeChannel(_DuplexChannel):
    mechanism = "mp_pipe"

    def _pair(self) -> tuple[Any, Any]:
        import multiprocessing

        return multiprocessing.get_context("fork").Pipe()   # duplex: a socket pair

    def _wrap(self, end: Any, max_size: int) -> End:
        return _MPPipeEnd(end, max_size)


class _ShmChannel(Channel):
    mechanism = "shm"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        from .shm import Segment

        self.seg = Segment.create(SHM_SLOTS * (max_size + small), label="bench")
        self.sems = [objs.semaphore(v, label="bench") for v in (SHM_SLOTS, 0, SHM_SLOTS, 0)]

    def end(self, side: int, prefault: bool) -> End:
        ab_empty, ab_full, ba_empty, ba_full = self.sems
        ab = (0, self.max_size, ab_empty, ab_full)
        ba = (SHM_SLOTS * self.max_size, self.small, ba_empty, ba_full)
        return _ShmEnd(self.seg, ab, ba, prefault) if side == 0 else _ShmEnd(
            self.seg, ba, ab, prefault)

    def close(self) -> None:
        self.seg.close()
        self.seg.unlink()


CHANNELS: dict[str, type[Channel]] = {c.mechanism: c for c in (
    _PipeChannel, _FifoChannel, _UnixChannel, _TcpChannel, _MQChannel, _MPQueueChannel,
    _MPPipeChannel, _ShmChannel, _SpliceChannel, _VmspliceChannel)}


def message_bytes(size: int, seed: int = 7) -> memoryview:
    """``size`` bytes of varied data (not the zero page, which would make copies look free)."""
    import numpy as np

    data = bytearray(size)
    np.frombuffer(data, dtype=np.uint8)[:] = np.random.default_rng(seed).integers(
        0, 256, size, dtype=np.uint8)
    return memoryview(data)


