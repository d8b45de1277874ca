"""Checks for the graded puzzles of lessons 00 to 02: each student's own puzzle, answered.

The puzzle is the one of the student being checked (:mod:`labkit.puzzle_student`:
the grader says who that is; in a notebook, its user), and the answer is
compared exactly with what the bank reads from a real run of that puzzle's
program (:func:`labkit.puzzles.solve`): the line count a run printed, and,
where the order varies, the outputs the happens-before model allows (checked
against that run). What the answer function returns comes back as plain data
and is only compared, never run. Messages say which part is wrong, never the
right letters or count.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Any

from ..checking import CheckFailed, Exercise, call, expect
from ..puzzle_student import puzzle_of, student
from ..puzzles import Solution, solve
from ._shared import expect_function

FORK = Exercise("00.fork_puzzle", "Your own fork puzzle: count the lines, pick the outputs",
                kind="puzzle")
SIGNALS = Exercise("01.signal_output", "Your own signal program: which output does it print?",
                   kind="puzzle")
PIPES = Exercise("02.pipes_puzzle", "Your own pipes: which processes never finish?",
                 kind="puzzle")


@cache
def _solved(exercise_id: str, who: str) -> Solution:
    """``who``'s puzzle, answered by a real run (once per checking process)."""
    (solution,) = solve([puzzle_of(exercise_id, who).puzzle])
    return solution


def _mine(exercise_id: str) -> tuple[str, Solution]:
    """Who is being checked (the grader says so; else the notebook's user), and their
    puzzle answered."""
    who = student()
    return who, _solved(exercise_id, who)


def _offered(solution: Solution) -> tuple[str, ...]:
    return tuple("ABCD"[:len(solution.puzzle.choices)])


def _whose(who: str) -> str:
    return (f"(graded on your own puzzle, the one my_puzzle(...) shows for {who!r}; "
            "a puzzle answered for another name is wrong for yours)")


def _letters(value: Any, offered: tuple[str, ...], what: str) -> list[str]:
    """The letters in ``value`` (a list of letters, or a string of them), upper case."""
    if isinstance(value, str):
        found = re.findall(r"[A-Za-z]", value)
        expect(not re.search(r"[^A-Za-z,\s]", value),
               f"{what} must be letters only, like ['A', 'C'], got {value!r}")
    else:
        expect(isinstance(value, (list, tuple, set, frozenset))
               and all(isinstance(x, str) and len(x.strip()) == 1 for x in value),
               f"{what} must be a list of letters, like ['A', 'C'], got {value!r}")
        found = [x.strip() for x in value]
    letters = [x.upper() for x in found]
    unknown = sorted(set(letters) - set(offered))
    expect(not unknown, f"{what} must be among {', '.join(offered)}; "
                        f"{', '.join(unknown)} is not offered")
    return letters


# --- 00.fork_puzzle ---------------------------------------------------------------------


def _fork_reply(answer: Any) -> tuple[int, list[str], str, Solution]:
    expect_function(answer)
    reply = call(answer).value
    expect(isinstance(reply, (tuple, list)) and len(reply) == 2,
           f"expected a pair (line count, letters), like (5, ['B', 'D']), got {reply!r}")
    count, chosen = reply
    expect(isinstance(count, int) and not isinstance(count, bool) and count >= 0,
           f"the line count must be a whole number, like 5, got {count!r}")
    who, solution = _mine(FORK.id)
    return count, _letters(chosen, _offered(solution), "the outputs you chose"), who, solution


@FORK.check("the answer is a line count and the letters of outputs",
            hint="Return two things: how many lines the program prints in all, and the "
                 "letters of the outputs it can print.")
def _(answer: Any) -> None:
    _fork_reply(answer)


@FORK.check("the line count is what a real run of your puzzle prints",
            hint="Count the processes alive at each print: every fork doubles the processes "
                 "that run the lines after it, unless a child leaves with os._exit first.",
            concept="A fork copies the whole process, where it stands: the child runs every "
                    "line after the fork too, including later forks, and each process prints "
                    "its own lines.")
