"""Hidden checks: the instructor's own, run at grading, never in the student's copy."""
from __future__ import annotations

import shutil

import pytest
from helpers import ROOT, public_points, sandbox_level

from labkit import checking
from labkit.checking import check, exercises, load_hidden, run_checks
from labkit.course import catalogue, current, require_complete
from labkit.errors import LabError
from labkit.student_build import build_student, student_config

HIDDEN = '''
from labkit.checking import call, exercise, expect

EXIT = exercise("00.exit_code")


def _three():
    return 3


@EXIT.check("exit code 3 comes back", hint="Any code from 0 to 255 must come back.")
def _(answer):
    got = call(answer, _three).value
    expect(got == 3, f"for a function returning 3 you returned {got!r}")
'''

PRICED = '\n[exercises."00.exit_code".hidden]\n"exit code 3 comes back" = 2\n'


@pytest.fixture
def restored():
    """Whatever the test registers (hidden checks) is removed afterwards."""
    saved = {k: list(ex.checks) for k, ex in exercises().items()}
    loaded = dict(checking._HIDDEN_LOADED)
    yield
    for k, ex in exercises().items():
        ex.checks[:] = saved[k]
    checking._HIDDEN_LOADED.clear()
    checking._HIDDEN_LOADED.update(loaded)


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A copy of the course config that prices the hidden check."""
    path = tmp_path / "course.toml"
    path.write_text((ROOT / "labkit" / "course.toml").read_text() + PRICED)
    monkeypatch.setenv("LABKIT_COURSE", str(path))
    return path


def test_a_hidden_check_joins_its_exercise_marked_hidden_with_its_points(restored, config):
    load_hidden({"/instructor/hidden_checks/extra.py": HIDDEN})
    ex = exercises("00")["00.exit_code"]
    assert [c.hidden for c in ex.checks] == [False] * 5 + [True]
    assert ex.checks[-1].points == 2 and ex.max_points == 7
    require_complete(exercises("00"))
    hidden = [(x.check, x.points) for x in catalogue("00") if x.kind == "hidden"]
    assert hidden == [("exit code 3 comes back", 2)]
    results = run_checks("00.exit_code", None)
    assert results[-1].check == "exit code 3 comes back" and results[-1].max_points == 2


def test_a_hidden_check_without_points_is_refused_once_loaded(restored, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_COURSE", str(ROOT / "labkit" / "course.toml"))
    require_complete(exercises("00"))
    load_hidden({"/instructor/hidden_checks/extra.py": HIDDEN})
    with pytest.raises(LabError, match="'exit code 3 comes back' has no hidden points"):
        require_complete(exercises("00"))


def test_students_see_how_many_more_checks_grading_runs_not_which(config, tmp_path,
                                                                 monkeypatch):
    student = tmp_path / "student.toml"
    student.write_text(student_config(config))
    text = student.read_text()
    assert "exit code 3 comes back" not in text
    assert '[exercises."00.exit_code"]\nhidden_checks = 1\nhidden_points = 2\n' in text
    monkeypatch.setenv("LABKIT_COURSE", str(student))
    assert current().hidden("00.exit_code") == (1, 2)
    shown = repr(check("00.exit_code", None))
    assert "1 more check(s), worth 2 points, run when your work is graded" in shown
    assert [(x.exercise, x.check, x.points) for x in catalogue("00") if x.kind == "hidden"] \
        == [("00.exit_code", "1 check(s) run only at grading", 2)]


USABLE, HOW = sandbox_level()


@pytest.mark.skipif(not USABLE, reason=HOW)
def test_grading_runs_the_hidden_checks_the_notebook_never_saw(restored, config, tmp_path):
    from labkit.grade import grade

    root = tmp_path / "course"
    for folder in ("solutions", "exercises"):
        (root / folder).mkdir(parents=True)
        shutil.copy(ROOT / folder / "00_processes.ipynb", root / folder)
    (root / "hidden_checks").mkdir()
    (root / "hidden_checks" / "processes.py").write_text(HIDDEN)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "solutions" / "00_processes.ipynb", subs / "solved.ipynb")
    shutil.copy(ROOT / "exercises" / "00_processes.ipynb", subs / "unsolved.ipynb")
    public = public_points("00")
    rows = {r.student: r for r in grade("00", subs, tmp_path / "out", jobs=2, root=root)}
    assert (rows["solved"].score, rows["solved"].max_score) == (public + 2, public + 2)
    hidden = [c for c in rows["unsolved"].checks if c["check"] == "exit code 3 comes back"]
    assert hidden and hidden[0]["status"] == "not done" and rows["unsolved"].score == 0


def test_the_student_build_has_no_hidden_checks_folder_or_names(config, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", "tests", "benchmarks", ".hub", "artifacts"))
    (root / "hidden_checks").mkdir()
    (root / "hidden_checks" / "processes.py").write_text(HIDDEN)
    with open(root / "labkit" / "course.toml", "a") as f:
        f.write(PRICED)
    out = tmp_path / "student"
    build_student(root, out)
    assert not (out / "hidden_checks").exists()
    assert not [p for p in out.rglob("*") if p.is_file() and "exit code 3 comes back" in
                p.read_text(errors="replace")]
    assert "hidden_checks = 1" in (out / "labkit" / "course.toml").read_text()
