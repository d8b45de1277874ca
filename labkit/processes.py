"""Run Python functions in real child processes, safely, from a notebook cell.

A bare ``os.fork()`` in a Jupyter kernel is a trap: a child that raises and
skips ``os._exit`` carries on as a second kernel, its output never reaches the
cell under test runners, a hung child hangs the cell, and a forgotten
``waitpid`` leaves a zombie. This module forks labkit's children (lesson
modules never call ``os.fork`` themselves), and it closes each of those traps:

* **the fork** holds SIGINT back (an interrupt that lands in the fork's own
  hooks would be lost) and delivers it to the cell right after, once the
  child is known and can be ended with the rest;
* **the child** (:mod:`labkit._child`) resets SIGINT, and every signal the kernel inherited as
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
import os
import pickle
import select
import selectors
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

from ._child import child_main, result_fd
from ._janitor import CLIENT
from ._platform import (
    held_interrupts,
    quiet_fork,
    subreaper,
)
from ._validate import seconds, whole
from .errors import ChildError, LabError, LabTimeout
from .framing import plain_loads, split_frames
from .results import UNKNOWN_STATUS, ChildResult, ExitStatus, WorkerResults, to_signal
from .session import kill_group, start_ticks
from .waiting import cpu_wait, overdue, wait_until

__all__ = [
    "Child",
    "ChildResult",
    "ExitStatus",
    "WorkerResults",
    "Workers",
    "run",
    "run_workers",
    "start",
    "start_ready",
    "start_workers",
    "to_signal",
]

DEFAULT_TIMEOUT = 10.0
MAX_WORKERS = 256
_LEFTOVER_GRACE = 0.5   # seconds a finished child's pipes may stay open before we kill holders
MAX_OUTPUT = 1 << 20    # bytes of stdout (and of stderr) kept per child; the rest is dropped


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
        self.born = start_ticks(pid)  # not reaped yet: the number is still this child's
        self.ended: float | None = None
        self.deadline = deadline
        self.plain = False  # decode the value as plain data only (the child ran untrusted code)
        try:  # readable when the child ends: the wait loop wakes at once, no polling
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        CLIENT.watch_group(pid, deadline, self.born)

    @property
    def done(self) -> bool:
        return self.status is not None and not self.pipes

    def poll(self, block: bool = False) -> None:
        if self.status is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # someone else reaped it (a raw os.wait in a cell)
            pid, status = self.pid, UNKNOWN_STATUS
        if pid:
            self.status = status
            self.ended = time.monotonic()
            CLIENT.forget_group(self.pid)

    @property
    def died_abnormally(self) -> bool:
        """Killed by a signal: its orphans, if any, may have come to us."""
        return self.status is not None and self.status != UNKNOWN_STATUS and os.WIFSIGNALED(
            self.status)

    def close_pidfd(self, sel: selectors.BaseSelector | None) -> None:
        # Interrupts held: one raised inside unregister (Python code) would leave the fd half
        # forgotten, and the cleanup's second try would raise KeyError instead of it.
        with held_interrupts():
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
        with held_interrupts():  # as in close_pidfd: never a descriptor half closed
            fd = self.pipes.pop(kind, None)
            if fd is not None:
                if sel is not None:
                    sel.unregister(fd)
                os.close(fd)

    def kill_tree(self) -> None:
        """Freeze the child's group, then kill it and every descendant."""
        if self.status is not None:  # reaped: members left behind, unless the number is reused
            kill_group(self.pid, self.born)
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
        main: dict[str, Any] = next((r for r in reversed(records) if r["kind"] != "escaped"),
                                    {"kind": "died"})
        escaped = tuple(r["pid"] for r in records if r["kind"] == "escaped")
        common: dict[str, Any] = {
            "name": self.name, "pid": self.pid,
            "status": ExitStatus.from_wait_status(self.status), "wait_status": self.status,
            "stdout": self._text("out"), "stderr": self._text("err"),
            "seconds": self.ended - self.started, "escaped": escaped,
            "leftovers": tuple(main.get("leftovers", ()))}
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


