"""Checks for lesson 06's debugging exercise 06.squares: workers started with
multiprocessing send their results back through one Queue, and the given program never
finishes once the results are large.

Every check sends results far bigger than a pipe holds (64 KiB), so a program whose
workers cannot end before their data is read is stopped at the call's time limit, and the
failure says it was a deadlock. The squares are compared in the answer's own process; only
the verdict, as plain data, comes back.
"""
from __future__ import annotations

from typing import Any

from ..checking import CheckTimedOut, Exercise, call, expect, expect_clean
from ._shared import expect_function, plain

SQUARES = Exercise("06.squares", "Squares that come back only when there are few",
                   timeout=60.0, kind="debug")


def _compared(answer: Any, workers: int, n: int) -> tuple[str, int, str]:
    """Run in the answer's process: ("ok", n, ""), or what is wrong and where."""
    got = answer(workers, n)
    if not isinstance(got, list):
        return "type", 0, plain(got)[1]
    if len(got) != n:
        return "length", len(got), ""
    for k, value in enumerate(got):
        if value != k * k:
            return "value", k, repr(value)[:40]
    return "ok", n, ""


def _squares(answer: Any, workers: int, n: int) -> Any:
    """Call ``squares(workers, n)`` and fail unless it returned every square, in order."""
    expect_function(answer)
    what = f"all_squares({workers}, {n:_})"
    try:
        attempt = call(_compared, answer, workers, n)
    except CheckTimedOut:
        raise CheckTimedOut(
            f"{what} never finished and was stopped: the parent and its workers were all "
            "still waiting for each other (a deadlock). Each worker here sends back a list of "
            "hundreds of kilobytes, more than the queue's pipe holds at once; small results "
            "come back fine. Where does a worker's data wait until someone reads it, and when "
            "can that worker end?") from None
    kind, k, shown = attempt.value
    expect(kind != "type", f"{what} returned {shown}; expected a list of the {n:_} squares")
    expect(kind != "length", f"{what} returned {k:_} numbers; expected {n:_}, one square for "
                             "each number below n")
    expect(kind != "value", f"{what}[{k}] is {shown}, expected {k * k}: the squares must be in "
                            "order; put each worker's part back where its numbers belong "
                            "(worker i computed the numbers i, i + workers, ...), whatever "
                            "order the parts arrive in")
    return attempt


@SQUARES.check("3 workers, 200,000 numbers: every square, in order, and no deadlock",
               hint="Run it with growing n. For which n does it stop coming back, and what is "
                    "each process waiting for then?",
               concept="A multiprocessing Queue is a pipe plus a thread in the sender that "
                       "feeds it. A process that has put data on a queue waits, before it "
                       "exits, until that thread has written all of it into the pipe, which "
                       "holds 64 KiB: so it cannot end while nobody reads.")
def _(answer):
    _squares(answer, 3, 200_000)


@SQUARES.check("1 worker, 100,000 numbers: every square, and no deadlock",
               hint="With a single worker there is no other process to wait for; what is "
                    "left is the parent and that one worker.")
def _(answer):
    _squares(answer, 1, 100_000)


@SQUARES.check("every worker is reaped and nothing is left open",
               hint="Changing the order of the steps is enough: no step of the given program "
                    "needs to go.",
               concept="A child that has ended stays a zombie, with its pipes open in the "
                       "parent, until the parent waits for it (join).")
def _(answer):
    expect_clean(_squares(answer, 3, 200_000))
