"""Bad input to the public API, generated (hypothesis): a clear refusal, at once.

Whatever a student passes, a rejection is a labkit error, a ValueError or a
TypeError whose message says what is allowed, and it comes in under a second
(no experiment starts first and fails later). Only values that must be
refused are generated: a valid pid here could signal a real process.
"""
from __future__ import annotations

import math
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labkit
from labkit import interleave, mq, objects, pipes, processes, shm, signals
from labkit.errors import LabError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SAYS_WHAT_IS_ALLOWED = re.compile(r"must|valid|allowed|give a|takes a|expected|at most|"
                                  r"too many|is one of|has no|needs", re.IGNORECASE)
PID_MAX = 4_194_304

checked = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

not_a_number = st.one_of(st.none(), st.text(max_size=12), st.binary(max_size=8),
                         st.lists(st.integers(), max_size=2), st.builds(object))
not_an_int = st.one_of(not_a_number, st.booleans(), st.floats(allow_nan=True))
bad_pid = st.one_of(st.integers(max_value=0), st.integers(min_value=PID_MAX + 1), not_an_int)
bad_seconds = st.one_of(st.floats(max_value=0), st.floats(min_value=86400.5),
                        st.sampled_from([math.nan, math.inf, -math.inf, 10**100]),
                        st.booleans(), not_a_number)
bad_label = st.one_of(st.text(max_size=40).filter(
    lambda t: not re.fullmatch(r"[A-Za-z0-9]{1,12}", t)), st.none(), st.integers(),
    st.binary(max_size=8), st.floats())
bad_path = st.one_of(st.none(), st.integers(), st.floats(), st.just(""),
                     st.text(min_size=4096, max_size=4200),
                     st.text(max_size=20).map(lambda t: t + "\0" + t),
                     st.text(alphabet="ab", min_size=256, max_size=300))


def _entered(manager, *args):
    """Enter a ``with``-block helper (it checks its arguments only when entered)."""
    with manager(*args):
        pass


def refused(call, *args, **kwargs) -> str:
    """Call; it must raise a clear error in under a second. Returns the message."""
    began = time.monotonic()
    with pytest.raises((LabError, ValueError, TypeError)) as info:
        call(*args, **kwargs)
    took = time.monotonic() - began
    message = str(info.value)
    assert took < 1.0, f"{call.__name__} took {took:.2f} s to refuse {args} {kwargs}"
    assert SAYS_WHAT_IS_ALLOWED.search(message), f"{call.__name__}: {message!r}"
    assert "[Errno" not in message
    return message


@checked
@given(pid=bad_pid)
def test_a_bad_pid_is_refused_everywhere(pid):
    refused(signals.signal_state, pid)
    refused(signals.send_and_settle, pid, "SIGUSR1")
    if pid is not None:  # process_tree(None) is this process's tree
        refused(labkit.process_tree, pid)


@checked
@given(sig=st.one_of(st.text(max_size=12).filter(lambda t: t.strip().upper().removeprefix("SIG")
                                                 not in {s.name[3:] for s in __import__(
                                                     "signal").Signals}),
                     st.integers(min_value=65), st.integers(max_value=0), not_a_number))
def test_a_bad_signal_is_refused(sig):
    refused(processes.to_signal, sig)


@checked
@given(timeout=bad_seconds)
def test_a_bad_timeout_is_refused_before_anything_starts(timeout):
    refused(processes.run, os.getpid, timeout=timeout)
    refused(processes.start, os.getpid, timeout=timeout)
    refused(processes.run_workers, pow, 2, 2, timeout=timeout)
    refused(shm.run_unrelated, "pass", timeout=timeout)


@checked
@given(n=st.one_of(st.integers(max_value=0), st.integers(min_value=processes.MAX_WORKERS + 1),
                   not_an_int))
def test_a_bad_number_of_workers_is_refused(n):
    refused(processes.run_workers, pow, n, 2)


@checked
@given(max_messages=st.one_of(st.integers(max_value=0), st.integers(min_value=2**31),
                              not_an_int),
       size=st.integers(min_value=1, max_value=64))
def test_bad_queue_sizes_are_refused(max_messages, size):
    refused(objects.message_queue, max_messages, size)
    refused(objects.message_queue, size, max_messages)
    refused(_entered, mq.queue, max_messages, size)


@checked
@given(size=st.one_of(st.integers(max_value=0), st.integers(min_value=2**62), not_an_int))
def test_bad_shared_memory_sizes_are_refused(size):
    refused(objects.shared_memory, size)
    refused(shm.Segment.create, size)


@checked
@given(value=st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31), not_an_int))
def test_bad_semaphore_values_are_refused(value):
    refused(objects.semaphore, value)


@checked
@given(label=bad_label)
def test_bad_labels_are_refused(label):
    for make in (objects.lab_name, objects.fifo, objects.socket_path):
        refused(make, label)

    refused(_entered, objects.temp_folder, label)


@checked
@given(path=bad_path)
def test_a_bad_fifo_path_is_refused(path):
    refused(pipes.open_fifo, path, "r", timeout=0.01)


@checked
@given(mode=st.one_of(st.text(max_size=4), not_an_int).filter(lambda m: m not in ("r", "w")))
def test_a_bad_fifo_mode_is_refused(mode):
    refused(pipes.open_fifo, "/nonexistent", mode)


@checked
@given(system=st.one_of(not_an_int, st.integers()))
def test_outcomes_of_something_that_is_not_a_system_is_refused(system):
    refused(interleave.outcomes, system)


@checked
@given(processes_=st.integers(min_value=4, max_value=interleave.MAX_WORKERS),
       increments=st.integers(min_value=8, max_value=10))
def test_a_system_far_too_big_to_count_is_refused_at_once(processes_, increments):
    refused(interleave.outcomes, interleave.counter(processes_, increments))


@checked
@given(processes_=st.integers(min_value=8, max_value=interleave.MAX_WORKERS),
       increments=st.integers(min_value=4, max_value=10))
def test_a_locked_system_far_too_big_to_count_is_refused_at_once(processes_, increments):
    refused(interleave.outcomes, interleave.locked_counter(processes_, increments))


@checked
@given(processes_=st.one_of(st.integers(max_value=0),
                            st.integers(min_value=interleave.MAX_WORKERS + 1), not_an_int),
       increments=st.integers(min_value=1, max_value=3))
def test_bad_system_sizes_are_refused(processes_, increments):
    refused(interleave.counter, processes_, increments)
    refused(interleave.locked_counter, processes_, increments)
