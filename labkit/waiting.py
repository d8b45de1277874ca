"""Waiting for something another process does, with a deadline and a message for people.

Lab code often has to wait for a condition it cannot be told about (a name
appearing in ``/dev/shm``, a child reaching a state, a counter moving). Each
such wait is :func:`wait_until`: it asks, sleeps a little longer each time
(1 ms up to ``every``), and gives up at the deadline with a
:class:`~labkit.errors.LabTimeout` saying what did not happen. Code that
waits in its own way (``select``, ``sem.acquire``) takes a :class:`Deadline`
and asks it how long is left. Both use the monotonic clock: a wall-clock
change never cuts a wait short or makes it endless.

A loaded machine is slow, not wrong: a limit on other processes' work can be
stretched by the time they spent waiting for a CPU (:func:`cpu_wait`), up to
``SLACK_LIMIT`` times the limit (:func:`overdue`). A process that sleeps or
blocks gets nothing, and neither does one spinning on an idle machine.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from ._validate import seconds
from .errors import LabTimeout

__all__ = ["SLACK_LIMIT", "Deadline", "cpu_wait", "overdue", "wait_until"]

SLACK_LIMIT = 3.0  # a limit stretched for a loaded machine ends at this many times its length

T = TypeVar("T")


class Deadline:
    """A moment ``timeout`` seconds from now.

    >>> d = Deadline(5)
    >>> 0 < d.left() <= 5, d.passed
    (True, False)
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = seconds("timeout", timeout)
        self.at = time.monotonic() + self.timeout

    def left(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        """True once the moment has come."""
        return time.monotonic() >= self.at


def wait_until(ready: Callable[[], T], timeout: float,
               message: str | Callable[[], str] | None, every: float = 0.05) -> T:
    """Call ``ready()`` until it returns something true, and return that.

    After ``timeout`` seconds raise :class:`~labkit.errors.LabTimeout` with
    ``message`` (or what ``message()`` returns, to describe the state at
    that moment), or, when ``message`` is None (a best-effort wait), return
    ``ready()``'s last, false answer. ``ready`` is asked once more at the
    deadline; between two questions it sleeps 1 ms, doubling up to ``every``.

    >>> wait_until(lambda: 42, 1.0, "the answer never came")
    42
    >>> wait_until(lambda: 0, 0.01, None)
    0
    >>> wait_until(lambda: None, 0.01, "the segment never appeared")
    Traceback (most recent call last):
    ...
    labkit.errors.LabTimeout: the segment never appeared (waited 0.01 s)
    """
    deadline = Deadline(timeout)
    pause = min(0.001, every)
    while True:
        value = ready()
        if value:
            return value
        if deadline.passed:
            if message is None:
                return value
            text = message() if callable(message) else message
            raise LabTimeout(f"{text} (waited {deadline.timeout:g} s)")
        time.sleep(min(pause, deadline.left()))
        pause = min(pause * 2, every)


def cpu_wait(pids: Iterable[int]) -> float:
    """Seconds the processes ``pids``, and the live processes they started, have spent
    ready to run but waiting for a CPU (Linux's ``/proc/PID/schedstat``; 0 where there is
    none, and nothing for a process that has ended).

    >>> cpu_wait([]) == 0.0
    True
    """
    import psutil

    waited = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(pid)
            for p in [top, *top.children(recursive=True)]:
                with contextlib.suppress(OSError, ValueError, IndexError), \
                        open(f"/proc/{p.pid}/schedstat") as f:
                    waited += int(f.read().split()[1])
    return waited / 1e9


def overdue(started: float, limit: float, waited: Callable[[], float]) -> bool:
    """Whether work begun at ``started`` (``time.monotonic()``) has overrun ``limit``
    seconds, when the limit is stretched by ``waited()``, the seconds the work waited for a
    CPU since it began, up to ``SLACK_LIMIT`` times ``limit``. ``waited`` is asked only
    once the plain limit has passed.

    >>> now = time.monotonic()
    >>> overdue(now, 5.0, lambda: 0.0), overdue(now - 6, 5.0, lambda: 0.0)
    (False, True)
    >>> overdue(now - 6, 5.0, lambda: 2.0), overdue(now - 16, 5.0, lambda: 20.0)
    (False, True)
    """
    late = time.monotonic() - started - limit
    return late >= 0 and (late >= (SLACK_LIMIT - 1) * limit or late >= waited())
