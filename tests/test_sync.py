"""labkit.sync: a bounded buffer that delivers, a deadlock that is caught, a lock that is lost.

Only what holds on any machine is asserted: items arrive exactly once with the
mutex, the occupancy stays between 0 and the capacity, opposite lock orders
always deadlock here (the workers meet while each holds its first lock), and a
semaphore whose holder was killed stays taken. Never a timing.
"""
from __future__ import annotations

import mmap
import os
import struct
import time

import matplotlib
import posix_ipc
import pytest
from helpers import spsc_consumer, spsc_producer

from labkit import sync
from labkit.errors import LabTimeout

matplotlib.use("agg")


def mpmc_producer(ring, items):
    for item in items:
        ring.empty.acquire()
        with ring.mutex:
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
        ring.full.release()


def mpmc_consumer(ring, count):
    got = []
    for _ in range(count):
        ring.full.acquire()
        with ring.mutex:
            got.append(int(ring.slots[ring.head.value % ring.capacity]))
            ring.head.value += 1
        ring.empty.release()
    return got


def greedy_consumer(ring, count):
    return spsc_consumer(ring, count + 1)      # waits for an item that never comes


# --- the ring --------------------------------------------------------------------------


def test_a_ring_starts_empty_with_its_semaphores_set():
    with sync.Ring(4) as ring:
        assert ring.occupancy() == 0 and ring.capacity == 4 and list(ring.slots) == [0] * 4
        assert ring.snapshot() == ([0, 0, 0, 0], 0, 0)
        if posix_ipc.SEMAPHORE_VALUE_SUPPORTED:
            assert (ring.empty.value, ring.full.value, ring.mutex.value) == (4, 0, 1)
        names = [ring.name, ring.empty.name, ring.full.name, ring.mutex.name]
    assert not any(os.path.exists("/dev/shm/" + n.lstrip("/")) or
                   os.path.exists("/dev/shm/sem." + n.lstrip("/")) for n in names)


def test_a_ring_refuses_no_slots():
    with pytest.raises(ValueError, match="capacity must be a whole number of slots from 1"):
        sync.Ring(0)


def test_items_say_who_made_them_and_when():
    assert sync.decode_item(sync.item_code(3, 17)) == (3, 17)
    assert sync.item_code(0, 0) != 0


# --- delivering --------------------------------------------------------------------------


def test_one_producer_and_one_consumer_need_no_mutex():
    d = sync.deliver(spsc_producer, spsc_consumer, items=2_000, capacity=3)
    assert d.ok and d.received == d.sent


def test_several_producers_and_consumers_with_a_mutex_deliver_every_item_once_in_order():
    d = sync.deliver(mpmc_producer, mpmc_consumer, producers=3, consumers=2, items=500,
                     capacity=4)
    assert d.ok, str(d)
    assert sorted(v for r in d.received for v in r) == sorted(v for s in d.sent for v in s)
    assert [len(r) for r in d.received] == [750, 750]


def test_consumers_that_start_late_find_a_full_buffer_and_still_get_everything():
    d = sync.deliver(mpmc_producer, mpmc_consumer, producers=2, items=50, capacity=1,
                     consumer_delay=0.2)
    assert d.ok


def test_a_consumer_that_waits_for_too_much_is_stopped_by_the_timeout():
    with pytest.raises(LabTimeout, match="did not finish in 1 s and were killed"):
        sync.deliver(spsc_producer, greedy_consumer, items=10, timeout=1.0)


def test_a_delivery_names_what_went_wrong():
    item = sync.item_code
    d = sync.Delivery(2, 2, 4, sent=[[item(0, 0), item(0, 1), item(0, 2)], [item(1, 0)]],
                      received=[[item(0, 1), item(0, 0), 7], [item(1, 0), item(1, 0)]],
                      seconds=0.1)
    assert d.missing == [item(0, 2)] and d.duplicated == [item(1, 0)] and d.unknown == [7]
    assert d.out_of_order == [(0, item(0, 1), item(0, 0))]
    assert not d.ok and "1 missing" in str(d)


