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

The servers' own code is in ``labkit/programs/`` (``mq_server.py``,
``socket_server.py``): open them, they are short. The socket server is in
:mod:`labkit.mq_sockets`, the comparison of every mechanism in
:mod:`labkit.mq_survey`; this module gathers the names the lesson uses.

macOS has no POSIX message queues: everything that needs one raises
:class:`~labkit.errors.NotSupportedHere` there, and the sockets still work.
"""
from __future__ import annotations

import contextlib
import resource
import stat
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
from .display import Status
from .errors import NoSpaceError, NotSupportedHere
from .mq_sockets import SocketServer, socket_server
from .mq_survey import MechanismFacts, Survey, survey
from .processes import run, start_workers
from .servers import ServerProgram
from .waiting import wait_until

__all__ = [
    "Exhaustion",
    "Limits",
    "MQServer",
    "MechanismFacts",
    "QueueState",
    "QueueTrace",
    "ServeStatus",
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
    >>> import os
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
        return [(a, b) for a, b in zip(self.send_starts, self.send_ends, strict=True)
                if b - a > 0.002]


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


# --- the question server: labkit/programs/mq_server.py ----------------------------------


class ServeStatus(Status):
    """What the question server did with one request (its program logs these words)."""

    ANSWERED = "answered"
    NO_REPLY_QUEUE = "no such reply queue"
    NOT_OURS = "reply queue not ours to open"
    DROPPED = "reply queue full: answer dropped"
    TOO_LONG = "answer too long for the reply queue"
    BAD_REQUEST = "bad request: no reply queue"


@dataclass(frozen=True)
class Served:
    """One request as the server handled it (``order`` counts from 1)."""

    order: int
    priority: int
    question: str
    reply_to: str
    status: ServeStatus


@dataclass
class MQServer:
    """A running :func:`mq_server`: its request queue's name, and what it has served."""

    requests: str
    pid: int
    _program: ServerProgram = field(repr=False)

    @property
    def served(self) -> list[Served]:
        """The requests handled so far, in the order the server took them."""
        return [Served(d["order"], d["priority"], d["question"], d["reply_to"],
                       ServeStatus(d["status"])) for d in self._program.lines() if "order" in d]

    def resume(self) -> None:
        """Let a server started with ``paused=True`` begin taking requests."""
        self._program.resume()

    def wait_served(self, n: int, timeout: float = 5.0) -> list[Served]:
        """Wait until ``n`` requests have been handled; return them."""
        def enough() -> list[Served]:
            done = self.served
            return done if len(done) >= n else []

        return wait_until(enough, timeout, lambda: f"the server handled {len(self.served)} of "
                          f"{n} requests", every=0.005)


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
        with ServerProgram("mq_server", [requests.name, str(work)], lifetime,
                           paused) as program:
            program.wait_for("ready", 10.0, "the message-queue server")
            yield MQServer(requests.name, program.pid, program)
