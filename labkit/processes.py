"""Run Python functions in real child processes, safely, from a notebook cell.

A bare ``os.fork()`` in a Jupyter kernel is a trap: a child that raises and
skips ``os._exit`` carries on as a second kernel, its output never reaches the
cell under test runners, a hung child hangs the cell, and a forgotten
``waitpid`` leaves a zombie. This module is the one place in labkit that
forks, and it closes each of those traps:

* **the fork** holds SIGINT back (an interrupt that lands in the fork's own
  hooks would be lost) and delivers it to the cell right after, once the
  child is known and can be ended with the rest;
* **the child** resets SIGINT, and every signal the kernel inherited as
  ignored, to the default, leaves the kernel's process
  group (the interrupt button is for the kernel), asks to be killed if the
  kernel dies (``PR_SET_PDEATHSIG``), adopts its orphaned descendants
  (``PR_SET_CHILD_SUBREAPER``), sends its standard streams and its result
  through pipes, kills and reaps whatever it left running, and always ends
  with ``os._exit``;
* **programs** (servers, unrelated processes, ``dd``) are not forked here:
  :mod:`labkit.runner` starts them;
* **the parent** reads every pipe in one loop, streams each line to the cell
  as it arrives, reaps its children, and enforces one deadline. On timeout or
  on KeyboardInterrupt it freezes each child's process group (SIGSTOP, so a
  fork bomb cannot outrun it), kills it and every descendant, and reaps the
  orphans it adopts meanwhile. Nothing a call started outlives the call.

We fork rather than use ``multiprocessing`` because students must be able to
run functions defined in a cell (``spawn`` and ``forkserver`` cannot pickle
them) and because the lessons are about ``fork`` itself.
"""
from __future__ import annotations

import errno
import faulthandler
import os
import pickle
import select
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import psutil

from ._janitor import CLIENT
from ._platform import (
    held_interrupts,
    quiet_fork,
    reset_inherited_ignores,
    set_parent_death_signal,
    set_subreaper,
    subreaper,
)
from ._validate import seconds
from .errors import ChildError, LabError, LabTimeout
from .framing import plain_loads, split_frames, write_frame

__all__ = [
    "Child",
    "ChildResult",
    "ExitStatus",
    "ProcessNode",
    "WorkerResults",
    "Workers",
    "plot_process_tree",
    "process_tree",
    "run",
    "run_workers",
    "start",
    "start_ready",
    "start_workers",
    "to_signal",
]

DEFAULT_TIMEOUT = 10.0
MAX_WORKERS = 256
_EX_HARNESS = 70        # exit code when labkit's own harness failed (EX_SOFTWARE)
_LEFTOVER_GRACE = 0.5   # seconds a finished child's pipes may stay open before we kill holders
_UNKNOWN = -1           # wait status of a child that another waitpid reaped
MAX_OUTPUT = 1 << 20    # bytes of stdout (and of stderr) kept per child; the rest is dropped
_result_fd: int | None = None  # in a labkit child: its own result pipe, never inherited below it


# --- exit statuses -------------------------------------------------------------------


