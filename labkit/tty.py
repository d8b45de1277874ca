"""A real pseudo-terminal driven from a notebook cell: sessions, job control, who got what.

Job control only exists on a terminal: Ctrl-C becomes SIGINT because a
terminal's line discipline sends it to the terminal's *foreground process
group*. A notebook has no terminal, so :class:`Terminal` makes one with
``os.openpty()``. The notebook holds the controller side (what a terminal
window holds) and starts a Python function or a program as the *session
leader* on the follower side, which becomes its controlling terminal. Cells
then type text and control keys into it and read what it prints, always with
a deadline, so nothing can hang the kernel.

Children start through :mod:`labkit.processes` (a parent-death signal, the
janitor, every descendant killed at the end). A labkit child leads its own
process group and may therefore not call ``setsid``; the session leader is
its own child, which it waits for. Processes that want to be seen receiving
signals call :func:`witness` (or run :data:`WITNESS`): a handler stamps each
signal on the one monotonic clock into a pipe the terminal reads, then lets
the signal do what it does by default, so the timeline shows what the
terminal did and the processes still behave as they would without it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import inspect
import os
import re
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import psutil

from ._platform import set_parent_death_signal
from ._validate import seconds as valid_seconds
from .display import Table, axes
from .errors import ChildError, LabError, LabTimeout
from .processes import start
from .results import ExitStatus, to_signal
from .waiting import wait_until

__all__ = [
    "KEYS",
    "WITNESS",
    "SignalSeen",
    "Terminal",
    "TtyTimeline",
    "plot_tty_timeline",
    "show_session",
    "witness",
]

KEYS = {"C-c": b"\x03", "C-z": b"\x1a", "C-\\": b"\x1c", "C-d": b"\x04"}
_KEY_NAMES = {"C-c": "Ctrl-C", "C-z": "Ctrl-Z", "C-\\": "Ctrl-\\", "C-d": "Ctrl-D"}
_WATCHED = ("SIGINT", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT", "SIGHUP", "SIGTERM")
_LOG_ENV = "LABKIT_TTY_LOG"
_NOT_DONE = 3           # the session leader's exit code when the function is not written yet
_HOLD_LIMIT = 3.0       # seconds a held fork waits for its child to end
_KERNEL_PID = os.getpid()


def _stamp_and_default(signum: int, label: str) -> None:
    """Write one record of ``signum`` to the log, then act as the default would.

    Signal 0 records that the witness is ready: its handlers are installed.
    """
    import os
    import signal as sig
    import time

    fd = int(os.environ.get("LABKIT_TTY_LOG", "-1"))
    if fd >= 0:
        name = sig.Signals(signum).name if signum else "ready"
        line = f"{time.monotonic():.6f} {os.getpid()} {os.getpgid(0)} {name} {label}\n"
        try:
            os.write(fd, line.encode())
        except OSError:
            pass  # the terminal has been closed: nobody is watching any more
    if signum == 0:
        return
    if signum != sig.SIGCONT:
        handler = sig.signal(signum, sig.SIG_DFL)
        sig.pthread_sigmask(sig.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)  # a stop signal returns here once the process continues
        sig.signal(signum, handler)


def witness(label: str, signals: Iterable[str] = _WATCHED) -> None:
    """Record every terminal signal this process receives, then let it act as by default.

    Call it in a process started on a :class:`Terminal` (never in the
    notebook's kernel); :meth:`Terminal.await_witness` returns once it is in place. Each signal is stamped with the time, this process's
    pid and process group and ``label``; then a stop signal stops the process
    and a terminating one ends it, just as without the witness.

    >>> term.start(lambda: (witness("leader"), time.sleep(5)))  # doctest: +SKIP
    """
    if os.getpid() == _KERNEL_PID:
        raise LabError("witness() changes signal handlers: call it in a process started on a "
                       "Terminal (term.start(...)), not in the notebook's kernel")

    def record(signum: int, _frame: Any) -> None:
        _stamp_and_default(signum, label)

    for name in signals:
        signal.signal(to_signal(name), record)
    _stamp_and_default(0, label)


# A program that witnesses its signals: [sys.executable, "-c", WITNESS, label, mode], with
# mode "idle" (sleep), "read" (read the terminal), "write" (write to it every 0.1 s) or
# "stop" (send itself SIGTSTP once ready, then sleep).
WITNESS = (
    "import inspect, os, signal, sys, time\n"
    + inspect.getsource(_stamp_and_default) + "\n"
    "label, mode = (sys.argv[1:] + ['witness', 'idle'])[:2]\n"
    f"for name in {_WATCHED!r}:\n"
    "    signal.signal(signal.Signals[name], lambda n, f: _stamp_and_default(n, label))\n"
    "_stamp_and_default(0, label)\n"
    "if mode == 'stop':\n"
    "    os.kill(os.getpid(), signal.SIGTSTP)\n"
    "deadline = time.monotonic() + 30\n"
    "while time.monotonic() < deadline:\n"
    "    if mode == 'read':\n"
    "        os.read(0, 100)\n"
    "    elif mode == 'write':\n"
    "        os.write(1, b'.')\n"
    "    time.sleep(0.1)\n"
)


@dataclass(frozen=True)
class SignalSeen:
    """One signal a witnessing process received: when (s after the terminal opened), who."""

    t: float
    pid: int
    pgid: int
    signal: str
    label: str


@dataclass(frozen=True)
class TtyTimeline:
    """What happened on a terminal: the keys typed and the signals witnessed."""

    keys: list[tuple[float, str]]       # (seconds since the terminal opened, "Ctrl-C")
    signals: list[SignalSeen]
    witnesses: list[tuple[str, int, int]] = field(default_factory=list)  # (label, pid, pgid)

    def received(self, label: str) -> list[str]:
        """The signal names the processes labelled ``label`` received, in order."""
        return [s.signal for s in self.signals if s.label == label]


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
    return found


def _hold_forks() -> None:
    """After each fork, hold this process back until the new child has ended (at most 3 s).

    It replays the worst schedule a busy machine can produce: the child runs
    and exits before the parent takes its next step after ``fork``.
    """
    me = os.getpid()
    seen = [_children_of(me)]

    def after_fork() -> None:
        now = _children_of(me)
        for pid in now - seen[0]:
            with contextlib.suppress(OSError):
                fd = os.pidfd_open(pid)
                try:
                    select.select([fd], [], [], _HOLD_LIMIT)
                finally:
                    os.close(fd)
        seen[0] = now

    os.register_at_fork(after_in_parent=after_fork)


def _leader_main(fn: Callable, args: tuple, follower: int, log: int,
                 hold_forks: bool) -> NoReturn:
    code = 70
    try:
        set_parent_death_signal(signal.SIGKILL)
        os.setsid()
        if log >= 0:  # the witnesses among the leader's descendants write here
            os.environ[_LOG_ENV] = str(log)
            os.set_inheritable(log, True)
        fcntl.ioctl(follower, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(follower, fd)
        keep = sorted({2, log} - {-1})  # nothing else of labkit's is inherited by accident
        for low, high in zip(keep, [*keep[1:], 1 << 16], strict=True):
            os.closerange(low + 1, high)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        if hold_forks:
            _hold_forks()
        me = os.getpid()
        try:
            fn(*args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        except NotImplementedError:
            code = _NOT_DONE
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        if os.getpid() != me:
            code = 71  # a fork of the function returned out of it: it must os._exit
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(code)


def _lead(fn: Callable, args: tuple, follower: int, log: int, report: int,
          close: tuple[int, ...], hold_forks: bool) -> dict[str, Any]:
    """In a labkit child: start the session leader, report its pid, wait for it, say how
    it ended."""
    for fd in close:
        os.close(fd)
    pid = os.fork()
    if pid == 0:
        _leader_main(fn, args, follower, log, hold_forks)
    os.write(report, str(pid).encode())
    os.close(report)
    os.close(follower)
    if log >= 0:
        os.close(log)
    _, status = os.waitpid(pid, 0)
    ended = ExitStatus.from_wait_status(status)
    if ended.code == _NOT_DONE:
        raise NotImplementedError("the function is not written yet")
    left = []
    for kid in _children_of(os.getpid()):  # orphans of the leader come to us (a subreaper)
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(kid)
            state = p.status()
            try:
                what = " ".join(p.cmdline()) or p.name()
            except psutil.Error:
                what = "a process"  # a zombie has no command line any more
            left.append(f"{what} (pid {kid}, {state})")
    return {"pid": pid, "ended": str(ended), "code": ended.code, "signal": ended.signal_name,
            "left": left}


class Terminal:
    """A pseudo-terminal whose follower side is the controlling terminal of one session.

    >>> with Terminal() as term:                     # doctest: +SKIP
    ...     term.start_program(["cat"])
    ...     term.type("hello\\n")
    ...     term.read_until("hello\\r\\nhello")
    ...     term.press("C-c")                        # cat is in the foreground: SIGINT ends it
    """

    def __init__(self, timeout: float = 10.0, rows: int = 24, cols: int = 80) -> None:
        self.timeout = valid_seconds("timeout", timeout, above=True)
        self.opened = time.monotonic()
        self.keys: list[tuple[float, str]] = []
        self.output = ""
        self._seen: list[SignalSeen] = []
        self._ready: list[SignalSeen] = []
        self._pending_log = b""
        self._runner: Any = None
        self._program: Any = None
        self.leader = 0
        self.hung_up = False  # True once every process of the session has let go of it
        self.controller, self._follower = os.openpty()
        try:
            self._log_r, self._log_w = os.pipe()
        except OSError:
            os.close(self.controller)
            os.close(self._follower)
            raise
        fcntl.ioctl(self.controller, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- starting the session -----------------------------------------------------------

    def _check_free(self) -> None:
        if self._runner is not None or self._program is not None:
            raise LabError("this terminal already has a session leader; a terminal is the "
                           "controlling terminal of one session: open another Terminal()")
        if self._follower < 0:
            raise LabError("this terminal is closed; open a new Terminal()")

    def start(self, fn: Callable, *args: Any, hold_forks: bool = False, witnessed: bool = True,
              via: Callable | None = None) -> int:
        """Run ``fn(*args)`` as the session leader on this terminal; return its pid.

        Its standard input, output and error are the terminal. ``hold_forks``
        makes every fork it does wait until the new child has ended (at most
        3 s), the unluckiest schedule, for race experiments. With
        ``witnessed=False`` the session gets no descriptor for :func:`witness`
        records. ``via`` starts the labkit child (default
        :func:`labkit.processes.start`).

        >>> term.start(my_shell)                     # doctest: +SKIP
        """
        self._check_free()
        if not callable(fn):
            raise TypeError(f"expected a function to run on the terminal, got {fn!r}")
        log = self._log_w if witnessed else -1
        close = (self.controller, self._log_r) if witnessed else (self.controller, self._log_r,
                                                                   self._log_w)
        starter = via or (lambda *a, **k: start(*a, show=False, **k))
        report_r, report_w = os.pipe()
        try:
            self._runner = starter(_lead, fn, args, self._follower, log, report_w,
                                   (*close, report_r), hold_forks, timeout=self.timeout)
            os.close(report_w)
            report_w = -1
            self._close_follower()
            self.leader = self._leader_pid(report_r)
        finally:
            for fd in (report_r, report_w):
                if fd >= 0:
                    os.close(fd)
        return self.leader

    def start_program(self, argv: list[str]) -> int:
        """Run a program as the session leader on this terminal; return its pid.

        >>> term.start_program(["cat"])              # doctest: +SKIP
        """
        from .runner import start_program

        self._check_free()
        code = ("import fcntl, os, sys, termios\n"
                "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
                "os.execvp(sys.argv[1], sys.argv[1:])\n")
        env = dict(os.environ, **{_LOG_ENV: str(self._log_w)})
        self._program = start_program([sys.executable, "-c", code, *map(str, argv)],
                                      self.timeout, stdin=self._follower,
                                      stdout=self._follower, stderr=self._follower,
                                      pass_fds=[self._log_w], env=env)
        self._close_follower()
        self.leader = self._program.pid
        return self.leader

    def _close_follower(self) -> None:
        if self._follower >= 0:
            os.close(self._follower)
            self._follower = -1

    def _leader_pid(self, report: int) -> int:
        """The pid the labkit child reports right after forking the leader."""
        ready, _, _ = select.select([report], [], [], self.timeout)
        data = os.read(report, 32) if ready else b""
        if not data.isdigit():
            raise LabError("the session leader did not start: the process that starts it "
                           "ended first; term.wait() says how")
        return int(data)

    # --- typing and reading ---------------------------------------------------------------

    def type(self, text: str) -> None:
        """Type ``text`` into the terminal, as a user at the keyboard would.

        >>> term.type("echo hi\\n")                  # doctest: +SKIP
        """
        if not isinstance(text, str):
            raise TypeError(f"type() takes the text to type, a str; got {text!r}")
        data = text.encode()
        while data:
            data = data[os.write(self.controller, data):]

    def press(self, key: str) -> None:
        """Press a control key: ``"C-c"`` (Ctrl-C), ``"C-z"``, ``"C-\\\\"`` or ``"C-d"``.

        >>> term.press("C-z")                        # doctest: +SKIP
        """
        if key not in KEYS:
            raise ValueError(f"{key!r} is not a key this terminal knows; press one of "
                             f"{', '.join(KEYS)}")
        self.keys.append((time.monotonic() - self.opened, _KEY_NAMES[key]))
        os.write(self.controller, KEYS[key])

    def _pump(self, timeout: float) -> bool:
        """Read what the terminal and the witnesses wrote within ``timeout``; False at the end."""
        ready, _, _ = select.select([self.controller, self._log_r], [], [], max(timeout, 0))
        if self._log_r in ready:
            self._pending_log += os.read(self._log_r, 65536)
            *lines, self._pending_log = self._pending_log.split(b"\n")
            for line in lines:
                t, pid, pgid, name, label = line.decode().split(" ", 4)
                seen = SignalSeen(float(t) - self.opened, int(pid), int(pgid), name, label)
                (self._ready if name == "ready" else self._seen).append(seen)
        if self.controller in ready:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                self.hung_up = True
                return False  # every process holding the follower side has ended
            self.output += chunk.decode("utf-8", "replace")
            return bool(chunk)
        return True

    def read_until(self, pattern: str, timeout: float = 3.0, since: int = 0) -> str:
        """Read until the output from offset ``since`` on matches the regular expression
        ``pattern``; return all the output so far.

        Raises LabTimeout, quoting what the terminal showed, if it does not
        appear within ``timeout`` seconds.

        >>> term.read_until(r"\\$ $", since=len(term.output))   # doctest: +SKIP
        """
        timeout = valid_seconds("timeout", timeout, above=True)
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not regex.search(self.output, since):
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                if regex.search(self.output, since):
                    break
                raise LabTimeout(f"the terminal did not show {pattern!r} within {timeout:g} s;"
                                 f" it showed: {self.output[-300:]!r}")
        return self.output

    def await_witness(self, label: str, count: int = 1, timeout: float = 4.0) -> list[int]:
        """Wait until ``count`` processes labelled ``label`` witness their signals; their pids.

        >>> term.await_witness("job")                # doctest: +SKIP
        [812]
        """
        deadline = time.monotonic() + valid_seconds("timeout", timeout, above=True)
        while True:
            pids = [s.pid for s in self._ready if s.label == label]
            if len(pids) >= count:
                return pids
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabTimeout(f"{count} witness(es) labelled {label!r} were expected within "
                                 f"{timeout:g} s, {len(pids)} came; the terminal showed: "
                                 f"{self.output[-300:]!r}")
            self._pump(left)

    def await_foreground(self, pgid: int, timeout: float = 3.0) -> None:
        """Wait until ``pgid`` is the terminal's foreground group, so a key reaches it.

        A job can be ready before its shell has called ``tcsetpgrp``; a key pressed in
        that moment signals the shell's group instead.

        >>> term.await_foreground(term.await_witness("job")[0])   # doctest: +SKIP
        """
        wait_until(lambda: self.foreground == pgid, valid_seconds("timeout", timeout, above=True),
                   lambda: f"process group {pgid} was not the terminal's foreground group "
                           f"within {timeout:g} s (it is {self.foreground}); the terminal "
                           f"showed: {self.output[-300:]!r}")

    def read(self, seconds: float = 0.3) -> str:
        """Read for ``seconds`` and return all the output so far.

        >>> term.read(0.5)                           # doctest: +SKIP
        """
        deadline = time.monotonic() + valid_seconds("seconds", seconds, above=True)
        while time.monotonic() < deadline and self._pump(deadline - time.monotonic()):
            pass
        return self.output

    # --- looking at the session -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the session leader (or the labkit child that waits for it) runs."""
        if self._program is not None:
            return self._program.poll() is None
        return self._runner is not None and self._runner.running

    @property
    def foreground(self) -> int:
        """The terminal's foreground process group (what Ctrl-C signals)."""
        return os.tcgetpgrp(self.controller)

    def session(self) -> list[dict[str, Any]]:
        """Every live process of the session: pid, parent, group, state, foreground or not.

        >>> term.session()                           # doctest: +SKIP
        [{'pid': 812, 'ppid': 811, 'pgid': 812, 'state': 'S', 'foreground': True, ...}]
        """
        if not self.leader:
            return []
        found = []
        fg = self.foreground
        mine = psutil.Process().cmdline()
        top = self._program.pid if self._program is not None else self._runner.pid
        try:  # from the leader's parent: orphans of the session are adopted there
            procs = [psutil.Process(top), *psutil.Process(top).children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(p.pid) != self.leader:
                    continue
                with open(f"/proc/{p.pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                pgid = os.getpgid(p.pid)
                argv = p.cmdline()
                if argv[1:2] == ["-c"]:  # a Python program given as text: show its arguments
                    argv = ["python -c …", *argv[3:]]
                elif argv == mine:
                    argv = ["(a fork of this notebook)"]
                found.append({"pid": p.pid, "ppid": p.ppid(), "pgid": pgid, "state": state,
                              "foreground": pgid == fg, "command": " ".join(argv)})
        return found

    def session_table(self) -> Table:
        """:meth:`session` as a table, like ``ps -o pid,ppid,pgid,stat`` ('+' = foreground)."""
        return Table(["pid", "ppid", "pgid", "state", "command"],
                     [[p["pid"], p["ppid"], p["pgid"], p["state"] + ("+" if p["foreground"]
                                                                      else ""), p["command"]]
                      for p in self.session()])

    def timeline(self) -> TtyTimeline:
        """The keys pressed and the signals witnessed so far."""
        self.read(0.05)
        return TtyTimeline(list(self.keys), sorted(self._seen, key=lambda s: s.t),
                           [(s.label, s.pid, s.pgid) for s in self._ready])

    def wait(self, timeout: float = 3.0) -> dict[str, Any]:
        """Wait for the session leader to end; how it ended, and what it left running.

        >>> term.wait()                              # doctest: +SKIP
        {'pid': 812, 'ended': 'exited with code 0', 'code': 0, 'signal': None, 'left': []}
        """
        deadline = time.monotonic() + valid_seconds("timeout", timeout, above=True)
        if self._program is not None:
            while self._program.poll() is None:
                if time.monotonic() > deadline:
                    raise LabTimeout(f"the session leader (pid {self.leader}) did not end "
                                     f"within {timeout:g} s")
                self._pump(0.02)
            code = self._program.returncode  # Popen's: the exit code, or -signal
            ended = ExitStatus(code) if code >= 0 else ExitStatus(None, -code)
            return {"pid": self.leader, "ended": str(ended), "code": ended.code,
                    "signal": ended.signal_name, "left": []}
        if self._runner is None:
            raise LabError("nothing was started on this terminal")
        while self._runner.running:
            if time.monotonic() > deadline:
                raise LabTimeout(f"the session leader (pid {self.leader}) did not end within "
                                 f"{timeout:g} s")
            self._pump(0.02)
        if hasattr(self._runner, "finish"):
            return dict(self._runner.finish().value)
        return dict(self._runner.wait().value)

    def close(self) -> None:
        """End everything started on this terminal and close it."""
        try:
            if self._runner is not None:
                self._runner.close()
            if self._program is not None:
                from .runner import end_program

                end_program(self._program)
        finally:
            self._close_follower()
            for fd in (self.controller, self._log_r, self._log_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.controller = self._log_r = self._log_w = -1


def show_session(fn: Callable, typed: Iterable[str], prompt: str = "$ ",
                 timeout: float = 3.0) -> str:
    """Run ``fn`` (a shell) on a new terminal, type each line at its prompt, return the screen.

    Each item of ``typed`` is a line to type, or a key of :data:`KEYS`
    (``"C-z"``) to press. After each, it waits up to ``timeout`` seconds for
    ``prompt`` to come back (before a key, half a second for the command to
    start); it stops early if the shell ends. The text is what
    a terminal window would show (carriage returns removed).

    >>> print(show_session(shell, ["echo hi | tr a-z A-Z", "exit"]))   # doctest: +SKIP
    $ echo hi | tr a-z A-Z
    HELLO
    $ exit
    """
    items = list(typed)
    if any(not isinstance(item, str) for item in items):
        raise TypeError(f"typed must be lines (str) or keys {', '.join(KEYS)}; got {items!r}")
    with Terminal() as term:
        term.start(fn)
        try:
            term.read_until(re.escape(prompt) + r"\Z", timeout)
            for item, after in zip(items, [*items[1:], None], strict=True):
                start = len(term.output)
                if item in KEYS:
                    term.press(item)
                else:
                    term.type(item + "\n")
                if after in KEYS:  # a key for what this line started: give it time to start
                    term.read(0.5)
                    continue
                term.read_until(r"\n[\s\S]*" * (item not in KEYS) + re.escape(prompt) + r"\Z",
                                timeout, since=start)
        except LabTimeout as e:
            if not term.hung_up:
                return term.output.replace("\r", "") + f"\n[labkit: {e}]"
        try:
            term.wait(timeout)
        except ChildError as e:
            if isinstance(e.exception, NotImplementedError):
                return "[labkit: your function is not written yet (NotImplementedError)]"
            raise
        except LabTimeout:
            pass  # still running after the last line: the with block ends it
        return term.output.replace("\r", "")


def plot_tty_timeline(timeline: TtyTimeline, title: str = "Keys typed and signals received",
                      ax: Any = None) -> Any:
    """Draw the keys pressed (vertical lines) and each witness's signals (one row each).

    >>> plot_tty_timeline(term.timeline())           # doctest: +SKIP
    """
    rows: list[str] = []
    for label, pid, pgid in [*timeline.witnesses,
                             *((s.label, s.pid, s.pgid) for s in timeline.signals)]:
        row = f"{label} (pid {pid}, group {pgid})"
        if row not in rows:
            rows.append(row)
    ax = axes(title, "time since the terminal opened (s)", "", ax=ax,
              figsize=(8.0, 1.2 + 0.6 * max(len(rows), 1)))
    for t, key in timeline.keys:
        ax.axvline(t, color="grey", linestyle="--", linewidth=1)
        ax.annotate(key, (t, len(rows) - 0.4), rotation=90, va="top", ha="right",
                    fontsize=8, color="grey")
    colours: dict[str, str] = {}
    palette = ["tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive"]
    for s in timeline.signals:
        colour = colours.setdefault(s.signal, palette[len(colours) % len(palette)])
        y = rows.index(f"{s.label} (pid {s.pid}, group {s.pgid})")
        ax.plot([s.t], [y], "o", color=colour, label=s.signal)
        ax.annotate(s.signal, (s.t, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    if unique:
        ax.legend(unique.values(), unique.keys(), loc="lower right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    return ax
