"""Who this lab session is, what its objects are called, and where they are found.

A session is the process that imported labkit first (a notebook kernel, a
test run); forked children keep its identity. Every named kernel object it
makes is called ``/labkit_<uid>_<session pid>_<label>_<random>``, and its
private folder ``labkit_<uid>_<session pid>_<random>``, so the janitor,
``labkit clean``, the checks and the doctor can all tell, by name alone,
whose an object is. This module is the one place that knows the pattern and
the one place that scans ``/dev/shm``, ``/dev/mqueue`` and the session roots
for it: everything else asks :func:`lab_entries`.

It imports only the standard library, because the janitor process
(``python -m labkit._janitor``) imports it too.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MQUEUE_DIR",
    "PREFIX",
    "SESSION_DIR",
    "SESSION_PID",
    "SHM_DIR",
    "UID",
    "LabEntry",
    "lab_entries",
    "parse_lab_name",
    "pid_alive",
    "session_roots",
]

SHM_DIR = Path("/dev/shm")          # POSIX shared memory, and semaphores as sem.NAME
MQUEUE_DIR = Path("/dev/mqueue")    # POSIX message queues, where that file system is mounted

# The session: the process that imported labkit first. Forked children keep it.
UID = os.getuid()
SESSION_PID = os.getpid()
PREFIX = f"labkit_{UID}_{SESSION_PID}_"

# A lab name as /dev/shm or /dev/mqueue lists it (a semaphore shows as sem.NAME), and a
# session folder (the old fixed name, without the random tail, is still recognised).
_LAB_NAME = re.compile(r"(?:sem\.)?labkit_(\d+)_(\d+)_")
_SESSION_FOLDER = re.compile(r"labkit_(\d+)_(\d+)(?:_\w*)?")


def parse_lab_name(entry: str) -> tuple[int, int] | None:
    """The (uid, session pid) a lab name carries, or None for any other name.

    >>> parse_lab_name("sem.labkit_1000_4242_lock_1a2b3c")
    (1000, 4242)
    >>> parse_lab_name("psm_5f3a") is None
    True
    """
    m = _LAB_NAME.match(entry.lstrip("/"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def session_roots() -> list[Path]:
    """Where session folders live: ``$XDG_RUNTIME_DIR`` (when it is ours), then ``/tmp``.

    >>> Path(tempfile.gettempdir()) in session_roots()
    True
    """
    roots = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            st = os.stat(runtime)
            if st.st_uid == UID and not st.st_mode & 0o077:
                roots.append(Path(runtime))
        except OSError:
            pass  # set but missing (a su'd shell): fall back to the temporary folder
    tmp = Path(tempfile.gettempdir())
    return roots + ([tmp] if tmp not in roots else [])


class _SessionDir:
    """The session's private folder, made on first use; forked children share it."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock = threading.Lock()

    def get(self) -> Path:
        """The folder (mode 0700), made now if this session has none yet."""
        with self._lock:
            if self._path is None or not self._path.is_dir():
                self._path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=session_roots()[0]))
            return self._path

    @property
    def made(self) -> Path | None:
        """The folder if it was made, else None (nothing to clean up)."""
        return self._path


SESSION_DIR = _SessionDir()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user).

    >>> pid_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_ticks(pid: int) -> int | None:
    """When the process ``pid`` started (clock ticks after boot, Linux's ``/proc/PID/stat``),
    or None if there is no such process. A pid is reused once its process has been reaped;
    the pid and this number together name one process.

    >>> start_ticks(os.getpid()) == start_ticks(os.getpid()) is not None
    True
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_group(pgid: int, born: int | None, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group led by the process ``pgid`` that started at ``born``
    (:func:`start_ticks`; None if unknown), and to what is left of it once that leader has
    ended; nothing if the group has ended. A group's number is not given out again while
    any member lives, but once it is empty a later process may get that number and lead a
    group of its own: that group, whose leader started later, is never signalled.

    >>> import subprocess
    >>> p = subprocess.Popen(["sleep", "30"], start_new_session=True)
    >>> kill_group(p.pid, start_ticks(p.pid) - 1)  # as if p had an earlier group's number
    >>> p.poll() is None
    True
    >>> kill_group(p.pid, start_ticks(p.pid)); p.wait()
    -9
    """
    now = start_ticks(pgid)
    if now is not None and born is not None and now != born:
        return
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass  # the group has ended (or is not ours to signal)


@dataclass(frozen=True)
class LabEntry:
    """One lab object found by its name: where it shows, and whose it is by that name."""

    kind: str          # "shm", "sem", "mq" or "folder" (a session's private folder)
    name: str          # the POSIX name ("/labkit_...") or, for a folder, its path
    path: Path         # where the file system shows it
    uid: int           # the user the name says made it
    session_pid: int   # the session the name says made it


def _named(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []  # not mounted here (/dev/mqueue often is not)


def _own_folders(roots: Iterable[Path]) -> list[LabEntry]:
    """This user's session folders, checked by owner with lstat: never a planted link,
    never another user's folder (those are private to them and never looked into)."""
    found = []
    for root in dict.fromkeys(roots):
        for entry in _named(root):
            m = _SESSION_FOLDER.fullmatch(entry)
            if not m or int(m.group(1)) != UID:
                continue
            try:
                st = os.lstat(root / entry)
            except OSError:
                continue  # removed while we looked
            if stat.S_ISDIR(st.st_mode) and st.st_uid == UID:
                found.append(LabEntry("folder", str(root / entry), root / entry, UID,
                                      int(m.group(2))))
    return found


def lab_entries(session: int | None = None, all_users: bool = False,
                roots: Iterable[Path] = ()) -> list[LabEntry]:
    """The lab's objects in ``/dev/shm`` and ``/dev/mqueue``, and this user's session folders.

    Entries are matched by name: the user's own (or everyone's with
    ``all_users=True``; folders are only ever this user's), of one session
    when ``session`` is a session pid. ``roots`` adds folders to look for
    session folders in, besides :func:`session_roots`.

    >>> import posix_ipc
    >>> sem = posix_ipc.Semaphore("/" + PREFIX + "doc_1", posix_ipc.O_CREX, 0o600)
    >>> [e.kind for e in lab_entries(SESSION_PID) if e.name == sem.name]
    ['sem']
    >>> sem.unlink()
    """
    found = []
    for directory in (SHM_DIR, MQUEUE_DIR):
        for entry in _named(directory):
            owner = parse_lab_name(entry)
            if owner is None or not (all_users or owner[0] == UID):
                continue
            kind = "mq" if directory == MQUEUE_DIR else "sem" if entry.startswith(
                "sem.") else "shm"
            bare = entry[4:] if kind == "sem" else entry
            found.append(LabEntry(kind, "/" + bare, directory / entry, *owner))
    found += _own_folders([*roots, *session_roots()])
    return [e for e in found if session is None or e.session_pid == session]
