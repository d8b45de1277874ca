"""Every mechanism of the course compared by experiment (lesson 06's table).

:func:`survey` runs a small experiment on each mechanism (pipe, FIFO, message
queue, sockets, shared memory, signals, multiprocessing's channels, a file)
and fills in the comparison table from what it saw, with the observations
behind every cell. A brand-new process (``labkit/programs/reach.py``) tries
to open each named object.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import posix_ipc

from . import objects
from ._validate import seconds as _seconds
from .errors import LabError
from .processes import run
from .runner import run_module
from .waiting import wait_until

__all__ = ["MechanismFacts", "Survey", "survey"]


@dataclass(frozen=True)
class MechanismFacts:
    """One row of the comparison table, with the observations it was filled in from."""

    mechanism: str
    scope: str            # who can take part
    direction: str
    boundaries: str       # whether each receive gives back exactly one send
    synchronization: str  # what waits, and for what
    persistence: str      # how long the object (and data in it) lives
    naming: str           # how a process finds it
    evidence: tuple[str, ...] = ()


_COLUMNS = ("scope", "direction", "boundaries", "synchronization", "persistence", "naming")


@dataclass(frozen=True)
class Survey:
    """The course's mechanisms side by side, as measured by :func:`survey`."""

    rows: list[MechanismFacts]

    def __getitem__(self, mechanism: str) -> MechanismFacts:
        for row in self.rows:
            if row.mechanism == mechanism:
                return row
        raise KeyError(f"no mechanism {mechanism!r}; there are: "
                       f"{', '.join(r.mechanism for r in self.rows)}")

    def table(self) -> Any:
        """The comparison as a :class:`labkit.display.Table`."""
        from .display import Table

        return Table(["mechanism", *_COLUMNS],
                     [[r.mechanism, *(getattr(r, c) for c in _COLUMNS)] for r in self.rows])

    def evidence(self) -> str:
        """What each row rests on: the observations of the experiments, one per line."""
        return "\n".join(f"{r.mechanism}: {e}" for r in self.rows for e in r.evidence)


_THREE = (b"one", b"two!", b"three")   # three sends; 12 bytes together


def _bytes_ready(fd: int, want: int, timeout: float = 1.0) -> None:
    """Wait until ``want`` bytes can be read from ``fd`` (so one read could take them all)."""
    import fcntl
    import struct
    import termios

    wait_until(lambda: struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
               >= want, timeout, None, every=0.001)


def _reads(first: bytes) -> str:
    if first == _THREE[0]:
        return f"3 sends; the first receive gave back {first!r}, exactly the first send"
    return f"3 sends of 3, 4 and 5 bytes; one read took {len(first)} bytes: {first!r}"


def _kept(first: bytes) -> bool:
    return first == _THREE[0]


def _fill(send: Any, chunk: int, limit: int = 1 << 26) -> int:
    """Send ``chunk`` bytes at a time without blocking until the kernel says full."""
    total = 0
    data = bytes(chunk)
    while total < limit:
        try:
            n = send(data)
        except (BlockingIOError, posix_ipc.BusyError):
            return total
        total += chunk if n is None else n
    return total


def _fmt(n: int) -> str:
    return objects.format_bytes(n) if n >= 1024 else f"{n} bytes"


def _waits(receive: Any) -> bool:
    try:
        receive()
    except (BlockingIOError, posix_ipc.BusyError):
        return True
    return False


def _write_and_leave(fd: int, data: bytes) -> None:
    os.write(fd, data)


def _send_three(r: int, w: int, read_end: str) -> tuple[bytes, str]:
    """Write the three messages, read once; then try to write the other way."""
    for m in _THREE:
        os.write(w, m)
    first = os.read(r, 1024)
    try:
        os.write(r, b"x")
        return first, f"writing into {read_end} worked"
    except OSError as e:
        return first, f"writing into {read_end} fails ({errno.errorcode.get(e.errno or 0)})"


