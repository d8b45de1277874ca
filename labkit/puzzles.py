"""Seeded puzzles on fork, signals and pipes, whose answers come from running them.

OSTEP's homework tools are the model: a seed makes the puzzle, a solver knows
the answer, and the answer is shown only when asked for. Each puzzle here is a
short real Python program, and :func:`solve` answers it by running it on real
processes (:func:`run_real`: ``labkit/programs/puzzle_runs.py``, through the
runner): the count of lines, who reached end of file, who hung, what was
printed. Where the order of lines varies from run to run, one run cannot say
which orders are possible: a small happens-before model of the same program
(:mod:`labkit.puzzle_model`) lists them. The two must agree (a real output
the model does not allow is an error, never an answer), and the tests run
200 seeds of every kind to show that they do.

Kinds (``kinds()``): ``fork`` (count the lines, pick the possible orders,
draw the tree), ``signals`` (handlers, masks, ``kill``, ``pause``: predict
the output), ``pipes`` (which reads reach end of file, which processes
never finish), ``inverse`` (given an output, pick the programs that can
print it) and ``tree`` (given a process tree, pick the programs that make
it; their runs are traced, so the tree each run really made is compared).
The generators live in :mod:`labkit.puzzle_kinds`; the notebook card in
:mod:`labkit.puzzle_card`; the graded puzzles, one per student, in
:mod:`labkit.puzzle_student`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ._platform import LINUX
from ._validate import whole
from .errors import LabTimeout, ModelMismatch, NotSupportedHere
from .puzzle_kinds import KINDS
from .puzzle_model import Puzzle, same_answer, untraced
from .runner import run_module

__all__ = ["KINDS", "Puzzle", "RealRun", "Solution", "kinds", "puzzle", "run_real", "solve"]

MAX_SEED = 10**9


@dataclass(frozen=True)
class RealRun:
    """What one real run of a puzzle program did."""

    lines: tuple[str, ...]   # what its processes printed, in the order the pipe got it
    hung: bool               # some processes never ended; they were killed
    first: str               # how the first process ended: "exit code 0", "killed by SIGKILL"
    errors: str              # what it wrote to stderr (a puzzle never should)


def kinds() -> dict[str, str]:
    """Every kind of puzzle, with a line saying what it asks.

    >>> list(kinds())
    ['fork', 'signals', 'pipes', 'inverse', 'tree']
    """
    return {name: about for name, (about, _, _) in KINDS.items()}


def puzzle(kind: str, seed: int) -> Puzzle:
    """The puzzle of ``kind`` made from ``seed`` (the same seed, the same puzzle).

    >>> p = puzzle("fork", 7)
    >>> p == puzzle("fork", 7), p.kind, p.programs[0].startswith("import os")
    (True, 'fork', True)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    seed = whole("seed", seed, 0, MAX_SEED)
    return KINDS[kind][1](seed)


@dataclass(frozen=True)
class Solution:
    """A puzzle answered by real runs: one per program, and the answer read from them."""

    puzzle: Puzzle
    runs: tuple[RealRun, ...]
    answer: str

    def check(self, reply: str) -> bool:
        """Whether ``reply`` is the answer: the same numbers, letters and names, in any
        order, case and punctuation ("none" for nothing).

        >>> s = solve([puzzle("pipes", 3)])[0]
        >>> s.check(s.answer), s.check(s.answer + " 99")
        (True, False)
        """
        return same_answer(reply, self.answer)

    def printed(self) -> str:
        """What the runs printed, program by program."""
        shown = []
        for i, real in enumerate(self.runs):
            name = f"Program {'ABCD'[i]}:\n" if len(self.runs) > 1 else ""
            end = "\n(some processes never ended; they were killed)" if real.hung else ""
            shown.append(name + ("\n".join(real.lines) or "(nothing)") + end)
        return "\n\n".join(shown)

    def __str__(self) -> str:
        return (f"Answer: {self.answer}\n\n{self.puzzle.solution}\n\n"
                f"One real run printed:\n{self.printed()}")