def to_signal(sig: int | str | signal.Signals) -> signal.Signals:
    """Turn ``"SIGUSR1"``, ``"usr1"``, ``10`` or ``signal.SIGUSR1`` into ``signal.SIGUSR1``.

    >>> to_signal("term")
    <Signals.SIGTERM: 15>
    """
    if isinstance(sig, signal.Signals):
        return sig
    try:
        if isinstance(sig, str):
            name = sig.strip().upper()
            return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
        if isinstance(sig, int) and not isinstance(sig, bool):
            return signal.Signals(sig)
    except (KeyError, ValueError):
        pass
    valid = ", ".join(f"{s.name} ({s.value})" for s in sorted(signal.Signals, key=int))
    raise ValueError(f"{sig!r} is not a signal on this system; valid signals: {valid}")


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, or the signal that killed it.

    >>> str(ExitStatus.from_wait_status(0x0300))
    'exited with code 3'
    >>> str(ExitStatus.from_wait_status(11))
    'killed by SIGSEGV (Segmentation fault)'
    """

    code: int | None
    signal: int | None = None
    core_dumped: bool = False

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        """Decode the raw status that ``os.waitpid`` returns."""
        if status == _UNKNOWN:
            return cls(None)
        if os.WIFEXITED(status):
            return cls(os.WEXITSTATUS(status))
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status), os.WCOREDUMP(status))
        raise ValueError(f"wait status {status:#x} is not that of an ended process "
                         "(a stopped one?)")

    @property
    def ok(self) -> bool:
        """True for exit code 0."""
        return self.code == 0

    @property
    def signal_name(self) -> str | None:
        """``"SIGSEGV"`` for a process killed by signal 11, else None."""
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def __str__(self) -> str:
        if self.code is None and self.signal is None:
            return "ended, but its status went to another waitpid (an os.wait() in a cell?)"
        if self.signal is None:
            return f"exited with code {self.code}"
        text = f"killed by {self.signal_name}"
        description = signal.strsignal(self.signal)
        if description:
            text += f" ({description})"
        return text + (", core dumped" if self.core_dumped else "")


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildResult:
    """What one child process did: its value or exception, exit status and output.

    ``value`` gives the return value, or raises :class:`ChildError` with the
    child's traceback when the function raised or the child died.
    """

    name: str
    pid: int
    status: ExitStatus
    wait_status: int                   # the raw status os.waitpid gave, before decoding
    stdout: str
    stderr: str
    seconds: float
    returned: bool
    error_type: str | None = None      # the exception's class name, if the function raised
    error_message: str = ""
    traceback: str = ""
    leftovers: tuple[str, ...] = ()    # processes the function left behind (labkit ended them)
    escaped: tuple[int, ...] = ()      # pids of forks that returned out of the function
    _value: Any = field(default=None, repr=False)
    _exception: BaseException | None = field(default=None, repr=False)

    @property
    def value(self) -> Any:
        """The function's return value (raises :class:`ChildError` if there is none)."""
        if self.returned:
            return self._value
        raise ChildError(self.failure, self.traceback, self._exception)

    @property
    def exception(self) -> BaseException | None:
        """The exception the function raised, if it could be sent back."""
        return self._exception

    @property
    def failure(self) -> str:
        """Why there is no value, in one sentence ("" if the function returned)."""
        if self.returned:
            return ""
        if self.error_type == "labkit.unpicklable":
            return f"{self.name} (pid {self.pid}) returned {self.error_message}"
        if self.error_type:
            return f"{self.name} (pid {self.pid}) raised {self.error_type}: {self.error_message}"
        return f"{self.name} (pid {self.pid}) {self.status} without returning a value"

    def __repr__(self) -> str:
        outcome = f"returned {self._value!r}" if self.returned else self.failure
        extra = f"; left behind: {', '.join(self.leftovers)}" if self.leftovers else ""
        if self.escaped:
            extra += f"; forks that returned out of the function: {list(self.escaped)}"
        return (f"<ChildResult {self.name} pid={self.pid}: {outcome}; {self.status}; "
                f"{self.seconds * 1000:.1f} ms{extra}>")


class WorkerResults(list):
    """The results of a group of workers, in worker order (a list of ChildResult)."""

    @property
    def values(self) -> list[Any]:
        """Every worker's return value; raises ChildError naming the first that failed."""
        return [r.value for r in self]

    def __repr__(self) -> str:
        return "\n".join(repr(r) for r in self)


# --- the child side ------------------------------------------------------------------


def _send(fd: int, record: dict[str, Any]) -> None:
    write_frame(fd, pickle.dumps(record))


def _pack(obj: Any) -> bytes | None:
    try:
        return pickle.dumps(obj)
    except Exception:
        return None


def _call(fn: Callable, args: tuple, kwargs: dict) -> tuple[dict, int]:
    """Run fn; describe how it ended as a record of plain data, and an exit code."""
    try:
        value = fn(*args, **kwargs)
    except SystemExit as e:
        code = e.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        return {"kind": "exit", "code": code}, code & 0xFF
    except BaseException as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next
                                                if e.__traceback__ else None))
        return {"kind": "raised", "type": type(e).__name__, "message": str(e),
                "traceback": tb, "payload": _pack(e)}, 1
    payload = _pack(value)
    if payload is None:
        return {"kind": "unpicklable", "type": type(value).__name__}, 1
    return {"kind": "ok", "payload": payload}, 0


def _end_leftovers() -> list[str]:
    """Kill and reap every descendant the function left; describe what they were.

    The child is a subreaper, so descendants whose parents died are its own
    children now, and ``waitpid(-1)`` can reap all of them.
    """
    try:  # a peek (WNOWAIT): is there any child at all?
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return []  # no children, so (as a subreaper) no descendants at all
    described: dict[int, str] = {}
    statuses: dict[int, int] = {}
    me = psutil.Process()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            kids = me.children(recursive=True)
        except psutil.Error:
            kids = []
        for kid in kids:
            try:
                zombie = kid.status() == psutil.STATUS_ZOMBIE
                if kid.pid not in described:
                    described[kid.pid] = "zombie" if zombie else kid.name()
                if not zombie:
                    kid.kill()
            except psutil.Error:
                pass  # it ended while we looked
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                statuses[pid] = status
        except ChildProcessError:
            break  # no children at all: everything is reaped
        time.sleep(0.002)
    notes = []
    for pid, what in described.items():
        ended = (str(ExitStatus.from_wait_status(statuses[pid])) if pid in statuses
                 else "still there")
        if what == "zombie":
            notes.append(f"pid {pid}: a zombie, it {ended} but nobody waited for it")
        else:
            notes.append(f"pid {pid} ({what}): still running when the function returned, "
                         "so nobody waited for it (labkit killed it)")
    return notes


