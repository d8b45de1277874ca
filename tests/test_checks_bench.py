"""Lesson 07's check machinery (its wrong answers are tests/mutants/07_performance.py;
tests/test_checks.py runs the solutions). The checks see what an answer did through
callbacks and notes in shared memory; these tests hold those instruments to what they
promise, without timing anything."""
from __future__ import annotations

import mmap
import os
import time

import pytest

from labkit import bench
from labkit.checks import bench as checks
from labkit.processes import run


def test_a_board_written_in_a_child_is_read_in_the_parent():
    board = checks._EchoBoard()
    try:
        run(lambda: board.set("calls", 41) or board.set("t_warm", 1.5), show=False)
        assert (board.calls, board.t_warm) == (41, 1.5)
    finally:
        board.close()


def test_the_echo_dawdles_on_the_marked_round_trips_and_notes_the_span():
    board = checks._EchoBoard()
    echo = checks._Echo(board, 8)
    marked = {checks._WARM_UP + j for j in checks._marked(8)}
    try:
        for k in range(checks._WARM_UP + 8):
            began = time.perf_counter()
            assert echo(b"x") == b"x"
            if k in marked:     # a lower bound: a sleep never ends early
                assert time.perf_counter() - began >= checks._SLOW
        assert board.calls == checks._WARM_UP + 8
        assert 0 < board.t_warm < board.t_last
    finally:
        board.close()


def test_only_shared_memory_counts_as_shared():
    shared = mmap.mmap(-1, 4096)
    private = bytearray(4096)
    try:
        assert checks.in_shared_memory(memoryview(shared))
        assert not checks.in_shared_memory(memoryview(private))
        assert not checks.in_shared_memory(bytes(4096))
    finally:
        shared.close()


def _reads_a_sweep(workload):
    s = bench.round_trips(["pipe"], n=20, size=workload["size"])
    return s.round_trip("pipe") * 2


def test_the_figures_an_answer_reads_from_bench_are_noted_in_its_process_only():
    readings = checks._Readings()
    try:
        got = run(checks._reading, _reads_a_sweep, readings, {"size": 64}, show=False).value
        assert readings.round_size_pipe == 64
        assert got == 2 * readings.t_round_pipe > 0
        assert readings.t_stream_pipe == 0
        assert bench.Sweep.round_trip.__name__ == "round_trip"   # this process untouched
    finally:
        readings.close()


@pytest.mark.parametrize("exercise, answer, cause", [
    ("07.round_trip", lambda n, cpus, echo: time.sleep(60), "echo was never called"),
    ("07.ring", lambda count, size, slots, produce, consume: time.sleep(60),
     "not one message had been written"),
    ("07.fastest", lambda workload: time.sleep(60), "did not finish"),
])
def test_an_answer_that_hangs_is_stopped_once_and_not_run_again(exercise, answer, cause):
    from labkit.checking import FAILED, NOT_RUN, run_checks

    results = run_checks(exercise, answer)
    assert results[0].status == FAILED and cause in results[0].message
    assert all(r.status == NOT_RUN for r in results[1:])
    assert all(r.message.startswith("not run: ") and cause in r.message for r in results[1:])


# --- 07.pipe_blocks ---------------------------------------------------------------------------

def _one_read(size: int) -> int:
    """A child writes ``size`` bytes into a pipe at once; the parent's one read of ``size``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, b"x" * size)
        finally:
            os._exit(0)
    os.close(w)
    try:
        return len(os.read(r, size))
    finally:
        os.close(r)           # the child, still writing, ends on SIGPIPE
        os.waitpid(pid, 0)


def test_one_read_of_a_pipe_never_returns_more_than_the_pipe_holds():
    # the premise of 07.pipe_blocks: a block bigger than the pipe never comes in one read
    import fcntl

    r, w = os.pipe()
    room = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    os.close(r)
    os.close(w)
    for size in (100_000, 300_000, 1 << 20):
        got = run(_one_read, size, timeout=10, show=False).value
        assert 0 < got <= room < size
