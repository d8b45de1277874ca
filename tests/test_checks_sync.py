"""Lesson 05's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers fail with a message that points at the mistake.

Wrong answers whose failure needs a race to show (locking only the read, a
buffer without a mutex) are run with the workers spread over the CPUs by the
check, and fail in practically every run; the others fail deterministically.
"""
from __future__ import annotations

import ctypes

import posix_ipc
from helpers import failures as _failures
from helpers import load_answers, spsc_consumer, spsc_producer

import labkit
from labkit import objects, shm

SOLVED = load_answers("solutions/05_synchronization.ipynb")


# --- counters ----------------------------------------------------------------------------------


def _counter(work):
    """A counter experiment around a worker function, as a student would write it."""
    def count(workers, iterations):
        with objects.scope() as objs, shm.Segment.create(8) as seg:
            lock = objs.semaphore(1)
            counter = seg.struct(ctypes.c_int64)
            labkit.run_workers(work, workers, counter, lock, iterations).values
            value = int(counter.value)
            del counter
        return value
    return count


def _read_locked(i, counter, lock, n):
    for _ in range(n):
        with lock:
            value = counter.value
        counter.value = value + 1


def _unlocked(i, counter, lock, n):
    for _ in range(n):
        counter.value += 1


def _locked(i, counter, lock, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def test_locking_only_the_read_loses_updates_and_is_caught():
    failed = _failures("05.locked_counter", _counter(_read_locked))
    message = failed["exact in every trial: 2 workers x 20,000 increments, five times"]
    assert "updates were lost" in message and "instead of 40,000" in message


def test_no_lock_at_all_is_caught():
    failed = _failures("05.locked_counter", _counter(_unlocked))
    assert "updates were lost" in failed[
        "exact in every trial: 2 workers x 20,000 increments, five times"]


def test_a_semaphore_left_in_dev_shm_is_caught():
    def leaky(workers, iterations):
        lock = posix_ipc.Semaphore(objects.lab_name("left"), posix_ipc.O_CREX, mode=0o600,
                                   initial_value=1)
        with shm.Segment.create(8) as seg:
            counter = seg.struct(ctypes.c_int64)
            labkit.run_workers(_locked, workers, counter, lock, iterations).values
            value = int(counter.value)
            del counter
        lock.close()
        return value

    failed = _failures("05.locked_counter", leaky)
    assert list(failed) == ["nothing is left behind: no semaphore, segment, descriptor or child"]
    assert "sem /labkit_" in next(iter(failed.values()))


def test_locking_every_increment_is_not_batching():
    failed = _failures("05.batched_counter", _counter(_locked))
    message = failed["at least 3 times faster than locking every increment (2 workers x 300,000)"]
    assert "times faster, and at least 3 times is expected" in message
    assert len(failed) == 1


# --- the bounded buffer ----------------------------------------------------------------------


def _mutex_first_producer(ring, items):
    for item in items:
        with ring.mutex:                         # the mutex before empty: can deadlock
            ring.empty.acquire()
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
        ring.full.release()


def _careless_producer(ring, items):
    for item in items:                           # never waits for a free slot
        with ring.mutex:
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
        ring.full.release()


def _impatient_consumer(ring, count):
    got = []
    for _ in range(count):                       # never waits for an item
        with ring.mutex:
            got.append(int(ring.slots[ring.head.value % ring.capacity]))
            ring.head.value += 1
        ring.empty.release()
    return got


def test_a_buffer_without_a_mutex_loses_and_duplicates_items_with_several_producers():
    failed = _failures("05.bounded_buffer", (spsc_producer, spsc_consumer))
    assert list(failed) == ["three producers, two consumers, two slots: every item exactly "
                            "once, each producer's items in order"]
    message = next(iter(failed.values()))
    assert "with 3 producers x 1000 items, 2 consumers, 2 slots:" in message
    assert "never arrived" in message or "more than once" in message


def test_taking_the_mutex_before_waiting_for_a_slot_deadlocks_and_is_caught():
    failed = _failures("05.bounded_buffer", (_mutex_first_producer, SOLVED["consumer"]))
    message = failed["a full buffer does not deadlock several producers (the consumers start "
                     "late)"]
    assert "did not finish in 3 s and were killed (a deadlock?" in message
    held = failed["a producer waits while the buffer is full, and goes on once a slot is free"]
    assert "it held ring.mutex while it waited" in held


def test_a_producer_that_does_not_wait_for_a_free_slot_is_caught():
    failed = _failures("05.bounded_buffer", (_careless_producer, SOLVED["consumer"]))
    message = failed["a producer waits while the buffer is full, and goes on once a slot is "
                     "free"]
    assert "did not wait" in message and "overwriting an item nobody had taken" in message


def test_a_consumer_that_does_not_wait_for_an_item_is_caught():
    failed = _failures("05.bounded_buffer", (SOLVED["producer"], _impatient_consumer))
    message = failed["a consumer waits while the buffer is empty, and takes the item once it "
                     "comes"]
    assert "returned [0] at once from an empty buffer" in message


# --- lock order --------------------------------------------------------------------------------


def _source_first(accounts, locks, moves):
    for src, dst, amount in moves:
        with locks[src]:                         # the order depends on the direction
            with locks[dst]:
                accounts[src] -= amount
                accounts[dst] += amount


def _one_lock(accounts, locks, moves):
    for src, dst, amount in moves:
        with locks[min(src, dst)]:               # only one of the two accounts is locked
            accounts[src] -= amount
            accounts[dst] += amount


def test_locks_taken_source_first_are_caught_even_without_a_deadlock():
    failed = _failures("05.lock_order", _source_first)
    message = failed["every move takes both accounts' locks, the lower index first"]
    assert ("took the locks in the order [1, 0]; expected [0, 1]" in message
            or "a deadlock" in message)


def test_locking_one_account_only_is_caught():
    failed = _failures("05.lock_order", _one_lock)
    message = failed["every move takes both accounts' locks, the lower index first"]
    assert "took the locks in the order [0]; expected [0, 1]" in message


# --- deadlock schedules -------------------------------------------------------------------------


def test_a_schedule_that_finishes_is_not_a_deadlock():
    failed = _failures("05.deadlock_schedule", (lambda: "0000000 1111111", lambda: "0"))
    assert "every process finished (x = 2), no deadlock" in failed[
        "two locks in opposite orders: a schedule that ends in a deadlock"]
    assert "some process can still move" in failed[
        "three philosophers: a schedule that ends in a deadlock"]


def test_a_schedule_that_steps_a_blocked_process_says_so():
    failed = _failures("05.deadlock_schedule", (lambda: "010", SOLVED["deadlock_philosophers"]))
    assert "process 0 is blocked at 'acquire B'" in failed[
        "two locks in opposite orders: a schedule that ends in a deadlock"]
