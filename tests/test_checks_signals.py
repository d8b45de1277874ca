"""Lesson 01's check helpers (the wrong answers are mutants in tests/mutants/01_signals.py;
tests/test_checks.py covers the solutions and the untouched exercises)."""
from __future__ import annotations

import os
import resource
import signal
import subprocess

from labkit.checks import signals as checks
from labkit.checks._shared import first_difference
from labkit.checks.signals_sigchld import _watched
from labkit.processes import run


def test_a_miscount_is_explained_by_its_likely_cause():
    assert "SIGTERM was counted too" in checks._miscount(6, 5)
    assert "stopped waiting before SIGTERM came" in checks._miscount(1, 5)
    assert checks._miscount(5, 5) == checks._miscount("5", 5) == ""


def test_the_first_difference_of_two_outputs_is_named():
    assert first_difference(["a", "x"], ["a", "b"]) == "line 2 is 'x', expected 'b'"
    assert "stopped after 1 lines; line 2 should be 'b'" in first_difference(
        ["a"], ["a", "b"])
    assert "1 lines too many, from 'c' on" in first_difference(["a", "b", "c"],
                                                                       ["a", "b"])
    assert first_difference(["a"], ["a"]) == "they are the same"


def _cpu_of_burn() -> float:
    checks._burn()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_the_yardstick_child_really_computes_for_its_cpu_time():
    assert run(_cpu_of_burn, show=False).value >= checks._BURN


def _waits_in_both_places(tasks):
    def on_chld(signum, frame):
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass

    old = signal.signal(signal.SIGCHLD, on_chld)
    try:
        on_chld(signal.SIGCHLD, None)          # the handler's own code, called by hand
        try:
            os.waitpid(-1, os.WNOHANG)         # and the main code's
        except ChildProcessError:
            pass
    finally:
        signal.signal(signal.SIGCHLD, old)
    return {}


def test_wait_calls_are_counted_by_where_they_come_from():
    value, where = run(checks._reaped_where, _waits_in_both_places, [], show=False).value
    assert value == {} and where == {"handler": 1, "elsewhere": 1}


def _ignores_sigchld(commands):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    return [subprocess.run(c, check=False).returncode for c in commands]


def test_sigchld_ignored_during_a_wait_is_seen_and_the_status_is_lost():
    value, ignored, after = run(_watched, _ignores_sigchld, [["false"]], True,
                                show=False).value
    assert (value, ignored, after) == ([0], True, "SIG_IGN")


def test_a_caller_handler_left_alone_is_reported_as_the_previous_one():
    def runs(commands):
        return [subprocess.run(c, check=False).returncode for c in commands]

    value, ignored, after = run(_watched, runs, [["false"]], True, show=False).value
    assert (value, ignored, after) == ([1], False, "previous")