@pytest.mark.parametrize("kwargs, message", [
    ({"producers": 0}, "producers must be a whole number of producers from 1"),
    ({"consumers": 17}, "consumers must be"),
    ({"items": -1}, "items must be"),
    ({"capacity": 0}, "capacity must be"),
    ({"timeout": 0}, "timeout must be"),
    ({"consumer_delay": -1}, "consumer_delay must be a number of seconds"),
])
def test_deliver_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sync.deliver(spsc_producer, spsc_consumer, **kwargs)


def test_deliver_needs_functions():
    with pytest.raises(TypeError, match="must be functions"):
        sync.deliver(None, spsc_consumer)


# --- occupancy -----------------------------------------------------------------------------


@pytest.mark.parametrize("producers, consumers, produce, consume", [
    (1, 1, 0.0, 0.001), (1, 1, 0.001, 0.0), (3, 2, 0.0, 0.0)])
def test_the_bounded_buffer_delivers_and_stays_within_its_capacity(producers, consumers,
                                                                   produce, consume):
    r = sync.bounded_buffer(producers, consumers, capacity=5, items=60, produce=produce,
                            consume=consume)
    assert r.delivered_ok
    assert r.occupancy and all(0 <= o <= 5 for o in r.occupancy)
    assert r.times == sorted(r.times)
    assert len(r.stalls) == producers and len(r.waits) == consumers
    assert 0 <= r.full_share <= 1 and 0 <= r.empty_share <= 1
    assert "all items exactly once, in order" in str(r)


def test_the_live_view_is_skipped_outside_a_notebook():
    assert sync.bounded_buffer(items=20, live=True).delivered_ok


@pytest.mark.parametrize("kwargs, message", [
    ({"produce": -0.1}, "produce must be a number of seconds from 0"),
    ({"consume": 2}, "consume must be"),
    ({"sample_every": 0}, "sample_every must be"),
    ({"items": 0}, "items must be"),
])
def test_bounded_buffer_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sync.bounded_buffer(**kwargs)


# --- deadlock --------------------------------------------------------------------------------


def test_locks_taken_in_opposite_orders_deadlock_and_the_timeout_catches_it():
    r = sync.deadlock(timeout=0.2)
    assert r.deadlocked
    gave_up = [e for e in r.events if e.what == "timed out"]
    assert gave_up and all(not r.finished[e.worker] for e in gave_up)
    firsts = [next(e.lock for e in r.events if e.worker == w and e.what == "acquired")
              for w in (0, 1)]
    assert firsts == ["A", "B"]
    assert "DEADLOCK, caught by the timeout" in str(r)


def test_locks_taken_in_the_same_order_never_deadlock():
    r = sync.deadlock(same_order=True, hold=0.02)
    assert not r.deadlocked and r.finished == [True, True]
    for w in (0, 1):
        taken = [e.lock for e in r.events if e.worker == w and e.what == "acquired"]
        assert taken == ["A", "B"]


def test_every_lock_is_released_in_the_end():
    for r in (sync.deadlock(timeout=0.1), sync.deadlock(same_order=True, hold=0.01)):
        for w in (0, 1):
            mine = [e for e in r.events if e.worker == w]
            for lock in "AB":
                taken = sum(e.what == "acquired" and e.lock == lock for e in mine)
                given = sum(e.what == "released" and e.lock == lock for e in mine)
                assert taken == given


def test_deadlock_refuses_a_zero_timeout():
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        sync.deadlock(timeout=0)


# --- a killed holder ----------------------------------------------------------------------------


def test_a_semaphore_held_by_a_killed_process_is_never_released():
    r = sync.killed_holder(timeout=0.2)
    assert r.holder_status.startswith("killed by SIGKILL")
    assert r.outcome == "timed out"
    if posix_ipc.SEMAPHORE_VALUE_SUPPORTED:
        assert r.value_after == 0


