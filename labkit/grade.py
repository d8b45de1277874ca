"""``labkit grade``: grade a folder of submitted exercise notebooks, safely, in parallel.

Each submission runs in a sandbox of its own (:mod:`labkit._sandbox`, forked
from the batch's warm zygote, :mod:`labkit._zygote`, before it enters any
namespace): new user, PID, mount, IPC, network and UTS namespaces, a root
filesystem built from an allowlist, no capabilities, and a cgroup for the
whole submission where one can be made. Whatever the student's code does (fork bombs,
``setsid`` escapees, killing its parent, filling ``/dev/shm``, reading or
deleting files) stays inside and ends with it. No container engine is
needed; unprivileged user namespaces are enough. The sandbox reports which
checks passed; this process scores them against its own copy of the checks.

Intake reads every submission once, before anything runs, refusing symbolic
links and special files. Every submission gets a row, whatever happened.
Results are written per student as they arrive, atomically (``--resume``
skips those, and regrades a broken one), then collected into ``grades.csv``,
``grades.json`` and one feedback file per student.
"""
from __future__ import annotations

import ast
import base64
import errno
import json
import os
import selectors
import stat
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat

from . import _sandbox
from ._zygote import Supervisor, Zygote
from .checking import PASSED, exercises, load_course_hidden
from .course import require_complete
from .display import progress
from .errors import LabError, SubmissionRefused, ZygoteError
from .feedback import locate_errors
from .gradebook import checks_version
from .manual import written_answers
from .publish import publish
from .release import find_root, resolve_lab
from .reports import GradeRow, load_row, write_atomically
from .roster import Roster, check_unique, student_name, timestamp

__all__ = [
    "GradeRow",
    "Limits",
    "Submission",
    "answers_of",
    "default_jobs",
    "find_submissions",
    "grade",
    "isolation_level",
    "run_sandboxed",
    "sandbox_available",
]

RESULT_LIMIT = 16 * 2**20        # bytes of report accepted from one sandbox
SUBMISSION_LIMIT = 20 * 2**20    # bytes of files taken from one submission (file or folder)
RLIMITS = {
    "RLIMIT_AS": 4 * 2**30,       # address space per process: a memory hog gets MemoryError
    "RLIMIT_CPU": 300,            # CPU seconds per process
    "RLIMIT_NOFILE": 1024,
    "RLIMIT_FSIZE": 64 * 2**20,   # largest file a process may write
    "RLIMIT_CORE": 0,
}
MAX_PROCESSES = 400              # processes at once in one sandbox before all are killed


@dataclass(frozen=True)
class Limits:
    """What one submission may use: for the whole sandbox (a cgroup where one can be made),
    and per process (``rlimits``, always).

    >>> Limits(memory=2**30).processes
    400
    """

    memory: int = 2 * 2**30       # bytes, all processes together
    processes: int = MAX_PROCESSES
    shm: str = "64m"              # size of the private /dev/shm (as in Docker by default)
    work: str = "256m"            # size of the private /work
    rlimits: dict[str, int] = field(default_factory=lambda: dict(RLIMITS))
    call_seconds: float | None = None  # one call of an answer (None: checking.CALL_TIMEOUT)


@dataclass(frozen=True)
class Submission:
    """One student's work: the notebook to grade and the files that come with it."""

    student: str
    files: dict[str, bytes]      # name in the working copy -> its bytes, read at intake
    notebook: str                # the name (in files) of the notebook to grade
    problem: str = ""            # why it cannot be graded ("" if it can)
    notes: tuple[str, ...] = ()  # what intake noticed
    status: str = ""             # "missing" or "refused" when there is a problem
    submitted: str = ""          # when the submission was last changed (ISO 8601, UTC)
    student_id: str = ""         # from the roster
    name: str = ""
    email: str = ""


