"""Checks for lesson 02's prime sieve (02.primes): a chain of processes joined by pipes.

What the chain was is read from the kernel, by the processes themselves, while
it runs: in the answer's process ``os.fork``, ``os.read`` and ``os._exit`` are
wrapped (every stage is a fork of it, so it inherits the wrappers), and each
appends one line to a log file, opened and closed for that one line so it
holds no descriptor: a new process with its pid and its parent's pid; at a
read that returns end of file, the pipe ends the process holds then (from
``/proc/self/fd`` and ``fdinfo``); at exit, the children it has not reaped
(``/proc/self/task/PID/children``). End of file is the moment that matters: a
stage then holds exactly what it used, and nothing it should have closed.
The pipes the answer's process had before the call (the harness's) are left out.
A record that cannot be read fails the check: what the answer's processes wrote is
only ever split and turned into numbers, never run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import objects
from ..checking import Attempt, CheckFailed, Exercise, expect, expect_clean
from ._shared import expect_function
from .pipes import _call  # call(), and a hang says what each process was blocked in

PRIMES = Exercise("02.primes", "The prime sieve: a chain of processes joined by pipes",
                  timeout=60, raw_calls=("os.pipe", "os.fork"))


def _pipe_ends() -> str:
    """This process's pipe ends, as ``fd:inode:r`` or ``fd:inode:w`` joined by commas."""
    ends = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
            with open(f"/proc/self/fdinfo/{entry}") as f:
                flags = int(f.read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue  # the descriptor listdir used, closed again
        if target.startswith("pipe:["):
            mode = "w" if flags & os.O_ACCMODE == os.O_WRONLY else "r"
            ends.append(f"{entry}:{target[6:-1]}:{mode}")
    return ",".join(ends)


def _watched(answer, n: int, log: str) -> object:
    """Run in the answer's process: ``answer(n)`` with its forks, ends of file and exits
    written to ``log`` (see the module docstring)."""
    real_fork, real_read, real_exit = os.fork, os.read, os._exit

    def note(line: str) -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    def fork() -> int:
        pid = real_fork()
        if pid == 0:
            note(f"fork {os.getpid()} {os.getppid()}")
        return pid

    def read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        if not data:
            note(f"eof {os.getpid()} {fd} {_pipe_ends()}")
        return data

    def exit_(code: int) -> None:
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                left = ",".join(f.read().split())
            note(f"exit {os.getpid()} {left}")
        finally:
            real_exit(code)

    note(f"before {os.getpid()} {_pipe_ends()}")  # the harness's own pipes: not the answer's
    os.fork, os.read, os._exit = fork, read, exit_  # type: ignore[assignment]
    try:
        return answer(n)
    finally:
        os.fork, os.read, os._exit = real_fork, real_read, real_exit


@dataclass
class _Ends:
    """The pipe ends one process held when its read returned end of file."""

    read_fd: int
    ends: dict[int, tuple[str, str]]  # fd -> (pipe inode, "r" or "w")

    @property
    def reading(self) -> str:
        return self.ends.get(self.read_fd, ("", ""))[0]


@dataclass
class _Run:
    """What the log says: the stages (pid -> parent pid, in fork order), ends of file, exits."""

    value: object
    answer: int
    parent: dict[int, int] = field(default_factory=dict)
    eof: dict[int, _Ends] = field(default_factory=dict)
    unreaped: dict[int, list[int]] = field(default_factory=dict)
    before: set[tuple[int, str]] = field(default_factory=set)  # (fd, inode) not the answer's
    attempt: Attempt | None = None

    def name(self, pid: int) -> str:
        if pid == self.answer:
            return "your function's process"
        stages = list(self.parent)
        return f"stage {stages.index(pid) + 1} (pid {pid})" if pid in stages else f"pid {pid}"


def _ends(text: str) -> dict[int, tuple[str, str]]:
    """``fd:inode:mode,...`` as {fd: (inode, mode)}."""
    ends = {}
    for item in filter(None, text.split(",")):
        fd, inode, mode = item.split(":")
        ends[int(fd)] = (inode, mode)
    return ends


def _parse(text: str, value: object, answer: int) -> _Run:
    run = _Run(value, answer)
    for line in text.splitlines():
        kind, pid_text, *rest = line.split(" ") + ["", ""]  # a list may be empty
        pid = int(pid_text)
        if kind == "before":
            run.before = {(fd, inode) for fd, (inode, _) in _ends(rest[0]).items()}
        elif kind == "fork":
            run.parent[pid] = int(rest[0])
        elif kind == "eof" and pid not in run.eof:
            ends = {fd: end for fd, end in _ends(rest[1]).items()
                    if (fd, end[0]) not in run.before}
            run.eof[pid] = _Ends(int(rest[0]), ends)
        elif kind == "exit":
            run.unreaped[pid] = [int(p) for p in filter(None, rest[0].split(","))]
    return run


def _sieve_run(answer, n: int) -> _Run:
    """Call ``primes(n)`` under the watch and read back what its processes logged."""
    expect_function(answer)
    with objects.temp_folder("sieve") as folder:
        log = folder / "log"
        log.touch()
        attempt = _call(_watched, answer, n, str(log), doing=f"primes({n})")
        try:
            run = _parse(log.read_text(), attempt.value, attempt.result.pid)
        except (ValueError, IndexError, UnicodeDecodeError):
            raise CheckFailed("the record of your processes' forks, reads and exits could not "
                              "be read: did something else write into it?") from None
    run.attempt = attempt
    return run


def _primes_to(n: int) -> list[int]:
    return [k for k in range(2, n + 1) if all(k % d for d in range(2, int(k ** 0.5) + 1))]


def _expect_primes(run: _Run, n: int) -> None:
    want = _primes_to(n)
    expect(run.value == want, f"primes({n}) returned {run.value!r}, expected {want}")


_CHAIN = ("Each stage is a filter with one input and at most one output: it keeps its first "
          "number as its prime and passes on what that prime does not divide, to a stage "
          "it starts itself, the first time it has something to pass on.")


@PRIMES.check("primes(30) gives the ten primes, in order",
              hint="Each stage reads its first number: that is a prime. What it passes on is "
                   "only what that prime does not divide.", concept=_CHAIN)
def _(answer):
    _expect_primes(_sieve_run(answer, 30), 30)


@PRIMES.check("primes(2) gives [2], and below 2 there are none",
              hint="A sieve with nothing to sieve needs no stage at all.", concept=_CHAIN)
def _(answer):
    _expect_primes(_sieve_run(answer, 2), 2)
    for n in (1, 0):
        run = _sieve_run(answer, n)
        _expect_primes(run, n)
        expect(not run.parent, f"primes({n}) started {len(run.parent)} process(es) for no "
                               "numbers at all")


@PRIMES.check("one process per prime, in a chain: each stage starts the next",
              hint="Who forks the stage for the next prime: your function, or the stage "
                   "before it? And when: before or after a number has come through?",
              concept=_CHAIN)
def _(answer):
    n = 60
    run = _sieve_run(answer, n)
    _expect_primes(run, n)
    want = len(_primes_to(n))
    stages = list(run.parent)
    expect(len(stages) == want,
           f"primes({n}) started {len(stages)} processes; a sieve of {want} primes is a chain "
           f"of {want} stages, one per prime (start a stage only when a number gets through "
           "to it)")
    for k, pid in enumerate(stages):
        want_parent = run.answer if k == 0 else stages[k - 1]
        expect(run.parent[pid] == want_parent,
               f"{run.name(pid)} was started by {run.name(run.parent[pid])}, expected "
               f"{run.name(want_parent)}: in a chain each stage starts the next one")


def _hygiene(run: _Run, pid: int) -> str:
    """What is wrong with the ends ``pid`` held at end of file, or ''."""
    seen = run.eof[pid]
    child = next((c for c, p in run.parent.items() if p == pid), None)
    output = run.eof[child].reading if child is not None and child in run.eof else None
    results = run.eof[run.answer].reading if run.answer in run.eof else None
    for fd, (inode, mode) in sorted(seen.ends.items()):
        if mode == "r" and fd != seen.read_fd:
            return (f"{run.name(pid)} still held the read end of a pipe it does not read "
                    f"(descriptor {fd}) when its input ended")
        if mode == "w" and pid == run.answer:
            return (f"{run.name(pid)} still held the write end of a pipe (descriptor {fd}) "
                    "when it read the end of the primes")
        if mode == "w" and inode not in (output, results):
            return (f"{run.name(pid)} still held the write end of a pipe it does not write "
                    f"into (descriptor {fd}) when its input ended")
    return ""


@PRIMES.check("each process holds only the pipe ends it uses",
              hint="After every fork, both processes hold every end: each closes at once "
                   "the ends it will not use, in the child and in the parent.",
              concept="A stray read end keeps a pipe alive with nobody reading it; a stray "
                      "write end keeps its reader from ever seeing end of file.")
def _(answer):
    run = _sieve_run(answer, 30)
    _expect_primes(run, 30)
    missing = [pid for pid in run.parent if pid not in run.eof]
    expect(not missing, f"{run.name(missing[0]) if missing else ''} never read end of file "
                        "with os.read: each stage reads its input with os.read until it "
                        "returns b''")
    for pid in [run.answer, *run.parent]:
        if pid in run.eof:
            problem = _hygiene(run, pid)
            expect(not problem, problem)


@PRIMES.check("every stage waits for its child, and nothing is left open",
              hint="A stage ends only after the stage it started has ended.",
              concept="A parent that exits without waiting leaves its child to be "
                      "reaped by someone else, or a zombie until then.")
def _(answer):
    run = _sieve_run(answer, 30)
    _expect_primes(run, 30)
    for pid in run.parent:
        left = run.unreaped.get(pid)
        expect(left is not None, f"{run.name(pid)} did not end with os._exit")
        expect(not left, f"{run.name(pid)} ended without waiting for its child (pid "
                         f"{left[0] if left else ''})")
    assert run.attempt is not None
    expect_clean(run.attempt)