def solve(puzzles: list[Puzzle], parallel: int = 8) -> list[Solution]:
    """Answer puzzles by running each program once on real processes (in one batch; two
    when some puzzles need traced runs).

    A run the model does not allow (another output, a hang it does not
    predict, anything on stderr) raises :class:`~labkit.errors.ModelMismatch`
    naming the puzzles: such a puzzle has no trustworthy answer.

    >>> s = solve([puzzle("fork", 7)])[0]
    >>> s.answer == s.puzzle.answer, len(s.runs[0].lines) == int(s.answer.split()[0])
    (True, True)
    """
    jobs = [(i, j) for i, p in enumerate(puzzles) for j in range(len(p.programs))]
    raw: dict[tuple[int, int], RealRun] = {}
    for trace in (False, True):     # a traced run prints more: one batch of each
        mine = [(i, j) for i, j in jobs if puzzles[i].traced == trace]
        got = run_real([puzzles[i].programs[j] for i, j in mine], parallel=parallel,
                       trace=trace)
        raw.update(zip(mine, got, strict=True))
    solved, wrong = [], []
    for i, p in enumerate(puzzles):
        runs = [raw[(i, j)] for j in range(len(p.programs))]
        shown = tuple(replace(r, lines=untraced(r.lines)) if p.traced else r for r in runs)
        for j, real in enumerate(shown):
            if real.errors or real.lines not in p.outputs[j] or real.hung != p.hangs[j]:
                wrong.append(f"{p.kind} seed {p.seed} program {j}: printed {real.lines}"
                             f"{' and hung' if real.hung else ''}"
                             f"{'; stderr: ' + real.errors[-200:] if real.errors else ''}")
        if not wrong:
            answer = KINDS[p.kind][2](p, [(r.lines, r.hung) for r in runs])
            solved.append(Solution(p, shown, answer))
    if wrong:
        raise ModelMismatch(f"{len(wrong)} real run(s) did what the puzzle's model does not "
                            "allow: " + "; ".join(wrong[:5]))
    return solved


def run_real(programs: list[str], parallel: int = 8, timeout: float = 60.0,
             trace: bool = False) -> list[RealRun]:
    """Run each program once on real processes, ``parallel`` at a time, in one program.

    With ``trace``, each line says which process printed it (``@PID line``) and each
    fork which child it made (``@fork PID CHILD``): the process tree the run made.

    Processes that never end are found (all of them asleep, none running
    between two looks), killed and reported as ``hung``; nothing outlives the
    call. A program still running after ``timeout`` seconds is an error (a
    puzzle ends or hangs). The output comes back as text and is parsed as text.

    >>> run_real(['import os\\nif os.fork() == 0:\\n    print("hi")'])[0].lines
    ('hi',)
    """
    parallel = whole("parallel", parallel, 1, 64)
    if not LINUX:
        raise NotSupportedHere("running puzzles reads /proc to tell a hanging process from a "
                               "slow one; that needs Linux")
    if not programs:
        return []
    done = run_module("labkit.programs.puzzle_runs", str(parallel), str(timeout),
                      "1" if trace else "0", *programs,
                      timeout=timeout * (1 + (len(programs) - 1) // parallel) + 10,
                      what="the puzzles")
    runs: dict[int, RealRun] = {}
    for line in done.stdout.splitlines():
        report: dict[str, Any] = json.loads(line)
        if report["late"]:
            raise LabTimeout(f"puzzle program {report['index']} was still running after "
                             f"{timeout:g} s; it was killed (a puzzle must end or hang)")
        runs[int(report["index"])] = RealRun(tuple(str(report["output"]).splitlines()),
                                             bool(report["hung"]), str(report["first"]),
                                             str(report["errors"]))
    if len(runs) != len(programs) or done.returncode != 0:
        raise RuntimeError(f"the puzzle runner reported {len(runs)} of {len(programs)} "
                           f"programs (exit code {done.returncode}): {done.stderr[-500:]}")
    return [runs[i] for i in range(len(programs))]

