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

The watched counter, schedules and pairs are judged with :mod:`labkit.checks._shared`,
which the checks of lesson 05 use too.
"""
from __future__ import annotations

from typing import Any

from .. import interleave
from ..checking import CheckFailed, Exercise, expect
from ._shared import (
    counted,
    expect_nothing_left,
    expect_stores,
    pair,
    run_schedule,
    schedule_of,
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
