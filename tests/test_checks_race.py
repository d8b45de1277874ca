"""Lesson 04's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers fail with a message that points at the mistake."""
from __future__ import annotations

import ctypes

import posix_ipc
from helpers import failures as _failures
from helpers import load_answers

import labkit
from labkit import objects, shm

SOLVED = load_answers("solutions/04_data_races.ipynb")


# --- 04.lost_update --------------------------------------------------------------------------


def test_a_serial_schedule_loses_nothing_and_is_caught():
    failed = _failures("04.lost_update", (lambda: "000 111", SOLVED["lose_two"]))
    message = failed["two processes: a complete schedule that ends with x = 1"]
    assert "x ends at 2, not 1" in message and "P1: store x -> x = 2" in message
    assert len(failed) == 1


def test_an_unfinished_schedule_is_caught():
    failed = _failures("04.lost_update", (lambda: "0101", lambda: "012012"))
    assert "it stops with 2 steps still to go" in failed[
        "two processes: a complete schedule that ends with x = 1"]
    assert "it stops with 3 steps still to go" in failed[
        "three processes: a complete schedule that ends with x = 1 (two updates lost)"]


def test_a_schedule_that_cannot_run_says_why():
    failed = _failures("04.lost_update", (lambda: "0000 111", lambda: [0, 1, 2, 3]))
    assert "cannot run: step 4: process 0 has finished its 3 instructions" in failed[
        "two processes: a complete schedule that ends with x = 1"]
    assert "names process 3" in failed[
        "three processes: a complete schedule that ends with x = 1 (two updates lost)"]


def test_three_processes_losing_only_one_update_are_caught():
    failed = _failures("04.lost_update", (SOLVED["lose_one"], lambda: "01 01 01 222"))
    assert "x ends at 2, not 1" in failed[
        "three processes: a complete schedule that ends with x = 1 (two updates lost)"]


def test_something_else_than_a_schedule_or_a_pair_is_refused_clearly():
    failed = _failures("04.lost_update", (lambda: None, SOLVED["lose_two"]))
    assert "expected a schedule as a string" in next(iter(failed.values()))
    failed = _failures("04.lost_update", SOLVED["lose_one"])
    assert all("pass both functions as a pair" in m for m in failed.values()) and failed


# --- 04.smallest_total --------------------------------------------------------------------------


def test_a_schedule_that_only_works_for_three_increments_is_caught():
    fixed = SOLVED["smallest_total"](3)
    failed = _failures("04.smallest_total", lambda n: fixed)
    assert list(failed) == ["any number of increments (2, 5 and 10): x still ends at 2"]
    assert "smallest_total(2)" in next(iter(failed.values()))


def test_a_schedule_that_ends_at_three_is_caught():
    def three(n):
        return "0" + "111" * (n - 1) + "00" + "000" * (n - 1) + "111"   # x = 1 + n - 1 + 1

    failed = _failures("04.smallest_total", three)
    message = failed["3 increments each: the schedule ends with x = 2"]
    assert "x ends at 4, not 2" in message


# --- 04.racy_counter ----------------------------------------------------------------------------


def _add_ones(i, counter, n):
    for _ in range(n):
        counter.value += 1


def test_a_counter_in_private_memory_is_caught():
    def private(workers, iterations):
        counter = ctypes.c_int64(0)                  # copied into each child at fork
        labkit.run_workers(_add_ones, workers, counter, iterations).values
        return counter.value

    failed = _failures("04.racy_counter", private)
    assert "counted in its own copy, not in shared memory" in failed[
        "one worker counts exactly"]


def test_counting_without_worker_processes_is_caught():
    def no_workers(workers, iterations):
        with shm.Segment.create(8) as seg:
            counter = seg.struct(ctypes.c_int64)
            for i in range(workers):
                _add_ones(i, counter, iterations)
            value = int(counter.value)
            del counter
        return value

    failed = _failures("04.racy_counter", no_workers)
    assert "started no process" in failed["one worker counts exactly"]
    assert "forked 0 process(es)" in failed["the counting is done by `workers` worker processes"]


def test_a_counter_that_is_never_unlinked_is_caught():
    def leaky(workers, iterations):
        mem = posix_ipc.SharedMemory(objects.lab_name("leak"), posix_ipc.O_CREX, mode=0o600,
                                     size=8)
        seg = shm.Segment.attach(mem.name)
        mem.close_fd()
        counter = seg.struct(ctypes.c_int64)
        labkit.run_workers(_add_ones, workers, counter, iterations).values
        value = int(counter.value)
        del counter
        seg.close()
        return value

    failed = _failures("04.racy_counter", leaky)
    assert list(failed) == ["nothing is left behind: no segment, descriptor or child"]
    assert "was left behind (labkit removed it)" in next(iter(failed.values()))


def test_a_value_that_is_not_an_int_is_refused_clearly():
    def view(workers, iterations):
        return ctypes.c_int64(workers * iterations)

    failed = _failures("04.racy_counter", view)
    assert "expected the counter's final value as an int" in failed["one worker counts exactly"]
