"""Helpers that several check modules use: one place for each, never a copy per lesson.

* calling an answer so that what it leaves in ``/dev/shm`` is removed even
  when it is killed at its time limit (:func:`guarded_call`);
* the answer's return values judged as plain data (:func:`plain`,
  :func:`whole_number`) and the pair of functions some exercises take
  (:func:`pair`);
* schedules for the interleaving model (:func:`schedule_of`, :func:`run_schedule`);
* the watched shared counter of lessons 04 and 05 (:func:`observed`,
  :func:`counted`, :func:`expect_stores`, :func:`expect_nothing_left`): it
  makes a lost update certain instead of waiting for one by chance (see
  :mod:`labkit.checks.race`).
"""
from __future__ import annotations

import ctypes
import mmap
import os
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .. import checking, interleave
from .._janitor import unlink_name
from ..checking import Attempt, CheckFailed, expect
from ..framing import plain_data
from ..segment import Segment
from ..session import SESSION_PID, lab_entries
from ..waiting import wait_until

# --- the answer's processes ----------------------------------------------------------------


def spread_over_cpus() -> None:
    """In this process, pin each child forked from now on to the next CPU (round robin).

    A check calls it in the answer's own process (never in the checker), so the
    answer's workers run on different cores where there are several.
    """
    if not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return
    forks = [0]

    def before() -> None:
        forks[0] += 1

    def in_child() -> None:
        try:
            os.sched_setaffinity(0, {cpus[(forks[0] - 1) % len(cpus)]})
        except OSError:
            pass  # the CPU went offline, or a cgroup forbids it: run wherever we may

    os.register_at_fork(before=before, after_in_child=in_child)


_SLOTS = 64            # forked processes the watch keeps a record of
_FIELDS = 3            # per slot: pid, has loaded, stores
_QUIET = 0.02          # seconds a process must stay asleep to count as blocked
_PATIENCE = 3.0        # seconds a first store waits for the others at most
# Telling a blocked worker from a running one needs /proc (Linux). Without it the watch
# only counts, and holds no store: a correct lock would otherwise wait out the patience.
_PROC = os.path.isdir("/proc/self/task")


def _asleep(pid: int) -> tuple[bool, int]:
    """Whether ``pid`` sleeps (state S) or has ended, and its voluntary context switches."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/status") as f:
            switches = next(int(line.split()[1]) for line in f
                            if line.startswith("voluntary_ctxt_switches"))
    except (OSError, StopIteration, IndexError, ValueError):
        return True, -1                  # gone: it will never load
    if state in ("Z", "X"):
        return True, -1                  # ended
    return state == "S", switches


class _Watch:
    """The bookkeeping of a watched counter, in an anonymous shared mapping: inherited by
    every process forked while it exists, it has no name and leaves nothing behind."""

    def __init__(self, workers: int) -> None:
        self._mem = mmap.mmap(-1, 8 * (1 + _SLOTS * _FIELDS))
        self.table = (ctypes.c_int64 * (1 + _SLOTS * _FIELDS)).from_buffer(self._mem)
        self.creator = os.getpid()
        self.workers = workers
        self.slot = -1                   # this process's slot; -1 in the answer's own process
        self.first_store = True

    def forked(self, slot: int, pid: int) -> None:
        """Called on both sides of a fork made by the answer's process."""
        if slot >= _SLOTS:
            return
        self.table[1 + slot * _FIELDS] = pid or os.getpid()
        if pid == 0:
            self.slot, self.first_store = slot, True
        else:
            self.table[0] = slot + 1

    def field(self, slot: int, k: int) -> int:
        return self.table[1 + slot * _FIELDS + k]

    def loaded(self) -> None:
        if self.slot >= 0:
            self.table[1 + self.slot * _FIELDS + 1] = 1

    def stored(self) -> None:
        if self.slot >= 0:
            self.table[1 + self.slot * _FIELDS + 2] += 1   # only this process writes it

    def before_store(self) -> None:
        """Hold a worker's first store until every other worker has loaded, or sleeps."""
        if self.slot < 0 or not self.first_store or not _PROC:
            return
        self.first_store = False
        seen: dict[int, tuple[int, float]] = {}

        def all_loaded_or_asleep() -> bool:
            forked = min(int(self.table[0]), _SLOTS)
            return forked >= self.workers and all(self._ready(k, seen) for k in range(forked)
                                                  if k != self.slot)

        wait_until(all_loaded_or_asleep, _PATIENCE, None, every=0.0005)

    def _ready(self, slot: int, seen: dict[int, tuple[int, float]]) -> bool:
        pid = self.field(slot, 0)
        if pid == 0:
            return False
        if self.field(slot, 1):
            return True
        asleep, switches = _asleep(pid)
        now = time.monotonic()
        if not asleep:
            seen.pop(pid, None)
            return False
        if switches < 0:
            return True
        before = seen.get(pid)
        if before is None or before[0] != switches:
            seen[pid] = (switches, now)
            return False
        return now - before[1] >= _QUIET

    def stores(self) -> list[int]:
        """The stores of each process the answer forked, in the order they were forked."""
        return [self.field(k, 2) for k in range(min(int(self.table[0]), _SLOTS))]


