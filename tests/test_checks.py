"""Every lesson's checks: each solution passes, each untouched exercise is 'not done'.

Lessons, exercises and answer names come from the notebooks' own check cells, so a
new lesson is covered without touching this file. The checks run the grader's way:
one ``grade()`` batch per lesson, in the sandbox, with the solution and the untouched
exercise as its two submissions (so this is also every lesson graded end to end). On a
machine that cannot sandbox, they run here instead, exercise by exercise. Each lesson's
wrong answers are tested in tests/test_checks_<topic>.py and tests/mutants/.
"""
from __future__ import annotations

import shutil

import pytest
from helpers import ROOT, load_answers, sandbox_level

from labkit.checking import FAILED, NOT_DONE, NOT_RUN, PASSED, exercises, run_checks
from labkit.grade import answers_of, grade

LABS = sorted(nb.stem for nb in ROOT.glob("exercises/*.ipynb"))
ANSWERS = {lab: answers_of(ROOT / "exercises" / f"{lab}.ipynb") for lab in LABS}
SANDBOX, _ = sandbox_level()


def _statuses_here(lab: str, folder: str) -> list[dict]:
    """The checks of every exercise of ``lab`` run in this process on ``folder``'s notebook."""
    namespace = load_answers(f"{folder}/{lab}.ipynb")
    found = []
    for exercise, names in ANSWERS[lab].items():
        answer = namespace[names] if isinstance(names, str) else tuple(namespace[n] for n in names)
        found += [{"exercise": exercise, "check": r.check, "status": r.status,
                   "message": r.message} for r in run_checks(exercise, answer)]
    return found


@pytest.mark.parametrize("lab", LABS)
def test_the_solution_passes_every_check_and_the_untouched_exercise_is_not_done(lab, tmp_path):
    """Untouched, a debugging exercise's broken program fails its checks (scoring nothing);
    every other exercise is "not done"."""
    if SANDBOX:
        subs = tmp_path / "subs"
        subs.mkdir()
        shutil.copy(ROOT / "solutions" / f"{lab}.ipynb", subs / "solution.ipynb")
        shutil.copy(ROOT / "exercises" / f"{lab}.ipynb", subs / "exercise.ipynb")
        rows = {r.student: r for r in grade(lab, subs, tmp_path / "out", jobs=2)}
        solution, untouched = rows["solution"].checks, rows["exercise"].checks
        assert rows["solution"].score == rows["solution"].max_score > 0, "\n".join(
            [*rows["solution"].notes, *(f"{c['exercise']}: {c['check']}: {c['message']}"
                                        for c in solution if c["status"] != PASSED)])
        assert rows["exercise"].score == 0, rows["exercise"].notes
    else:
        solution, untouched = _statuses_here(lab, "solutions"), _statuses_here(lab, "exercises")
    assert [c for c in solution if c["status"] != PASSED] == []
    # A debugging exercise ships its broken program: untouched, it fails, it is never "not done".
    debug = {ex for ex, e in exercises(lab).items() if e.kind == "debug"}
    assert [c for c in untouched if c["exercise"] not in debug and c["status"] != NOT_DONE] == []
    assert [c for c in untouched if c["exercise"] in debug
            and c["status"] not in (FAILED, NOT_RUN)] == []
    assert {c["exercise"] for c in untouched if c["status"] == FAILED} >= debug
    assert len(untouched) == len(solution)
    assert {c["exercise"] for c in solution} == set(ANSWERS[lab])


def test_every_registered_exercise_has_a_check_cell_and_every_check_a_hint():
    assert {ex for answers in ANSWERS.values() for ex in answers} == set(exercises())
    assert [(ex.id, c.name) for ex in exercises().values() for c in ex.checks if not c.hint] == []
