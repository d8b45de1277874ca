"""Checks for lesson 05's debugging exercise 05.deposits: workers add amounts to a shared
total under a semaphore, and the given program never finishes once an amount is 0.

The total is the watched counter of :mod:`._shared` (a worker's first store waits until
the others have loaded it or sleep on the lock), so a "fix" that lets two workers into the
critical section at once loses a deposit in every run. A deadlock ends at the call's time
limit, or at the workers' own, and is reported as a deadlock, never as a hang.
"""
from __future__ import annotations

from typing import Any

from ..checking import CheckTimedOut, Exercise, expect
from ._shared import Seen, expect_nothing_left, expect_stores, guarded_call, observed, whole_number

DEPOSITS = Exercise("05.deposits", "Deposits that never finish", timeout=60.0,
                    kind="debug")

_WITH_ZEROS = [5, 0, 7, 1, 0, 2, 3, 9, 0, 4, 6, 8]
_ZEROS_FIRST = [0, 0, 0, 0] + list(range(1, 21))  # every one of 4 workers starts with a 0


def _deposited(answer: Any, workers: int, amounts: list[int]) -> tuple[int, Seen, Any]:
    """Run ``deposit_all(workers, amounts)`` watched; a deadlock becomes a failed check."""
    call = f"deposit_all({workers}, {amounts})"
    zeros = amounts.count(0)
    stuck = (f"{call} never finished: its workers were still waiting for the lock when they "
             "were stopped, a deadlock" + (f" ({zeros} of the amounts are 0). A worker that "
                                           "took the lock must give it back on every path "
                                           "through its loop" if zeros else ""))
    try:
        attempt = guarded_call(observed, answer, workers, amounts)
    except CheckTimedOut:
        raise CheckTimedOut(stuck) from None
    if attempt.result.error_type == "LabTimeout":  # the workers' own time limit: a deadlock too
        raise CheckTimedOut(stuck)
    seen = attempt.value
    return whole_number((seen.value, seen.shown), "deposit_all"), seen, attempt


def _expect_total(answer: Any, workers: int, amounts: list[int]) -> tuple[Seen, Any]:
    got, seen, attempt = _deposited(answer, workers, amounts)
    call, want = f"deposit_all({workers}, ...)", sum(amounts)
    expect(got <= want, f"{call} returned {got}, more than the {want} deposited: an amount "
                        "was added twice")
    expect_stores(seen, call, workers, None)
    expect(got == want, f"{call} returned {got} instead of {want}: {want - got} was lost. The "
                        "check let another worker load the total while one was between its "
                        "load and its store; that loses a deposit only if two workers can be "
                        "inside the lock at once (was the lock given back twice?)")
    return seen, attempt


@DEPOSITS.check("one worker, amounts with some 0s: it finishes, with the right total",
                hint="Even a single worker, with no one else to wait for, gets stuck. Where "
                     "does it wait, and for whom?")
def _(answer):
    _expect_total(answer, 1, _WITH_ZEROS)


@DEPOSITS.check("amounts with some 0s: the workers finish, with the right total",
                hint="Follow one worker through its loop for an amount of 0, one line at a "
                     "time: what does it hold when it goes on to the next amount?",
                concept="A semaphore used as a lock is only a number: it knows no owner, so "
                        "nothing gives it back when the code that took it leaves by another "
                        "way (continue, return, an exception). A with block, or try/finally, "
                        "releases it on every path.")
def _(answer):
    _expect_total(answer, 2, _WITH_ZEROS)


@DEPOSITS.check("4 workers, each starting with a 0: no deposit lost",
                hint="After your fix, can two workers ever be between acquire and release at "
                     "the same time?",
                concept="Releasing a lock you do not hold raises the semaphore to 2: from then "
                        "on two workers get in together and their updates overwrite each "
                        "other.")
def _(answer):
    _expect_total(answer, 4, _ZEROS_FIRST)


@DEPOSITS.check("nothing is left behind, and the total is right",
                hint="Keep the given program's with blocks: they end the semaphore and the "
                     "segment.")
def _(answer):
    seen, attempt = _expect_total(answer, 2, _WITH_ZEROS)
    expect_nothing_left(seen, attempt, "deposit_all")
