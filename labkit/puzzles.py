"""Seeded puzzles on fork, signals and pipes, whose answers come from running them.

OSTEP's homework tools are the model: a seed makes the puzzle, a solver knows
the answer, and the answer is shown only when asked for. Each puzzle here is a
short real Python program. Its answer has two sources that must agree: a small
happens-before model of that program (:mod:`labkit.puzzle_model`: which lines
must come before which, which processes can never finish) lists every output
the kernel may produce, and :func:`run_real` runs the very program on real
processes (``labkit/programs/puzzle_runs.py``, through the runner). The tests
run 200 seeds of every kind and check each real output against the model.

Kinds (``kinds()``): ``fork`` (count the lines, pick the possible orders,
draw the tree), ``signals`` (handlers, masks, ``kill``, ``pause``: predict
the output), ``pipes`` (which reads reach end of file, which processes
never finish) and ``inverse`` (given an output, pick the programs that can
print it). The generators live in :mod:`labkit.puzzle_kinds`; the notebook
card in :mod:`labkit.puzzle_card`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._platform import LINUX
from ._validate import whole
from .errors import NotSupportedHere
from .puzzle_kinds import KINDS
from .puzzle_model import Puzzle
from .runner import run_module

__all__ = ["KINDS", "Puzzle", "RealRun", "kinds", "puzzle", "run_real"]

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
    ['fork', 'signals', 'pipes', 'inverse']
    """
    return {name: about for name, (about, _) in KINDS.items()}


def puzzle(kind: str, seed: int) -> Puzzle:
    """The puzzle of ``kind`` made from ``seed`` (the same seed, the same puzzle).

    >>> p = puzzle("fork", 7)
    >>> p == puzzle("fork", 7), p.check(p.answer)
    (True, True)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    seed = whole("seed", seed, 0, MAX_SEED)
    return KINDS[kind][1](seed)


def run_real(programs: list[str], parallel: int = 8, timeout: float = 60.0
             ) -> list[RealRun]:
    """Run each program once on real processes, ``parallel`` at a time, in one program.

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
    done = run_module("labkit.programs.puzzle_runs", str(parallel), str(timeout), *programs,
                      timeout=timeout * (1 + len(programs) // parallel), what="the puzzles")
    runs: dict[int, RealRun] = {}
    for line in done.stdout.splitlines():
        report: dict[str, Any] = json.loads(line)
        if report["late"]:
            raise RuntimeError(f"puzzle program {report['index']} kept running for "
                               f"{timeout:g} s; a puzzle must end or hang")
        runs[int(report["index"])] = RealRun(tuple(str(report["output"]).splitlines()),
                                             bool(report["hung"]), str(report["first"]),
                                             str(report["errors"]))
    if len(runs) != len(programs) or done.returncode != 0:
        raise RuntimeError(f"the puzzle runner reported {len(runs)} of {len(programs)} "
                           f"programs (exit code {done.returncode}): {done.stderr[-500:]}")
    return [runs[i] for i in range(len(programs))]

