"""Checks for lesson 01's debugging exercise on SIGCHLD's disposition (01.fix_exit_codes).

The broken program sets SIGCHLD to ``SIG_IGN`` so that no child is ever left a
zombie; on Linux the kernel then reaps each child the moment it ends and drops
its status, so every wait fails and ``subprocess`` reports 0. Whether SIGCHLD
was ignored is not guessed from the codes: ``os.waitpid`` is wrapped in the
answer's own process, and each call notes the disposition SIGCHLD had at that
moment. A separate module because ``signals.py`` is near its size limit.
"""
from __future__ import annotations

import os
import signal

from ..checking import Attempt, Exercise, call, expect, expect_clean
from ._shared import expect_function

FIX_EXIT_CODES = Exercise("01.fix_exit_codes", "Every command succeeds", kind="debug")


def _previous(signum: int, frame: object) -> None:
    """The SIGCHLD handler a caller had before the answer ran: it does nothing."""


def _watched(answer, commands: list[list[str]], with_previous: bool
             ) -> tuple[object, bool, str]:
    """In the answer's process: its value, whether SIGCHLD was ignored during any wait, and
    what SIGCHLD's disposition was afterwards ("previous", "SIG_IGN", "SIG_DFL", "other")."""
    if with_previous:
        signal.signal(signal.SIGCHLD, _previous)
    ignored = []
    real = os.waitpid

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        ignored.append(signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN)
        return real(pid, options)

    os.waitpid = waitpid
    try:
        value = answer(commands)
    finally:
        os.waitpid = real
    after = signal.getsignal(signal.SIGCHLD)
    shown = ("previous" if after is _previous else "SIG_IGN" if after == signal.SIG_IGN else
             "SIG_DFL" if after == signal.SIG_DFL else "other")
    return value, any(ignored), shown


def _run(answer, commands: list[list[str]], with_previous: bool = False
         ) -> tuple[Attempt, object, bool, str]:
    expect_function(answer)
    attempt = call(_watched, answer, commands, with_previous)
    value, ignored, after = attempt.value
    return attempt, value, ignored, after


def _expect_codes(answer, commands: list[list[str]], want: list[int]) -> None:
    _, got, ignored, _ = _run(answer, commands)
    why = ""
    if ignored:
        why = (": while your process waited for its children, SIGCHLD was set to SIG_IGN. "
               "Then the kernel reaps each child itself the moment it ends and throws its "
               "status away, so the wait finds no child, and subprocess reports 0")
    elif isinstance(got, list) and any(isinstance(c, int) and c > 255 for c in got):
        why = (": those look like raw wait statuses (the exit code sits in the second byte); "
               "hand on the codes subprocess decodes")
    expect(got == want, f"exit_codes({commands}) returned {got!r}, expected {want}{why}")


_LOST = ("Ignoring SIGCHLD is not the same as its default action: on Linux it asks the "
         "kernel to reap children at once, so their exit statuses are lost.")


@FIX_EXIT_CODES.check("true, false and exit 3 give 0, 1 and 3, in order",
                      hint="The lesson says SIGCHLD is ignored by default. Is asking for "
                           "SIG_IGN the same as leaving the default? See the NOTES of "
                           "`man 2 wait`.",
                      concept=_LOST)
def _(answer):
    _expect_codes(answer, [["true"], ["false"], ["sh", "-c", "exit 3"]], [0, 1, 3])


@FIX_EXIT_CODES.check("a command killed by a signal gives minus the signal's number",
                      hint="subprocess reports a death by a signal as a negative code; your "
                           "function hands on what it reports.",
                      concept=_LOST)
def _(answer):
    _expect_codes(answer, [["sh", "-c", "kill -KILL $$"], ["true"]],  # no handler can stop it
                  [-signal.SIGKILL, 0])


@FIX_EXIT_CODES.check("the caller's SIGCHLD handler is left in place",
                      hint="A function that runs commands has no business changing how its "
                           "whole process treats SIGCHLD; if it must, it puts the old "
                           "handler back.",
                      concept="A disposition belongs to the process, not to the function "
                              "that set it: it stays after the function returns.")
def _(answer):
    _, got, ignored, after = _run(answer, [["false"]], with_previous=True)
    expect(not ignored, "SIGCHLD was set to SIG_IGN while your process waited: the kernel "
                        "reaped the child and dropped its status")
    expect(got == [1], f"exit_codes([['false']]) returned {got!r}, expected [1]")
    expect(after == "previous", f"the caller had a SIGCHLD handler of its own; after your "
                                f"function returned, SIGCHLD was set to {after} instead")


@FIX_EXIT_CODES.check("no zombie and nothing left open",
                      hint="Every command started is waited for.",
                      concept="A child nobody waits for stays a zombie until its parent ends.")
def _(answer):
    attempt, got, _, _ = _run(answer, [["true"], ["false"], ["true"]])
    expect(got == [0, 1, 0], "the function must work before its cleanup counts: it returned "
                             f"{got!r}, expected [0, 1, 0]")
    expect_clean(attempt)
