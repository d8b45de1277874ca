"""Message passing for lesson 06: POSIX message queues, sockets and multiprocessing's channels.

Queues come from :mod:`labkit.objects` (private ``0600``, exclusive, uniquely
named, removed with their scope), so this module never creates one itself: it
adds what a lesson needs around them. The kernel's limits are read and
explained (:func:`limits`, :func:`queue_bytes`), and running out of them is
shown in a child whose budget is lowered (:func:`exhaust`) so the demonstration
never takes queue space from anyone else. The servers (:func:`mq_server`,
:func:`socket_server`) are separate Python programs, not forks: they share
nothing with their clients but a name, which is the point of a mailbox; they
log what they did to a file the lab reads, die with the kernel, and are stopped
when their ``with`` block ends. :func:`survey` runs a small experiment on every
mechanism of the course and fills in the comparison table from what it saw.

macOS has no POSIX message queues: everything that needs one raises
:class:`~labkit.errors.NotSupportedHere` there, and the sockets still work.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import posix_ipc

from . import objects
from ._platform import MACOS
from ._validate import seconds as _seconds
from ._validate import whole as _whole
from .errors import LabError, LabTimeout, NoSpaceError, NotSupportedHere
from .processes import run, start_workers
from .runner import end_program, start_program

__all__ = [
    "Exhaustion",
    "Limits",
    "MQServer",
    "MechanismFacts",
    "QueueState",
    "QueueTrace",
    "Served",
    "SocketServer",
    "Survey",
    "exhaust",
    "limits",
    "mq_server",
    "plot_queue",
    "queue",
    "queue_bytes",
    "record_queue",
    "require",
    "socket_server",
    "state",
    "supported",
    "survey",
]

PRIORITY_MAX: int = getattr(posix_ipc, "QUEUE_PRIORITY_MAX", 32767)
_MQ_PRIO_MAX = 32768          # the kernel's bound on priority tree nodes per queue
_PER_MESSAGE = 96             # bytes the kernel charges per message slot for its bookkeeping
_NO_QUEUES = ("this system has no POSIX message queues (macOS lacks them): use a pipe, a "
              "FIFO or a Unix socket instead, which this lesson also shows")


# --- queues ---------------------------------------------------------------------------


def supported() -> bool:
    """True where POSIX message queues exist (Linux, the BSDs), False on macOS.

    >>> supported()
    True
    """
    return not MACOS and bool(posix_ipc.MESSAGE_QUEUES_SUPPORTED)


def require() -> None:
    """Raise NotSupportedHere, with what to use instead, where there are no message queues.

    >>> require()      # Linux: nothing happens
    """
    if not supported():
        raise NotSupportedHere(_NO_QUEUES)


@contextlib.contextmanager
def queue(max_messages: int = 4, max_message_size: int = 256,
          label: str = "mq") -> Iterator[posix_ipc.MessageQueue]:
    """A private message queue for the length of a ``with`` block (then closed and unlinked).

    A thin wrapper of :meth:`labkit.objects.Scope.message_queue`: small by
    default, because every queue is charged in full against your per-user
    budget (:func:`limits`) from the moment it exists, empty or not.

    >>> with queue(max_messages=2, max_message_size=16) as q:
    ...     q.send(b"hi")
    ...     q.receive()
    (b'hi', 0)
    >>> os.path.exists("/dev/mqueue" + q.name)
    False

    Closing the queue inside the block is allowed; the name still goes at its end.
    """
    require()
    with objects.scope() as objs:
        yield objs.message_queue(max_messages, max_message_size, label)


@dataclass(frozen=True)
class QueueState:
    """A queue as the kernel describes it (``mq_getattr`` and ``/dev/mqueue/NAME``)."""

    name: str
    max_messages: int
    max_message_size: int
    current_messages: int
    queued_bytes: int             # QSIZE: bytes of the messages waiting
    mode: int | None              # permission bits (None where /dev/mqueue is not mounted)
    notify_pid: int               # the process registered for notification (0: none)

    def __str__(self) -> str:
        mode = f", mode {self.mode:o}" if self.mode is not None else ""
        return (f"{self.name}: {self.current_messages} of {self.max_messages} messages "
                f"waiting ({self.queued_bytes} bytes), at most {self.max_message_size} bytes "
                f"each{mode}")


def state(q: posix_ipc.MessageQueue) -> QueueState:
    """Read a queue's attributes and what ``/dev/mqueue`` shows for it.

    >>> with queue(3, 32) as q:
    ...     q.send(b"abc")
    ...     s = state(q)
    >>> (s.current_messages, s.queued_bytes, s.max_messages, oct(s.mode))
    (1, 3, 3, '0o600')
    """
    path = Path("/dev/mqueue" + q.name)
    fields: dict[str, int] = {}
    mode = None
    try:
        text = path.read_text()
        mode = stat.S_IMODE(path.stat().st_mode)
        for item in text.split():
            key, _, value = item.partition(":")
            if value.lstrip("-").isdigit():
                fields[key] = int(value)
    except OSError:
        pass  # not mounted (BSD) or already unlinked: mq_getattr still answers
    return QueueState(q.name, q.max_messages, q.max_message_size, q.current_messages,
                      fields.get("QSIZE", 0), mode, fields.get("NOTIFY_PID", 0))


@dataclass(frozen=True)
class Limits:
    """The kernel's message-queue limits (``/proc/sys/fs/mqueue`` and ``RLIMIT_MSGQUEUE``)."""

    msg_max: int          # most messages per queue an ordinary user may ask for
    msgsize_max: int      # largest message size an ordinary user may ask for (bytes)
    queues_max: int       # queues in this IPC namespace, all users together
    msg_default: int      # what mq_open gives when no size is asked for
    msgsize_default: int
    rlimit: int           # bytes all of one user's queues may take together

    @property
    def default_queue_bytes(self) -> int:
        """What one queue of the default size is charged against ``rlimit``."""
        return queue_bytes(self.msg_default, self.msgsize_default)

    @property
    def default_queues_per_user(self) -> int:
        """How many default-sized queues one user can have at once."""
        return self.rlimit // self.default_queue_bytes

    def table(self) -> Any:
        """The limits, where they come from and what they mean, as a Table."""
        from .display import Table

        where = "/proc/sys/fs/mqueue/"
        return Table(["limit", "value", "from", "meaning"], [
            ["msg_max", self.msg_max, where + "msg_max", "messages per queue (at most)"],
            ["msgsize_max", self.msgsize_max, where + "msgsize_max",
             "bytes per message (at most)"],
            ["msg_default", self.msg_default, where + "msg_default",
             "messages per queue when none is asked for"],
            ["msgsize_default", self.msgsize_default, where + "msgsize_default",
             "bytes per message when none is asked for"],
            ["queues_max", self.queues_max, where + "queues_max",
             "queues on this machine (all users)"],
            ["RLIMIT_MSGQUEUE", self.rlimit, "ulimit -q",
             "bytes for all of one user's queues"],
        ])


