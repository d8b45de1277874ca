"""A submitted notebook's answers, as the grader runs them: from every cell, never from one.

What the grader checks must be what the student's notebook defines when it
runs top to bottom: an extra cell, a helper in an untagged cell or a later
redefinition counts exactly as it does in JupyterLab, and a cell that raises
costs only what it fails to define. So the answer is built from every code
cell but the check cells, in order, one top-level statement at a time; as in
the kernel, a cell stops at its first error, and the next cell runs.

Only statements that give a name a value are kept (imports, ``def``,
``class``, assignments and ``del``); expressions, loops and ``if`` blocks at
the top level (a demo that calls the answer, a plot, a benchmark) are left
out. They define nothing the answer needs, and an
answer is defined afresh in each process that calls it, so running them
again for every call would only make an honest notebook slow. IPython-only
lines (``%magic``, ``!shell``) are left out too.

The statements are taken from the notebook as submitted, before any of it
runs, and they only ever run in the process of the answer's call, a child of
the checker (see :mod:`labkit.checking`).
"""
from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHECK_CALL",
    "NotebookAnswer",
    "Statement",
    "answers",
    "define",
    "definitions",
    "is_check_cell",
]

CHECK_CALL = "labkit.check("  # what marks a check cell
_BINDING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
            ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Delete)


def is_check_cell(source: str) -> bool:
    """Whether a code cell runs a check (those are the grader's, not the student's)."""
    return CHECK_CALL in source


@dataclass(frozen=True)
class Statement:
    """One top-level statement of the notebook, and the code cell it is in (1 = first)."""

    cell: int
    line: int
    source: str


def _cell_source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _python(source: str) -> str:
    """The cell with IPython-only lines (magics, shell escapes) blanked, lines kept."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


def definitions(cells: Iterable[Any]) -> list[Statement]:
    """The statements that define the notebook's names, from every code cell but the checks.

    A cell that does not parse contributes nothing; the others are not affected.

    >>> cells = [{"cell_type": "code", "source": "import os\\nprint(os.getpid())"},
    ...          {"cell_type": "code", "source": "def f():\\n    return 1\\nf()"},
    ...          {"cell_type": "code", "source": "labkit.check('00.x', f)"}]
    >>> [(s.cell, s.source) for s in definitions(cells)]
    [(1, 'import os'), (2, 'def f():\\n    return 1')]
    """
    found = []
    code_cells = [c for c in cells if c.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, start=1):
        source = _python(_cell_source(cell))
        if is_check_cell(source):
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        lines = source.split("\n")
        for node in tree.body:
            if isinstance(node, _BINDING):
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list",
                                                                        [])])
                text = "\n".join(lines[first - 1:node.end_lineno])
                found.append(Statement(number, first, text))
    return found


_NAMESPACES: dict[int, dict[str, Any]] = {}


def define(statements: list[Statement]) -> dict[str, Any]:
    """Run the statements in a fresh namespace and return it.

    As in a kernel, a cell stops at its first error and the next cell runs:

    >>> names = define(definitions([{"cell_type": "code", "source": "x = 1\\ny = 1 / 0\\nz = 3"},
    ...                             {"cell_type": "code", "source": "w = x + 1"}]))
    >>> names["x"], "z" in names, names["w"]
    (1, False, 2)
    """
    namespace: dict[str, Any] = {"__name__": "__main__"}
    failed: set[int] = set()
    for s in statements:
        if s.cell in failed:
            continue  # as in the kernel: a cell stops at its first error
        try:
            code = compile("\n" * (s.line - 1) + s.source, f"<code cell {s.cell}>", "exec")
            exec(code, namespace)
        except Exception:
            failed.add(s.cell)
    return namespace


class NotebookAnswer:
    """A function of a submitted notebook, defined afresh in each process that calls it.

    Calling it runs the notebook's :func:`definitions` in the calling process
    (a check's child, never the checker) and then the named function.

    >>> from labkit.checking import call
    >>> double = NotebookAnswer("double", [Statement(1, 1, "def double(x):\\n    return 2 * x")])
    >>> call(double, 21).value
    42
    """

    def __init__(self, name: str, statements: list[Statement]) -> None:
        self.name = name
        self.statements = statements

    def namespace(self) -> dict[str, Any]:
        """The notebook's names, made once per process (its forks inherit them), and shared
        by every answer made from the same statements, as in one kernel."""
        from .checking import answer_pid

        if answer_pid() == 0:  # only ever in the process of an answer's call
            raise RuntimeError("the notebook's code runs only inside checking.call(), never in "
                               "the checker")
        key = id(self.statements)
        if key not in _NAMESPACES:
            if os.getcwd() not in sys.path:  # as in a kernel: the notebook's folder imports
                sys.path.insert(0, os.getcwd())
            _NAMESPACES[key] = define(self.statements)
        return _NAMESPACES[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self.namespace().get(self.name)
        if not callable(fn):
            raise NameError(f"your notebook does not define the function {self.name}() "
                            "(does the cell that defines it raise an error before it?)")
        return fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<the function {self.name}() of your notebook>"


def answers(cells: Iterable[Any],
            wanted: dict[str, str | tuple[str, ...]]) -> dict[str, Any]:
    """Exercise id -> the answer to check (a NotebookAnswer, or a tuple of them).

    >>> cells = [{"cell_type": "code", "source": "def f(): pass\\ndef g(): pass"}]
    >>> answers(cells, {"00.a": "f", "00.b": ("f", "g")})["00.b"]
    (<the function f() of your notebook>, <the function g() of your notebook>)
    """
    statements = definitions(cells)
    return {exercise: NotebookAnswer(names, statements) if isinstance(names, str)
            else tuple(NotebookAnswer(n, statements) for n in names)
            for exercise, names in wanted.items()}
