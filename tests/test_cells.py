"""The cell runner: what a kernel would have shown of a notebook's run, without a kernel.

Run here outside any sandbox (the runner is a plain fork); what the sandbox adds is
tested in test_sandbox.py and test_grade.py.
"""
from __future__ import annotations

import os

import pytest

from labkit._cells import OUTPUT_CAP, CellRunner, read_cells


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the runner puts its folder on sys.path, as a kernel does


def test_each_cell_that_raises_is_reported_with_its_number_and_the_rest_still_run():
    run = CellRunner(["x = 1", "x / 0", "", "import nosuchmodule", "y = x + 1\nprint(y)"]
                     ).wait(cell_timeout=60)
    assert run.status == "ok"
    assert [(e["cell"], e["ename"]) for e in run.errors] == [
        (2, "ZeroDivisionError"), (4, "ModuleNotFoundError")]


def test_ipython_syntax_runs_as_in_a_kernel():
    run = CellRunner(["%time z = 2", "!true", "z"]).wait(cell_timeout=60)
    assert (run.status, run.errors) == ("ok", [])


def test_a_cell_past_its_timeout_stops_the_run():
    run = CellRunner(["import time\ntime.sleep(3600)", "never = 1"]).wait(cell_timeout=1)
    assert run.status == "timeout" and "did not finish in 1 s" in run.notes[0]


def test_a_runner_that_dies_is_reported_even_when_a_child_holds_its_pipe():
    run = CellRunner([  # the child holds the report pipe until the runner is gone
        "import os\nr, w = os.pipe()\nif os.fork() == 0:\n    os.setsid()\n    os.close(w)\n"
        "    os.read(r, 1)\n    os._exit(0)\nos.close(r)",
        "os.kill(os.getpid(), 9)", "after = 1"]).wait(cell_timeout=60)
    assert run.status == "kernel died"


def test_a_forked_child_running_on_cannot_report_for_the_runner():
    run = CellRunner(["import os\nchild = os.fork()",  # the child runs the next cells too
                      "if child == 0:\n    raise ValueError('from the child')",
                      "if child == 0:\n    os._exit(0)\nos.waitpid(child, 0)"]
                     ).wait(cell_timeout=60)
    assert (run.status, run.errors) == ("ok", [])


def test_output_past_the_cap_is_dropped_and_said():
    run = CellRunner([f"print('x' * {OUTPUT_CAP + 1})"]).wait(cell_timeout=60)
    assert run.truncated and run.status == "ok"


def test_a_notebook_is_read_as_json_and_a_broken_one_refused():
    cells = read_cells(b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ['
                       b'{"cell_type": "code", "source": ["a = 1\\n", "b = 2"]}]}')
    assert cells == [{"cell_type": "code", "source": "a = 1\nb = 2"}]
    with pytest.raises(ValueError):
        read_cells(b"{ this is not json")
    with pytest.raises(ValueError):
        read_cells(b'{"nbformat": 4, "cells": ["not a cell"]}')


def test_nothing_is_left_running():
    runner = CellRunner(["import time\ntime.sleep(3600)"])
    pid = runner.pid
    runner.wait(cell_timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
