"""Signals on real processes: send them by script, record what arrives, draw it.

A signal is easy to send and hard to watch: it carries no data, a second one
of a kind may vanish while the first is still pending, and Python runs the
handler later than the kernel delivers the signal. So every experiment here
runs its receiver in a child process (never in the notebook's kernel, whose
SIGINT handler belongs to Jupyter), stamps each send in the parent and each
handler run in the child on the one system-wide monotonic clock, and returns
plain data that the plotting functions draw. Waiting is by handshake (a
"ready" byte, the target's state in ``/proc``), never by a guessed sleep.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._validate import seconds, whole
from .display import Table, axes
from .errors import ChildError, LabTimeout
from .processes import start, start_ready, to_signal
from .signal_state import (
    UNCATCHABLE,
    Settled,
    SignalInfo,
    SignalLike,
    SignalState,
    send_and_settle,
    short_name,
    signal_name,
    signal_state,
    signal_table,
    to_signals,
    wait_for_state,
)
from .waiting import wait_until

__all__ = [
    "PUZZLE_TARGET",
    "Coalescing",
    "Event",
    "Progress",
    "Replay",
    "Settled",
    "SignalInfo",
    "SignalState",
    "Timeline",
    "coalescing",
    "gatekeeper",
    "plot_coalescing",
    "plot_progress",
    "plot_timeline",
    "record_signals",
    "replay",
    "send_and_settle",
    "signal_state",
    "signal_table",
    "start_ready",
    "stop_and_continue",
    "wait_for_state",
]

MAX_STEPS = 2000        # a script longer than this is a mistake (and would fill the record pipe)
MAX_SCRIPT_SECONDS = 4.0  # so a scripted experiment fits in one notebook cell


# --- the signal timeline recorder ----------------------------------------------------

_RECORD = struct.Struct("!dii")   # time, kind, signal number
_HANDLED, _READY, _PENDING, _UNBLOCKED, _WORK_START, _WORK_END = range(6)
_MARKS = {_PENDING: "pending", _UNBLOCKED: "unblocked", _WORK_START: "work started",
          _WORK_END: "work ended"}


@dataclass(frozen=True)
class Event:
    """One thing that happened: the sender sent a signal, or the receiver did something."""

    t: float         # seconds since the sender started its script
    who: str         # "sender" or "receiver"
    what: str        # sent, handled, pending, unblocked, work started, work ended
    signal: str = ""  # the signal's name, where there is one


@dataclass(frozen=True)
class Timeline:
    """What :func:`record_signals` saw: every send and every handler run, on one clock."""

    events: tuple[Event, ...]
    status: str          # how the receiver ended, e.g. "exited with code 0"
    sender_pid: int
    receiver_pid: int
    blocked: tuple[str, ...] = ()   # signals the receiver blocked from the start

    @property
    def sent(self) -> list[tuple[float, str]]:
        """``(time, signal)`` of every send, in order."""
        return [(e.t, e.signal) for e in self.events if e.what == "sent"]

    @property
    def handled(self) -> list[tuple[float, str]]:
        """``(time, signal)`` of every handler run in the receiver, in order."""
        return [(e.t, e.signal) for e in self.events if e.what == "handled"]

    def count(self, what: str, sig: SignalLike | None = None) -> int:
        """How many events of a kind (``"sent"``, ``"handled"``), for one signal or all."""
        name = to_signal(sig).name if sig is not None else None
        return sum(1 for e in self.events if e.what == what and name in (None, e.signal))

    def table(self) -> Table:
        """The events as a table: time in ms, process, what happened, signal."""
        return Table(["ms", "process", "event", "signal"],
                     [[round(e.t * 1000, 1), e.who, e.what, e.signal] for e in self.events])


def _parse_script(script: Iterable[Any], gap: float) -> list[tuple[float, signal.Signals]]:
    """``["USR1", ("USR2", 0.1)]`` -> ``[(t, SIGUSR1), (t, SIGUSR2)]``, times from the start."""
    if isinstance(script, (str, int, signal.Signals)):
        script = [script]
    steps: list[tuple[float, signal.Signals]] = []
    t = 0.0
    for i, step in enumerate(script):
        if isinstance(step, tuple):
            if len(step) != 2:
                raise ValueError(f"script step {i} must be a signal or a pair (signal, delay "
                                 f"in seconds), got {step!r}")
            spec, delay = step
            delay = seconds(f"script step {i}: the delay", delay)
        else:
            spec, delay = step, gap
        try:
            sig = to_signal(spec)
        except ValueError as e:
            raise ValueError(f"script step {i}: {e}") from None
        t += delay
        steps.append((t, sig))
        if len(steps) > MAX_STEPS:
            raise ValueError(f"a script may have at most {MAX_STEPS} steps")
    if t > MAX_SCRIPT_SECONDS:
        raise ValueError(f"the script lasts {t:.2f} s; keep it under {MAX_SCRIPT_SECONDS:g} s "
                         "so the experiment fits in a cell")
    return steps


def _receiver(rec_r: int, rec_w: int, ctl_r: int, ctl_w: int, catch: list[int],
              ignore: list[int], block: list[int], work: Callable | None) -> None:
    """The recording child: note each handler run, obey the sender's pipe until it closes."""
    os.close(rec_r)
    os.close(ctl_w)

    def note(kind: int, signum: int = 0) -> None:
        os.write(rec_w, _RECORD.pack(time.monotonic(), kind, signum))

    def handler(signum: int, frame: Any) -> None:
        note(_HANDLED, signum)

    for s in catch:
        signal.signal(s, handler)
    for s in ignore:
        signal.signal(s, signal.SIG_IGN)
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, block)
    note(_READY)
    if work is not None:
        note(_WORK_START)
        work()
        note(_WORK_END)
    while True:
        command = os.read(ctl_r, 1)   # a signal interrupts it; PEP 475 retries after the handler
        if not command:
            break
        if command == b"u":
            for s in sorted(signal.sigpending()):
                note(_PENDING, s)
            note(_UNBLOCKED)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, block)
    if catch:
        signal.pthread_sigmask(signal.SIG_BLOCK, catch)  # runs handlers still due, then no more


