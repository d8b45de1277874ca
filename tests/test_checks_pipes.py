"""Lesson 02's check helpers. The solutions and untouched exercises are covered by
tests/test_checks.py, the wrong answers by tests/mutants/02_pipes.py; here, the diagnosis
that names what a hanging answer's processes were waiting for."""
from __future__ import annotations

import os
from pathlib import Path

from labkit.checks.pipes import _blocked_in, _diagnosis
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