def _read(parent_fd: int, name: str, shown: str, budget: int) -> bytes:
    """A regular file's bytes, opened without following a symbolic link, within ``budget``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as e:
        kind = "a symbolic link" if e.errno == errno.ELOOP else f"unreadable ({e.strerror})"
        raise SubmissionRefused(f"{shown} is {kind}; submissions may hold only regular files "
                                "and folders") from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionRefused(f"{shown} is a special file; submissions may hold only "
                                    "regular files and folders")
        data = f.read(budget + 1)
    if len(data) > budget:
        raise SubmissionRefused(f"the submission holds more than the {SUBMISSION_LIMIT >> 20} "
                                "MiB allowed")
    return data


def _read_folder(parent_fd: int, name: str, shown: str, files: dict[str, bytes],
                 prefix: str = "") -> None:
    """Every file below folder ``name`` into ``files``, never following a symbolic link."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError as e:
        raise SubmissionRefused(f"{shown} is a symbolic link or unreadable; submissions may "
                                "hold only regular files and folders") from e
    try:
        for entry in sorted(os.listdir(fd)):
            path = f"{prefix}{entry}"
            if entry == ".ipynb_checkpoints":
                continue
            info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                _read_folder(fd, entry, f"{shown}/{entry}", files, path + "/")
            else:
                used = sum(len(b) for b in files.values())
                files[path] = _read(fd, entry, f"{shown}/{entry}", SUBMISSION_LIMIT - used)
    finally:
        os.close(fd)


def _intake(folder_fd: int, entry: str, lab: str) -> tuple[dict[str, bytes], str, str, str]:
    """(files, notebook, problem, status) of one submission entry."""
    info = os.stat(entry, dir_fd=folder_fd, follow_symlinks=False)
    files: dict[str, bytes] = {}
    try:
        if stat.S_ISDIR(info.st_mode):
            _read_folder(folder_fd, entry, entry, files)
        else:
            files[entry] = _read(folder_fd, entry, entry, SUBMISSION_LIMIT)
    except SubmissionRefused as e:
        return {}, "", str(e), "refused"
    notebooks = sorted(n for n in files if n.endswith(".ipynb"))
    preferred = [n for n in notebooks if Path(n).stem == lab] or notebooks
    if not notebooks:
        return {}, "", "no notebook in the folder", "missing"
    if len(preferred) > 1:
        return {}, "", f"{len(notebooks)} notebooks and none named {lab}.ipynb", "missing"
    return files, preferred[0], "", ""


def find_submissions(folder: Path, lab: str) -> list[Submission]:
    """One Submission per ``STUDENT.ipynb`` file or ``STUDENT/`` folder, sorted by student.

    Every file is read here, once: symbolic links and special files are refused (the
    row says which), and so is a submission over :data:`SUBMISSION_LIMIT`. Names keep
    their letters (see :func:`labkit.roster.student_name`); two entries that would be
    one student stop the batch before anything is graded.

    >>> subs = find_submissions(Path("submitted"), "00_processes")  # doctest: +SKIP
    """
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        entries = {}
        for entry in sorted(os.listdir(folder_fd)):
            info = os.stat(entry, dir_fd=folder_fd, follow_symlinks=False)
            if not entry.startswith(".") and (stat.S_ISDIR(info.st_mode)
                                              or entry.endswith(".ipynb")):
                entries[entry] = student_name(entry)
        check_unique(entries)
        found = []
        for entry, student in entries.items():
            files, notebook, problem, status = _intake(folder_fd, entry, lab)
            changed = os.stat(entry, dir_fd=folder_fd, follow_symlinks=False).st_mtime
            if notebook and notebook != entry:  # a folder: its notebook counts too
                changed = max(changed, os.stat(f"{entry}/{notebook}", dir_fd=folder_fd,
                                               follow_symlinks=False).st_mtime)
            found.append(Submission(student, files, notebook, problem, (), status,
                                    timestamp(changed), name=student))
    finally:
        os.close(folder_fd)
    return sorted(found, key=lambda s: s.student)