def _fresh_stdio(out_w: int, err_w: int) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    # New stream objects: the kernel's own ones talk to threads that do not exist here.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the child
    sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                      errors="backslashreplace")
    sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8",  # noqa: SIM115
                      errors="backslashreplace")


def _child_main(fn: Callable, args: tuple, kwargs: dict, parent: int, res_w: int, out_w: int,
                err_w: int, close: Iterable[int], barrier: tuple[int, int] | None) -> NoReturn:
    global _result_fd
    code = _EX_HARNESS
    try:
        _result_fd = res_w  # children forked from here close it: they cannot forge our result
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # SIGINT is still held back (the fork)
        reset_inherited_ignores()
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        faulthandler.disable()  # a fault kills the child by its signal, as in C; the parent says so
        os.setpgid(0, 0)
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent:
            return  # the parent died before the death signal was armed
        set_subreaper(True)
        for fd in close:
            try:
                os.close(fd)
            except OSError:
                pass  # already closed by the function that started us
        _fresh_stdio(out_w, err_w)
        if barrier is not None:
            ready_w, go_r = barrier
            os.write(ready_w, b".")
            os.close(ready_w)
            os.read(go_r, 1)  # returns at EOF: when the parent has closed the write end
            os.close(go_r)
        me = os.getpid()
        record, code = _call(fn, args, kwargs)
        if os.getpid() != me:
            # A fork made inside fn returned out of it: end it here, never in our code.
            _send(res_w, {"kind": "escaped", "pid": os.getpid()})
            code = _EX_HARNESS
            return
        record["leftovers"] = _end_leftovers()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # the function closed or broke its own stream
        _send(res_w, record)
    finally:
        os._exit(code)


# --- the parent side -----------------------------------------------------------------


