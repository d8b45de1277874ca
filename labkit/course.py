"""The course config: what each check is worth, how long the work takes, when it is due.

Points live in a data file the instructor edits (``labkit/course.toml``, or the file
named by ``$LABKIT_COURSE``), not in the checks' code: the checks say *what* is
right, the course says *how much* it counts. :mod:`labkit.checking` asks
:func:`current` for every check's points; ``labkit release --check`` and
``labkit grade`` refuse a config that misses a check or names one that does not
exist, so a renamed check cannot silently fall back to a default.

TOML because an instructor can read and comment it; ``tomllib`` is in the standard
library from Python 3.11 (``tomli``, the same parser, before).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import LabError

#: What an exercise asks of the student, as ``labkit exercises`` shows it: write code
#: from a specification, debug a given broken program, solve a seeded puzzle, or answer
#: a question.
EXERCISE_KINDS = ("write", "debug", "puzzle", "question")

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, a dependency there (absent where 3.11 checks types)
    import tomli as tomllib  # type: ignore[import-not-found]

__all__ = [
    "DEFAULT_POINTS",
    "Course",
    "LatePolicy",
    "Line",
    "catalogue",
    "config_path",
    "current",
    "describe",
    "problems",
    "require_complete",
]

DEFAULT_POINTS = 1.0  # what a check missing from the config is worth (and reported as missing)
_PACKAGE_CONFIG = Path(__file__).resolve().parent / "course.toml"


@dataclass(frozen=True)
class LatePolicy:
    """Points lost for late work: ``penalty_per_day`` of the score per started day after
    ``grace_minutes``; nothing is earned after ``max_days``.

    >>> LatePolicy(grace_minutes=10, penalty_per_day=0.1, max_days=3).fraction_lost(1.5)
    0.2
    """

    grace_minutes: float = 0.0
    penalty_per_day: float = 0.0
    max_days: float = math.inf

    def days_late(self, submitted: datetime, deadline: datetime) -> float:
        """Days (fractional) after the deadline and its grace period; 0 if on time."""
        late = (submitted - deadline).total_seconds() - self.grace_minutes * 60
        return max(late, 0.0) / 86400

    def fraction_lost(self, days: float) -> float:
        """The fraction of the score lost ``days`` after the grace period (a started day
        counts whole)."""
        if days <= 0:
            return 0.0
        if days > self.max_days:
            return 1.0
        return min(1.0, round(math.ceil(days) * self.penalty_per_day, 6))


@dataclass(frozen=True)
class Course:
    """The course config as read from one file.

    >>> c = current()
    >>> c.points("00.exit_code", "0 and 255, the ends of the range, come back too")
    1.0
    """

    source: Path
    digest: str                                               # sha256 of the file's bytes
    check_points: dict[tuple[str, str], float] = field(default_factory=dict)
    exercise_minutes: dict[str, float] = field(default_factory=dict)
    lesson_minutes: dict[str, float] = field(default_factory=dict)
    deadlines: dict[str, datetime] = field(default_factory=dict)
    late: LatePolicy = LatePolicy()
    written: dict[str, dict[str, float]] = field(default_factory=dict)  # lab -> cell -> worth
    hidden_points: dict[tuple[str, str], float] = field(default_factory=dict)
    hidden_totals: dict[str, tuple[int, float]] = field(default_factory=dict)  # student copy
    puzzle_salt: object = None      # [puzzles] salt, as written (puzzle_student checks it)

    def points(self, exercise: str, check: str) -> float:
        """What ``check`` of ``exercise`` is worth (:data:`DEFAULT_POINTS` if not listed)."""
        key = (exercise, check)
        return self.check_points.get(key, self.hidden_points.get(key, DEFAULT_POINTS))

    def hidden(self, exercise: str) -> tuple[int, float]:
        """(how many, points) of the hidden checks of ``exercise``: from their entries in
        the instructor's config, or from the totals a student build keeps instead."""
        mine = [p for (e, _), p in self.hidden_points.items() if e == exercise]
        return (len(mine), sum(mine)) if mine else self.hidden_totals.get(exercise, (0, 0.0))

    def written_points(self, lab: str) -> dict[str, float]:
        """What each written answer of ``lab`` is worth, by the id of its Markdown cell."""
        return self.written.get(lab, {})

    def deadline(self, lab: str) -> datetime | None:
        """When ``lab`` (``02_pipes``) is due, or None if it has no deadline."""
        return self.deadlines.get(lab)

    @classmethod
    def load(cls, path: Path) -> Course:
        """Read and validate a course config file.

        Raises:
            LabError: the file cannot be read, is not TOML, or holds a value of the wrong
                kind (the message names the key and what is allowed).
        """
        try:
            data = path.read_bytes()
            config = tomllib.loads(data.decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise LabError(f"cannot read the course config {path}: {e}") from e
        where = str(path)
        points, minutes, hidden, totals = {}, {}, {}, {}
        for exercise, entry, here in _entries(config, "exercises", where):
            if "minutes" in entry:
                minutes[exercise] = _number(entry["minutes"], f"{here} minutes")
            for check, value in _table(entry, "points", here).items():
                points[(exercise, check)] = _number(value, f"{here} points for {check!r}")
            for check, value in _table(entry, "hidden", here).items():
                hidden[(exercise, check)] = _number(value, f"{here} hidden points for {check!r}")
            if "hidden_checks" in entry:
                totals[exercise] = (int(_number(entry["hidden_checks"], f"{here} hidden_checks")),
                                    _number(entry.get("hidden_points", 0), f"{here} hidden_points"))
        lessons, deadlines, written = {}, {}, {}
        for lesson, entry, here in _entries(config, "lessons", where):
            if "minutes" in entry:
                lessons[lesson] = _number(entry["minutes"], f"{here} minutes")
            if "deadline" in entry:
                deadlines[lesson] = _moment(entry["deadline"], f"{here} deadline")
            written[lesson] = {cell: _number(value, f"{here} written {cell}")
                               for cell, value in _table(entry, "written", here).items()}
        late = _table(config, "late", where)
        policy = LatePolicy(
            _number(late.get("grace_minutes", 0), f"{where}: [late] grace_minutes"),
            _number(late.get("penalty_per_day", 0), f"{where}: [late] penalty_per_day"),
            _number(late.get("max_days", math.inf), f"{where}: [late] max_days"))
        if policy.penalty_per_day > 1:
            raise LabError(f"{where}: [late] penalty_per_day is a fraction of the score "
                           f"(0.1 for 10 %), got {policy.penalty_per_day:g}")
        return cls(path, hashlib.sha256(data).hexdigest(), points, minutes, lessons, deadlines,
                   policy, written, hidden, totals,
                   _table(config, "puzzles", where).get("salt"))


def _table(config: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise LabError(f"{where}: {key} must be a table ([{key}] ...)")
    return value


def _entries(config: dict[str, Any], key: str, where: str
             ) -> list[tuple[str, dict[str, Any], str]]:
    """(name, table, where it is) of each table under ``[key]`` (an exercise, a lesson)."""
    found = []
    for name, entry in _table(config, key, where).items():
        here = f"{where}: [{key}.{name!r}]"
        if not isinstance(entry, dict):
            raise LabError(f"{here} must be a table ([{key}.{json.dumps(name)}] ...)")
        found.append((name, entry, here))
    return found


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise LabError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def _moment(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise LabError(f"{what} must be a date and time with its zone, like "
                       f"2027-01-18T23:59:00Z or 2027-01-18T23:59:00+01:00; got {value!r}")
    return value.astimezone(timezone.utc)


def config_path() -> Path:
    """The course config in use: ``$LABKIT_COURSE`` if set, else labkit's ``course.toml``."""
    return Path(os.environ.get("LABKIT_COURSE") or _PACKAGE_CONFIG)


_loaded: dict[tuple[Path, int, int], Course] = {}


def current() -> Course:
    """The course config, read again whenever the file changes."""
    path = config_path()
    try:
        info = path.stat()
    except OSError as e:
        raise LabError(f"no course config at {path}: {e.strerror}; set LABKIT_COURSE to the "
                       "course.toml to use") from e
    key = (path, info.st_mtime_ns, info.st_size)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = Course.load(path)
    return _loaded[key]


def problems(course: Course, checks: dict[str, list[str]],
             hidden: dict[str, list[str]] | None = None) -> list[str]:
    """What is wrong between the config and the registered checks (exercise -> check names).

    ``hidden`` (the hidden checks, when they are loaded) is compared with the config's
    ``hidden`` tables, as ``checks`` is with its ``points`` tables.

    >>> problems(current(), {"00.exit_code": ["a new check"]})[0]
    "00.exit_code: the check 'a new check' has no points in the course config"
    """
    found = _compare(course.check_points, checks, "points")
    if hidden is not None:
        found += _compare(course.hidden_points, hidden, "hidden points")
    return found


def _compare(priced: dict[tuple[str, str], float], checks: dict[str, list[str]],
             what: str) -> list[str]:
    found = []
    for exercise, names in checks.items():
        found += [f"{exercise}: the check {name!r} has no {what} in the course config"
                  for name in names if (exercise, name) not in priced]
    listed = {(e, n) for e, names in checks.items() for n in names}
    lessons = {e.split(".")[0] for e in checks}
    found += [f"{exercise}: the course config gives {what} to {name!r}, which is not a check"
              + ("" if exercise in checks else " (no such exercise)")
              for exercise, name in sorted(priced) if (exercise, name) not in listed
              and (exercise in checks or exercise.split(".")[0] in lessons)]
    return found


@dataclass(frozen=True)
class Line:
    """One check as ``labkit exercises`` lists it."""

    lesson: str
    exercise: str
    title: str
    check: str
    kind: str          # "auto": in the notebook and at grading; "hidden": only at grading;
                       # "manual": a written answer, marked by hand
    points: float
    exercise_minutes: float
    exercise_kind: str = "write"      # what the exercise asks: one of EXERCISE_KINDS
    raw_calls: tuple[str, ...] = ()   # the calls the student makes without labkit's help


def catalogue(lesson: str | None = None) -> list[Line]:
    """Every check of every exercise (or of one lesson, by id or number), with its points.

    >>> lines = catalogue("00")
    >>> lines[0].lesson, lines[0].exercise, lines[0].kind
    ('00_processes', '00.describe_status', 'auto')
    """
    from .checking import exercises

    config = current()
    found = exercises(lesson)
    if lesson is not None and not found:
        raise LabError(f"no exercises for lesson {lesson!r}; lessons are: "
                       + ", ".join(sorted(config.lesson_minutes)))
    stems = {stem.split("_")[0]: stem for stem in config.lesson_minutes}
    lines = []
    for ex_id, ex in found.items():
        lesson = stems.get(ex_id.split(".")[0], ex_id.split(".")[0])
        minutes = config.exercise_minutes.get(ex_id, 0)
        lines += [Line(lesson, ex_id, ex.title, c.name, "hidden" if c.hidden else "auto",
                       config.points(ex_id, c.name), minutes, ex.kind, ex.raw_calls)
                  for c in ex.checks]
        count, points = config.hidden(ex_id)
        if count and not any(c.hidden for c in ex.checks):
            lines.append(Line(lesson, ex_id, ex.title, f"{count} check(s) run only at grading",
                              "hidden", points, minutes, ex.kind, ex.raw_calls))
    for lesson in sorted({line.lesson for line in lines}):
        lines += [Line(lesson, f"{lesson[:2]}.written", "Written answers, graded by hand",
                       f"the answer in Markdown cell {cell}", "manual", points, 0, "question")
                  for cell, points in config.written_points(lesson).items()]
    return lines


def _duration(minutes: float) -> str:
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def describe(lines: list[Line]) -> str:
    """The text ``labkit exercises`` prints: per lesson, per exercise, per check."""
    config = current()
    out: list[str] = []
    lessons = sorted({line.lesson for line in lines})
    for lesson in lessons:
        mine = [line for line in lines if line.lesson == lesson]
        ids = list(dict.fromkeys(line.exercise for line in mine))
        work = sum(next(x.exercise_minutes for x in mine if x.exercise == e) for e in ids)
        reading = config.lesson_minutes.get(lesson, 0)
        due = config.deadline(lesson)
        out.append(f"{lesson}: {len(ids)} exercises, {sum(x.points for x in mine):g} points; "
                   f"lesson {_duration(reading)} + exercises {_duration(work)}"
                   + (f"; due {due:%Y-%m-%d %H:%M} UTC" if due else ""))
        for e in ids:
            checks = [x for x in mine if x.exercise == e]
            first = checks[0]
            raw = f", raw calls: {', '.join(first.raw_calls)}" if first.raw_calls else ""
            out.append(f"  {e}  [{first.exercise_kind}{raw}] {first.title}: "
                       f"{sum(x.points for x in checks):g} points, "
                       f"{_duration(first.exercise_minutes)}")
            out += [f"    {x.points:>4g}  {x.kind:<6} {x.check}" for x in checks]
    firsts = list({line.exercise: line for line in reversed(lines)}.values())  # one each
    minutes = sum(config.lesson_minutes.get(lesson, 0) for lesson in lessons) + sum(
        x.exercise_minutes for x in firsts)
    counts = ", ".join(f"{n} {k}" for k in EXERCISE_KINDS
                       if (n := sum(x.exercise_kind == k for x in firsts)))
    with_raw = sum(bool(x.raw_calls) for x in firsts)
    out.append(f"total: {len(lessons)} lesson(s), {len(firsts)} exercises ({counts}; "
               f"{with_raw} with raw calls), {len(lines)} "
               f"checks, {sum(x.points for x in lines):g} points, about {_duration(minutes)}")
    return "\n".join(out)


def require_complete(found: dict[str, Any]) -> None:
    """Refuse to score exercises (id -> :class:`~labkit.checking.Exercise`) whose checks the
    course config does not all price, or next to config entries that are not checks.

    >>> from labkit.checking import exercises
    >>> require_complete(exercises("00"))

    Raises:
        LabError: listing every problem, and where to fix it.
    """
    from .checking import hidden_loaded

    found_problems = problems(
        current(), {e: [c.name for c in ex.checks if not c.hidden] for e, ex in found.items()},
        {e: [c.name for c in ex.checks if c.hidden] for e, ex in found.items()}
        if hidden_loaded() else None)
    if found_problems:
        raise LabError(f"the course config {config_path()} does not match the checks: "
                       + "; ".join(found_problems) + ". Give every check its points there "
                       "(`labkit exercises` lists them)")
