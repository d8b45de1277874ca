"""Checks for the exercises of lesson 04 (data races).

Schedules are judged by the interleaving model (:mod:`labkit.interleave`): it
is deterministic, so a schedule either loses the update or it does not. The
racy counter runs on real processes, and its checks test only what holds in
every run: one worker counts exactly, several never count above the correct
total, the counting happens in processes the answer started, and nothing is
left behind. Whether a run happened to lose updates is never judged.

The helpers at the top (:func:`observed`, :func:`spread_over_cpus`) are shared
with the checks of lesson 05.
"""
from __future__ import annotations

import os
import re
from typing import Any

from .. import interleave
from .._janitor import SESSION_PID, SHM_DIR, unlink_name
from ..checking import Attempt, CheckFailed, Exercise, call, expect

# --- helpers shared with checks/sync.py -------------------------------------------------------


def spread_over_cpus() -> None:
    """In this process, pin each child forked from now on to the next CPU (round robin).

    A check calls it in the answer's own process (never in the checker), so the
    answer's workers run on different cores where there are several: a race, if
    the answer has one, then shows in nearly every run instead of now and then.
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


def observed(answer: Any, *args: Any, spread: bool = False) -> tuple[Any, int]:
    """Run in the answer's process: the answer's value, and how many processes it forked.

    ``os.fork`` is wrapped for the duration of the call (labkit, multiprocessing
    and a bare ``os.fork()`` all go through it). With ``spread`` the forked
    children are spread over the CPUs (:func:`spread_over_cpus`).
    """
    if spread:
        spread_over_cpus()
    real = os.fork
    forks = [0]

    def counting_fork() -> int:
        pid = real()
        if pid:
            forks[0] += 1
        return pid

    os.fork = counting_fork
    try:
        value = answer(*args)
    finally:
        os.fork = real
    return value, forks[0]


_LAB = re.compile(r"(?:sem\.)?labkit_\d+_(\d+)_")


def _entries() -> set[str]:
    """Entries of /dev/shm that an answer run from this session could have made (other
    sessions' lab objects and multiprocessing's own locks are never counted)."""
    found = set()
    for entry in os.listdir(SHM_DIR) if SHM_DIR.is_dir() else []:
        m = _LAB.match(entry)
        if entry.startswith("sem.mp-") or (m and int(m.group(1)) != SESSION_PID):
            continue
        found.add(entry)
    return found


def guarded_call(fn: Any, *args: Any, **kwargs: Any) -> Attempt:
    """:func:`labkit.checking.call`, then remove the named objects that appeared during the
    call and are still there. A call that ends normally has already reported and removed
    its leftovers; this catches those of a call killed at its time limit, whose processes
    could not clean up and whose session (the checker's) lives on, so no janitor would."""
    before = _entries()
    try:
        return call(fn, *args, **kwargs)
    finally:
        for entry in sorted(_entries() - before):
            if entry.startswith("sem."):
                unlink_name("sem", "/" + entry[4:])
            else:
                unlink_name("shm", "/" + entry)


def whole_number(value: Any, what: str) -> int:
    """``value`` as an int, or a failed check saying what came back instead."""
    try:
        import numpy as np

        if isinstance(value, np.integer):
            value = int(value)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckFailed(f"{what} returned {value!r} ({type(value).__name__}); expected the "
                          "counter's final value as an int (copy it out: int(counter.value))")
    return value


# --- judging schedules ---------------------------------------------------------------------


def _schedule_of(answer: Any, who: str) -> str:
    got = guarded_call(answer).value
    if isinstance(got, (list, tuple)):
        got = "".join(str(p) for p in got)
    expect(isinstance(got, str), f"{who}() returned {got!r}; expected a schedule as a string "
                                 "such as '0011 01'")
    return got


def _judge(system: interleave.System, schedule: str, want: int, who: str) -> interleave.Trace:
    """Run ``schedule`` in the model; fail unless it finishes with x == want."""
    try:
        trace = interleave.run(system, schedule)
    except interleave.ScheduleError as e:
        raise CheckFailed(f"{who}() gave {schedule!r}, which cannot run: {e}") from None
    if not trace.finished:
        left = system.steps - len(trace.schedule)
        raise CheckFailed(f"{who}() gave {schedule!r}: it stops with {left} steps still to go. "
                          f"A complete schedule has {system.steps} steps, one per instruction "
                          "of every process")
    got = trace.value()
    expect(got == want, f"{who}() gave {schedule!r}: following it, x ends at {got}, not {want}"
                        f" ({system.title}; the steps were: {'; '.join(trace.events)})")
    return trace


def _pair(answer: Any, first: str, second: str) -> tuple[Any, Any]:
    expect(isinstance(answer, tuple) and len(answer) == 2,
           f"pass both functions as a pair: labkit.check(..., ({first}, {second})), "
           f"got {answer!r}")
    return answer


# --- 04.lost_update -------------------------------------------------------------------------

LOST_UPDATE = Exercise("04.lost_update", "Schedules that lose updates")


@LOST_UPDATE.check("two processes: a complete schedule that ends with x = 1", points=2,
                   hint="An update is lost when both processes load x before either stores "
                        "it. Write the 6 steps so that both loads come first.")
def _(answer):
    lose_one, _ = _pair(answer, "lose_one", "lose_two")
    _judge(interleave.counter(2), _schedule_of(lose_one, "lose_one"), 1, "lose_one")


@LOST_UPDATE.check("three processes: a complete schedule that ends with x = 1 (two updates "
                   "lost)", points=2,
                   hint="Let all three load x = 0 before any of them stores; then every store "
                        "writes 1.")
def _(answer):
    _, lose_two = _pair(answer, "lose_one", "lose_two")
    _judge(interleave.counter(3), _schedule_of(lose_two, "lose_two"), 1, "lose_two")


# --- 04.smallest_total ------------------------------------------------------------------------

SMALLEST = Exercise("04.smallest_total", "The smallest total: two processes end at x = 2")


def _smallest_case(answer: Any, increments: int) -> None:
    schedule = guarded_call(answer, increments).value
    if isinstance(schedule, (list, tuple)):
        schedule = "".join(str(p) for p in schedule)
    expect(isinstance(schedule, str), f"smallest_total({increments}) returned {schedule!r}; "
                                      "expected a schedule string")
    _judge(interleave.counter(2, increments), schedule, 2, f"smallest_total({increments})")


@SMALLEST.check("3 increments each: the schedule ends with x = 2", points=2,
                hint="Let P0 load 0 and stop there. Let P1 finish all but its last increment; "
                     "then P0 stores 1 (wiping those out). Now P1 loads 1 and stops; P0 runs "
                     "its other increments to the end; last, P1 stores 1 + 1.")
def _(answer):
    _smallest_case(answer, 3)


@SMALLEST.check("any number of increments (2, 5 and 10): x still ends at 2", points=2,
                hint="Build the schedule from the number of increments n: the pattern of the "
                     "3-increment case, with n - 1 whole increments where it had 2. A whole "
                     "increment is three steps of one process.")
def _(answer):
    for n in (2, 5, 10):
        _smallest_case(answer, n)


# --- 04.racy_counter --------------------------------------------------------------------------

RACY = Exercise("04.racy_counter", "The lost-update counter on real processes", timeout=60.0)


def _count(answer: Any, workers: int, iterations: int) -> tuple[int, int, Any]:
    attempt = guarded_call(observed, answer, workers, iterations, timeout=15)
    value, forks = attempt.value
    return whole_number(value, "racy_count"), forks, attempt


@RACY.check("one worker counts exactly", points=2,
            hint="The counter must live in shared memory (a lab segment: shm.Segment.create, "
                 "then seg.struct(ctypes.c_int64)) that the workers inherit; a plain variable "
                 "is copied into each child at fork and the parent never sees their counts.")
def _(answer):
    got, forks, _ = _count(answer, 1, 20_000)
    if got == 0:
        raise CheckFailed("racy_count(1, 20000) returned 0: the worker's increments never "
                          "reached the counter you read, so it counted in its own copy, not "
                          "in shared memory")
    expect(got == 20_000, f"racy_count(1, 20000) returned {got:,}; one worker alone cannot "
                          "race with anybody, so it must count exactly 20,000")
    expect(forks >= 1, "racy_count(1, 20000) started no process: the counting must happen in "
                       "a worker process (labkit.run_workers), not in your own")


@RACY.check("several workers never count above the correct total", points=1,
            hint="Each worker adds 1 to the shared counter `iterations` times with "
                 "counter.value += 1; return the counter's value once every worker has ended.")
def _(answer):
    for _ in range(3):
        got, _, _ = _count(answer, 3, 20_000)
        expect(0 < got <= 60_000, f"racy_count(3, 20000) returned {got:,}; with 3 x 20,000 "
                                  "increments into one shared counter the result lies between "
                                  "1 and 60,000, whatever the interleaving")


@RACY.check("the counting is done by `workers` worker processes", points=1,
            hint="Start all the workers together: labkit.run_workers(add_ones, workers, "
                 "counter, iterations) forks them and releases them at the same moment.")
def _(answer):
    got, forks, _ = _count(answer, 4, 5_000)
    expect(forks >= 4, f"racy_count(4, 5000) forked {forks} process(es); expected a worker "
                       "process for each of the 4 workers")
    expect(0 < got <= 20_000, f"racy_count(4, 5000) returned {got:,}; expected a value from "
                              "1 to 20,000")


@RACY.check("nothing is left behind: no segment, descriptor or child", points=1,
            hint="Create the segment in a with block (it is unlinked at its end), copy the "
                 "value out with int() first, and let run_workers wait for every worker.")
def _(answer):
    got, _, attempt = _count(answer, 2, 5_000)
    expect(0 < got <= 10_000, f"racy_count(2, 5000) returned {got:,}; expected a value from 1 "
                              "to 10,000")
    expect(not attempt.problems, "racy_count did not clean up: " + "; ".join(attempt.problems))
