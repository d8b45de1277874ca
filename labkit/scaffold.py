"""``labkit new-exercise LAB ID``: the files of a new exercise, consistent from the start.

A new exercise touches five places; this writes all of them, so that the suite passes
before the instructor has changed a line and every later edit is a change to working
code: the statement, answer and check cells in ``solutions/LAB.ipynb`` (the answer a
placeholder solution), an :class:`~labkit.checking.Exercise` with one check in the
lesson's checks module, its points and time in the course config, four mutants in
``tests/mutants/LAB.py`` (the suite wants four wrong answers per exercise), and a
test of the exercise's check helpers. ``labkit release`` then makes the student notebook.
"""
from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .release import BEGIN, END

__all__ = ["Scaffolded", "new_exercise"]

_ID = re.compile(r"(\d\d)\.([a-z][a-z0-9_]*)")


@dataclass(frozen=True)
class Scaffolded:
    """The files :func:`new_exercise` wrote or extended."""

    exercise: str
    function: str
    files: tuple[Path, ...]


def _checks_module(root: Path, lesson: str) -> Path:
    """The lesson's checks module: where its exercises are defined, else one named after
    the lesson's topic (``08_sockets`` -> ``labkit/checks/sockets.py``)."""
    from .checking import exercises

    for ex in exercises(lesson).values():
        for c in ex.checks:
            source = inspect.getsourcefile(c.fn)
            if source and Path(source).parent.name == "checks":
                return root / "labkit" / "checks" / Path(source).name
    return root / "labkit" / "checks" / f"{lesson.split('_', 1)[1]}.py"


def _cells(exercise: str, function: str, title: str) -> list:
    import nbformat

    v4 = nbformat.v4
    answer = v4.new_code_cell(f"def {function}():\n    {BEGIN}\n    return 42\n    {END}")
    answer.metadata["tags"] = ["answer"]
    return [v4.new_markdown_cell(f"## Exercise: {title}\n\nTODO: what to write, what it "
                                 f"returns, and what the check will try. Write `{function}()`."),
            answer, v4.new_code_cell(f'labkit.check("{exercise}", {function})')]


def _check_code(exercise: str, function: str, title: str, variable: str,
                local_imports: str) -> str:
    return f'''

# --- {exercise} {"-" * max(3, 80 - len(exercise))}

{variable} = Exercise({json.dumps(exercise)}, {json.dumps(title, ensure_ascii=False)})


@{variable}.check("TODO: what this check shows, e.g. the simple case returns 42",
{" " * (len(variable) + 8)}hint="TODO: a nudge towards the idea, never the code.")
def _(answer):{local_imports}
    got = call(answer).value
    expect(got == 42, f"{function}() returned {{got!r}}, expected 42")
'''


def _mutants(exercise: str, function: str) -> str:
    wrong = [("returns_none", "return None"), ("returns_a_string", 'return "42"'),
             ("off_by_one", "return 41"), ("raises", 'raise RuntimeError("not yet")')]
    faults = {"raises": r"raised RuntimeError"}
    return "".join(
        f'    Mutant("{exercise}", "{name}", "def {function}():\\n    {body}\\n",\n'
        f'           fault=r"{faults.get(name, "expected 42")}"),\n'
        for name, body in [(n, b.replace('"', '\\"')) for n, b in wrong])


def new_exercise(root: Path, lab: str, exercise: str, title: str = "") -> Scaffolded:
    """Scaffold ``exercise`` (``"02.word_count"``) in lesson ``lab`` (``"02"``) of the course
    folder ``root``.

    >>> new_exercise(find_root(), "02", "02.word_count", "Count words")  # doctest: +SKIP

    Raises:
        LabError: a malformed id, one of another lesson or one already defined.
    """
    import nbformat

    from .checking import exercises
    from .release import resolve_lab

    lesson = resolve_lab(root, lab)
    match = _ID.fullmatch(exercise)
    if not match or match.group(1) != lesson[:2]:
        raise LabError(f"an exercise id is the lesson's number, a dot and a snake_case name, "
                       f"like {lesson[:2]}.word_count; got {exercise!r}")
    if exercise in exercises():
        raise LabError(f"{exercise} exists already; pick another name")
    function, title = match.group(2), title or match.group(2).replace("_", " ").capitalize()
    solution = root / "solutions" / f"{lesson}.ipynb"
    nb = nbformat.read(solution, as_version=4)
    at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
               and c.source.lstrip().startswith("## Question")), len(nb.cells))
    nb.cells[at:at] = _cells(exercise, function, title)
    nbformat.validator.normalize(nb)
    nbformat.write(nb, solution)

    module = _checks_module(root, lesson)
    head = "" if module.exists() else (
        f'"""Checks for the exercises of lesson {lesson}."""\nfrom __future__ import '
        "annotations\n\nfrom ..checking import Exercise, call, expect\n")
    imported = re.search(r"^from \.\.checking import (?:\(([^)]*)\)|(.*)$)",
                         module.read_text() if module.exists() else head, re.M)
    names = set(re.findall(r"\w+", "".join(g or "" for g in imported.groups()))) \
        if imported else set()
    missing = sorted({"Exercise", "call", "expect"} - names)
    if "Exercise" in missing:
        raise LabError(f"{module} does not import Exercise from labkit.checking; add "
                       "`from ..checking import Exercise, call, expect` at its top first")
    local = f"\n    from ..checking import {', '.join(missing)}\n" if missing else ""
    with open(module, "a", encoding="utf-8") as f:
        f.write(head + _check_code(exercise, function, title, function.upper(), local))

    config = root / "labkit" / "course.toml"
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[exercises."{exercise}"]\nminutes = 15\n\n[exercises."{exercise}".points]\n'
                f'{json.dumps("TODO: what this check shows, e.g. the simple case returns 42")}'
                " = 1\n")

    mutants = root / "tests" / "mutants" / f"{lesson}.py"
    text = mutants.read_text() if mutants.exists() else (
        f'"""Wrong answers to lesson {lesson}."""\nfrom mutants import Mutant\n\nMUTANTS = [\n]\n')
    end = text.rstrip().rfind("]")
    if end < 0 or "MUTANTS" not in text:
        raise LabError(f"{mutants} has no MUTANTS list to add to")
    mutants.write_text(text[:end] + _mutants(exercise, function) + text[end:])

    test = root / "tests" / f"test_checks_{module.stem}.py"
    with open(test, "a", encoding="utf-8") as f:
        f.write(("" if test.exists() else
                 f'"""Lesson {lesson}\'s check helpers."""\nfrom __future__ import annotations\n')
                + f"\n\ndef test_{function}_scaffold_is_replaced_by_real_tests():\n"
                  f'    """TODO: test the helpers {exercise}\'s checks use (the wrong answers '
                  f'are\n    mutants in tests/mutants/{lesson}.py)."""\n')
    return Scaffolded(exercise, function, (solution, module, config, mutants, test))
