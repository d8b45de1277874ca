"""Lesson 01's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers fail with a message that points at the mistake."""
from __future__ import annotations

import os
import signal
import sys
import time

from helpers import failures as _failures
from helpers import load_answers


SOLVED = load_answers("solutions/01_signals.ipynb")



# --- 01.count_usr1 --------------------------------------------------------------------


def test_forgetting_the_sigterm_handler_is_caught():
    def no_term():
        count = 0

        def on_usr1(signum, frame):
            nonlocal count
            count += 1

        signal.signal(signal.SIGUSR1, on_usr1)
        while True:
            signal.pause()

    failed = _failures("01.count_usr1", no_term)
    assert len(failed) == 4
    assert "no handler for SIGTERM" in failed["SIGTERM alone: returns 0 and the process survives"] \
        or "not installed a handler for SIGTERM" in failed[
            "SIGTERM alone: returns 0 and the process survives"]


def test_returning_after_the_first_signal_is_caught():
    def one_pause():
        count = 0

        def on_signal(signum, frame):
            nonlocal count
            count += signum == signal.SIGUSR1

        signal.signal(signal.SIGUSR1, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        signal.pause()
        return count

    failed = _failures("01.count_usr1", one_pause)
    assert "returned 1, expected 5" in failed[
        "five SIGUSR1, one at a time, then SIGTERM: returns 5"]


def test_leaving_the_handlers_installed_is_caught():
    def no_restore():
        count, done = 0, False

        def on_usr1(signum, frame):
            nonlocal count
            count += 1

        def on_term(signum, frame):
            nonlocal done
            done = True

        signal.signal(signal.SIGUSR1, on_usr1)
        signal.signal(signal.SIGTERM, on_term)
        while not done:
            signal.pause()
        return count

    failed = _failures("01.count_usr1", no_restore)
    assert list(failed) == ["the previous handlers of SIGUSR1 and SIGTERM are back afterwards"]
    assert "restore the handlers you replaced" in next(iter(failed.values()))


def test_waiting_in_a_busy_loop_is_caught():
    def spins():
        done = False

        def on_term(signum, frame):
            nonlocal done
            done = True

        signal.signal(signal.SIGUSR1, lambda *_: None)
        signal.signal(signal.SIGTERM, on_term)
        while not done:
            pass
        return 0

    failed = _failures("01.count_usr1", spins)
    assert "instead of waiting" in failed["SIGTERM alone: returns 0 and the process survives"]


# --- 01.graceful_jobs -----------------------------------------------------------------


def test_a_handler_that_quits_at_once_is_caught():
    def quits(jobs, pidfile):
        def on_term(signum, frame):
            os.remove(pidfile)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        results = [job() for job in jobs]
        os.remove(pidfile)
        return results

    failed = _failures("01.graceful_jobs", quits)
    assert "never returned: its process exited with code 0" in failed[
        "SIGTERM in the middle of a job: that job finishes, no later job starts"]


def test_no_sigterm_handler_at_all_is_caught():
    def plain(jobs, pidfile):
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        try:
            return [job() for job in jobs]
        finally:
            os.remove(pidfile)

    failed = _failures("01.graceful_jobs", plain)
    message = failed["SIGTERM in the middle of a job: that job finishes, no later job starts"]
    assert "killed by SIGTERM" in message and "no handler for SIGTERM" in message


def test_keeping_the_pid_file_after_sigterm_is_caught():
    def keeps_file(jobs, pidfile):
        stop = False

        def on_term(signum, frame):
            nonlocal stop
            stop = True

        old = signal.signal(signal.SIGTERM, on_term)
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        results = []
        for job in jobs:
            if stop:
                break
            results.append(job())
        else:
            os.remove(pidfile)     # only when every job ran
        signal.signal(signal.SIGTERM, old)
        return results

    failed = _failures("01.graceful_jobs", keeps_file)
    assert set(failed) == {
        "SIGTERM in the middle of a job: that job finishes, no later job starts",
        "SIGTERM from another process: cleans up and returns what is done"}
    assert all("pid file was not removed" in m for m in failed.values())


# --- 01.call_with_timeout -------------------------------------------------------------


def _with_alarm(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(seconds))          # whole seconds only: 0.3 becomes 0, which cancels
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_whole_second_alarms_are_caught():
    failed = _failures("01.call_with_timeout", _with_alarm)
    assert "a limit rounded down to 0 s cancels the alarm" in failed[
        "fractions of a second work, and a busy loop is interrupted too"]


def test_a_timer_left_armed_is_caught():
    def leaves_timer(fn, seconds):
        def on_alarm(signum, frame):
            raise TimeoutError()

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.signal(signal.SIGALRM, old)

    failed = _failures("01.call_with_timeout", leaves_timer)
    assert "a timer was still armed" in failed["no timer is left running afterwards"]


def test_cancelling_a_timer_that_was_already_running_is_caught():
    def forgets_old_timer(fn, seconds):
        def on_alarm(signum, frame):
            raise TimeoutError()

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    failed = _failures("01.call_with_timeout", forgets_old_timer)
    assert list(failed) == ["a timer that was already running goes on running"]
    assert "0.00 s left" in failed["a timer that was already running goes on running"]


def test_not_restoring_the_alarm_handler_is_caught():
    def keeps_handler(fn, seconds):
        def on_alarm(signum, frame):
            raise TimeoutError()

        signal.signal(signal.SIGALRM, on_alarm)
        old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, old_delay, old_interval)

    failed = _failures("01.call_with_timeout", keeps_handler)
    assert "was not restored" in failed[
        "the previous SIGALRM handler is back, after a value and after a timeout"]