def _only(subs: list[Submission], student: str) -> list[Submission]:
    """The submission of ``student`` (its name, roster id or roster name), for a regrade."""
    wanted = student_name(student).casefold()
    found = [s for s in subs if wanted in {s.student.casefold(), s.name.casefold(),
                                           s.student_id.casefold()}]
    if not found:
        raise LabError(f"no submission of {student!r}; students are: "
                       + ", ".join(s.student for s in subs))
    return found


def _on_roster(subs: list[Submission], roster: Roster) -> list[Submission]:
    """The submissions keyed by roster id, plus a "missing" row for each student on the
    roster who submitted nothing; a submission not on the roster keeps its name and a note."""
    placed = []
    for sub in subs:
        s = roster.find(sub.student)
        placed.append(replace(sub, notes=(*sub.notes, f"{sub.student!r} is not on the roster"))
                      if s is None else replace(sub, student=s.id, student_id=s.id,
                                                name=s.name, email=s.email))
    check_unique({sub.student: now.student for sub, now in zip(subs, placed, strict=True)})
    have = {s.student for s in placed}
    placed += [Submission(s.id, {}, "", "no submission", (), "missing", "", s.id, s.name,
                          s.email) for s in roster.students if s.id not in have]
    return sorted(placed, key=lambda s: s.student)


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
            exercise, answer = str(node.args[0].value), node.args[1]
            names = [e for e in answer.elts if isinstance(e, ast.Name)] \
                if isinstance(answer, ast.Tuple) else []
            if isinstance(answer, ast.Name):
                mapping[exercise] = answer.id
            elif isinstance(answer, ast.Tuple) and len(names) == len(answer.elts):
                mapping[exercise] = tuple(e.id for e in names)
            else:
                raise LabError(f"{exercise_notebook.name}: the check of {exercise} "
                               "must name the answer function (or a tuple of them)")
    return mapping


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _binds(root: Path) -> tuple[list[str], str]:
    """What the sandbox sees of the host (read-only), and the PYTHONPATH that finds labkit.

    The interpreter's prefixes and the real paths of ``sys.path``, labkit's package and
    the exercises; never the course folder itself (its ``.git``, ``solutions/``,
    ``tests/``) nor any folder that contains it.
    """
    package = Path(__file__).resolve().parent
    course = str(root.resolve())
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                              sys.base_exec_prefix)}
    paths = set(prefixes)
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if (real and os.path.isdir(real) and not _within(course, real)
                and (not _within(real, course) or any(_within(real, p) for p in prefixes))):
            paths.add(real)
    paths.add(str(package))
    if (root / "exercises").is_dir():
        paths.add(str((root / "exercises").resolve()))
    return sorted(paths), str(package.parent)


def _finish(proc: Supervisor) -> bytes:
    """Wait for a supervisor to end (it kills its sandbox and removes its cgroup first);
    returns what it said on stderr."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    return proc.close()


def _zygote(root: Path) -> Zygote:
    """A zygote for the sandboxes of this course's batch (see :mod:`labkit._zygote`)."""
    return Zygote(_sandbox.allowlist_env(_binds(root)[1]))


def _exchange(message: dict, timeout: float, zygote: Zygote,
              later: list[Supervisor] | None = None) -> tuple[dict | None, str, str]:
    """Give ``message`` to a new sandbox supervisor and wait up to ``timeout`` seconds for its
    outcome: (outcome, "", ""), or (None, "timeout" or "error", why). Closing its stdin on
    the way out ends the sandbox. With ``later``, a supervisor that delivered is left to
    clean up while the caller goes on, and put in ``later`` for :func:`_finish`."""
    message["mark"] = time.monotonic()  # the profile's first phase starts here
    try:
        proc = zygote.fork()
    except ZygoteError as e:
        return None, "error", f"no sandbox could be started: {e}"
    data = bytearray()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        try:
            proc.stdin.write(_sandbox.frame(message))
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # it ended at once: its stderr says why
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if sel.select(min(left, 1.0)):
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    if len(data) < 2 * RESULT_LIMIT:
                        data += chunk
    except BaseException:
        proc.stdin.close()
        _finish(proc)
        raise
    proc.stdin.close()  # the lifeline: the supervisor kills the sandbox and cleans up
    outcome = None if timed_out else _parsed(bytes(data))
    if outcome is not None and later is not None:
        later.append(proc)
        return outcome, "", ""
    errors = _finish(proc)
    if timed_out:
        return None, "timeout", f"the submission did not finish in {timeout:g} s and was stopped"
    if outcome is not None:
        return outcome, "", ""
    detail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no report"]
    return None, "error", f"the sandbox ended without a report: {detail[0][:300]}"


