"""Checks for the exercises of lesson 04 (data races).

Schedules are judged by the interleaving model (:mod:`labkit.interleave`): it
is deterministic, so a schedule either loses the update or it does not.

The counters run on real processes, and a lost update is made certain rather
than waited for: in the answer's process the check watches the counter that
``seg.struct(ctypes.c_int64)`` hands out (:func:`observed`). It counts the
stores each worker makes, and holds every worker's *first* store until every
other worker has loaded the counter too, or is asleep (blocked on a lock, as
``/proc`` shows). So an unlocked increment, or a lock around only part of it,
loses at least ``workers - 1`` updates in every run, while a correctly locked
one is held up only until the others are seen waiting for its lock. A number
made up without the counter is caught because no worker stored anything.
Waiting for a race to happen by chance was rejected: it happens in one run of
forty for some wrong answers.

The ticket sale to debug (04.ticket_sale) runs under the same watch: every seller's
first sale waits until the others have looked at the seats left, so a look and a sale
that are not one step under the lock sell more tickets than seats in every run.

The race built by hand (04.raw_race) cannot be watched that way (its counter is the
student's own ctypes view); it is judged from the kernel instead: each child, as it
starts, notes the shared mappings it inherited and who forked it, and waits until all
its siblings are forked, which children started one after another never are.

The watched counter, schedules and pairs are judged with :mod:`labkit.checks._shared`,
which the checks of lesson 05 use too.
"""
from __future__ import annotations

import ctypes
import gc
import mmap
import os
from typing import Any

from .. import interleave
from ..checking import Attempt, CheckFailed, Exercise, expect
from ..waiting import wait_until
from ._shared import (
    Seen,
    counted,
    expect_nothing_left,
    expect_stores,
    forked_by_labkit,
    guarded_call,
    pair,
    plain,
    run_schedule,
    schedule_of,
    shared_maps,
)

# --- judging schedules ---------------------------------------------------------------------


def _judge(system: interleave.System, schedule: str, want: int, call: str) -> None:
    """Fail unless ``schedule`` is complete and finishes with x == want."""
    trace = run_schedule(system, schedule, call)
    if not trace.finished:
        left = system.steps - len(trace.schedule)
        raise CheckFailed(f"{call} gave {schedule!r}: it stops with {left} steps still to go. "
                          f"A complete schedule has {system.steps} steps, one per instruction "
                          "of every process")
    got = trace.value()
    expect(got == want, f"{call} gave {schedule!r}: following it, x ends at {got}, not {want}"
                        f" ({system.title}; the steps were: {'; '.join(trace.events)})")


# --- 04.lost_update -------------------------------------------------------------------------

LOST_UPDATE = Exercise("04.lost_update", "Schedules that lose updates")


@LOST_UPDATE.check("two processes: a complete schedule that ends with x = 1",
                   hint="An update is lost when a process stores a value it loaded before the "
                        "other process stored its own. Order the 6 steps so that happens.",
                   concept="Each process runs load, add, store. The final x is the value of "
                           "the last store, and a store writes what its own process loaded "
                           "plus 1: a value loaded before another store is stale.")
def _(answer):
    lose_one, _ = pair(answer, "lose_one", "lose_two")
    _judge(interleave.counter(2), schedule_of(lose_one, call="lose_one()"), 1, "lose_one()")


@LOST_UPDATE.check("three processes: a complete schedule that ends with x = 1 (two updates "
                   "lost)",
                   hint="Processes are numbered from 0. For x to end at 1, every store must "
                        "write 0 + 1.",
                   concept="A store writes the value its process loaded plus 1; if each "
                           "process loaded before anybody stored, all three write the same "
                           "value.")
def _(answer):
    _, lose_two = pair(answer, "lose_one", "lose_two")
    _judge(interleave.counter(3), schedule_of(lose_two, call="lose_two()"), 1, "lose_two()")


# --- 04.smallest_total ------------------------------------------------------------------------

SMALLEST = Exercise("04.smallest_total", "The smallest total: two processes end at x = 2")


def _smallest_case(answer: Any, increments: int) -> None:
    call = f"smallest_total({increments})"
    schedule = schedule_of(answer, increments, call=call)
    _judge(interleave.counter(2, increments), schedule, 2, call)


@SMALLEST.check("3 increments each: the schedule ends with x = 2",
                hint="A stale store can wipe out many increments at once. Find a moment to "
                     "load a small value and hold it for a long time; you need two such "
                     "moments, one in each process.",
                concept="The final x is the last store's value, which is 1 more than what its "
                        "process loaded. For x to end at 2, the last store must come from a "
                        "load that saw 1; and for some store to have left 1 behind, it must "
                        "come from a load that saw 0 and land after the other process's work.")
