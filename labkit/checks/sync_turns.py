"""Checks for lesson 05's raw-call exercise 05.take_turns: a parent and the child it forks
take turns, each waiting on a named semaphore, and leave each turn's result in a shared
mapping.

What is judged comes from the kernel, seen from inside the turns: the check's ``turn(k)``
notes which process called it (its pid and parent pid), and from ``/proc/self/maps`` the
named semaphores that process has open (still in ``/dev/shm``) and its other shared
mappings at that moment. Before a turn goes on it
waits until the other process sleeps (blocked, as it must be while it is not its turn) or
has ended; if the other enters a turn meanwhile, the two overlapped. So a missing or
misplaced wait shows in every run, not now and then. The turns' records live in an
anonymous shared mapping of the check's, inherited by the answer's child, and come back
as plain numbers.
"""
from __future__ import annotations

import mmap
import os
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

import psutil

from ..checking import CheckFailed, CheckTimedOut, Exercise, expect, expect_clean
from ..framing import plain_data
from ..session import SHM_DIR
from ..waiting import wait_until
from ._shared import expect_function, guarded_call, plain

TURNS = Exercise("05.take_turns", "Take turns with two named semaphores", timeout=60.0,
                 raw_calls=("os.fork", "posix_ipc.Semaphore", "mmap"))

_MAX = 64        # turns a record is kept of
_FIELDS = 5      # per turn: pid, parent pid, semaphores open, other shared mappings, overlapped
_HEAD = 4        # turns recorded, parent inside a turn, child inside a turn, turns out of range
_QUIET = 0.02    # seconds the other process must stay asleep to count as waiting
_PATIENCE = 2.0  # seconds a turn waits for the other process to block, at most


def _shared_mappings() -> tuple[set[int], set[str]]:
    """This process's shared mappings (``s`` in the permissions), from the kernel: the named
    semaphores it has open that are in /dev/shm now (by inode: sem_open maps the semaphore's
    file, which glibc creates under a temporary name), and every other shared mapping."""
    with open("/proc/self/maps") as f:
        rows = [line.split(None, 5) for line in f]
    shared = [(p[0], int(p[4]), p[5].strip() if len(p) > 5 else "") for p in rows
              if p[1][3] == "s"]
    try:
        named = {e.inode() for e in os.scandir(SHM_DIR) if e.name.startswith("sem.")}
    except OSError:
        named = set()
    semaphores = {inode for _, inode, path in shared
                  if os.path.basename(path).startswith("sem.")}
    return semaphores & named, {f"{where} {path}" for where, _, path in shared
                                if not os.path.basename(path).startswith("sem.")}


def _blocked(pid: int, seen: dict[int, tuple[int, float]], now: float) -> bool:
    """Whether ``pid`` has ended, or sleeps and has not woken for :data:`_QUIET` s."""
    try:
        proc = psutil.Process(pid)
        status, switches = proc.status(), proc.num_ctx_switches().voluntary
    except psutil.Error:
        return True
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return True
    if status != psutil.STATUS_SLEEPING:
        seen.pop(pid, None)
        return False
    if seen.get(pid, (-1, 0.0))[0] != switches:
        seen[pid] = (switches, now)
        return False
    return now - seen[pid][1] >= _QUIET


@plain_data
@dataclass(frozen=True)
class Turns:
    """What one run of take_turns did, as plain numbers."""

    value: tuple[int, ...] | None  # the list it returned, if a list of ints
    shown: str                     # what it returned, for messages
    want: tuple[int, ...]          # what turn(k) gave, for each k
    parent: int                    # the pid of the process that called take_turns
    turns: tuple[tuple[int, ...], ...]  # per turn called: k, pid, ppid, sems, maps, overlapped
    strays: int                    # turn(k) calls with a k out of range


def _watched(answer: Any, rounds: int) -> Turns:
    """Run ``answer(rounds, turn)`` in this (the answer's) process, with a recording turn."""
    key = 1000 + secrets.randbelow(9000)
    memory = mmap.mmap(-1, 8 * (_HEAD + _MAX * (1 + _FIELDS)))  # shared with the answer's child
    parent, (sems_before, maps_before) = os.getpid(), _shared_mappings()

    def get(at: int, n: int = 1) -> tuple[int, ...]:
        return struct.unpack_from(f"{n}q", memory, 8 * at)

    def put(at: int, *values: int) -> None:
        struct.pack_into(f"{len(values)}q", memory, 8 * at, *values)

    def turn(k: int) -> int:
        if type(k) is not int or not 0 <= k < rounds:
            put(3, get(3)[0] + 1)
            return -1
        me = os.getpid()
        inside, other = (1, 2) if me == parent else (2, 1)
        put(inside, 1)
        others = ([c.pid for c in psutil.Process().children()] if me == parent
                  else [os.getppid()])
        seen: dict[int, tuple[int, float]] = {}

        def others_wait() -> bool:
            now = time.monotonic()
            return bool(get(other)[0]) or all(_blocked(p, seen, now) for p in others)

        wait_until(others_wait, _PATIENCE, None, every=0.002)
        at = get(0)[0]
        put(0, at + 1)
        if at < _MAX:
            sems, maps = _shared_mappings()
            put(_HEAD + at * (1 + _FIELDS), k, me, os.getppid(), len(sems - sems_before),
                len(maps - maps_before), get(other)[0])
        put(inside, 0)
        return (k + 1) * key

    try:
        value = answer(rounds, turn)
        count, strays = min(get(0)[0], _MAX), get(3)[0]
        rows = tuple(get(_HEAD + i * (1 + _FIELDS), 1 + _FIELDS) for i in range(count))
    finally:
        memory.close()
    got = tuple(value) if isinstance(value, list) and all(type(v) is int for v in value) \
        else None
    return Turns(got, plain(value)[1] if got is None else str(list(got)),
                 tuple((k + 1) * key for k in range(rounds)), parent, rows, strays)


