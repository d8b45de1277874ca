"""The performance lab (lesson 07): every mechanism of the course on one harness.

Each mechanism is measured the same way, by two worker processes (a sender
and a receiver, pinned to one CPU or to two) that the lab drives step by
step: **latency** is the round trip of a small message, repeated many times
(median and percentiles); **throughput** is bytes per second for a stream of
messages of one size, from 1 byte to 16 MiB, timed from the first send until
the receiver confirms it has the last byte. Every step runs after an
untimed warm-up of the same size, with every buffer allocated and its pages
faulted in beforehand, and steps of all mechanisms and sizes are shuffled
together in each round, so a burst of other work on the machine spreads over
all of them instead of spoiling one. Two references run in the same rounds:
a NumPy copy of each size (the memory-bandwidth line) and ``dd`` through a
pipe (a C program's figure next to ours). Results are plain data; the plots
take it.

All sessions are started through :func:`labkit.start_workers` (a start
barrier, a timeout, nothing left behind) and all named objects come from
:mod:`labkit.objects`. Multiprocessing's channels use an explicit ``"fork"``
context, so the lab behaves alike on every Python version.
"""
from __future__ import annotations

import csv
import math
import os
import pickle
import random
import re
import resource
import select
import shutil
import socket
import statistics
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import posix_ipc

from . import objects
from ._validate import whole as _whole
from .errors import LabError, LabTimeout, NotSupportedHere
from .processes import start_workers

__all__ = [
    "FULL_SIZES",
    "LABELS",
    "MECHANISMS",
    "QUICK_SIZES",
    "FullReport",
    "Sweep",
    "Syscalls",
    "count_syscalls",
    "full",
    "main",
    "plot_round_trips",
    "plot_throughput",
    "plot_time_per_message",
    "quick",
    "round_trips",
    "sweep",
    "transfer",
]

MECHANISMS = ("pipe", "fifo", "unix", "tcp", "mqueue", "mp_queue", "mp_pipe", "shm")
LABELS = {
    "pipe": "pipe",
    "fifo": "FIFO (named pipe)",
    "unix": "Unix stream socket",
    "tcp": "TCP on loopback",
    "mqueue": "POSIX message queue",
    "mp_queue": "multiprocessing.Queue",
    "mp_pipe": "multiprocessing.Pipe",
    "shm": "shared memory + semaphores",
}
STYLES = {"pipe": "o-", "fifo": "v--", "unix": "s-", "tcp": "D-", "mqueue": "^-",
          "mp_queue": "x-", "mp_pipe": "+-", "shm": "*-"}
QUICK_SIZES = (1, 64, 4096, 65536, 1 << 20)
FULL_SIZES = tuple(4 ** k for k in range(13))      # 1 B, 4 B, ... 4 MiB, 16 MiB
MAX_SIZE = 16 << 20
MAX_LATENCY_SIZE = 4096
SHM_SLOTS = 2          # the shared-memory ring: the sender may fill one slot while one is read

_FRAME = struct.Struct("!I")


def _mechanisms(mechanisms: Any) -> list[str]:
    if isinstance(mechanisms, str) or not isinstance(mechanisms, Sequence) or not mechanisms:
        raise ValueError(f"mechanisms must be a non-empty list of names from "
                         f"{', '.join(MECHANISMS)}; got {mechanisms!r}")
    for m in mechanisms:
        if m not in MECHANISMS:
            raise ValueError(f"unknown mechanism {m!r}; choose from {', '.join(MECHANISMS)}")
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"mechanisms must not repeat a name, got {list(mechanisms)}")
    return list(mechanisms)


def _sizes(sizes: Any, allow_empty: bool = False) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or (
            not sizes and not allow_empty):
        raise ValueError(f"sizes must be a non-empty list of message sizes in bytes, "
                         f"got {sizes!r}")
    for s in sizes:
        _whole("every message size", s, 1, MAX_SIZE, "bytes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must not repeat a size, got {list(sizes)}")
    return sorted(sizes)


def _mq_size_limit() -> int:
    from .mq import limits, supported

    return limits().msgsize_max if supported() else 0


def _placement(pin: str | None) -> tuple[int | None, int | None, str]:
    """Lesson 02's CPU placement, said in this lesson's words (sender and receiver)."""
    from .pipes import placement

    a, b, text = placement(pin)
    return a, b, text.replace("writer", "sender").replace("reader", "receiver")


# --- framed pickles between the lab and its workers -------------------------------------


def _put(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj)
    data = _FRAME.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError("the other side closed its end")
        data += chunk
    return data


def _get(fd: int) -> Any:
    (n,) = _FRAME.unpack(_read_exactly(fd, _FRAME.size))
    return pickle.loads(_read_exactly(fd, n))


# --- the channels: one class per mechanism, two ends each ------------------------------
#
# An end has prepare(view) -> something send() takes (done once per step, untimed),
# send(message), recv(size) -> the message (a view into a reused buffer where the
# mechanism allows it), and close(). Every channel carries messages both ways: a -> b
# for the data, b -> a for acknowledgements and echoes.


class _End:
    def prepare(self, view: memoryview) -> Any:
        return view

    def close(self) -> None:
        pass


class _FdEnd(_End):
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


class _SockEnd(_End):
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


class _MQEnd(_End):
    def __init__(self, out: posix_ipc.MessageQueue, inbox: posix_ipc.MessageQueue) -> None:
        self.out, self.inbox = out, inbox

    def prepare(self, view: memoryview) -> bytes:
        return bytes(view)

    def send(self, message: Any) -> None:
        self.out.send(message)

    def recv(self, size: int) -> bytes:
        return self.inbox.receive()[0]
    # close(): nothing; the scope that created the queues closes and removes them.


class _MPQueueEnd(_End):
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


class _MPPipeEnd(_End):
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


class _ShmEnd(_End):
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
            page = os.sysconf("SC_PAGE_SIZE")
            span = SHM_SLOTS * self.out_slot
            for off in range(0, span, 1 << 20):        # our outgoing slots: written
                n = min(1 << 20, span - off)
                self.mm[self.out_base + off:self.out_base + off + n] = bytes(n)
            for off in range(self.in_base, self.in_base + SHM_SLOTS * self.in_slot, page):
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


