"""Checks for lesson 09 (one process, many channels): an event-loop server, a shutdown
driven by a signal inside the loop, a descriptor handed to another process, and a nameless
sealed segment passed over a socket.

The checker plays the clients and the receiving process itself, at a socket path in a
fresh private folder. Every verdict comes from what the kernel says in the checker's own
process (the bytes that arrive, ``fstat`` and ``F_GET_SEALS`` of a descriptor received, the
answer's process state in ``/proc``), never from an object the answer made; the one
exception is the signal-state probe of 09.graceful_server, which runs in the answer's
process and sends back plain numbers only. Descriptors received from an answer are closed
whatever happens, and only a regular file or memfd is ever read.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import select
import selectors
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import objects
from ..checking import Exercise, Launched, expect, expect_clean, launch
from ..waiting import wait_until
from ._shared import expect_function

GRACE = 3.0      # seconds the answer has to react (an echo, an accept, the end after SIGTERM)
ECHO = 2.0       # seconds a client waits for its echo
# Seconds a sending client makes no progress before it counts as stalled: a right server never
# stalls it (it reads everything), so only a wrong one makes the check wait this long, and a
# busy machine's pause cannot pass for a stall.
STALL = 2.0


# --- the checker's side of a Unix stream socket ------------------------------------------


def _listening(path: Path, running: Launched) -> None:
    """Wait until the answer has bound a socket at ``path`` (no probe connects: a probe
    would count as a client)."""

    def bound() -> bool:
        try:
            return stat.S_ISSOCK(os.stat(path).st_mode) or not running.running
        except FileNotFoundError:
            return not running.running

    wait_until(bound, GRACE, None, every=0.005)
    _alive(running, "it should have been listening at the path it was given")
    expect(path.exists(), f"no socket appeared at the path within {GRACE:g} s: bind a Unix "
                          "stream socket there and listen")


def _connected(path: Path) -> socket.socket:
    """A client connected to ``path``, trying again while the server has bound but not yet
    called listen."""
    end = time.monotonic() + GRACE
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(ECHO)
            sock.connect(str(path))
            return sock
        except ConnectionRefusedError:
            sock.close()
            expect(time.monotonic() < end, f"the server refused connections for {GRACE:g} s: "
                                           "does it call listen?")
            time.sleep(0.005)
        except BaseException:
            sock.close()
            raise


@contextlib.contextmanager
def _client(path: Path) -> Iterator[socket.socket]:
    sock = _connected(path)
    try:
        yield sock
    finally:
        sock.close()


def _read(sock: socket.socket, n: int, timeout: float = ECHO) -> bytes:
    """Up to ``n`` bytes, waiting at most ``timeout`` s in all (fewer if they do not come)."""
    got = b""
    end = time.monotonic() + timeout
    while len(got) < n and (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(got))
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    return got


def _exchange(socks: list[socket.socket], data: list[bytes], timeout: float) -> list[bytes]:
    """Send each socket its data, close its writing side, read until end of file: all at
    once, so neither side waits on the other. Returns what came back on each."""
    back = [b""] * len(socks)
    todo = {s: memoryview(d) for s, d in zip(socks, data, strict=True)}
    with selectors.DefaultSelector() as sel:
        for i, s in enumerate(socks):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
        open_ = len(socks)
        end = time.monotonic() + timeout
        while open_ and (left := end - time.monotonic()) > 0:
            for key, events in sel.select(left):
                i = key.data
                s = socks[i]
                if events & selectors.EVENT_WRITE:
                    rest = todo[s]
                    try:
                        sent = s.send(rest[:65536]) if rest else 0
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                        sent = 0
                    todo[s] = rest[sent:]
                    if not todo[s]:
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_WR)
                        sel.modify(s, selectors.EVENT_READ, i)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    if chunk:
                        back[i] += chunk
                    else:
                        sel.unregister(s)
                        open_ -= 1
    return back


def _stopped(running: Launched, what: str) -> None:
    """Fail, stopping the answer, if it still runs ``GRACE`` s from now."""
    wait_until(lambda: not running.running, GRACE, None, every=0.01)
    if running.running:
        running.close()
        expect(False, what)


def _alive(running: Launched, doing: str) -> None:
    if not running.running:
        attempt = running.finish()
        r = attempt.result
        blocked = (": a call on a non-blocking socket that could not go on at once; try it "
                   "again when the selector says so" if r.error_type == "BlockingIOError"
                   else "")
        expect(False, f"the server ended while {doing}"
                      + (f": it raised {r.error_type}: {r.error_message}{blocked}"
                         if r.error_type else f" ({r.status})"))


# --- 09.echo_server ------------------------------------------------------------------------

ECHO_SERVER = Exercise("09.echo_server", "An event loop that serves many clients at once",
                       timeout=60)


def _echo_run(answer: Any, clients: int, play: Any) -> tuple[Any, Any, bool]:
    """Run echo_server for ``clients`` clients, which ``play(path, running)`` plays; return
    what ``play`` returned, the attempt and whether the socket file was left behind."""
    expect_function(answer)
    with objects.temp_folder("echo") as folder:
        path = folder / "echo.sock"
        with launch(answer, str(path), clients, timeout=20) as running:
            _listening(path, running)
            try:
                got = play(path, running)
            except (BrokenPipeError, ConnectionResetError):
                # the server closed a connection it was still being sent on: has it died?
                wait_until(lambda: not running.running, 1.0, None, every=0.01)
                _alive(running, "its clients were talking to it")
                expect(False, "the server closed a client's connection while the client was "
                              "still sending")
            _stopped(running, f"echo_server was still running {GRACE:g} s after its "
                              f"{clients} clients had all closed their connections (does it "
                              "count a client as done when its recv gives b''?)")
            attempt = running.finish()
        return got, attempt, path.exists()


def _echoed(attempt: Any, want: int) -> None:
    r = attempt.result
    expect(r.returned, f"echo_server did not return: it raised {r.error_type}: "
                       f"{r.error_message}" if r.error_type else
                       f"echo_server did not return ({r.status})")
    expect(attempt.value == want, f"echo_server returned {attempt.value!r}; it echoed {want} "
                                  "bytes in all")


@ECHO_SERVER.check("one client: its bytes come back, and the count is returned",
                   hint="Register the listening socket with a selector; an accepted "
                        "connection is registered too, and whatever it sends is sent back.",
                   concept="One loop, one wait for many descriptors: the selector says which "
                           "of them can be served now.")
def _(answer):
    def play(path: Path, running: Launched) -> list[bytes]:
        with _client(path) as c:
            return _exchange([c], [b"hello, loop"], ECHO)

    got, attempt, _ = _echo_run(answer, 1, play)
    expect(got == [b"hello, loop"], f"the client sent b'hello, loop' and got {got[0]!r} back "
                                    "before the connection closed")
    _echoed(attempt, 11)


_NEVER_WAIT = ("An event loop waits in one place only, the selector; anything else that can "
               "wait (accept, recv, send on a blocking socket) stops every client at once.")


@ECHO_SERVER.check("a silent client does not hold up the others",
                   hint="After accept, go back to the selector: never wait for one "
                        "client's next bytes while others may be ready.",
                   concept=_NEVER_WAIT)
def _(answer):
    def play(path: Path, running: Launched) -> tuple[bytes, bytes, list[bytes]]:
        with _client(path) as silent, _client(path) as other:
            other.sendall(b"ping")
            first = _read(other, 4)
            _alive(running, "one client stayed silent")
            other.sendall(b"pong")
            second = _read(other, 4)
            return first, second, _exchange([silent, other], [b"late", b""], ECHO)

    (first, second, last), attempt, _ = _echo_run(answer, 2, play)
    expect(first == b"ping", f"while one connected client stayed silent, another sent b'ping' "
                             f"and got {first!r} back in {ECHO:g} s: the server waited on the "
                             "silent client (a blocking recv or accept?)")
    expect(second == b"pong", f"the second message of a client got {second!r} back while "
                              "another client stayed silent: the server waited on one client")
    expect(last == [b"late", b""], f"the silent client finally sent b'late' and got "
                                   f"{last[0]!r}")
    _echoed(attempt, 12)


def _push(sock: socket.socket, data: bytes) -> int:
    """Send ``data`` until the socket has taken none of it for STALL s; return how much went.

    A server that waits to send its echo stops reading, and so stalls this sender too."""
    sent = 0
    sock.setblocking(False)
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_WRITE)
        while sent < len(data) and sel.select(STALL):
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(data[sent:sent + 65536])
    return sent


@ECHO_SERVER.check("a client that does not read its echo does not hold up the others",
                   hint="A socket's send may take only part of what you give it, or none: "
                        "keep the rest for that client and wait until it is writable.",
                   concept=_NEVER_WAIT)
def _(answer):
    big = bytes(range(256)) * 16384         # 4 MiB: far more than the socket buffers hold

    def play(path: Path, running: Launched) -> tuple[bytes, list[bytes]]:
        with _client(path) as hog, _client(path) as other:
            sent = _push(hog, big)
            _alive(running, "one client sent a lot and did not read its echo")
            other.sendall(b"still there?")
            answer_ = _read(other, 12)
            _alive(running, "one client was not reading its echo")
            rest = _exchange([hog, other], [big[sent:], b""], 10.0)
            return answer_, rest

    (reply, rest), attempt, _ = _echo_run(answer, 2, play)
    expect(not reply or reply == b"still there?",
           f"a client sent b'still there?' and got {reply!r:.60} back, not its own bytes "
           "(another client's?)")
    expect(reply == b"still there?", f"while one client sent a lot and did not read its echo, "
                                     f"another got nothing back in {ECHO:g} s: the server "
                                     "was stuck sending to the one that does not read (a "
                                     "send or sendall that waits)")
    expect(rest[0] == big, f"the client that sent {len(big)} bytes got {len(rest[0])} back"
                           + (", not the same bytes" if len(rest[0]) == len(big) else
                              ": part of a partial send was lost (send returns how much it "
                              "took)"))
    _echoed(attempt, len(big) + 12)


@ECHO_SERVER.check("twenty clients at once: each gets exactly its own bytes",
                   hint="Keep what is still to be sent per connection (a dict keyed by the "
                        "socket), never in one variable shared by all clients.")
def _(answer):
    data = [f"client {k} ".encode() * (k * 300 + 1) for k in range(20)]

    def play(path: Path, running: Launched) -> list[bytes]:
        with contextlib.ExitStack() as stack:
            socks = [stack.enter_context(_client(path)) for _ in data]
            return _exchange(socks, data, 10.0)

    got, attempt, _ = _echo_run(answer, len(data), play)
    wrong = [k for k, (g, d) in enumerate(zip(got, data, strict=True)) if g != d]
    if wrong:
        k = wrong[0]
        expect(False, f"client {k} sent {len(data[k])} bytes and got {len(got[k])} bytes "
                      "back, not its own bytes (another client's bytes, or bytes lost?)")
    _echoed(attempt, sum(map(len, data)))


@ECHO_SERVER.check("the socket file is removed and nothing is left open",
                   hint="The selector, the listening socket and every connection are "
                        "descriptors: close each one, and remove the path bind made.")
def _(answer):
    def play(path: Path, running: Launched) -> list[bytes]:
        with _client(path) as a, _client(path) as b:
            return _exchange([a, b], [b"x", b"yz"], ECHO)

    got, attempt, left = _echo_run(answer, 2, play)
    expect(got == [b"x", b"yz"], f"the clients got {got!r} back, expected [b'x', b'yz']")
    _echoed(attempt, 3)
    expect(not left, "the socket file was still there after echo_server returned")
    expect_clean(attempt)


# --- 09.graceful_server --------------------------------------------------------------------

GRACEFUL = Exercise("09.graceful_server", "A shutdown driven by a signal inside the loop",
                    timeout=60)


def _previous(signum: int, frame: Any) -> None:
    """The SIGTERM handler the probe installs before calling the answer."""


def _probed(answer: Any, path: str) -> dict[str, Any]:
    """Runs as the answer's process: a known SIGTERM handler and no wakeup descriptor before,
    then what the answer returned and left behind, as plain numbers and strings."""
    signal.signal(signal.SIGTERM, _previous)
    signal.set_wakeup_fd(-1)
    value = answer(path)
    wakeup = signal.set_wakeup_fd(-1)
    return {"value": value, "handler_back": signal.getsignal(signal.SIGTERM) is _previous,
            "wakeup": wakeup}


def _wakeups(pid: int) -> int:
    """Times process ``pid`` has gone to sleep and woken (voluntary context switches), or -1."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith("voluntary_ctxt_switches"))
    except (OSError, StopIteration, ValueError):
        return -1