class _Counter:
    """What ``seg.struct(ctypes.c_int64)`` returns while a check watches: the real shared
    counter behind a ``value`` that reports each load and store to the watch."""

    __slots__ = ("_real", "_watch")

    def __init__(self, real: Any, watch: _Watch) -> None:
        self._real = real
        self._watch = watch

    @property
    def value(self) -> int:
        v = self._real.value
        self._watch.loaded()
        return v

    @value.setter
    def value(self, v: int) -> None:
        self._watch.before_store()
        self._real.value = v
        self._watch.stored()

    def __repr__(self) -> str:
        return repr(self._real)


@plain_data
@dataclass(frozen=True)
class Seen:
    """What :func:`observed` saw: plain data only, never an object the answer made."""

    value: int | None        # what the answer returned, if it was an int
    shown: str               # what it returned, for messages
    forks: int               # processes the answer's process forked
    stores: tuple[int, ...]  # stores to the watched counter, by each forked process
    dropped: tuple[str, ...] # segments the answer created and never ended itself
    forced: bool = _PROC     # whether first stores were held until the others had loaded


def plain(value: Any) -> tuple[int | None, str]:
    """An answer's value as plain data: the int it is, or a short description of it."""
    try:
        import numpy as np

        if isinstance(value, np.integer):
            value = int(value)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if type(value) is int:
        return value, f"{value:,}"
    if isinstance(value, _Counter):
        return None, f"{value!r} (the counter itself, a view on shared memory)"
    if isinstance(value, (str, float, bool, type(None), ctypes._SimpleCData)):
        return None, f"{value!r} ({type(value).__name__})"[:100]
    return None, f"an object of type {type(value).__name__}"


def whole_number(seen: tuple[int | None, str], what: str) -> int:
    """The answer's int, or a failed check saying what came back instead."""
    number, shown = seen
    if number is None:
        raise CheckFailed(f"{what} returned {shown}; expected the counter's final value as an "
                          "int, copied out of shared memory before it is released")
    return number


