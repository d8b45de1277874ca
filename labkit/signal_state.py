"""Signals as the kernel keeps them: their list, a process's signal state, one send settled.

Every signal experiment, and every check of lesson 01, needs the same three
things: what each signal does by default (``signal(7)``), what a process
catches, blocks, ignores and has pending right now (``/proc/PID/status``),
and a send that waits until the target has dealt with the signal, so two of
a kind never merge by accident. They live here, below :mod:`labkit.signals`
(the lesson's experiments), which re-exports them for the notebook.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from ._platform import LINUX
from ._validate import pid as _valid_pid
from ._validate import seconds
from .display import Status
from .errors import LabError, NotSupportedHere
from .processes import to_signal
from .waiting import wait_until

__all__ = [
    "UNCATCHABLE",
    "Settled",
    "SignalInfo",
    "SignalLike",
    "SignalState",
    "send_and_settle",
    "short_name",
    "signal_name",
    "signal_state",
    "signal_table",
    "to_signals",
    "wait_for_state",
]

SignalLike = int | str | signal.Signals
UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


# --- the list of signals -------------------------------------------------------------

# Default actions, from signal(7); real-time signals terminate.
_ACTIONS = {
    "SIGHUP": "terminate", "SIGINT": "terminate", "SIGQUIT": "core", "SIGILL": "core",
    "SIGTRAP": "core", "SIGABRT": "core", "SIGBUS": "core", "SIGFPE": "core",
    "SIGKILL": "terminate", "SIGUSR1": "terminate", "SIGSEGV": "core", "SIGUSR2": "terminate",
    "SIGPIPE": "terminate", "SIGALRM": "terminate", "SIGTERM": "terminate",
    "SIGSTKFLT": "terminate", "SIGCHLD": "ignore", "SIGCONT": "continue", "SIGSTOP": "stop",
    "SIGTSTP": "stop", "SIGTTIN": "stop", "SIGTTOU": "stop", "SIGURG": "ignore",
    "SIGXCPU": "core", "SIGXFSZ": "core", "SIGVTALRM": "terminate", "SIGPROF": "terminate",
    "SIGWINCH": "ignore", "SIGIO": "terminate", "SIGPWR": "terminate", "SIGSYS": "core",
    "SIGEMT": "core", "SIGINFO": "ignore",
}

_SENDERS = {
    "SIGHUP": "terminal: its window or connection closed",
    "SIGINT": "terminal: Ctrl-C",
    "SIGQUIT": "terminal: Ctrl-\\",
    "SIGILL": "kernel: an illegal CPU instruction",
    "SIGTRAP": "kernel: a breakpoint (debuggers)",
    "SIGABRT": "the process itself: abort(), a failed C assert",
    "SIGBUS": "kernel: a bad memory access (past the end of a mapped file)",
    "SIGFPE": "kernel: an arithmetic fault (integer division by zero)",
    "SIGKILL": "a process (kill -9), the kernel's out-of-memory killer",
    "SIGUSR1": "a process: meaning chosen by the program",
    "SIGSEGV": "kernel: an invalid memory access",
    "SIGUSR2": "a process: meaning chosen by the program",
    "SIGPIPE": "kernel: a write to a pipe or socket nobody reads",
    "SIGALRM": "kernel: a timer (alarm, setitimer) expired",
    "SIGTERM": "a process: please end (kill's default, docker stop, systemd)",
    "SIGSTKFLT": "unused on Linux",
    "SIGCHLD": "kernel: a child ended, stopped or continued",
    "SIGCONT": "a process or shell (fg, bg): continue after a stop",
    "SIGSTOP": "a process: pause now (cannot be caught)",
    "SIGTSTP": "terminal: Ctrl-Z",
    "SIGTTIN": "kernel: a background job read from its terminal",
    "SIGTTOU": "kernel: a background job wrote to its terminal",
    "SIGURG": "kernel: urgent data on a socket",
    "SIGXCPU": "kernel: the CPU time limit (RLIMIT_CPU) was reached",
    "SIGXFSZ": "kernel: the file size limit (RLIMIT_FSIZE) was reached",
    "SIGVTALRM": "kernel: a virtual (CPU time) timer expired",
    "SIGPROF": "kernel: a profiling timer expired",
    "SIGWINCH": "terminal: its window changed size",
    "SIGIO": "kernel: I/O is possible on a descriptor (O_ASYNC)",
    "SIGPWR": "a process: power failure (UPS daemons)",
    "SIGSYS": "kernel: a forbidden system call (seccomp)",
    "SIGRTMIN": "a process: real-time signal, queued, meaning chosen by the program",
    "SIGRTMAX": "a process: real-time signal, queued, meaning chosen by the program",
}


@dataclass(frozen=True)
class SignalInfo:
    """One signal of this system: number, name, default action, what it means, who sends it."""

    number: int
    name: str
    action: str         # default action: terminate, core, ignore, stop or continue
    description: str    # signal.strsignal's text
    sent_by: str        # who usually sends it


def signal_table() -> list[SignalInfo]:
    """Every signal of this system (what ``kill -l`` lists), in number order.

    >>> rows = {s.name: s for s in signal_table()}
    >>> rows["SIGTERM"].number, rows["SIGTERM"].action
    (15, 'terminate')
    >>> rows["SIGCHLD"].action, rows["SIGTSTP"].sent_by
    ('ignore', 'terminal: Ctrl-Z')
    """
    rows = []
    for sig in sorted(signal.Signals, key=int):
        rows.append(SignalInfo(int(sig), sig.name, _ACTIONS.get(sig.name, "terminate"),
                               signal.strsignal(sig) or "", _SENDERS.get(sig.name, "")))
    return rows


def signal_name(signum: int) -> str:
    """The name of a signal number, real-time ones included.

    >>> signal_name(10), signal_name(int(signal.SIGRTMIN) + 2)
    ('SIGUSR1', 'SIGRTMIN+2')
    """
    try:
        return signal.Signals(signum).name
    except ValueError:
        rtmin = int(signal.SIGRTMIN) if hasattr(signal, "SIGRTMIN") else 1 << 30
        if signum > rtmin:
            return f"SIGRTMIN+{signum - rtmin}"
        return f"signal {signum} (C library)" if signum < rtmin else f"signal {signum}"


def short_name(name: str) -> str:
    """``"SIGUSR1"`` without its ``SIG``: ``"USR1"``."""
    return name[3:] if name.startswith("SIG") else name


def to_signals(specs: Iterable[SignalLike] | SignalLike, what: str) -> list[signal.Signals]:
    """One signal or several, each as :func:`~labkit.processes.to_signal` takes it; a bad one
    is a ``ValueError`` that starts with ``what``."""
    if isinstance(specs, (str, int, signal.Signals)):
        specs = [specs]
    try:
        return [to_signal(s) for s in specs]
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


# --- a process's signal state, from /proc --------------------------------------------


@dataclass(frozen=True)
class SignalState:
    """What the kernel knows about a process's signals, read from ``/proc/PID/status``.

    Each set holds signal names, in number order. ``pending`` joins the
    thread's own pending set (SigPnd) and the process-wide one (ShdPnd).
    """

    pid: int
    state: str                 # one letter: R running, S sleeping, T stopped, Z zombie, ...
    pending: tuple[str, ...]
    blocked: tuple[str, ...]
    ignored: tuple[str, ...]
    caught: tuple[str, ...]
    in_sigwait: bool           # sleeping in sigwait/sigtimedwait (where Linux lifts the mask)
    voluntary_switches: int    # times the process went to sleep of its own accord

    def __str__(self) -> str:
        def show(names: tuple[str, ...]) -> str:
            return "{" + ", ".join(names) + "}" if names else "{}"
        return (f"pid {self.pid}, state {self.state}: pending {show(self.pending)}, "
                f"blocked {show(self.blocked)}, ignored {show(self.ignored)}, "
                f"caught {show(self.caught)}")


def _mask(hexdigits: str) -> tuple[str, ...]:
    bits = int(hexdigits, 16)
    return tuple(signal_name(n) for n in range(1, bits.bit_length() + 1) if bits >> (n - 1) & 1)


def signal_state(pid: int) -> SignalState:
    """Read a process's pending, blocked, ignored and caught signals from ``/proc``.

    >>> s = signal_state(os.getpid())
    >>> s.state, "SIGPIPE" in s.ignored        # Python ignores SIGPIPE at start-up
    ('R', True)
    """
    if not LINUX:
        raise NotSupportedHere("reading a process's signal masks needs Linux's /proc "
                               "(macOS has no /proc/PID/status)")
    pid = _valid_pid(pid)
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    except (FileNotFoundError, ProcessLookupError) as e:
        raise LabError(f"there is no process {pid} (it never existed, or it has ended and "
                       "been reaped)") from e
    wchan = ""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
    except OSError:
        pass  # not every kernel shows it; in_sigwait is then False
    state = fields["State"].split()[0]
    return SignalState(
        pid=pid, state=state,
        pending=_mask(hex(int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16))),
        blocked=_mask(fields["SigBlk"]), ignored=_mask(fields["SigIgn"]),
        caught=_mask(fields["SigCgt"]),
        in_sigwait=state == "S" and "sigtimedwait" in wchan,
        voluntary_switches=int(fields.get("voluntary_ctxt_switches", "0")))


def wait_for_state(pid: int, *, caught: Iterable[SignalLike] = (),
                   blocked: Iterable[SignalLike] = (), sleeping: bool = False,
                   timeout: float = 3.0) -> SignalState:
    """Wait until a process catches and blocks the given signals (and sleeps, if asked).

    Use it to know a child is ready before you signal it: a signal sent
    before its handler is installed gets the default action instead. A
    signal counts as blocked also while the process waits for it in
    ``sigwait``, because Linux lifts awaited signals from the mask meanwhile.
    Raises LabTimeout, naming what is missing, after ``timeout`` seconds.

    >>> wait_for_state(os.getpid(), caught=[]).pid == os.getpid()
    True
    """
    want_caught = {s.name for s in to_signals(caught, "caught")}
    want_blocked = {s.name for s in to_signals(blocked, "blocked")}
    lacking: list[str] = []

    def ready() -> SignalState | None:
        st = signal_state(pid)
        missing = want_caught - set(st.caught)
        unblocked = set() if st.in_sigwait else want_blocked - set(st.blocked)
        awake = sleeping and st.state != "S"
        if not (missing or unblocked or awake):
            return st
        if st.state in "ZX":
            raise LabError(f"process {pid} ended before it was ready ({st})")
        lacking[:] = ([f"catches no {', '.join(sorted(missing))}"] if missing else []) + \
                     ([f"does not block {', '.join(sorted(unblocked))}"] if unblocked else []) + \
                     ([f"is not waiting (state {st.state})"] if awake else [])
        return None

    st = wait_until(ready, seconds("timeout", timeout, above=True),
                    lambda: f"process {pid} still " + " and ".join(lacking), every=0.002)
    assert st is not None  # wait_until raised if it never came
    return st


class Settled(Status):
    """How a process dealt with a signal sent to it (see :func:`send_and_settle`)."""

    HANDLED = "handled"        # a handler ran, or sigwait took it; it sleeps again
    PENDING = "pending"        # blocked, or the process is stopped
    IGNORED = "ignored"
    STOPPED = "stopped"
    CONTINUED = "continued"
    ENDED = "ended"
    UNSETTLED = "unsettled"    # no clear answer in time (a process that never sleeps)


def send_and_settle(pid: int, sig: SignalLike, timeout: float = 2.0) -> Settled:
    """Send one signal, then wait until the target has dealt with it; say how.

    Returns ``"handled"`` (a handler ran, or ``sigwait`` took it, and the
    process sleeps again),
    ``"pending"`` (blocked, or the process is stopped), ``"ignored"``,
    ``"stopped"``, ``"continued"``, ``"ended"`` or, after ``timeout`` seconds
    without a clear answer (a process that never sleeps), ``"unsettled"``.
    Sending the next signal only once the last one settled keeps two of a
    kind from merging into one.

    >>> import time; from labkit.processes import start_ready
    >>> with start_ready(lambda ready: (ready(), time.sleep(5)), timeout=5) as child:
    ...     send_and_settle(child.pid, "SIGTERM")
    'ended'
    """
    signum = to_signal(sig)
    timeout = seconds("timeout", timeout, above=True)
    pid = _valid_pid(pid)
    if pid == 1:
        raise LabError("process 1 is the system's init (or the container's entry point); "
                       "labkit does not signal it. Signal a process you started, such as "
                       "child.pid")
    before = signal_state(pid)
    if before.state in "ZX":
        return Settled.ENDED
    try:
        os.kill(pid, signum)
    except ProcessLookupError as e:
        raise LabError(f"there is no process {pid} to send {signum.name} to") from e
    except PermissionError as e:
        raise LabError(f"you may not send {signum.name} to process {pid}: it belongs to "
                       "another user. A process may signal only its own user's processes "
                       "(root excepted); signal a process you started, such as child.pid"
                       ) from e
    name = signum.name

    def settled() -> Settled | None:
        try:
            now = signal_state(pid)
        except LabError:
            return Settled.ENDED
        if now.state in "ZX":
            return Settled.ENDED
        caught = name in now.caught
        if name in now.pending:
            if name in now.blocked or now.state in "tT":
                return Settled.PENDING
        elif name in now.ignored or (_ACTIONS.get(name) == "ignore" and not caught):
            return Settled.IGNORED
        elif signum == signal.SIGCONT and not caught:
            return Settled.CONTINUED
        elif _ACTIONS.get(name) == "stop" and not caught:
            if now.state in "tT":
                return Settled.STOPPED
        elif now.state == "S" and now.voluntary_switches > before.voluntary_switches:
            # It survived and sleeps again: a handler ran, or sigwait took the signal (a
            # fatal default action would have ended it, never put it back to sleep).
            return Settled.HANDLED
        elif caught and now.state in "tT" and before.state not in "tT":
            return Settled.STOPPED  # a handler for SIGTSTP/TTIN/TTOU that stopped itself
        return None

    return wait_until(settled, timeout, None, every=0.001) or Settled.UNSETTLED
