"""Shared test machinery for the whole suite: labkit's doctests, tests/, and the notebooks.

It lives at the root because pytest applies a conftest's test hooks only below
its own folder: from ``tests/`` the notebook checks below never reached
``notebooks/`` or ``solutions/``, and ``no_leaks`` never reached the doctests.

* The test process is a subreaper: whatever a test or a notebook kernel
  orphans is adopted here, so a leak shows up as our own descendant instead
  of vanishing under PID 1. Like a kernel, it takes Ctrl-C as KeyboardInterrupt,
  also when it was started with SIGINT ignored (``make test &`` in a script).
* ``no_leaks`` (autouse) fails a test that leaves a child process, a zombie,
  or a new entry in ``/dev/shm`` or ``/dev/mqueue``; it then cleans up so one
  leak does not fail the tests after it.
* For notebooks run by nbval: a cell fails if it writes to stderr (except
  Python 3.12+'s deliberate warning about a raw ``os.fork()`` in a threaded
  kernel, which lesson 00 teaches), and the last cell fails if the notebook
  left processes or kernel objects behind once its kernel has shut down.
* In parallel (``pytest -n 2``, pytest-xdist), each worker starts through
  ``tests/isolate.py`` in mount and IPC namespaces of its own, so the
  ``/dev/shm`` and ``/dev/mqueue`` it compares hold only its own tests'
  objects, and each worker's orphans come back to that worker: the leak check
  stays exact. Its ``/tmp`` is its own too, and the tests that run checks
  outside the grader's sandbox run in a folder of their own: a check removes the
  FIFOs and sockets that appeared in those folders while it ran. Where that is
  not possible (not root, no user namespaces) the run falls back to one process
  and says so in its header.
* A test marked ``alone`` runs while no other test runs in any worker (a
  readers-writer lock taken around every test; such tests are handed out last).
  Tests marked ``one_at_a_time(name)`` never overlap: all tests of one name go
  to one worker as one group, in turn, so no worker waits for another's lock.
* ``make test`` starts two workers more than the CPUs: much of the suite waits
  (kernels, servers, browsers, timeouts), and the extra workers fill those waits.
"""
from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from labkit._janitor import CLIENT
from labkit._platform import LINUX, reset_inherited_ignores, set_subreaper
from labkit.session import MQUEUE_DIR, SHM_DIR

sys.path.insert(0, str(Path(__file__).parent / "tests"))  # helpers, for the doctests too
from helpers import FORK_WARNING
from isolate import NOT_POSSIBLE

collect_ignore_glob = ["tests/corpus/*"]
ISOLATE = Path(__file__).parent / "tests" / "isolate.py"

if LINUX:
    set_subreaper(True)


_LAB_NAME = re.compile(r"(?:sem\.)?labkit_\d+_(\d+)_")


def _others_session(entry: str) -> bool:
    """A lab object of another live session (a concurrent run), not ours to judge."""
    m = _LAB_NAME.match(entry)
    if not m:
        return False
    pid = int(m.group(1))
    ours = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    return pid not in ours and psutil.pid_exists(pid)


def kernel_objects() -> set[str]:
    """Entries of /dev/shm and /dev/mqueue (multiprocessing's short-lived locks excepted)."""
    found = set()
    for directory in (SHM_DIR, MQUEUE_DIR):
        if directory.is_dir():
            found |= {f"{directory}/{e}" for e in os.listdir(directory)
                      if not e.startswith("sem.mp-")}
    return found


def descendants() -> list[psutil.Process]:
    """Our living descendants, except this session's janitor."""
    return [p for p in psutil.Process().children(recursive=True) if p.pid != CLIENT.pid]


