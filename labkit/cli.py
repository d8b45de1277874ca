"""The ``labkit`` command: ``doctor``, ``clean`` and ``release``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import FAIL, diagnose, report

    findings = diagnose()
    print(report(findings))
    return 1 if any(f.verdict == FAIL for f in findings) else 0


def _clean(args: argparse.Namespace) -> int:
    from .objects import clean

    removed = clean(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for obj in removed:
        print(f"{verb} {obj}")
    print(f"{len(removed)} leftover lab object(s) {verb}; live sessions and other users' "
          "objects are never touched")
    return 0


def _release(args: argparse.Namespace) -> int:
    from .release import find_root, release

    root = args.root or find_root()
    done = release(root, check=args.check)
    stale = [r for r in done if r.changed]
    for r in stale:
        state = "out of date" if args.check else "written"
        print(f"{r.exercise.relative_to(root)}: {state}")
    if args.check and stale:
        print("exercises/ is out of date: run `labkit release`", file=sys.stderr)
        return 1
    print(f"{len(done)} exercise notebook(s) {'checked' if args.check else 'released'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit", description="IPC Lab's command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="check that this machine can run the lab")
    p.set_defaults(run=_doctor)
    p = sub.add_parser("clean", help="remove your lab objects whose session has ended")
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p.set_defaults(run=_clean)
    p = sub.add_parser("release", help="write exercises/ from solutions/")
    p.add_argument("--check", action="store_true", help="fail if exercises/ is out of date")
    p.add_argument("--root", type=Path, help="the course folder (default: found from here)")
    p.set_defaults(run=_release)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
