"""The session janitor: a small process that cleans up after a kernel that dies.

A notebook kernel can end without running any of its own code: the user
restarts it, it runs out of memory, it is killed with SIGKILL. Then no
``finally`` block and no ``atexit`` handler runs, and the kernel's children
and its named kernel objects would stay behind. So the first time labkit
starts a child or creates an object, it also starts this janitor, a separate
process (not a child of the kernel) that

* learns from the kernel, one short line at a time over a pipe, which process
  groups and named objects are alive, and each group's deadline;
* kills a group whose deadline has passed by more than a grace period, so a
  child started with :func:`labkit.start` and never waited for still ends;
* never kills a group whose number has been taken by another process: a group
  is registered with its leader's start time, and once the leader has been
  reaped and its group has emptied, the kernel may give the same number to
  any later process (pids wrap around at ``pid_max``, 32768 by default);
* when the kernel is gone (a pidfd becomes readable), kills the groups still
  registered and removes the objects, plus anything in ``/dev/shm`` or
  ``/dev/mqueue`` that carries the session's name prefix and the session's
  private folder with all it holds, then exits.

The session folder (FIFOs, sockets, and every temporary folder labkit makes)
is made with ``mkdtemp`` under ``$XDG_RUNTIME_DIR`` when that is set, else
the system's temporary folder: mode 0700 and an unguessable name, because a
predictable name in a shared ``/tmp`` is one another user can take first.

It runs as ``python -m labkit._janitor``, imports only the standard library
and posix_ipc, and never runs notebook code. It imports all it needs before it
starts watching: by the time the kernel dies, the Python installation may have
changed or gone (a virtual environment replaced, packages upgraded, a hub's
private mount of the interpreter undone), and one import then would stop the
sweep and leave the whole session behind. Lines are shorter than
``PIPE_BUF``, so writes from the kernel and from its forked children never
interleave.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import posix_ipc

from .session import (
    PREFIX,
    kill_group,
    lab_entries,
    parse_lab_name,
    pid_alive,
    session_roots,
)

GRACE = 2.0  # seconds past a deadline before the janitor steps in


class JanitorClient:
    """The kernel's end of the pipe to its janitor, started on first use."""

    EXIT_WAIT = 5.0  # seconds a normal exit waits for the janitor's last sweep

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._off = False  # no janitor will start: it could not, or none is needed

    @property
    def pid(self) -> int | None:
        """The janitor's pid, or None before it starts."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the janitor for this session unless one already watches it."""
        with self._lock:
            if self._fd is not None or self._off:
                return
            try:
                self._proc = subprocess.Popen(
                    # The root the session's folder goes in, not the folder: that is made once
                    # the janitor runs, so no kill in between leaves it; the janitor finds it
                    # by its name.
                    [sys.executable, "-m", "labkit._janitor", str(os.getpid()), PREFIX,
                     str(session_roots()[0])],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True,
                    cwd=Path(__file__).resolve().parent.parent)
            except OSError:
                self._off = True  # no janitor: cleanup then relies on with blocks and atexit
                return
            assert self._proc.stdin is not None
            self._fd = self._proc.stdin.fileno()
            atexit.register(self.stop, os.getpid())

    def not_needed(self) -> None:
        """Start no janitor in this process or in its forks, because something else ends
        whatever the session leaves: the grader's sandbox, whose process 1 kills every
        process of its namespace and empties its own ``/dev/shm`` and queues after each
        exercise, and whose namespaces end with it."""
        with self._lock:
            self._off = True

    def watch_group(self, pid: int, deadline: float, born: int | None) -> None:
        """Tell the janitor that process ``pid``, started at ``born`` (:func:`start_ticks`,
        read while ``pid`` cannot have been reaped: by its parent before waiting, or by the
        process itself), leads a group of the session, to be killed at ``deadline``
        (``time.monotonic()``) or when the kernel dies."""
        self.send(f"+ pg {pid} {deadline} {born}")

    def forget_group(self, pid: int) -> None:
        """Tell the janitor that the group led by ``pid`` has ended (its leader is reaped)."""
        self.send(f"- pg {pid}")

    def send(self, line: str) -> None:
        """Tell the janitor about a group or an object; ignored if there is no janitor."""
        if self._fd is None:
            return
        try:
            os.write(self._fd, (line + "\n").encode())
        except OSError:  # the janitor is gone; nothing more to tell it
            self._fd = None

    def stop(self, owner: int) -> None:
        """At a normal exit: let the janitor clean up, and reap it if it is done within
        :attr:`EXIT_WAIT` seconds. It is never killed: on a busy machine its last sweep can
        take longer, and a janitor killed then would leave the whole session behind; it
        finishes on its own once we have gone."""
        if os.getpid() != owner or self._proc is None:
            return
        self.send("bye")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=self.EXIT_WAIT)


