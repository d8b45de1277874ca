"""Linux process controls that the standard library does not wrap.

``prctl`` is reached through ctypes because ``os`` has no binding for it. On
other systems the calls become no-ops and :data:`LINUX` is false, so callers
can say what is missing instead of crashing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import warnings
from collections.abc import Iterator

LINUX = sys.platform.startswith("linux")
MACOS = sys.platform == "darwin"

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if LINUX else None


def _prctl(option: int, arg: int | ctypes.c_void_p) -> int:
    if _libc is None:
        return -1
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux)."""
    _prctl(_PR_SET_PDEATHSIG, signum)


def set_process_name(name: str) -> None:
    """Set the name ``ps`` and psutil show for this process (at most 15 bytes, Linux)."""
    _prctl(_PR_SET_NAME, ctypes.cast(ctypes.c_char_p(name.encode()[:15]), ctypes.c_void_p))


def set_subreaper(on: bool) -> None:
    """Make orphaned descendants of this process its children, not PID 1's (Linux)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, int(on))


def is_subreaper() -> bool:
    """Whether this process adopts its orphaned descendants."""
    if _libc is None:
        return False
    flag = ctypes.c_int(0)
    _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.cast(ctypes.pointer(flag), ctypes.c_void_p))
    return bool(flag.value)


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Adopt orphaned descendants for the duration of the block, then restore."""
    before = is_subreaper()
    if not before:
        set_subreaper(True)
    try:
        yield
    finally:
        if not before:
            set_subreaper(False)


@contextlib.contextmanager
def quiet_fork() -> Iterator[None]:
    """Silence Python 3.12+'s "multi-threaded, use of fork()" warning for labkit's own forks.

    The warning exists because a thread of the parent may hold a lock (of
    malloc, of a logger, of the kernel's output stream) at the moment of the
    fork; the child would then wait for it forever. labkit's children never
    touch the parent's threads or their objects: they get fresh standard
    streams, run only the given function and end with ``os._exit``, and a
    timeout kills them should they still block. A raw ``os.fork()`` in a
    cell keeps the warning, and lesson 00 explains it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                                category=DeprecationWarning)
        yield