def _(answer):
    _smallest_case(answer, 3)


@SMALLEST.check("any number of increments (2, 5 and 10): x still ends at 2",
                hint="Build the schedule from n instead of writing it out: which parts of "
                     "your 3-increment schedule grow with n, and which stay the same?",
                concept="A complete schedule for counter(2, n) has 6n steps, 3n per process. "
                        "The two stale stores stay; what lies between them grows with n.")
def _(answer):
    for n in (2, 5, 10):
        _smallest_case(answer, n)


# --- 04.racy_counter --------------------------------------------------------------------------

RACY = Exercise("04.racy_counter", "The lost-update counter on real processes", timeout=60.0)


@RACY.check("one worker counts exactly",
            hint="The counter must be in memory that the workers share with the process "
                 "that reads the result; an ordinary variable is copied into each worker.",
            concept="After fork a child has a copy of the parent's memory: its writes to a "
                    "variable change only its copy. Only a shared mapping (a lab segment) is "
                    "the same memory in both.")
def _(answer):
    got, seen, _ = counted(answer, 1, 20_000, "racy_count")
    if got == 0:
        raise CheckFailed("racy_count(1, 20000) returned 0: the worker's increments never "
                          "reached the counter you read, so it counted in its own copy, not "
                          "in shared memory")
    expect(got == 20_000, f"racy_count(1, 20000) returned {got:,}; one worker alone cannot "
                          "race with anybody, so it must count exactly 20,000")
    expect(seen.forks >= 1, "racy_count(1, 20000) started no process: the counting must "
                            "happen in a worker process (labkit.run_workers), not in your own")
    expect_stores(seen, "racy_count(1, 20000)", 1, 20_000)


@RACY.check("the workers count in the shared counter: made to load it together, they lose "
            "updates",
            hint="Each worker must itself add 1 to the one shared counter, iterations times, "
                 "with no lock: the check watches the counter, and makes the workers' first "
                 "increments overlap.",
            concept="A data race is a property of the code, not of a lucky run: load, add "
                    "and store are three steps, and when two workers load before either "
                    "stores, one update is lost. The check forces that moment; a counter "
                    "nobody shares, or a number computed without it, shows no lost update.")
def _(answer):
    workers, iterations = 3, 20_000
    call = f"racy_count({workers}, {iterations})"
    got, seen, _ = counted(answer, workers, iterations, "racy_count")
    expect_stores(seen, call, workers, workers * iterations)
    want = workers * iterations
    expect(got <= want, f"{call} returned {got:,}, more than the {want:,} increments made: "
                        "something counts twice")
    expect(not seen.forced or got <= want - (workers - 1),
           f"{call} returned {got:,}, but the check made all {workers} workers load the "
           f"counter before any of them stored it, so at least {workers - 1} updates must be "
           f"lost (at most {want - workers + 1:,}). The increments were serialized (a lock?) "
           "or the number did not come from the counter")
    expect(got > 0, f"{call} returned 0: the workers' increments never reached the counter "
                    "you read")


@RACY.check("the counting is done by `workers` worker processes",
            hint="Start one worker process per worker, all at the same time; labkit has a "
                 "function that forks n of them and releases them together.",
            concept="A race needs two processes running the increment at once: one process "
                    "doing all the work, or workers started one after the other's end, "
                    "cannot interleave.")
def _(answer):
    got, seen, _ = counted(answer, 4, 5_000, "racy_count")
    expect(seen.forks >= 4, f"racy_count(4, 5000) forked {seen.forks} process(es); expected a "
                            "worker process for each of the 4 workers")
    expect(0 < got <= 20_000, f"racy_count(4, 5000) returned {got:,}; expected a value from "
                              "1 to 20,000")
    expect_stores(seen, "racy_count(4, 5000)", 4, 20_000)


@RACY.check("nothing is left behind: no segment, descriptor or child",
            hint="Give the segment an owner that ends (a with block), copy the value out "
                 "before that end, and wait for every worker.",
            concept="A named segment lives in /dev/shm until someone unlinks it, whatever "
                    "happens to the processes that used it.")
def _(answer):
    got, seen, attempt = counted(answer, 2, 5_000, "racy_count")
    expect(0 < got <= 10_000, f"racy_count(2, 5000) returned {got:,}; expected a value from 1 "
                              "to 10,000")
    expect_stores(seen, "racy_count(2, 5000)", 2, 10_000)
    expect_nothing_left(seen, attempt, "racy_count")


