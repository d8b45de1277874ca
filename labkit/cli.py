"""The ``labkit`` command: ``doctor``, ``clean``, ``release``, ``grade``, ``exercises``,
``puzzle`` and ``bench``."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import LabError
from .reports import EXPORTS

__all__ = ["main"]


def _positive(kind: type[int] | type[float], what: str) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero, or a message saying what is allowed."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            whole = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{what} must be {whole} above 0, got {text!r}")
        return value
    return parse


def _gradebook_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gradebook", type=Path, help="the SQLite gradebook (default: "
                   "$LABKIT_GRADEBOOK, else gradebook.sqlite beside the lab's report folder)")


def _book(given: Path | None, reports: Path) -> Path:
    """The gradebook to use: the one given, $LABKIT_GRADEBOOK, or one beside ``reports``
    (``graded/00`` -> ``graded/gradebook.sqlite``), shared by every lab graded there."""
    return given or Path(os.environ.get("LABKIT_GRADEBOOK") or
                         reports.resolve().parent / "gradebook.sqlite")


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import Verdict, diagnose, report

    findings = diagnose()
    print(report(findings))
    return 1 if any(f.verdict == Verdict.FAIL for f in findings) else 0


def _clean(args: argparse.Namespace) -> int:
    from .objects import clean

    removed = clean(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for obj in removed:
        print(f"{verb} {obj}")
    print(f"{len(removed)} leftover lab object(s) {verb} (named objects, FIFOs, sockets and "
          "the folders of ended sessions); live sessions and other users' objects are never "
          "touched")
    return 0


def _release(args: argparse.Namespace) -> int:
    from .release import find_root, problems, release

    root = args.root or find_root()
    wrong = problems(root, args.lessons)
    for problem in wrong:
        print(problem, file=sys.stderr)
    if wrong:
        print(f"{len(wrong)} problem(s): nothing released", file=sys.stderr)
        return 1
    done = release(root, check=args.check, lessons=args.lessons)
    stale = [r for r in done if r.changed]
    for r in stale:
        state = "out of date" if args.check else "written"
        print(f"{r.exercise.relative_to(root)}: {state}")
    if args.check and stale:
        print("exercises/ is out of date: run `labkit release`", file=sys.stderr)
        return 1
    print(f"{len(done)} exercise notebook(s) {'checked' if args.check else 'released'}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from .grade import grade

    rows = grade(args.lab, args.submissions, args.out, jobs=args.jobs, resume=args.resume,
                 cell_timeout=args.cell_timeout, timeout=args.timeout, root=args.root,
                 roster=args.roster, student=args.student,
                 gradebook=_book(args.gradebook, args.out), profile=args.profile)
    width = max([len(r.student) for r in rows] + [7])
    for r in rows:
        print(f"{r.student:<{width}}  {r.score:>5g} / {r.max_score:<5g} {r.status}")
    lab = rows[0].lab if rows else args.lab
    print(f"{len(rows)} submission(s) of {lab} graded; reports in {args.out}/ "
          "(grades.csv, grades.json, feedback/)")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .publish import publish
    from .reports import load_rows

    book = _book(args.gradebook, args.graded)
    rows = publish(args.graded, load_rows(args.graded), book)
    print(f"{len(rows)} report(s) of {rows[0].lab} written in {args.graded}/ with "
          f"manual.csv merged; gradebook: {book}")
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from .checking import exercises
    from .gradebook import checks_version, class_table, entries

    found = entries(args.book)
    current = {lab: checks_version(exercises(lab)) for lab in {e.lab for e in found}}
    print(class_table(found, current))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .reports import export as write
    from .reports import load_rows

    rows = load_rows(args.graded, published=True)
    path = args.file or args.graded / f"{args.to}.csv"
    write(rows, args.to, path)
    print(f"{path}: {len(rows)} student(s) of {rows[0].lab}, for {args.to}")
    return 0


def _build_student(args: argparse.Namespace) -> int:
    from .release import find_root
    from .student_build import build_student

    for warning in build_student(args.root or find_root(), args.out):
        print(f"warning: {warning}: a public check runs on students' machines; move it to the "
              "hidden checks", file=sys.stderr)
    print(f"{args.out}: the course as students get it (no solutions/, tests/ or .git)")
    return 0


def _new_exercise(args: argparse.Namespace) -> int:
    from .release import find_root
    from .scaffold import new_exercise

    root = args.root or find_root()
    made = new_exercise(root, args.lab, args.exercise, args.title or "")
    for path in made.files:
        print(f"{path.relative_to(root)}: {made.exercise} added")
    print(f"next: write the statement and {made.function}'s solution in the solution notebook, "
          "the checks, points and mutants; then `labkit release` and the tests "
          "(CONTRIBUTING.md, \"For instructors\")")
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from .checking import load_course_hidden
    from .course import catalogue, describe
    from .release import find_root

    try:
        load_course_hidden(find_root())  # an instructor's checkout: list its hidden checks too
    except FileNotFoundError:
        pass  # outside a course folder (a student's installed labkit): public checks only

    print(describe(catalogue(args.lab)))
    return 0


def _puzzle(args: argparse.Namespace) -> int:
    from .puzzles import kinds, puzzle, solve

    if args.list:
        for name, about in kinds().items():
            print(f"{name}  {about}")
        return 0
    if args.kind is None:
        raise LabError(f"name a kind ({', '.join(kinds())}) or ask for --list")
    try:
        p = puzzle(args.kind, args.seed)
    except ValueError as e:
        raise LabError(str(e)) from None
    print(p)
    if args.answer:
        print(f"\n{solve([p])[0]}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench

    return bench(full_sweep=args.full, out=args.out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit", description="IPC Lab's command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="check that this machine can run the lab")
    p.set_defaults(run=_doctor)
    p = sub.add_parser("clean", help="remove your lab objects whose session has ended")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p.set_defaults(run=_clean)
    p = sub.add_parser("release", help="write exercises/ from solutions/")
    p.add_argument("lessons", nargs="*", help="only these lessons (e.g. 02_pipes or 02)")
    p.add_argument("--check", action="store_true", help="fail if exercises/ is out of date")
    p.add_argument("--root", type=Path, help="the course folder (default: found from here)")
    p.set_defaults(run=_release)
    p = sub.add_parser("grade", help="grade a folder of submitted notebooks in sandboxes")
    p.add_argument("lab", help="the lesson id or number, e.g. 02_pipes or 02")
    p.add_argument("submissions", type=Path,
                   help="folder with one STUDENT.ipynb or one STUDENT/ folder per student")
    p.add_argument("--out", type=Path, required=True, help="folder for the reports")
    p.add_argument("--jobs", type=_positive(int, "--jobs"), default=None,
                   help="submissions at once (default: usable cores, as many as fit in memory)")
    p.add_argument("--resume", action="store_true", help="skip students already graded")
    p.add_argument("--roster", type=Path,
                   help="CSV with columns id, name, email: one row per student on it")
    p.add_argument("--student", help="grade only this student again (name or roster id)")
    _gradebook_option(p)
    p.add_argument("--cell-timeout", type=_positive(float, "--cell-timeout"), default=30.0,
                   help="seconds per cell")
    p.add_argument("--timeout", type=_positive(float, "--timeout"), default=300.0,
                   help="seconds per submission")
    p.add_argument("--root", type=Path, help="the course folder (default: found from here)")
    p.add_argument("--profile", action="store_true",
                   help="print where each submission's time went (per phase: median, total)")
    p.set_defaults(run=_grade)
    p = sub.add_parser("publish", help="write a graded lab's reports again, with manual.csv")
    p.add_argument("graded", type=Path, help="the folder `labkit grade --out` wrote")
    _gradebook_option(p)
    p.set_defaults(run=_publish)
    p = sub.add_parser("gradebook", help="print the class's results across labs")
    p.add_argument("book", type=Path, nargs="?",
                   default=Path(os.environ.get("LABKIT_GRADEBOOK") or
                                "graded/gradebook.sqlite"),
                   help="the gradebook (default: $LABKIT_GRADEBOOK or "
                        "graded/gradebook.sqlite)")
    p.set_defaults(run=_gradebook)
    p = sub.add_parser("export", help="write graded results as CSV for Canvas, Moodle, ...")
    p.add_argument("graded", type=Path, help="the folder `labkit grade --out` wrote")
    p.add_argument("to", choices=EXPORTS, help="the system that imports the file")
    p.add_argument("--file", type=Path, help="where to write (default: GRADED/TO.csv)")
    p.set_defaults(run=_export)
    p = sub.add_parser("new-exercise", help="scaffold an exercise: cells, check, points, "
                                            "mutants, test")
    p.add_argument("lab", help="the lesson id or number, e.g. 02_pipes or 02")
    p.add_argument("exercise", help="the new exercise's id, e.g. 02.word_count")
    p.add_argument("--title", help="its title (default: from the id)")
    p.add_argument("--root", type=Path, help="the course folder (default: found from here)")
    p.set_defaults(run=_new_exercise)
    p = sub.add_parser("build-student", help="write the course as students get it")
    p.add_argument("out", type=Path, help="a new folder for it")
    p.add_argument("--root", type=Path, help="the course folder (default: found from here)")
    p.set_defaults(run=_build_student)
    p = sub.add_parser("exercises", help="list every exercise and check: points, kind, time")
    p.add_argument("lab", nargs="?", help="only this lesson (e.g. 02_pipes or 02)")
    p.set_defaults(run=_exercises)
    p = sub.add_parser("puzzle", help="print a seeded puzzle (fork, signals, pipes, inverse)")
    p.add_argument("kind", nargs="?", help="the kind of puzzle (see --list)")
    p.add_argument("--seed", type=int, default=0, help="which puzzle of that kind (default: 0)")
    p.add_argument("--answer", action="store_true", help="print its answer too, explained")
    p.add_argument("--list", action="store_true", help="list the kinds, one per line")
    p.set_defaults(run=_puzzle)
    p = sub.add_parser("bench", help="measure every IPC mechanism: latency and throughput")
    p.add_argument("--full", action="store_true",
                   help="1 B to 16 MiB on one CPU and on two, with CSV and plots (1-3 min)")
    p.add_argument("--out", type=Path, default=Path("bench-results"),
                   help="folder for the CSV and plots of --full (default: bench-results)")
    p.set_defaults(run=_bench)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (LabError, FileNotFoundError) as e:  # a mistake in what was asked: no traceback
        print(f"labkit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
