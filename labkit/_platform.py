"""Linux process controls that the standard library does not wrap.

``prctl`` is reached through ctypes because ``os`` has no binding for it. On
other systems the calls become no-ops and :data:`LINUX` is false, so callers
can say what is missing instead of crashing.
"""
from __future__ import annotations

import contextlib
import ctypes
import inspect
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator

LINUX = sys.platform.startswith("linux")
MACOS = sys.platform == "darwin"

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def libc() -> ctypes.CDLL:
    """The C library this interpreter runs on, for the calls ``os`` does not wrap.

    It is the process's own symbol table (``dlopen(NULL)``), found without a search:
    ``ctypes.util.find_library`` runs ``ldconfig`` in a new process on every call.

    >>> libc().getpid() == os.getpid()
    True
    """
    return ctypes.CDLL(None, use_errno=True)


_libc = libc() if LINUX else None


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


def reset_inherited_ignores() -> list[int]:
    """Give every signal ignored since the kernel started its default action again.

    A JupyterLab started from a script (``nohup``, ``&``, some service
    managers) may run its kernel with SIGQUIT or SIGINT ignored, and children
    inherit that: lesson 01's "default action" would then lie. labkit calls
    this in every child and program it starts; it returns the signal numbers
    it reset. SIGPIPE and SIGXFSZ, which Python itself ignores at start-up
    (a broken pipe is an exception, not a death), stay as they are.

    It is self-contained (its source opens the programs labkit starts).

    >>> reset_inherited_ignores()  # doctest: +SKIP
    [3]
    """
    import signal as sig

    keep = {sig.SIGPIPE, sig.SIGKILL, sig.SIGSTOP, getattr(sig, "SIGXFSZ", sig.SIGPIPE)}
    reset = []
    for signum in sorted(sig.valid_signals()):
        if signum in keep:
            continue
        try:
            if sig.getsignal(signum) is sig.SIG_IGN:
                sig.signal(signum, sig.SIG_DFL)
                reset.append(int(signum))
        except (OSError, ValueError):
            continue  # a number the C library keeps for itself (its real-time signals)
    if sig.SIGINT in reset:
        sig.signal(sig.SIGINT, sig.default_int_handler)  # Ctrl-C is KeyboardInterrupt again
    return reset


def _program_start() -> None:
    """Open a program labkit started: die with its starter, clean signal dispositions.

    Self-contained: its source, not an import, runs first in the new program,
    so the parent-death signal is armed before anything slow. Arming it after
    the starter died would arm nothing, hence the check of the parent's pid.
    """
    import ctypes
    import os
    import signal as sig

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # no prctl (macOS): the janitor still ends the program's group
    if os.getppid() != int(os.environ.pop("LABKIT_PARENT", os.getppid())):
        os._exit(70)  # the lab ended before the death signal was armed
    reset_inherited_ignores()
    sig.pthread_sigmask(sig.SIG_SETMASK, set())


# The opening of every Python program labkit starts with subprocess (servers, unrelated
# processes, strangers): run it with ``python -c PROGRAM_PRELUDE + code`` and
# :func:`program_env`.
PROGRAM_PRELUDE = (inspect.getsource(reset_inherited_ignores) + "\n\n"
                   + inspect.getsource(_program_start) + "\n\n_program_start()\n")


def program_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a program that opens with :data:`PROGRAM_PRELUDE`."""
    out = dict(os.environ if env is None else env)
    out["LABKIT_PARENT"] = str(os.getpid())
    return out


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold SIGINT back for the block (a fork), then deliver it to the caller.

    ``os.fork()`` runs Python code after the fork (logging's lock hooks); a
    KeyboardInterrupt raised there is printed as "Exception ignored" and
    lost, and the cell runs on. So SIGINT is blocked in this thread, and a
    SIGINT that another thread of the kernel receives meanwhile is noted
    instead of raised. At the end of the block the handler is restored, the
    mask lifted, and a noted interrupt raised here, where the caller can end
    what it started. A forked child inherits the block and the mask: it must
    set its own SIGINT disposition, then unblock (``pthread_sigmask``).

    >>> with held_interrupts():
    ...     pass
    """
    noted: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    # Only the main thread may set handlers, and a handler set from C (None) cannot be put
    # back from Python: then the mask alone holds SIGINT back in this thread.
    main = threading.current_thread() is threading.main_thread() and before is not None
    if main:
        signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # The mask first: once ``before`` is back, a pending interrupt may raise here, and
        # it must never leave SIGINT blocked (every later interrupt would then be lost).
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGINT arrives now
        finally:
            if main:
                signal.signal(signal.SIGINT, before)
        if noted:
            signal.raise_signal(signal.SIGINT)