def _probe_pipe() -> MechanismFacts:
    r, w = os.pipe()
    try:
        first, backwards = _send_three(r, w, "the read end")
        os.set_blocking(r, False)
        empty = _waits(lambda: os.read(r, 1))
        os.set_blocking(w, False)
        room = _fill(lambda d: os.write(w, d), 4096)
        os.read(r, room)  # empty it again
        os.set_blocking(w, True)
        run(_write_and_leave, w, b"from a writer that has exited", timeout=5, show=False)
        left = os.read(r, 100)
    finally:
        os.close(r)
        os.close(w)
    return MechanismFacts(
        "pipe", "related processes: the ends are inherited through fork", "one way",
        "kept" if _kept(first) else "none: a byte stream",
        f"read waits while empty, write while full ({_fmt(room)})",
        "while any process holds an end; no name", "none: descriptors inherited",
        (_reads(first), backwards,
         f"a non-blocking read of the empty pipe: {'would wait' if empty else 'returned'}",
         f"{room} bytes fit before a non-blocking write said full",
         f"data written by a child that has exited was still read: {left!r}"))


def _probe_fifo(path: Path) -> MechanismFacts:
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)    # a reader first: the writer's open
    w = os.open(path, os.O_WRONLY)                    # then does not wait
    try:
        first, backwards = _send_three(r, w, "the end opened for reading")
        empty = _waits(lambda: os.read(r, 1))
        os.write(w, b"left behind")
    finally:
        os.close(w)
        os.close(r)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY)
    try:
        gone = _waits(lambda: os.read(r, 100))
    finally:
        os.close(w)
        os.close(r)
    return MechanismFacts(
        "FIFO (named pipe)", "any process on this host allowed to open the path",
        "one way", "kept" if _kept(first) else "none: a byte stream",
        "read waits while empty, write while full; open waits for the other side",
        "the path stays (a file); the data goes when the last end closes",
        "a path in the filesystem",
        (_reads(first), backwards,
         f"a non-blocking read of the empty FIFO: {'would wait' if empty else 'returned'}",
         "data left in it when both ends closed: " + ("gone on reopening" if gone
                                                      else "still there"),
         f"the path {path.name} still exists: {path.exists()}"))


def _send_and_leave(name: str, data: bytes) -> None:
    q = posix_ipc.MessageQueue(name)
    q.send(data)
    q.close()


def _probe_mq(q: posix_ipc.MessageQueue) -> MechanismFacts:
    for m in _THREE:
        q.send(m)
    first = q.receive(timeout=1)[0]
    for _ in range(2):
        q.receive(timeout=1)
    q.block = False
    empty = _waits(q.receive)
    room = _fill(q.send, 1)
    while q.current_messages:
        q.receive()
    q.block = True
    run(_send_and_leave, q.name, b"from a process that has exited", timeout=5, show=False)
    q.send(b"urgent", priority=9)
    got = [q.receive(timeout=1)[0], q.receive(timeout=1)[0]]
    return MechanismFacts(
        "POSIX message queue", "any process on this host allowed to open the name",
        "any to any: every process that opens it may send and receive",
        "kept: one message per receive" if _kept(first) else "none",
        f"receive waits while empty, send while full ({room} messages); priorities first",
        "the kernel's: until unlinked, even with no process attached",
        "/name (listed in /dev/mqueue)",
        (_reads(first), "one descriptor both sent and received",
         ("a non-blocking receive of the empty queue: "
          f"{'BusyError (it would wait)' if empty else 'returned'}"),
         f"{room} messages fit (max_messages) before a non-blocking send said full",
         ("a message sent by a process that had closed the queue and exited was still "
          f"there, and an urgent one (priority 9) sent after it came out first: {got!r}")))


def _bind(sock: socket.socket, address: Any) -> None:
    """Bind; a Unix socket file is then made 0600 (bind follows the umask)."""
    sock.bind(address)
    if sock.family == socket.AF_UNIX:
        os.chmod(address, 0o600)