class _Proc:
    """One forked child as the parent sees it: pid, pipes, output, status."""

    def __init__(self, name: str, pid: int, pipes: dict[str, int], deadline: float,
                 prefix: str) -> None:
        self.name, self.pid, self.pipes, self.prefix = name, pid, pipes, prefix
        self.data = {kind: bytearray() for kind in pipes}
        self.partial = dict.fromkeys(pipes, b"")
        self.dropped = dict.fromkeys(pipes, 0)
        self.status: int | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.deadline = deadline
        self.plain = False  # decode the value as plain data only (the child ran untrusted code)
        try:  # readable when the child ends: the wait loop wakes at once, no polling
            self.pidfd: int | None = os.pidfd_open(pid)  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            self.pidfd = None
        CLIENT.send(f"+ pg {pid} {deadline}")

    @property
    def done(self) -> bool:
        return self.status is not None and not self.pipes

    def poll(self, block: bool = False) -> None:
        if self.status is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # someone else reaped it (a raw os.wait in a cell)
            pid, status = self.pid, _UNKNOWN
        if pid:
            self.status = status
            self.ended = time.monotonic()
            CLIENT.send(f"- pg {self.pid}")

    @property
    def died_abnormally(self) -> bool:
        """Killed by a signal: its orphans, if any, may have come to us."""
        return self.status is not None and self.status != _UNKNOWN and os.WIFSIGNALED(
            self.status)

    def close_pidfd(self, sel: selectors.BaseSelector | None) -> None:
        if self.pidfd is not None:
            if sel is not None:
                sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def read(self, kind: str, sel: selectors.BaseSelector, show: bool) -> None:
        fd = self.pipes[kind]
        chunk = os.read(fd, 65536)
        if chunk and kind != "res" and len(self.data[kind]) >= MAX_OUTPUT:
            if not self.dropped[kind] and show:
                self._stream(kind, f"\n[labkit: output beyond {MAX_OUTPUT >> 20} MiB is "
                                   "dropped]\n".encode())
            self.dropped[kind] += len(chunk)
        elif chunk:
            self.data[kind] += chunk
            if show and kind != "res":
                self._stream(kind, chunk)
        else:
            self.close_pipe(kind, sel)
            if show and kind != "res" and self.partial[kind]:
                self._stream(kind, b"\n")

    def _stream(self, kind: str, chunk: bytes) -> None:
        *lines, self.partial[kind] = (self.partial[kind] + chunk).split(b"\n")
        if lines:
            out = sys.stdout if kind == "out" else sys.stderr
            out.write("".join(self.prefix + line.decode("utf-8", "replace") + "\n"
                              for line in lines))
            out.flush()

    def close_pipe(self, kind: str, sel: selectors.BaseSelector | None) -> None:
        fd = self.pipes.pop(kind, None)
        if fd is not None:
            if sel is not None:
                sel.unregister(fd)
            os.close(fd)

    def kill_tree(self) -> None:
        """Freeze the child's group, then kill it and every descendant."""
        if self.status is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)  # members left behind by a killed child
            except OSError:
                pass
            return
        try:
            os.killpg(self.pid, signal.SIGSTOP)
        except OSError:
            pass  # already gone, or it moved: the walk below still finds descendants
        try:
            victims = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            victims = []
        for target in (self.pid, *(v.pid for v in victims)):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def _text(self, kind: str) -> str:
        text = self.data[kind].decode("utf-8", "replace")
        if self.dropped[kind]:
            text += f"\n[labkit: {self.dropped[kind]} more bytes were dropped]\n"
        return text

    def result(self) -> ChildResult:
        assert self.status is not None and self.ended is not None
        records = _records(bytes(self.data.get("res", b"")))
        # The harness writes its record last: anything written before it came from the function.
        main = next((r for r in reversed(records) if r["kind"] != "escaped"), {"kind": "died"})
        escaped = tuple(r["pid"] for r in records if r["kind"] == "escaped")
        common = dict(name=self.name, pid=self.pid,
                      status=ExitStatus.from_wait_status(self.status),
                      wait_status=self.status,
                      stdout=self._text("out"), stderr=self._text("err"),
                      seconds=self.ended - self.started, escaped=escaped,
                      leftovers=tuple(main.get("leftovers", ())))
        kind = main["kind"]
        if kind == "ok":
            try:
                value = (plain_loads if self.plain else pickle.loads)(main.get("payload", b""))
            except Exception as e:
                what = ("a value that is not plain data (" + str(e) + "); return numbers, "
                        "strings, bytes, lists, tuples, dicts or sets (copy NumPy values out "
                        "with int(), float() or .tolist())" if self.plain else
                        f"a value the parent could not unpickle ({type(e).__name__}: {e})")
                return ChildResult(returned=False, error_type="labkit.unpicklable",
                                   error_message=what, **common)
            return ChildResult(returned=True, _value=value, **common)
        if kind == "unpicklable":
            return ChildResult(returned=False, error_type="labkit.unpicklable",
                               error_message=f"a {main.get('type')}, which cannot be pickled to "
                                             "send it back to the parent; return plain data "
                                             "(numbers, strings, lists, dicts)", **common)
        if kind == "raised":
            exception = None
            if main.get("payload") is not None and not self.plain:
                try:
                    exception = pickle.loads(main["payload"])
                except Exception:
                    exception = None
            return ChildResult(returned=False, error_type=main.get("type", "?"),
                               error_message=main.get("message", ""),
                               traceback=main.get("traceback", ""),
                               _exception=exception, **common)
        return ChildResult(returned=False, **common)  # exited (sys.exit) or died from a signal


_RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "code": int, "type": str, "message": str, "traceback": str,
    "payload": (bytes, type(None)), "leftovers": list, "pid": int}


def _well_formed(record: Any) -> bool:
    """A record as the child side writes it: known fields of the right types only."""
    return (isinstance(record, dict) and isinstance(record.get("kind"), str)
            and all(isinstance(k, str) and k in _RECORD_FIELDS
                    and isinstance(v, _RECORD_FIELDS[k]) for k, v in record.items())
            and all(isinstance(x, str) for x in record.get("leftovers", [])))


def _records(data: bytes) -> list[dict[str, Any]]:
    """The well-formed records a child wrote, up to the first that cannot be decoded."""
    records = []
    for payload in split_frames(data)[0]:  # a frame cut short: the writer was killed mid-record
        try:
            record = plain_loads(payload)
        except Exception:
            break
        if _well_formed(record):
            records.append(record)
    return records


