"""Checks of lesson 08: the trace driver, on the solution's shell, the exercise and wrong shells."""
from __future__ import annotations

import signal
import sys

import pytest
from helpers import failures, load_answers

from labkit.checking import NOT_DONE, PASSED, run_checks
from labkit.checks.shell import parse_trace, run_trace, traces, transcript

SOLUTION = load_answers("solutions/08_shell.ipynb")
EXERCISE = load_answers("exercises/08_shell.ipynb")


def test_there_are_at_least_fifteen_traces_each_saying_what_it_checks():
    found = traces()
    assert len(found) >= 15
    assert all(t.about and t.hint and t.expected for t in found)
    assert {t.exercise for t in found} == {"commands", "jobs"}


@pytest.mark.parametrize("exercise", ["08.commands", "08.jobs"])
def test_the_solution_passes_every_trace(exercise):
    results = run_checks(exercise, SOLUTION["shell"])
    assert [(r.check, r.message) for r in results if r.status != PASSED] == []


@pytest.mark.parametrize("exercise", ["08.commands", "08.jobs"])
def test_the_unsolved_exercise_is_not_done_in_every_trace(exercise):
    assert {r.status for r in run_checks(exercise, EXERCISE["shell"])} == {NOT_DONE}


def _silent_shell():
    return None  # returns at once: no prompt, nothing run


def test_a_shell_that_returns_at_once_fails_saying_it_ended():
    failed = failures("08.commands", _silent_shell)
    assert len(failed) == 10
    assert all("your shell itself ended (exited with code 0)" in m.lower()
               for m in failed.values())


def test_the_transcript_drops_echoed_keys_carriage_returns_and_background_pids():
    raw = "$ sleep 9 &\r\n[1] 4242\r\n$ sleep 8\r\n^Z\r\n[2] Stopped sleep 8\r\n$ "
    assert transcript(raw) == ["$ sleep 9 &", "[1] PID", "$ sleep 8", "[2] Stopped sleep 8"]


def test_a_trace_without_its_header_or_with_a_blank_line_is_refused():
    with pytest.raises(ValueError, match="needs '# exercise"):
        parse_trace("bad", "$ echo hi\nhi\n")
    with pytest.raises(ValueError, match="line 3: blank lines"):
        parse_trace("bad", "# exercise: jobs\n# title: t\n\n")


def _prompts_then_waits_for_ctrl_c():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # an ignored signal is not kept pending
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    sys.stdout.write("$ ")
    sys.stdout.flush()
    signal.sigwait({signal.SIGINT})


def test_a_typed_line_is_echoed_in_the_transcript_even_when_ctrl_c_follows_at_once():
    # Ctrl-C flushes the terminal's queues, the echo on its way to the driver too: the
    # driver must read a line's echo before it presses the next key, or the echo is lost
    # about half the time. (The line itself is flushed unread here; the shell ignores it.)
    trace = parse_trace("echo", "# exercise: jobs\n# title: t\n> hello\n!- C-c\n@ ended\n")
    for _ in range(12):
        run_trace(trace, _prompts_then_waits_for_ctrl_c)
