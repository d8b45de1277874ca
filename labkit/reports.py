"""What grading leaves behind: one row per student, and the tables made from the rows.

:mod:`labkit.grade` runs the submissions and hands each outcome over as a
:class:`GradeRow`; everything an instructor reads (``grades.csv`` with a column per
exercise, ``grades.json``, the class summary and its histogram, the CSV files Canvas,
Moodle and Gradescope import) is written here, atomically, so a reader never sees half
a file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LabError

__all__ = [
    "EXPORTS",
    "GradeRow",
    "Summary",
    "class_summary",
    "exercise_scores",
    "export",
    "load_row",
    "load_rows",
    "plot_scores",
    "summary_markdown",
    "write_atomically",
    "write_summary",
    "write_tables",
]


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
    written: list[dict] = field(default_factory=list)  # written answers: item, question, answer
    version: str = ""             # the checks' version that graded it (labkit.gradebook)
    manual: list[dict] = field(default_factory=list)   # merged from manual.csv: item, points, comment
    late_days: float = 0.0
    penalty: float = 0.0          # points taken by the late policy


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


def load_rows(graded: Path, published: bool = False) -> list[GradeRow]:
    """The rows of a graded folder (what ``labkit grade --out`` wrote), by student: as the
    grader left them (``results/``), or ``published`` with manual points and late
    penalties applied (``grades.json``).

    Raises:
        LabError: the folder has no graded results.
    """
    try:
        if published:
            rows = [GradeRow(**r) for r in json.loads(
                (graded / "grades.json").read_text(encoding="utf-8"))]
        else:
            rows = [r for r in map(load_row, sorted((graded / "results").glob("*.json")))
                    if r is not None]
    except (OSError, ValueError, TypeError):
        rows = []
    if not rows:
        raise LabError(f"{graded} holds no graded results (results/*.json, grades.json); "
                       "pass the folder given to `labkit grade --out`")
    return sorted(rows, key=lambda r: r.student)


def _number(x: float) -> str:
    return f"{x:g}"


def _manual_text(m: dict) -> str:
    points = "" if m.get("points") is None else f" {m['points']:g}"
    return f"{m.get('item') or 'all'}{points}: {m.get('comment', '')}".strip().rstrip(":")


def write_tables(out: Path, rows: list[GradeRow], exercise_ids: list[str]) -> None:
    """``grades.csv`` (one column per exercise after the totals) and ``grades.json``.

    >>> write_tables(Path("graded"), rows, ["00.exit_code"])  # doctest: +SKIP
    """
    header = ["student", "id", "name", "email", "lab", "submitted", "score", "max_score",
              "status", "seconds", "late_days", "penalty", "manual", "checks_version",
              *exercise_ids]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(header)
    for r in rows:
        per_exercise = exercise_scores(r)
        writer.writerow([r.student, r.student_id, r.name, r.email, r.lab, r.submitted,
                         _number(r.score), _number(r.max_score), r.status, f"{r.seconds:.1f}",
                         _number(r.late_days), _number(r.penalty),
                         "; ".join(_manual_text(m) for m in r.manual), r.version,
                         *(_number(per_exercise.get(e, (0, 0))[0]) for e in exercise_ids)])
    write_atomically(out / "grades.csv", table.getvalue())
    write_atomically(out / "grades.json",
                     json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False))


@dataclass(frozen=True)
class Summary:
    """The class at a glance: how each exercise went and which checks most students lost."""

    lab: str
    students: int                                  # rows with a submission
    scores: list[float]                            # each graded student's score
    max_score: float
    exercise_means: dict[str, tuple[float, float]]  # exercise -> (mean points, possible)
    most_failed: list[tuple[str, str, int]]         # (exercise, check, students who lost it)


def class_summary(rows: list[GradeRow]) -> Summary:
    """Means per exercise and the most-failed checks, over the students who submitted.

    >>> row = GradeRow("ada", "00", 1, 2, "ok", 1.0, checks=[
    ...     {"exercise": "00.a", "check": "x", "points": 1, "max_points": 1, "passed": True},
    ...     {"exercise": "00.a", "check": "y", "points": 0, "max_points": 1, "passed": False}])
    >>> class_summary([row]).most_failed
    [('00.a', 'y', 1)]
    """
    graded = [r for r in rows if r.status != "missing"]
    totals: dict[str, list[float]] = {}
    possible: dict[str, float] = {}
    failed: dict[tuple[str, str], int] = {}
    for r in graded:
        for exercise, (got, out_of) in exercise_scores(r).items():
            totals.setdefault(exercise, []).append(got)
            possible[exercise] = out_of
        for c in r.checks:
            if not c.get("passed"):
                key = (c["exercise"], c["check"])
                failed[key] = failed.get(key, 0) + 1
    ranked = sorted(failed.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    return Summary(rows[0].lab if rows else "", len(graded), [r.score for r in graded],
                   max((r.max_score for r in rows), default=0.0),
                   {e: (sum(v) / len(v), possible[e]) for e, v in totals.items()},
                   [(e, c, n) for (e, c), n in ranked])


def plot_scores(summary: Summary, path: Path) -> None:
    """Save the histogram of the class's scores as a PNG (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .display import axes

    figure = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = axes(f"{summary.lab}: scores of {summary.students} student(s)",
              f"score (points, out of {summary.max_score:g})", "students",
              ax=figure.add_subplot())
    top = max(summary.max_score, 1.0)
    ax.hist(summary.scores, bins=min(20, max(int(top), 1)), range=(0, top),
            color="#4c72b0", edgecolor="white")
    ax.yaxis.get_major_locator().set_params(integer=True)
    figure.savefig(path, format="png", dpi=100)