def _connected_stream(family: int, address: Any) -> tuple[socket.socket, socket.socket,
                                                          socket.socket]:
    srv = socket.socket(family, socket.SOCK_STREAM)
    _bind(srv, address)
    srv.listen(1)
    cli = socket.socket(family, socket.SOCK_STREAM)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    return srv, cli, conn


def _probe_stream(name: str, family: int, address: Any) -> MechanismFacts:
    srv, cli, conn = _connected_stream(family, address)
    where = srv.getsockname()
    try:
        for m in _THREE:
            cli.sendall(m)
        _bytes_ready(conn.fileno(), 12)
        first = conn.recv(1024)
        conn.sendall(b"back")
        back = cli.recv(100)
        conn.setblocking(False)
        empty = _waits(lambda: conn.recv(1))
        cli.setblocking(False)
        room = _fill(cli.send, 65536)
    finally:
        for s in (conn, cli, srv):
            s.close()
    try:
        with socket.socket(family, socket.SOCK_STREAM) as late:
            late.connect(where)
        after = "a new connection was accepted"
    except OSError as e:
        after = f"connecting after the server closed: {type(e).__name__}"
    tcp = family == socket.AF_INET
    return MechanismFacts(
        name,
        "across hosts (here: loopback only)" if tcp else "any process on this host allowed "
                                                         "to open the path",
        "both ways", "kept" if _kept(first) else "none: a byte stream",
        f"recv waits while empty, send while the buffers are full ({_fmt(room)}); "
        "connect and accept meet",
        "the connection: until either side closes" + ("" if tcp else
                                                     "; the path file stays, unused"),
        "IP address and port" if tcp else "a path in the filesystem (file type s)",
        (_reads(first), f"the accepting side sent back {back!r}: both ways",
         f"a non-blocking recv with nothing sent: {'would wait' if empty else 'returned'}",
         f"{room} bytes fit before a non-blocking send said full", after))


def _probe_dgram(a_path: Path, b_path: Path) -> MechanismFacts:
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        _bind(a, str(a_path))
        _bind(b, str(b_path))
        for m in _THREE:
            a.sendto(m, str(b_path))
        first = b.recv(1024)
        b.recv(1024)
        b.recv(1024)
        b.sendto(b"back", str(a_path))
        back = a.recv(100)
        b.setblocking(False)
        empty = _waits(lambda: b.recv(1))
        a.setblocking(False)
        count = 0
        while count < 100_000:
            try:
                a.sendto(b"d", str(b_path))
            except BlockingIOError:
                break
            count += 1
    finally:
        a.close()
        b.close()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as late:
            late.sendto(b"anyone?", str(b_path))
        after = "a datagram to the closed socket's path was accepted"
    except OSError as e:
        after = f"sending to the path of the closed socket: {type(e).__name__}"
    return MechanismFacts(
        "Unix datagram socket", "any process on this host allowed to open the path",
        "both ways (each side binds an address to be answered)",
        "kept: one datagram per receive" if _kept(first) else "none",
        f"recv waits while empty, send while the receiver's queue is full ({count} "
        "datagrams)",
        "until closed; queued datagrams go with the receiving socket",
        "a path in the filesystem (file type s)",
        (_reads(first), f"the receiver answered to the sender's address: {back!r}",
         f"a non-blocking recv with nothing sent: {'would wait' if empty else 'returned'}",
         f"{count} small datagrams were queued before a non-blocking send said full",
         after))


def _attach_and_write(name: str, data: bytes) -> None:
    from .shm import Segment

    with Segment.attach(name) as seg:
        seg.buf[:len(data)] = data