def observed(answer: Any, workers: int, *args: Any, spread: bool = False) -> Seen:
    """Run ``answer(workers, *args)`` in this (the answer's) process, watching its counter.

    ``os.fork`` is wrapped for the duration of the call (labkit, multiprocessing
    and a bare ``os.fork()`` all go through it), and a 64-bit ctypes counter from
    ``Segment.struct`` is watched (see the module docstring). Segments the answer
    creates are noted, with whether it ended them itself (a ``with`` block or
    ``unlink``): one left to the garbage collector is removed by labkit here, but
    leaks in a notebook, where a traceback keeps it alive. With ``spread``
    the forked children are spread over the CPUs (:func:`spread_over_cpus`).
    """
    if spread:
        spread_over_cpus()
    watch = _Watch(workers)
    real_fork, real_struct = os.fork, Segment.struct
    real_create, real_exit, real_unlink = (Segment.__dict__[k] for k in
                                           ("create", "__exit__", "unlink"))
    made: dict[str, bool] = {}           # segment name -> ended by the answer itself

    def counting_fork() -> int:
        forker, slot = os.getpid(), int(watch.table[0])
        pid = real_fork()
        if forker == watch.creator:
            watch.forked(slot, pid)
        return pid

    def watched_struct(self: Segment, ctype: type, offset: int = 0) -> Any:
        real = real_struct(self, ctype, offset)
        if ctype in (ctypes.c_int64, ctypes.c_long, ctypes.c_longlong):
            return _Counter(real, watch)
        return real

    def watched_create(cls: type, *args: Any, **kwargs: Any) -> Segment:
        seg = real_create.__func__(cls, *args, **kwargs)
        if os.getpid() == watch.creator:
            made[seg.name] = False
        return seg

    def ended(real: Any) -> Any:
        def end(self: Segment, *args: Any) -> Any:
            if os.getpid() == watch.creator and self.name in made:
                made[self.name] = True
            return real(self, *args)
        return end

    patches = {"create": classmethod(watched_create), "__exit__": ended(real_exit),
               "unlink": ended(real_unlink), "struct": watched_struct}
    os.fork = counting_fork
    for k, v in patches.items():
        setattr(Segment, k, v)
    try:
        value = answer(workers, *args)
    finally:
        os.fork = real_fork
        for k, v in (("create", real_create), ("__exit__", real_exit),
                     ("unlink", real_unlink), ("struct", real_struct)):
            setattr(Segment, k, v)
    number, shown = plain(value)
    stores = tuple(watch.stores())
    forks = int(watch.table[0])
    del value
    dropped = tuple(name for name, done in made.items() if not done)
    return Seen(number, shown, forks, stores, dropped)


def _entries() -> set[str]:
    """Entries of /dev/shm that are this session's lab objects. Only those: another name
    that appears during a call may belong to another user's or another program's run on
    the same machine, and is never ours to remove."""
    return {e.path.name for e in lab_entries(SESSION_PID) if e.kind in ("shm", "sem")}


def guarded_call(fn: Any, *args: Any, **kwargs: Any) -> Attempt:
    """:func:`labkit.checking.call`, then remove the lab objects of this session that
    appeared during the call and are still there. A call that ends normally has already reported and removed
    its leftovers; this catches those of a call killed at its time limit, whose processes
    could not clean up and whose session (the checker's) lives on, so no janitor would."""
    before = _entries()
    try:
        return checking.call(fn, *args, **kwargs)
    finally:
        for entry in sorted(_entries() - before):
            if entry.startswith("sem."):
                unlink_name("sem", "/" + entry[4:])
            else:
                unlink_name("shm", "/" + entry)


# --- what the answer is, and what it printed ------------------------------------------------


def expect_function(answer: Any) -> None:
    """Fail unless the answer is something to call."""
    expect(callable(answer), f"expected a function, got {answer!r}")


def first_difference(got: list[str], want: list[str]) -> str:
    """Where two lists of printed lines first differ, said for the student.

    >>> first_difference(["a", "b"], ["a", "c"])
    "line 2 is 'b', expected 'c'"
    """
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"line {i + 1} is {g!r}, expected {w!r}"
    if len(got) == len(want):
        return "they are the same"
    if len(got) < len(want):
        return f"it stopped after {len(got)} lines; line {len(got) + 1} should be " \
               f"{want[len(got)]!r}"
    return f"it printed {len(got) - len(want)} lines too many, from {got[len(want)]!r} on"


# --- schedules -------------------------------------------------------------------------------


def _as_text(answer: Any, *args: Any) -> tuple[bool, str]:
    """Run in the answer's process: (True, the schedule as a string) or (False, what came
    back instead); only plain strings cross back to the checker."""
    got = answer(*args)
    if isinstance(got, (list, tuple)) and all(type(p) in (int, str) for p in got):
        got = "".join(str(p) for p in got)
    if type(got) is str:
        return True, got
    if isinstance(got, (int, float, bool, type(None))):
        return False, f"{got!r}"
    return False, f"an object of type {type(got).__name__}"


