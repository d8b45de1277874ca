"""The course config: points come from a file the instructor edits, and it matches the checks."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import nbformat
import pytest
from helpers import ROOT

from labkit import course
from labkit.checking import Exercise, exercises, run_checks
from labkit.cli import main
from labkit.course import Course, LatePolicy, Line, catalogue, current, describe, problems
from labkit.errors import LabError
from labkit.release import problems as release_problems


def test_every_check_has_points_in_the_config_and_the_config_names_no_unknown_check():
    checks = {e: [c.name for c in ex.checks] for e, ex in exercises().items()}
    assert problems(current(), checks) == []
    assert set(current().exercise_minutes) == set(checks)
    assert {line.split(".")[0] for line in checks} == {
        stem.split("_")[0] for stem in current().lesson_minutes}


@pytest.fixture
def edited_config(tmp_path, monkeypatch):
    """A copy of the course config in use, with 00.exit_code's first check worth 7."""
    copy = tmp_path / "course.toml"
    first = exercises("00")["00.exit_code"].checks[0].name
    text = course.config_path().read_text()
    assert f'"{first}" = 1\n' in text
    copy.write_text(text.replace(f'"{first}" = 1\n', f'"{first}" = 7\n'))
    monkeypatch.setenv("LABKIT_COURSE", str(copy))
    return copy


def test_points_come_from_the_config_not_the_code(edited_config):
    assert exercises("00")["00.exit_code"].max_points == 11
    results = run_checks("00.exit_code", None)
    assert results[0].max_points == 7 and sum(r.max_points for r in results) == 11


def test_a_check_missing_from_the_config_is_reported_and_grading_refuses(edited_config):
    text = edited_config.read_text()
    edited_config.write_text(text.replace('"0 and 255, the ends of the range, come back too"',
                                          '"0 and 256"'))
    found = problems(current(), {"00.exit_code": [c.name for c in
                                                  exercises("00")["00.exit_code"].checks]})
    assert "00.exit_code: the check '0 and 255, the ends of the range, come back too' has no " \
           "points in the course config" in found
    assert "00.exit_code: the course config gives points to '0 and 256', which is not a check" \
           in found
    with pytest.raises(LabError, match="does not match the checks"):
        course.require_complete(exercises("00"))


@pytest.mark.parametrize("toml, problem", [
    ('[exercises."00.x".points]\n"a" = -1\n', "points for 'a' must be a number >= 0, got -1"),
    ('[exercises."00.x".points]\n"a" = "two"\n', "must be a number >= 0, got 'two'"),
    ('[lessons."00_x"]\ndeadline = 2027-01-18T23:59:00\n', "with its zone"),
    ("[late]\npenalty_per_day = 10\n", "fraction of the score"),
    ("[late\n", "cannot read the course config"),
])
def test_a_broken_config_is_refused_naming_the_key(tmp_path, toml, problem):
    path = tmp_path / "course.toml"
    path.write_text(toml)
    with pytest.raises(LabError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Course.load(path)


def test_deadlines_are_read_in_utc_and_the_late_policy_counts_started_days(tmp_path):
    path = tmp_path / "course.toml"
    path.write_text('[late]\ngrace_minutes = 10\npenalty_per_day = 0.25\nmax_days = 2\n'
                    '[lessons."00_processes"]\ndeadline = 2027-01-18T23:59:00+01:00\n')
    c = Course.load(path)
    due = c.deadline("00_processes")
    assert due == datetime(2027, 1, 18, 22, 59, tzinfo=timezone.utc)
    at = lambda h, m=0: datetime(2027, 1, 18, h, m, tzinfo=timezone.utc)  # noqa: E731
    assert c.late.days_late(at(23, 5), due) == 0                 # inside the grace period
    assert c.late.fraction_lost(c.late.days_late(at(23, 10), due)) == 0.25
    assert c.late.fraction_lost(1.5) == 0.5 and c.late.fraction_lost(2.01) == 1.0
    assert LatePolicy().fraction_lost(30) == 0.0                 # no policy: nothing lost


def test_labkit_exercises_lists_checks_with_points_kind_time_and_totals(capsys):
    assert main(["exercises", "00"]) == 0
    out = capsys.readouterr().out
    lines = catalogue("00")
    count = len({x.exercise for x in lines})
    assert out.startswith(f"00_processes: {count} exercises, {sum(x.points for x in lines):g} "
                          "points")
    assert "  00.exit_code  [write] Return a value through the exit status: 5 points, " in out
    assert "       1  auto   0 and 255, the ends of the range, come back too" in out
    assert out.rstrip().splitlines()[-1].startswith(f"total: 1 lesson(s), {count} exercises (")
    assert main(["exercises"]) == 0
    every = catalogue()
    lessons, exercises = len({x.lesson for x in every}), len({x.exercise for x in every})
    assert lessons >= 9 and exercises >= 34  # lessons 00 to 08
    out = capsys.readouterr().out
    assert f"total: {lessons} lesson(s), {exercises} exercises (" in out
    assert (f"with raw calls), {len(every)} checks, "
            f"{sum(x.points for x in every):g} points") in out
    kinds = {x.exercise: x.exercise_kind for x in every}
    for kind in set(kinds.values()):
        assert f"{sum(k == kind for k in kinds.values())} {kind}" in out


def test_an_exercise_kind_outside_the_four_is_refused():
    with pytest.raises(ValueError, match="kind 'essay' is not one of write, debug, puzzle"):
        Exercise("99.nothing", "Not an exercise", kind="essay")


def test_the_listing_names_each_exercise_kind_and_its_raw_calls():
    line = Line("03_shared_memory", "03.x", "Map it yourself", "one check", "auto", 1, 10,
                "debug", ("mmap", "os.fork"))
    text = describe([line])
    assert "  03.x  [debug, raw calls: mmap, os.fork] Map it yourself: 1 points" in text
    assert "(1 debug; 1 with raw calls)" in text


def test_written_answers_are_listed_as_manual_items_with_their_worth(tmp_path, monkeypatch):
    path = tmp_path / "course.toml"
    path.write_text(course.config_path().read_text().replace(
        '[lessons."00_processes"]\n', '[lessons."00_processes"]\nwritten = { c015 = 2 }\n'))
    monkeypatch.setenv("LABKIT_COURSE", str(path))
    manual = [(x.exercise, x.check, x.kind, x.points) for x in catalogue("00")
              if x.kind == "manual"]
    assert manual == [("00.written", "the answer in Markdown cell c015", "manual", 2)]


def test_labkit_exercises_refuses_an_unknown_lesson(capsys):
    assert main(["exercises", "42"]) == 2
    assert "no exercises for lesson '42'; lessons are: 00_processes" in capsys.readouterr().err


def test_release_check_fails_on_a_check_cell_with_an_unknown_exercise_id(tmp_path, capsys):
    for folder in ("solutions", "exercises"):
        (tmp_path / folder).mkdir()
        shutil.copy(ROOT / folder / "00_processes.ipynb", tmp_path / folder)
    path = tmp_path / "solutions" / "00_processes.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace('"00.reap_all"', '"00.reap_al"')
    nbformat.write(nb, path)
    found = release_problems(tmp_path)
    assert any("runs '00.reap_al', which has no checks" in p for p in found)
    assert any("00.reap_all has checks but no check cell" in p for p in found)
    assert main(["release", "--check", "--root", str(tmp_path)]) == 1
    assert "nothing released" in capsys.readouterr().err
    assert release_problems(ROOT) == []