def _probe_shm(seg: Any) -> MechanismFacts:
    from .shm import Segment

    blank = bytes(seg.buf[100:104])
    seg.buf[:3] = b"one"
    seg.buf[:4] = b"two!"
    seen = bytes(seg.buf[:4])
    run(_attach_and_write, seg.name, b"from a process that has exited", timeout=5,
        show=False)
    seg.close()                                   # now no process maps it
    with Segment.attach(seg.name, readonly=True) as again:
        left = bytes(again.buf[:30])
    return MechanismFacts(
        "shared memory", "any process on this host allowed to open the name",
        "any to any: every process that maps it reads and writes",
        "none: bytes at offsets, the layout is yours",
        "none: nothing ever waits; add semaphores (lesson 05)",
        "the kernel's: until unlinked, even with no process attached",
        "/name (listed in /dev/shm)",
        ((f"'one' written then 'two!' at the same offset: a reader sees {seen!r}; the "
          "first write is simply gone"),
         f"bytes never written read as {blank!r} at once: no waiting",
         f"written by a process that has exited, read after every mapping closed: {left!r}"))


def _signal_child() -> tuple[int, int]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGUSR1)
    pending = len(signal.sigpending())
    delivered = 0
    while signal.sigtimedwait({signal.SIGUSR1}, 0) is not None:
        delivered += 1
    return pending, delivered


def _probe_signal() -> MechanismFacts:
    pending, delivered = run(_signal_child, timeout=5, show=False).value
    return MechanismFacts(
        "signal", "processes of the same user on this host (or root)",
        "one way: sender to target", "no data at all: just the signal's number",
        "none: asynchronous; it interrupts the target (or waits, pending, while blocked)",
        "pending until delivered; gone with the target",
        "the target's process id",
        ((f"SIGUSR1 sent 3 times while blocked: {pending} pending, {delivered} delivered "
          "(standard signals do not queue)"),))


def _mp_put_and_leave(q: Any) -> None:
    q.put(b"the last message")
    os._exit(0)  # at once: the feeder thread never runs


def _probe_mp_queue() -> MechanismFacts:
    import multiprocessing
    import queue as stdqueue

    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_mp_put_and_leave, args=(q,))
    p.start()  # first, while this process has a single thread
    p.join(5)
    try:
        q.get(timeout=0.2)
        lost = "arrived"
    except stdqueue.Empty:
        lost = "was lost"
    for m in _THREE:
        q.put(m)
    first = q.get(timeout=1)
    q.get(timeout=1)
    q.get(timeout=1)
    began = time.perf_counter()
    try:
        q.get(timeout=0.05)
    except stdqueue.Empty:
        pass
    waited = time.perf_counter() - began
    big = bytes(1 << 16)
    began = time.perf_counter()
    for _ in range(16):
        q.put(big)                                # 1 MiB: far more than the pipe holds
    put_time = time.perf_counter() - began
    for _ in range(16):
        q.get(timeout=5)
    q.close()
    q.join_thread()
    return MechanismFacts(
        "multiprocessing.Queue", "related processes: passed to Process at the start",
        "any to any among them", "kept: one object per get (pickled)",
        "get waits while empty; put never waits (a thread writes into a pipe later)",
        "until the processes end; a put just before os._exit can be lost",
        "none: inherited",
        (_reads(first), f"get on the empty queue waited {waited * 1000:.0f} ms (its timeout)",
         f"16 puts of 64 KiB, nobody reading, returned in {put_time * 1000:.1f} ms",
         f"a message put by a child that then called os._exit {lost}"))


def _probe_mp_pipe() -> MechanismFacts:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    a, b = ctx.Pipe()
    try:
        for m in _THREE:
            a.send_bytes(m)
        first = b.recv_bytes()
        b.recv_bytes()
        b.recv_bytes()
        b.send_bytes(b"back")
        back = a.recv_bytes()
        empty = not b.poll(0)
    finally:
        a.close()
        b.close()
    return MechanismFacts(
        "multiprocessing.Pipe", "related processes: passed to Process at the start",
        "both ways (duplex=False: one way)", "kept: one object per recv (length-prefixed)",
        "recv waits while empty, send while the buffer is full",
        "while any process holds an end", "none: inherited",
        (_reads(first), f"the other end sent back {back!r}: both ways",
         f"poll(0) with nothing sent: {'nothing ready, recv would wait' if empty else 'ready'}"))