def _parsed(data: bytes) -> dict | None:
    """The supervisor's outcome, if ``data`` is one."""
    try:
        outcome = json.loads(data)
    except ValueError:
        return None
    return outcome if isinstance(outcome, dict) and isinstance(outcome.get("report"), str) \
        else None


def isolation_level(root: Path | None = None) -> tuple[bool, str]:
    """(usable, description): the isolation this machine gives the grader, found by starting
    one empty sandbox. Unusable means grading refuses to run student code.

    >>> usable, how = isolation_level()  # doctest: +SKIP
    """
    root = root or find_root()
    binds = _binds(root)[0]
    limits = Limits()
    with _zygote(root) as zygote:
        outcome, _, why = _exchange({"probe": True, "files": {}, "binds": binds,
                                     "memory": limits.memory, "processes": limits.processes,
                                     "work_size": "1m", "shm_size": "1m"}, 60, zygote)
    try:
        report = json.loads(outcome["report"]) if outcome else {"notes": [why]}
    except ValueError:
        report = {"notes": ["the probe's report is not JSON"]}
    if outcome is None or report.get("status") != "ok":
        why = "; ".join(str(n) for n in report.get("notes", []))
        return False, (f"no sandbox can be made here: {why}. Unprivileged user namespaces "
                       "are needed (Debian/Ubuntu: sysctl kernel.unprivileged_userns_clone=1; "
                       "Docker: --security-opt seccomp=unconfined)")
    who = ("root inside is nobody outside" if os.geteuid() == 0
           else f"root inside is your own uid {os.geteuid()} outside")
    return True, (f"namespaces (user, mount, PID, IPC, network with loopback only, UTS); "
                  f"{who}; no capabilities; an allowlisted read-only root; "
                  f"{outcome['limits']}")


def sandbox_available() -> str:
    """"" if a sandbox can be made here, else the reason it cannot."""
    usable, how = isolation_level()
    return "" if usable else how


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


def _validated(text: str) -> dict:
    """The sandbox's report as plain data of the expected shapes; {} if it is not one."""
    try:
        report = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(report, dict):
        return {}
    notes = report.get("notes", [])

    def dicts(key: str) -> list[dict]:
        given = report.get(key, [])
        return [d for d in given if isinstance(d, dict)] if isinstance(given, list) else []

    profile = report.get("profile", [])
    sent = report.get("sent")
    phases = [(str(p[0]), float(p[1])) for p in profile if isinstance(p, list) and len(p) == 2
              and isinstance(p[1], (int, float))] if isinstance(profile, list) else []
    if phases and isinstance(sent, (int, float)):
        phases.append(("report back", time.monotonic() - sent))
    return {"status": str(report.get("status", "error")),
            "notes": [str(n) for n in notes] if isinstance(notes, list) else [],
            "checks": dicts("checks"), "errors": dicts("errors"), "profile": phases}