def _settle(seconds: float) -> list[psutil.Process]:
    """Reap adopted zombies until nothing is left or ``seconds`` pass; return what lives."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for p in descendants():
            try:
                if p.status() == psutil.STATUS_ZOMBIE and p.ppid() == os.getpid():
                    os.waitpid(p.pid, os.WNOHANG)
                else:
                    alive.append(p)
            except (psutil.Error, ChildProcessError):
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)  # polling our own process table, not waiting for a timing


def _kill(processes: list[psutil.Process]) -> None:
    for p in processes:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    _settle(2.0)


def leak_report(before: set[str], grace: float) -> list[str]:
    """What was left since ``before``; cleans it up so later tests start clean."""
    problems = []
    alive = _settle(grace)
    for p in alive:
        try:
            problems.append(f"process {p.pid} ({p.name()}, {p.status()}) is still there")
        except psutil.Error:
            pass
    _kill(alive)
    for path in sorted(kernel_objects() - before):
        name = os.path.basename(path)
        if _others_session(name):
            continue
        problems.append(f"{path} was left behind")
        try:
            os.unlink(path)
        except OSError:
            pass
    return problems


@pytest.fixture(autouse=True)
def no_leaks():
    before = kernel_objects()
    yield
    problems = leak_report(before, grace=1.0)
    if problems:
        pytest.fail("the test leaked: " + "; ".join(problems))


# --- parallel workers, each in its own namespaces ------------------------------------

_SERIAL_NOTE = pytest.StashKey[str]()
_ROOM = pytest.StashKey[str]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _why_not_isolated() -> str:
    """'' if a worker can have its own /dev/shm and /dev/mqueue here, else the reason."""
    if not LINUX:
        return "private /dev/shm and /dev/mqueue need Linux namespaces"
    probe = subprocess.run([sys.executable, str(ISOLATE), "--probe"], capture_output=True,
                           text=True, timeout=60, check=False)
    if probe.returncode not in (0, NOT_POSSIBLE):  # a crash is a bug, not this machine's limit
        raise pytest.UsageError(f"tests/isolate.py --probe failed (exit {probe.returncode}):\n"
                                f"{probe.stderr.strip()}")
    return "" if probe.returncode == 0 else probe.stderr.strip()


@pytest.hookimpl(tryfirst=True)  # before xdist's own pytest_configure starts the workers
def pytest_configure(config: pytest.Config) -> None:
    if _is_worker(config):
        ours = os.readlink("/proc/self/ns/mnt") if LINUX else ""
        if ours == config.workerinput.get("labkit_mount_ns", ours):
            raise pytest.UsageError("this worker shares /dev/shm with the others, so its leak "
                                    "check would judge their objects; start it through "
                                    "tests/isolate.py (the root conftest.py does)")
    elif getattr(config.option, "numprocesses", None) and not config.getoption("collectonly"):
        why = _why_not_isolated()
        if why:
            config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []
            config.stash[_SERIAL_NOTE] = f"workers: one, not parallel ({why})"
        else:  # handed out by _Scheduler below, in our order: longest first
            config.option.dist = "loadscope"
            config.option.loadscopereorder = False
            config.stash[_ROOM] = tempfile.mkdtemp(prefix="labkit-room-")
    if _is_worker(config) or not getattr(config.option, "numprocesses", None):
        # This process runs tests, which stand in for a kernel: Ctrl-C is KeyboardInterrupt.
        # A script that starts `make test &` (no job control) has it ignore SIGINT and
        # SIGQUIT, and an ignored signal stays ignored through fork and exec.
        reset_inherited_ignores()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _ROOM in config.stash:
        shutil.rmtree(config.stash[_ROOM], ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(_SERIAL_NOTE, None)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist knows no such hook
def pytest_xdist_setupnodes(config: pytest.Config, specs: list) -> None:
    """Start every local worker through tests/isolate.py, which keeps pytest's temporary
    folder and the workers' lock folder in sight in the worker's own /tmp."""
    keep = [str(config._tmp_path_factory.getbasetemp()), config.stash[_ROOM]]  # made now
    for spec in specs:
        if spec.popen and not spec.python:
            spec.python = shlex.join([sys.executable, str(ISOLATE),
                                      *(arg for path in keep for arg in ("--keep", path)),
                                      sys.executable])


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Tests go to the workers one by one, but a notebook's cells all to one worker, in order
    (one kernel runs them), and so do the tests of a file that share a module fixture (one
    grading run, one sweep: made once). The workers write down these scopes when they
    collect (see pytest_collection_modifyitems); xdist's own loadgroup cannot do this under
    pytest 9 (it renames a node by a field pytest no longer reads)."""
    import json

    from xdist.scheduler import LoadScopeScheduling

    room = Path(config.stash[_ROOM])

    class _Scheduler(LoadScopeScheduling):
        scopes: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.scopes is None:  # every worker has collected (and written) by now
                self.scopes = json.loads(next(room.glob("scopes-*.json")).read_text())
            return self.scopes.get(nodeid, nodeid)

        def _reschedule(self, node) -> None:
            """A worker gets more only when it holds fewer than two tests (it needs the one
            after the running one): xdist would queue a third, which waits behind a long test
            while another worker idles."""
            if not node.shutting_down and self.workqueue and \
                    self._pending_of(self.assigned_work[node]) >= 2:
                return
            super()._reschedule(node)

    return _Scheduler(config, log)


def _scope(item: pytest.Item) -> str:
    """What must run on one worker with this test: the tests that may not overlap it
    (``one_at_a_time``: all on one worker, in turn, so no other worker ever waits for
    them), its notebook, or the module fixture it shares with other tests of its file;
    else nothing (its own node id)."""
    path = item.nodeid.split("::", 1)[0]
    names = sorted(m.args[0] for m in item.iter_markers("one_at_a_time"))
    if names:
        return f"one_at_a_time:{names[0]}"
    if _is_cell(item):
        return path
    info = getattr(item, "_fixtureinfo", None)
    for name, defs in sorted(info.name2fixturedefs.items()) if info else ():
        if defs[-1].scope in ("module", "class") and defs[-1].baseid.startswith(path):
            return f"{path}::{name}"
    return item.nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """What a worker needs from the controller: its namespace (to prove it has another one)
    and the folder of the lock that ``alone`` tests take."""
    node.workerinput["labkit_mount_ns"] = os.readlink("/proc/self/ns/mnt") if LINUX else ""
    node.workerinput["labkit_room"] = node.config.stash[_ROOM]