class _Channel:
    """Made in the lab before the fork; ``end(side)`` runs in each worker after it."""

    mechanism = ""

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        self.max_size, self.small = max_size, small

    def end(self, side: int, prefault: bool) -> _End:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the lab itself holds once the workers have it."""


class _PipeChannel(_Channel):
    mechanism = "pipe"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ab = os.pipe()
        self.ba = os.pipe()

    def end(self, side: int, prefault: bool) -> _End:
        mine = (self.ba[0], self.ab[1]) if side == 0 else (self.ab[0], self.ba[1])
        for fd in (*self.ab, *self.ba):
            if fd not in mine:
                os.close(fd)
        return _FdEnd(*mine, self.max_size if side else self.small)

    def close(self) -> None:
        for fd in (*self.ab, *self.ba):
            os.close(fd)


class _FifoChannel(_Channel):
    mechanism = "fifo"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ab = objs.fifo("ab")
        self.ba = objs.fifo("ba")

    def end(self, side: int, prefault: bool) -> _End:
        from .pipes import open_fifo

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


class _DuplexChannel(_Channel):
    """Two connected two-way ends (a socket pair, a ``multiprocessing.Pipe``): one per side."""

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        self.ends = self._pair()

    def _pair(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def _wrap(self, end: Any, max_size: int) -> _End:
        raise NotImplementedError

    def end(self, side: int, prefault: bool) -> _End:
        self.ends[1 - side].close()
        return self._wrap(self.ends[side], self.max_size if side else self.small)

    def close(self) -> None:
        for e in self.ends:
            e.close()


class _UnixChannel(_DuplexChannel):
    mechanism = "unix"

    def _pair(self) -> tuple[socket.socket, socket.socket]:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def _wrap(self, end: socket.socket, max_size: int) -> _End:
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


class _MQChannel(_Channel):
    mechanism = "mqueue"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        from .mq import limits

        depth = min(10, limits().msg_max)
        self.ab = objs.message_queue(depth, max_size, label="benchab")
        self.ba = objs.message_queue(depth, small, label="benchba")

    def end(self, side: int, prefault: bool) -> _End:
        return _MQEnd(self.ab, self.ba) if side == 0 else _MQEnd(self.ba, self.ab)


class _MPQueueChannel(_Channel):
    mechanism = "mp_queue"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        import multiprocessing

        ctx = multiprocessing.get_context("fork")  # explicit: 3.14 defaults to forkserver
        self.ab, self.ba = ctx.Queue(), ctx.Queue()

    def end(self, side: int, prefault: bool) -> _End:
        return _MPQueueEnd(self.ab, self.ba) if side == 0 else _MPQueueEnd(self.ba, self.ab)

    def close(self) -> None:
        for q in (self.ab, self.ba):
            q.close()


class _MPPipeChannel(_DuplexChannel):
    mechanism = "mp_pipe"

    def _pair(self) -> tuple[Any, Any]:
        import multiprocessing

        return multiprocessing.get_context("fork").Pipe()   # duplex: a socket pair

    def _wrap(self, end: Any, max_size: int) -> _End:
        return _MPPipeEnd(end, max_size)


class _ShmChannel(_Channel):
    mechanism = "shm"

    def __init__(self, objs: objects.Scope, max_size: int, small: int) -> None:
        super().__init__(objs, max_size, small)
        from .shm import Segment

        self.seg = Segment.create(SHM_SLOTS * (max_size + small), label="bench")
        self.sems = [objs.semaphore(v, label="bench") for v in (SHM_SLOTS, 0, SHM_SLOTS, 0)]

    def end(self, side: int, prefault: bool) -> _End:
        ab_empty, ab_full, ba_empty, ba_full = self.sems
        ab = (0, self.max_size, ab_empty, ab_full)
        ba = (SHM_SLOTS * self.max_size, self.small, ba_empty, ba_full)
        return _ShmEnd(self.seg, ab, ba, prefault) if side == 0 else _ShmEnd(
            self.seg, ba, ab, prefault)

    def close(self) -> None:
        self.seg.close()
        self.seg.unlink()


_CHANNELS: dict[str, type[_Channel]] = {c.mechanism: c for c in (
    _PipeChannel, _FifoChannel, _UnixChannel, _TcpChannel, _MQChannel, _MPQueueChannel,
    _MPPipeChannel, _ShmChannel)}


# --- the workers ----------------------------------------------------------------------


def _switches() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_nvcsw + ru.ru_nivcsw


def _message(size: int, seed: int = 7) -> memoryview:
    """``size`` bytes of varied data (not the zero page, which would make copies look free)."""
    import numpy as np

    data = bytearray(size)
    np.frombuffer(data, dtype=np.uint8)[:] = np.random.default_rng(seed).integers(
        0, 256, size, dtype=np.uint8)
    return memoryview(data)


def _worker(i: int, fds: dict[str, int], channel: _Channel, cpus: tuple, max_size: int,
            prefault: bool) -> int:
    """Worker 0 sends and times, worker 1 receives; each answers the lab's steps."""
    mine = {f"ctl{i}_r", f"res{i}_w"}
    for name, fd in fds.items():
        if name not in mine:
            os.close(fd)
    ctl, res = fds[f"ctl{i}_r"], fds[f"res{i}_w"]
    if cpus[i] is not None:
        os.sched_setaffinity(0, {cpus[i]})
    end = channel.end(i, prefault)
    source = _message(max_size) if i == 0 else None
    ack = end.prepare(memoryview(b"!"))
    _put(res, "ready")
    steps = 0
    try:
        while True:
            try:
                step = _get(ctl)
            except EOFError:
                break
            kind = step[0]
            if kind == "stop":
                break
            if kind == "tp":
                _, size, warm, count = step
                if i == 0:
                    msg = end.prepare(source[:size])
                    for _ in range(warm):
                        end.send(msg)
                    end.recv(1)
                    sw = _switches()
                    began = time.perf_counter()
                    for _ in range(count):
                        end.send(msg)
                    end.recv(1)
                    _put(res, (time.perf_counter() - began, _switches() - sw))
                else:
                    for _ in range(warm):
                        end.recv(size)
                    end.send(ack)
                    sw = _switches()
                    for _ in range(count):
                        end.recv(size)
                    end.send(ack)
                    _put(res, _switches() - sw)
            elif kind == "lat":
                _, size, warm, count = step
                if i == 0:
                    msg = end.prepare(source[:size])
                    times = []
                    clock = time.perf_counter_ns
                    for k in range(warm + count):
                        began = clock()
                        end.send(msg)
                        end.recv(size)
                        times.append(clock() - began)
                    _put(res, times[warm:])
                else:
                    for _ in range(warm + count):
                        end.send(end.recv(size))
                    _put(res, None)
            elif kind == "xfer":
                _, messages = step
                if i == 0:
                    for m in messages:
                        end.send(end.prepare(memoryview(m)))
                    end.recv(1)
                    _put(res, None)
                else:
                    got = [bytes(end.recv(len(m))) for m in messages]
                    end.send(ack)
                    _put(res, got)
            steps += 1
    finally:
        end.close()
    return steps


