"""Exercise checks: run a student's answer on real processes and say what is right.

Each lesson's checks live in ``labkit/checks/<topic>.py`` and register
themselves with an :class:`Exercise`. :func:`check` is what a notebook calls;
the instructor's grader calls :func:`run_checks` and gets the same results as
plain data.

Two rules keep a broken or hostile answer from doing harm:

* the checks run in a child process with a timeout, so a hanging answer
  cannot freeze the kernel;
* the answer itself only ever runs through :func:`call`, in a further child
  of its own, so whatever it does to its process (forks, signal handlers,
  patched modules) dies with that process and cannot touch the verdict.
  :func:`call` also measures the answer's hygiene: descriptors it left open,
  children it did not reap, named objects it did not remove.
"""
from __future__ import annotations

import html
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import course
from ._janitor import unlink_name
from .errors import CheckFailed, CheckTimedOut, ChildError, LabError, LabTimeout, NotDone
from .processes import Child, ChildResult, start
from .session import (
    MQUEUE_DIR,
    PREFIX,
    SESSION_PID,
    SHM_DIR,
    UID,
    parse_lab_name,
    session_roots,
)
from .waiting import SLACK_LIMIT

__all__ = [
    "HIDDEN_ENV",
    "HIDDEN_FOLDER",
    "CheckFailed",
    "CheckReport",
    "CheckResult",
    "CheckTimedOut",
    "Exercise",
    "Launched",
    "NotDone",
    "call",
    "check",
    "exercise",
    "exercises",
    "expect",
    "expect_clean",
    "hidden_loaded",
    "hidden_sources",
    "launch",
    "load_course_hidden",
    "load_hidden",
    "run_checks",
]