# --- `alone` and `one_at_a_time`: locks shared by the workers ------------------------


@contextlib.contextmanager
def _flock(path: Path, how: int) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, how)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _room(folder: Path, item: pytest.Item) -> Iterator[None]:
    """Every test is in the room (a shared lock); an ``alone`` test only when nobody else is
    (the exclusive lock). A turnstile gives it priority: while it waits, no new test enters,
    and the tests already in finish first. A ``one_at_a_time(name)`` test also holds the
    mutex of that name, so tests of one name never overlap (they may overlap others)."""
    alone = item.get_closest_marker("alone") is not None
    with contextlib.ExitStack() as held:
        for name in sorted({m.args[0] for m in item.iter_markers("one_at_a_time")}):  # in order
            held.enter_context(_flock(folder / f"one-{name}", fcntl.LOCK_EX))
        with _flock(folder / "turnstile", fcntl.LOCK_EX):
            held.enter_context(_flock(folder / "room", fcntl.LOCK_EX if alone else fcntl.LOCK_SH))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    config = item.config
    if not _is_worker(config):
        return (yield)
    with _room(Path(config.workerinput["labkit_room"]), item):
        return (yield)


# --- what runs, in which order --------------------------------------------------------

# The longest work first (measured, sums of test durations on 2 busy cores): a long test,
# or a group that runs on one worker (see _scope), that starts last keeps one worker busy
# while the others idle. An entry is a scope's name or a file.
LONGEST_FIRST = (
    "one_at_a_time:chromium",   # the browser test, then the JupyterHub one
    "tests/test_grade.py", "tests/test_sandbox.py", "tests/test_checks.py",
    "tests/test_constrained.py", "tests/test_many_users.py", "tests/test_bench.py",
)


# Tests that run exercise checks outside the grader's sandbox. After each check the checker
# removes the FIFOs and sockets that appeared meanwhile in the temporary folder (each
# worker's own, see tests/isolate.py) and in the working folder, which for these tests is
# a folder of their own (``own_folder``): one worker's check never removes another's.
_CHECKS_OUTSIDE_SANDBOX = re.compile(r"tests/(test_mutants|test_checking|test_exercises|"
                                     r"test_checks_\w+|test_hidden|test_scaffold|"
                                     r"test_graded_puzzles)\.py::")


@pytest.fixture(autouse=True)
def own_folder(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that runs checks outside the sandbox works in its own temporary folder."""
    if not _CHECKS_OUTSIDE_SANDBOX.match(request.node.nodeid):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(request.getfixturevalue("tmp_path"))
        yield


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """The check cells of solutions/ are left out of nbval's run: tests/test_checks.py runs
    the same checks on the same solutions, as the grader defines them, one exercise per test
    (so in parallel); the same check cells run in the kernel in tests/test_exercises.py."""
    from labkit.answers import is_check_cell

    kept, dropped = [], []
    for item in items:
        solution_check = (_is_cell(item) and item.nodeid.startswith("solutions/")
                          and is_check_cell(item.cell.source))
        (dropped if solution_check else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if _is_worker(config):  # every worker sorts alike: the collections must agree
        import json

        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        scopes = {item.nodeid: _scope(item) for item in items}

        def order(item: pytest.Item) -> int:
            if item.get_closest_marker("alone"):  # last: started early, it would wait for
                return len(rank) + 1               # a long test and hold every worker back
            return rank.get(scopes[item.nodeid], rank.get(item.nodeid.split("::")[0], len(rank)))

        items.sort(key=order)
        room = Path(config.workerinput["labkit_room"])
        (room / f"scopes-{config.workerinput['workerid']}.json").write_text(json.dumps(scopes))


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (every test, every notebook read) lives as long as the run: the
    garbage collector stops walking it, here and in every child forked from here (an
    answer's raw os.fork), where each walk would also copy the pages it touches."""
    gc.collect()
    gc.freeze()


# --- notebooks under nbval -----------------------------------------------------------

_nb_before: dict[str, set[str]] = {}


def _is_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if _is_cell(item):
        _nb_before.setdefault(str(item.parent.fspath), kernel_objects())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if _is_cell(item):
        stderr = "".join(o.get("text", "") for o in item.test_outputs or []
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        stderr = FORK_WARNING.sub("", stderr)
        if stderr.strip():
            pytest.fail(f"cell {item.cell_num} wrote to stderr:\n{stderr}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield  # for the last cell this also stops the notebook's kernel
    if _is_cell(item) and (nextitem is None or nextitem.parent is not item.parent):
        problems = leak_report(_nb_before.pop(str(item.parent.fspath)), grace=3.0)
        if problems:
            pytest.fail(f"{item.parent.name} leaked: " + "; ".join(problems), pytrace=False)
    return result