def record_signals(script: Iterable[Any], *, catch: Iterable[SignalLike] | None = None,
                   default: Iterable[SignalLike] = (), ignore: Iterable[SignalLike] = (),
                   block: Iterable[SignalLike] = (), unblock_at: float | None = None,
                   work: Callable[[], Any] | None = None, gap: float = 0.05,
                   linger: float = 0.1, timeout: float = 5.0) -> Timeline:
    """Send a script of signals to a recording child and return the timeline.

    ``script`` is a list of steps; a step is a signal (``"USR1"``,
    ``"SIGUSR1"``, ``10`` or ``signal.SIGUSR1``), sent ``gap`` seconds after
    the step before, or a pair ``(signal, delay)`` sent ``delay`` seconds
    after it. The receiver records a handler run for every signal in
    ``catch`` (by default: every signal of the script that can be caught,
    except those left to their ``default`` action or ignored with
    ``ignore``). It blocks ``block`` from the start and unblocks them at
    ``unblock_at`` seconds, when told so by the sender. ``work``, if given,
    is called in the receiver as soon as it is ready (a long computation, a
    sleep), so you can see how it delays or survives the handlers.

    After the script and ``linger`` seconds the sender tells the receiver to
    end; one that does not end within a second (stuck, or stopped) is killed.

    >>> tl = record_signals(["USR1", ("USR2", 0.05), "TERM"])
    >>> [s for _, s in tl.handled]
    ['SIGUSR1', 'SIGUSR2', 'SIGTERM']
    >>> tl.status
    'exited with code 0'
    """
    steps = _parse_script(script, seconds("gap", gap))
    linger = seconds("linger", linger)
    timeout = seconds("timeout", timeout, above=True)
    default_set = set(to_signals(default, "default"))
    ignore_set = set(to_signals(ignore, "ignore"))
    block_set = set(to_signals(block, "block"))
    if catch is None:
        catch_set = {s for _, s in steps} | block_set
        catch_set -= UNCATCHABLE | default_set | ignore_set
    else:
        catch_set = set(to_signals(catch, "catch"))
    for what, chosen in (("caught", catch_set), ("ignored", ignore_set)):
        refused = sorted(chosen & UNCATCHABLE)
        if refused:
            raise ValueError(f"{', '.join(s.name for s in refused)} cannot be {what}: the "
                             "kernel always applies their default action (that is the point "
                             "of SIGKILL and SIGSTOP)")
    if unblock_at is not None:
        unblock_at = seconds("unblock_at", unblock_at)
        if not block_set:
            raise ValueError("unblock_at needs signals to unblock: pass block=[...]")
    if work is not None and not callable(work):
        raise TypeError(f"work must be a function of no arguments, got {work!r}")

    rec_r, rec_w = os.pipe()
    ctl_r, ctl_w = os.pipe()
    raw = bytearray()
    sends: list[Event] = []
    with start(_receiver, rec_r, rec_w, ctl_r, ctl_w, sorted(catch_set), sorted(ignore_set),
               sorted(block_set), work, timeout=timeout, name="receiver") as child:
        os.close(rec_w)
        os.close(ctl_r)
        try:
            deadline = time.monotonic() + timeout
            if not _read_until(rec_r, raw, deadline, lambda: len(raw) >= _RECORD.size):
                result = child.wait()
                raise ChildError(f"the receiver ended before it was ready: "
                                 f"{result.failure or result.status}", result.traceback)
            t0 = time.monotonic()
            actions: list[tuple[float, Any]] = list(steps)
            if unblock_at is not None:
                actions.append((unblock_at, "unblock"))
                actions.sort(key=lambda a: a[0])  # stable: at equal times, sends go first
            for when, action in actions:
                _read_until(rec_r, raw, t0 + when, lambda: False)
                if action == "unblock":
                    os.write(ctl_w, b"u")
                    continue
                now = time.monotonic()
                os.kill(child.pid, action)  # a receiver that died is a zombie still: no error
                sends.append(Event(now - t0, "sender", "sent", action.name))
            _read_until(rec_r, raw, time.monotonic() + linger, lambda: False)
            os.close(ctl_w)
            ctl_w = -1
            ended = _read_until(rec_r, raw, time.monotonic() + 1.0, None)
            result = child.wait() if ended else child.stop()
        finally:
            os.close(rec_r)
            if ctl_w >= 0:
                os.close(ctl_w)
    received = []
    for i in range(len(raw) // _RECORD.size):
        t, kind, signum = _RECORD.unpack_from(raw, i * _RECORD.size)
        if kind == _HANDLED:
            received.append(Event(t - t0, "receiver", "handled", signal_name(signum)))
        elif kind in _MARKS:
            received.append(Event(t - t0, "receiver", _MARKS[kind],
                                  signal_name(signum) if signum else ""))
    events = tuple(sorted(sends + received, key=lambda e: e.t))
    status = str(result.status)
    if not ended:
        status = f"{status} (it had not ended a second after the script; labkit killed it)"
    return Timeline(events, status, os.getpid(), child.pid,
                    tuple(s.name for s in sorted(block_set)))


def _read_until(fd: int, into: bytearray, deadline: float,
                done: Callable[[], bool] | None) -> bool:
    """Read records into ``into`` until ``done()``, EOF (done is None) or the deadline.

    Returns True when the condition (or EOF, for None) was met, False at the
    deadline or at an unexpected EOF.
    """
    while True:
        if done is not None and done():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return done is None
            into += chunk


_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f"]


def plot_timeline(timeline: Timeline, title: str = "Signals sent and handled",
                  ax: Any = None) -> Any:
    """Draw a timeline: sends on the sender's row, handler runs on the receiver's, one time axis.

    A triangle is a send, a dot a handler run, coloured by signal; marks at
    (almost) the same moment are stacked so that none hides another. Shaded
    spans show when the receiver was stopped (from a SIGSTOP to the next
    SIGCONT), blocked its signals, or was busy with its ``work``.
    """
    ax = axes(title, "time since the first step could start (ms)", "process", ax=ax,
              figsize=(8.0, 2.8))
    names: list[str] = []
    for e in timeline.events:
        if e.signal and e.what in ("sent", "handled") and e.signal not in names:
            names.append(e.signal)
    colour = {n: _COLOURS[i % len(_COLOURS)] for i, n in enumerate(names)}
    end = max([e.t for e in timeline.events] + [0.0]) * 1000 + 20
    y_send, y_recv = 1.0, 0.0

    def span(start: float, stop: float, label: str, **style: Any) -> None:
        ax.axvspan(start * 1000, stop * 1000, ymin=0.05, ymax=0.45, alpha=0.25, label=label,
                   **style)

    stop_at = None
    for t, sig in timeline.sent:
        if sig == "SIGSTOP" and stop_at is None:
            stop_at = t
        elif sig == "SIGCONT" and stop_at is not None:
            span(stop_at, t, "receiver stopped", color="grey")
            stop_at = None
    if stop_at is not None:
        span(stop_at, end / 1000, "receiver stopped", color="grey")
    if timeline.blocked:
        unblocked = [e.t for e in timeline.events if e.what == "unblocked"]
        span(0, unblocked[0] if unblocked else end / 1000,
             f"{', '.join(short_name(n) for n in timeline.blocked)} blocked", color="#d0a000",
             hatch="//", fill=False)
    work = [e.t for e in timeline.events if e.what.startswith("work")]
    if work:
        span(work[0], work[1] if len(work) > 1 else end / 1000, "receiver busy in its work",
             color="#9467bd")
    close = max(end, 100) * 0.012   # marks nearer than this would hide each other: stack them
    for who, y, marker, what in (("sender", y_send, "v", "sent"),
                                 ("receiver", y_recv, "o", "handled")):
        placed: list[float] = []
        points: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in names}
        for e in timeline.events:
            if e.who == who and e.what == what and e.signal in points:
                t = e.t * 1000
                stack = sum(1 for p in placed if abs(p - t) < close)
                placed.append(t)
                points[e.signal][0].append(t)
                points[e.signal][1].append(y + 0.16 * stack * (1 if who == "receiver" else -1))
        for n, (ts, ys) in points.items():
            if ts:
                ax.scatter(ts, ys, marker=marker, s=70, color=colour[n], edgecolors="black",
                           linewidths=0.5, zorder=3, label=f"{short_name(n)} {what}")
    for e in timeline.events:
        if e.what == "unblocked":
            ax.axvline(e.t * 1000, ymin=0.05, ymax=0.45, color="black", ls="--", lw=1)
            ax.annotate("unblock ", (e.t * 1000, y_recv + 0.4), fontsize=8, ha="right")
    ax.annotate(f"receiver {timeline.status}", (end, y_recv - 0.38), fontsize=8, ha="right",
                va="center")
    ax.set_yticks([y_recv, y_send], [f"receiver\npid {timeline.receiver_pid}",
                                     f"sender\npid {timeline.sender_pid}"])
    ax.set_ylim(-0.5, 1.5)
    ax.set_xlim(-10, end)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax


