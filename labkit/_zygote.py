"""The zygote: one warm process per grading batch that forks each submission's supervisor.

Starting ``python -m labkit._sandbox`` for every submission paid for a new
interpreter and labkit's imports, and stage 2 paid for them again after
re-executing inside the sandbox. The zygote is started once per batch
(``python -m labkit._sandbox``, by :class:`Zygote`), imports what the
sandbox's processes use, and from then on only forks: each fork becomes one
submission's supervisor and does exactly what a freshly started one did (a
cgroup, new namespaces, an allowlisted root, no capabilities); its process 1
goes on into stage 2 in the same interpreter instead of executing a new one.

What keeps submissions apart, and the grader's secrets out of all of them:

* the zygote never sees a submission: the grader hands it only the three
  pipe ends of a new supervisor (``SCM_RIGHTS``) and writes the submission
  to that supervisor itself; a fork never reports back into the zygote;
* it forks only while single-threaded (checked before every fork: a fork
  copies only the calling thread, and a lock another thread held stays held);
* its environment is the sandbox's allowlist and nothing else (checked at
  start), so the grader's environment is in no process of the batch, not
  even in ``/proc/PID/environ``; its working folder is ``/`` and is not on
  ``sys.path``;
* labkit's modules hold per-process state (the session's pid and uid): stage
  2 drops every labkit module it inherited and imports them afresh inside
  the sandbox (:func:`labkit._sandbox.fresh_labkit`);
* it ends when the grader does (its socket's end, and a parent-death signal).

Work done once per batch: besides its imports, the zygote compiles labkit's
modules to code objects (nothing of them runs); stage 2 executes those afresh
instead of compiling each module again (:func:`use_precompiled`: bytecode
caches are not written here, so every import compiled from source).

A supervisor is not the grader's child: the grader holds a pidfd for it
(:class:`Supervisor`), which cannot be confused with a later process that
reuses the pid.
"""
from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import CodeType, ModuleType
from typing import IO

from labkit import _isolation as iso
from labkit.errors import ZygoteError

# The cell runner's imports, and the checks' (numpy: only with one BLAS thread, see _preload).
PRELOAD = ("IPython.core.interactiveshell", "traitlets.config", "numpy")
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _single_threaded() -> bool:
    return len(os.listdir("/proc/self/task")) == 1


_CODE: dict[str, tuple[tuple[int, int], CodeType]] = {}  # path -> ((mtime, size), code)


def _precompile() -> None:
    """Compile every module of the labkit package (not run: code objects only)."""
    for path in sorted(Path(iso.__file__).resolve().parent.rglob("*.py")):
        info = path.stat()
        _CODE[str(path)] = ((info.st_mtime_ns, info.st_size),
                            compile(path.read_bytes(), str(path), "exec", dont_inherit=True))


class _PrecompiledLoader(importlib.machinery.SourceFileLoader):
    """Loads a labkit module from the zygote's code object while its file is unchanged."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        info = os.stat(path)
        found = _CODE.get(path)
        if found and found[0] == (info.st_mtime_ns, info.st_size):
            return found[1]
        code = super().get_code(fullname)
        assert code is not None  # a source file always gives code (or raises)
        return code


class _PrecompiledFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] != "labkit":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec and isinstance(spec.loader, importlib.machinery.SourceFileLoader) \
                and spec.origin in _CODE:
            spec.loader = _PrecompiledLoader(fullname, spec.origin)
        return spec


def use_precompiled() -> None:
    """Import labkit's modules from the code the zygote compiled (they still run afresh)."""
    sys.meta_path.insert(0, _PrecompiledFinder())


def _preload() -> None:
    """Import :data:`PRELOAD`. A BLAS library starts its threads when it loads, unless told
    to use one: the variables are set for the import only (they never reach a sandbox)."""
    os.environ.update(dict.fromkeys(ONE_THREAD, "1"))
    try:
        for module in PRELOAD:
            __import__(module)
    finally:
        for name in ONE_THREAD:
            del os.environ[name]
    _precompile()
    if not _single_threaded():
        raise SystemExit(f"importing {', '.join(PRELOAD)} started threads: the zygote "
                         "cannot fork safely")


