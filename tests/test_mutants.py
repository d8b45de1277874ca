"""Every exercise's checks reject its mutants, each with a message naming the fault.

The mutants live in ``tests/mutants/NN_topic.py``. At the end of the run the
mutation score of each exercise (mutants killed / mutants tried, from ``KILLED`` and
``TRIED``, added up over the workers) is printed by ``tests/conftest.py``.
Hints are held to their promise too: they nudge, and never contain a line of
the solution's code.
"""
from __future__ import annotations

import re
from collections import Counter

import nbformat
import pytest
from helpers import ROOT, load_answers
from mutants import Mutant, all_mutants

from labkit.checking import PASSED, CheckResult, exercises, run_checks
from labkit.grade import answers_of

MUTANTS = all_mutants()
LESSONS = {nb.stem.split("_")[0]: nb.stem for nb in ROOT.glob("solutions/*.ipynb")}
ANSWERS = {ex: names for nb in ROOT.glob("exercises/*.ipynb")
           for ex, names in answers_of(nb).items()}
MINIMUM = 4  # mutants per exercise
# A hanging mutant's checks stop its calls after this many seconds instead of CALL_TIMEOUT:
# what they diagnose (a process blocked on a full pipe, a FIFO, a missing end of file) is
# there within milliseconds of the start.
HANG_TIMEOUT = 2.5
KILLED: Counter[str] = Counter()
TRIED: Counter[str] = Counter()


def _answer(mutant: Mutant):
    lesson = LESSONS[mutant.exercise.split(".")[0]]
    namespace = load_answers(f"solutions/{lesson}.ipynb")
    exec(compile(mutant.source, f"<mutant {mutant.exercise}:{mutant.name}>", "exec"), namespace)
    names = ANSWERS[mutant.exercise]
    return namespace[names] if isinstance(names, str) else tuple(namespace[n] for n in names)


def _said(result: CheckResult) -> str:
    return f"{result.check}: {result.message}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m.exercise}:{m.name}" for m in MUTANTS])
def test_the_mutant_loses_points_for_its_fault(mutant: Mutant, check_timeout):
    TRIED[mutant.exercise] += 1
    if mutant.hangs:
        check_timeout(HANG_TIMEOUT)

    def names_the_fault(r: CheckResult) -> bool:
        return r.status != PASSED and bool(re.search(mutant.fault, _said(r), re.IGNORECASE))

    # The checks after the one that names the fault are not run: they would prove nothing more.
    results = run_checks(mutant.exercise, _answer(mutant), until=names_the_fault)
    lost = [r for r in results if r.status != PASSED]
    assert lost, f"{mutant.name} passed every check of {mutant.exercise}"
    messages = [_said(r) for r in lost]
    assert any(names_the_fault(r) for r in lost), (
        f"{mutant.name} lost points, but no message names its fault /{mutant.fault}/:\n"
        + "\n".join(messages))
    KILLED[mutant.exercise] += 1


def test_every_exercise_has_enough_mutants():
    counts = Counter(m.exercise for m in MUTANTS)
    assert {m.exercise for m in MUTANTS} <= set(exercises()), "a mutant of no exercise"
    short = {ex: counts[ex] for ex in exercises() if counts[ex] < MINIMUM}
    assert short == {}, f"exercises with fewer than {MINIMUM} mutants"
    names = Counter((m.exercise, m.name) for m in MUTANTS)
    assert [k for k, n in names.items() if n > 1] == [], "two mutants with one name"


def _solution_lines(lesson: str) -> set[str]:
    """Lines of code in the solution's answer cells long enough to give something away."""
    nb = nbformat.read(ROOT / "solutions" / f"{lesson}.ipynb", as_version=4)
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and "answer" in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                code = line.split("#")[0].strip()
                if len(code) >= 12 and not code.startswith(("def ", "return ", "raise ")):
                    lines.add(code)
    return lines


@pytest.mark.parametrize("lesson", sorted(LESSONS.values()))
def test_no_hint_contains_solution_code(lesson: str):
    code = _solution_lines(lesson)
    found = [(ex.id, c.name, line) for ex in exercises(lesson).values() for c in ex.checks
             for line in code if line in f"{c.hint}\n{c.concept}"]
    assert found == []
