"""Lesson 09: one process, many channels, and what modern Linux adds to IPC.

The notebook writes the event loops, the descriptor passing and the memfd itself; this
module holds what a student should not have to write: a measurement of what ``select``,
``poll`` and ``epoll`` cost against the number of idle descriptors (on real descriptors:
duplicates of one empty pipe, which the kernel must look at one by one), its plot, a
look at what a descriptor is and which seals it carries, and one place that says which
feature needs which kernel and Python (:func:`needs`).
"""
from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from typing import Any

from ._validate import whole
from .errors import NotSupportedHere

__all__ = ["FEATURES", "PollCost", "describe_fd", "needs", "plot_poll_cost", "poll_cost",
           "seals"]

# feature -> (what must exist, what it needs, in words)
FEATURES: dict[str, tuple[Any, str]] = {
    "epoll": (lambda: hasattr(select, "epoll"), "Linux (select.epoll)"),
    "send_fds": (lambda: hasattr(__import__("socket"), "send_fds"),
                 "Python 3.9+ on a Unix (socket.send_fds)"),
    "peercred": (lambda: hasattr(__import__("socket"), "SO_PEERCRED"),
                 "Linux (SO_PEERCRED; macOS has LOCAL_PEERCRED instead)"),
    "memfd": (lambda: hasattr(os, "memfd_create") and hasattr(__import__("fcntl"),
                                                              "F_ADD_SEALS"),
              "Linux 3.17+ and Python 3.8+ (os.memfd_create, fcntl.F_ADD_SEALS)"),
    "eventfd": (lambda: hasattr(os, "eventfd"), "Linux 2.6.22+ and Python 3.10+ (os.eventfd)"),
    "pidfd": (lambda: hasattr(os, "pidfd_open") and hasattr(__import__("signal"),
                                                            "pidfd_send_signal"),
              "Linux 5.3+ and Python 3.9+ (os.pidfd_open, signal.pidfd_send_signal)"),
    "splice": (lambda: hasattr(os, "splice"), "Linux 2.6.17+ and Python 3.10+ (os.splice)"),
}
FD_SETSIZE = 1024  # select() takes descriptors below this number only (glibc's fd_set)


