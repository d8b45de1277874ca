"""Shared test machinery: nothing may leak, and notebooks must run clean.

* The test process is a subreaper: whatever a test or a notebook kernel
  orphans is adopted here, so a leak shows up as our own descendant instead
  of vanishing under PID 1.
* ``no_leaks`` (autouse) fails a test that leaves a child process, a zombie,
  or a new entry in ``/dev/shm`` or ``/dev/mqueue``; it then cleans up so one
  leak does not fail the tests after it.
* For notebooks run by nbval: a cell fails if it writes to stderr (except
  Python 3.12+'s deliberate warning about a raw ``os.fork()`` in a threaded
  kernel, which lesson 00 teaches), and the last cell fails if the notebook
  left processes or kernel objects behind once its kernel has shut down.
"""
from __future__ import annotations

import os
import re
import signal
import time

import psutil
import pytest

from labkit._janitor import CLIENT
from labkit._platform import LINUX, set_subreaper
from labkit.session import MQUEUE_DIR, SHM_DIR

collect_ignore_glob = ["corpus/*"]

if LINUX:
    set_subreaper(True)

FORK_WARNING = re.compile(r"^.*DeprecationWarning: This process \(pid=\d+\) is multi-threaded, "
                          r"use of fork\(\) may lead to deadlocks in the child\.\n(  .*\n)*",
                          re.MULTILINE)
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
        time.sleep(0.02)


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


@pytest.fixture()
def no_descriptor_leaks():
    """Fail a test that leaves a descriptor of this process open (``pytestmark`` opts in)."""
    def open_fds() -> set[int]:
        fds = set()
        for fd in map(int, os.listdir("/proc/self/fd" if LINUX else "/dev/fd")):
            try:
                os.fstat(fd)  # the one listdir itself used is closed by now
                target = os.readlink(f"/proc/self/fd/{fd}") if LINUX else ""
            except OSError:
                continue
            if "mpl-data/fonts" not in target:  # matplotlib keeps the fonts it loaded open
                fds.add(fd)
        return fds

    CLIENT.start()  # the session janitor's pipe opens on first use and stays: not a leak
    before = open_fds()
    yield
    left = open_fds() - before
    assert not left, f"descriptors left open: {sorted(left)}"


@pytest.fixture()
def quick_timeout(monkeypatch):
    """Hanging answers are stopped after 1 s instead of 5 (the checker's child inherits it)."""
    from labkit import checking

    monkeypatch.setattr(checking, "CALL_TIMEOUT", 1.0)


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


def pytest_terminal_summary(terminalreporter):
    """The mutation score per exercise, when the mutants ran."""
    import sys

    module = sys.modules.get("test_mutants")
    lines = module.mutation_report() if module else []
    if lines:
        terminalreporter.section("mutation score (mutants killed / tried)")
        for line in lines:
            terminalreporter.write_line(line)
