"""Where the processes of an experiment run: on one CPU, on several, or wherever.

Timings of processes that talk to each other depend on whether they share a
CPU (they take turns, a hand-off costs a few microseconds) or not (every
wake-up crosses CPUs). Experiments therefore take a ``pin``, one of
:data:`PLACEMENTS`, and report the placement in words; this module is the
one place that turns a ``pin`` into CPUs and words. Pinning uses
``os.sched_setaffinity``, which Linux has and macOS does not.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import NotSupportedHere

__all__ = ["PLACEMENTS", "Placement", "pin_to", "place"]

PLACEMENTS = ("same", "split", "auto", None)


@dataclass(frozen=True)
class Placement:
    """The CPU of each role (None: unpinned), and a sentence saying so."""

    cpus: tuple[int | None, ...]
    text: str


def _said(roles: Sequence[str], cpus: Sequence[int]) -> str:
    if len(set(cpus)) == 1:
        return f"{' and '.join(roles)} on CPU {cpus[0]}"
    return ", ".join(f"{role} on CPU {cpu}" for role, cpu in zip(roles, cpus, strict=True))


def place(pin: str | None, roles: Sequence[str] | int) -> Placement:
    """The CPU for each role (a sequence of names, or that many workers), and the words.

    ``pin`` is ``"same"`` (all on one CPU, so they can only take turns),
    ``"split"`` (each on its own CPU, round robin over the CPUs this process
    may use, the last role on the last CPU), ``None`` (the scheduler
    decides), or ``"auto"`` (``"split"`` where the system can pin and has
    two CPUs, else ``None``).

    >>> place(None, ("writer", "reader"))
    Placement(cpus=(None, None), text='unpinned')
    >>> p = place("same", 3)
    >>> len(set(p.cpus)), p.text.startswith("all 3 workers on CPU")
    (1, True)
    """
    if pin not in PLACEMENTS:
        raise ValueError(f"pin must be 'same' (all on one CPU), 'split' (each on its own "
                         f"CPU), None (the scheduler decides) or 'auto', got {pin!r}")
    count = roles if isinstance(roles, int) else len(roles)
    can_pin = hasattr(os, "sched_setaffinity")
    allowed = sorted(os.sched_getaffinity(0)) if can_pin else []
    if pin == "auto":
        pin = "split" if can_pin and len(allowed) >= 2 else None
    if pin is None:
        return Placement((None,) * count, "unpinned")
    if not can_pin:
        raise NotSupportedHere("this system cannot pin a process to a CPU (macOS has no "
                               "sched_setaffinity); use pin=None and let the scheduler decide")
    if pin == "split" and len(allowed) < 2:
        raise NotSupportedHere(f"pin='split' needs two CPUs, and this process may use only "
                               f"CPU {allowed[0]}; use pin='same'")
    cpus = ((allowed[-1],) * count if pin == "same"
            else tuple(allowed[(i - count) % len(allowed)] for i in range(count)))
    if isinstance(roles, int):
        shown = ", ".join(map(str, cpus[:8])) + (", ..." if count > 8 else "")
        text = (f"all {count} workers on CPU {cpus[0]}" if pin == "same"
                else f"worker i on CPU {shown}")
    else:
        text = _said(roles, cpus)
    return Placement(cpus, text)


def pin_to(cpu: int | None) -> None:
    """Run the calling process on ``cpu`` only (None: leave it where it may run)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