def _copy_worker(i: int, fds: dict[str, int], cpu: int | None, max_size: int) -> int:
    """The memory-bandwidth reference: NumPy copies of each size, in this process."""
    import numpy as np

    for name, fd in fds.items():
        if name not in ("ctl0_r", "res0_w"):
            os.close(fd)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    src = np.frombuffer(_message(max_size), dtype=np.uint8)
    dst = np.zeros(max_size, dtype=np.uint8)
    dst[:] = 1                                             # fault every page in
    _put(fds["res0_w"], "ready")
    steps = 0
    while True:
        try:
            step = _get(fds["ctl0_r"])
        except EOFError:
            break
        if step[0] == "stop":
            break
        _, size, warm, count = step
        a, b = src[:size], dst[:size]
        for _ in range(warm):
            np.copyto(b, a)
        began = time.perf_counter()
        for _ in range(count):
            np.copyto(b, a)
        _put(fds["res0_w"], (time.perf_counter() - began, 0))
        steps += 1
    return steps


def _dd_worker(i: int, fds: dict[str, int], cpus: tuple) -> int:
    """The C baseline: dd if=/dev/zero | dd of=/dev/null, as lesson 02 measured it."""
    from .pipes import dd_pair

    for name, fd in fds.items():
        if name not in ("ctl0_r", "res0_w"):
            os.close(fd)
    _put(fds["res0_w"], "ready")
    steps = 0
    while True:
        try:
            step = _get(fds["ctl0_r"])
        except EOFError:
            break
        if step[0] == "stop":
            break
        _, size, _warm, count = step
        _put(fds["res0_w"], (dd_pair(size, count, cpus), 0))
        steps += 1
    return steps


class _Session:
    """Worker processes for one mechanism (or a reference), driven step by step."""

    def __init__(self, name: str, fn: Any, n: int, args: tuple, timeout: float,
                 deadline: float, channel: _Channel | None = None) -> None:
        self.name, self.n, self.deadline = name, n, deadline
        self.fds: dict[str, int] = {}
        self.channel = channel
        try:
            for k in range(n):
                self.fds[f"ctl{k}_r"], self.fds[f"ctl{k}_w"] = os.pipe()
                self.fds[f"res{k}_r"], self.fds[f"res{k}_w"] = os.pipe()
            self.workers = start_workers(fn, n, self.fds, *args, timeout=timeout, show=False)
        except BaseException:
            for fd in self.fds.values():
                os.close(fd)
            raise
        for name_, fd in list(self.fds.items()):
            if (name_.startswith("ctl") and name_.endswith("_r")) or \
                    (name_.startswith("res") and name_.endswith("_w")):
                os.close(fd)
                del self.fds[name_]

    def _result(self, k: int) -> Any:
        fd = self.fds[f"res{k}_r"]
        left = self.deadline - time.monotonic()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if left <= 0 or not poller.poll(left * 1000):
            raise LabTimeout(f"the {self.name} measurement did not finish in time; its "
                             "processes were killed")
        try:
            return _get(fd)
        except EOFError:
            self.workers.wait(timeout=2.0).values  # noqa: B018 - raises ChildError with why
            raise LabError(f"a {self.name} worker ended early without saying why") from None

    def ready(self) -> None:
        for k in range(self.n):
            self._result(k)

    def step(self, step: tuple) -> list[Any]:
        for k in reversed(range(self.n)):              # the receiver first
            _put(self.fds[f"ctl{k}_w"], step)
        return [self._result(k) for k in range(self.n)]

    def close(self) -> None:
        for k in range(self.n):
            fd = self.fds.pop(f"ctl{k}_w", None)
            if fd is not None:
                # Say stop: end of file alone would not do, since workers of sessions
                # started later inherited a copy of this write end.
                _put(fd, ("stop",))
                os.close(fd)
        try:
            self.workers.wait(timeout=max(self.deadline - time.monotonic(), 0.5)).values  # noqa: B018
        finally:
            self.workers.__exit__(None, None, None)
            for fd in self.fds.values():
                os.close(fd)
            self.fds.clear()