def summary_markdown(summary: Summary) -> str:
    """The class summary as Markdown: means per exercise, then the most-failed checks."""
    from .feedback import escape_markdown as md

    mean = sum(summary.scores) / len(summary.scores) if summary.scores else 0.0
    lines = [f"# {md(summary.lab)}: class summary", "",
             f"{summary.students} graded submission(s); mean score {mean:.1f} / "
             f"{summary.max_score:g}.", "", "![scores](scores.png)", "",
             "| exercise | mean points | of |", "|---|---|---|"]
    lines += [f"| {md(e)} | {m:.2f} | {p:g} |" for e, (m, p) in summary.exercise_means.items()]
    lines += ["", "## Most-failed checks", "", "| exercise | check | students who lost it |",
              "|---|---|---|"]
    lines += [f"| {md(e)} | {md(c)} | {n} of {summary.students} |"
              for e, c, n in summary.most_failed]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: list[GradeRow]) -> Summary:
    """``summary.md`` and ``scores.png`` in ``out``; returns the summary."""
    summary = class_summary(rows)
    write_atomically(out / "summary.md", summary_markdown(summary))
    plot_scores(summary, out / "scores.png")
    return summary


# --- exports a learning-management system imports ------------------------------------

EXPORTS = ("canvas", "moodle", "gradescope")


def export(rows: list[GradeRow], kind: str, path: Path) -> None:
    """Write the rows as the grade-import CSV of ``kind`` (one of :data:`EXPORTS`).

    * canvas: the gradebook's own columns (``Student``, ``ID``, ``SIS User ID``,
      ``SIS Login ID``, ``Section``) then one named after the lab, with the
      ``Points Possible`` line under the header;
    * moodle: ``Email address``, ``ID number``, ``Full name`` and the lab's column (map
      the identifier to email or ID number on import);
    * gradescope: ``Name``, ``SID``, ``Email``, ``Score``.

    Students on the roster who submitted nothing get 0.

    >>> export(rows, "canvas", Path("canvas.csv"))  # doctest: +SKIP

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in EXPORTS:
        raise ValueError(f"no export {kind!r}; exports are: {', '.join(EXPORTS)}")
    lab = rows[0].lab if rows else "lab"
    out_of = max((r.max_score for r in rows), default=0.0)
    table = io.StringIO()
    w = csv.writer(table)
    if kind == "canvas":
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", lab])
        w.writerow(["Points Possible", "", "", "", "", _number(out_of)])
        w.writerows([r.name or r.student, "", r.student_id or r.student, r.email, "",
                     _number(r.score)] for r in rows)
    elif kind == "moodle":
        w.writerow(["Email address", "ID number", "Full name", lab])
        w.writerows([r.email, r.student_id or r.student, r.name or r.student,
                     _number(r.score)] for r in rows)
    else:
        w.writerow(["Name", "SID", "Email", "Score"])
        w.writerows([r.name or r.student, r.student_id or r.student, r.email,
                     _number(r.score)] for r in rows)
    write_atomically(path, table.getvalue())