PASSED, FAILED, NOT_DONE, ERROR, NOT_RUN = "passed", "failed", "not done", "error", "not run"
PROGRESS_AFTER = 2.0  # seconds a check() may take before it shows which check is running


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, as plain data (the grader stores these)."""

    exercise: str
    check: str
    status: str        # passed, failed, not done, error or not run
    points: float
    max_points: float
    message: str = ""
    hint: str = ""
    concept: str = ""  # the idea behind the hint, shown when the same check fails again

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class _Check:
    exercise: str
    name: str
    hint: str
    fn: Callable[[Any], None]
    concept: str = ""
    hidden: bool = False  # an instructor's check, run only at grading (see load_hidden)

    @property
    def points(self) -> float:
        """What the course config says this check is worth."""
        return course.current().points(self.exercise, self.name)


@dataclass
class Exercise:
    """A graded exercise: an id like ``"00.exit_code"``, a title and its checks.

    Checks are added with the :meth:`check` decorator, in the order they run; what
    each is worth is set in the course config (``labkit/course.toml``), by its name.
    ``kind`` is one of :data:`labkit.course.EXERCISE_KINDS`; ``raw_calls`` names the system calls an
    exercise asks the student to make themselves (``("mmap", "os.fork")``) rather than
    through labkit's helpers::

        EXIT = Exercise("00.exit_code", "Return a value through the exit status")

        @EXIT.check("7 comes back as 7", hint="Exit with os._exit(value).")
        def _(answer):
            expect(call(answer, lambda: 7).value == 7, "...")
    """

    id: str
    title: str
    timeout: float = 30.0
    checks: list[_Check] = field(default_factory=list)
    kind: str = "write"
    raw_calls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in course.EXERCISE_KINDS:
            raise ValueError(f"exercise {self.id!r}: kind {self.kind!r} is not one of "
                             + ", ".join(course.EXERCISE_KINDS))
        if self.id in _REGISTRY:
            raise ValueError(f"exercise {self.id!r} is defined twice")
        _REGISTRY[self.id] = self

    def check(self, name: str, hint: str = "", concept: str = "") -> Callable:
        """Register the decorated function as the next check of this exercise.

        ``hint`` is a nudge shown when the check fails; ``concept``, the idea
        behind it, is added when the same check fails again. Neither gives
        code away. Its points are set in the course config
        (``labkit/course.toml``), by the check's name.
        """
        def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            self.checks.append(_Check(self.id, name, hint, fn, concept, _loading_hidden))
            return fn
        return register

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)


_REGISTRY: dict[str, Exercise] = {}
_HIDDEN_LOADED: dict[str, str] = {}  # hidden check file -> the source registered from it
_loading_hidden = False
HIDDEN_ENV = "LABKIT_HIDDEN_CHECKS"  # the folder of the instructor's hidden checks
HIDDEN_FOLDER = "hidden_checks"     # that folder in the course folder (never in a student build)


def exercises(lesson: str | None = None) -> dict[str, Exercise]:
    """Every registered exercise, or those of one lesson (``exercises("00")``).

    With ``$LABKIT_HIDDEN_CHECKS`` naming a folder, its hidden checks are registered too.
    """
    from . import checks  # noqa: F401 - importing it registers every lesson's checks

    folder = os.environ.get(HIDDEN_ENV)
    if folder:
        load_hidden(hidden_sources(folder))
    return {k: v for k, v in sorted(_REGISTRY.items())
            if lesson is None or k.split(".")[0] == lesson.split("_")[0]}


def hidden_sources(folder: str | os.PathLike) -> dict[str, str]:
    """The instructor's hidden checks: the source of each ``*.py`` file of ``folder``, by
    its path.

    Raises:
        LabError: ``folder`` is not a readable folder.
    """
    from pathlib import Path

    try:
        return {str(p.resolve()): p.read_text(encoding="utf-8")
                for p in sorted(Path(folder).glob("*.py"))}
    except OSError as e:
        raise LabError(f"cannot read the hidden checks in {folder}: {e}") from e


def load_hidden(sources: dict[str, str]) -> None:
    """Register hidden checks from their source (path -> code), each file once.

    A hidden check file adds checks to exercises the public checks define, and runs
    only where the grader asks for it (never in a student's kernel)::

        from labkit.checking import call, exercise, expect

        EXIT = exercise("00.exit_code")

        @EXIT.check("every exit code from 0 to 255", hint="...")
        def _(answer): ...

    Its points are set in the course config under ``[exercises."ID".hidden]``.
    """
    global _loading_hidden
    from . import checks  # noqa: F401 - hidden checks extend the public exercises

    for path, source in sorted(sources.items()):
        if path in _HIDDEN_LOADED:
            continue
        _HIDDEN_LOADED[path] = source
        _loading_hidden = True
        try:
            namespace: dict[str, Any] = {"__name__": f"labkit_hidden_{len(_HIDDEN_LOADED)}"}
            exec(compile(source, path, "exec"), namespace)  # the instructor's own code
        finally:
            _loading_hidden = False


def load_course_hidden(root: os.PathLike) -> dict[str, str]:
    """Register the hidden checks of the course folder ``root`` (its ``hidden_checks/``, if
    there is one) and return their sources, for a grader to hand to its sandboxes."""
    from pathlib import Path

    folder = Path(root) / HIDDEN_FOLDER
    sources = hidden_sources(folder) if folder.is_dir() else {}
    load_hidden(sources)
    return sources


def hidden_loaded() -> bool:
    """Whether any hidden check file has been registered in this process."""
    return bool(_HIDDEN_LOADED)


def exercise(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id``, to read or (in hidden checks) to extend.

    Raises:
        ValueError: no such exercise (the message lists the lesson's).
    """
    return _lookup(exercise_id)


def _lookup(exercise_id: str) -> Exercise:
    known = exercises()
    if exercise_id not in known:
        lesson = str(exercise_id).split(".")[0]
        near = [k for k in known if k.startswith(lesson + ".")] or list(known)
        raise ValueError(f"no exercise {exercise_id!r}; exercises are: {', '.join(near)}")
    return known[exercise_id]


# --- what checks use -----------------------------------------------------------------


def expect(condition: object, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


_answer_pid = 0


def answer_pid() -> int:
    """The pid of the process running the answer, for helpers that the answer calls.

    Only meaningful inside the answer's own process (and its children, which
    inherit it): in the checker it is 0.
    """
    return _answer_pid


@dataclass(frozen=True)
class Attempt:
    """One call of the answer: its result and the hygiene problems it had."""

    result: ChildResult
    problems: tuple[str, ...]

    @property
    def value(self) -> Any:
        """What the answer returned; a failed check if it raised or its process died."""
        if self.result.escaped:
            raise CheckFailed(_escape_message(self.result))
        if not self.result.returned:
            raise CheckFailed(_no_value_message(self.result))
        return self.result.value[0]


def _escape_message(r: ChildResult) -> str:
    pids = ", ".join(map(str, r.escaped))
    return (f"a child process your function forked (pid {pids}) returned from your function "
            "instead of ending: a child must always finish with os._exit(code), even when "
            "its work raises (use try/finally)")


def _no_value_message(r: ChildResult) -> str:
    if r.error_type:
        last = r.traceback.strip().splitlines()[-1] if r.traceback.strip() else ""
        return f"your function raised {r.error_type}: {r.error_message} ({last})"
    return (f"the process running your function {r.status} before your function returned "
            "(did it call exec or os._exit itself, instead of in a child?)")


def _open_fds() -> dict[int, str]:
    fds = {}
    for entry in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"):
        fd = int(entry)
        try:
            os.fstat(fd)
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used, now closed
    return fds


def _named_objects() -> set[tuple[str, str]]:
    """Our named objects, except other labkit sessions' (the answer's carry our session pid):
    shared memory, semaphores and queues, and FIFOs and sockets in the temporary folder and
    the working folder, or one folder down in a folder there."""
    found = set()
    for directory, kind in ((SHM_DIR, "shm"), (MQUEUE_DIR, "mq")):
        if not directory.is_dir():
            continue
        for entry in os.listdir(directory):
            if _others(entry):
                continue  # another kernel's object (or a test's stale one): not the answer's
            try:
                if os.lstat(directory / entry).st_uid != UID:
                    continue
            except FileNotFoundError:
                continue
            if kind == "shm" and entry.startswith("sem."):
                found.add(("sem", "/" + entry[4:]))
            else:
                found.add((kind, "/" + entry))
    folders = {tempfile.gettempdir(), os.getcwd(), str(session_roots()[0])}
    for folder in folders:
        found |= _fifos_and_sockets(folder, depth=1)
    return found


def _others(entry: str) -> bool:
    """Whether ``entry`` is named for another labkit session than this one."""
    owner = parse_lab_name(entry)
    return owner is not None and owner[1] != SESSION_PID


def _fifos_and_sockets(folder: str, depth: int) -> set[tuple[str, str]]:
    """FIFOs and sockets of ours in ``folder`` (and ``depth`` levels of folders below), except
    those named for another session: a kernel checking beside this one may make them now."""
    found: set[tuple[str, str]] = set()
    try:
        entries = [e for e in os.scandir(folder) if not _others(e.name)]
    except OSError:
        return found  # gone, or not ours to read
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_uid != UID:
            continue
        if stat.S_ISFIFO(st.st_mode):
            found.add(("fifo", entry.path))
        elif stat.S_ISSOCK(st.st_mode):
            found.add(("socket", entry.path))
        elif stat.S_ISDIR(st.st_mode) and depth > 0 and (
                entry.name.startswith(PREFIX) or not entry.name.startswith("labkit")):
            found |= _fifos_and_sockets(entry.path, depth - 1)  # not other sessions' folders
    return found


def _remove_new_objects(before: set[tuple[str, str]]) -> None:
    """Remove the objects that appeared since ``before``."""
    for kind, name in sorted(_named_objects() - before):
        unlink_name(kind, name)


def _plain(value: Any, depth: int = 0) -> Any:
    """The answer's value as built-in data where that is unambiguous, so the checker can decode
    it without running any of the answer's code: NumPy numbers become Python numbers, named
    tuples tuples. Anything else is sent as it is, and the checker refuses what is not plain
    (a NumPy array may be a view of memory that is gone: the answer must copy it out)."""
    if depth > 50:
        return value
    if _numpy_number(value):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    return value


def _numpy_number(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.integer, numpy.floating, numpy.bool_))


def _define_notebooks(given: Any) -> None:
    """Run the definitions of every notebook answer among ``given`` (nested in tuples, lists
    and dicts), as the kernel had run them before the check was called."""
    from .answers import NotebookAnswer

    if isinstance(given, NotebookAnswer):
        given.namespace()
    elif isinstance(given, (tuple, list)):
        for item in given:
            _define_notebooks(item)
    elif isinstance(given, dict):
        _define_notebooks(list(given.values()))


def _measured(answer: Callable, args: tuple, kwargs: dict) -> tuple[Any, list[str]]:
    """Call the answer in this (forked) process and note what it left behind."""
    global _answer_pid
    me = _answer_pid = os.getpid()
    _define_notebooks((answer, args, kwargs))  # what its cells made at the top level is no leak
    fds, objects = _open_fds(), _named_objects()
    value = _plain(answer(*args, **kwargs))
    if os.getpid() != me:  # a fork that returned: the harness reports it as escaped
        return value, []
    problems = [f"file descriptor {fd} ({what}) was left open"
                for fd, what in sorted(_open_fds().items()) if fd not in fds]
    problems += [f"{kind} {name} was left behind (labkit removed it)"
                 for kind, name in sorted(_named_objects() - objects)]
    return value, problems


CALL_TIMEOUT = 5.0  # seconds one call of an answer may take, unless a check says otherwise


class Launched:
    """The answer running in its own child process; see :func:`launch`."""

    def __init__(self, child: Child, timeout: float) -> None:
        self._child = child
        self._timeout = timeout
        self._until = time.monotonic() + timeout

    def __enter__(self) -> Launched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the answer's process (and all it started) if it still runs."""
        self._child.close()

    @property
    def pid(self) -> int:
        """The pid of the process running the answer."""
        return self._child.pid

    @property
    def running(self) -> bool:
        """True until the answer's process ends."""
        return self._child.running

    def send_signal(self, sig: int | str) -> None:
        """Send a signal to the process running the answer."""
        self._child.send_signal(sig)

    def finish(self) -> Attempt:
        """Wait for the answer (until its timeout) and return what it did.

        Raises NotDone if it still raises NotImplementedError, CheckFailed if
        it did not finish in time.
        """
        try:
            r = self._child.wait(max(self._until - time.monotonic(), 0.001), load_slack=True)
        except LabTimeout:
            raise CheckTimedOut(f"your function did not finish in {self._timeout:g} s and was "
                              "stopped (is it waiting for something that never comes: a "
                              "child that never ends, a pipe end still open?)") from None
        if r.error_type == "NotImplementedError":
            raise NotDone()
        problems = list(r.value[1]) if r.returned else []
        problems += r.leftovers
        if r.escaped:
            problems.append(_escape_message(r))
        return Attempt(r, tuple(problems))


def launch(answer: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Launched:
    """Start the student's ``answer(*args, **kwargs)`` in a child and return at once.

    For checks that must act on the running answer (send it signals, talk to
    it through a FIFO) before collecting its result with :meth:`Launched.finish`::

        with launch(answer, 3) as running:
            running.send_signal("SIGUSR1")
            got = running.finish().value
    """
    timeout = CALL_TIMEOUT if timeout is None else timeout
    if not callable(answer):
        raise CheckFailed(f"expected a function, got {answer!r}")
    # The seconds an answer waited for a CPU (a loaded machine) are added to its timeout, up
    # to SLACK_LIMIT times the timeout; an answer that sleeps or spins alone gets none.
    return Launched(start(_measured, answer, args, kwargs, timeout=SLACK_LIMIT * timeout,
                          show=False, plain=True), timeout)


def call(answer: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Attempt:
    """Run the student's ``answer(*args, **kwargs)`` in a child process of its own.

    Raises NotDone if the answer still raises NotImplementedError, and
    CheckFailed if it is not a function or does not finish in ``timeout``
    seconds (default :data:`CALL_TIMEOUT`).
    """
    with launch(answer, *args, timeout=timeout, **kwargs) as running:
        return running.finish()


def expect_clean(attempt: Attempt) -> None:
    """Fail the check if the answer leaked a descriptor, a child or a named object.

    An answer that raised or died fails too: it has not shown that it cleans up.
    """
    _ = attempt.value  # raises CheckFailed with the reason if there is no value
    if attempt.problems:
        raise CheckFailed("your function did not clean up: " + "; ".join(attempt.problems))


# --- running the checks --------------------------------------------------------------


def _run_all(exercise_id: str, answer: Any, progress_w: int | None = None,
             until: Callable[[CheckResult], bool] | None = None) -> list[CheckResult]:
    ex = _lookup(exercise_id)
    results: list[CheckResult] = []
    timed_out = stopped = ""
    for i, c in enumerate(ex.checks):
        if progress_w is not None:
            os.write(progress_w, f"{i}\n".encode())
        if timed_out or stopped:
            why = f"an earlier check timed out ({timed_out})" if timed_out else stopped
            results.append(CheckResult(ex.id, c.name, NOT_RUN, 0, c.points, f"not run: {why}",
                                       c.hint, c.concept))
            continue
        before = _named_objects()
        try:
            try:
                c.fn(answer)
            finally:
                # Whatever the answer left is removed here, also when it raised or was killed;
                # the hygiene check (expect_clean) is where it costs points.
                _remove_new_objects(before)
        except NotDone:
            results.append(CheckResult(ex.id, c.name, NOT_DONE, 0, c.points,
                                       "not done yet: replace `raise NotImplementedError` "
                                       "with your code", c.hint))
        except CheckFailed as e:
            results.append(CheckResult(ex.id, c.name, FAILED, 0, c.points, str(e), c.hint,
                                       c.concept))
            if isinstance(e, CheckTimedOut):
                timed_out = str(e)
        except Exception as e:
            results.append(CheckResult(ex.id, c.name, ERROR, 0, c.points,
                                       f"the check itself failed ({type(e).__name__}: {e}); "
                                       "please tell your instructor", c.hint))
        else:
            results.append(CheckResult(ex.id, c.name, PASSED, c.points, c.points))
        if until is not None and until(results[-1]):
            stopped = f"the run was asked to stop after {c.name!r}"
    return results


def run_checks(exercise_id: str, answer: Any,
               progress: Callable[[int, str], None] | None = None,
               until: Callable[[CheckResult], bool] | None = None) -> list[CheckResult]:
    """Run every check of an exercise in a child process and return the results.

    ``progress(index, name)`` is called in this process, with the check now running, as
    each check starts and ten times a second while it runs. With ``until`` (called in the
    checking process), the checks after the first result for which ``until(result)`` is
    true are reported "not run" (the mutants' test stops at the check that names a
    mutant's fault: the later checks would prove nothing more, and some wait out a hang).

    >>> results = run_checks("00.exit_code", None)
    >>> results[0].status, results[0].message
    ('failed', 'expected a function, got None')
    """
    ex = _lookup(exercise_id)
    progress_r, progress_w = os.pipe() if progress else (None, None)
    try:
        child = start(_run_all, exercise_id, answer, progress_w, until, timeout=ex.timeout,
                      show=False)
        with child:
            if progress_w is not None:
                os.close(progress_w)
                progress_w = None
            if progress is not None and progress_r is not None:
                _follow(child, progress_r, ex, progress)
            return child.wait().value
    except (LabTimeout, ChildError) as e:
        why = (f"the checks did not finish in {ex.timeout:g} s" if isinstance(e, LabTimeout)
               else f"the checking process failed: {e}")
        return [CheckResult(ex.id, c.name, ERROR, 0, c.points, why, c.hint) for c in ex.checks]
    finally:
        for fd in (progress_r, progress_w):
            if fd is not None:
                os.close(fd)


def _follow(child: Child, progress_r: int, ex: Exercise,
            progress: Callable[[int, str], None]) -> None:
    """Report the check the checking child is running, ten times a second, until it ends."""
    import select

    pending, current = b"", -1
    while child.running:
        ready, _, _ = select.select([progress_r], [], [], 0.1)
        chunk = os.read(progress_r, 4096) if ready else b""
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.isdigit() and int(line) < len(ex.checks):
                current = int(line)
        if current >= 0:
            progress(current, ex.checks[current].name)
        if ready and not chunk:
            return


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check` shows in the cell: each check, its points, and hints.

    A failed check shows its hint (a nudge); one that failed before in this
    session shows the concept behind the hint as well.
    """

    exercise: str
    title: str
    results: list[CheckResult]
    again: frozenset[str] = frozenset()   # checks that failed before, in this session
    more: str = ""                         # the hidden checks grading adds, if any

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.max_points for r in self.results)

    def _hints(self, r: CheckResult) -> list[str]:
        if r.status != FAILED:
            return []
        shown = [r.hint] if r.hint else []
        if r.concept and r.check in self.again:
            shown.append(r.concept)
        return shown

    def _line(self, r: CheckResult) -> str:
        mark = {PASSED: "PASS", FAILED: "FAIL", NOT_DONE: "TODO", ERROR: "ERR ",
                NOT_RUN: "SKIP"}[r.status]
        text = f"  [{mark}] {r.check} ({r.points:g}/{r.max_points:g})"
        if r.status != PASSED:
            text += f": {r.message}"
        for hint in self._hints(r):
            text += f"\n         hint: {hint}"
        return text

    def __repr__(self) -> str:
        head = f"{self.exercise} {self.title}: {self.score:g}/{self.max_score:g} points"
        return "\n".join([head, *(self._line(r) for r in self.results),
                          *([f"  (+) {self.more}"] if self.more else [])])

    def _repr_html_(self) -> str:
        colours = {PASSED: "#1a7f37", FAILED: "#cf222e", NOT_DONE: "#9a6700", ERROR: "#8250df",
                   NOT_RUN: "#57606a"}
        rows = []
        for r in self.results:
            detail = html.escape(r.message)
            detail += "".join(f"<br><i>Hint: {html.escape(h)}</i>" for h in self._hints(r))
            rows.append(f"<tr><td style='color:{colours[r.status]};font-weight:bold'>"
                        f"{html.escape(r.status)}</td><td>{html.escape(r.check)}</td>"
                        f"<td>{r.points:g}/{r.max_points:g}</td>"
                        f"<td style='text-align:left'>{detail}</td></tr>")
        return (f"<div><b>{html.escape(self.exercise)} {html.escape(self.title)}</b>: "
                f"{self.score:g}/{self.max_score:g} points<table>"
                "<tr><th>result</th><th>check</th><th>points</th><th>details</th></tr>"
                + "".join(rows) + "</table>"
                + (f"<p><i>{html.escape(self.more)}</i></p>" if self.more else "") + "</div>")


class _Progress:
    """A progress bar that appears only once a check() has taken PROGRESS_AFTER seconds."""

    def __init__(self, ex: Exercise) -> None:
        self.ex = ex
        self.started = time.monotonic()
        self.bar: Any = None

    def show(self, index: int, name: str) -> None:
        if self.bar is None and time.monotonic() - self.started < PROGRESS_AFTER:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(self.ex.checks), desc=f"checking {self.ex.id}",
                            leave=False)
        self.bar.n = index
        self.bar.set_postfix_str(name[:60])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_FAILED_BEFORE: set[tuple[str, str]] = set()  # (exercise, check) that failed in this session


def check(exercise_id: str, answer: Any) -> CheckReport:
    """Check your answer to an exercise on real processes and show the verdict.

    >>> check("00.exit_code", exit_code_of)   # doctest: +SKIP
    00.exit_code Return a value through the exit status: 4/4 points
      [PASS] ...
    """
    ex = _lookup(exercise_id)
    shown = _Progress(ex)
    try:
        results = run_checks(exercise_id, answer, shown.show)
    finally:
        shown.close()
    failed = {r.check for r in results if r.status == FAILED}
    again = frozenset(c for c in failed if (ex.id, c) in _FAILED_BEFORE)
    _FAILED_BEFORE.update((ex.id, c) for c in failed)
    count, points = course.current().hidden(ex.id)
    more = "" if not count or any(c.hidden for c in ex.checks) else (
        f"{count} more check(s), worth {points:g} points, run when your work is graded")
    return CheckReport(ex.id, ex.title, results, again, more)
