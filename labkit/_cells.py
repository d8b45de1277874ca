"""Run a submitted notebook's cells in the sandbox, in a child of stage 2, without a kernel.

A Jupyter kernel started from scratch for every submission (a new
interpreter, ipykernel, ZeroMQ, a handshake over loopback, and nbclient and
nbformat with their schema validators in stage 2) cost more than the rest of
the submission together. The grader needs from the run only what a kernel
would have shown: which cells raised (their ``ename`` and ``evalue``), whether
a cell ran past its timeout, whether the process running the cells died, and
whether a cell printed more than the cap. So the cells run in one child
process (the *cell runner*), in IPython's own ``InteractiveShell`` (the same
cell semantics as in the kernel: magics, ``!`` lines, the last expression
displayed), in a session of its own as a kernel is. It reports each cell as
one JSON line on a pipe; stage 2 waits for each with the cell timeout and
watches the runner through a pidfd, so a descendant holding the pipe open
cannot hide its death.

The runner runs student code: what it says decides only the run's status
and notes, never a score (the checks run later, in other processes).

>>> cells = read_cells(b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": "1"}]}')
>>> [c["source"] for c in cells]
['1']
"""
from __future__ import annotations

import io
import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

OUTPUT_CAP = 256 * 1024  # characters of output counted per cell before the rest is dropped
LINE_CAP = 64 * 1024     # bytes of one report line accepted from the runner
START_TIMEOUT = 60.0     # seconds the runner may take to be ready (as nbclient's kernel start)


def read_cells(data: bytes) -> list[dict[str, Any]]:
    """The notebook's cells as plain dicts, read as JSON without running anything.

    A notebook of format 4 is read directly; an older one is converted by nbformat.
    Raises ValueError if ``data`` is not a notebook.
    """
    notebook = json.loads(data)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells", []), list):
        raise ValueError("the file is not a notebook (no list of cells)")
    if notebook.get("nbformat") != 4:
        import nbformat  # only for an old format: importing it costs seconds

        return [dict(c) for c in nbformat.reads(data.decode(), as_version=4).cells]
    cells = []
    for cell in notebook.get("cells", []):
        if not isinstance(cell, dict):
            raise ValueError("a cell of the notebook is not an object")
        source = cell.get("source", "")
        cells.append({"cell_type": str(cell.get("cell_type", "")),
                      "source": "".join(map(str, source)) if isinstance(source, list)
                      else str(source)})
    return cells


class _CappedOutput(io.TextIOBase):
    """What a cell prints, counted; past :data:`OUTPUT_CAP` characters it is dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.kept = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.kept + len(text) > OUTPUT_CAP:
            self.truncated = True
        else:
            self.kept += len(text)
        return len(text)


def _runner(sources: list[str], report_w: int) -> None:
    """The cell runner's body (in the forked child): run each cell, report it, exit."""
    os.setsid()  # as a kernel: its own session, so killing its group spares stage 2
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.environ["MPLBACKEND"] = "agg"  # no display: plots are drawn and dropped
    sys.path.insert(0, os.getcwd())   # as in a kernel: the notebook's folder is importable
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no sqlite file, no saving thread
    config.InteractiveShell.colors = "nocolor"
    shell = InteractiveShell(config=config)
    out = os.fdopen(report_w, "w", buffering=1)
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for index, source in enumerate(sources, start=1):
        captured = _CappedOutput()
        sys.stdout = sys.stderr = captured
        try:
            result = shell.run_cell(source, store_history=True)
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        error = result.error_before_exec or result.error_in_exec
        # A forked child that went on in this loop reports under its own pid: ignored.
        line: dict[str, object] = {"cell": index, "truncated": captured.truncated,
                                   "pid": os.getpid()}
        if error is not None:
            line.update(ename=type(error).__name__, evalue=str(error)[:1000])
        out.write(json.dumps(line) + "\n")
    out.close()


@dataclass
class CellRun:
    """What running the cells showed: a status (ok, error, timeout, kernel died), notes,
    and the cells' errors (``cell`` counts code cells from 1)."""

    status: str = "ok"
    notes: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


class CellRunner:
    """The cell runner: started (forked) at once, followed cell by cell with :meth:`wait`.

    Start it while the caller is still single-threaded (no watchdog yet): a fork copies
    only the calling thread, and a lock another thread held would stay held in the child.

    >>> run = CellRunner(["x = 1", "x / 0"]).wait(cell_timeout=30)  # doctest: +SKIP
    >>> run.status, run.errors[0]["ename"]  # doctest: +SKIP
    ('ok', 'ZeroDivisionError')
    """

    def __init__(self, sources: list[str]) -> None:
        self.cells = len(sources)
        self.report_r, report_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                os.close(self.report_r)
                _runner(sources, report_w)
                code = 0
            finally:
                os._exit(code)
        os.close(report_w)

    def wait(self, cell_timeout: float) -> CellRun:
        """Follow the cells until the last one is done, one times out or the runner dies;
        then kill the runner's group (what it left elsewhere is the caller's to sweep)."""
        try:
            return _follow(self.pid, self.report_r, self.cells, cell_timeout)
        finally:
            os.close(self.report_r)
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended with its group
            os.waitpid(self.pid, 0)


def _follow(pid: int, report_r: int, cells: int, cell_timeout: float) -> CellRun:
    run = CellRun()
    ended = os.pidfd_open(pid)
    try:
        poll = select.poll()
        poll.register(report_r, select.POLLIN)
        poll.register(ended, select.POLLIN)
        pending, ready, done = b"", False, 0
        deadline = time.monotonic() + START_TIMEOUT
        while done < cells or not ready:
            left = deadline - time.monotonic()
            events = dict(poll.poll(max(left, 0) * 1000)) if left > 0 else {}
            if not events:
                run.status = "timeout"
                run.notes.append(f"a cell did not finish in {cell_timeout:g} s; the notebook "
                                 "was stopped there (the checks still ran)")
                return run
            chunk = os.read(report_r, 65536) if report_r in events else b""
            if report_r in events and not chunk:
                poll.unregister(report_r)  # every writer closed it: only its end is left
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if len(pending) > LINE_CAP:
                run.status = "error"
                run.notes.append("the notebook wrote into the grader's report pipe; it was "
                                 "stopped there (the checks still ran)")
                return run
            for line in lines:
                message = _message(line)
                if message.get("pid") != pid:
                    continue  # not the runner: a child of it that went on running cells
                ready = ready or message.get("ready") is True
                if isinstance(message.get("cell"), int):
                    done += 1
                    _note_cell(run, message)
                deadline = time.monotonic() + cell_timeout
            if not chunk and ended in events:  # it ended before its last cell
                run.status = "kernel died"
                run.notes.append("the notebook's kernel died while running it (the checks "
                                 "still ran)")
                return run
        return run
    finally:
        os.close(ended)


def _message(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _note_cell(run: CellRun, message: dict[str, Any]) -> None:
    run.truncated = run.truncated or message.get("truncated") is True
    if "ename" in message:
        run.errors.append({"cell": message["cell"], "ename": str(message["ename"])[:200],
                           "evalue": str(message.get("evalue", ""))[:1000]})
