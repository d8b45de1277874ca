"""Who a submission belongs to: student names, the class roster, and when work came in.

A grade silently given to the wrong row is the worst thing a grader can do, so names
are never made ASCII (``zoë_brandt`` stays ``zoë_brandt``, in NFC so that the same
letters typed two ways are one name) and two submissions that would land in one row
stop the batch with both names, instead of one overwriting the other. A roster (a CSV
file with the columns ``id``, ``name`` and ``email``) ties each submission to a
student; roster students who submitted nothing still get a row.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import LabError

__all__ = ["Roster", "Student", "check_unique", "student_name", "timestamp"]

ROSTER_COLUMNS = ("id", "name", "email")


def student_name(entry: str) -> str:
    """The student a submission entry (``NAME.ipynb`` or folder ``NAME``) is graded as.

    The name keeps its letters, normalised to NFC; control characters (which no one
    types in a name and which break terminals and tables) are refused.

    >>> student_name("zoe\\u0308_brandt.ipynb")
    'zoë_brandt'

    Raises:
        LabError: the name is empty or holds a control character.
    """
    name = unicodedata.normalize("NFC", entry.removesuffix(".ipynb")).strip()
    bad = [c for c in name if unicodedata.category(c).startswith("C")]
    if not name or bad:
        raise LabError(f"the submission {entry!r} has no usable student name "
                       f"({'it holds ' + repr(''.join(bad)) if bad else 'it is empty'}); "
                       "rename it to the student's name or roster id")
    return name


def _key(name: str) -> str:
    """What two names must differ in to be different students: NFC, case-folded."""
    return unicodedata.normalize("NFC", name).casefold()


def check_unique(names: dict[str, str]) -> None:
    """Refuse a batch in which two entries would be graded as one student.

    ``names`` maps each submission entry to the student it is graded as. Names that
    differ only in case (or in how their letters are encoded) collide: on many
    systems they are one file, and they are rarely two people.

    >>> check_unique({"müller_jan.ipynb": "müller_jan", "möller_jan.ipynb": "möller_jan"})
    >>> check_unique({"Ada.ipynb": "Ada", "ada": "ada"})
    Traceback (most recent call last):
    ...
    labkit.errors.LabError: these submissions would be graded as one student: 'Ada.ipynb' and 'ada' (as 'Ada'); rename one of them (or fix the roster) and grade again

    Raises:
        LabError: naming every pair that collides.
    """
    seen: dict[str, str] = {}
    clashes = []
    for entry, name in names.items():
        first = seen.setdefault(_key(name), entry)
        if first != entry:
            clashes.append(f"{first!r} and {entry!r} (as {names[first]!r})")
    if clashes:
        raise LabError("these submissions would be graded as one student: "
                       + "; ".join(clashes)
                       + "; rename one of them (or fix the roster) and grade again")


def timestamp(seconds: float) -> str:
    """A POSIX time as an ISO 8601 UTC string, to the second.

    >>> timestamp(0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Student:
    """One roster line."""

    id: str
    name: str
    email: str


@dataclass(frozen=True)
class Roster:
    """The class list: which student each submission belongs to.

    A submission named after a student's id, email, the part of the email before the
    ``@``, or name (letter case aside) is that student's.

    >>> r = Roster.parse("id,name,email\\ns1,Zoë Brandt,zoe@uni.example\\n")
    >>> r.find("zoe").name
    'Zoë Brandt'
    """

    students: tuple[Student, ...]

    @classmethod
    def parse(cls, text: str, where: str = "the roster") -> Roster:
        """Read a roster from CSV text with a header naming ``id``, ``name``, ``email``.

        Raises:
            LabError: a column is missing, an id is empty or repeated, or a name, id or
                email would match two students.
        """
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a BOM
        header = [(h or "").strip().lower() for h in reader.fieldnames or []]
        missing = [c for c in ROSTER_COLUMNS if c not in header]
        if missing:
            raise LabError(f"{where} needs the columns {', '.join(ROSTER_COLUMNS)} in its "
                           f"first line; it lacks {', '.join(missing)} (found: "
                           f"{', '.join(header) or 'nothing'})")
        reader.fieldnames = header
        students = []
        for line, row in enumerate(reader, start=2):
            fields = {c: unicodedata.normalize("NFC", (row.get(c) or "").strip())
                      for c in ROSTER_COLUMNS}
            if not any(fields.values()):
                continue
            if not fields["id"]:
                raise LabError(f"{where}, line {line}: the id is empty; every student needs "
                               "a unique id")
            students.append(Student(**fields))
        roster = cls(tuple(students))
        owners: dict[str, Student] = {}
        for s in roster.students:
            for key in roster._keys(s):
                other = owners.setdefault(key, s)
                if other is not s and other.id != s.id:
                    raise LabError(f"{where}: {key!r} would match both {other.id} "
                                   f"({other.name}) and {s.id} ({s.name}); make it unique")
                if other is not s:
                    raise LabError(f"{where}: the id {s.id!r} appears twice")
        return roster

    @classmethod
    def load(cls, path: Path) -> Roster:
        """Read a roster CSV file (UTF-8).

        >>> Roster.load(Path("roster.csv"))  # doctest: +SKIP
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LabError(f"cannot read the roster {path}: {e}; it must be a UTF-8 CSV "
                           "file with the columns id, name, email") from e
        return cls.parse(text, str(path))

    @staticmethod
    def _keys(s: Student) -> set[str]:
        keys = {s.id, s.name, s.email, s.email.split("@")[0] if "@" in s.email else ""}
        return {_key(k) for k in keys if k}

    def find(self, name: str) -> Student | None:
        """The student whose id, email or name is ``name`` (letter case aside), or None."""
        wanted = _key(name)
        return next((s for s in self.students if wanted in self._keys(s)), None)
