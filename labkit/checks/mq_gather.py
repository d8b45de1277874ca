"""Checks for lesson 06's gather: results from workers through a multiprocessing.Queue.

The check hands the answer a function that notes, in shared memory the check
made before the call, every item computed, by which process, and whether
gather had returned; so a lost result, a duplicate or an early return is seen
by what happened, not by what the answer reports.
"""
from __future__ import annotations

import os
import time
from multiprocessing.sharedctypes import RawArray, RawValue
from typing import Any

from .. import checking
from ..checking import (
    Attempt,
    Exercise,
    expect,
    expect_clean,
    launch,
)
from .mq import GRACE, stop_stuck

# --- 06.gather ------------------------------------------------------------------------

GATHER = Exercise("06.gather", "Results from workers through a multiprocessing.Queue",
                  timeout=60)


class _Noted:
    """The ``fn`` a check hands gather: computes, and notes which process did each item.

    Items are 0 .. n-1; the notes live in shared memory inherited through fork, so
    the check sees what the workers did while the answer is still running.
    """

    def __init__(self, kind: str, n: int) -> None:
        self.kind = kind
        self.calls = RawArray("q", n)    # how many times each item was computed
        self.pids = RawArray("q", n)     # the process that computed it (last)
        self.returned = RawValue("q", 0)  # set once gather has returned

    def note_return(self) -> None:
        self.returned.value = 1

    def __call__(self, x: int) -> Any:
        if self.kind == "pid":
            time.sleep(0.01)      # long enough that one worker cannot take every item
            value: Any = os.getpid()
        elif self.kind == "big":
            value = _big(x)
        else:
            value = x * x
        self.pids[x] = os.getpid()
        self.calls[x] += 1
        return value

    def want(self, x: int) -> Any:
        return _big(x) if self.kind == "big" else x * x


def _big(x: int) -> bytes:
    return bytes([x % 256]) * 200_000


def _gather_and_note(answer: Any, fn: _Noted, items: list[int], workers: int) -> Any:
    """Runs as the answer's process: gather, then a note that it returned.

    The process itself may stay a while longer, handing a large result to the check.
    """
    got = answer(fn, items, workers)
    fn.note_return()
    return got


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie nobody has waited for yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _gather(answer: Any, kind: str, n: int, workers: int) -> tuple[Attempt, _Noted]:
    """Run gather on items 0 .. n-1, watching the workers; a stuck answer is stopped
    as soon as it is clear what it waits for, and the check says what that is."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    fn = _Noted(kind, n)
    items = list(range(n))
    with launch(_gather_and_note, answer, fn, items, workers,
                timeout=3 * checking.CALL_TIMEOUT) as running:
        since, seen = time.monotonic(), -1
        while running.running and not fn.returned.value:
            done = sum(1 for c in fn.calls if c)
            if done != seen:
                since, seen = time.monotonic(), done
            stalled = time.monotonic() - since
            pids = {p for p in fn.pids if p}
            if done and stalled > GRACE and all(map(_ended, pids)):
                # results lost hang every check; items given to no worker only some
                stop_stuck(running, _gather_stuck(done, n), done == n)
            if stalled > 2 * GRACE:
                stop_stuck(running, _gather_stalled(done, n), done < n)
            time.sleep(0.01)
        return running.finish(), fn


def _gather_stalled(done: int, n: int) -> str:
    late = f"{2 * GRACE:g} s"
    if done == n:
        return (f"every item had been computed {late} earlier, but the workers had not ended "
                "and gather was still waiting: nobody was reading their results, so they "
                "could not finish writing them into the queue's pipe. Read every result "
                "before you wait for the workers")
    if done == 0:
        return (f"no item had been computed after {late}, and gather was still running: "
                "start the workers, and have each call fn on its share of the items")
    return (f"only {done} of {n} items had been computed, and nothing more happened for "
            f"{late}: gather was stopped")


def _gather_stuck(done: int, n: int) -> str:
    if done < n:
        return (f"only {done} of {n} items were computed and every worker had ended, but "
                "gather was still waiting for the rest: some items were given to no worker")
    return (f"every item was computed and every worker had ended {GRACE:g} s earlier, but "
            "gather was still waiting for results: they were lost. A worker's puts are "
            "written by the queue's feeder thread, and os._exit (how labkit's workers end) "
            "kills that thread before it has written the last ones")


def _gathered(attempt: Attempt, fn: _Noted) -> dict:
    got = attempt.value
    n = len(fn.calls)
    expect(isinstance(got, dict), f"gather returned {type(got).__name__} {got!r:.60}; "
                                  "expected a dict {item: result}")
    twice = sum(c - 1 for c in fn.calls if c > 1)
    expect(not twice, f"fn was called {sum(fn.calls)} times for {n} items: each item must be "
                      "computed once, by one worker")
    missing = [i for i in range(n) if i not in got]
    expect(not missing, f"{len(missing)} of {n} results are missing (the first: item "
                        f"{missing[0] if missing else ''}){_early(fn, missing)}")
    return got


def _early(fn: _Noted, missing: list[int]) -> str:
    if missing and all(fn.calls[i] for i in missing):
        return (": they were computed, but gather returned before it had received them "
                "(get exactly one result per item, however long they take)")
    return ""


_QUEUE_TRAPS = ("Two traps of multiprocessing.Queue: a put returns before the data is "
                "written (a feeder thread writes it later, and os._exit kills that thread), "
                "and the data goes through a pipe of limited size, which blocks a writer "
                "until someone reads.")


@GATHER.check("every result arrives",
              hint="Each worker must make sure its last results have really been written "
                   "before it ends; and the parent gets exactly one result per item.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "square", 20, 3)
    got = _gathered(attempt, fn)
    expect(got == {i: i * i for i in range(20)}, "some results are wrong: expected "
                                                 "{item: fn(item)}")


@GATHER.check("the work is shared by the workers",
              hint="Worker i takes every workers-th item starting at i; fn runs in the "
                   "workers, never in the process that called gather.",
              concept="Workers are separate processes: the work is split up front, each "
                      "computes its share, and only the results travel back.")
def _(answer):
    attempt, fn = _gather(answer, "pid", 9, 3)
    _gathered(attempt, fn)
    pids = set(fn.pids)
    expect(attempt.result.pid not in pids, "fn ran in the process that called gather, not "
                                           "in the workers")
    expect(len(pids) == 3, f"the 9 items were computed by {len(pids)} process(es); expected "
                           "3 workers sharing them")


@GATHER.check("results bigger than a pipe holds arrive too",
              hint="Get every result before you wait for the workers: a worker cannot "
                   "finish writing 200 KB into a 64 KiB pipe until someone reads.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "big", 6, 2)
    got = _gathered(attempt, fn)
    wrong = [i for i in range(6) if got[i] != fn.want(i)]
    expect(not wrong, f"the results of items {wrong} were wrong")


@GATHER.check("one worker and many items: the last one arrives",
              hint="A worker's last results may still be on their way when it ends: make "
                   "sure they have been written first.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "square", 50, 1)
    _gathered(attempt, fn)


@GATHER.check("no zombie and no open descriptor is left behind",
              hint="Wait for the workers after reading their results, and close the queue in "
                   "the parent too.",
              concept="Every process you start is waited for, and every descriptor you open "
                      "(a queue holds a pipe) is closed, in the process that opened it.")
def _(answer):
    attempt, fn = _gather(answer, "square", 6, 2)
    _gathered(attempt, fn)
    expect_clean(attempt)