def _turns(answer: Any, rounds: int) -> tuple[Turns, Any]:
    """Run take_turns watched; a deadlock becomes a failed check that says so."""
    expect_function(answer)
    try:
        attempt = guarded_call(_watched, answer, rounds)
    except CheckTimedOut:
        raise CheckTimedOut(f"take_turns({rounds}, turn) never finished and was stopped: each "
                            "process was waiting for a turn the other never gave it (a "
                            "deadlock). Which semaphore lets the first turn start, and does "
                            "every turn end by posting the other process's?") from None
    return attempt.value, attempt


def _expect_order(t: Turns, rounds: int) -> None:
    call = f"take_turns({rounds}, turn)"
    expect(not t.strays, f"{call} called turn() {t.strays} time(s) with a number out of "
                         f"range: turns are numbered 0 to {rounds - 1}")
    overlapped = [row[0] for row in t.turns if row[5]]
    expect(not overlapped, f"{call}: turn {overlapped[0] if overlapped else ''} ran while the "
                           "other process was in a turn too (the check waited for it to block, "
                           "and it did not): a process must wait on its semaphore before "
                           "every turn, and post the other's only after it")
    ks = [row[0] for row in t.turns]
    expect(not ks or ks != list(range(len(ks))) or len(ks) == rounds,
           f"{call}: the turns stopped after turn {ks[-1] if ks else ''} of 0 to {rounds - 1}: "
           "did the parent return, and end the semaphores and the mapping, before its child "
           "had taken all its turns? Wait for the child first")
    expect(ks == list(range(rounds)), f"{call} called turn() for {ks}; expected each of "
                                      f"0 to {rounds - 1} once, in that order")
    for k, pid, ppid, *_ in t.turns:
        if k % 2 == 0:
            expect(pid == t.parent, f"{call}: turn {k} was taken by pid {pid}, not by the "
                                    f"parent (pid {t.parent}): the parent takes the even turns")
        else:
            expect(pid != t.parent and ppid == t.parent,
                   f"{call}: turn {k} was taken by pid {pid} (whose parent is {ppid}), not by "
                   f"a child forked by the parent (pid {t.parent}): the child takes the odd "
                   "turns")


@TURNS.check("6 turns: each taken once, in order, the even ones by the parent and the odd "
             "ones by its child, never two at once",
             hint="Each process waits on its own semaphore before each of its turns and posts "
                  "the other's after it. Which of the two starts at 1?",
             concept="A semaphore with value 0 is a closed door: acquire sleeps until someone "
                     "posts. Two of them pass the turn back and forth like a baton.")
def _(answer):
    t, _ = _turns(answer, 6)
    _expect_order(t, 6)


@TURNS.check("the child's results reach the parent through a shared mapping",
             hint="Store each turn's result in its slot of a mapping both processes share, "
                  "made before the fork; the parent reads all the slots at the end.",
             concept="After fork, ordinary memory is copied: the child's writes stay in its "
                     "copy. Only a MAP_SHARED mapping is the same pages in both processes.")
def _(answer):
    t, _ = _turns(answer, 7)
    _expect_order(t, 7)
    call = "take_turns(7, turn)"
    expect(t.value is not None, f"{call} returned {t.shown}; expected the 7 slots as a list "
                                "of ints")
    got = list(t.value or ())
    expect(len(got) == 7, f"{call} returned {len(got)} values; expected one per turn, 7")
    wrong = [k for k in range(7) if got[k] != t.want[k]]
    if wrong:
        k = wrong[0]
        who = "parent" if k % 2 == 0 else "child"
        raise CheckFailed(f"{call}: slot {k} is {got[k]}, but turn({k}) returned "
                          f"{t.want[k]} in the {who}. "
                          + ("The child's writes never reached the parent: is the mapping "
                             "shared (MAP_SHARED), and made before the fork?"
                             if all(k % 2 for k in wrong) else
                             "Store each turn's result in slot k, as 64-bit integers."))
    mapped = [row[0] for row in t.turns if row[4] == 0]
    expect(not mapped, f"{call}: during turn {mapped[0] if mapped else ''} its process had no "
                       "shared mapping (none in /proc/self/maps): make one with mmap")


@TURNS.check("two named semaphores exist in /dev/shm during the turns",
             hint="Create both with posix_ipc.Semaphore and a name of your own, exclusively "
                  "(O_CREX), before the fork.",
             concept="A named POSIX semaphore is a small file in /dev/shm (sem.NAME) that "
                     "both processes map; the kernel's futex puts the waiter to sleep.")
def _(answer):
    t, _ = _turns(answer, 4)
    _expect_order(t, 4)
    few = [(row[0], row[3]) for row in t.turns if row[3] < 2]
    expect(not few, f"take_turns(4, turn): during turn {few[0][0] if few else ''}, the "
                    f"process taking it had {few[0][1] if few else ''} named semaphore(s) open "
                    "(in /proc/self/maps, still in /dev/shm); expected the two named "
                    "semaphores the turns wait on, made before the fork")


@TURNS.check("nothing is left: both semaphores unlinked, the mapping closed, the child reaped",
             hint="In a finally: reap the child, close the mapping, and unlink and close "
                  "each semaphore.",
             concept="A named semaphore outlives every process that used it until it is "
                     "unlinked; a child that ends stays a zombie until its parent waits "
                     "for it.")
def _(answer):
    t, attempt = _turns(answer, 4)
    _expect_order(t, 4)
    expect(t.value is not None and list(t.value) == list(t.want),
           f"take_turns(4, turn) returned {t.shown}; expected the 4 results of turn()")
    expect_clean(attempt)
