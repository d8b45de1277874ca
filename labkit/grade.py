"""``labkit grade``: grade a folder of submitted exercise notebooks, safely, in parallel.

Each submission runs in a sandbox of its own (:mod:`labkit._sandbox`): new
user, PID, mount and IPC namespaces made with ``unshare``, so whatever the
student's code does (fork bombs, ``setsid`` escapees, killing its parent,
filling ``/dev/shm``, leaving semaphores held, deleting files) stays inside
and ends with it. No container engine is needed; unprivileged user
namespaces are enough. The sandbox reports check results over a private
pipe; this process scores them against its own copy of the checks, so a
submission can only earn what its functions actually did.

Every submission gets a row, whatever happened. Results are written per
student as they arrive (``--resume`` skips those), then collected into
``grades.csv``, ``grades.json`` and one feedback file per student.
"""
from __future__ import annotations

import ast
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .checking import PASSED, exercises
from .display import progress
from .errors import LabError
from .release import find_root

__all__ = ["Submission", "GradeRow", "find_submissions", "answers_of", "grade",
           "sandbox_available", "run_sandboxed"]

RESULT_LIMIT = 16 * 2**20        # bytes of report accepted from one sandbox
SUBMISSION_LIMIT = 20 * 2**20    # bytes of files copied from one submission
RLIMITS = {
    "RLIMIT_AS": 4 * 2**30,       # address space per process: a memory hog gets MemoryError
    "RLIMIT_CPU": 300,            # CPU seconds per process
    "RLIMIT_NOFILE": 1024,
    "RLIMIT_FSIZE": 64 * 2**20,   # largest file a process may write
    "RLIMIT_CORE": 0,
}
MAX_PROCESSES = 400              # processes at once in one sandbox before all are killed


@dataclass(frozen=True)
class Submission:
    """One student's work: the notebook to grade and the files that come with it."""

    student: str
    files: dict[str, Path]       # name in the working copy -> file to copy
    notebook: str                # the name (in files) of the notebook to grade
    problem: str = ""            # why it cannot be graded ("" if it can)


@dataclass
class GradeRow:
    """One line of grades.csv, with every check's result for grades.json."""

    student: str
    lab: str
    score: float
    max_score: float
    status: str                   # ok, error, timeout, kernel died, fork bomb, missing
    seconds: float
    checks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "student"


def find_submissions(folder: Path, lab: str) -> list[Submission]:
    """One Submission per ``STUDENT.ipynb`` file or ``STUDENT/`` folder, sorted by student."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append(Submission(_safe(entry.stem), {entry.name: entry}, entry.name))
        elif entry.is_dir():
            notebooks = sorted(p for p in entry.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts)
            preferred = [p for p in notebooks if p.stem == lab] or notebooks
            files = {str(p.relative_to(entry)): p for p in sorted(entry.rglob("*"))
                     if p.is_file() and ".ipynb_checkpoints" not in p.parts}
            size = sum(p.stat().st_size for p in files.values())
            problem = ("no notebook in the folder" if not notebooks
                       else f"{len(notebooks)} notebooks and none named {lab}.ipynb"
                       if len(preferred) > 1 else
                       f"the folder holds {size >> 20} MiB, more than the "
                       f"{SUBMISSION_LIMIT >> 20} MiB allowed" if size > SUBMISSION_LIMIT else "")
            notebook = str(preferred[0].relative_to(entry)) if preferred else ""
            found.append(Submission(_safe(entry.name), files, notebook, problem))
    return found


def answers_of(exercise_notebook: Path) -> dict[str, str | tuple[str, ...]]:
    """Exercise id -> answer function name (or a tuple of names), from the check cells.

    >>> answers = answers_of(find_root() / "exercises" / "03_shared_memory.ipynb")
    >>> answers["03.parallel_sum"], answers["03.record"]
    ('parallel_sum', ('publish', 'read_record'))
    """
    mapping: dict[str, str | tuple[str, ...]] = {}
    for cell in nbformat.read(exercise_notebook, as_version=4).cells:
        if cell.cell_type != "code" or "labkit.check(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "check"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)):
                continue
            answer = node.args[1]
            if isinstance(answer, ast.Name):
                mapping[node.args[0].value] = answer.id
            elif isinstance(answer, ast.Tuple) and all(isinstance(e, ast.Name)
                                                      for e in answer.elts):
                mapping[node.args[0].value] = tuple(e.id for e in answer.elts)
            else:
                raise LabError(f"{exercise_notebook.name}: the check of {node.args[0].value} "
                               "must name the answer function (or a tuple of them)")
    return mapping


def sandbox_available() -> str:
    """"" if per-submission namespaces can be made here, else the reason they cannot."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "the unshare command (util-linux) is not installed"
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "--ipc", "--pid",
                            "--fork", "--kill-child", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return ("this system does not allow unprivileged user namespaces "
                f"({probe.stderr.strip() or 'unshare failed'}); on Debian/Ubuntu: "
                "sysctl kernel.unprivileged_userns_clone=1, in Docker: --security-opt "
                "seccomp=unconfined")
    return ""