# --- coalescing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Coalescing:
    """How many of ``sent`` signals arrived, per run.

    ``delivered`` counts the kernel's deliveries (each time the process's
    low-level handler ran: Python notes every one on a wake-up pipe);
    ``handled`` counts the runs of the Python handler function, which can
    merge deliveries that come faster than Python checks for them.
    """

    signal: str
    sent: int
    delivered: list[int]
    handled: list[int]

    @property
    def trials(self) -> int:
        """How many times the signals were sent."""
        return len(self.delivered)


def _counting_receiver(ready: Callable[[], None], signum: int, ctl_r: int, ctl_w: int
                       ) -> tuple[int, int]:
    os.close(ctl_w)
    handled = 0

    def count(sig: int, frame: Any) -> None:
        nonlocal handled
        handled += 1

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)  # one byte per kernel delivery
    signal.signal(signum, count)
    ready()
    while os.read(ctl_r, 1):   # EOF: the sender has sent everything
        pass
    signal.pthread_sigmask(signal.SIG_BLOCK, {signum})  # handlers still due run here
    os.set_blocking(wake_r, False)
    delivered = 0
    try:
        while True:
            delivered += os.read(wake_r, 65536).count(bytes([signum]))
    except BlockingIOError:
        pass
    return delivered, handled


