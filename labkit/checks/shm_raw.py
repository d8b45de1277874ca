"""Checks for lesson 03's raw-call exercise (03.raw_gather): a named segment, mapped and
shared with forked children, all made with the calls themselves.

That the calls were made is judged from the kernel, by a ``work`` function the check hands
to the answer, which runs inside each child: whether the process is a child of the answer's
process, whether it holds a *shared* mapping (``/proc/self/maps``) of an object that exists
in ``/dev/shm`` at that moment, and that object's mode. Reading the answer's source was
rejected: it says what was written, not what ran. Whether labkit's own process helpers
forked the child is seen on the child's stack (:func:`._shared.forked_by_labkit`), which lesson 04's
raw-call check uses too.
"""
from __future__ import annotations

import functools
import os
import signal
import stat
from typing import Any

from ..checking import CheckFailed, Exercise, answer_pid, expect
from ._shared import forked_by_labkit, shared_maps
from .shm import expect_tidy, run_answer

_CHILD, _SHARED, _PRIVATE_MODE, _BY_LABKIT = 1, 2, 4, 8   # what a child found, as bits
_FACTS = 1000                                             # the facts travel as 1000 + bits


def _squares(i: int) -> int:
    """A child's work: a number that needs all 64 bits and a sign."""
    return (i + 1) ** 2 * 10**12 * (-1) ** i


def _facts(i: int) -> int:
    """A child's work: what the kernel shows this child, as :data:`_FACTS` + bits."""
    bits = _BY_LABKIT if forked_by_labkit() else 0
    if os.getppid() == answer_pid() and os.getpid() != answer_pid():
        bits |= _CHILD
    for line in shared_maps():
        parts = line.split(maxsplit=5)
        path = parts[5] if len(parts) == 6 else ""
        if ("s" not in parts[1] or not path.startswith("/dev/shm/")
                or os.path.basename(path).startswith("sem.") or not os.path.exists(path)):
            continue                  # not a segment (a semaphore is mapped from there too)
        bits |= _SHARED
        if stat.S_IMODE(os.stat(path).st_mode) == 0o600:
            bits |= _PRIVATE_MODE
    return _FACTS + bits


def _fails(i: int, how: str) -> int:
    """A child's work: child 1 raises, or is killed by SIGKILL; the others return i."""
    if i == 1:
        if how == "raise":
            raise ValueError("child 1 fails on purpose")
        os.kill(os.getpid(), signal.SIGKILL)
    return i


RAW_GATHER = Exercise("03.raw_gather", "Children report through a segment you map yourself",
                      raw_calls=("posix_ipc.SharedMemory", "mmap", "os.fork"), timeout=60.0)

_FORK_COPIES = ("After fork, a child's ordinary memory is a copy: only a mapping made with "
                "MAP_SHARED (mmap's default) of a shared memory object is the same memory in "
                "the parent and every child.")


def _gathered(answer: Any, n: int, work: Any) -> Any:
    outcome = run_answer(answer, n, work, timeout=15)
    got = outcome.value
    expect(isinstance(got, list) and len(got) == n and all(type(v) is int for v in got),
           f"gather({n}, work) returned {got!r}; expected a list of {n} ints, one per child")
    return got


@RAW_GATHER.check("each child's number comes back, in order",
                  hint="Child i stores its number as a 64-bit integer at byte 8 * i of the "
                       "mapping; the parent reads them after waiting for every child.",
                  concept=_FORK_COPIES)
def _(answer):
    got = _gathered(answer, 5, _squares)
    want = [_squares(i) for i in range(5)]
    if got == [0] * 5:
        raise CheckFailed(f"gather(5, work) returned {got}: none of the children's numbers "
                          "reached the parent. Is the mapping shared (MAP_SHARED), made before "
                          "the fork, and read only after every child has ended?")
    expect(got == want, f"gather(5, work) returned {got}; the children computed {want} "
                        "(child i's number belongs at byte 8 * i, as a signed 64-bit integer)")


@RAW_GATHER.check("the kernel shows the raw calls: your own children, each sharing a mapping "
                  "of a private named segment that exists while it runs",
                  hint="Create the object with posix_ipc.SharedMemory (exclusive, mode 0600, "
                       "a fresh lab name), map it with mmap before forking, and fork the "
                       "children with os.fork yourself.",
                  concept=_FORK_COPIES)
def _(answer):
    got = _gathered(answer, 3, _facts)
    bits = [v - _FACTS for v in got]
    expect(all(0 <= b < 16 for b in bits), f"gather(3, work) returned {got}, not the numbers "
                                           "the children's work computed")
    expect(not any(b & _BY_LABKIT for b in bits),
           "the children were forked by labkit's helpers (run_workers, start): make the calls "
           "yourself, one os.fork() per child")
    expect(all(b & _CHILD for b in bits), "the work did not run in children of your function's "
                                          "process: fork one child per number with os.fork()")
    expect(all(b & _SHARED for b in bits),
           "in the children, the kernel shows no shared mapping of an object in /dev/shm: "
           "create it with posix_ipc.SharedMemory and map it with mmap (MAP_SHARED, the "
           "default) before forking, and unlink it only after the children have ended")
    expect(all(b & _PRIVATE_MODE for b in bits),
           "the segment's mode is not 0600: only its owner should be able to open it "
           "(mode=0o600 when you create it)")


@RAW_GATHER.check("a child that raises or is killed: the segment is still removed, and gather "
                  "raises",
                  hint="A child ends with os._exit in a finally, with a non-zero code when its "
                       "work failed; the parent looks at every child's status, cleans up on "
                       "every path, then raises.",
                  concept="A child's exception dies with the child: the parent learns of a "
                          "failure only from the exit status that waitpid reports.")
def _(answer):
    for how, what in (("raise", "raised ValueError"), ("kill", "was killed by SIGKILL")):
        outcome = run_answer(answer, 3, functools.partial(_fails, how=how), timeout=15)
        expect(not outcome.returned, f"child 1 {what}, but gather returned normally: check "
                                     "each child's exit status, and raise after cleaning up")
        expect(not outcome.problems, f"when child 1 {what}, gather did not clean up: "
               + "; ".join(outcome.problems))


@RAW_GATHER.check("nothing is left behind: name, mapping, descriptor and children",
                  hint="Wait for every child, close the mapping and the object's descriptor, "
                       "and unlink the name, in a finally.")
def _(answer):
    outcome = run_answer(answer, 4, _squares, timeout=15)
    expect(outcome.value == [_squares(i) for i in range(4)],
           f"gather(4, work) returned {outcome.value!r}; expected the children's numbers")
    expect_tidy(outcome, "gather")