def _probe_file(path: Path) -> MechanismFacts:
    with open(path, "wb") as f:
        for m in _THREE:
            f.write(m)
            f.flush()
    began = time.perf_counter()
    with open(path, "rb") as f:
        first = f.read(1024)
        at_end = f.read(1024)
    took = time.perf_counter() - began
    return MechanismFacts(
        "file", "any process allowed to open the path (here, or over a network filesystem)",
        "any to any", "none: bytes at offsets",
        "none: a read at the end returns nothing at once; nobody waits for a writer",
        "the filesystem's: survives processes (and, on disk, reboots)",
        "a path in the filesystem",
        (_reads(first), f"reading at the end returned {at_end!r} in {took * 1e6:.0f} µs"))


def _reach_from_stranger(fifo: Path, mq_name: str, shm_name: str,
                         tmp: Path) -> dict[str, str]:
    """Which named objects a brand-new, unrelated process can open."""
    stream_path, dgram_path = tmp / "reach_s", tmp / "reach_d"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as st, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dg, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        _bind(st, str(stream_path))
        st.listen(1)
        _bind(dg, str(dgram_path))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        # A brand-new program (labkit/programs/reach.py: open it, it is short).
        r = run_module("labkit.programs.reach", str(fifo), mq_name, shm_name, str(stream_path),
                       str(dgram_path), str(tcp.getsockname()[1]), timeout=10)
    if r.returncode != 0:
        raise LabError(f"the unrelated process failed (exit status {r.returncode}): "
                       f"{r.stderr.strip()}")
    return json.loads(r.stdout)


def _survey() -> list[MechanismFacts]:
    from .mq import supported  # lesson 06's face imports this module: import it late
    from .shm import Segment

    rows = []
    with objects.scope() as objs, objects.temp_folder("survey") as tmp:
        fifo = objs.fifo("survey")
        q = objs.message_queue(4, 64, "survey") if supported() else None
        with Segment.create(4096, label="survey") as seg:
            reach = _reach_from_stranger(fifo, q.name if q else "/none", seg.name, tmp)
            rows.append(_probe_pipe())
            rows.append(_probe_fifo(fifo))
            if q is not None:
                rows.append(_probe_mq(q))
            rows.append(_probe_stream("Unix stream socket", socket.AF_UNIX,
                                      str(tmp / "stream")))
            rows.append(_probe_dgram(tmp / "a", tmp / "b"))
            rows.append(_probe_stream("TCP (loopback)", socket.AF_INET, ("127.0.0.1", 0)))
            rows.append(_probe_shm(seg))
        rows.append(_probe_signal())
        rows.append(_probe_mp_queue())
        rows.append(_probe_mp_pipe())
        rows.append(_probe_file(tmp / "file"))
    out = []
    for row in rows:
        if row.mechanism in reach:
            how = reach[row.mechanism]
            note = ("a brand-new, unrelated process could open it by its name"
                    if how == "yes" else f"an unrelated process could not open it ({how})")
            row = MechanismFacts(**{**row.__dict__, "evidence": (*row.evidence, note)})
        out.append(row)
    return out


def survey(timeout: float = 10.0) -> Survey:
    """Try every mechanism of the course and fill in the comparison table from what happened.

    For each mechanism a small experiment, run in a child process, sends three
    messages and reads once (are boundaries kept?), tries the other direction,
    receives from an empty channel without blocking (would it wait?), fills
    the kernel's buffer (how much fits?), and checks what is left after the
    processes involved have gone (persistence). A brand-new, unrelated
    process tries to open each named object. ``Survey.evidence()`` lists the
    observations behind every cell of the table. Where there are no POSIX
    message queues (macOS) that row is missing.

    >>> s = survey()
    >>> s["pipe"].boundaries, s["Unix datagram socket"].boundaries
    ('none: a byte stream', 'kept: one datagram per receive')
    """
    _seconds("timeout", timeout, 1.0, 600.0)
    return Survey(run(_survey, timeout=timeout, show=False).value)