def _(answer: Any) -> None:
    count, _, who, solution = _fork_reply(answer)
    printed = len(solution.runs[0].lines)
    expect(count == printed,
           f"your line count ({count}) is not what a real run of your own puzzle's program "
           f"printed: it printed {'more' if printed > count else 'fewer'} lines "
           f"{_whose(who)}")


@FORK.check("exactly the outputs your puzzle's program can print are chosen",
            hint="For each output, look for an order the program forbids: a line printed "
                 "before a fork comes before every line of the child; a waitpid holds its "
                 "process until that child has exited.",
            concept="Between two processes nothing is ordered unless a fork or a wait orders "
                    "it; within one process, its lines keep their order.")
def _(answer: Any) -> None:
    _, chosen, who, solution = _fork_reply(answer)
    possible = set(solution.answer.split()[1:])
    expect(not set(chosen) - possible,
           f"you chose an output that your own puzzle's program can never print "
           f"{_whose(who)}")
    expect(not possible - set(chosen),
           f"you left out an output that your own puzzle's program can print "
           f"{_whose(who)}")


# --- 01.signal_output ---------------------------------------------------------------------


def _signal_reply(answer: Any) -> tuple[str, str, Solution]:
    expect_function(answer)
    reply = call(answer).value
    who, solution = _mine(SIGNALS.id)
    expect(isinstance(reply, str) and len(reply.strip()) == 1,
           f"expected one letter, like 'B', got {reply!r}")
    (letter,) = _letters(reply, _offered(solution), "the letter")
    return letter, who, solution


@SIGNALS.check("the answer is one of the letters offered",
               hint="Return the letter of the output you predict, as a string.")
def _(answer: Any) -> None:
    _signal_reply(answer)


@SIGNALS.check("the letter is the output a real run of your puzzle printed",
               hint="Follow the child step by step: which signals are pending when each mask "
                    "is lifted, and what each one's action is at that moment.",
               concept="A blocked signal waits, pending at most once per kind; when it is "
                       "unblocked, its action of that moment decides: a handler runs, an "
                       "ignored one is dropped, a default action may end the process.")
def _(answer: Any) -> None:
    letter, who, solution = _signal_reply(answer)
    if letter != solution.answer:
        raise CheckFailed(f"output {letter} is not what a real run of your own puzzle's "
                          f"program printed {_whose(who)}")


# --- 02.pipes_puzzle ----------------------------------------------------------------------


def _pipes_reply(answer: Any) -> tuple[set[str], str, Solution]:
    expect_function(answer)
    reply = call(answer).value
    expect(isinstance(reply, (list, tuple, set, frozenset))
           and all(isinstance(x, str) for x in reply),
           f"expected a list of process names, like ['parent', 'A'] (or [] if every "
           f"process finishes), got {reply!r}")
    who, solution = _mine(PIPES.id)
    names = {n.casefold(): n for n in solution.puzzle.choices}
    unknown = sorted(x for x in reply if x.strip().casefold() not in names)
    expect(not unknown, f"the names must be among {', '.join(solution.puzzle.choices)}; "
                        f"{', '.join(map(repr, unknown))} is not one of the processes")
    return {names[x.strip().casefold()] for x in reply}, who, solution


@PIPES.check("the answer is a list of the program's process names",
             hint="Return the names of the processes that never finish, as a list; an empty "
                  "list if all of them do.")
def _(answer: Any) -> None:
    _pipes_reply(answer)


@PIPES.check("exactly the processes that never finish in a real run are named",
             hint="For each read, list every process that still holds that pipe's write end "
                  "when the read starts: end of file comes only once each of them has closed "
                  "it or ended.",
             concept="A fork copies every descriptor, both ends of each pipe included; a read "
                     "blocks while any write end is open anywhere, and a parent waiting for "
                     "a child that never ends waits for ever too.")
def _(answer: Any) -> None:
    named, who, solution = _pipes_reply(answer)
    hang = set(solution.answer.split()) - {"none"}
    expect(not named - hang, f"you named a process that finishes in a real run of your own "
                             f"puzzle's program {_whose(who)}")
    expect(not hang - named, f"you left out a process that never finishes in a real run of "
                             f"your own puzzle's program {_whose(who)}")