def test_a_robust_design_recovers_the_lock_from_a_dead_owner():
    r = sync.killed_holder(recover=True, timeout=0.2)
    assert r.outcome == "recovered the lock"
    assert any(f"pid {r.holder_pid}, no longer exists" in s for s in r.steps)


def test_an_flock_is_released_by_the_kernel_when_its_holder_dies():
    began = time.monotonic()
    r = sync.killed_holder(lock="flock", timeout=5.0)
    assert r.outcome == "got the lock" and r.value_after is None
    assert time.monotonic() - began < 30


def test_killed_holder_refuses_other_locks():
    with pytest.raises(ValueError, match="lock must be 'semaphore' or 'flock'"):
        sync.killed_holder(lock="mutex")


# --- plots ---------------------------------------------------------------------------------------


class _Word:
    """The first 8 bytes of a semaphore's file, mapped read-only: (value, waiters)."""

    def __init__(self, sem):
        from labkit import locks
        self.path = locks.semaphore_file(sem)
        with open(self.path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 8, prot=mmap.PROT_READ)

    def read(self):
        return struct.unpack("=II", self.map[:8])


def test_a_semaphore_is_a_word_in_shared_memory_that_acquire_and_release_change():
    from labkit import objects
    with objects.scope() as objs:
        sem = objs.semaphore(2, label="word")
        word = _Word(sem)
        assert word.read() == (2, 0)
        sem.acquire()
        sem.acquire()
        assert word.read() == (0, 0) and sem.value == 0
        sem.release()
        assert word.read() == (1, 0)
        word.map.close()


def _take_one(sem):
    sem.acquire()
    sem.release()
    return "got it"


def test_a_waiter_sleeps_in_futex_on_the_semaphores_word_and_says_so_in_it():
    from labkit import locks, objects, start
    from labkit.waiting import wait_until
    with objects.scope() as objs:
        sem = objs.semaphore(0, label="word")
        word = _Word(sem)
        with start(_take_one, sem, timeout=20, show=False) as child:
            blocked = wait_until(
                lambda: (b := locks.blocked_in(child.pid)).syscall == "futex" and b, 10,
                "the waiter never slept in futex")
            assert word.read() == (0, 1)
            assert blocked.mapped_from == word.path
            sem.release()
            assert child.wait(10).value == "got it"
        assert word.read() == (1, 0)
        word.map.close()


def test_the_semaphore_word_fails_clearly_where_the_layout_is_not_glibcs(monkeypatch):
    from labkit import locks, objects
    from labkit.errors import NotSupportedHere
    monkeypatch.setattr(locks.sys, "platform", "darwin")
    with objects.scope() as objs:
        sem = objs.semaphore(1, label="word")
        with pytest.raises(NotSupportedHere, match="macOS keeps them inside the kernel"):
            locks.semaphore_file(sem)


def test_blocked_in_says_a_vanished_process_is_gone():
    from labkit import locks, run
    from labkit.errors import LabError
    pid = run(os.getpid, show=False).value
    with pytest.raises(LabError, match=f"process {pid} does not exist"):
        locks.blocked_in(pid)


def test_blocked_in_says_clearly_when_the_kernel_hides_another_process_call(monkeypatch):
    import builtins

    from labkit import locks
    from labkit.errors import NotSupportedHere
    real_open = builtins.open

    def refusing(path, *args, **kwargs):  # as the kernel answers a non-dumpable process
        if str(path).endswith("/syscall"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    with pytest.raises(NotSupportedHere, match=r"does not let this process read /proc/1/sysc"):
        locks.blocked_in(1)


def test_the_plots_draw():
    r = sync.bounded_buffer(items=30, consume=0.001)
    assert sync.plot_occupancy(r).get_ylabel() == "items in the buffer"
    ax = sync.plot_ring([0, 5, 6, 0], head=1, tail=3)
    assert ax.get_title() == "The ring: 2 of 4 slots full"
    ax = sync.plot_lock_timeline(sync.deadlock(timeout=0.05))
    assert "deadlock" in ax.get_title()
    assert "no deadlock" in sync.plot_lock_timeline(sync.deadlock(True, hold=0.01)).get_title()
