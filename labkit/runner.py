"""Starting separate programs (servers, unrelated processes, ``dd``) that end with the lab.

A forked child (:mod:`labkit.processes`) shares the kernel's memory; some
lessons need the opposite, a brand-new program that shares nothing, as one
started from a terminal would be. Every such program starts here, so each
one gets the same three guarantees:

* **it dies with the lab**: its own process group, known to the janitor,
  and a parent-death signal armed before any of its own code runs;
* **a deadline**: the janitor ends the group ``lifetime`` seconds from now
  even if nobody calls :func:`end_program`;
* **a structured log**: :func:`programs` lists what was started, when, with
  what arguments, and how it ended, for the "what is still running?" question.

Python programs labkit ships are real files under ``labkit/programs/``,
started by module name with :func:`start_module`, so a student can open and
read them like the example programs of a systems textbook.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._janitor import CLIENT
from ._platform import PROGRAM_PRELUDE, held_interrupts, program_env
from ._validate import seconds
from .errors import LabTimeout
from .session import start_ticks

__all__ = ["ProgramRecord", "ProgramRun", "end_program", "programs", "run_module", "run_program",
           "start_module", "start_program"]

ROOT = Path(__file__).resolve().parent.parent   # the folder that holds the labkit package

# How a program other than Python starts: the prelude, then exec with the signal
# dispositions a C program expects (Python itself ignores SIGPIPE and SIGXFSZ).
_EXEC = """
import os, signal, sys
for _n in (signal.SIGPIPE, signal.SIGXFSZ):
    signal.signal(_n, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])
"""

# How a module under labkit/programs starts: the prelude, then the module as __main__.
_RUN_MODULE = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@dataclass
class ProgramRecord:
    """One program this session started: what, when, until when, and how it ended."""

    pid: int
    argv: list[str]                   # as asked for (before the prelude was put in front)
    started: float                    # time.time() at the start
    deadline: float                   # time.time() after which the janitor ends it
    returncode: int | None = None     # as subprocess gives it: -N if killed by signal N
    ended: float | None = field(default=None)

    def __str__(self) -> str:
        state = ("running" if self.ended is None else
                 f"exit code {self.returncode}" if (self.returncode or 0) >= 0 else
                 f"killed by {signal.Signals(-(self.returncode or 0)).name}")
        return f"pid {self.pid} {' '.join(self.argv)[:60]!s}  ({state})"


_LOG: collections.deque[ProgramRecord] = collections.deque(maxlen=200)


def programs() -> list[ProgramRecord]:
    """The programs this session started (the last 200), oldest first.

    >>> p = start_program(["true"], 10); p.wait(); end_program(p)
    0
    >>> programs()[-1].returncode
    0
    """
    return list(_LOG)


def start_program(argv: list[str], lifetime: float, **popen: Any) -> subprocess.Popen[Any]:
    """Start a program (``subprocess.Popen``) that ends with the kernel, however it ends.

    The program gets its own process group, known to the janitor (which ends
    the group ``lifetime`` seconds from now, or when the kernel dies), a
    parent-death signal, and the default action for every signal the kernel
    inherited as ignored. ``python -c CODE`` runs with a prelude that does
    this; any other program is started through it. ``popen`` goes to Popen.
    Call :func:`end_program` when done with it.

    >>> p = start_program([sys.executable, "-c", "print('hi')"], 10, stdout=subprocess.PIPE)
    >>> p.communicate()[0]
    b'hi\\n'
    >>> end_program(p)
    """
    lifetime = seconds("lifetime", lifetime, above=True)
    asked = [str(a) for a in argv]
    if asked[:2] == [sys.executable, "-c"] and len(asked) > 2:
        full = [sys.executable, "-c", PROGRAM_PRELUDE + asked[2], *asked[3:]]
    else:
        full = [sys.executable, "-c", PROGRAM_PRELUDE + _EXEC, *asked]
    CLIENT.start()
    env = program_env(popen.pop("env", None))
    with held_interrupts():  # an interrupt before the janitor knows the group would leak it
        proc = subprocess.Popen(full, env=env, start_new_session=True, **popen)
        CLIENT.watch_group(proc.pid, time.monotonic() + lifetime, start_ticks(proc.pid))
    now = time.time()
    _LOG.append(ProgramRecord(proc.pid, asked, now, now + lifetime))
    return proc


def start_module(module: str, *args: str, lifetime: float, **popen: Any
                 ) -> subprocess.Popen[Any]:
    """Start ``python -m MODULE ARGS`` (a file under ``labkit/programs/``) as a program.

    Everything :func:`start_program` promises holds; the module runs as
    ``__main__`` with ``sys.argv[1:] == args``, and finds labkit even when
    the notebook's folder is elsewhere.

    >>> p = start_module("labkit.programs.run_code", "import sys; print(sys.argv[1])", "lab",
    ...                  lifetime=10, stdout=subprocess.PIPE)
    >>> p.communicate()[0]
    b'lab\\n'
    >>> end_program(p)
    """
    if not module.startswith("labkit.programs."):
        raise ValueError(f"module must be one of labkit's programs (labkit.programs.NAME), "
                         f"got {module!r}")
    env = dict(popen.pop("env", None) or os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return start_program([sys.executable, "-c", _RUN_MODULE, module, *map(str, args)],
                         lifetime, env=env, **popen)


def end_program(proc: subprocess.Popen[Any]) -> None:
    """Kill what is left of a program's group, reap it, and tell the janitor it is gone."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its group: it leads one of its own
        except OSError:
            proc.kill()
        proc.wait()
    CLIENT.forget_group(proc.pid)
    for record in reversed(_LOG):
        if record.pid == proc.pid and record.ended is None:
            record.returncode, record.ended = proc.returncode, time.time()
            break


@dataclass(frozen=True)
class ProgramRun:
    """How a program run to its end (:func:`run_module`, :func:`run_program`) ended, and
    what it printed."""

    pid: int
    returncode: int           # as subprocess gives it: -N if killed by signal N
    stdout: str
    stderr: str


def run_module(module: str, *args: str, timeout: float, what: str = "") -> ProgramRun:
    """Run a program of ``labkit/programs/`` to its end, its output captured, never printed.

    It is killed (and this raises :class:`~labkit.errors.LabTimeout`) after
    ``timeout`` seconds, and on KeyboardInterrupt; ``what`` names the program
    in that message (its module name by default).

    >>> run_module("labkit.programs.run_code", "print(40 + 2)", timeout=10).stdout
    '42\\n'
    """
    timeout = seconds("timeout", timeout, above=True)
    proc = start_module(module, *args, lifetime=timeout, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return _finish(proc, timeout, what or f"the program {module}")


def run_program(argv: list[str], *, timeout: float, what: str = "") -> ProgramRun:
    """Run any program (``ipcs``, ``dd``) to its end, as :func:`run_module` runs labkit's.

    >>> run_program(["echo", "hi"], timeout=10).stdout
    'hi\\n'
    """
    timeout = seconds("timeout", timeout, above=True)
    proc = start_program(argv, timeout, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    return _finish(proc, timeout, what or f"the program {argv[0]}")


def _finish(proc: subprocess.Popen[Any], timeout: float, what: str) -> ProgramRun:
    """Wait for a started program and collect its output; end it on timeout or interrupt."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:                # a timeout or the stop button: end it, reap it
        proc.kill()
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise LabTimeout(f"{what} (pid {proc.pid}) did not finish in {timeout:g} s; it was "
                             "killed") from None
        raise
    finally:
        end_program(proc)
    return ProgramRun(proc.pid, proc.returncode, out, err)
