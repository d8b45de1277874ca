"""The human in the loop: written answers, manual points, overrides, comments, lateness.

The grader's own result for a student (``results/STUDENT.json``) is never edited: it
is what the checks said. What a person decides lives in ``manual.csv`` next to it
(student, item, points, comment), and is merged into the CSV, JSON and feedback
every time the reports are written, so a regrade keeps it. ``labkit grade`` adds a
line per student and written answer to that file (never touching lines already
there) and writes ``grading_sheet.md``, every written answer under its question,
for reading while filling in the points.

Items of ``manual.csv``:

* ``written:CELL`` - points for the written answer in the Markdown cell ``CELL`` (its
  cell id); worth ``[lessons."LAB".written] CELL = N`` in the course config;
* an exercise id (``00.exit_code``) - the exercise's points, replacing the checks';
* empty - a comment on the whole work, with optional points added (negative: taken).
"""
from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .course import Course
from .errors import LabError
from .reports import GradeRow, exercise_scores, write_atomically

__all__ = ["SHEET_COLUMNS", "apply", "load_sheet", "update_sheet", "written_answers"]

SHEET_COLUMNS = ("student", "item", "points", "comment")
WRITTEN = "written:"
_STUB = "*Your answer here.*"


def written_answers(submitted: bytes, exercise_notebook: Path) -> list[dict[str, str]]:
    """The student's written answers: for each Markdown answer cell of the exercise
    notebook (the released placeholder), the question above it and what the student put
    in the cell with the same id (cell ids survive editing in JupyterLab).

    >>> from labkit.release import find_root
    >>> written_answers(b"{}", find_root() / "exercises" / "00_processes.ipynb")[0]["item"]
    'written:c015'
    """
    import nbformat

    questions: dict[str, str] = {}
    previous = ""
    for cell in nbformat.read(exercise_notebook, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.strip() == _STUB and cell.get("id"):
            questions[cell["id"]] = previous.strip()
        previous = cell.source if cell.cell_type == "markdown" else ""
    try:
        cells = nbformat.reads(submitted.decode(), as_version=4).cells
    except Exception:  # an unreadable notebook has no answers; its note says why
        cells = []
    given = {c.get("id"): c.source for c in cells if c.cell_type == "markdown"}
    return [{"item": WRITTEN + cell_id, "question": question,
             "answer": given.get(cell_id, "").strip()[:20000]}
            for cell_id, question in questions.items()]


def load_sheet(path: Path) -> list[dict[str, str]]:
    """The lines of a ``manual.csv`` ([] if there is none yet).

    Raises:
        LabError: a column is missing or a points value is not a number (with its line).
    """
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in SHEET_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LabError(f"{path} needs the columns {', '.join(SHEET_COLUMNS)}; it lacks "
                           f"{', '.join(missing)}")
        lines = []
        for number, line in enumerate(reader, start=2):
            entry = {c: (line.get(c) or "").strip() for c in SHEET_COLUMNS}
            if entry["points"]:
                try:
                    float(entry["points"])
                except ValueError:
                    raise LabError(f"{path}, line {number}: points must be a number (or "
                                   f"empty), got {entry['points']!r}") from None
            lines.append(entry)
    return lines


def update_sheet(out: Path, rows: list[GradeRow]) -> list[dict[str, str]]:
    """Add a line to ``out/manual.csv`` for each written answer not listed yet (lines
    already there are kept as they are), write ``out/grading_sheet.md``, and return
    the sheet's lines."""
    from .feedback import escape_markdown as md

    path = out / "manual.csv"
    lines = load_sheet(path)
    have = {(line["student"], line["item"]) for line in lines}
    added = [{"student": r.student, "item": w["item"], "points": "", "comment": ""}
             for r in rows for w in r.written if (r.student, w["item"]) not in have]
    if added or not path.exists():
        lines += added
        table = io.StringIO()
        writer = csv.DictWriter(table, SHEET_COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
        write_atomically(path, table.getvalue())
    questions: dict[str, str] = {}
    for r in rows:
        for w in r.written:
            questions.setdefault(w["item"], w["question"])
    text = [f"# Grading sheet: {md(rows[0].lab) if rows else ''}", "",
            "Fill in points and comments in manual.csv (one line per student and item), "
            "then run `labkit publish` on this folder.", ""]
    for item, question in questions.items():
        text += [f"## {item}", "", *(f"> {q}" for q in question.splitlines()), ""]
        for r in rows:
            answer = next((w["answer"] for w in r.written if w["item"] == item), "")
            text += [f"### {md(r.name or r.student)} ({md(r.student)})", "",
                     answer or "*(no answer)*", ""]
    write_atomically(out / "grading_sheet.md", "\n".join(text) + "\n")
    return lines


def apply(row: GradeRow, sheet: list[dict[str, str]], course: Course) -> GradeRow:
    """``row`` with the manual lines for its student, and the late penalty, applied.

    Written answers add their worth to the maximum (and the points given, if any);
    an exercise line replaces that exercise's points from the checks; a line without an
    item adds its points. Then a late submission loses the fraction the course's late
    policy says, of the whole score.
    """
    auto = exercise_scores(row)
    worth = course.written_points(row.lab)
    score, max_score = row.score, row.max_score
    manual: list[dict[str, Any]] = []
    for w in row.written:
        max_score += worth.get(w["item"].removeprefix(WRITTEN), 0.0)
    for line in sheet:
        if line["student"] != row.student:
            continue
        item, given = line["item"], float(line["points"]) if line["points"] else None
        if item.startswith(WRITTEN):
            top = worth.get(item.removeprefix(WRITTEN), 0.0)
            if given is not None and not 0 <= given <= top:
                raise LabError(f"manual.csv: {row.student} {item}: {given:g} points, but the "
                               f"answer is worth 0 to {top:g} (course config, [lessons."
                               f"{row.lab!r}.written])")
            score += given or 0.0
        elif item in auto:
            if given is not None:
                if not 0 <= given <= auto[item][1]:
                    raise LabError(f"manual.csv: {row.student} {item}: {given:g} points, but "
                                   f"the exercise is worth 0 to {auto[item][1]:g}")
                score += given - auto[item][0]
        elif item:
            raise LabError(f"manual.csv: {row.student}: no item {item!r} in {row.lab}; items "
                           f"are exercise ids ({', '.join(auto)}), written:CELL, or empty")
        else:
            score += given or 0.0
        manual.append({"item": item, "points": given, "comment": line["comment"]})
    late_days, penalty = 0.0, 0.0
    deadline = course.deadline(row.lab)
    if deadline is not None and row.submitted:
        submitted = datetime.fromisoformat(row.submitted.replace("Z", "+00:00"))
        late_days = round(course.late.days_late(submitted, deadline), 3)
        penalty = round(max(score, 0.0) * course.late.fraction_lost(late_days), 3)
    return replace(row, score=round(max(score - penalty, 0.0), 3), max_score=max_score,
                   manual=manual, late_days=late_days, penalty=penalty)
