"""Interleavings, step by step: lesson 04's model, its plots and its explorer, by one name.

A real race happens in nanoseconds and never the same way twice, so it cannot
be stepped through. The model can (:mod:`labkit.interleave_model`): each
process runs a tiny program of ``load``, ``add``, ``store`` (and
``acquire``/``release`` of named locks), and a *schedule* says which process
takes the next step. :mod:`labkit.interleave_plots` draws its outcomes, and
:mod:`labkit.interleave_widget` puts it behind buttons. The lessons use all
three through this module: ``from labkit import interleave``.

>>> run(counter(), "0011 01").value()
1
"""
from __future__ import annotations

from .errors import ScheduleError, TooManyStates
from .interleave_model import (
    MAX_LISTED,
    MAX_STATES,
    MAX_WORKERS,
    OPS,
    Instr,
    Outcomes,
    State,
    System,
    Trace,
    counter,
    locked_counter,
    outcomes,
    parse_program,
    parse_schedule,
    philosophers,
    run,
    sample,
    schedules,
    two_locks,
)
from .interleave_plots import plot_model_vs_real, plot_outcomes
from .interleave_widget import Explorer, explore

__all__ = [
    "MAX_LISTED",
    "MAX_STATES",
    "MAX_WORKERS",
    "OPS",
    "Explorer",
    "Instr",
    "Outcomes",
    "ScheduleError",
    "State",
    "System",
    "TooManyStates",
    "Trace",
    "counter",
    "explore",
    "locked_counter",
    "outcomes",
    "parse_program",
    "parse_schedule",
    "philosophers",
    "plot_model_vs_real",
    "plot_outcomes",
    "run",
    "sample",
    "schedules",
    "two_locks",
]