def _graceful(answer: Any, play: Any) -> tuple[Any, dict[str, Any], Any, bool]:
    """Run serve_until_term; ``play(path, running)`` talks to it; then SIGTERM. Returns what
    ``play`` returned, the probe's report, the attempt and whether the socket file stayed."""
    expect_function(answer)
    with objects.temp_folder("term") as folder:
        path = folder / "term.sock"
        with launch(_probed, answer, str(path), timeout=20) as running:
            _listening(path, running)
            got = play(path, running)
            _alive(running, "it should be serving (before any SIGTERM)")
            running.send_signal("SIGTERM")
            _stopped(running, f"serve_until_term was still running {GRACE:g} s after "
                              "SIGTERM: the handler ran, but the loop slept on in its "
                              "selector; the signal must wake the selector (a descriptor "
                              "that becomes readable: set_wakeup_fd or a self-pipe)")
            attempt = running.finish()
        r = attempt.result
        expect(r.returned, f"serve_until_term did not return after SIGTERM: it raised "
                           f"{r.error_type}: {r.error_message}" if r.error_type else
                           f"serve_until_term did not return after SIGTERM ({r.status})")
        report = attempt.value
        expect(isinstance(report, dict), "the probe around serve_until_term sent back "
                                         f"{report!r}")
        return got, report, attempt, path.exists()


