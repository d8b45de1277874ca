"""Lesson 02's check helpers. The solutions and untouched exercises are covered by
tests/test_checks.py, the wrong answers by tests/mutants/02_pipes.py; here, the diagnosis
that names what a hanging answer's processes were waiting for."""
from __future__ import annotations

import os
from pathlib import Path

from labkit.checks.pipes import _blocked_in, _diagnosis
from labkit.checks.pipes_sieve import _hygiene, _parse
from labkit.processes import start
from labkit.waiting import wait_until


def _reads_its_own_pipe() -> None:
    """A child that reads a pipe whose write end it never closed; its parent waits for it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.read(r, 1)
        finally:
            os._exit(0)
    os.close(r)
    os.close(w)
    os.waitpid(pid, 0)


def _until_blocked(pid: int, what: str) -> None:
    wait_until(lambda: _blocked_in(pid) == what, 10, f"{pid} never blocked in {what}")


def test_a_reader_that_holds_its_own_write_end_is_named_as_the_cause():
    with start(_reads_its_own_pipe, timeout=20, show=False) as answer:
        _until_blocked(answer.pid, "wait")
        children = Path(f"/proc/{answer.pid}/task/{answer.pid}/children")
        kid = int(children.read_text().split()[0])
        _until_blocked(kid, "read")
        said = _diagnosis(answer.pid)
        answer.stop()
    assert "your function's process is in waitpid" in said
    assert f"its child {kid}" in said and "write end it still holds itself" in said


def test_a_process_that_ended_is_diagnosed_as_nothing():
    with start(os.getpid, timeout=20, show=False) as child:
        pid = child.wait().pid
    assert _diagnosis(pid) == ""


# --- 02.primes: what the stages logged ------------------------------------------------------

_LOG = """before 100 0:7:r,1:8:w
fork 101 100
fork 102 101
eof 102 3 3:21:r,4:20:w
exit 102
eof 101 3 3:12:r,5:21:w,6:20:w{extra}
exit 101 102
eof 100 5 5:20:r
"""


def test_the_sieve_log_gives_the_chain_and_leaves_out_the_harness_pipes():
    run = _parse(_LOG.format(extra=""), [2, 3], 100)
    assert run.parent == {101: 100, 102: 101}
    assert run.eof[100].ends == {5: ("20", "r")}     # fds 0 and 1 were the harness's
    assert run.unreaped == {102: [], 101: [102]}
    assert [_hygiene(run, pid) for pid in (100, 101, 102)] == ["", "", ""]


def test_a_stage_holding_a_read_end_it_does_not_read_is_named():
    run = _parse(_LOG.format(extra=",7:30:r"), [2, 3], 100)
    assert _hygiene(run, 101) == ("stage 1 (pid 101) still held the read end of a pipe it "
                                  "does not read (descriptor 7) when its input ended")


def test_a_stage_holding_a_stray_write_end_is_named():
    run = _parse(_LOG.format(extra=",8:31:w"), [2, 3], 100)
    assert "write end of a pipe it does not write into (descriptor 8)" in _hygiene(run, 101)