def limits() -> Limits:
    """The limits in force here (values Linux uses by default where they cannot be read).

    >>> lim = limits()
    >>> lim.msg_max >= 1 and lim.rlimit > 0
    True
    """
    base = objects.mqueue_limits()
    extra = {}
    for key, default in (("msg_default", 10), ("msgsize_default", 8192)):
        try:
            extra[key] = int(Path(f"/proc/sys/fs/mqueue/{key}").read_text())
        except (OSError, ValueError):
            extra[key] = default
    return Limits(base["msg_max"], base["msgsize_max"], base["queues_max"],
                  extra["msg_default"], extra["msgsize_default"], base["rlimit"])


def queue_bytes(max_messages: int, max_message_size: int) -> int:
    """Bytes a queue is charged against ``RLIMIT_MSGQUEUE`` as soon as it exists.

    Linux reserves room for every message it could hold, plus 96 bytes of
    bookkeeping per message slot (a ``msg_msg`` header and a priority-tree
    node), whether or not a message ever comes.

    >>> queue_bytes(10, 8192)          # a default queue
    82880
    >>> 819200 // queue_bytes(10, 8192)   # how many fit in the default 800 KiB
    9
    """
    _whole("max_messages", max_messages, 1, 1 << 20)
    _whole("max_message_size", max_message_size, 1, 1 << 30, "bytes")
    nodes = min(max_messages, _MQ_PRIO_MAX)
    return max_messages * max_message_size + max_messages * 48 + nodes * 48