@GRACEFUL.check("SIGTERM ends the loop at once, and the number of clients comes back",
                hint="A signal handler cannot stop a selector that is waiting: give the "
                     "selector a descriptor that a signal makes readable.",
                concept="signal.set_wakeup_fd writes the signal's number into a descriptor "
                        "of yours when one arrives: a signal becomes one more event.")
def _(answer):
    def play(path: Path, running: Launched) -> list[bytes]:
        with _client(path) as a, _client(path) as b:
            return _exchange([a, b], [b"one", b"two"], ECHO)

    got, report, _, _ = _graceful(answer, play)
    expect(got == [b"one", b"two"], f"two clients got {got!r} back, expected their own bytes")
    expect(report["value"] == 2, f"serve_until_term returned {report['value']!r} after "
                                 "serving two clients, expected 2")


@GRACEFUL.check("while idle, the loop sleeps: it does not wake up to poll",
                hint="Wait in the selector with no timeout: what ends the wait is an event "
                     "(a client, or the signal's descriptor), not the clock.",
                concept="A loop that wakes every tenth of a second to look at a flag costs "
                        "CPU forever and still answers late.")
def _(answer):
    def play(path: Path, running: Launched) -> tuple[int, int]:
        before = _wakeups(running.pid)
        time.sleep(0.6)     # a quiet spell to watch, not a wait for the answer
        return before, _wakeups(running.pid)

    (before, after), report, _, _ = _graceful(answer, play)
    if before >= 0 and after >= 0:
        expect(after - before <= 2, f"with no client and no signal, serve_until_term woke up "
                                    f"{after - before} times in 0.6 s: it polls (a selector "
                                    "timeout, or a sleep) instead of waiting for an event")
    expect(report["value"] == 0, f"serve_until_term returned {report['value']!r} with no "
                                 "client, expected 0")


