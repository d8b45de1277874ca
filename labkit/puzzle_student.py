"""Graded puzzles, one per student: whose notebook this is, and which puzzle is theirs.

A graded puzzle exercise (``00.fork_puzzle``) gives each student a puzzle of
the bank made from a seed of their own: an HMAC-SHA256, keyed with the
course's salt (``[puzzles] salt`` in ``labkit/course.toml``), of the exercise
id and the student's name. Neighbours get different puzzles, so an answer
copied from one is wrong for the other; a keyed hash rather than a plain hash
of the name means the seeds of this course cannot be computed from labkit's
public code alone (another course, another salt). The salt ships with the
course, so a student can still make anyone's puzzle with labkit, as they can
ask labkit for any puzzle's answer: what grading guarantees is that each
student is graded on their own.

Whose puzzle it is: in a notebook, the JupyterHub user (``$JUPYTERHUB_USER``),
else the login name; when grading, only what the grader says
(:func:`grade_as`, called by the sandbox with the submission's student id,
from the roster or the submission's name), never anything the notebook
says or sets. The JupyterHub names must therefore be the roster's ids (or the
names the submissions are filed under).
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass

from . import course
from .errors import LabError
from .puzzle_model import Puzzle
from .puzzles import MAX_SEED, puzzle

__all__ = ["GRADED", "StudentPuzzle", "grade_as", "my_puzzle", "puzzle_of", "seed_of",
           "student"]

GRADED = {"00.fork_puzzle": "fork", "01.signal_output": "signals",   # exercise -> kind
          "02.pipes_puzzle": "pipes"}

_graded_as: str | None = None   # set only by the grader's sandbox (grade_as)


def grade_as(name: str | None) -> None:
    """Make :func:`student` answer ``name`` in this process and the processes it forks:
    the grader's sandbox calls it with the submission's student id before the checks run.
    An empty name makes every puzzle check fail (the grader must say whose work it is).

    >>> grade_as("s42"); student()
    's42'
    >>> grade_as(None)   # back to the notebook's own user
    """
    global _graded_as
    _graded_as = name


def student() -> str:
    """Who the puzzles are for: the student being graded, else this notebook's user
    (``$JUPYTERHUB_USER``, else the login name).

    Raises:
        LabError: grading, but the grader did not say whose submission this is.
    """
    if _graded_as is not None:
        if not _graded_as.strip():
            raise LabError("the grader did not say whose submission this is, so no puzzle "
                           "can be chosen; grade with `labkit grade`")
        return _graded_as
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _salt() -> bytes:
    """The course's puzzle salt, from ``[puzzles] salt`` in the course config."""
    config = course.current()
    salt = config.puzzle_salt
    if not isinstance(salt, str) or len(salt) < 16:
        raise LabError(f"{config.source}: [puzzles] salt must be a string of at least 16 characters "
                       "(one per course: it keys each student's puzzles), got "
                       f"{salt!r}")
    return salt.encode()


def seed_of(exercise_id: str, name: str) -> int:
    """The seed of ``name``'s puzzle in ``exercise_id``. Names are compared as the roster
    compares them (letter case and Unicode form aside, spaces around dropped).

    >>> seed_of("00.fork_puzzle", "Ada ") == seed_of("00.fork_puzzle", "ada")
    True
    """
    key = unicodedata.normalize("NFC", name).strip().casefold()
    if not key:
        raise ValueError("a student name must not be empty")
    # The newline keeps ("00.a", "b...") and ("00.ab", "...") apart; ids hold no newline.
    digest = hmac.new(_salt(), f"{exercise_id}\n{key}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") % (MAX_SEED + 1)


def _gradable(p: Puzzle) -> bool:
    """Whether every kind of mistake can show in ``p``'s answer: for the fork kind, at least
    one offered output is possible and at least one is not."""
    return p.kind != "fork" or 1 < len(p.answer.split()) < 1 + len(p.choices)


@dataclass(frozen=True)
class StudentPuzzle:
    """One student's puzzle in a graded exercise; printed without its seed or answer."""

    exercise: str
    student: str
    puzzle: Puzzle

    def __str__(self) -> str:
        return (f"{self.exercise}: the puzzle of {self.student}\n\n{self.puzzle.code}\n\n"
                f"{self.puzzle.question}")

    def __repr__(self) -> str:
        return str(self)


def puzzle_of(exercise_id: str, name: str) -> StudentPuzzle:
    """``name``'s puzzle in the graded exercise ``exercise_id`` (the first gradable one
    from their seed on).

    >>> p = puzzle_of("00.fork_puzzle", "ada")
    >>> p.puzzle.kind, p.puzzle == puzzle_of("00.fork_puzzle", "ADA").puzzle, "seed" in str(p)
    ('fork', True, False)
    """
    if exercise_id not in GRADED:
        raise ValueError(f"{exercise_id!r} is not a graded puzzle; they are: "
                         + ", ".join(GRADED))
    seed = seed_of(exercise_id, name)
    while not _gradable(found := puzzle(GRADED[exercise_id], seed)):
        seed = (seed + 1) % (MAX_SEED + 1)
    return StudentPuzzle(exercise_id, name, found)


def my_puzzle(exercise_id: str) -> StudentPuzzle:
    """Your own puzzle in the graded exercise ``exercise_id``: print it to read it.

    >>> print(my_puzzle("00.fork_puzzle"))   # doctest: +SKIP
    00.fork_puzzle: the puzzle of ada
    ...
    """
    return puzzle_of(exercise_id, student())