def _score(lab_exercises: dict, answers: dict, reported: list[dict],
           status: str) -> tuple[float, float, list[dict]]:
    """Points from our own copy of the checks: the sandbox only says which checks passed."""
    by_key = {(r.get("exercise"), r.get("check")): r for r in reported}
    checks, score, total = [], 0.0, 0.0
    for exercise_id in answers:
        ex = lab_exercises[exercise_id]
        for c in ex.checks:
            total += c.points
            r = by_key.get((exercise_id, c.name), {})
            passed = r.get("status") == PASSED
            score += c.points if passed else 0
            checks.append({"exercise": exercise_id, "title": ex.title, "check": c.name,
                           "status": r.get("status", "not run"), "passed": passed,
                           "points": c.points if passed else 0, "max_points": c.points,
                           "message": str(r.get("message", "") if r else
                                          f"not run ({status})")[:2000],
                           "hint": c.hint, "concept": c.concept})
    return score, total, checks


def run_sandboxed(sub: Submission, answers: dict, hide: list[Path], cell_timeout: float,
                  timeout: float, shm_size: str = "64m",
                  rlimits: dict[str, int] | None = None) -> tuple[str, dict]:
    """Run one notebook (and the checks of ``answers``) in its own namespaces.

    The sandbox has ``shm_size`` of /dev/shm (64 MB, as in Docker and on
    Kubernetes by default) and the resource limits ``rlimits`` (default
    :data:`RLIMITS`). Returns (status, report); the report holds the notes,
    the cells' errors and the checks' results.
    """
    work = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    read_r, write_w = os.pipe()
    config = {"files": {k: str(v) for k, v in sub.files.items()}, "notebook": sub.notebook,
              "work": str(work), "hide": [str(h) for h in hide], "result_fd": write_w,
              "answers": answers, "cell_timeout": cell_timeout,
              "rlimits": RLIMITS if rlimits is None else rlimits,
              "max_processes": MAX_PROCESSES, "work_size": "256m", "shm_size": shm_size}
    command = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--mount",
               "--ipc", "--pid", "--fork", "--mount-proc", "--kill-child",
               sys.executable, "-m", "labkit._sandbox", json.dumps(config)]
    try:
        proc = subprocess.Popen(command, pass_fds=(write_w,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)
    finally:
        os.close(write_w)
    data = bytearray()
    deadline = time.monotonic() + timeout
    status = ""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(read_r, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                status = "timeout"
                break
            if sel.select(min(left, 1.0)):
                chunk = os.read(read_r, 65536)
                if not chunk:
                    break
                if len(data) < RESULT_LIMIT:
                    data += chunk
    os.close(read_r)
    proc.kill()  # the namespace's process 1 dies with it (--kill-child), and all inside
    _, errors = proc.communicate()
    shutil.rmtree(work, ignore_errors=True)
    try:
        report = json.loads(data) if data else {}
    except ValueError:
        report = {}
    if status == "timeout":
        report.setdefault("notes", []).append(
            f"the submission did not finish in {timeout:g} s and was stopped")
        return "timeout", report
    if not report:
        detail = errors.decode(errors="replace").strip().splitlines()[-1:] if errors else []
        return "error", {"notes": ["the sandbox ended without a report"
                                   + (f": {detail[0]}" if detail else "")]}
    return str(report.get("status", "error")), report


def _feedback_md(row: GradeRow) -> str:
    lines = [f"# {row.lab}: feedback for {row.student}", "",
             f"**Score: {row.score:g} / {row.max_score:g}** (run: {row.status}, "
             f"{row.seconds:.1f} s)", ""]
    lines += [f"- {note}" for note in row.notes] + ([""] if row.notes else [])
    current = None
    for c in row.checks:
        if c["exercise"] != current:
            current = c["exercise"]
            lines += ["", f"## {c['exercise']} {c['title']}", "",
                      "| result | check | points | details |", "|---|---|---|---|"]
        detail = "" if c["passed"] else c["message"] + "".join(
            f" *Hint: {h}*" for h in (c["hint"], c.get("concept", "")) if h)
        detail = detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {'pass' if c['passed'] else c['status']} | {c['check']} | "
                     f"{c['points']:g}/{c['max_points']:g} | {detail} |")
    return "\n".join(lines) + "\n"


def _feedback_html(row: GradeRow) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{e(row.lab)}: {e(row.student)}"
             "</title><style>body{font-family:sans-serif;max-width:60em}td,th{padding:.3em;"
             "border-bottom:1px solid #ddd;text-align:left}.pass{color:#1a7f37}"
             ".fail{color:#cf222e}</style>",
             f"<h1>{e(row.lab)}: feedback for {e(row.student)}</h1>",
             f"<p><b>Score: {row.score:g} / {row.max_score:g}</b> (run: {e(row.status)}, "
             f"{row.seconds:.1f} s)</p>"]
    if row.notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in row.notes) + "</ul>")
    current = None
    for c in row.checks:
        if c["exercise"] != current:
            if current is not None:
                parts.append("</table>")
            current = c["exercise"]
            parts.append(f"<h2>{e(c['exercise'])} {e(c['title'])}</h2><table><tr><th>result"
                         "</th><th>check</th><th>points</th><th>details</th></tr>")
        cls = "pass" if c["passed"] else "fail"
        detail = "" if c["passed"] else e(c["message"]) + "".join(
            f"<br><i>Hint: {e(h)}</i>" for h in (c["hint"], c.get("concept", "")) if h)
        parts.append(f"<tr><td class='{cls}'>{'pass' if c['passed'] else e(c['status'])}</td>"
                     f"<td>{e(c['check'])}</td><td>{c['points']:g}/{c['max_points']:g}</td>"
                     f"<td>{detail}</td></tr>")
    if current is not None:
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def grade(lab: str, submissions: Path, out: Path, jobs: int | None = None,
          resume: bool = False, cell_timeout: float = 30.0, timeout: float = 300.0,
          root: Path | None = None) -> list[GradeRow]:
    """Grade every submission of ``lab`` in ``submissions`` and write the reports to ``out``.

    >>> rows = grade("00_processes", Path("submitted"), Path("graded"))  # doctest: +SKIP
    """
    root = root or find_root()
    lab = lab.removesuffix(".ipynb")
    exercise_nb = root / "exercises" / f"{lab}.ipynb"
    if not exercise_nb.exists():
        labs = ", ".join(sorted(p.stem for p in (root / "exercises").glob("*.ipynb")))
        raise LabError(f"no lab {lab!r}; labs are: {labs}")
    if not submissions.is_dir():
        raise LabError(f"{submissions} is not a folder of submissions")
    why_not = sandbox_available()
    if why_not:
        raise LabError(f"cannot isolate submissions here: {why_not}. Grading runs student "
                       "code; labkit refuses to run it without a sandbox.")
    answers = answers_of(exercise_nb)
    lab_exercises = exercises(lab)
    if set(answers) != set(lab_exercises):
        raise LabError(f"{exercise_nb.name} and labkit's checks disagree: check cells for "
                       f"{sorted(answers)}, checks for {sorted(lab_exercises)}")
    out.mkdir(parents=True, exist_ok=True)
    results_dir, feedback_dir = out / "results", out / "feedback"
    results_dir.mkdir(exist_ok=True)
    feedback_dir.mkdir(exist_ok=True)
    # Student code must not read other submissions, the reports, or the solutions.
    hide = [submissions.resolve(), out.resolve(), (root / "solutions").resolve()]
    todo = find_submissions(submissions, lab)
    if resume:
        todo = [s for s in todo if not (results_dir / f"{s.student}.json").exists()]

    def one(sub: Submission) -> GradeRow:
        started = time.monotonic()
        if sub.problem:
            status, report = "missing", {"notes": [sub.problem]}
        else:
            status, report = run_sandboxed(sub, answers, hide, cell_timeout, timeout)
        score, total, checks = _score(lab_exercises, answers, report.get("checks", []), status)
        row = GradeRow(sub.student, lab, score, total, status, time.monotonic() - started,
                       checks, [str(n)[:500] for n in report.get("notes", [])][:20])
        (results_dir / f"{sub.student}.json").write_text(json.dumps(asdict(row), indent=1))
        (feedback_dir / f"{sub.student}.md").write_text(_feedback_md(row))
        (feedback_dir / f"{sub.student}.html").write_text(_feedback_html(row))
        return row

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        futures = [pool.submit(one, s) for s in todo]
        for _ in progress(as_completed(futures), desc=f"grading {lab}", total=len(futures)):
            pass
        for f in futures:
            f.result()
    rows = [GradeRow(**json.loads(p.read_text())) for p in sorted(results_dir.glob("*.json"))]
    rows.sort(key=lambda r: r.student)
    with open(out / "grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lab", "score", "max_score", "status", "seconds"])
        for r in rows:
            writer.writerow([r.student, r.lab, f"{r.score:g}", f"{r.max_score:g}", r.status,
                             f"{r.seconds:.1f}"])
    (out / "grades.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows
