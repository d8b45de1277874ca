"""Lesson 00's checks: plausible wrong answers fail with a message that points at the
mistake (tests/test_checks.py covers the solutions and the untouched exercises)."""
from __future__ import annotations

import os

from helpers import failures as _failures


def test_running_fn_in_the_parent_is_caught():
    def in_parent(fn):
        return fn()

    failed = _failures("00.exit_code", in_parent)
    assert "fn ran in the process that called exit_code_of" in failed[
        "the function runs in a child, not in your process"]


def test_a_child_that_escapes_on_an_exception_is_caught():
    def no_finally(fn):
        pid = os.fork()
        if pid == 0:
            os._exit(fn())
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    failed = _failures("00.exit_code", no_finally)
    assert list(failed) == ["a function that raises gives exit code 1, and its child still ends"]
    assert "returned from your function instead of ending" in next(iter(failed.values()))


def test_forgetting_waitpid_leaves_a_zombie_that_is_caught():
    def no_wait(fn):
        r, w = os.pipe()
        if os.fork() == 0:
            os.write(w, bytes([fn()]))
            os._exit(0)
        code = os.read(r, 1)[0]
        os.close(r)
        os.close(w)
        return code

    failed = _failures("00.exit_code", no_wait)
    # the child may still be exiting or already a zombie: either way nobody waited for it
    assert "nobody waited for it" in failed["no zombie and no open descriptor is left behind"]


def test_decoding_signals_by_number_is_caught():
    def numbers(status):
        if os.WIFEXITED(status):
            return f"exited with code {os.WEXITSTATUS(status)}"
        return f"killed by {os.WTERMSIG(status)}"

    failed = _failures("00.describe_status", numbers)
    assert "expected 'killed by SIGKILL', got 'killed by 9'" in failed["deaths by a signal"]


def test_shifting_without_looking_at_the_signal_is_caught():
    def shift_only(status):
        return f"exited with code {status >> 8}"

    failed = _failures("00.describe_status", shift_only)
    assert set(failed) == {"deaths by a signal", "exit code 1 and signal 1 are told apart"}


def test_waiting_only_for_the_last_child_is_caught():
    def last_only(n):
        pids = []
        for i in range(n):
            pid = os.fork()
            if pid == 0:
                os._exit(i)
            pids.append(pid)
        codes = {pid: i for i, pid in enumerate(pids)}
        if pids:
            os.waitpid(pids[-1], 0)
        return codes

    failed = _failures("00.reap_all", last_only)
    assert list(failed) == ["twelve children, all reaped: no zombie, no stray child"]
    assert failed["twelve children, all reaped: no zombie, no stray child"].count(
        "nobody waited for it") == 11


def test_exec_without_fork_is_caught():
    def no_fork(argv):
        os.execvp(argv[0], argv)

    failed = _failures("00.run_program", no_fork)
    assert "before your function returned" in failed["true gives 0 and false gives 1"]


def test_a_failed_exec_that_escapes_is_caught():
    def no_127(argv):
        pid = os.fork()
        if pid == 0:
            os.execvp(argv[0], argv)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    failed = _failures("00.run_program", no_127)
    assert list(failed) == ["a missing program gives 127 and its child still ends"]


def test_a_killed_child_reported_as_an_exit_code_is_caught():
    def sign_lost(status):
        return f"exited with code {abs(os.waitstatus_to_exitcode(status))}"

    assert "deaths by a signal" in _failures("00.describe_status", sign_lost)
