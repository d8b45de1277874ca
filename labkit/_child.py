"""The child's side of a fork: what runs in a labkit child between ``fork`` and ``_exit``.

Kept apart from :mod:`labkit.processes` (the parent's side) because nothing
here may ever return into the caller: every path ends in ``os._exit``. The
child resets its signals, leaves the kernel's process group, arms its
parent-death signal, becomes a subreaper, runs the function, ends whatever
the function left running, and sends one framed record of plain data back.
"""
from __future__ import annotations

import faulthandler
import gc
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import psutil

from ._janitor import CLIENT
from ._platform import reset_inherited_ignores, set_parent_death_signal, set_subreaper
from .framing import write_frame
from .results import ExitStatus
from .session import start_ticks
from .waiting import wait_until

__all__ = ["child_main", "result_fd", "send"]

EX_HARNESS = 70        # exit code when labkit's own harness failed (EX_SOFTWARE)
_result_fd: int | None = None  # in a labkit child: its own result pipe, never inherited below it


def result_fd() -> int | None:
    """In a labkit child, its own result pipe (children forked below must close it)."""
    return _result_fd


def send(fd: int, record: dict[str, Any]) -> None:
    write_frame(fd, pickle.dumps(record))


def _pack(obj: Any) -> bytes | None:
    try:
        return pickle.dumps(obj)
    except Exception:
        return None


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
          ) -> tuple[dict[str, Any], int]:
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

    def all_reaped() -> bool:
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
                    return False
                statuses[pid] = status
        except ChildProcessError:
            return True  # no children at all: everything is reaped

    wait_until(all_reaped, 2.0, None, every=0.002)
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


def child_main(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               parent: int, res_w: int, out_w: int, err_w: int, close: Iterable[int],
               barrier: tuple[int, int] | None, deadline: float) -> NoReturn:
    """The whole life of a labkit child after ``fork``: it never returns, however it ends."""
    code = EX_HARNESS
    try:
        code = _live(fn, args, kwargs, parent, res_w, out_w, err_w, close, barrier, deadline)
    finally:
        os._exit(code)


def _live(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], parent: int,
          res_w: int, out_w: int, err_w: int, close: Iterable[int],
          barrier: tuple[int, int] | None, deadline: float) -> int:
    """Set the child up, run ``fn``, send its record; the exit code."""
    global _result_fd
    # The parent's objects stay the parent's: the child's garbage collections never walk
    # them. A full collection over a kernel's heap takes tens of milliseconds, and writing
    # every object's GC header would copy every page of that heap into the child.
    gc.freeze()
    _result_fd = res_w  # children forked from here close it: they cannot forge our result
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # SIGINT is still held back (the fork)
    reset_inherited_ignores()
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    faulthandler.disable()  # a fault kills the child by its signal, as in C; the parent says so
    os.setpgid(0, 0)
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        return EX_HARNESS  # the parent died before the death signal was armed
    # The janitor learns of our group from us too, before fn can fork: a kernel killed
    # between its fork and its own word to the janitor would leave fn's children unknown.
    CLIENT.watch_group(os.getpid(), deadline, start_ticks(os.getpid()))
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
        send(res_w, {"kind": "escaped", "pid": os.getpid()})
        return EX_HARNESS
    record["leftovers"] = _end_leftovers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # the function closed or broke its own stream
    send(res_w, record)
    return code