def schedule_of(answer: Any, *args: Any, call: str) -> str:
    """The schedule ``answer(*args)`` returns, or a failed check saying what it returned."""
    ok, got = guarded_call(_as_text, answer, *args).value
    expect(ok, f"{call} returned {got}; expected a schedule: a string of process numbers "
               "such as '0011 01'")
    return got


def run_schedule(system: interleave.System, schedule: str, call: str) -> interleave.Trace:
    """Follow ``schedule`` in the model; a failed check if it cannot run."""
    try:
        return interleave.run(system, schedule)
    except interleave.ScheduleError as e:
        raise CheckFailed(f"{call} gave {schedule!r}, which cannot run: {e}") from None


def pair(answer: Any, first: str, second: str) -> tuple[Any, Any]:
    """The two functions of an exercise that takes a pair, or a failed check."""
    expect(isinstance(answer, tuple) and len(answer) == 2,
           f"pass both functions as a pair: labkit.check(..., ({first}, {second})), "
           f"got {answer!r}")
    return answer


# --- the watched counter: what was stored, and what was left -----------------------------------


def counted(answer: Any, workers: int, iterations: int, who: str, spread: bool = False
            ) -> tuple[int, Seen, Attempt]:
    """Call ``who(workers, iterations)`` under :func:`observed`: its int, what was seen, and
    the attempt (for its hygiene)."""
    attempt = guarded_call(observed, answer, workers, iterations, spread=spread, timeout=15)
    seen = attempt.value
    return whole_number((seen.value, seen.shown), who), seen, attempt


def expect_stores(seen: Seen, call: str, workers: int, want: int | None) -> None:
    """Fail unless the answer's worker processes stored into the shared counter (``want``
    times in all, when given), each of ``workers`` of them at least once."""
    total = sum(seen.stores)
    if total == 0:
        raise CheckFailed(f"{call}: no worker process ever stored a value into the shared "
                          "counter (seg.struct(ctypes.c_int64)), so the number returned did "
                          "not come from the workers' counting in shared memory")
    storers = sum(n > 0 for n in seen.stores)
    expect(storers >= workers, f"{call}: only {storers} process(es) stored into the shared "
                               f"counter; each of the {workers} workers must do its own "
                               "counting")
    if want is not None:
        expect(total == want, f"{call}: the workers stored into the shared counter {total:,} "
                              f"times in all; expected {want:,}, one store per increment "
                              f"({workers} workers, each its own full share of iterations)")


def expect_nothing_left(seen: Seen, attempt: Attempt, who: str) -> None:
    """Fail if the answer left something behind, or left a segment to the garbage
    collector instead of ending it."""
    expect(not attempt.problems, f"{who} did not clean up: " + "; ".join(attempt.problems))
    if seen.dropped:
        raise CheckFailed(f"{who} never unlinked the segment {seen.dropped[0]}: only the "
                          "garbage collector removed it, after your function had returned. "
                          "In a notebook, where an error's traceback keeps the segment "
                          "alive, its name stays in /dev/shm; end it yourself (a with block)")


# --- what the kernel shows a process: its shared mappings, who forked it ---------------


def shared_maps() -> set[str]:
    """This process's mappings of shared memory objects (and anonymous shared memory), as
    lines of ``/proc/self/maps``: ``any("/dev/shm/" in line for line in shared_maps())``."""
    try:
        with open("/proc/self/maps") as f:
            return {line.strip() for line in f
                    if "/dev/shm/" in line or "/dev/zero (deleted)" in line}
    except FileNotFoundError:
        return set()  # no /proc (macOS): mappings cannot be judged


def forked_by_labkit() -> bool:
    """Whether this process was forked by labkit's process helpers (``run_workers``,
    ``start``, ...) rather than by a plain ``os.fork()``: called in a child, it looks for
    labkit's process modules on the stack between here and the call of the answer
    (``if forked_by_labkit(): ...``). The answer's own process was started by labkit: the
    frames below that call do not count."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if module == "labkit.checking" and frame.f_code.co_name == "_measured":
            return False
        if module in ("labkit.processes", "labkit._child"):
            return True
        frame = frame.f_back
    return False
