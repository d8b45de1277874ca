"""Helpers for tests: a notebook's answer functions, the checks an answer fails, a
single-producer ring buffer's producer and consumer, stopping a server process, and this
process's open descriptors. (Waiting for another process: ``labkit.waiting.wait_until``.)"""
from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
# Python 3.12+ warns on a raw os.fork() in a threaded process (a kernel): lesson 00 teaches
# it, so the stderr checks of notebooks leave exactly this warning out.
FORK_WARNING = re.compile(r"^.*DeprecationWarning: This process \(pid=\d+\) is multi-threaded, "
                          r"use of fork\(\) may lead to deadlocks in the child\.\n(  .*\n)*",
                          re.MULTILINE)


def open_descriptors() -> dict[int, str]:
    """This process's open descriptors, each with what it refers to (``pipe:[...]``,
    ``anon_inode:[pidfd]``, a path; '' where there is no /proc).

    >>> 0 in open_descriptors()  # doctest: +SKIP
    True
    """
    from labkit._platform import LINUX

    found = {}
    for fd in map(int, os.listdir("/proc/self/fd" if LINUX else "/dev/fd")):
        try:
            os.fstat(fd)  # the one listdir itself used is closed by now
            found[fd] = os.readlink(f"/proc/self/fd/{fd}") if LINUX else ""
        except OSError:
            continue
    return found


def load_answers(relative: str) -> dict:
    """A notebook's names, defined as the grader defines them: the statements
    ``labkit.answers.definitions`` picks (every code cell but the check cells), run by
    ``labkit.answers.define`` in a fresh namespace, each call its own.

    >>> load_answers("solutions/00_processes.ipynb")["exit_code_of"]  # doctest: +SKIP
    """
    from labkit.answers import define

    return define(list(_definitions(relative)))


@functools.cache
def _definitions(relative: str) -> tuple:
    """The notebook read and parsed once per run (the mutants load a solution 200 times)."""
    from labkit.answers import definitions

    return tuple(definitions(nbformat.read(ROOT / relative, as_version=4).cells))


def public_points(lesson: str) -> int:
    """What a lesson's checks are worth in the course config in use, hidden checks left out,
    so tests that grade a full solution need not be edited when an exercise is added.

    >>> public_points("00") > 0
    True
    """
    from labkit.course import catalogue

    return int(sum(line.points for line in catalogue(lesson) if line.kind == "auto"))


def read_bytes(fd: int, count: int) -> bytes:
    """Read from ``fd`` until ``count`` bytes came or every writer closed it (then fewer):
    how a test waits for ``count`` processes that each write one byte when they are ready.

    >>> import os
    >>> r, w = os.pipe(); _ = os.write(w, b"ab"); os.close(w)
    >>> read_bytes(r, 3); os.close(r)
    b'ab'
    """
    got = b""
    while len(got) < count:
        more = os.read(fd, count - len(got))
        if not more:
            break
        got += more
    return got


@functools.cache
def sandbox_level() -> tuple[bool, str]:
    """``labkit.grade.isolation_level()``, found once per test process: each look starts a
    zygote and a probe sandbox (seconds on a busy machine), and every file that grades
    needs the answer when it is collected."""
    from labkit.grade import isolation_level

    return isolation_level()


def failures(exercise: str, answer) -> dict[str, str]:
    """{check name: message} of the checks an answer fails."""
    from labkit.checking import FAILED, run_checks

    return {r.check: r.message for r in run_checks(exercise, answer) if r.status == FAILED}


# A bounded buffer's producer and consumer with the two counting semaphores and no mutex:
# right for one producer and one consumer (lesson 05), wrong for more.


def spsc_producer(ring, items):
    for item in items:
        ring.empty.acquire()
        ring.slots[ring.tail.value % ring.capacity] = item
        ring.tail.value += 1
        ring.full.release()


def spsc_consumer(ring, count):
    got = []
    for _ in range(count):
        ring.full.acquire()
        got.append(int(ring.slots[ring.head.value % ring.capacity]))
        ring.head.value += 1
        ring.empty.release()
    return got


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds; always reaped.

    >>> stop_process(subprocess.Popen(["sleep", "60"]), grace=5)
    """
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