def _spawn(fn: Callable, args: tuple, kwargs: dict, name: str, deadline: float, prefix: str,
           close: list[int], barrier: tuple[int, int] | None = None,
           plain: bool = False) -> _Proc:
    if not callable(fn):
        raise TypeError(f"expected a function to run in the child, got {fn!r}")
    CLIENT.start()
    pipes: dict[str, int] = {}
    ends: list[int] = []
    try:
        for kind in ("res", "out", "err"):
            r, w = os.pipe()
            pipes[kind] = r
            ends.append(w)
        parent = os.getpid()
    except OSError as e:
        for fd in (*pipes.values(), *ends):
            os.close(fd)
        raise _fork_error(name, e) from e
    proc: _Proc | None = None
    try:
        with held_interrupts():  # an interrupt now is raised below, once proc is known
            try:
                with quiet_fork():
                    pid = os.fork()
            except OSError as e:
                for fd in (*pipes.values(), *ends):
                    os.close(fd)
                raise _fork_error(name, e) from e
            if pid == 0:
                inherited = [_result_fd] if _result_fd is not None else []
                _child_main(fn, args, kwargs, parent, *ends,
                            close=[*pipes.values(), *close, *inherited], barrier=barrier)
            for fd in ends:
                os.close(fd)
            try:
                os.setpgid(pid, pid)  # the child does it too; whoever is first wins the race
            except OSError:
                pass  # the child has already exec'd or ended
            proc = _Proc(name, pid, pipes, deadline, prefix)
            proc.plain = plain
    except KeyboardInterrupt:
        if proc is not None:  # interrupted during the fork: end the child it made
            _Group([proc], 5.0, False)._stop()
        raise
    return proc


def _fork_error(name: str, e: OSError) -> LabError:
    import resource

    which, flag = ((resource.RLIMIT_NOFILE, "-n") if e.errno in (errno.EMFILE, errno.ENFILE)
                   else (resource.RLIMIT_NPROC, "-u"))
    soft = resource.getrlimit(which)[0]
    limit = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    what = "open files" if flag == "-n" else "processes"
    return LabError(f"could not start {name}: {e.strerror or e}. The limit of {what} here "
                    f"(ulimit {flag}) is {limit}; end what you no longer need (close files, "
                    "wait for children), use fewer workers, or see `labkit doctor`.")


G = TypeVar("G", bound="_Group")


