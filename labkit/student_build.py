"""``labkit build-student OUT``: the course exactly as students get it, and nothing more.

An allowlist, not a list of exclusions: the lessons, the released exercises, the
labkit package (public checks only) and what installs it. ``solutions/``, ``tests/``
(which hold reference answers), the instructor's hidden checks, benchmarks and
``.git`` (whose history holds every solution) are never copied, because they are never
named. After copying, every file of the build is searched for the solutions' text: a
solution block most of whose lines appear in one file, or a sentence of a written
answer, fails the build, which is then removed (fail closed). The public
checks run on the student's machine, so a check that holds a reference answer is
reported too, as a warning naming the check to move to the hidden checks.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError
from .release import BEGIN, END, release

__all__ = ["Leak", "build_student", "leaks", "student_config"]

INCLUDED = ("README.md", "LICENSE", "pyproject.toml", "environment.yml", "notebooks",
            "exercises", "labkit")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
_WINDOW = 3  # consecutive solution lines that make a match


@dataclass(frozen=True)
class Leak:
    """Solution text found in a file of the build."""

    solution: str      # "solutions/00_processes.ipynb, cell c006"
    path: str          # the file of the build, relative to it
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what} of {self.solution}"


def _lines(text: str) -> list[str]:
    """The lines that carry meaning: stripped, without blanks and comments."""
    return [s for s in (line.strip() for line in text.splitlines())
            if s and not s.startswith("#")]


def _blocks(root: Path) -> list[tuple[str, str, list[str]]]:
    """(where, cell type, lines) of every solution block in ``root/solutions``."""
    import nbformat

    found = []
    for path in sorted((root / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            block: list[str] | None = None
            for line in cell.source.splitlines():
                if line.strip() == BEGIN:
                    block = []
                elif line.strip() == END and block is not None:
                    found.append((f"solutions/{path.name}, cell {cell.get('id', '?')}",
                                  cell.cell_type, block))
                    block = None
                elif block is not None:
                    block.append(line)
    return found


def _text(path: Path) -> str:
    """A file's text; a notebook's cell sources (what a student reads in JupyterLab)."""
    data = path.read_bytes()
    if path.suffix == ".ipynb":
        import nbformat

        return "\n".join(c.source for c in nbformat.reads(data.decode(), as_version=4).cells)
    return data.decode(errors="replace")


def leaks(root: Path, build: Path) -> list[Leak]:
    """Solution text of ``root/solutions`` found in the files under ``build``.

    A code block counts as leaked in a file holding half or more of its runs of three
    consecutive lines; a written answer, in a file holding one of its sentences of 40
    characters or more.

    >>> from labkit.release import find_root
    >>> leaks(find_root(), find_root() / "exercises")
    []
    """
    found: list[Leak] = []
    texts = {str(p.relative_to(build)): _text(p) for p in sorted(build.rglob("*"))
             if p.is_file() and not p.is_symlink()}
    flat = {name: "\n".join(_lines(text)) for name, text in texts.items()}
    for where, kind, block in _blocks(root):
        if kind == "markdown":
            sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(block))
                         if len(s.strip()) >= 40]
            squashed = {name: " ".join(text.split()) for name, text in texts.items()}
            found += [Leak(where, name, "a sentence of the written answer")
                      for name, text in squashed.items() if any(s in text for s in sentences)]
            continue
        lines = _lines("\n".join(block))
        runs = ["\n".join(lines[i:i + _WINDOW]) for i in range(len(lines) - _WINDOW + 1)]
        for name, text in flat.items():
            if runs and sum(run in text for run in runs) * 2 >= len(runs):
                found.append(Leak(where, name, "most of the solution code"))
    return found


_HIDDEN_TABLE = re.compile(r'^\[exercises\.("[^"\n]+"|[\w.]+)\.hidden\]\n(?:(?!\[).*(?:\n|$))*',
                           re.MULTILINE)


def student_config(path: Path) -> str:
    """The course config as students get it: each exercise's hidden checks reduced to how
    many there are and what they are worth (``hidden_checks``, ``hidden_points``), so
    their names, which tell what they test, stay with the instructor.

    Raises:
        LabError: a hidden check's name is still in the text after the rewrite.
    """
    from .course import Course

    config = Course.load(path)
    text = _HIDDEN_TABLE.sub("", path.read_text(encoding="utf-8"))
    for exercise in sorted({e for e, _ in config.hidden_points}):
        count, points = config.hidden(exercise)
        header = f'[exercises."{exercise}"]\n'
        totals = f"hidden_checks = {count}\nhidden_points = {points:g}\n"
        text = (text.replace(header, header + totals, 1) if header in text
                else f"{text.rstrip()}\n\n{header}{totals}")
    left = [name for _, name in config.hidden_points if f'"{name}"' in text]
    if left:
        raise LabError(f"{path}: the hidden checks {left} are still named after removing their "
                       "[exercises.ID.hidden] tables; keep their points only there")
    return text


def build_student(root: Path, out: Path) -> list[Leak]:
    """Write the student course into the new folder ``out``; return the warnings (solution
    text in a public check, to be moved to the hidden checks).

    >>> warnings = build_student(find_root(), Path("student-course"))  # doctest: +SKIP

    Raises:
        LabError: ``out`` exists and is not empty, ``exercises/`` is out of date, or
            solution text was found outside the public checks (the build is removed then).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LabError(f"{out} already exists and is not empty; give a new folder")
    stale = [r.exercise.name for r in release(root, check=True) if r.changed]
    if stale:
        raise LabError(f"exercises/ is out of date ({', '.join(stale)}); run `labkit release` "
                       "first, so students get the exercises as the solutions are now")
    out.mkdir(parents=True, exist_ok=True)
    try:
        for name in INCLUDED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, out / name, ignore=_IGNORED)
            elif source.is_file():
                shutil.copy2(source, out / name)
        config = out / "labkit" / "course.toml"
        config.write_text(student_config(root / "labkit" / "course.toml"), encoding="utf-8")
        found = leaks(root, out)
        fatal = [leak for leak in found if not leak.path.startswith("labkit/checks/")]
        if fatal:
            raise LabError("solution text in the student build: " + "; ".join(map(str, fatal))
                           + ". Nothing was built; remove it from those files")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return found
