"""Checking the numbers a student passes in, with errors that name the argument and its range.

>>> whole("workers", 3, 1, 64, "workers")
3
>>> seconds("timeout", 2, 0.1, 600)
2.0
>>> seconds("delay", 0.5)
0.5
>>> whole("workers", 0, 1, 64, "workers")
Traceback (most recent call last):
...
ValueError: workers must be a whole number of workers from 1 to 64, got 0
"""
from __future__ import annotations

import math
from typing import Any


def whole(name: str, value: Any, low: int, high: int | None, unit: str = "",
          note: str = "") -> int:
    """``value`` if it is an int (not a bool) from ``low`` to ``high`` (None: no upper
    bound), else a ``ValueError``; ``note`` adds what else limits it.

    >>> whole("size", 0, 1, None, "bytes")
    Traceback (most recent call last):
    ...
    ValueError: size must be a whole number of bytes > 0, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        what = f" of {unit}" if unit else ""
        bound = (f"from {low} to {high}" if high is not None
                 else "> 0" if low == 1 else f">= {low}")
        extra = f" ({note})" if note else ""
        raise ValueError(f"{name} must be a whole number{what} {bound}{extra}, got {value!r}")
    return value


A_DAY = 86400.0  # the longest wait labkit accepts: longer is a mistake (and overflows timers)


def seconds(name: str, value: Any, low: float = 0.0, high: float = A_DAY, *,
            above: bool = False) -> float:
    """``value`` as a float if it is a finite number of seconds in range, else a ``ValueError``.

    The range is ``low`` to ``high``, both allowed, or more than ``low`` with
    ``above=True`` (a timeout of 0 s is never what was meant).

    >>> seconds("timeout", 0, above=True)
    Traceback (most recent call last):
    ...
    ValueError: timeout must be a number of seconds > 0 and at most 86400 (a day), got 0
    >>> seconds("delay", -1, high=5)
    Traceback (most recent call last):
    ...
    ValueError: delay must be a number of seconds from 0 to 5, got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and (value > low if above else value >= low)
            and value <= high):
        if high == A_DAY:
            bound = f"{'>' if above else '>='} {low:g} and at most {high:g} (a day)"
        else:
            bound = f"{'above' if above else 'from'} {low:g} {'and at most' if above else 'to'}"\
                    f" {high:g}"
        raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}")
    return float(value)


PID_MAX = 4_194_304  # Linux's largest pid_max


def pid(value: Any) -> int:
    """``value`` if it can name one process, else a ``ValueError`` saying what can.

    >>> pid(-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: pid must be a process id, a whole number from 1 to 4194304 (...), got -1
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PID_MAX:
        raise ValueError(f"pid must be a process id, a whole number from 1 to {PID_MAX} "
                         f"(such as child.pid or os.getpid()), got {value!r}")
    return value