CLIENT = JanitorClient()


# --- the janitor process -------------------------------------------------------------


def _no_queues(name: str) -> None:
    """Where posix_ipc has no message queues (macOS) no queue was ever made: none to remove."""
    raise FileNotFoundError(name)


_UNLINKERS = {"shm": posix_ipc.unlink_shared_memory, "sem": posix_ipc.unlink_semaphore,
              "mq": getattr(posix_ipc, "unlink_message_queue", _no_queues), "fifo": os.unlink,
              "socket": os.unlink}


def unlink_name(kind: str, name: str) -> bool:
    """Remove a named object by kind and name; False if it was already gone."""
    try:
        _UNLINKERS[kind](name)
    except (OSError, posix_ipc.Error):
        return False  # already removed by its owner
    return True


def _sweep(prefix: str, root: Path) -> None:
    """Remove every object named with this session's prefix, and its private folder."""
    owner = parse_lab_name(prefix)
    if owner is None:
        return  # not a lab prefix: nothing here is ours to remove
    for entry in lab_entries(session=owner[1], roots=[root]):
        if entry.kind == "folder":
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            unlink_name(entry.kind, entry.name)


Groups = dict[int, tuple[float, int | None]]  # group -> (deadline, its leader's start)


def _note(line: bytes, groups: Groups, objects: set[tuple[str, str]]) -> None:
    """Apply one line from the kernel: ``+ pg PID DEADLINE BORN``, ``- pg PID``,
    ``+ KIND NAME``..."""
    op, kind, name, *more = line.decode().split(" ")
    if kind == "pg" and op == "+":
        groups[int(name)] = (float(more[0]), int(more[1]) if more[1].isdigit() else None)
    elif kind == "pg":
        groups.pop(int(name), None)
    elif op == "+":
        objects.add((kind, name))
    elif op == "-":
        objects.discard((kind, name))


def _watch(kernel_pid: int, pidfd: int | None, prefix: str, root: Path) -> None:
    groups: Groups = {}                     # deadlines on the monotonic clock
    objects: set[tuple[str, str]] = set()   # (kind, name)
    pending, reading = b"", True
    while True:
        waits = [deadline + GRACE - time.monotonic() for deadline, _ in groups.values()]
        fds = ([0] if reading else []) + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(fds, [], [], max(0.0, min(waits + [1.0])))
        ended = pidfd in ready or (pidfd is None and not pid_alive(kernel_pid))
        if ended and reading:
            # What the kernel said before it ended, unread yet: a kernel killed right after
            # starting a child has told us about it (both become ready at once).
            ready, _, _ = select.select([0], [], [], 0)
        while reading and 0 in ready:
            chunk = os.read(0, 65536)
            reading = bool(chunk)  # at EOF keep watching the kernel itself
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line == b"bye":
                    ended = True  # a normal exit: clean up what is left; the kernel reaps us
                else:
                    try:
                        _note(line, groups, objects)
                    except (ValueError, IndexError):
                        pass  # a child of the kernel inherits this pipe and may write anything
            ready, _, _ = select.select([0], [], [], 0)
        if ended:
            break  # the kernel has ended, however it ended
        for pgid, (deadline, born) in list(groups.items()):
            if time.monotonic() > deadline + GRACE:
                kill_group(pgid, born)
                del groups[pgid]
    for pgid, (_, born) in groups.items():
        kill_group(pgid, born)
    for kind, name in objects:
        unlink_name(kind, name)
    _sweep(prefix, root)


def main(argv: list[str]) -> None:
    kernel_pid, prefix, root = int(argv[0]), argv[1], Path(argv[2])
    try:
        pidfd: int | None = os.pidfd_open(kernel_pid)
    except (AttributeError, OSError):
        pidfd = None  # no pidfd (macOS, old kernel): poll the kernel once a second
    from ._platform import set_process_name

    set_process_name("labkit-janitor")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the notebook is not for us
    os.chdir("/")
    _watch(kernel_pid, pidfd, prefix, root)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