@GRACEFUL.check("a client still connected at SIGTERM is closed, and counted",
                hint="On the way out, close every connection still open, not only the "
                     "listening socket.")
def _(answer):
    def play(path: Path, running: Launched) -> tuple[socket.socket, bytes]:
        c = _connected(path)
        c.sendall(b"hi")
        return c, _read(c, 2)

    (c, echoed), report, attempt, _ = _graceful(answer, play)
    with c:
        end = _read(c, 1, timeout=1.0)
    expect(echoed == b"hi", f"the client sent b'hi' and got {echoed!r} back")
    expect(end == b"", f"after SIGTERM the connected client read {end!r}, expected end of file")
    expect(report["value"] == 1, f"serve_until_term returned {report['value']!r}; one client "
                                 "had connected")
    expect_clean(attempt)


@GRACEFUL.check("the socket file goes, and the old handler and wakeup fd are back",
                hint="Whatever you installed for SIGTERM (handler, wakeup descriptor), put "
                     "back what was there before, in a block that runs however you leave.",
                concept="A library that changes process-wide signal state must leave it as "
                        "it found it: the caller had plans for SIGTERM too.")
def _(answer):
    _, report, attempt, left = _graceful(answer, lambda path, running: None)
    expect(not left, "the socket file was still there after serve_until_term returned")
    expect(report["handler_back"] is True, "after serve_until_term the SIGTERM handler was not "
                                           "the one installed before it")
    expect(report["wakeup"] == -1, f"after serve_until_term the wakeup descriptor was still "
                                   f"set (to {report['wakeup']!r}); the previous one was -1")
    expect_clean(attempt)