class _Group:
    """Children started together, waited for together, ended together."""

    def __init__(self, procs: list[_Proc], timeout: float, show: bool) -> None:
        self._procs = procs
        self._timeout = timeout
        self._show = show
        self._results: list[ChildResult] | None = None

    def __enter__(self: G) -> G:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End whatever still runs (kill and reap the whole tree), as leaving the ``with``
        block does; the results stay for ``wait()``/``stop()``. Calling it again does nothing."""
        if self._results is None:
            self._stop()

    @property
    def running(self) -> bool:
        """True while any of the processes has not ended."""
        for p in self._procs:
            p.poll()
        return any(p.status is None for p in self._procs)

    def _wait(self, timeout: float | None) -> list[ChildResult]:
        if self._results is not None:
            return self._results
        deadline = min(p.deadline for p in self._procs)
        if timeout is not None:
            deadline = min(deadline, time.monotonic() + seconds("timeout", timeout, above=True))
        self._collect(deadline)
        self._results = [p.result() for p in self._procs]
        return self._results

    def _stop(self) -> list[ChildResult]:
        if self._results is None:
            for p in self._procs:
                p.kill_tree()
            self._collect(time.monotonic() + 5.0)
            self._results = [p.result() for p in self._procs]
        return self._results

    def _collect(self, deadline: float) -> None:
        """Read all pipes, stream output, reap; on timeout or interrupt end everything."""
        started = time.time()
        sel = selectors.DefaultSelector()
        for p in self._procs:
            for kind, fd in p.pipes.items():
                sel.register(fd, selectors.EVENT_READ, (p, kind))
            if p.pidfd is not None:
                sel.register(p.pidfd, selectors.EVENT_READ, (p, "exit"))
        tick = 0.05 if all(p.pidfd is not None for p in self._procs) else 0.005
        forced = False
        with subreaper():
            try:
                while not all(p.done for p in self._procs):
                    left = deadline - time.monotonic()
                    if left <= 0 and any(p.status is None for p in self._procs):
                        raise self._timeout_error()
                    events = sel.select(min(max(left, 0), tick))
                    if left <= 0 and not events:  # all ended; their pipes hold nothing more
                        for p in self._procs:
                            for kind in list(p.pipes):
                                p.close_pipe(kind, sel)
                    for key, _ in events:
                        p, kind = key.data
                        if kind == "exit":
                            p.poll()
                            p.close_pidfd(sel)
                        else:
                            p.read(kind, sel, self._show)
                    for p in self._procs:
                        p.poll()
                        if p.status is not None and p.pipes and p.ended is not None:
                            forced = True
                            self._end_holders(p, sel)
            except BaseException:
                forced = True
                for p in self._procs:
                    p.kill_tree()
                for p in self._procs:
                    p.poll(block=True)
                    for kind in list(p.pipes):
                        p.close_pipe(kind, sel)
                raise
            finally:
                for p in self._procs:
                    p.close_pidfd(sel)
                sel.close()
                # A child that ended normally has reaped its own descendants (it is a
                # subreaper); only one that was killed can have left orphans to us.
                if forced or any(p.died_abnormally for p in self._procs):
                    _reap_adopted({p.pid for p in self._procs}, started)

    @staticmethod
    def _end_holders(p: _Proc, sel: selectors.BaseSelector) -> None:
        """A child ended but its pipes are still open: descendants outlived it."""
        late = time.monotonic() - p.ended  # type: ignore[operator]
        if late > _LEFTOVER_GRACE:
            p.kill_tree()
        if late > 2 * _LEFTOVER_GRACE:
            for kind in list(p.pipes):
                p.close_pipe(kind, sel)

    def _timeout_error(self) -> LabTimeout:
        late = [p for p in self._procs if p.status is None or p.pipes]
        names = [p.name for p in late]
        limit = self._timeout
        if len(names) == 1:
            message = f"{names[0]} did not finish in {limit:.1f} s; it was killed"
        else:
            message = (f"{', '.join(names[:-1])} and {names[-1]} did not finish in "
                       f"{limit:.1f} s; they were killed")
        finished = [p.result() for p in self._procs if p not in late]
        return LabTimeout(message, finished)


def _reap_adopted(ours: set[int], since: float) -> None:
    """Kill and reap the orphans we adopted (as subreaper) while waiting for ``ours``.

    An adopted orphan is a child we did not fork ourselves that is in one of
    our children's process groups (each child leads its own), or that was born
    after the wait began (descendants that left their group with setsid).
    """
    me = psutil.Process()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        adopted = []
        try:
            for c in me.children():
                if c.pid in ours:
                    continue
                try:
                    if os.getpgid(c.pid) in ours or c.create_time() >= since:
                        adopted.append(c)
                except (OSError, psutil.Error):
                    continue
        except psutil.Error:
            return
        if not adopted:
            return
        for c in adopted:
            try:
                c.kill()
                os.waitpid(c.pid, os.WNOHANG)
            except (psutil.Error, ChildProcessError):
                pass
        time.sleep(0.002)


class Child(_Group):
    """A function running in a child process, as returned by :func:`start`.

    Use it as a context manager: leaving the block ends the child (and all it
    started) if it is still running.
    """

    def __init__(self, proc: _Proc, timeout: float, show: bool) -> None:
        super().__init__([proc], timeout, show)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._procs[0].pid

    def send_signal(self, sig: int | str | signal.Signals) -> None:
        """Send a signal to the child: ``child.send_signal("SIGUSR1")``."""
        signum = to_signal(sig)
        p = self._procs[0]
        p.poll()
        if p.status is not None:
            raise LabError(f"{p.name} (pid {p.pid}) has already ended "
                           f"({ExitStatus.from_wait_status(p.status)}); there is nothing "
                           f"to send {signum.name} to")
        os.kill(p.pid, signum)

    def wait(self, timeout: float | None = None) -> ChildResult:
        """Wait for the child to end and return its result.

        Waits at most ``timeout`` seconds (default: what is left of the
        timeout given to :func:`start`); then kills it and raises LabTimeout.
        """
        return self._wait(timeout)[0]

    def stop(self) -> ChildResult:
        """End the child now (SIGKILL to it and its descendants) and return its result."""
        return self._stop()[0]

    def __repr__(self) -> str:
        state = "running" if self._results is None else "ended"
        return f"<Child {self._procs[0].name} pid={self.pid} {state}>"


class Workers(_Group):
    """A group of worker processes, as returned by :func:`start_workers`."""

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, in worker order."""
        return [p.pid for p in self._procs]

    def wait(self, timeout: float | None = None) -> WorkerResults:
        """Wait for every worker; on timeout kill them all and raise LabTimeout."""
        return WorkerResults(self._wait(timeout))

    def stop(self) -> WorkerResults:
        """End every worker now and return their results."""
        return WorkerResults(self._stop())

    def __repr__(self) -> str:
        state = "running" if self._results is None else "ended"
        return f"<Workers {len(self._procs)} pids={self.pids} {state}>"


def start(fn: Callable, *args: Any, timeout: float = DEFAULT_TIMEOUT, show: bool = True,
          name: str = "child", plain: bool = False, **kwargs: Any) -> Child:
    """Start ``fn(*args, **kwargs)`` in a child process and return at once.

    The child is killed, with all it started, after ``timeout`` seconds, when
    :meth:`Child.stop` is called, or when the ``with`` block ends. With
    ``plain=True`` its value is decoded as built-in data only (see
    :func:`plain_loads`): for a child that runs code this process must not trust.

    >>> import time
    >>> with start(time.sleep, 10, timeout=5) as child:
    ...     child.send_signal("SIGTERM")
    ...     print(child.wait().status)
    killed by SIGTERM (Terminated)
    """
    timeout = seconds("timeout", timeout, above=True)
    deadline = time.monotonic() + timeout
    return Child(_spawn(fn, args, kwargs, name, deadline, "", [], plain=plain), timeout, show)