def coalescing(sent: int = 1000, trials: int = 5, sig: SignalLike = "SIGUSR1",
               timeout: float = 5.0) -> Coalescing:
    """Send ``sent`` signals as fast as possible to a counting child, in each of ``trials``.

    Standard signals do not queue: while one is pending, more of the same
    kind are merged into it. Real-time signals (``"SIGRTMIN"``) do queue.
    How many arrive depends on scheduling, so it varies from run to run.

    >>> c = coalescing(200, trials=2)
    >>> all(1 <= h <= d <= 200 for h, d in zip(c.handled, c.delivered))
    True
    """
    whole("sent", sent, 1, 100_000, "signals")
    whole("trials", trials, 1, 50, "trials")
    signum = to_signal(sig)
    if signum in UNCATCHABLE:
        raise ValueError(f"{signum.name} cannot be caught, so it cannot be counted")
    delivered, handled = [], []
    for _ in range(trials):
        ctl_r, ctl_w = os.pipe()
        try:
            with start_ready(_counting_receiver, int(signum), ctl_r, ctl_w, timeout=timeout,
                             name="counter") as child:
                os.close(ctl_r)
                ctl_r = -1
                for _ in range(sent):
                    os.kill(child.pid, signum)
                os.close(ctl_w)
                ctl_w = -1
                d, h = child.wait().value
        finally:
            for fd in (ctl_r, ctl_w):
                if fd >= 0:
                    os.close(fd)
        delivered.append(d)
        handled.append(h)
    return Coalescing(signum.name, sent, delivered, handled)


