"""The gradebook: every lab's results for every student, in one SQLite file.

Each time a lab's reports are written, its rows replace that lab's rows here, with
the version of the checks that graded them: a hash of the source of the modules
defining the lab's checks and of the points the course config gives them. A row
whose version is not the current one was graded by checks that have changed since:
``labkit gradebook`` marks it, so stale scores never mix in silently. SQLite (from
the standard library) because it is one file, safe against a crash halfway through
a write, and readable by any tool.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import LabError

__all__ = ["Entry", "checks_version", "class_table", "entries", "record"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    lab TEXT NOT NULL, student TEXT NOT NULL, student_id TEXT, name TEXT, email TEXT,
    submitted TEXT, score REAL NOT NULL, max_score REAL NOT NULL, status TEXT NOT NULL,
    version TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (lab, student)
)"""


def checks_version(found: dict[str, Any]) -> str:
    """A short hash of what decides a lab's scores: the source of the modules defining the
    checks of ``found`` (exercise id -> Exercise) and each check's points.

    >>> from labkit.checking import exercises
    >>> len(checks_version(exercises("00")))
    12
    """
    digest = hashlib.sha256()
    sources = sorted({inspect.getsourcefile(c.fn) or "" for ex in found.values()
                      for c in ex.checks})
    for source in sources:
        digest.update(Path(source).read_bytes() if source else b"")
    for exercise_id, ex in sorted(found.items()):
        for c in ex.checks:
            digest.update(f"{exercise_id}\0{c.name}\0{c.points:g}\n".encode())
    return digest.hexdigest()[:12]


@contextmanager
def _open(path: Path) -> Iterator[sqlite3.Connection]:
    try:
        db = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as e:
        raise LabError(f"cannot open the gradebook {path}: {e}") from e
    with closing(db), db:  # one transaction: all of a lab's rows or none
        try:
            db.execute(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise LabError(f"{path} is not a labkit gradebook: {e}") from e
        yield db


def record(path: Path, rows: list[Any]) -> None:
    """Put ``rows`` (GradeRows with manual points applied, each with the version of the
    checks that graded it) in the gradebook, replacing those students' rows of that lab."""
    with _open(path) as db:
        for r in rows:
            db.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (r.lab, r.student, r.student_id, r.name, r.email, r.submitted,
                        r.score, r.max_score, r.status, r.version,
                        json.dumps(asdict(r), ensure_ascii=False)))


@dataclass(frozen=True)
class Entry:
    """One student's result for one lab, as the gradebook holds it."""

    lab: str
    student: str
    name: str
    score: float
    max_score: float
    status: str
    version: str


def entries(path: Path) -> list[Entry]:
    """Every result in the gradebook, by lab and student.

    Raises:
        LabError: there is no gradebook at ``path``.
    """
    if not path.exists():
        raise LabError(f"no gradebook at {path}; `labkit grade` writes it (see --gradebook)")
    with _open(path) as db:
        found = db.execute("SELECT lab, student, name, score, max_score, status, version "
                           "FROM results ORDER BY lab, student").fetchall()
    return [Entry(*line) for line in found]


def class_table(found: list[Entry], current: dict[str, str]) -> str:
    """The class across labs: a line per student, a column per lab, and the total.

    ``current`` maps each lab to its checks' version now; a score graded by another
    version is marked ``*`` (regrade it), a missing submission ``-``.

    >>> print(class_table([Entry("00_processes", "ada", "Ada", 15, 15, "ok", "v1")],
    ...                   {"00_processes": "v2"}))
    student  00_processes  total
    Ada      15/15*        15/15
    * graded by an older version of the checks: regrade with labkit grade
    """
    labs = sorted({e.lab for e in found})
    students = sorted({e.student for e in found})
    by = {(e.lab, e.student): e for e in found}
    names = {e.student: e.name or e.student for e in found}
    table = [["student", *labs, "total"]]
    stale = False
    for s in students:
        cells, got, out_of = [], 0.0, 0.0
        for lab in labs:
            e = by.get((lab, s))
            if e is None:
                cells.append("")
                continue
            old = e.version != current.get(lab, e.version)
            stale |= old
            cells.append("-" if e.status == "missing" else
                         f"{e.score:g}/{e.max_score:g}" + ("*" if old else ""))
            got, out_of = got + e.score, out_of + e.max_score
        table.append([names[s], *cells, f"{got:g}/{out_of:g}"])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in table]
    if stale:
        text.append("* graded by an older version of the checks: regrade with labkit grade")
    return "\n".join(text)