# --- 01.reaper ------------------------------------------------------------------------


def test_reaping_one_child_per_signal_is_caught():
    def one_per_signal(tasks):
        codes = {}

        def on_chld(signum, frame):
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                codes[pid] = os.waitstatus_to_exitcode(status)

        old = signal.signal(signal.SIGCHLD, on_chld)
        pids = []
        for task in tasks:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = task()
                finally:
                    os._exit(code)
            pids.append(pid)
        try:
            while len(codes) < len(pids):
                time.sleep(0.01)
        finally:
            signal.signal(signal.SIGCHLD, old)
        return codes

    failed = _failures("01.reaper", one_per_signal)
    # certain to fail here; with three children it may pass or fail, as their SIGCHLD happen
    # to merge or not
    stopped = "twenty children that end while your process is stopped are all reaped"
    assert "a single SIGCHLD for all of them" in failed[stopped]


def test_installing_the_handler_after_forking_is_caught():
    def late_handler(tasks):
        pids = []
        for task in tasks:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = task()
                finally:
                    os._exit(code)
            pids.append(pid)
        codes = {}
        for pid in pids:                      # reaps in the main code; handler far too late
            codes[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        return codes

    failed = _failures("01.reaper", late_handler)
    assert "no SIGCHLD handler yet" in failed[
        "the SIGCHLD handler is installed before the first fork"]


# --- 01.signal_puzzle -----------------------------------------------------------------


def test_a_puzzle_answer_in_send_order_is_caught():
    def send_order():
        return ["SIGHUP", "SIGUSR2", "SIGTERM", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
                "SIGINT"]

    failed = _failures("01.signal_puzzle", send_order)
    message = next(iter(failed.values()))
    assert "line 6 is 'bye', expected 'usr1'" in message


def test_a_puzzle_answer_ending_with_sigkill_is_caught():
    def killed():
        return ["SIGHUP", "SIGUSR2", "SIGTERM", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
                "SIGTERM", "SIGKILL"]

    message = next(iter(_failures("01.signal_puzzle", killed).values()))
    assert "it stopped after 8 lines; line 9 should be 'bye'" in message


def test_a_puzzle_answer_with_a_bad_name_says_which():
    message = next(iter(_failures("01.signal_puzzle", lambda: ["SIGUSR1", "SIGBOGUS"]).values()))
    assert "'SIGBOGUS' is not a signal" in message and "valid signals" not in message