# --- 09.give_file and 09.share_bytes: a descriptor received from the answer ----------------

GIVE = Exercise("09.give_file", "Hand an open file to another process")
SHARE = Exercise("09.share_bytes", "A nameless sealed segment passed over a socket")


class _Received:
    """What one connection from the answer brought: its data and the descriptors (closed
    when the block ends), and what the answer did."""

    def __init__(self) -> None:
        self.data = b""
        self.fds: list[int] = []
        self.attempt: Any = None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


@contextlib.contextmanager
def _receive(answer: Any, *args: Any) -> Iterator[_Received]:
    """Listen at a fresh path, run ``answer(path, *args)``, take one connection's first
    message and descriptors, and wait for the answer to end."""
    expect_function(answer)
    got = _Received()
    try:
        with objects.temp_folder("fds") as folder, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            path = folder / "receiver.sock"
            server.bind(str(path))
            server.listen()
            server.settimeout(GRACE)
            with launch(answer, str(path), *args) as running:
                conn = _accepted(server, running)
                if conn is not None:
                    with conn:
                        conn.settimeout(GRACE)
                        with contextlib.suppress(TimeoutError, ConnectionResetError):
                            got.data, got.fds, _, _ = socket.recv_fds(conn, 64, 8)
                got.attempt = running.finish()
            r = got.attempt.result
            expect(conn is not None, "your function never connected to the receiver's "
                                     f"socket in {GRACE:g} s" + (
                                         f"; it raised {r.error_type}: {r.error_message}"
                                         if r.error_type else ""))
        yield got
    finally:
        got.close()


def _accepted(server: socket.socket, running: Launched) -> socket.socket | None:
    """The answer's connection to ``server``: waited for up to :data:`GRACE`, less when the
    answer ends without connecting (an untouched exercise says so at once)."""
    def pending() -> bool:
        return bool(select.select([server], [], [], 0)[0])

    wait_until(lambda: pending() or not running.running, GRACE, None)
    # Once the answer has ended, a connection it made is already queued: look once more.
    return server.accept()[0] if pending() else None


def _one_fd(got: _Received) -> int:
    r = got.attempt.result
    expect(r.returned, f"your function raised {r.error_type}: {r.error_message}"
           if r.error_type else f"your function did not return ({r.status})")
    expect(got.fds, f"the receiver got the message {got.data!r} and no descriptor with it: "
                    "a descriptor travels as SCM_RIGHTS ancillary data (send_fds), which "
                    "needs at least one byte of ordinary data to ride on; its number alone "
                    "means nothing in another process")
    expect(len(got.fds) == 1, f"the receiver got {len(got.fds)} descriptors, expected one")
    expect(stat.S_ISREG(os.fstat(got.fds[0]).st_mode),
           f"the descriptor received is not a file ({os.readlink(f'/proc/self/fd/{got.fds[0]}')})")
    return got.fds[0]


