"""Lesson 05's check helpers. Wrong answers are in tests/mutants/05_synchronization.py,
the solutions and untouched exercises in tests/test_checks.py; here is what the checks rely
on: a correctly locked counter under the watch, and the bank's accounts and locks, which
record what a worker does with them."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import load_answers

from labkit.checks._shared import observed
from labkit.checks.sync import _Accounts, _Lock
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