def run_sandboxed(sub: Submission, answers: dict, cell_timeout: float, timeout: float,
                  limits: Limits | None = None, root: Path | None = None,
                  later: list[Supervisor] | None = None,
                  zygote: Zygote | None = None,
                  hidden: dict[str, str] | None = None) -> tuple[str, dict]:
    """Run one notebook (and the checks of ``answers``) in a sandbox of its own, forked by
    ``zygote`` (the batch's; without one, a zygote is started for this submission alone).

    ``hidden`` (path -> source) are the instructor's hidden checks, registered in the
    sandbox only after the notebook has run. The graded puzzles are those of
    ``sub.student`` (the roster id, or the name the submission is filed under).

    With ``later``, the sandbox's teardown overlaps with what the caller does next; the
    caller must then pass each process put in ``later`` to :func:`_finish`.

    Returns (status, report); the report holds the notes, the cells' errors and the
    checks' results. A submission stopped by the cgroup's memory or process limit gets
    the status ``memory limit`` or ``process limit``.

    >>> status, report = run_sandboxed(sub, answers, 30, 300)  # doctest: +SKIP
    """
    limits, root = limits or Limits(), root or find_root()
    if zygote is None:
        with _zygote(root) as own:
            return run_sandboxed(sub, answers, cell_timeout, timeout, limits, root, None, own,
                                 hidden)
    outcome, failure, why = _exchange({
        "files": {k: base64.b64encode(v).decode() for k, v in sub.files.items()},
        "notebook": sub.notebook, "answers": answers, "cell_timeout": cell_timeout,
        "rlimits": limits.rlimits, "max_processes": limits.processes, "memory": limits.memory,
        "processes": limits.processes, "work_size": limits.work, "shm_size": limits.shm,
        "binds": _binds(root)[0], "hidden": hidden or {},
        "student": sub.student,  # whose puzzles are graded
        "call_seconds": limits.call_seconds}, timeout, zygote, later)
    if outcome is None:
        return failure, {"notes": [why]}
    report = _validated(outcome["report"])
    limit = str(outcome.get("limit", ""))
    if limit:
        report.setdefault("notes", []).insert(0, (
            f"stopped by the {limit}: " + (f"{limits.memory >> 20} MiB for all its processes "
                                           "together" if limit == "memory limit" else
                                           f"{limits.processes} processes at once")))
        return limit, report
    if not report:
        return "error", {"notes": ["the sandbox ended without a report"]}
    return str(report.get("status", "error")), report