def run(fn: Callable, *args: Any, timeout: float = DEFAULT_TIMEOUT, show: bool = True,
        **kwargs: Any) -> ChildResult:
    """Run ``fn(*args, **kwargs)`` in a child process and wait for it.

    The child's printed output appears in the cell (``show=False`` keeps it
    only in the result). After ``timeout`` seconds the child and everything
    it started are killed and :class:`LabTimeout` is raised; an interrupt
    (the stop button) does the same and raises KeyboardInterrupt.

    >>> import os
    >>> r = run(os.getpid)
    >>> r.value == r.pid != os.getpid()
    True
    >>> str(run(os._exit, 3).status)
    'exited with code 3'
    """
    with start(fn, *args, timeout=timeout, show=show, **kwargs) as child:
        return child.wait()


def _ready_main(fn: Callable, r: int, w: int, args: tuple, kwargs: dict) -> Any:
    os.close(r)
    fd = [w]

    def ready() -> None:
        if fd[0] >= 0:
            os.write(fd[0], b"!")
            os.close(fd[0])
            fd[0] = -1

    try:
        return fn(ready, *args, **kwargs)
    finally:
        if fd[0] >= 0:
            os.close(fd[0])


def start_ready(fn: Callable, *args: Any, timeout: float = 10.0, show: bool = True,
                name: str = "child", **kwargs: Any) -> Child:
    """Start ``fn(ready, *args, **kwargs)`` in a child; return once it has called ``ready()``.

    The child calls ``ready()`` when it has set itself up (handlers
    installed, signals blocked), so the parent never signals it too early.
    Raises ChildError if the child ends before it is ready, LabTimeout (and
    kills it) if it is not ready within ``timeout``.

    >>> def child(ready):
    ...     signal.signal(signal.SIGUSR1, lambda *_: print("got SIGUSR1"))
    ...     ready()
    ...     time.sleep(0.5)     # the handler runs during the sleep, which then goes on
    >>> with start_ready(child, timeout=5) as c:
    ...     c.send_signal("USR1")
    ...     print(c.wait().status)
    got SIGUSR1
    exited with code 0
    """
    timeout = seconds("timeout", timeout, above=True)
    r, w = os.pipe()
    try:
        child = start(_ready_main, fn, r, w, args, kwargs, timeout=timeout, show=show, name=name)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready:
            child.stop()
            raise LabTimeout(f"{name} (pid {child.pid}) did not call ready() within "
                             f"{timeout:g} s; it was killed")
        if not os.read(r, 1):
            result = child.wait()
            why = result.failure or f"{name} (pid {result.pid}) returned without calling ready()"
            raise ChildError(f"{why}, before it was ready", result.traceback, result.exception)
    except BaseException:
        child.stop()
        raise
    finally:
        os.close(r)
    return child


