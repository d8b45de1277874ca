"""Every lesson's checks: each solution passes, each untouched exercise is 'not done'.

Lessons, exercises and answer names come from the notebooks' own check cells, so a
new lesson is covered without touching this file. Each lesson's wrong answers are
tested in tests/test_checks_<topic>.py.
"""
from __future__ import annotations

import pytest
from helpers import ROOT, load_answers

from labkit.checking import NOT_DONE, PASSED, exercises, run_checks
from labkit.grade import answers_of

CASES = [(nb.stem, exercise, names)
         for nb in sorted(ROOT.glob("exercises/*.ipynb"))
         for exercise, names in answers_of(nb).items()]


def _answer(namespace: dict, names):
    return namespace[names] if isinstance(names, str) else tuple(namespace[n] for n in names)


@pytest.mark.parametrize("lesson, exercise, names", CASES, ids=[c[1] for c in CASES])
def test_the_solution_passes_every_check(lesson, exercise, names):
    answer = _answer(load_answers(f"solutions/{lesson}.ipynb"), names)
    results = run_checks(exercise, answer)
    assert [r.status for r in results] == [PASSED] * len(results), results


@pytest.mark.parametrize("lesson, exercise, names", CASES, ids=[c[1] for c in CASES])
def test_the_untouched_exercise_is_not_done(lesson, exercise, names):
    answer = _answer(load_answers(f"exercises/{lesson}.ipynb"), names)
    assert {r.status for r in run_checks(exercise, answer)} == {NOT_DONE}


def test_every_registered_exercise_has_a_check_cell_and_every_check_a_hint():
    assert {c[1] for c in CASES} == set(exercises())
    assert [(ex.id, c.name) for ex in exercises().values() for c in ex.checks if not c.hint] == []
