"""Run generated puzzle programs on real processes and report what each one printed.

Run: ``python -m labkit.programs.puzzle_runs PARALLEL DEADLINE TRACE SOURCE...``.
:func:`labkit.puzzles.run_real` starts it through :func:`labkit.runner.run_module`.
With ``TRACE`` ``1``, every process says who it is (see :func:`_trace`), so the
caller can draw the process tree the run really made.

Each program runs under its own *keeper*, a forked process that is a child
subreaper: every process the program forks, orphans included, stays below the
keeper, so the keeper can reap them all and, at the end, kill what is left.
A program "hangs" when every process it still has sleeps and none of them ran
over several looks in a row (nothing runnable is left, no timer is set, nothing outside
can write to its pipes): the keeper then kills them and says so. Deciding a
hang this way needs no timeout that a busy machine could outlast; ``DEADLINE``
seconds is only the backstop for a program that keeps running.

Each keeper prints one line of JSON (index, output, errors, hung, timed out,
how the first process ended): plain text that the caller parses, never code.
Up to ``PARALLEL`` keepers run at once. Everything stays in the process group
of this program, which the runner ends if anything here goes wrong.
"""
from __future__ import annotations

import ctypes
import io
import json
import os
import signal
import sys
import time
from typing import Any

_PR_SET_CHILD_SUBREAPER = 36
_LOOK = 0.01          # seconds between two looks at a program's processes
# Looks in a row that must find the same sleeping processes, none having run. With a single
# pair, a program that cannot hang was once reported hung on a heavily loaded machine (a
# moment between one process ending and its waiting parent being woken, most likely).
_QUIET_LOOKS = 5


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _look(pids: list[int]) -> dict[int, str] | None:
    """State and run time of each live process (zombies left out), or None if one runs."""
    seen: dict[int, str] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
            with open(f"/proc/{pid}/schedstat") as f:
                ran = f.read().split()[0]
        except OSError:
            return None           # it ended between the listing and the look: look again
        if state == "Z":
            continue
        if state != "S":
            return None
        seen[pid] = ran
    return seen


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


def _trace() -> None:
    """Make every process of the program say who it is, in the lines it prints: each line
    starts with ``@PID``, and a parent prints ``@fork PID CHILD`` as its fork returns.

    Only the parent can name the pair for certain (a child asking for its parent's pid
    gets the keeper's once the parent has ended), and one process's lines reach the pipe
    in its own order, so each parent's children come in the order it forked them.
    """
    import builtins

    fork, show = os.fork, builtins.print

    def traced_fork() -> int:
        pid = fork()
        if pid > 0:
            show(f"@fork {os.getpid()} {pid}")
        return pid

    def traced_print(*args: object, **kwargs: Any) -> None:
        show(f"@{os.getpid()}", *args, **kwargs)

    os.fork = traced_fork
    builtins.print = traced_print


def _program(source: str, out_fd: int, err_fd: int, trace: bool) -> None:
    """The program's first process: its output to the keeper's pipes, then the source."""
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    # New streams, one write per line as on a terminal; the old ones may hold this
    # program's own unwritten output, which a fork copied.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    code = 0
    try:
        if trace:
            _trace()
        exec(compile(source, "<puzzle>", "exec"), {"__name__": "__main__"})
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)        # every process of the program ends here, never in the keeper


def _keep(index: int, source: str, deadline: float, trace: bool, report_fd: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(out_r)
        os.close(err_r)
        _program(source, out_w, err_w, trace)
    os.close(out_w)
    os.close(err_w)
    main, hung, late, before, quiet = "", False, False, None, 0
    end = time.monotonic() + deadline
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break             # every process of the program has ended and been reaped
        if pid:
            if pid == first:
                main = _status(status)
            before = None
            continue
        now = _look(_descendants(os.getpid()))
        quiet = quiet + 1 if now and now == before else 0
        if quiet >= _QUIET_LOOKS:
            hung = True
        elif time.monotonic() > end:
            late = True
        else:
            before = now
            time.sleep(_LOOK)
            continue
        # Stop them all before killing any: a killed process closes its descriptors,
        # which could wake another (end of file) and let it print after the verdict.
        for signum in (signal.SIGSTOP, signal.SIGKILL):
            for pid in _descendants(os.getpid()):
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
    # Output is a few short lines, far below a pipe's capacity: read it after the end.
    with open(out_r, "rb") as o, open(err_r, "rb") as e:
        out, err = o.read().decode(errors="replace"), e.read().decode(errors="replace")
    line = json.dumps({"index": index, "output": out, "errors": err, "hung": hung,
                       "late": late, "first": main or "killed by SIGKILL"})
    os.write(report_fd, (line + "\n").encode())


def main(argv: list[str]) -> None:
    parallel, deadline, trace, sources = int(argv[0]), float(argv[1]), argv[2] == "1", argv[3:]
    for start in range(0, len(sources), parallel):
        reports: list[tuple[int, int]] = []
        for index in range(start, min(start + parallel, len(sources))):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.close(r)
                    _keep(index, sources[index], deadline, trace, w)
                except BaseException:
                    import traceback
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            os.close(w)
            reports.append((pid, r))
        for pid, r in reports:
            with open(r, "rb") as f:
                sys.stdout.write(f.read().decode())
            os.waitpid(pid, 0)
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