# --- 04.ticket_sale (debugging) ---------------------------------------------------------------

TICKETS = Exercise("04.ticket_sale", "More tickets sold than seats", kind="debug",
                   timeout=60.0)

_CHECK_THEN_ACT = ("Looking at a shared value and acting on what you saw are two steps: "
                   "another process can act in between, and what you saw is then stale. The "
                   "look and the act must happen under the same lock, as one step.")


def _sold(answer: Any, sellers: int, seats: int) -> tuple[int, Seen, Attempt]:
    """``sell_tickets(sellers, seats)`` under the watch, and a failed check unless the
    sellers' counter is the shared one and exactly ``seats`` tickets were sold."""
    call = f"sell_tickets({sellers}, {seats})"
    got, seen, attempt = counted(answer, sellers, seats, "sell_tickets")
    expect_stores(seen, call, 1, None)
    seat_s = "seat" if seats == 1 else "seats"
    if got > seats:
        raise CheckFailed(
            f"{call} sold {got:,} tickets for {seats:,} {seat_s}: the check held each "
            "seller's first sale until every other seller had looked at the seats left (or "
            "was waiting for the lock), and then more sellers went on to sell than there "
            "were seats. Whatever a seller saw can be stale by the time it sells")
    expect(got == seats, f"{call} sold {got:,} tickets for {seats:,} {seat_s}; every seat "
                         "must be sold"
           + (": the sales were not counted where the caller reads them (shared memory)"
              if got == 0 else ""))
    return got, seen, attempt


@TICKETS.check("one seat, three sellers made to look at the same moment: one ticket sold",
               hint="Ask what a seller knows about the seats left at the moment it takes one, "
                    "and which step the lock makes one with which.",
               concept=_CHECK_THEN_ACT)
def _(answer):
    _sold(answer, 3, 1)


@TICKETS.check("2 seats and 200 seats, three sellers: exactly as many tickets as seats, sold "
               "by three worker processes",
               hint="The number of tickets sold must equal the seats in every run, whatever "
                    "order the sellers run in.", concept=_CHECK_THEN_ACT)
def _(answer):
    for seats in (2, 200):
        _, seen, _ = _sold(answer, 3, seats)
        expect(seen.forks >= 3, f"sell_tickets(3, {seats}) forked {seen.forks} process(es); "
                                "each of the 3 sellers is a worker process")


@TICKETS.check("nothing is left behind: no segment, semaphore, descriptor or child",
               hint="The given program cleans up with a with block: keep it.")
def _(answer):
    _, seen, attempt = _sold(answer, 2, 1)
    expect_nothing_left(seen, attempt, "sell_tickets")


# --- 04.raw_race: the race with mmap and os.fork by hand ---------------------------------------

RAW_RACE = Exercise("04.raw_race", "The race with mmap and fork, by hand",
                    raw_calls=("mmap", "os.fork"), timeout=60.0)

_SLOTS = 16            # children the record keeps
_SIBLINGS = 3.0        # seconds a child waits at its start for its siblings to be forked
_ANON, _NAMED, _BY_LABKIT, _MET = 1, 2, 4, 8   # what a child found, as bits


def _anonymous_and_named() -> tuple[set[str], set[str]]:
    """This process's shared mappings: anonymous ones, and named shared memory objects."""
    maps = {line for line in shared_maps() if line.split()[1].endswith("s")}
    return ({m for m in maps if "/dev/zero (deleted)" in m},
            {m for m in maps if "/dev/shm/" in m})


def _raced(answer: Any, workers: int, iterations: int) -> tuple:
    """Run ``answer(workers, iterations)`` in this (the answer's) process, noting from the
    kernel what each child it forks has: ``(its value, forks, one int of bits per child,
    shared mappings left when it returned)``, plain data only.

    Each child, as it starts, records the shared mappings it inherited (``/proc/self/maps``)
    and whether labkit's helpers forked it, then waits for all ``workers`` siblings to be
    forked (at most :data:`_SIBLINGS` seconds): children forked one after another's end
    never meet, and racing children start together.
    """
    record = mmap.mmap(-1, 8 * (1 + _SLOTS))
    table = (ctypes.c_int64 * (1 + _SLOTS)).from_buffer(record)
    me, slot = os.getpid(), [0]
    anonymous, named = _anonymous_and_named()   # the record's own mapping among them

    def before() -> None:
        if os.getpid() == me:
            slot[0] = int(table[0])
            table[0] += 1

    def in_child() -> None:
        if os.getppid() != me or slot[0] >= _SLOTS:
            return
        now_anonymous, now_named = _anonymous_and_named()
        bits = (_ANON if now_anonymous - anonymous else 0) | (
            _NAMED if now_named - named else 0) | (_BY_LABKIT if forked_by_labkit() else 0)
        if wait_until(lambda: table[0] >= workers, _SIBLINGS, None, every=0.001):
            bits |= _MET
        table[1 + slot[0]] = bits

    os.register_at_fork(before=before, after_in_child=in_child)
    value = plain(answer(workers, iterations))
    gc.collect()                               # views merely unreferenced do not count
    after_anonymous, after_named = _anonymous_and_named()
    forks = int(table[0])
    left = sorted((after_anonymous - anonymous) | (after_named - named))
    return value, forks, [int(table[1 + k]) for k in range(min(forks, _SLOTS))], left