def _contents(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of a file or memfd from offset 0 (pread: the offset it shares
    with the answer is left alone)."""
    return os.pread(fd, limit, 0)


@contextlib.contextmanager
def _given_file(answer: Any, name: str, text: bytes) -> Iterator[tuple[Path, int, _Received]]:
    """Write ``text`` to a fresh file ``name``, run ``answer(receiver, path)``, and yield the
    file's path, the one descriptor received (a file: see :func:`_one_fd`) and what came."""
    with objects.temp_folder("give") as folder:
        path = folder / name
        path.write_bytes(text)
        with _receive(answer, str(path)) as got:
            yield path, _one_fd(got), got


@GIVE.check("the receiver gets a descriptor of that very file",
            hint="Open the file, then send the open descriptor itself over the socket "
                 "(socket.send_fds), with a byte of data for it to ride on.",
            concept="SCM_RIGHTS makes the kernel install, in the receiver, a new descriptor "
                    "for the same open file: the receiver never opens the path.")
def _(answer):
    with _given_file(answer, "secret.txt", b"only the sender could open this\n") as (path, fd, _):
        st, want = os.fstat(fd), os.stat(path)
        expect((st.st_dev, st.st_ino) == (want.st_dev, want.st_ino),
               "the descriptor received is not the file at the path you were given")
        expect(_contents(fd, 64) == path.read_bytes(), "the file read through the "
                                                       "descriptor differs")


@GIVE.check("the receiver reads the file from its start",
            hint="The receiver shares the open file with you, position included: leave the "
                 "position where opening put it.",
            concept="A passed descriptor is the same open file description: one offset, "
                    "shared by every process holding it.")
def _(answer):
    with _given_file(answer, "data.txt", b"line 1\nline 2\n") as (_, fd, _):
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        expect(pos == 0, f"the descriptor received was at offset {pos}, not 0: reading the "
                         "file before sending it moved the offset the receiver shares")


@GIVE.check("the descriptor is read-only",
            hint="Give the receiver no more than it needs: open for reading only.")
def _(answer):
    with _given_file(answer, "data.txt", b"read me\n") as (_, fd, _):
        mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        expect(mode == os.O_RDONLY, "the descriptor received is open for writing: the "
                                    "receiver could change the file")


@GIVE.check("nothing is left open, and the file is still there",
            hint="Once sent, the receiver holds its own descriptor: close yours, and the "
                 "socket.")
def _(answer):
    with _given_file(answer, "data.txt", b"keep me\n") as (path, _, got):
        expect(path.read_bytes() == b"keep me\n", "the file was changed or removed")
        expect_clean(got.attempt)


_MEMFD = ("memfd_create makes memory with a descriptor and no name: nobody can open it, "
          "squat it or leave it behind; seals make the kernel, not trust, keep it unchanged.")


@SHARE.check("the receiver finds exactly the bytes sent",
             hint="Size the memory to the data, no more (ftruncate), and put the bytes in "
                  "before you send it.",
             concept=_MEMFD)
def _(answer):
    for data in (b"hello, memfd", bytes(range(256)) * 400):
        with _receive(answer, data) as got:
            fd = _one_fd(got)
            size = os.fstat(fd).st_size
            expect(size == len(data), f"the segment received holds {size} bytes for "
                                      f"{len(data)} bytes of data (sized to a page?)")
            expect(_contents(fd, len(data)) == data, "the bytes in the segment received "
                                                     "differ from the data")


@SHARE.check("it has no name: a memfd, nothing in /dev/shm or a folder",
             hint="The memory need not have a name at all: there is a system call that "
                  "makes it with a descriptor only.",
             concept=_MEMFD)
def _(answer):
    with _receive(answer, b"nameless") as got:
        fd = _one_fd(got)
        what = os.readlink(f"/proc/self/fd/{fd}")
        expect(what.startswith("/memfd:"), f"the descriptor received is {what!r}, not a "
                                           "memfd: a named file or segment (even an "
                                           "unlinked one) had a name someone could open "
                                           "or squat first")


@SHARE.check("sealed: the receiver cannot be surprised by a write, a shrink or a growth",
             hint="Allow sealing when you make it, and add the seals once the data is in; "
                  "a seal against writes needs every writable mapping gone first.",
             concept=_MEMFD)
def _(answer):
    with _receive(answer, b"frozen bytes") as got:
        fd = _one_fd(got)
        try:
            have = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            have = 0
        missing = [n for n in ("F_SEAL_WRITE", "F_SEAL_SHRINK", "F_SEAL_GROW")
                   if not have & getattr(fcntl, n)]
        expect(not missing, f"the segment received is not sealed with {', '.join(missing)}: "
                            "the sender could still change it under the receiver")
        try:
            os.ftruncate(fd, 0)
            shrunk = True
        except OSError:
            shrunk = False
        expect(not shrunk, "the receiver could shrink the segment")


@SHARE.check("nothing is left open",
             hint="The receiver's descriptor keeps the memory alive: close yours once it "
                  "is sent, and the socket.")
def _(answer):
    with _receive(answer, b"x" * 5000) as got:
        _one_fd(got)
        expect_clean(got.attempt)
