"""Plausible wrong answers to every exercise, one file per lesson (``NN_topic.py``).

Each file defines ``MUTANTS``, a list of :class:`Mutant`. A mutant is the
solution notebook with one mistake a student really makes: its ``source``
is run after the solution's own cells, so it only has to redefine the
function(s) it breaks. ``tests/test_mutants.py`` runs every mutant's checks
and requires that it loses points with a message matching ``fault``, a
regular expression naming what is actually wrong (not just "failed").
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

#: The fault of a child nobody waited for, however far it got when the function returned:
#: a zombie already, or (on a busy machine) still running, and then ended by the harness.
UNREAPED = r"(zombie|still running when the function returned).*nobody waited for it"


@dataclass(frozen=True)
class Mutant:
    """One wrong answer: the exercise it answers, a short name, its code, its fault."""

    exercise: str   # "00.describe_status"
    name: str       # "bit_arithmetic": what the student did, in a few words
    source: str     # code run after the solution's cells; redefines the broken function(s)
    fault: str      # regex (case-insensitive) a failed check's message must match
    hangs: bool = False  # the fault shows as calls that hang until stopped: the test stops
                         # them sooner (tests/test_mutants.py, HANG_TIMEOUT), not after 5 s


def all_mutants() -> list[Mutant]:
    """Every lesson's mutants, in lesson order."""
    found: list[Mutant] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name[:2].isdigit():
            found += importlib.import_module(f"{__name__}.{info.name}").MUTANTS
    return found
