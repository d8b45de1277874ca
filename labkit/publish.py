"""Write every report of a graded lab from the grader's results and the people's decisions.

``labkit grade`` calls :func:`publish` after each batch; ``labkit publish OUT`` calls it
alone, after manual.csv was edited, without running anything again. The grader's
results (``results/*.json``) are only read here: manual points, overrides, comments
and the late penalty are applied to copies, so they survive every regrade.
"""
from __future__ import annotations

from pathlib import Path

from . import gradebook, manual
from .course import current
from .feedback import feedback_html, feedback_markdown
from .reports import GradeRow, write_atomically, write_summary, write_tables

__all__ = ["publish"]


def publish(out: Path, rows: list[GradeRow], book: Path | None = None) -> list[GradeRow]:
    """Merge ``out/manual.csv`` and the late policy into ``rows``, then write the feedback
    pages, ``grades.csv``/``grades.json``, the class summary and (with ``book``) the
    gradebook. Returns the rows as published.

    >>> rows = publish(Path("graded"), load_rows(Path("graded")))  # doctest: +SKIP
    """
    course = current()
    sheet = manual.update_sheet(out, rows)
    final = [manual.apply(r, sheet, course) for r in rows]
    feedback = out / "feedback"
    feedback.mkdir(mode=0o700, exist_ok=True)
    for r in final:
        write_atomically(feedback / f"{r.student}.md", feedback_markdown(r))
        write_atomically(feedback / f"{r.student}.html", feedback_html(r))
    exercise_ids = list(dict.fromkeys(c["exercise"] for r in final for c in r.checks))
    write_tables(out, final, exercise_ids)
    write_summary(out, final)
    if book is not None:
        gradebook.record(book, final)
    return final