def start_workers(fn: Callable, n: int, *args: Any, timeout: float = DEFAULT_TIMEOUT,
                  show: bool = True, **kwargs: Any) -> Workers:
    """Start ``n`` workers, each running ``fn(i, *args, **kwargs)`` with its index ``i``.

    Every worker is forked first and waits at a start barrier; they are
    released together, so they really run at the same time. Each output line
    is shown prefixed with ``[worker i]``.

    >>> with start_workers(pow, 3, 2) as ws:
    ...     ws.wait().values
    [0, 1, 4]
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"n must be a whole number of workers from 1 to {MAX_WORKERS}, "
                         f"got {n!r}")
    timeout = seconds("timeout", timeout, above=True)
    deadline = time.monotonic() + timeout
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    procs: list[_Proc] = []
    try:
        for i in range(n):
            inherited = [fd for p in procs for fd in p.pipes.values()]
            procs.append(_spawn(fn, (i, *args), kwargs, f"worker {i}", deadline,
                                f"[worker {i}] ", [ready_r, go_w, *inherited],
                                barrier=(ready_w, go_r)))
        os.close(ready_w)
        ready_w = -1
        _await_ready(ready_r, n, deadline)
    except BaseException:
        group = Workers(procs, timeout, show)
        if procs:
            group._stop()
        raise
    finally:
        for fd in (ready_r, ready_w, go_r):
            if fd >= 0:
                os.close(fd)
        os.close(go_w)  # EOF on the go pipe: every worker starts now
    return Workers(procs, timeout, show)


def _await_ready(ready_r: int, n: int, deadline: float) -> None:
    count = 0
    while count < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabTimeout(f"only {count} of {n} workers reached the start barrier in time; "
                             "they were killed")
        ready = selectors.DefaultSelector()
        ready.register(ready_r, selectors.EVENT_READ)
        events = ready.select(left)
        ready.close()
        if events:
            chunk = os.read(ready_r, n)
            if not chunk:
                raise LabError(f"{n - count} workers died before the start barrier")
            count += len(chunk)


def run_workers(fn: Callable, n: int, *args: Any, timeout: float = DEFAULT_TIMEOUT,
                show: bool = True, **kwargs: Any) -> WorkerResults:
    """Run ``n`` workers together (see :func:`start_workers`) and wait for all of them.

    >>> run_workers(pow, 3, 2).values
    [0, 1, 4]
    """
    with start_workers(fn, n, *args, timeout=timeout, show=show, **kwargs) as workers:
        return workers.wait()


# --- the process tree ----------------------------------------------------------------


@dataclass
class ProcessNode:
    """One process in a tree snapshot taken from the live system."""

    pid: int
    ppid: int
    name: str
    status: str
    children: list[ProcessNode] = field(default_factory=list)

    def walk(self) -> Iterable[ProcessNode]:
        """This node and all below it, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


def process_tree(pid: int | None = None, max_depth: int = 6) -> ProcessNode:
    """Snapshot the tree of processes below ``pid`` (default: this process).

    >>> tree = process_tree()
    >>> tree.pid == os.getpid()
    True
    """
    from ._validate import pid as valid_pid
    from ._validate import whole

    if pid is not None:
        valid_pid(pid)
    whole("max_depth", max_depth, 0, 64, "generations")
    try:
        root = psutil.Process(pid if pid is not None else os.getpid())
    except psutil.NoSuchProcess as e:
        raise LabError(f"there is no process {pid} (it never existed, or it has ended and "
                       "been reaped)") from e

    def node(p: psutil.Process, depth: int) -> ProcessNode:
        with p.oneshot():
            try:
                name, status, ppid = p.name(), p.status(), p.ppid()
            except psutil.ZombieProcess:
                name, status, ppid = "?", psutil.STATUS_ZOMBIE, p.ppid()
        kids = []
        if depth < max_depth:
            try:
                kids = [node(c, depth + 1) for c in sorted(p.children(), key=lambda c: c.pid)]
            except psutil.Error:
                pass  # it ended while we looked
        return ProcessNode(p.pid, ppid, name, status, kids)

    return node(root, 0)


def plot_process_tree(tree: ProcessNode, title: str = "Process tree",
                      labels: dict[int, str] | None = None, ax: Any = None) -> Any:
    """Draw a tree snapshot: one box per process (pid, name, state), parents above children.

    ``labels`` replaces the name of some pids (``{os.getpid(): "this kernel"}``).
    Zombies are drawn in red, stopped processes in orange. Returns the axes.
    """
    labels = labels or {}
    import matplotlib.pyplot as plt

    positions: dict[int, tuple[float, float]] = {}
    next_leaf = [0.0]

    def place(n: ProcessNode, depth: int) -> float:
        if n.children:
            xs = [place(c, depth + 1) for c in n.children]
            x = sum(xs) / len(xs)
        else:
            x = next_leaf[0]
            next_leaf[0] += 1
        positions[n.pid] = (x, -depth)
        return x

    place(tree, 0)
    width = max(next_leaf[0], 1)
    depth = 1 - min(y for _, y in positions.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2.2 * width + 1, 14), 1.4 * depth + 0.8))
    colours = {psutil.STATUS_ZOMBIE: "#f4a6a6", psutil.STATUS_STOPPED: "#f7c97f"}
    for n in tree.walk():
        x, y = positions[n.pid]
        for c in n.children:
            cx, cy = positions[c.pid]
            ax.plot([x, cx], [y - 0.18, cy + 0.18], color="grey", lw=1, zorder=1)
        ax.text(x, y, f"{n.pid}\n{labels.get(n.pid, n.name)[:16]}\n{n.status}",
                ha="center", va="center",
                fontsize=8, zorder=2,
                bbox={"boxstyle": "round", "fc": colours.get(n.status, "#cfe3f7"), "ec": "grey"})
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-depth + 0.5, 0.5)
    ax.set_yticks([-d for d in range(depth)], [f"depth {d}" for d in range(depth)])
    ax.set_xticks([])
    ax.set_title(title)
    ax.set_ylabel("generation below the root")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return ax