def serve(allowed_env: frozenset[str], supervise: Callable[[], None]) -> None:
    """The zygote's loop on its socket (fd 0): fork a supervisor for each request.

    ``supervise`` is called in each fork, with the new supervisor's pipes on fd 0, 1 and 2.
    """
    if not set(os.environ) <= allowed_env:
        raise SystemExit("the zygote's environment holds more than the sandbox's allowlist: "
                         f"{sorted(set(os.environ) - allowed_env)}")
    iso.die_with_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader decides; the socket is the lifeline
    _preload()
    gc.freeze()  # what every supervisor inherits is never walked by its garbage collections
    requests = socket.socket(fileno=0)
    while True:
        while True:  # reap the supervisors that ended (the grader follows them by pidfd)
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not select.select([requests], [], [], 1.0)[0]:
            continue
        _message, fds, _flags, _address = socket.recv_fds(requests, 16, 3)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return  # the grader closed its end (or is gone): the batch is over
        if not _single_threaded():
            raise SystemExit("the zygote has more than one thread: it refuses to fork")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                requests.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                supervise()
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(requests, [str(pid).encode()], [pidfd])
        finally:
            os.close(pidfd)


class Supervisor:
    """A supervisor forked by the zygote: its pipes, and a pidfd to wait for it and kill it.

    The subset of :class:`subprocess.Popen` the grader uses (the exit code is not known:
    it is the zygote's child, not ours).
    """

    def __init__(self, pid: int, pidfd: int, stdin: IO[bytes], stdout: IO[bytes],
                 stderr: IO[bytes]) -> None:
        self.pid, self.pidfd = pid, pidfd
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    def poll(self) -> int | None:
        """0 once it has ended, else None."""
        return 0 if select.select([self.pidfd], [], [], 0)[0] else None

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for it to end; raises subprocess.TimeoutExpired."""
        if not select.select([self.pidfd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(f"supervisor {self.pid}", timeout)
        return 0

    def kill(self) -> None:
        """SIGKILL it (nothing happens if it has ended)."""
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended meanwhile

    def close(self) -> bytes:
        """Close its pipes and pidfd; returns what it said on stderr (the first 64 KiB)."""
        self.stdin.close()
        errors = self.stderr.read(65536)
        for stream in (self.stdout, self.stderr):
            stream.close()
        os.close(self.pidfd)
        return errors


class Zygote:
    """The grader's end of a zygote: :meth:`fork` gives a new supervisor. Use it in a ``with``.

    >>> with Zygote(env) as zygote:  # doctest: +SKIP
    ...     supervisor = zygote.fork()
    """

    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket, self._lock = ours, threading.Lock()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "labkit._sandbox"], stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/", env=env,
                start_new_session=True)

    def fork(self) -> Supervisor:
        """A new supervisor, its stdin, stdout and stderr piped to us."""
        ends = [os.pipe() for _ in range(3)]
        theirs = [ends[0][0], ends[1][1], ends[2][1]]
        try:
            with self._lock:
                try:
                    socket.send_fds(self._socket, [b"fork"], theirs)
                    message, fds, _, _ = socket.recv_fds(self._socket, 32, 1)
                except OSError as e:
                    raise ZygoteError(f"the zygote is gone: {self._said()}") from e
            if len(fds) != 1:
                raise ZygoteError(f"the zygote ended: {self._said()}")
        except BaseException:
            for fd in (ends[0][1], ends[1][0], ends[2][0]):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        return Supervisor(int(message), fds[0], os.fdopen(ends[0][1], "wb"),
                          os.fdopen(ends[1][0], "rb"), os.fdopen(ends[2][0], "rb"))

    def _said(self) -> str:
        self._socket.close()
        self._process.wait(timeout=10)
        assert self._process.stderr is not None
        lines = self._process.stderr.read(65536).decode(errors="replace").strip().splitlines()
        return (lines or ["no message"])[-1][:300]

    def close(self) -> None:
        """End the zygote (the supervisors it forked go on until their own end)."""
        self._socket.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
