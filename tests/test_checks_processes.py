"""Lesson 00's check helpers (the wrong answers are mutants in tests/mutants/00_processes.py;
tests/test_checks.py covers the solutions and the untouched exercises)."""
from __future__ import annotations

import os
import signal

import pytest

from labkit.checks import processes as checks
from labkit.processes import run


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGTSTP])
def test_the_stopped_status_is_that_of_a_real_stopped_program(sig):
    status = run(checks._stopped_status, sig, show=False).value
    assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == sig
    assert checks._description(status) == f"stopped by {sig.name}"


def test_the_core_dump_status_has_the_kernel_layout():
    status = checks._core_dumped_status(signal.SIGSEGV)
    assert os.WIFSIGNALED(status) and os.WCOREDUMP(status) and not os.WIFEXITED(status)
    assert checks._description(status) == "killed by SIGSEGV (core dumped)"


def test_a_status_with_exit_code_and_signal_one_is_described_apart():
    assert checks._description(1 << 8) == "exited with code 1"
    assert checks._description(signal.SIGHUP) == "killed by SIGHUP"


def test_forks_are_recorded_with_the_pids_the_parent_got():
    def two_children():
        pids = [os.fork() or os._exit(0) for _ in range(2)]
        for pid in pids:
            os.waitpid(pid, 0)
        return pids

    value, forked = run(checks._with_forks_recorded, two_children, show=False).value
    assert value == forked and len(set(forked)) == 2


def test_a_raw_status_is_named_only_when_it_is_one():
    assert "raw wait status" in checks._raw(7 << 8, 7)
    assert checks._raw(7, 7) == checks._raw(0, 0) == checks._raw("x", 1) == ""


def test_mixed_values_are_ordered_without_raising():
    assert checks._in_order([10, 2, "a", None]) == [2, 10, "a", None]


def test_a_counted_text_has_words_only_in_a_child_of_the_answer():
    from labkit.checking import call

    def count_here_and_in_a_child(text):
        pid = os.fork()
        if pid == 0:
            os._exit(len(text.split()))
        return len(text.split()), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    assert call(count_here_and_in_a_child, checks._CountedWhere("x")).value == (0, 7)