def _spawn(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str, deadline: float, prefix: str,
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
                inherited = [mine] if (mine := result_fd()) is not None else []
                child_main(fn, args, kwargs, parent, ends[0], ends[1], ends[2],
                            close=[*pipes.values(), *close, *inherited], barrier=barrier,
                            deadline=deadline)
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
        self._began = time.monotonic()

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

    def _wait(self, timeout: float | None, load_slack: bool = False) -> list[ChildResult]:
        if self._results is not None:
            return self._results
        last = min(p.deadline for p in self._procs)
        deadline = last
        if timeout is not None:
            deadline = min(last, time.monotonic() + seconds("timeout", timeout, above=True))
        self._collect(deadline, last if load_slack else deadline)
        self._results = [p.result() for p in self._procs]
        return self._results

    def _stop(self) -> list[ChildResult]:
        if self._results is None:
            for p in self._procs:
                p.kill_tree()
            self._collect(time.monotonic() + 5.0)
            self._results = [p.result() for p in self._procs]
        return self._results

    def _collect(self, deadline: float, last: float | None = None) -> None:
        """Read all pipes, stream output, reap; on timeout or interrupt end everything.
        Past ``deadline``, the group is given the seconds it waited for a CPU, up to ``last``."""
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
                        now = time.monotonic()
                        if last is None or now >= last or overdue(
                                self._began, deadline - self._began,
                                lambda: cpu_wait(q.pid for q in self._procs)):
                            raise self._timeout_error()
                        left = tick  # a loaded machine makes it slow, not stuck
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

    def none_left() -> bool:
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
            return True
        for c in adopted:
            try:
                c.kill()
                os.waitpid(c.pid, os.WNOHANG)
            except (psutil.Error, ChildProcessError):
                pass
        return not adopted

    wait_until(none_left, 2.0, None, every=0.002)


def _held_start(make: Callable[[], G]) -> G:
    """``make()`` with interrupts held; an interrupt meanwhile ends what it made, then is raised.

    Without the hold, an interrupt between the fork and the caller's ``with``
    block would leave a child nobody waits for (until its deadline).
    """
    made: list[G] = []
    try:
        with held_interrupts():
            made.append(make())
    except KeyboardInterrupt:
        for group in made:
            group._stop()
        raise
    return made[0]


def _waited(make: Callable[[], _Group]) -> list[ChildResult]:
    """Start a group with ``make()`` and wait for it; it is ended however the wait ends."""
    made: list[_Group] = []
    try:
        with held_interrupts():  # an interrupt that comes now finds the group in `made`
            made.append(make())
        return made[0]._wait(None)
    finally:
        for group in made:
            group._stop()  # nothing to do once the wait has finished


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

    def wait(self, timeout: float | None = None, load_slack: bool = False) -> ChildResult:
        """Wait for the child to end and return its result.

        Waits at most ``timeout`` seconds (default: what is left of the
        timeout given to :func:`start`); then kills it and raises LabTimeout.
        With ``load_slack=True``, the seconds the child (and what it started)
        spent ready to run but waiting for a CPU are added to ``timeout``, up to
        the timeout given to :func:`start`: a loaded machine makes it slower, not
        wrong, and a child that sleeps or spins alone gets nothing more.
        """
        return self._wait(timeout, load_slack)[0]

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


def start(fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT, show: bool = True,
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
    return _held_start(lambda: Child(_spawn(fn, args, kwargs, name, deadline, "", [],
                                            plain=plain), timeout, show))


def run(fn: Callable[..., Any], *args: Any, timeout: float = DEFAULT_TIMEOUT, show: bool = True,
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
    return _waited(lambda: start(fn, *args, timeout=timeout, show=show, **kwargs))[0]


def _ready_main(fn: Callable[..., Any], r: int, w: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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


def start_ready(fn: Callable[..., Any], *args: Any, timeout: float = 10.0, show: bool = True,
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


def start_workers(fn: Callable[..., Any], workers: int, *args: Any, timeout: float = DEFAULT_TIMEOUT,
                  show: bool = True, **kwargs: Any) -> Workers:
    """Start ``workers`` processes, each running ``fn(i, *args, **kwargs)`` with its index ``i``.

    Every worker is forked first and waits at a start barrier; they are
    released together, so they really run at the same time. Each output line
    is shown prefixed with ``[worker i]``.

    >>> with start_workers(pow, 3, 2) as ws:
    ...     ws.wait().values
    [0, 1, 4]
    """
    whole("workers", workers, 1, MAX_WORKERS, "workers")
    timeout = seconds("timeout", timeout, above=True)
    deadline = time.monotonic() + timeout
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    procs: list[_Proc] = []
    try:
        for i in range(workers):
            inherited = [fd for p in procs for fd in p.pipes.values()]
            procs.append(_spawn(fn, (i, *args), kwargs, f"worker {i}", deadline,
                                f"[worker {i}] ", [ready_r, go_w, *inherited],
                                barrier=(ready_w, go_r)))
        os.close(ready_w)
        ready_w = -1
        _await_ready(ready_r, workers, deadline)
    except BaseException:
        if procs:
            Workers(procs, timeout, show)._stop()
        raise
    finally:
        for fd in (ready_r, ready_w, go_r):
            if fd >= 0:
                os.close(fd)
        os.close(go_w)  # EOF on the go pipe: every worker starts now
    return _held_start(lambda: Workers(procs, timeout, show))


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


def run_workers(fn: Callable[..., Any], workers: int, *args: Any, timeout: float = DEFAULT_TIMEOUT,
                show: bool = True, **kwargs: Any) -> WorkerResults:
    """Run ``workers`` processes together (see :func:`start_workers`) and wait for all of them.

    >>> run_workers(pow, 3, 2).values
    [0, 1, 4]
    """
    return WorkerResults(_waited(lambda: start_workers(fn, workers, *args, timeout=timeout,
                                                       show=show, **kwargs)))