def default_jobs(limits: Limits | None = None) -> int:
    """Submissions graded at once by default: one per core this process may use, but no more
    sandboxes than fit in the memory available now at their limit (:attr:`Limits.memory`).

    >>> 1 <= default_jobs() <= len(os.sched_getaffinity(0))
    True
    """
    cores = len(os.sched_getaffinity(0))
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        available = next(int(line.split()[1]) * 1024 for line in meminfo
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return cores  # no figure to go by: the cgroups still hold each one to its limit
    return max(1, min(cores, available // (limits or Limits()).memory))


def profile_table(profiles: list[list[tuple[str, float]]]) -> str:
    """Where the submissions' time went: per phase, the median and the total over the batch.

    >>> print(profile_table([[("kernel start", 1.0)], [("kernel start", 3.0)]]))
    phase                                median s   total s
    kernel start                             2.00      4.00
    """
    seconds: dict[str, list[float]] = {}
    for phases in profiles:
        for phase, spent in phases:
            seconds.setdefault(phase, []).append(spent)
    lines = [f"{'phase':<34} {'median s':>10} {'total s':>9}"]
    lines += [f"{phase:<34} {statistics.median(spent):>10.2f} {sum(spent):>9.2f}"
              for phase, spent in seconds.items()]
    return "\n".join(lines)


def grade(lab: str, submissions: Path, out: Path, jobs: int | None = None,
          resume: bool = False, cell_timeout: float = 30.0, timeout: float = 300.0,
          root: Path | None = None, limits: Limits | None = None,
          roster: Path | None = None, student: str | None = None,
          gradebook: Path | None = None, profile: bool = False) -> list[GradeRow]:
    """Grade every submission of ``lab`` in ``submissions`` and write the reports to ``out``.

    ``lab`` is a lesson id or its number (``"02"``). With a ``roster`` (CSV: id, name,
    email), rows are keyed by student id and every student on it gets one. With
    ``student`` (a name or roster id), only that student is graded again; the others'
    results are kept. The reports merge ``out/manual.csv`` (see :mod:`labkit.manual`);
    with ``gradebook``, the rows also go into that SQLite gradebook.
    Prints the isolation this machine gives the sandboxes first, and refuses to run
    student code without one. With ``profile``, prints where the time went at the end
    (:func:`profile_table`).

    >>> rows = grade("00_processes", Path("submitted"), Path("graded"))  # doctest: +SKIP
    """
    root = root or find_root()
    lab = resolve_lab(root, lab)
    exercise_nb = root / "exercises" / f"{lab}.ipynb"
    class_list = Roster.load(roster) if roster is not None else None
    if not submissions.is_dir():
        raise LabError(f"{submissions} is not a folder of submissions")
    usable, how = isolation_level(root)
    if not usable:
        raise LabError(f"cannot isolate submissions here: {how}. Grading runs student "
                       "code; labkit refuses to run it without a sandbox.")
    print(f"isolation: {how}")
    for folder in (submissions.resolve(), out.resolve()):
        seen = [b for b in _binds(root)[0] if _within(str(folder), b)]
        if seen:
            raise LabError(f"{folder} lies inside {seen[0]}, which every sandbox can read; "
                           "put submissions and reports elsewhere")
    answers = answers_of(exercise_nb)
    hidden = load_course_hidden(root)
    lab_exercises = exercises(lab)
    require_complete(lab_exercises)
    if set(answers) != set(lab_exercises):
        raise LabError(f"{exercise_nb.name} and labkit's checks disagree: check cells for "
                       f"{sorted(answers)}, checks for {sorted(lab_exercises)}")
    results_dir, feedback_dir = out / "results", out / "feedback"
    for folder in (out, results_dir, feedback_dir):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # other users' batches: no entry
    todo = find_submissions(submissions, lab)
    if class_list is not None:
        todo = _on_roster(todo, class_list)
    for sub in todo:
        for note in sub.notes:
            print(f"warning: {note}", file=sys.stderr)
    if student is not None:
        todo = _only(todo, student)
    elif resume:
        todo = [s for s in todo if load_row(results_dir / f"{s.student}.json") is None]
    version = checks_version(lab_exercises)

    ending: list[Supervisor] = []  # supervisors still removing their sandbox
    ending_lock = threading.Lock()
    profiles: list[list[tuple[str, float]]] = []

    def one(sub: Submission) -> GradeRow:
        with ending_lock:  # reap those done, so a big batch holds no pile of descriptors
            for proc in [p for p in ending if p.poll() is not None]:
                ending.remove(proc)
                _finish(proc)
        started = time.monotonic()
        report: dict[str, Any]
        if sub.problem:
            status, report = sub.status, {"notes": [sub.problem]}
        else:
            status, report = run_sandboxed(sub, answers, cell_timeout, timeout, limits, root,
                                           ending, zygote, hidden)
        score, total, checks = _score(lab_exercises, answers, report.get("checks", []),
                                      status)
        notes = list(sub.notes) + [str(n)[:500] for n in report.get("notes", [])][:20]
        notebook = sub.files.get(sub.notebook, b"")
        row = GradeRow(sub.student, lab, score, total, status, time.monotonic() - started,
                       checks, notes, sub.student_id, sub.name, sub.email, sub.submitted,
                       locate_errors(notebook, report.get("errors", [])),
                       written_answers(notebook, exercise_nb), version)
        if report.get("profile"):
            profiles.append([*report["profile"], ("whole submission", row.seconds)])
        write_atomically(results_dir / f"{sub.student}.json",
                         json.dumps(asdict(row), indent=1, ensure_ascii=False))
        return row

    jobs = jobs or default_jobs(limits)
    try:
        with _zygote(root) as zygote, ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, s) for s in todo]
            for _ in progress(as_completed(futures), desc=f"grading {lab}",
                              total=len(futures)):
                pass
            for f in futures:
                f.result()
    finally:
        for proc in ending:
            _finish(proc)
    rows = [r for r in map(load_row, sorted(results_dir.glob("*.json"))) if r is not None]
    rows.sort(key=lambda r: r.student)
    if profile:
        print(f"where the time went ({len(profiles)} submissions run, {jobs} at once):")
        print(profile_table(profiles))
    return publish(out, rows, gradebook)