def needs(feature: str) -> None:
    """Raise :class:`NotSupportedHere`, saying what is missing, unless ``feature`` works here.

    >>> needs("epoll")
    >>> needs("teleport")
    Traceback (most recent call last):
    ...
    ValueError: unknown feature 'teleport'; choose from epoll, send_fds, peercred, memfd, eventfd, pidfd, splice
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
    present, what = FEATURES[feature]
    if not present():
        raise NotSupportedHere(f"{feature} needs {what}; this is {sys.platform} with Python "
                               f"{sys.version.split()[0]}")


def describe_fd(fd: int) -> str:
    """What descriptor ``fd`` of this process refers to, as the kernel names it (Linux).

    >>> r, w = os.pipe()
    >>> describe_fd(r).startswith("pipe:")
    True
    >>> os.close(r); os.close(w)
    """
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        if not os.path.isdir("/proc/self/fd"):
            raise NotSupportedHere("describe_fd reads /proc/self/fd, which only Linux "
                                   "has") from None
        raise ValueError(f"descriptor {fd} is not open in this process") from None


_SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE", "F_SEAL_FUTURE_WRITE")


def seals(fd: int) -> list[str]:
    """The seals set on a memfd (``[]`` for none), by their ``fcntl`` names (Linux).

    >>> fd = os.memfd_create("demo", os.MFD_ALLOW_SEALING)
    >>> import fcntl
    >>> _ = fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW)
    >>> seals(fd)
    ['F_SEAL_GROW']
    >>> os.close(fd)
    """
    import fcntl

    needs("memfd")
    try:
        bits = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError as e:
        raise ValueError(f"descriptor {fd} carries no seals: only a memfd made with "
                         "MFD_ALLOW_SEALING (or a file of a sealing file system) has them"
                         ) from e
    return [name for name in _SEALS if hasattr(fcntl, name) and bits & getattr(fcntl, name)]


# --- what waiting on many descriptors costs -----------------------------------------------

MECHANISMS = ("select", "poll", "epoll")


@dataclass(frozen=True)
class PollCost:
    """Microseconds per call that finds the one ready descriptor among ``idle`` others.

    ``micros[m][j]`` is the median over ``trials`` for ``idle[j]`` idle descriptors, or
    ``None`` where the mechanism cannot take that many (select stops below FD_SETSIZE).
    """

    idle: list[int]
    trials: int
    micros: dict[str, list[float | None]]


def poll_cost(idle: tuple[int, ...] = (1, 16, 64, 256, 800), trials: int = 5,
              calls: int = 200) -> PollCost:
    """Time select, poll and epoll asked "who is ready?" with one ready descriptor among
    ``idle`` idle ones (duplicates of an empty pipe's read end), never waiting.

    select and poll hand the kernel the whole list at every call; epoll keeps the list in
    the kernel and hands back only what is ready.

    >>> r = poll_cost(idle=(1, 64), trials=1, calls=20)
    >>> sorted(r.micros), r.idle
    (['epoll', 'poll', 'select'], [1, 64])
    """
    needs("epoll")
    if isinstance(idle, (str, bytes)) or not isinstance(idle, (tuple, list)) or not idle:
        raise ValueError(f"idle must be a non-empty list of counts of idle descriptors, "
                         f"got {idle!r}")
    idle = tuple(whole("every count of idle descriptors", n, 1, 10_000) for n in idle)
    trials = whole("trials", trials, 1, 1000)
    calls = whole("calls", calls, 1, 100_000)
    micros: dict[str, list[float | None]] = {m: [] for m in MECHANISMS}
    ready_r, ready_w = os.pipe()
    quiet_r, quiet_w = os.pipe()
    try:
        os.write(ready_w, b"x")
        for n in idle:
            fds = [os.dup(quiet_r) for _ in range(n)]
            try:
                for m in MECHANISMS:
                    micros[m].append(_median_call(m, [*fds, ready_r], trials, calls))
            finally:
                for fd in fds:
                    os.close(fd)
    finally:
        for fd in (ready_r, ready_w, quiet_r, quiet_w):
            os.close(fd)
    return PollCost(list(idle), trials, micros)


def _median_call(mechanism: str, fds: list[int], trials: int, calls: int) -> float | None:
    """Median µs of one non-waiting call of ``mechanism`` over ``fds`` (one of them ready)."""
    if mechanism == "select" and max(fds) >= FD_SETSIZE:
        return None
    ep = select.epoll() if mechanism == "epoll" else None
    p = select.poll() if mechanism == "poll" else None
    for fd in fds:
        if ep is not None:
            ep.register(fd, select.EPOLLIN)
        if p is not None:
            p.register(fd, select.POLLIN)

    def ask() -> int:
        """How many descriptors are ready (one call, no waiting)."""
        if ep is not None:
            return len(ep.poll(0))
        if p is not None:
            return len(p.poll(0))
        return len(select.select(fds, [], [], 0)[0])

    try:
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            for _ in range(calls):
                ready = ask()
            times.append((time.perf_counter() - t0) / calls * 1e6)
            if ready != 1:
                raise AssertionError(f"{mechanism} saw {ready} ready descriptors, expected 1")
        return sorted(times)[len(times) // 2]
    finally:
        if ep is not None:
            ep.close()


def plot_poll_cost(result: PollCost, ax: Any = None) -> Any:
    """Time per call against the number of idle descriptors, one line per mechanism.

    >>> plot_poll_cost(poll_cost())   # doctest: +SKIP
    """
    from .display import axes

    ax = axes("Finding one ready descriptor among many idle ones",
              "idle descriptors (log scale)", "time per call (µs, log scale)", ax=ax)
    for m, style in zip(MECHANISMS, ("o-", "s-", "^-"), strict=True):
        xs = [n for n, t in zip(result.idle, result.micros[m], strict=True) if t is not None]
        ax.plot(xs, [t for t in result.micros[m] if t is not None], style, label=m)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(title=f"median of {result.trials}")
    return ax