def plot_coalescing(result: Coalescing, title: str | None = None, ax: Any = None) -> Any:
    """Bars per trial: signals sent, delivered by the kernel, and handled by Python (log scale)."""
    title = title or f"{result.sent} x {result.signal} sent, trial after trial"
    ax = axes(title, "trial", "signals (log scale)", ax=ax)
    xs = list(range(1, result.trials + 1))
    width = 0.27
    ax.bar([x - width for x in xs], [result.sent] * result.trials, width, color="#bbbbbb",
           label="sent")
    ax.bar(xs, result.delivered, width, color="#1f77b4", label="delivered by the kernel")
    ax.bar([x + width for x in xs], result.handled, width, color="#ff7f0e",
           label="handled by Python")
    for x, d, h in zip(xs, result.delivered, result.handled, strict=False):
        ax.annotate(str(d), (x, d), ha="center", va="bottom", fontsize=8)
        ax.annotate(str(h), (x + width, h), ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(0.8, result.sent * 30)   # room for the legend above the bars
    ax.set_xticks(xs)
    ax.legend(fontsize=8)
    return ax


# --- stop and continue ---------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """A counting child sampled over time, stopped with SIGSTOP and continued with SIGCONT."""

    times: list[float]     # seconds since the child started counting
    counts: list[int]      # its count at each sample
    states: list[str]      # its process state at each sample (R, S, T)
    stopped_at: float      # when SIGSTOP was sent
    continued_at: float    # when SIGCONT was sent
    pid: int


def _count_forever(ready: Callable[[], None], shared: mmap.mmap) -> None:
    count = ctypes.c_int64.from_buffer(shared)  # one aligned 8-byte store per update
    ready()
    while True:
        count.value += 1
        time.sleep(0.001)   # one unit of "work" per millisecond or so


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def stop_and_continue(stop_at: float = 0.3, continue_at: float = 0.7, duration: float = 1.0,
                      interval: float = 0.01) -> Progress:
    """Watch a counting child; send it SIGSTOP at ``stop_at`` s and SIGCONT at ``continue_at`` s.

    The child counts units of work into memory it shares with the parent;
    the parent samples the count and the child's state every ``interval``.

    >>> p = stop_and_continue(0.1, 0.3, 0.4)
    >>> p.counts == sorted(p.counts)      # the count never goes back
    True
    """
    stop_at = seconds("stop_at", stop_at)
    continue_at = seconds("continue_at", continue_at)
    duration = seconds("duration", duration, above=True)
    interval = seconds("interval", interval, above=True)
    if not stop_at <= continue_at <= duration <= MAX_SCRIPT_SECONDS:
        raise ValueError(f"need stop_at <= continue_at <= duration <= {MAX_SCRIPT_SECONDS:g} s, "
                         f"got {stop_at}, {continue_at}, {duration}")
    shared = mmap.mmap(-1, 8)   # anonymous and shared: the child inherits it through fork
    # Read and written whole, as one aligned 8-byte word: struct copies byte by byte, and
    # a read in the middle of a copy can see the count go back (255 -> 0 -> 256).
    count = ctypes.c_int64.from_buffer(shared)
    times, counts, states = [], [], []
    try:
        with start_ready(_count_forever, shared, timeout=duration + 5, name="counter") as child:
            t0 = time.monotonic()
            sent_stop = sent_cont = False
            while (t := time.monotonic() - t0) < duration:
                if not sent_stop and t >= stop_at:
                    os.kill(child.pid, signal.SIGSTOP)
                    stop_at, sent_stop = t, True
                if not sent_cont and t >= continue_at:
                    os.kill(child.pid, signal.SIGCONT)
                    continue_at, sent_cont = t, True
                times.append(t)
                counts.append(count.value)
                states.append(_proc_state(child.pid))
                time.sleep(interval)
            pid = child.pid
            child.stop()
    finally:
        del count  # the mmap cannot close while a ctypes view holds it
        shared.close()
    return Progress(times, counts, states, stop_at, continue_at, pid)


def plot_progress(progress: Progress, title: str = "A counting child, stopped and continued",
                  ax: Any = None) -> Any:
    """Draw the count over time, with the stopped span shaded between SIGSTOP and SIGCONT."""
    ax = axes(title, "time (ms)", "units of work done", ax=ax)
    ms = [t * 1000 for t in progress.times]
    ax.plot(ms, progress.counts, color="#1f77b4", label="count (sampled by the parent)")
    stopped = [m for m, s in zip(ms, progress.states, strict=False) if s in "tT"]
    if stopped:
        ax.scatter(stopped, [c for c, s in zip(progress.counts, progress.states, strict=False) if s in "tT"],
                   s=8, color="#d62728", zorder=3, label="state T (stopped) in /proc")
    ax.axvspan(progress.stopped_at * 1000, progress.continued_at * 1000, color="grey",
               alpha=0.2, label="between SIGSTOP and SIGCONT")
    ax.legend(fontsize=8, loc="upper left")
    return ax


# --- replaying signals one at a time -------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """What a program printed and how it ended, when sent signals one at a time."""

    signals: list[str]
    outcomes: list[Settled]  # per signal, what :func:`send_and_settle` saw
    output: list[str]      # the lines the program printed
    status: str            # how it ended
    ended_by_itself: bool  # False if it was still running after the last signal


def replay(program: Callable[[Callable[[], None]], Any], signals: Sequence[SignalLike],
           timeout: float = 5.0) -> Replay:
    """Run ``program(ready)`` in a child and send it ``signals``, each once the last has settled.

    The program calls ``ready()`` once its handlers are in place. After the
    last signal the child gets a second to end by itself; then it is killed.

    >>> def echo(ready):
    ...     signal.signal(signal.SIGUSR1, lambda *_: print("usr1"))
    ...     ready()
    ...     signal.pause()
    >>> r = replay(echo, ["USR1"])
    >>> r.output, r.status
    (['usr1'], 'exited with code 0')
    """
    sigs = to_signals(signals, "signals")
    with start_ready(program, timeout=timeout, show=False, name="program") as child:
        try:  # a signal that arrives just before the program blocks would wait for the next
            wait_for_state(child.pid, sleeping=True, timeout=1.0)
        except LabTimeout:
            pass  # a program that never sleeps: send anyway
        outcomes = [send_and_settle(child.pid, s) for s in sigs]
        ended = wait_until(lambda: not child.running, 1.0, None, every=0.005)
        result = child.wait() if ended else child.stop()
    status = str(result.status)
    if not ended:
        status = "still running after the last signal (labkit then killed it)"
    return Replay([s.name for s in sigs], outcomes, result.stdout.splitlines(), status, ended)


# --- the puzzle of lesson 01 --------------------------------------------------------

GATE = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
PUZZLE_TARGET = ["hup", "usr2", "open", "usr1", "closed", "usr1", "usr2", "open", "bye"]


def gatekeeper(ready: Callable[[], None]) -> None:
    """Lesson 01's puzzle program: a child whose output depends on the signals it gets.

    Read its rules, predict, then check with :func:`replay`::

        replay(gatekeeper, ["SIGINT"]).output   # ['bye']

    It starts with the gate closed: SIGHUP, SIGUSR1 and SIGUSR2 blocked.
    SIGHUP, SIGUSR1, SIGUSR2: print "hup", "usr1" or "usr2".
    SIGTERM: toggle the gate. Closed -> unblock the three, then print "open";
             open -> block the three, then print "closed".
    SIGINT:  print "bye" and end with exit code 0.
    Every other signal keeps its default action.
    """
    is_open = False

    def say(signum: int, frame: object) -> None:
        print(signal.Signals(signum).name[3:].lower())

    def toggle(signum: int, frame: object) -> None:
        nonlocal is_open
        if is_open:
            signal.pthread_sigmask(signal.SIG_BLOCK, GATE)
            print("closed")
        else:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, GATE)
            print("open")
        is_open = not is_open

    def leave(signum: int, frame: object) -> None:
        print("bye")
        sys.exit(0)

    for s in GATE:
        signal.signal(s, say)
    signal.signal(signal.SIGTERM, toggle)
    signal.signal(signal.SIGINT, leave)
    signal.pthread_sigmask(signal.SIG_BLOCK, GATE)
    ready()
    while True:
        signal.pause()