@dataclass(frozen=True)
class Exhaustion:
    """What happened when queues were created until the per-user budget ran out."""

    budget: int              # RLIMIT_MSGQUEUE of the child that tried (bytes)
    max_messages: int
    max_message_size: int
    per_queue: int           # bytes each queue is charged (queue_bytes)
    created: int             # queues that fit
    raw_error: str           # what posix_ipc itself said (type: message)
    lab_error: str           # the NoSpaceError labkit raised instead

    def __str__(self) -> str:
        return (f"{self.created} queues of {self.max_messages} x {self.max_message_size} bytes "
                f"({self.per_queue} bytes each) fit in a budget of {self.budget} bytes")


def _exhaust_child(budget: int, max_messages: int, max_message_size: int,
                   most: int) -> tuple[int, str, str]:
    hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[1]
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (budget, hard))
    with objects.scope() as objs:
        for made in range(most + 1):
            try:
                objs.message_queue(max_messages, max_message_size, label="full")
            except NoSpaceError as e:
                cause = e.__cause__
                raw = f"{type(cause).__name__}: {cause}" if cause is not None else ""
                return made, raw, str(e)
    return most, "", ""


def exhaust(max_messages: int = 10, max_message_size: int = 1024,
            budget: int = 50_000) -> Exhaustion:
    """Create queues until the budget runs out, in a child whose budget is ``budget`` bytes.

    Lowering ``RLIMIT_MSGQUEUE`` in a child (anyone may lower their own
    limit) shows the failure in a fraction of a second without using up the
    real per-user budget, which other notebooks of yours share. Queues you
    have open elsewhere count against it too, so fewer may fit. Everything is
    removed when the child ends.

    >>> e = exhaust(10, 1024, budget=50_000)
    >>> e.created <= 4, "too many" in e.lab_error   # 4 fit, fewer beside your other queues
    (True, True)
    """
    require()
    _whole("max_messages", max_messages, 1, 65536)
    _whole("max_message_size", max_message_size, 1, 1 << 24, "bytes")
    if not hasattr(resource, "RLIMIT_MSGQUEUE"):
        raise NotSupportedHere("this system has no RLIMIT_MSGQUEUE to lower")
    hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[1]
    top = hard if hard != resource.RLIM_INFINITY else 1 << 40
    _whole("budget", budget, 1, top, "bytes")
    per = queue_bytes(max_messages, max_message_size)
    most = min(budget // per + 1, 64)
    created, raw, lab = run(_exhaust_child, budget, max_messages, max_message_size, most,
                            timeout=10, show=False).value
    return Exhaustion(budget, max_messages, max_message_size, per, created, raw, lab)


# --- a queue over time ----------------------------------------------------------------


@dataclass(frozen=True)
class QueueTrace:
    """A queue's depth over time while a fast sender meets a slow receiver.

    Times are seconds since the first send. ``send_starts``/``send_ends``
    bracket each ``send``: a long one is time the sender spent blocked on a
    full queue.
    """

    max_messages: int
    messages: int
    receive_every: float
    times: list[float]
    depths: list[int]
    send_starts: list[float]
    send_ends: list[float]
    receive_times: list[float]
    received: list[bytes]

    @property
    def max_depth(self) -> int:
        """The most messages seen waiting at once."""
        return max(self.depths, default=0)

    @property
    def blocked(self) -> list[tuple[float, float]]:
        """(start, end) of every send that waited noticeably (over 2 ms) for room."""
        return [(a, b) for a, b in zip(self.send_starts, self.send_ends) if b - a > 0.002]


def _trace_worker(i: int, q: posix_ipc.MessageQueue, messages: int,
                  receive_every: float) -> tuple[list[float], list[Any]]:
    if i == 0:  # the sender: as fast as it can, blocking while the queue is full
        starts: list[float] = []
        ends: list[float] = []
        for n in range(messages):
            starts.append(time.monotonic())
            q.send(f"message {n}".encode(), timeout=10)
            ends.append(time.monotonic())
        return starts, ends
    times: list[float] = []
    got: list[bytes] = []
    time.sleep(receive_every)  # the receiver: one message every receive_every seconds
    for _ in range(messages):
        got.append(q.receive(timeout=10)[0])
        times.append(time.monotonic())
        time.sleep(receive_every)
    return times, got


def record_queue(messages: int = 10, max_messages: int = 4, receive_every: float = 0.02,
                 sample_every: float = 0.0005, timeout: float = 10.0) -> QueueTrace:
    """Record a queue's depth while a sender outruns a receiver that takes one message
    every ``receive_every`` seconds. The sender blocks whenever the queue is full.

    >>> t = record_queue(messages=6, max_messages=2, receive_every=0.01)
    >>> t.max_depth <= 2, t.received[0], len(t.received)
    (True, b'message 0', 6)
    """
    require()
    _whole("messages", messages, 1, 1000)
    _whole("max_messages", max_messages, 1, 64)
    _seconds("receive_every", receive_every, 0.0, 1.0)
    _seconds("sample_every", sample_every, 0.0001, 0.1)
    _seconds("timeout", timeout, 0.1, 600)
    with queue(max_messages, 32, label="trace") as q:
        deadline = time.monotonic() + timeout
        times: list[float] = []
        depths: list[int] = []
        with start_workers(_trace_worker, 2, q, messages, receive_every, timeout=timeout,
                           show=False) as workers:
            while workers.running and time.monotonic() < deadline:
                times.append(time.monotonic())
                depths.append(q.current_messages)
                time.sleep(sample_every)
            (starts, ends), (receive_times, received) = workers.wait().values
    t0 = starts[0]
    return QueueTrace(max_messages, messages, receive_every, [t - t0 for t in times], depths,
                      [t - t0 for t in starts], [t - t0 for t in ends],
                      [t - t0 for t in receive_times], received)


def plot_queue(trace: QueueTrace, ax: Any = None) -> Any:
    """Draw the queue's depth over time, its capacity, and when the sender was blocked.

    >>> plot_queue(record_queue())     # doctest: +SKIP
    """
    from .display import axes

    ax = axes("Messages waiting in the queue: fast sender, slow receiver", "time (ms)",
              "messages in the queue", ax=ax)
    ax.step([t * 1000 for t in trace.times], trace.depths, where="post", color="tab:blue",
            label="messages waiting (mq_getattr)")
    ax.axhline(trace.max_messages, color="tab:red", ls="--",
               label=f"max_messages = {trace.max_messages}")
    for n, (a, b) in enumerate(trace.blocked):
        ax.axvspan(a * 1000, b * 1000, color="tab:orange", alpha=0.25, lw=0,
                   label="sender blocked in send()" if n == 0 else None)
    ax.plot([t * 1000 for t in trace.receive_times], [0] * len(trace.receive_times), "|",
            color="tab:green", markersize=12, label="a receive returned")
    ax.set_ylim(-0.3, trace.max_messages + 1)
    ax.legend(loc="upper right", fontsize=8)
    return ax


# --- programs that run apart from the lab ------------------------------------------------


class _Program:
    """A separate Python program that logs JSON lines to a private file; see the servers."""

    def __init__(self, code: str, args: list[str], lifetime: float, paused: bool) -> None:
        self._log = tempfile.TemporaryFile(prefix="labkit-log-")  # noqa: SIM115 - see close()
        self._paused = paused
        self.proc = start_program(
            [sys.executable, "-c", code, json.dumps(args), str(lifetime),
             "1" if paused else "0"], lifetime,
            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.DEVNULL,
            cwd="/")

    def lines(self) -> list[dict]:
        size = os.fstat(self._log.fileno()).st_size
        data = os.pread(self._log.fileno(), size, 0)
        out = []
        for line in data.decode("utf-8", "replace").splitlines(keepends=True):
            if line.endswith("\n"):  # a line still being written waits for the next look
                out.append(json.loads(line))
        return out

    def wait_for(self, key: str, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if key in line:
                    return line
            if self.proc.poll() is not None:
                raise LabError(f"{what} ended before it was ready (exit status "
                               f"{self.proc.returncode})")
            if time.monotonic() > deadline:
                raise LabTimeout(f"{what} was not ready within {timeout:g} s")
            time.sleep(0.005)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # end_program kills it
        finally:
            end_program(self.proc)
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def close(self) -> None:
        self._log.close()


# Shared opening of every server program (after start_program's, which makes it die with
# the lab): a lifetime as a safety net, and an optional pause until the lab says "go" on
# standard input. Socket files it binds are 0600: only their owner may connect.
_PRELUDE = r'''
import json, os, signal, sys, time
os.umask(0o177)
args, lifetime, paused = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
signal.alarm(max(1, round(lifetime)))
stopping = []
# SIGTERM (the end of the lab's with block): finish what is in hand, log it, then stop.
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))


def log(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def hold():
    if paused:
        log(ready=True)
        sys.stdin.readline()
'''

# The question server of mq_server: requests are "reply queue name\nquestion" in UTF-8.
_MQ_SERVER = _PRELUDE + r'''
import posix_ipc
name, work = args
requests = posix_ipc.MessageQueue(name)      # open by name: the lab created it
hold()
log(ready=True, pid=os.getpid())
order = 0
while not stopping:
    try:
        data, priority = requests.receive(timeout=0.05)  # wake now and then to look at stopping
    except (posix_ipc.BusyError, posix_ipc.SignalError):
        continue
    order += 1
    reply_to, newline, question = data.decode("utf-8", "replace").partition("\n")
    if not newline:
        log(order=order, priority=priority, question=reply_to, reply_to="",
            status="bad request: no reply queue")
        continue
    if work:
        time.sleep(work)
    try:
        replies = posix_ipc.MessageQueue(reply_to)
    except posix_ipc.ExistentialError:
        status = "no such reply queue"
    except posix_ipc.PermissionsError:
        status = "reply queue not ours to open"
    else:
        try:
            replies.send(question.upper().encode("utf-8"), priority=priority, timeout=0)
            status = "answered"
        except posix_ipc.BusyError:
            status = "reply queue full: answer dropped"
        except ValueError:
            status = "answer too long for the reply queue"
        finally:
            replies.close()
    log(order=order, priority=priority, question=question, reply_to=reply_to, status=status)
'''


@dataclass(frozen=True)
class Served:
    """One request as the server handled it (``order`` counts from 1)."""

    order: int
    priority: int
    question: str
    reply_to: str
    status: str


@dataclass
class MQServer:
    """A running :func:`mq_server`: its request queue's name, and what it has served."""

    requests: str
    pid: int
    _program: Any = field(repr=False, default=None)

    @property
    def served(self) -> list[Served]:
        """The requests handled so far, in the order the server took them."""
        return [Served(d["order"], d["priority"], d["question"], d["reply_to"], d["status"])
                for d in self._program.lines() if "order" in d]

    def resume(self) -> None:
        """Let a server started with ``paused=True`` begin taking requests."""
        self._program.resume()

    def wait_served(self, n: int, timeout: float = 5.0) -> list[Served]:
        """Wait until ``n`` requests have been handled; return them."""
        deadline = time.monotonic() + timeout
        while len(done := self.served) < n:
            if time.monotonic() > deadline:
                raise LabTimeout(f"the server handled {len(done)} of {n} requests within "
                                 f"{timeout:g} s")
            time.sleep(0.005)
        return done


@contextlib.contextmanager
def mq_server(work: float = 0.0, paused: bool = False, max_messages: int = 8,
              max_message_size: int = 256, lifetime: float = 60.0) -> Iterator[MQServer]:
    """Run a question server as a separate program, reachable only through a message queue.

    The lab creates the request queue (private, ``max_messages`` x
    ``max_message_size``) and the server opens it by name: ``server.requests``.
    A request is one message, ``reply_queue_name + "\\n" + question`` in
    UTF-8, sent with any priority. For each request, highest priority first
    (first come, first served within a priority), the server spends ``work``
    seconds, opens the client's reply queue by name and sends the question in
    capitals with the request's priority. It never blocks on a client: if
    the reply queue is full the answer is dropped, and the log says so.
    With ``paused=True`` it takes no request until :meth:`MQServer.resume`,
    so requests can pile up first. It is stopped when the block ends (and
    after ``lifetime`` seconds in any case).

    >>> with mq_server() as server, queue(2, 64) as replies:
    ...     requests = posix_ipc.MessageQueue(server.requests)
    ...     requests.send(f"{replies.name}\\nhello".encode(), priority=3)
    ...     requests.close()
    ...     replies.receive(timeout=5)
    (b'HELLO', 3)
    >>> [(s.order, s.status) for s in server.served]
    [(1, 'answered')]
    """
    require()
    _seconds("work", work, 0.0, 5.0)
    _seconds("lifetime", lifetime, 1.0, 3600.0)
    with objects.scope() as objs:
        requests = objs.message_queue(max_messages, max_message_size, label="requests")
        program = _Program(_MQ_SERVER, [requests.name, work], lifetime, paused)
        server = MQServer(requests.name, program.proc.pid, program)
        try:
            program.wait_for("ready", 10.0, "the message-queue server")
            yield server
        finally:
            program.stop()
            server._program = _StoppedLog(program.lines())
            program.close()


class _StoppedLog:
    """Stands in for a stopped program: its log, read once, stays readable."""

    def __init__(self, lines: list[dict]) -> None:
        self._lines = lines

    def lines(self) -> list[dict]:
        return self._lines

    def resume(self) -> None:
        raise LabError("the server has stopped (its with block ended)")


# --- sockets --------------------------------------------------------------------------


# The echo server of socket_server: echoes each piece it receives, in capitals.
_SOCKET_SERVER = _PRELUDE + r'''
import socket
kind, path = args
if kind == "tcp":
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))                 # loopback only: nobody outside can connect
    address = list(srv.getsockname())
else:
    srv = socket.socket(socket.AF_UNIX,
                        socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM)
    srv.bind(path)
    address = path
if kind != "dgram":
    srv.listen(8)
hold()
log(ready=address, pid=os.getpid())
srv.settimeout(0.05)                      # wake now and then to look at stopping
if kind == "dgram":
    while not stopping:
        try:
            data, sender = srv.recvfrom(1 << 17)
        except TimeoutError:
            continue
        if sender:
            try:
                srv.sendto(data.upper(), sender)
            except OSError:
                sender = ""                   # the client has gone (its socket file too)
        log(datagram=len(data), sender=sender or "", replied=bool(sender))
else:
    n = 0
    while not stopping:
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
                pass                          # the client went away or went quiet
        log(connection=n, pieces=pieces)
'''


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
    _program: Any = field(repr=False, default=None)

    @property
    def log(self) -> list[dict]:
        """What the server has handled so far."""
        return [d for d in self._program.lines() if "connection" in d or "datagram" in d]

    def wait_logged(self, n: int, timeout: float = 5.0) -> list[dict]:
        """Wait until ``n`` connections or datagrams have been handled; return the log."""
        deadline = time.monotonic() + timeout
        while len(done := self.log) < n:
            if time.monotonic() > deadline:
                raise LabTimeout(f"the server handled {len(done)} of {n} within {timeout:g} s")
            time.sleep(0.005)
        return done


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
        program = _Program(_SOCKET_SERVER, [kind, str(path) if path else ""], lifetime, False)
        server = SocketServer(kind, path, program.proc.pid, program)
        try:
            ready = program.wait_for("ready", 10.0, f"the {kind} socket server")
            if kind == "tcp":
                server.address = tuple(ready["ready"])
            yield server
        finally:
            program.stop()
            server._program = _StoppedLog(program.lines())
            program.close()


# --- every mechanism of the course, compared by experiment -----------------------------


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

    deadline = time.monotonic() + timeout
    while True:
        n = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        if n >= want or time.monotonic() > deadline:
            return
        time.sleep(0.001)


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
        return first, f"writing into {read_end} fails ({errno.errorcode[e.errno]})"


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


_REACH = r'''
import json, os, socket, sys
import posix_ipc
fifo, mq, shm, stream, dgram, port = sys.argv[1:7]
seen = {}
def attempt(what, fn):
    try:
        fn()
        seen[what] = "yes"
    except Exception as e:
        seen[what] = type(e).__name__
attempt("FIFO (named pipe)", lambda: os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)))
attempt("POSIX message queue", lambda: posix_ipc.MessageQueue(mq).close())
attempt("shared memory", lambda: posix_ipc.SharedMemory(shm).close_fd())
def connect(family, address, kind=socket.SOCK_STREAM):
    with socket.socket(family, kind) as s:
        s.connect(address)
attempt("Unix stream socket", lambda: connect(socket.AF_UNIX, stream))
attempt("Unix datagram socket", lambda: connect(socket.AF_UNIX, dgram, socket.SOCK_DGRAM))
attempt("TCP (loopback)", lambda: connect(socket.AF_INET, ("127.0.0.1", int(port))))
print(json.dumps(seen))
'''


def _reach_from_stranger(fifo: Path, mq_name: str, shm_name: str,
                         tmp: Path) -> dict[str, str]:
    """Which named objects a brand-new, unrelated process can open."""
    from .shm import run_unrelated

    stream_path, dgram_path = tmp / "reach_s", tmp / "reach_d"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as st, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dg, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        _bind(st, str(stream_path))
        st.listen(1)
        _bind(dg, str(dgram_path))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        r = run_unrelated(_REACH, str(fifo), mq_name, shm_name, str(stream_path),
                          str(dgram_path), str(tcp.getsockname()[1]), timeout=10)
    if not r.ok:
        raise LabError(f"the unrelated process failed ({r.status}): {r.stderr.strip()}")
    return json.loads(r.stdout)


def _survey() -> list[MechanismFacts]:
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
