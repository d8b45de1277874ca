"""labkit new-exercise: a scaffolded exercise releases, passes its checks and has mutants."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest
from helpers import ROOT

from labkit.cli import main
from labkit.errors import LabError
from labkit.scaffold import new_exercise


@pytest.fixture
def course(tmp_path):
    root = tmp_path / "course"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "__pycache__", ".hub", "artifacts", "*.egg-info"))
    return root


def _python(root, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    env.pop("LABKIT_COURSE", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=root,
                          env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_scaffolded_exercise_releases_passes_and_its_mutants_fail(course, capsys):
    assert main(["new-exercise", "04", "04.count_twice", "--title", "Count twice",
                 "--root", str(course)]) == 0
    out = capsys.readouterr().out
    for path in ("solutions/04_data_races.ipynb", "labkit/checks/race.py",
                 "labkit/course.toml", "tests/mutants/04_data_races.py",
                 "tests/test_checks_race.py"):
        assert f"{path}: 04.count_twice added" in out
    nb = nbformat.read(course / "solutions" / "04_data_races.ipynb", as_version=4)
    answer = next(c for c in nb.cells if "def count_twice(" in c.source)
    assert answer.metadata["tags"] == ["answer"]
    done = _python(course, """
        import re
        from labkit.cli import main
        from labkit.checking import run_checks, PASSED, NOT_DONE
        from helpers import load_answers
        from mutants import all_mutants
        assert main(["release"]) == 0 and main(["release", "--check"]) == 0
        solved = run_checks("04.count_twice", load_answers("solutions/04_data_races.ipynb")["count_twice"])
        assert [r.status for r in solved] == [PASSED], solved
        todo = run_checks("04.count_twice", load_answers("exercises/04_data_races.ipynb")["count_twice"])
        assert {r.status for r in todo} == {NOT_DONE}, todo
        mine = [m for m in all_mutants() if m.exercise == "04.count_twice"]
        assert len(mine) == 4
        for m in mine:
            namespace = {}
            exec(m.source, namespace)
            failed = [r for r in run_checks(m.exercise, namespace["count_twice"]) if not r.passed]
            assert failed and re.search(m.fault, failed[0].message, re.I), (m.name, failed)
        print("scaffold ok")
    """)
    assert done.returncode == 0 and "scaffold ok" in done.stdout, done.stderr[-3000:]


@pytest.mark.parametrize("exercise, problem", [
    ("04.CountTwice", "snake_case"), ("05.count_twice", "like 04.word_count"),
    ("04.racy_counter", "exists already"),
])
def test_bad_or_taken_ids_are_refused(course, exercise, problem):
    with pytest.raises(LabError, match=problem):
        new_exercise(course, "04", exercise)