def _race_run(answer: Any, workers: int, iterations: int) -> tuple[int, int, list[int],
                                                                     Attempt]:
    """Call the answer under :func:`_raced`: its lost count, forks, the children's bits,
    and the attempt, whose problems include shared mappings still in place."""
    attempt = guarded_call(_raced, answer, workers, iterations, timeout=15)
    (lost, shown), forks, bits, left = attempt.value
    if lost is None:
        raise CheckFailed(f"lost_updates({workers}, {iterations}) returned {shown}; expected "
                          "the number of lost updates as an int")
    problems = [f"a shared mapping was still in place when your function returned "
                f"({line.split(maxsplit=5)[-1]}): close the mmap and drop every view of it"
                for line in left]
    return lost, forks, bits, Attempt(attempt.result, (*attempt.problems, *problems))


_SHARED_ANON = ("A mapping made with mmap.mmap(-1, size) is anonymous and shared (MAP_SHARED "
                "is the default): every child forked after it is made shares the same pages, "
                "with no name to create or remove.")


@RAW_RACE.check("one worker loses nothing", hint="With one worker nobody races: lost is 0. "
                "The parent reads the counter only after the child has ended.",
                concept=_SHARED_ANON)
def _(answer):
    lost, forks, _, _ = _race_run(answer, 1, 20_000)
    expect(forks >= 1, "lost_updates(1, 20000) forked no child: the counting happens in "
                       "children made with os.fork()")
    if lost == 20_000:
        raise CheckFailed("lost_updates(1, 20000) returned 20,000: the child's increments "
                          "never reached your process. The counter must live in a shared "
                          "mapping made before the fork")
    expect(lost == 0, f"lost_updates(1, 20000) returned {lost:,}; one worker alone races "
                      "with nobody, so nothing is lost (lost = workers x iterations - the "
                      "final count)")


@RAW_RACE.check("the kernel shows the raw calls: `workers` children of yours, forked "
                "together, sharing an anonymous mapping",
                hint="Make the anonymous mapping before the first fork, and fork every "
                     "worker yourself before waiting for any.", concept=_SHARED_ANON)
def _(answer):
    call = "lost_updates(3, 20000)"
    lost, forks, bits, _ = _race_run(answer, 3, 20_000)
    expect(forks >= 3, f"{call} forked {forks} process(es); expected one child per worker")
    expect(not any(b & _BY_LABKIT for b in bits),
           f"in {call} the children were forked by labkit's helpers (run_workers, start): "
           "make the calls yourself, one os.fork() per worker")
    expect(all(b & _MET for b in bits),
           f"in {call} each child waited {_SIBLINGS:g} s at its start for its siblings and "
           "some never came: the children were started one after the other's end, so they "
           "cannot race. Fork them all, then wait for them all")
    if not all(b & _ANON for b in bits):
        raise CheckFailed(
            f"in {call} the children inherited "
            + ("a named shared memory object but no anonymous shared mapping: "
               "the counter belongs in an anonymous mapping, mmap.mmap(-1, 8)"
               if all(b & _NAMED for b in bits) else
               "no shared mapping from your process: make one with mmap.mmap(-1, 8) (shared "
               "by default) before forking"))
    expect(0 <= lost < 60_000, f"{call} returned {lost:,}; lost updates lie between 0 and "
                               "59,999 (the counter ends between 1 and 60,000)")


@RAW_RACE.check("nothing is left behind: children reaped, mapping closed, no descriptor",
                hint="Wait for every child; drop the ctypes view, then close the mapping.")
def _(answer):
    lost, _, _, attempt = _race_run(answer, 2, 5_000)
    expect(0 <= lost < 10_000, f"lost_updates(2, 5000) returned {lost:,}; expected a count "
                               "from 0 to 9,999")
    expect(not attempt.problems, "lost_updates did not clean up: "
           + "; ".join(attempt.problems))
