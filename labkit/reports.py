"""What grading leaves behind: one row per student, and the tables made from the rows.

:mod:`labkit.grade` runs the submissions and hands each outcome over as a
:class:`GradeRow`; everything an instructor reads (``grades.csv``, ``grades.json``)
is written here, atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["GradeRow", "exercise_scores", "load_row", "write_atomically", "write_tables"]


@dataclass
class GradeRow:
    """One student's outcome for one lab: a line of grades.csv, with every check's result.

    ``student`` is the key the row is stored under (the roster id when there is a
    roster, else the submission's name); ``name`` is how the student is called.
    """

    student: str
    lab: str
    score: float
    max_score: float
    status: str                   # ok, error, timeout, kernel died, memory limit, ..., refused
    seconds: float
    checks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    student_id: str = ""
    name: str = ""
    email: str = ""
    submitted: str = ""           # ISO 8601 UTC time the submission was last changed
    errors: list[dict] = field(default_factory=list)  # cells that raised, placed for a student


def exercise_scores(row: GradeRow) -> dict[str, tuple[float, float]]:
    """Exercise id -> (points earned, points possible), in the order the checks ran.

    >>> exercise_scores(GradeRow("ada", "00", 1, 3, "ok", 1.0, checks=[
    ...     {"exercise": "00.a", "points": 1, "max_points": 2},
    ...     {"exercise": "00.a", "points": 0, "max_points": 1}]))
    {'00.a': (1, 3)}
    """
    scores: dict[str, tuple[float, float]] = {}
    for c in row.checks:
        got, possible = scores.get(c["exercise"], (0, 0))
        scores[c["exercise"]] = (got + c["points"], possible + c["max_points"])
    return scores


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new, never half."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_row(path: Path) -> GradeRow | None:
    """The row stored in ``path``, or None if the file is torn or not a row."""
    try:
        row = GradeRow(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, OSError):
        return None
    return row if isinstance(row.student, str) and isinstance(row.checks, list) else None


def _number(x: float) -> str:
    return f"{x:g}"


def write_tables(out: Path, rows: list[GradeRow], exercise_ids: list[str]) -> None:
    """``grades.csv`` (one column per exercise after the totals) and ``grades.json``.

    >>> write_tables(Path("graded"), rows, ["00.exit_code"])  # doctest: +SKIP
    """
    header = ["student", "id", "name", "email", "lab", "submitted", "score", "max_score",
              "status", "seconds", *exercise_ids]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(header)
    for r in rows:
        per_exercise = exercise_scores(r)
        writer.writerow([r.student, r.student_id, r.name, r.email, r.lab, r.submitted,
                         _number(r.score), _number(r.max_score), r.status, f"{r.seconds:.1f}",
                         *(_number(per_exercise.get(e, (0, 0))[0]) for e in exercise_ids)])
    write_atomically(out / "grades.csv", table.getvalue())
    write_atomically(out / "grades.json",
                     json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False))