# --- the results ----------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        raise ValueError("no values")
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass(frozen=True)
class Sweep:
    """Everything one run of the harness measured, as plain data.

    ``seconds[m][j]`` holds one time per repeat for moving ``counts[j]``
    messages of ``sizes[j]`` bytes with mechanism ``m`` (an empty list where
    the mechanism cannot carry that size: see ``skipped``);
    ``switches[m][j]`` the context switches of sender and receiver together in
    those runs. ``memcpy[j]`` times the same number of NumPy copies of the same
    size, ``dd`` the C baseline at ``dd_size``. ``round_trip_ns[m]`` lists every
    timed round trip of a ``latency_size``-byte message, in nanoseconds.
    """

    mechanisms: list[str]
    sizes: list[int]
    counts: list[int]
    warmups: list[int]
    repeats: int
    placement: str
    pin: str | None
    seconds: dict[str, list[list[float]]]
    switches: dict[str, list[list[int]]]
    memcpy: list[list[float]]
    dd_size: int | None
    dd: list[float]
    latency_size: int
    round_trip_ns: dict[str, list[int]]
    skipped: dict[str, str]
    method: str
    elapsed: float
    seed: int | None = None

    # --- throughput

    def rates(self, mechanism: str, size: int) -> list[float]:
        """Bytes per second of every repeat (empty if not measured)."""
        j = self.sizes.index(size)
        return [self.sizes[j] * self.counts[j] / t for t in self.seconds[mechanism][j]]

    def quartiles(self, mechanism: str, size: int) -> tuple[float, float, float]:
        """(first quartile, median, third quartile) of bytes per second."""
        return _quartiles(self.rates(mechanism, size), f"{mechanism} at {size} bytes")

    def rate(self, mechanism: str, size: int) -> float:
        """Median bytes per second; NaN where the mechanism could not carry that size."""
        rates = self.rates(mechanism, size)
        return statistics.median(rates) if rates else math.nan

    def per_message(self, mechanism: str, size: int) -> float:
        """Median seconds per message in a stream of messages of ``size`` bytes."""
        j = self.sizes.index(size)
        times = self.seconds[mechanism][j]
        return statistics.median(times) / self.counts[j] if times else math.nan

    def switches_per_message(self, mechanism: str, size: int) -> float:
        """Median context switches (sender and receiver) per message: the wake-ups."""
        j = self.sizes.index(size)
        counts = self.switches[mechanism][j]
        return statistics.median(counts) / self.counts[j] if counts else math.nan

    def memcpy_rate(self, size: int) -> float:
        """Median bytes per second of a NumPy copy of ``size`` bytes (the bandwidth line)."""
        j = self.sizes.index(size)
        return statistics.median(self.sizes[j] * self.counts[j] / t for t in self.memcpy[j])

    def dd_rate(self) -> float:
        """Median bytes per second of ``dd`` through a pipe at ``dd_size`` (NaN if not run)."""
        if not self.dd or self.dd_size is None:
            return math.nan
        j = self.sizes.index(self.dd_size)
        return statistics.median(self.dd_size * self.counts[j] / t for t in self.dd)

    def ranking(self, size: int) -> list[tuple[str, float]]:
        """Mechanisms from fastest to slowest at ``size``, with their median bytes/s."""
        measured = [(m, self.rate(m, size)) for m in self.mechanisms]
        return sorted([x for x in measured if not math.isnan(x[1])], key=lambda x: -x[1])

    # --- latency

    def round_trip(self, mechanism: str, q: float = 0.5) -> float:
        """A percentile (``q=0.5``: the median) of the round trips, in seconds."""
        values = sorted(self.round_trip_ns[mechanism])
        return _percentile(values, q) / 1e9

    # --- tables

    def table(self, unit: float = 1e6) -> Any:
        """Median throughput per mechanism and size (MB/s by default), with the references."""
        from .display import Table

        def cell(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x / unit:,.0f}" if x / unit >= 10 else \
                f"{x / unit:.2g}"

        rows = [[LABELS[m], *(cell(self.rate(m, s)) for s in self.sizes)]
                for m in self.mechanisms]
        rows.append(["NumPy copy (memory bandwidth)", *(cell(self.memcpy_rate(s))
                                                        for s in self.sizes)])
        if self.dd:
            rows.append(["dd | dd (C, through a pipe)",
                         *(cell(self.dd_rate()) if s == self.dd_size else "" for s in
                           self.sizes)])
        unit_name = {1e6: "MB/s", 1e9: "GB/s"}.get(unit, f"x{unit:g} B/s")
        return Table([f"{unit_name} by message size", *(_size_name(s) for s in self.sizes)],
                     rows)

    def latency_table(self) -> Any:
        """Round trips: median and percentiles in microseconds, fastest first."""
        from .display import Table

        rows = []
        for m in sorted(self.round_trip_ns, key=lambda m: self.round_trip(m)):
            rows.append([LABELS[m], *(round(self.round_trip(m, q) * 1e6, 1)
                                      for q in (0.1, 0.5, 0.9, 0.99)),
                         len(self.round_trip_ns[m])])
        return Table([f"round trip of {self.latency_size} B ({self.placement})", "p10 (µs)",
                      "median (µs)", "p90 (µs)", "p99 (µs)", "round trips"], rows)

    def switches_table(self) -> Any:
        """Context switches per message (sender and receiver together), by size."""
        from .display import Table

        return Table(["context switches per message", *(_size_name(s) for s in self.sizes)],
                     [[LABELS[m], *("n/a" if math.isnan(x := self.switches_per_message(m, s))
                                    else round(x, 2) for s in self.sizes)]
                      for m in self.mechanisms])

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (mechanism, size) with medians and spread: what the CSV holds."""
        out = []
        for m in self.mechanisms:
            for j, s in enumerate(self.sizes):
                row: dict[str, Any] = {"placement": self.placement, "mechanism": m,
                                       "size": s, "messages": self.counts[j]}
                if self.seconds[m][j]:
                    q1, q2, q3 = self.quartiles(m, s)
                    row.update(median_Bps=q2, q1_Bps=q1, q3_Bps=q3,
                               us_per_message=self.per_message(m, s) * 1e6,
                               switches_per_message=self.switches_per_message(m, s))
                else:
                    row.update(note=self.skipped.get(m, "not measured"))
                row["memcpy_Bps"] = self.memcpy_rate(s)
                if self.dd and s == self.dd_size and m == "pipe":
                    row["dd_Bps"] = self.dd_rate()
                out.append(row)
        for m in self.round_trip_ns:
            out.append({"placement": self.placement, "mechanism": m, "size": self.latency_size,
                        "round_trips": len(self.round_trip_ns[m]),
                        **{f"rtt_p{int(q * 100)}_us": self.round_trip(m, q) * 1e6
                           for q in (0.1, 0.5, 0.9, 0.99)}})
        return out


def _quartiles(rates: list[float], what: str) -> tuple[float, float, float]:
    if not rates:
        raise ValueError(f"no measurement of {what}")
    if len(rates) == 1:
        return rates[0], rates[0], rates[0]
    q1, q2, q3 = statistics.quantiles(rates, n=4, method="inclusive")
    return q1, q2, q3


def _size_name(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# --- running a sweep --------------------------------------------------------------------


def _plan(size: int, total: int, min_count: int, max_count: int) -> tuple[int, int]:
    count = max(min_count, min(max_count, total // size))
    warm = max(1, min(count // 8, 200))
    return warm, count


def sweep(mechanisms: Sequence[str] = MECHANISMS, sizes: Sequence[int] = QUICK_SIZES,
          repeats: int = 3, pin: str | None = "same", round_trips: int = 300,
          latency_size: int = 1, total: int = 4 << 20, max_messages: int = 400,
          baseline: bool = True, seed: int | None = 0, timeout: float = 60.0,
          progress: bool = False) -> Sweep:
    """Measure latency and throughput of each mechanism on one harness.

    Args:
        mechanisms: names from :data:`MECHANISMS`.
        sizes: message sizes in bytes for the throughput steps (1 B to 16 MiB);
            ``[]`` measures round trips only.
        repeats: rounds; every (mechanism, size) step runs once per round, all
            steps of a round in a shuffled order (``seed``).
        pin: ``"same"`` puts sender and receiver on one CPU, ``"split"`` on two
            (every wake-up then crosses CPUs), ``None`` leaves them to the
            scheduler. The NumPy copies run on the receiver's CPU.
        round_trips: timed round trips per mechanism (spread over the rounds),
            after an untimed warm-up of a tenth as many.
        latency_size: the size of the round-trip message (1 to 4096 bytes).
        total: bytes per throughput step, as ``total // size`` messages but
            never fewer than 4 nor more than ``max_messages``.
        baseline: also run ``dd`` through a pipe at 64 KiB (when 64 KiB is
            among ``sizes``), as lesson 02 did.
        timeout: everything is killed after this many seconds.
        progress: show a progress bar.

    POSIX message queues cannot carry messages over ``msgsize_max`` (8 KiB
    by default): those sizes are skipped for ``mqueue`` and ``skipped`` says
    why. Timings vary from run to run, and more on a busy machine.

    >>> s = sweep(["pipe", "shm"], sizes=[4096], repeats=1, round_trips=20, baseline=False)
    >>> s.rate("shm", 4096) > 0 and s.round_trip("pipe") > 0
    True
    """
    mechanisms = _mechanisms(mechanisms)
    sizes = _sizes(sizes, allow_empty=True)
    _whole("repeats", repeats, 1, 100)
    _whole("round_trips", round_trips, 0, 1_000_000)
    _whole("latency_size", latency_size, 1, MAX_LATENCY_SIZE, "bytes")
    _whole("total", total, 1, 1 << 30, "bytes")
    _whole("max_messages", max_messages, 4, 1_000_000)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            math.isfinite(timeout) and 0 < timeout <= 3600):
        raise ValueError(f"timeout must be a number of seconds from 0 to 3600, got {timeout!r}")
    if not sizes and not round_trips:
        raise ValueError("nothing to measure: give some sizes, or round_trips > 0")
    cpu_a, cpu_b, placement = _placement(pin)
    cpus = (cpu_a, cpu_b)
    skipped: dict[str, str] = {}
    mq_limit = None
    if "mqueue" in mechanisms:
        from .mq import supported

        if not supported():
            mechanisms.remove("mqueue")
            skipped["mqueue"] = "no POSIX message queues on this system (macOS)"
        else:
            mq_limit = _mq_size_limit()
            if any(s > mq_limit for s in sizes):
                skipped["mqueue"] = (f"messages over {mq_limit} bytes (msgsize_max) do not fit "
                                     "in a POSIX message queue")
    dd_size = 65536 if baseline and 65536 in sizes and "pipe" in mechanisms else None
    if dd_size is not None and shutil.which("dd") is None:
        raise NotSupportedHere("the baseline needs the dd program, which is not on the PATH; "
                               "pass baseline=False")
    plans = [_plan(s, total, 4, max_messages) for s in sizes]
    max_size = max([*sizes, latency_size, 1])
    began = time.monotonic()
    deadline = began + timeout
    rng = random.Random(seed)

    def fits(m: str, size: int) -> bool:
        return not (m == "mqueue" and mq_limit is not None and size > mq_limit)

    seconds = {m: [[] for _ in sizes] for m in mechanisms}
    switches = {m: [[] for _ in sizes] for m in mechanisms}
    memcpy: list[list[float]] = [[] for _ in sizes]
    dd: list[float] = []
    rtts: dict[str, list[int]] = {m: [] for m in mechanisms} if round_trips else {}
    sessions: dict[str, _Session] = {}
    with objects.scope() as objs:
        try:
            for m in mechanisms:
                channel_max = max(s for s in [*sizes, latency_size, 1] if fits(m, s))
                channel = _CHANNELS[m](objs, channel_max, latency_size)
                try:
                    sessions[m] = _Session(m, _worker, 2, (channel, cpus, channel_max, True),
                                           timeout, deadline, channel)
                finally:
                    channel.close()                 # the workers hold what they need
            if sizes:
                sessions["memcpy"] = _Session("memcpy", _copy_worker, 1, (cpus[1], max_size),
                                              timeout, deadline)
            if dd_size is not None:
                sessions["dd"] = _Session("dd", _dd_worker, 1, (cpus,), timeout, deadline)
            for s in sessions.values():
                s.ready()
            rounds: list[list[tuple]] = []
            per_round = [round_trips // repeats + (r < round_trips % repeats)
                         for r in range(repeats)]
            for r in range(repeats):
                steps: list[tuple] = [(m, j) for m in mechanisms for j, s in enumerate(sizes)
                                      if fits(m, s)]
                steps += [("memcpy", j) for j in range(len(sizes))]
                if dd_size is not None:
                    steps.append(("dd", sizes.index(dd_size)))
                if per_round[r]:
                    steps += [(m, "lat") for m in mechanisms]
                rng.shuffle(steps)
                rounds.append(steps)
            todo: Any = [(r, step) for r, steps in enumerate(rounds) for step in steps]
            if progress:
                from .display import progress as bar

                todo = bar(todo, desc="measuring")
            for r, (who, j) in todo:
                session = sessions[who]
                if j == "lat":
                    n = per_round[r]
                    warm = max(2, round_trips // 10 // repeats)
                    times, _ = session.step(("lat", latency_size, warm, n))
                    rtts[who].extend(times)
                    continue
                warm, count = plans[j]
                if who == "dd":
                    dd.append(session.step(("tp", sizes[j], warm, count))[0][0])
                elif who == "memcpy":
                    memcpy[j].append(session.step(("tp", sizes[j], warm, count))[0][0])
                else:
                    (t, sw_a), sw_b = session.step(("tp", sizes[j], warm, count))
                    seconds[who][j].append(t)
                    switches[who][j].append(sw_a + sw_b)
            for s in sessions.values():
                s.close()
        finally:
            for s in sessions.values():
                s.workers.__exit__(None, None, None)
                for fd in s.fds.values():
                    os.close(fd)
                s.fds.clear()
    method = (f"{placement}; {repeats} rounds, every step of a round in a shuffled order "
              f"(seed {seed}); each throughput step after an untimed warm-up of the same "
              "size; buffers allocated and filled (every page faulted in) before timing, the "
              "shared segment's pages touched by both processes; throughput timed from the "
              "first send until the receiver's acknowledgement of the last message")
    return Sweep(mechanisms, sizes, [p[1] for p in plans], [p[0] for p in plans], repeats,
                 placement, pin, seconds, switches, memcpy, dd_size, dd, latency_size, rtts,
                 skipped, method, time.monotonic() - began, seed)


def quick(progress: bool = True, seed: int | None = 0) -> Sweep:
    """The lesson's sweep: every mechanism, 1 B to 1 MiB, three rounds, in a second or two.

    >>> s = quick(progress=False)
    >>> s.sizes, s.ranking(1 << 20)[0][1] > s.rate("mp_queue", 1 << 20)
    ([1, 64, 4096, 65536, 1048576], True)
    """
    return sweep(MECHANISMS, QUICK_SIZES, repeats=3, pin="same", round_trips=300,
                 total=8 << 20, max_messages=300, progress=progress, seed=seed)


def round_trips(mechanisms: Sequence[str] = ("pipe", "unix", "shm"), n: int = 500,
                pin: str | None = "same", size: int = 1, repeats: int = 3,
                seed: int | None = 0, timeout: float = 30.0) -> Sweep:
    """Round trips only: ``n`` per mechanism, over ``repeats`` interleaved rounds.

    >>> s = round_trips(["pipe"], n=50)
    >>> len(s.round_trip_ns["pipe"])
    50
    """
    _whole("n", n, 1, 1_000_000)
    return sweep(mechanisms, [], repeats=repeats, pin=pin, round_trips=n, latency_size=size,
                 baseline=False, seed=seed, timeout=timeout)


def transfer(mechanism: str, messages: Sequence[bytes], pin: str | None = None,
             timeout: float = 20.0) -> list[bytes]:
    """Send ``messages`` through one mechanism of the harness; return what arrived.

    The harness moves real bytes: this is how the tests (and you) can check it.

    >>> transfer("shm", [b"zero", b"copies"])
    [b'zero', b'copies']
    """
    _mechanisms([mechanism])
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"messages must be a non-empty list of bytes, got {messages!r}")
    for m in messages:
        if not isinstance(m, (bytes, bytearray)) or not 1 <= len(m) <= MAX_SIZE:
            raise ValueError(f"every message must be bytes of 1 to {MAX_SIZE} bytes, "
                             f"got {m!r:.40}")
    cpu_a, cpu_b, _ = _placement(pin)
    biggest = max(len(m) for m in messages)
    if mechanism == "mqueue":
        from .mq import require

        require()
        if biggest > _mq_size_limit():
            raise ValueError(f"a POSIX message queue takes messages of at most "
                             f"{_mq_size_limit()} bytes (msgsize_max); got one of {biggest}")
    deadline = time.monotonic() + timeout
    with objects.scope() as objs:
        channel = _CHANNELS[mechanism](objs, biggest, 1)
        try:
            session = _Session(mechanism, _worker, 2, (channel, (cpu_a, cpu_b), biggest, False),
                               timeout, deadline, channel)
        finally:
            channel.close()
        try:
            session.ready()
            _, got = session.step(("xfer", [bytes(m) for m in messages]))
            session.close()
        finally:
            session.workers.__exit__(None, None, None)
            for fd in session.fds.values():
                os.close(fd)
    return got


# --- plots ----------------------------------------------------------------------------


def _bandwidth_line(ax: Any, result: Sweep, per_message: bool) -> None:
    xs = result.sizes
    if per_message:
        ys = [statistics.median(result.memcpy[j]) / result.counts[j] * 1e6
              for j in range(len(xs))]
    else:
        ys = [result.memcpy_rate(s) / 1e6 for s in xs]
    ax.plot(xs, ys, "k--", lw=1.5, label="NumPy copy of the same size (memory bandwidth)")


def _size_axis(ax: Any, sizes: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ticks = [s for s in sizes if s in (1, 16, 256, 4096, 65536, 1 << 20, 16 << 20)] or sizes
    ax.set_xticks(ticks, [_size_name(s) for s in ticks])
    ax.minorticks_off()


def plot_throughput(result: Sweep, ax: Any = None) -> Any:
    """Median throughput against message size (log-log), quartiles as error bars,
    with the memory-bandwidth line and the ``dd`` baseline. Returns the Axes.

    >>> plot_throughput(quick())       # doctest: +SKIP
    """
    from .display import axes

    ax = axes(f"Throughput against message size ({result.placement})",
              "message size (log scale)", "throughput (MB/s, log scale)", ax=ax,
              figsize=(8.0, 5.0))
    for m in result.mechanisms:
        xs = [s for j, s in enumerate(result.sizes) if result.seconds[m][j]]
        if not xs:
            continue
        qs = [result.quartiles(m, s) for s in xs]
        ax.errorbar(xs, [q[1] / 1e6 for q in qs],
                    yerr=[[(q[1] - q[0]) / 1e6 for q in qs], [(q[2] - q[1]) / 1e6 for q in qs]],
                    fmt=STYLES[m], capsize=2, ms=5, lw=1.2, label=LABELS[m])
    _bandwidth_line(ax, result, per_message=False)
    if result.dd and result.dd_size is not None:
        ax.plot([result.dd_size], [result.dd_rate() / 1e6], "k*", ms=12,
                label="dd | dd through a pipe (C)")
    _size_axis(ax, result.sizes)
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_time_per_message(result: Sweep, ax: Any = None) -> Any:
    """Median time per message against message size (log-log), with a NumPy copy's time.

    >>> plot_time_per_message(quick())     # doctest: +SKIP
    """
    from .display import axes

    ax = axes(f"Time per message in a stream ({result.placement})",
              "message size (log scale)", "time per message (µs, log scale)", ax=ax,
              figsize=(8.0, 5.0))
    for m in result.mechanisms:
        xs = [s for j, s in enumerate(result.sizes) if result.seconds[m][j]]
        if xs:
            ax.plot(xs, [result.per_message(m, s) * 1e6 for s in xs], STYLES[m], ms=5,
                    lw=1.2, label=LABELS[m])
    _bandwidth_line(ax, result, per_message=True)
    _size_axis(ax, result.sizes)
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def plot_round_trips(*results: Sweep, ax: Any = None) -> Any:
    """Round-trip times per mechanism: median bars, whiskers from the 10th to the 99th
    percentile, on a log scale; one bar per sweep given (say same core and cross core).

    >>> plot_round_trips(round_trips(pin="same"), round_trips(pin="split"))  # doctest: +SKIP
    """
    from .display import axes

    if not results:
        raise ValueError("give at least one Sweep with round trips")
    mechanisms = [m for m in results[0].round_trip_ns if all(m in r.round_trip_ns
                                                             for r in results)]
    mechanisms.sort(key=lambda m: results[0].round_trip(m))
    ax = axes(f"Round trip of a {results[0].latency_size}-byte message",
              "round-trip time (µs, log scale): bars at the median, whiskers from the 10th "
              "to the 99th percentile", "", ax=ax,
              figsize=(8.0, 0.45 * len(mechanisms) * len(results) + 1.5))
    height = 0.8 / len(results)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for k, r in enumerate(results):
        ys = [i + k * height for i in range(len(mechanisms))]
        med = [r.round_trip(m) * 1e6 for m in mechanisms]
        lo = [med[i] - r.round_trip(m, 0.1) * 1e6 for i, m in enumerate(mechanisms)]
        hi = [r.round_trip(m, 0.99) * 1e6 - med[i] for i, m in enumerate(mechanisms)]
        ax.barh(ys, med, height=height, color=colours[k % 4], alpha=0.8,
                xerr=[lo, hi], capsize=2, label=r.placement)
    ax.set_yticks([i + height * (len(results) - 1) / 2 for i in range(len(mechanisms))],
                  [LABELS[m] for m in mechanisms])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    return ax


# --- where the time goes: system calls -----------------------------------------------------


@dataclass(frozen=True)
class Syscalls:
    """System calls per message of one mechanism, counted with ``strace -f -c``.

    ``per_message`` maps each system call to the calls per message, found as
    the difference between a run of ``count`` messages and a run of none
    (so starting Python costs nothing here), divided by ``count``.
    """

    mechanism: str
    size: int
    count: int
    per_message: dict[str, float]

    @property
    def total(self) -> float:
        """All system calls per message, both processes together."""
        return sum(self.per_message.values())

    def table(self) -> Any:
        """The calls that happen at least once every ten messages, most frequent first."""
        from .display import Table

        rows = [[name, round(n, 2)] for name, n in sorted(self.per_message.items(),
                                                          key=lambda x: -x[1]) if n >= 0.1]
        return Table([f"{LABELS[self.mechanism]}, {_size_name(self.size)} messages",
                      "system calls per message"], rows)


# A program strace can run: send `count` messages of `size` bytes one way, then stop.
_TRACED = r'''
import os, sys
sys.path.insert(0, sys.argv[4])
from labkit import bench
mechanism, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bench._traced_transfer(mechanism, size, count)
'''


def _traced_transfer(mechanism: str, size: int, count: int) -> None:
    """Run by the traced program: ``count`` messages through a fresh pair of ends."""
    with objects.scope() as objs:
        channel = _CHANNELS[mechanism](objs, size, 1)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                end = channel.end(1, True)
                for _ in range(count):
                    end.recv(size)
                end.send(end.prepare(memoryview(b"!")))
                end.close()
                code = 0
            finally:
                os._exit(code)
        try:
            end = channel.end(0, True)
            msg = end.prepare(_message(size))
            for _ in range(count):
                end.send(msg)
            end.recv(1)
            end.close()
        finally:
            os.waitpid(pid, 0)


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def _strace_runs(mechanism: str, size: int, counts: list[int],
                 timeout: float) -> list[dict[str, int]]:
    """Trace one transfer per entry of ``counts``, all at once; the calls each one made."""
    import subprocess

    from .runner import end_program, start_program

    root = str(Path(__file__).resolve().parent.parent)
    # The folder lives in the session's private folder and strace dies with the kernel:
    # nothing of this survives a killed kernel.
    with objects.temp_folder("strace") as folder:
        outs = [Path(folder, f"{k}.txt") for k in range(len(counts))]
        procs = [start_program(
            ["strace", "-f", "-c", "-o", str(out), sys.executable, "-c", _TRACED, mechanism,
             str(size), str(count), root], timeout, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for out, count in zip(outs, counts)]
        saids = []
        try:
            deadline = time.monotonic() + timeout
            for proc in procs:
                _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                saids.append(err.decode(errors="replace").strip())
        except subprocess.TimeoutExpired:
            raise LabTimeout(f"the traced transfers did not finish in {timeout:g} s; they "
                             "were killed") from None
        finally:
            for proc in procs:  # strace and everything it traces: its own process group
                end_program(proc)
                proc.communicate()
        texts = [out.read_text() if out.exists() else "" for out in outs]
    results = []
    for proc, said, text in zip(procs, saids, texts):
        if proc.returncode != 0 and ("ptrace" in said or "not permitted" in said):
            raise NotSupportedHere(f"strace may not trace processes here ({said[-200:]}); a "
                                   "container may forbid ptrace. Reason from the measured "
                                   "sizes instead")
        if proc.returncode != 0:
            raise LabError(f"the traced transfer failed (exit code {proc.returncode}): "
                           f"{said[-500:]}")
        calls: dict[str, int] = {}
        for line in text.splitlines():
            m = _STRACE_ROW.match(line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
        results.append(calls)
    return results


def count_syscalls(mechanism: str = "pipe", size: int = 65536, count: int = 200,
                   timeout: float = 20.0) -> Syscalls:
    """Count the system calls per message of one mechanism with ``strace -f -c``.

    Two traced runs, one with ``count`` messages of ``size`` bytes and one
    with none; the difference, divided by ``count``, is what each message
    costs both processes together. Needs the ``strace`` program (and a
    system that allows tracing your own processes); otherwise raises
    NotSupportedHere. strace slows every call down a lot: only the counts
    mean something, never the times.

    >>> calls = count_syscalls("pipe", 65536, 50)     # doctest: +SKIP
    >>> calls.per_message["write"]                      # doctest: +SKIP
    1.0
    """
    _mechanisms([mechanism])
    _whole("size", size, 1, MAX_SIZE, "bytes")
    _whole("count", count, 1, 100_000)
    if shutil.which("strace") is None:
        raise NotSupportedHere("the strace program is not installed here (apt install "
                               "strace); reason from the measured sizes instead")
    if mechanism == "mqueue" and size > _mq_size_limit():
        raise ValueError(f"a POSIX message queue takes messages of at most "
                         f"{_mq_size_limit()} bytes, not {size}")
    full_run, empty_run = _strace_runs(mechanism, size, [count, 0], timeout)
    per = {name: (n - empty_run.get(name, 0)) / count for name, n in full_run.items()}
    return Syscalls(mechanism, size, count, {k: v for k, v in per.items() if v > 0})


# --- the full sweep, from the command line ------------------------------------------------


@dataclass(frozen=True)
class FullReport:
    """What ``labkit bench --full`` measured, and where it wrote it."""

    same: Sweep
    split: Sweep | None
    csv: Path
    plots: list[Path]
    elapsed: float

    def summary(self) -> str:
        """The headline figures, one per line."""
        s = self.same
        lines = [(f"labkit bench --full took {self.elapsed:.0f} s (same core: {s.placement}; "
                  f"{s.repeats} rounds)")]
        if "pipe" in s.mechanisms and s.dd and 65536 in s.sizes:
            lab, dd = s.rate("pipe", 65536), s.dd_rate()
            lines.append(f"pipe at 64 KiB, same core: this harness {lab / 1e9:.2f} GB/s, "
                         f"dd | dd {dd / 1e9:.2f} GB/s, ratio {lab / dd:.2f}")
        if {"pipe", "shm"} <= set(s.mechanisms) and 1 << 20 in s.sizes:
            pipe, shm = s.rate("pipe", 1 << 20), s.rate("shm", 1 << 20)
            lines.append(f"at 1 MiB, same core: shared memory {shm / 1e9:.2f} GB/s, pipe "
                         f"{pipe / 1e9:.2f} GB/s: {shm / pipe:.1f} x; a NumPy copy "
                         f"{s.memcpy_rate(1 << 20) / 1e9:.1f} GB/s")
        if self.split is not None and "pipe" in s.round_trip_ns and "pipe" in \
                self.split.round_trip_ns:
            a, b = s.round_trip("pipe"), self.split.round_trip("pipe")
            lines.append(f"round trip of {s.latency_size} B over a pipe: same core "
                         f"{a * 1e6:.1f} µs, cross core {b * 1e6:.1f} µs ({b / a:.1f} x)")
        for size in (64, 1 << 20):
            if size in s.sizes:
                order = ", ".join(LABELS[m] for m, _ in s.ranking(size))
                lines.append(f"fastest to slowest at {_size_name(size)}: {order}")
        lines.append(f"wrote {self.csv} and {', '.join(str(p) for p in self.plots)}")
        return "\n".join(lines)


def _write_csv(path: Path, sweeps: list[Sweep]) -> None:
    rows = [row for s in sweeps for row in s.rows()]
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _save(draw: Any, path: Path, *args: Any) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.5), layout="constrained")
    draw(*args, ax=fig.add_subplot())
    fig.savefig(path, dpi=120)
    return path


def full(out: str | os.PathLike = "bench-results", progress: bool = True,
         sizes: Sequence[int] | None = None, repeats: int = 5, round_trips: int = 5000,
         seed: int | None = 0) -> FullReport:
    """The full sweep: 1 B to 16 MiB on one CPU and on two, written as CSV and plots.

    Takes about a minute on a small machine (three at most). ``out`` is the
    folder for ``bench.csv`` and the PNG plots (created if needed). The
    cross-core sweep, where there are two CPUs, runs half the rounds and round
    trips. Smaller ``sizes``, ``repeats`` and ``round_trips`` make it quicker.

    >>> print(full("bench-results").summary())     # doctest: +SKIP
    labkit bench --full took 34 s (same core: sender and receiver pinned to CPU 1; 5 rounds)
    ...
    """
    sizes = list(FULL_SIZES if sizes is None else sizes)
    _whole("repeats", repeats, 1, 100)
    _whole("round_trips", round_trips, 1, 1_000_000)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    same = sweep(MECHANISMS, sizes, repeats=repeats, pin="same", round_trips=round_trips,
                 total=32 << 20, max_messages=20_000, seed=seed, timeout=600,
                 progress=progress)
    split = None
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        split = sweep(MECHANISMS, sizes, repeats=max(1, repeats // 2), pin="split",
                      round_trips=max(1, round_trips * 3 // 5), total=16 << 20,
                      max_messages=5_000, baseline=False, seed=seed, timeout=600,
                      progress=progress)
    sweeps = [same] + ([split] if split is not None else [])
    csv_path = folder / "bench.csv"
    _write_csv(csv_path, sweeps)
    plots = [_save(plot_throughput, folder / "throughput_same_core.png", same),
             _save(plot_time_per_message, folder / "time_per_message_same_core.png", same)]
    if split is not None:
        plots.append(_save(plot_throughput, folder / "throughput_cross_core.png", split))
    plots.append(_save(plot_round_trips, folder / "round_trips.png", *sweeps))
    return FullReport(same, split, csv_path, plots, time.monotonic() - began)


def main(full_sweep: bool = False, out: str | os.PathLike = "bench-results") -> int:
    """``labkit bench``: the quick sweep's tables; ``--full``: the full sweep's report.

    >>> main(full_sweep=False)      # doctest: +SKIP
    """
    if full_sweep:
        report = full(out)
        print(report.same.table(unit=1e9))
        print()
        print(report.same.latency_table())
        if report.split is not None:
            print()
            print(report.split.latency_table())
        print()
        print(report.summary())
        return 0
    s = quick()
    print(s.table(unit=1e9))
    print()
    print(s.latency_table())
    return 0
