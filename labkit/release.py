"""Make the student notebooks in ``exercises/`` from the solutions in ``solutions/``.

``solutions/NN_topic.ipynb`` is the single source. Inside it, solution code
sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (the nbgrader
convention); in code cells that span becomes a placeholder raising
NotImplementedError, indented like the code it replaces, and in Markdown
cells (answers to written questions) it becomes "*Your answer here.*".
A debugging exercise ships a broken program instead of a placeholder: right
after its solution block, a ``### BEGIN GIVEN`` ... ``### END GIVEN`` block
holds the broken code as comments (so the solution notebook runs the fixed
code); the released cell has that code, uncommented, where the solution was.
Outputs and execution counts are cleared. ``--check`` only compares, so a
test can insist that ``exercises/`` is up to date.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import LabError

__all__ = ["Released", "find_root", "problems", "release", "resolve_lab", "strip_solutions"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
GIVEN, GIVEN_END = "### BEGIN GIVEN", "### END GIVEN"
_CODE_STUB = ["# YOUR CODE HERE", 'raise NotImplementedError("exercise not done yet")']
_TEXT_STUB = ["*Your answer here.*"]


def strip_solutions(source: str, code: bool = True, where: str = "cell") -> str:
    """Replace each solution block of one cell's source with the student placeholder,
    or with the broken code of the ``GIVEN`` block that follows it.

    >>> print(strip_solutions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION"))
    def f():
        # YOUR CODE HERE
        raise NotImplementedError("exercise not done yet")
    >>> print(strip_solutions("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n"
    ...                       "    ### END SOLUTION\\n    ### BEGIN GIVEN\\n    # return 2\\n"
    ...                       "    ### END GIVEN"))
    def f():
        return 2
    """
    lines = source.split("\n")
    out: list[str] = []
    number = 0
    while number < len(lines):
        line, marker = lines[number], lines[number].strip()
        number += 1
        if marker in (END, GIVEN_END):
            raise ValueError(f"{where}, line {number}: {marker} without its BEGIN")
        if marker == GIVEN:
            raise ValueError(f"{where}, line {number}: {GIVEN} must follow a solution's "
                             f"{END} directly")
        if marker != BEGIN:
            out.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        number = _block_end(lines, number, END, where)
        if number < len(lines) and lines[number].strip() == GIVEN:
            start = number + 1
            number = _block_end(lines, start, GIVEN_END, where)
            out += [_uncomment(text, f"{where}, line {at + 1}")
                    for at, text in enumerate(lines[start:number - 1], start)]
        else:
            out.extend(indent + stub for stub in (_CODE_STUB if code else _TEXT_STUB))
    return "\n".join(out)


def _block_end(lines: list[str], start: int, end: str, where: str) -> int:
    """The index just past the line ``end`` that closes the block opened before ``start``."""
    for number in range(start, len(lines)):
        marker = lines[number].strip()
        if marker == end:
            return number + 1
        if marker in (BEGIN, GIVEN):
            raise ValueError(f"{where}, line {number + 1}: {marker} inside another block")
    raise ValueError(f"{where}: a block is never closed by {end}")


def _uncomment(line: str, where: str) -> str:
    """One line of a GIVEN block, its ``# `` taken off (blank lines stay blank)."""
    body = line.lstrip()
    if not body:
        return line
    if not body.startswith("#"):
        raise ValueError(f"{where}: a GIVEN block holds the broken code as comments "
                         f"(\"# code\"), so the solution notebook does not run it")
    indent = line[:len(line) - len(body)]
    return indent + body[2:] if body.startswith("# ") else indent + body[1:]


def _exercise_of(solution: Path) -> str:
    nb = nbformat.read(solution, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell.source = strip_solutions(cell.source, cell.cell_type == "code",
                                      f"{solution.name}, cell {i}")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nbformat.writes(nb) + "\n"


def find_root(start: Path | None = None) -> Path:
    """The course folder: the first of ``start`` and its parents that has ``solutions/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "exercises").is_dir():
            return folder
    raise FileNotFoundError(f"no course folder (with solutions/ and exercises/) at or above "
                            f"{here}; run this from the IPC Lab checkout or pass --root")


def _matches(stem: str, wanted: str) -> bool:
    """Whether lesson ``stem`` (``02_pipes``) is what ``wanted`` names (``02_pipes``, ``02``,
    ``02_pipes.ipynb``)."""
    wanted = wanted.removesuffix(".ipynb")
    return stem == wanted or stem.split("_")[0] == wanted


def resolve_lab(root: Path, lab: str) -> str:
    """The lesson id that ``lab`` names among the released exercise notebooks.

    >>> resolve_lab(find_root(), "02")
    '02_pipes'

    Raises:
        LabError: no exercise notebook (or more than one) matches, listing the labs.
    """
    labs = sorted(p.stem for p in (root / "exercises").glob("*.ipynb"))
    found = [stem for stem in labs if _matches(stem, lab)]
    if len(found) != 1:
        raise LabError(f"no lab {lab!r}; labs are: {', '.join(labs)}" if not found else
                       f"{lab!r} names several labs ({', '.join(found)}); give the full id")
    return found[0]


@dataclass(frozen=True)
class Released:
    """What :func:`release` did for one notebook."""

    solution: Path
    exercise: Path
    changed: bool


def release(root: Path, check: bool = False, lessons: list[str] | None = None) -> list[Released]:
    """Write (or, with ``check=True``, only compare) the exercise notebooks.

    ``lessons`` limits it to some lessons, by id or number (``["02_pipes"]``, ``["02"]``).

    >>> [r.changed for r in release(find_root(), check=True, lessons=["00"])]
    [False]
    """
    done = []
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    if lessons:
        wanted = [s for s in solutions if any(_matches(s.stem, x) for x in lessons)]
        unknown = [x for x in lessons if not any(_matches(s.stem, x) for s in solutions)]
        if unknown:
            raise LabError(f"no solution notebook for {unknown}; lessons are: "
                             + ", ".join(s.stem for s in solutions))
        solutions = wanted
    for solution in solutions:
        exercise = root / "exercises" / solution.name
        text = _exercise_of(solution)
        changed = not exercise.exists() or exercise.read_text() != text
        if changed and not check:
            exercise.write_text(text)
        done.append(Released(solution, exercise, changed))
    return done


def problems(root: Path, lessons: list[str] | None = None) -> list[str]:
    """What would make a release wrong: a check cell naming an exercise that has no checks
    (a typo in its id), an exercise with checks but no check cell, a check the course config
    does not price. Empty when all is well.

    >>> problems(find_root(), ["00"])
    []
    """
    from .checking import exercises, hidden_loaded, load_course_hidden
    from .course import current
    from .course import problems as config_problems
    from .grade import answers_of

    load_course_hidden(root)
    found = []
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        if lessons and not any(_matches(solution.stem, x) for x in lessons):
            continue
        checked = exercises(solution.stem)
        try:
            cells = answers_of(solution)
        except LabError as e:
            found.append(str(e))
            continue
        found += [f"{solution.name}: a check cell runs {exercise!r}, which has no checks; "
                  f"exercises of this lesson are: {', '.join(checked) or 'none yet'}"
                  for exercise in cells if exercise not in checked]
        found += [f"{solution.name}: {exercise} has checks but no check cell "
                  f"(labkit.check({exercise!r}, ...))" for exercise in checked
                  if exercise not in cells]
        found += [f"{solution.name}: {p}" for p in config_problems(
            current(), {e: [c.name for c in ex.checks if not c.hidden]
                        for e, ex in checked.items()},
            {e: [c.name for c in ex.checks if c.hidden] for e, ex in checked.items()}
            if hidden_loaded() else None)]
    return found
