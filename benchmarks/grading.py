"""labkit grade beside nbgrader's autograde, on the same generated submissions.

    python benchmarks/grading.py --lab 02_pipes -n 20 --rounds 3 --nbgrader .venv-nbgrader/bin/nbgrader

Both grade N copies of a lab's solution notebook (so every run does all of
its work): nbgrader executes each notebook in a kernel, in one process,
without a sandbox; labkit grades each in its sandbox with its default
number of jobs. The two take turns, round after round (nbgrader first in
odd rounds, labkit first in even ones), so a machine that gets busier or
quieter meanwhile weighs on both alike. Prints each round's wall times and
ratio (nbgrader ÷ labkit: above 1 means labkit is faster), then the medians.
A benchmark, not a test: figures depend on the machine and on what else it
is doing.

nbgrader is not a dependency of the course; put it in a venv of its own,
with labkit, so its kernels can import labkit:

    python3 -m venv .venv-nbgrader
    .venv-nbgrader/bin/pip install nbgrader -e .
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "ipclab"
c.ClearSolutions.enforce_metadata = False
c.ExecutePreprocessor.timeout = 120
"""


def _nbgrader(exe: str, course: Path, *args: str) -> float:
    env = dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    done = subprocess.run([exe, *args, "--force"], cwd=course, capture_output=True, text=True,
                          env=env, check=False)  # its own venv first: nbgrader runs alembic from the PATH
    if done.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def time_nbgrader(exe: str, lab: str, n: int, work: Path) -> float:
    """Seconds nbgrader's autograde takes for n copies of the solution (``work`` is new)."""
    course = work / "nbgrader"
    (course / "source" / lab).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{lab}.ipynb", course / "source" / lab / f"{lab}.ipynb")
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(course)))
    _nbgrader(exe, course, "generate_assignment", lab)
    for i in range(n):
        folder = course / "submitted" / f"student{i:03d}" / lab
        folder.mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / f"{lab}.ipynb", folder / f"{lab}.ipynb")
    return _nbgrader(exe, course, "autograde", lab)


def time_labkit(lab: str, n: int, work: Path, jobs: int | None) -> tuple[float, list[float]]:
    """Seconds labkit grade takes for n copies of the solution, and each row's seconds."""
    from labkit.grade import grade

    subs = work / "labkit" / "submitted"
    subs.mkdir(parents=True)
    for i in range(n):
        shutil.copy(ROOT / "solutions" / f"{lab}.ipynb", subs / f"student{i:03d}.ipynb")
    started = time.monotonic()
    rows = grade(lab, subs, work / "labkit" / "graded", jobs=jobs)
    seconds = time.monotonic() - started
    wrong = [r.student for r in rows if r.score != r.max_score]
    if wrong:
        lost = {c["check"]: c["message"] for r in rows for c in r.checks if not c["passed"]}
        raise SystemExit(f"labkit did not give the solution full marks: {wrong}: {lost}")
    return seconds, [r.seconds for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="02_pipes")
    parser.add_argument("-n", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--nbgrader", default=shutil.which("nbgrader"),
                        help="the nbgrader command (default: nbgrader on the PATH)")
    parser.add_argument("--jobs", type=int, default=None, help="labkit's jobs (its default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of both tools, taking turns (default 3)")
    args = parser.parse_args(argv)
    if not args.nbgrader:
        parser.error("no nbgrader found: see this file's docstring to install it, then "
                     "pass --nbgrader PATH")
    from labkit.grade import default_jobs

    jobs = args.jobs or default_jobs()
    print(f"{args.n} correct submissions of {args.lab}, {args.rounds} round(s); labkit with "
          f"{jobs} job(s) on {os.cpu_count()} core(s)", flush=True)
    nbgrader_s, labkit_s = [], []
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="labkit-bench-grading-") as tmp:
            work = Path(tmp)
            for tool in ("nbgrader", "labkit") if round_ % 2 else ("labkit", "nbgrader"):
                if tool == "nbgrader":
                    nbgrader_s.append(time_nbgrader(args.nbgrader, args.lab, args.n, work))
                else:
                    labkit_s.append(time_labkit(args.lab, args.n, work, args.jobs))
        nb, (lk, each) = nbgrader_s[-1], labkit_s[-1]
        print(f"round {round_}: nbgrader {nb:6.1f} s ({nb / args.n:.2f} s each), labkit "
              f"{lk:6.1f} s ({lk / args.n:.2f} s each; one submission in its sandbox: "
              f"median {statistics.median(each):.2f} s), nbgrader / labkit {nb / lk:.2f}",
              flush=True)
    nb = statistics.median(nbgrader_s)
    lk = statistics.median(seconds for seconds, _ in labkit_s)
    ratio = statistics.median(n / seconds for n, (seconds, _) in zip(nbgrader_s, labkit_s, strict=True))
    print(f"median of {args.rounds}: nbgrader autograde {nb:.1f} s, labkit grade {lk:.1f} s, "
          f"nbgrader / labkit {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
