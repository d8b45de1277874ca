"""Shared notebook display: labelled plot axes, progress bars, small tables, status words.

Every lesson draws with these so figures look alike (title, labelled axes
with units) and slow loops show progress the same way. matplotlib is
imported only when a figure is made, so importing labkit stays quick.
"""
from __future__ import annotations

import html
import inspect
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["Code", "Status", "Table", "axes", "progress", "show_code"]

T = TypeVar("T")


class Status(str, Enum):
    """Base of labkit's status enums: each member is its word, and prints as that word.

    A status compares equal to its word (``outcome == "handled"``) and reads
    as that word in printed text, lists and tables, so a notebook that prints
    one shows what a person would write.

    >>> class Light(Status):
    ...     RED = "red"
    >>> Light.RED == "red", f"{Light.RED}", [Light.RED]
    (True, 'red', ['red'])
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __repr__(self) -> str:
        return repr(self.value)


def axes(title: str, xlabel: str, ylabel: str, ax: Any = None,
         figsize: tuple[float, float] = (7.0, 4.0)) -> Any:
    """A matplotlib Axes with its title and axis labels set (pass ``ax`` to reuse one).

    >>> ax = axes("Pipe throughput", "write size (bytes)", "throughput (MB/s)")  # doctest: +SKIP
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return ax


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    """Wrap a slow loop in a progress bar: a widget in JupyterLab, nothing when not interactive.

    >>> for size in progress([1, 2, 3], desc="sizes"):  # doctest: +SKIP
    ...     pass
    """
    from tqdm.auto import tqdm

    bar: Iterable[T] = tqdm(iterable, desc=desc, total=total, leave=False, disable=None)
    return bar


class Table:
    """Rows shown as an HTML table in a notebook and as aligned text elsewhere.

    >>> Table(["signal", "number"], [["SIGINT", 2], ["SIGTERM", 15]])
    signal    number
    SIGINT         2
    SIGTERM       15
    """

    def __init__(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.headers = list(headers)
        self.rows = [list(r) for r in rows]

    def __repr__(self) -> str:
        cells = [[str(h) for h in self.headers]] + [[str(c) for c in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        numeric = [bool(self.rows) and all(isinstance(r[i], (int, float)) for r in self.rows)
                   for i in range(len(self.headers))]
        return "\n".join("   ".join(c.rjust(w) if num else c.ljust(w)
                                    for c, w, num in zip(row, widths, numeric, strict=False)).rstrip()
                         for row in cells)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                       for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"


class Code:
    """The source of one or more experiments, folded until the student opens it.

    Made by :func:`show_code`. In JupyterLab it is a "Show the code" fold with the
    source coloured; as text (a terminal, nbval) it is the plain source.
    """

    def __init__(self, parts: list[tuple[str, str]]) -> None:
        self.parts = parts                                      # (where it is, source)

    def __repr__(self) -> str:
        return "\n\n".join(f"# {where}\n{source}" for where, source in self.parts)

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(noclasses=True, nobackground=True)
        body = "".join(f"<p><code>{html.escape(where)}</code></p>"
                       + highlight(source, PythonLexer(), formatter)
                       for where, source in self.parts)
        names = ", ".join(where.split(": ")[-1] for where, _ in self.parts)
        return (f"<details><summary>Show the code: {html.escape(names)}</summary>"
                f"{body}</details>")


def show_code(*objects: Any) -> Code:
    """The source of functions, classes, modules or program files, to read in the notebook.

    Each part says which file of the course it comes from, so the student can open it
    too. A Path is shown whole (the programs in ``labkit/programs/`` run on their own)::

        show_code(labkit.signals.record_signals)

    Raises:
        LabError: something given has no Python source to show (a built-in, a C function).
    """
    from .errors import LabError

    root = Path(__file__).resolve().parent.parent
    parts = []
    for obj in objects:
        try:
            if isinstance(obj, Path):
                path, source, first = obj.resolve(), obj.read_text(), 1
            else:
                path = Path(inspect.getsourcefile(obj) or "").resolve()
                lines, first = inspect.getsourcelines(obj)
                source, first = "".join(lines), max(first, 1)
        except (OSError, TypeError) as e:
            raise LabError(f"{obj!r} has no Python source to show (built-in or compiled "
                           f"code); give a function, a class, a module or a .py file") from e
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        name = (path.name if isinstance(obj, (Path, ModuleType))
                else getattr(obj, "__qualname__", repr(obj)))
        last = first + source.count("\n") - 1
        parts.append((f"{shown}, lines {first}-{last}: {name}", source.rstrip("\n")))
    return Code(parts)
