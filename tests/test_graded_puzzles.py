"""Graded puzzles: each student gets a puzzle of their own and is graded on it, never on a
name the notebook chose.

The seeds are tested here without processes; the checks run on real processes, outside
the sandbox for one student at a time (:func:`grade_as`, as the sandbox calls it) and
inside it for a whole batch graded by ``labkit grade`` with a roster.
"""
from __future__ import annotations

import csv
import itertools
import re

import nbformat
import pytest
from helpers import ROOT, load_answers, sandbox_level

from labkit.checking import PASSED, run_checks
from labkit.errors import LabError
from labkit.grade import grade
from labkit.puzzle_student import GRADED, grade_as, my_puzzle, puzzle_of, seed_of, student

IDS = [f"s{n}" for n in range(1000, 1200)]


@pytest.fixture(autouse=True)
def _notebook_user():
    """Every test starts and ends as a notebook does: not grading anyone."""
    grade_as(None)
    yield
    grade_as(None)


def _answer(exercise: str, name: str) -> tuple[int, list[str]] | str | list[str]:
    """``name``'s right answer, in the shape the exercise's answer function returns."""
    answer = puzzle_of(exercise, name).puzzle.answer
    if exercise == "00.fork_puzzle":
        count, *letters = answer.split()
        return int(count), letters
    if exercise == "02.pipes_puzzle":
        return [] if answer == "none" else answer.split()
    return answer


# --- who gets which puzzle -----------------------------------------------------------------


@pytest.mark.parametrize("exercise", GRADED)
def test_neighbours_get_different_puzzles(exercise):
    codes = [puzzle_of(exercise, name).puzzle.code for name in IDS]
    assert len({seed_of(exercise, name) for name in IDS}) == len(IDS)
    assert all(a != b for a, b in itertools.pairwise(codes)), "two neighbours alike"
    assert len(set(codes)) >= 0.95 * len(IDS)


def test_one_student_gets_other_puzzles_in_other_exercises():
    assert seed_of("00.fork_puzzle", "s1000") != seed_of("01.signal_output", "s1000")


def test_names_are_compared_as_the_roster_compares_them():
    assert seed_of("00.fork_puzzle", " Zoë_Brandt") == seed_of("00.fork_puzzle", "zoe\u0308_brandt")
    with pytest.raises(ValueError, match="must not be empty"):
        seed_of("00.fork_puzzle", "  ")


def test_the_seeds_are_keyed_with_the_course_salt(tmp_path, monkeypatch):
    config = (ROOT / "labkit" / "course.toml").read_text(encoding="utf-8")
    salt = re.search(r'^salt = "(\w+)"$', config, re.MULTILINE).group(1)
    before = {name: seed_of("00.fork_puzzle", name) for name in IDS[:20]}
    other = tmp_path / "course.toml"
    other.write_text(config.replace(salt, "another-course-another-salt"), encoding="utf-8")
    monkeypatch.setenv("LABKIT_COURSE", str(other))
    assert all(seed_of("00.fork_puzzle", n) != before[n] for n in before)
    other.write_text(config.replace(f'salt = "{salt}"', 'salt = "short"'), encoding="utf-8")
    with pytest.raises(LabError, match=r"\[puzzles\] salt must be a string of at least 16"):
        seed_of("00.fork_puzzle", "s1000")


def test_every_graded_fork_puzzle_offers_a_possible_and_an_impossible_output():
    for name in IDS[:100]:
        p = puzzle_of("00.fork_puzzle", name).puzzle
        assert 1 <= len(p.answer.split()[1:]) < len(p.choices)


def test_a_printed_puzzle_shows_the_program_but_neither_seed_nor_answer():
    shown = str(puzzle_of("00.fork_puzzle", "s1000"))
    p = puzzle_of("00.fork_puzzle", "s1000").puzzle
    assert p.code in shown and "seed" not in shown and p.solution not in shown


def test_the_notebook_user_is_the_hub_user_and_the_grader_overrides_it(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "s1000")
    assert student() == "s1000" and my_puzzle("00.fork_puzzle") == puzzle_of("00.fork_puzzle",
                                                                             "s1000")
    grade_as("s1001")
    assert student() == "s1001"   # $JUPYTERHUB_USER, which a notebook can set, no longer counts


def test_grading_without_a_student_fails_closed():
    grade_as("")
    with pytest.raises(LabError, match="did not say whose submission"):
        student()
    results = run_checks("00.fork_puzzle", lambda: (3, ["A"]))
    assert [r.status for r in results] == ["error"] * 3
    assert "whose submission" in results[0].message


