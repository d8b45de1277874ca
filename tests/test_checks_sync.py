"""Lesson 05's check helpers. Wrong answers are in tests/mutants/05_synchronization.py,
the solutions and untouched exercises in tests/test_checks.py; here is what the checks rely
on: a correctly locked counter under the watch, and the bank's accounts and locks, which
record what a worker does with them."""
from __future__ import annotations

import mmap
import os

import numpy as np
import pytest
from helpers import load_answers

from labkit import objects
from labkit.checks._shared import observed
from labkit.checks.sync import _Accounts, _Lock
from labkit.checks.sync_turns import _shared_mappings, _watched
from labkit.errors import Deadlock, Unguarded
from labkit.processes import run

SOLVED = load_answers("solutions/05_synchronization.ipynb")


@pytest.mark.parametrize("name", ["locked_count", "batched_count"])
def test_a_correctly_locked_counter_stays_exact_under_the_watch(name):
    for workers in (2, 4):
        seen = run(observed, SOLVED[name], workers, 3_000, timeout=30, show=False).value
        assert seen.value == workers * 3_000 and seen.forks == workers
        per_worker = 3_000 if name == "locked_count" else 1
        assert seen.stores == (per_worker,) * workers


class _Sem:
    """A stand-in for a posix_ipc semaphore that is always free."""

    def acquire(self, timeout=None):
        return None

    def release(self):
        return None


def test_the_accounts_refuse_a_read_or_write_without_the_lock():
    held: list[int] = []
    accounts = _Accounts(np.array([10, 20], dtype=np.int64), held)
    with pytest.raises(Unguarded, match="read account 1 while not holding its lock"):
        accounts[1]
    held.append(1)
    accounts[1] += 5
    with pytest.raises(Unguarded, match="changed account 0 while not holding its lock"):
        accounts[0] = 3
    assert repr(accounts) == "<accounts [10, 25]>"


def test_a_lock_taken_twice_by_one_worker_is_reported_at_once():
    held: list[int] = []
    log: list[tuple[str, int]] = []
    lock = _Lock(0, _Sem(), held, log, patience=5.0)
    lock.acquire()
    with pytest.raises(Deadlock, match="never released"):
        lock.acquire()
    lock.release()
    assert log == [("acquire", 0), ("release", 0)] and held == []


# --- 05.deposits and 05.take_turns ------------------------------------------------------------

def test_the_fixed_deposits_stay_exact_under_the_watch_with_zeros_first():
    amounts = [0, 0, 0, 0] + list(range(1, 21))
    seen = run(observed, SOLVED["deposit_all"], 4, amounts, timeout=30, show=False).value
    assert seen.value == sum(amounts) and seen.forks == 4 and sum(seen.stores) == 20


def _unsynchronized_turns(rounds, turn):
    """Both processes take their turns at once: no semaphore at all."""
    pid = os.fork()
    if pid == 0:
        try:
            for k in range(1, rounds, 2):
                turn(k)
        finally:
            os._exit(0)
    for k in range(0, rounds, 2):
        turn(k)
    os.waitpid(pid, 0)
    return [0] * rounds


def test_the_turns_of_the_solution_are_seen_alternating_with_two_semaphores_and_a_mapping():
    turns = run(_watched, SOLVED["take_turns"], 6, timeout=30, show=False).value
    assert turns.value == turns.want and turns.strays == 0
    assert [row[0] for row in turns.turns] == list(range(6))
    parent_turns = [row for row in turns.turns if row[1] == turns.parent]
    child_turns = [row for row in turns.turns if row[1] != turns.parent]
    assert [row[0] for row in parent_turns] == [0, 2, 4]
    assert {row[2] for row in child_turns} == {turns.parent}
    assert all(row[3] == 2 and row[4] >= 1 and row[5] == 0 for row in turns.turns)


def test_turns_taken_without_waiting_are_seen_overlapping_in_every_run():
    for _ in range(3):
        turns = run(_watched, _unsynchronized_turns, 4, timeout=30, show=False).value
        assert any(row[5] for row in turns.turns), turns.turns


def test_an_open_semaphore_is_seen_until_it_is_unlinked_and_a_mapping_apart_from_it():
    sems, maps = _shared_mappings()
    with objects.scope() as objs:
        objs.semaphore(1)                  # sem_open maps /dev/shm/sem.NAME into this process
        now_sems, now_maps = _shared_mappings()
        assert len(now_sems - sems) == 1 and now_maps == maps
        with mmap.mmap(-1, 4096):
            assert len(_shared_mappings()[1] - maps) == 1
    assert _shared_mappings()[0] == sems   # unlinked (and closed): no longer there