# --- the checks, one student at a time -------------------------------------------------------


@pytest.mark.parametrize("exercise", GRADED)
def test_the_solution_is_right_for_any_student(exercise):
    answer = load_answers(_solution(exercise))[_answer_name(exercise)]
    for name in ("s1000", "Zoë Brandt"):
        grade_as(name)
        results = run_checks(exercise, answer)
        assert results and [r for r in results if r.status != PASSED] == []


@pytest.mark.parametrize("exercise", GRADED)
def test_two_students_who_swapped_answers_both_lose_the_answer_points(exercise):
    a, b = _pair_with_different_answers(exercise)
    for me, other in ((a, b), (b, a)):
        grade_as(me)
        theirs = _answer(exercise, other)
        results = run_checks(exercise, lambda theirs=theirs: theirs)
        assert results[0].status == PASSED        # the shape is fine ...
        lost = [r for r in results[1:] if r.status != PASSED]
        assert lost and len(lost) == len(results) - 1, [r.message for r in results]
        assert all("your own puzzle" in r.message and repr(me) in r.message for r in lost)


# --- the whole batch, in the grader's sandbox ------------------------------------------------

USABLE, HOW = sandbox_level()


@pytest.mark.skipif(not USABLE, reason=HOW)
def test_labkit_grade_checks_each_students_own_puzzle_whatever_the_notebook_says(tmp_path):
    """Ada and Bob answered each other's puzzle; Cleo answered her own, after a cell that
    claims to be Ada. The roster's ids decide: Ada and Bob lose the answer points, Cleo
    keeps them."""
    ada, bob = _pair_with_different_answers("00.fork_puzzle")
    cleo = "s1150"
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "email"])
        for sid, name in ((ada, "Ada"), (bob, "Bob"), (cleo, "Cleo")):
            writer.writerow([sid, name, f"{name.lower()}@example.org"])
    subs = tmp_path / "subs"
    subs.mkdir()
    pretend = (f"import os\nos.environ['JUPYTERHUB_USER'] = {ada!r}\n"
               f"from labkit.puzzle_student import grade_as\n_ = grade_as({ada!r})")
    for name, answered in (("Ada", bob), ("Bob", ada), ("Cleo", cleo)):
        nb = nbformat.read(ROOT / "solutions" / "00_processes.ipynb", as_version=4)
        cell = next(c for c in nb.cells if c.get("id") == "fork-puzzle-answer")
        cell.source = (f"def fork_puzzle_answer():\n"
                       f"    return {_answer('00.fork_puzzle', answered)!r}")
        if name == "Cleo":
            nb.cells.insert(1, nbformat.v4.new_code_cell(pretend))
        nbformat.write(nb, subs / f"{name}.ipynb")
    rows = {r.name: r for r in grade("00_processes", subs, tmp_path / "out", jobs=2,
                                     roster=roster, root=ROOT)}
    puzzle_checks = {name: [c for c in rows[name].checks if c["exercise"] == "00.fork_puzzle"]
                     for name in rows}
    assert [c["status"] for c in puzzle_checks["Cleo"]] == [PASSED] * 3, rows["Cleo"].notes
    for name, sid in (("Ada", ada), ("Bob", bob)):
        answer_checks = puzzle_checks[name][1:]
        assert [c["status"] for c in answer_checks] == ["failed"] * 2, rows[name].notes
        assert all(repr(sid) in c["message"] for c in answer_checks)


# --- helpers -----------------------------------------------------------------------------------


def _solution(exercise: str) -> str:
    lesson = {"00": "00_processes", "01": "01_signals", "02": "02_pipes"}[exercise[:2]]
    return f"solutions/{lesson}.ipynb"


def _answer_name(exercise: str) -> str:
    return {"00.fork_puzzle": "fork_puzzle_answer", "01.signal_output": "signal_output_answer",
            "02.pipes_puzzle": "pipes_puzzle_answer"}[exercise]


def _pair_with_different_answers(exercise: str) -> tuple[str, str]:
    """Two neighbouring ids whose answers differ in every part (for the fork kind: the line
    count and the letters), so an answer swapped between them is wrong in every part."""
    def differ(a: str, b: str) -> bool:
        x, y = _answer(exercise, a), _answer(exercise, b)
        return all(p != q for p, q in zip(x, y, strict=True)) if isinstance(x, tuple) else x != y

    return next((a, b) for a, b in itertools.pairwise(IDS) if differ(a, b))
