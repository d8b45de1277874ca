"""Named kernel objects (shared memory, semaphores, queues, FIFOs, sockets), made safe.

Every named object labkit makes comes from here, so three promises hold
everywhere:

* **private and exclusive**: created with ``O_CREAT | O_EXCL`` and mode
  ``0600``, so nobody else on the machine can read it and nobody can plant
  an object under our name beforehand;
* **unique and recognisable**: named ``labkit_<uid>_<session pid>_<label>_<random>``,
  so two students, two kernels or two runs never collide, and ``labkit clean``
  can tell whose object it is and whether its session still lives;
* **owned**: each object belongs to a scope (a ``with`` block, or the session
  itself) and is removed when the scope ends; the session janitor removes
  what is left if the kernel dies.

FIFOs, sockets and temporary folders live in the session's private folder
(``mkdtemp``: mode 0700, unguessable name), never under a predictable name in
the shared ``/tmp``. Listing looks only at the current user's own entries, so
another user's live session never makes it fail.

Shared memory is reserved with ``posix_fallocate`` when it is created: a full
``/dev/shm`` is then a clear :class:`~labkit.errors.NoSpaceError` instead of a
SIGBUS that kills the process on its first write.
"""
from __future__ import annotations

import atexit
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import posix_ipc

from ._janitor import CLIENT, unlink_name
from ._platform import MACOS
from ._validate import whole
from .errors import LabError, NoSpaceError, NotSupportedHere
from .session import MQUEUE_DIR, PREFIX, SESSION_DIR, SHM_DIR, lab_entries, pid_alive, session_roots
from .waiting import wait_until

__all__ = [
    "ObjectInfo",
    "Scope",
    "acquire",
    "clean",
    "fifo",
    "format_bytes",
    "lab_name",
    "list_objects",
    "message_queue",
    "mqueue_limits",
    "mqueue_use",
    "remove",
    "scope",
    "semaphore",
    "shared_memory",
    "shm_free_bytes",
    "socket_path",
    "temp_folder",
]

MODE = 0o600
T = TypeVar("T")
_LABEL = re.compile(r"[A-Za-z0-9]{1,12}")
_DRAWS = 5  # fresh names tried before a taken name is reported (24 random bits each)


def _check_label(label: str) -> None:
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ValueError(f"label must be 1 to 12 letters or digits, got {label!r}")


def lab_name(label: str = "obj") -> str:
    """A fresh name for a POSIX object, unique to this user and session.

    >>> lab_name("demo")  # doctest: +ELLIPSIS
    '/labkit_..._demo_...'
    """
    _check_label(label)
    return f"/{PREFIX}{label}_{secrets.token_hex(3)}"


def format_bytes(n: float) -> str:
    """``format_bytes(65536)`` gives ``'64.0 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def shm_free_bytes() -> int:
    """Free bytes in ``/dev/shm`` (where Linux keeps POSIX shared memory and semaphores)."""
    st = os.statvfs(SHM_DIR)
    return st.f_bavail * st.f_frsize


def _no_space(size: int, free: int) -> NoSpaceError:
    return NoSpaceError(
        f"cannot reserve {format_bytes(size)} of shared memory: /dev/shm has only "
        f"{format_bytes(free)} free. Use a size of at most that, remove leftovers with "
        "`labkit clean`, or give the machine more: `docker run --shm-size=1g`, or a "
        "memory-backed emptyDir on Kubernetes (see `labkit doctor`).")


class Scope:
    """Owns named objects and removes them all when it ends.

    >>> with scope() as objs:
    ...     shm = objs.shared_memory(4096)       # a posix_ipc.SharedMemory
    ...     lock = objs.semaphore(1)             # a posix_ipc.Semaphore
    >>> os.path.exists("/dev/shm" + shm.name)    # unlinked, even after an exception
    False
    """

    def __init__(self) -> None:
        self._owned: list[tuple[str, str, Any]] = []

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _own(self, kind: str, name: str, obj: T) -> T:
        self._owned.append((kind, name, obj))
        CLIENT.send(f"+ {kind} {name}")
        return obj

    def shared_memory(self, size: int, label: str = "shm") -> posix_ipc.SharedMemory:
        """Create a private shared memory object of ``size`` bytes, all zero, space reserved.

        Raises ValueError for a size that is not a positive int, and
        NoSpaceError when ``/dev/shm`` cannot hold it.
        """
        whole("size", size, 1, None, "bytes")
        free = shm_free_bytes()
        if size > free:
            raise _no_space(size, free)
        CLIENT.start()
        name, shm = _create("shared memory", label, lambda name: posix_ipc.SharedMemory(
            name, posix_ipc.O_CREX, mode=MODE, size=0))
        try:
            os.fchmod(shm.fd, MODE)  # the umask can only remove bits; make the mode exact
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(shm.fd, 0, size)
            else:  # macOS: no reservation, so a full disk shows only on first write
                os.ftruncate(shm.fd, size)
        except OSError as e:
            shm.close_fd()
            shm.unlink()
            if e.errno in (errno.ENOSPC, errno.EFBIG):
                raise _no_space(size, shm_free_bytes()) from e
            raise
        return self._own("shm", name, shm)

    def semaphore(self, value: int = 1, label: str = "sem") -> posix_ipc.Semaphore:
        """Create a private named semaphore with initial ``value`` (1 makes it a lock)."""
        whole("value", value, 0, posix_ipc.SEMAPHORE_VALUE_MAX)
        CLIENT.start()
        try:
            name, sem = _create("semaphore", label, lambda name: posix_ipc.Semaphore(
                name, posix_ipc.O_CREX, mode=MODE, initial_value=value))
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.ENOMEM):
                raise
            raise NoSpaceError(
                f"cannot create a semaphore: /dev/shm (where Linux keeps named semaphores) "
                f"is full ({format_bytes(shm_free_bytes())} free). Remove leftovers with "
                "`labkit clean`, free shared memory you no longer need, or give the machine "
                "more (see `labkit doctor`).") from e
        return self._own("sem", name, sem)

    def message_queue(self, max_messages: int = 10, max_message_size: int = 8192,
                      label: str = "mq") -> posix_ipc.MessageQueue:
        """Create a private POSIX message queue (Linux's defaults: 10 messages of 8 KiB)."""
        if MACOS or not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
            raise NotSupportedHere("this system has no POSIX message queues (macOS lacks "
                                   "them); use a pipe or a Unix socket instead")
        for what, v in (("max_messages", max_messages), ("max_message_size", max_message_size)):
            whole(what, v, 1, 2**31 - 1, note="and within the limits `labkit doctor` shows")
        CLIENT.start()
        try:
            name, mq = _create("message queue", label, lambda name: posix_ipc.MessageQueue(
                name, posix_ipc.O_CREX, mode=MODE, max_messages=max_messages,
                max_message_size=max_message_size))
        except (ValueError, OSError) as e:
            raise _queue_error(max_messages, max_message_size) from e
        return self._own("mq", name, mq)

    def fifo(self, label: str = "fifo") -> Path:
        """Create a named pipe (FIFO) in the session's private folder and return its path."""
        path = _private_path(label)
        try:
            os.mkfifo(path, MODE)
        except FileExistsError as e:
            raise LabError(f"{path} already exists (a name drawn twice?); call fifo() "
                           "again for a fresh name") from e
        os.chmod(path, MODE)  # the umask can only remove bits; make the mode exact
        return self._own("fifo", str(path), path)

    def socket_path(self, label: str = "sock") -> Path:
        """A fresh path for a Unix socket, in the session's private folder (mode 0700).

        Nothing is created: ``bind`` makes the socket file there (its mode
        follows the umask, but nobody else can enter the folder; labkit's own
        servers make it 0600), and the scope removes it when it ends.
        """
        path = _private_path(label, ".sock")
        return self._own("socket", str(path), path)

    def remove(self, obj: Any) -> None:
        """Close and unlink one object now (idempotent)."""
        for i, (kind, name, owned) in enumerate(self._owned):
            if owned is obj:
                del self._owned[i]
                _destroy(kind, name, owned)
                CLIENT.send(f"- {kind} {name}")
                return
        raise ValueError(f"{obj!r} is not owned by this scope (already removed?)")

    def close(self) -> None:
        """Remove every object this scope still owns, newest first."""
        while self._owned:
            self.remove(self._owned[-1][2])


def _create(what: str, label: str, make: Callable[[str], Any]) -> tuple[str, Any]:
    """Create an object exclusively under a fresh name; another draw if the name is taken.

    Someone may have planted an object under a name we draw (or guessed it):
    it is never opened, only stepped around.
    """
    for _ in range(_DRAWS):
        name = lab_name(label)
        try:
            return name, make(name)
        except posix_ipc.ExistentialError:
            continue
    raise LabError(f"could not create a {what}: {_DRAWS} fresh names in a row were already "
                   "taken by someone else's objects (planted on purpose?). Nothing of theirs "
                   "was opened. List them with `ls -l /dev/shm /dev/mqueue` and ask whoever "
                   "owns them, or an administrator, to remove them.")


def _queue_error(max_messages: int, max_message_size: int) -> LabError:
    limits = mqueue_limits()
    need = max_messages * max_message_size
    use = mqueue_use()
    if use is not None and use >= limits["queues_max"]:
        return NoSpaceError(
            f"cannot create a message queue: all {limits['queues_max']} queues this machine "
            f"allows (fs.mqueue.queues_max, shared by every user) are in use, {use} now. "
            "Close queues you no longer need and try again later, or ask an administrator "
            "to raise it: sysctl fs.mqueue.queues_max=1024 (see `labkit doctor`).")
    return NoSpaceError(
        f"cannot create a message queue of {max_messages} messages x {max_message_size} "
        f"bytes ({format_bytes(need)}). Limits here: at most {limits['msg_max']} messages "
        f"and {limits['msgsize_max']} bytes per message for ordinary users, and "
        f"{format_bytes(limits['rlimit'])} for all your queues together (RLIMIT_MSGQUEUE), "
        f"which is about {max(limits['rlimit'] // max(need, 1), 0)} queues of this size, "
        f"and {limits['queues_max']} queues on the whole machine, shared by every user "
        f"(fs.mqueue.queues_max){_in_use(use)}. Close queues you no longer need (posix_ipc "
        "reports this as 'too many open files', which it is not), or raise the limits: "
        "see `labkit doctor`.")


def _in_use(use: int | None) -> str:
    return "" if use is None else f", {use} in use now"


def mqueue_use() -> int | None:
    """How many message queues exist on the machine, all users' (None if it cannot be seen).

    Linux counts queues against ``fs.mqueue.queues_max`` for everybody at
    once; only ``/dev/mqueue``, when mounted, shows them all.

    >>> mqueue_use() is None or mqueue_use() >= 0
    True
    """
    if not os.path.ismount(MQUEUE_DIR):
        return None  # an empty folder where the queue file system is not mounted
    try:
        return len(os.listdir(MQUEUE_DIR))
    except OSError:
        return None


def mqueue_limits() -> dict[str, int]:
    """Linux's POSIX message queue limits: per queue, per system, and per user (bytes)."""
    import resource

    limits = {}
    for key, default in (("msg_max", 10), ("msgsize_max", 8192), ("queues_max", 256)):
        try:
            limits[key] = int(Path(f"/proc/sys/fs/mqueue/{key}").read_text())
        except OSError:
            limits[key] = default
    soft = resource.getrlimit(resource.RLIMIT_MSGQUEUE)[0] if hasattr(
        resource, "RLIMIT_MSGQUEUE") else 0
    limits["rlimit"] = soft if soft != resource.RLIM_INFINITY else 2**62
    return limits


def _private_path(label: str, suffix: str = "") -> Path:
    """A fresh name in the session's private folder (mode 0700, made by ``mkdtemp``)."""
    _check_label(label)
    CLIENT.start()
    return _session_folder() / f"{label}_{secrets.token_hex(3)}{suffix}"


def _session_folder() -> Path:
    try:
        return SESSION_DIR.get()
    except OSError as e:
        raise LabError(f"cannot make this session's private folder in "
                       f"{session_roots()[0]}: {e.strerror or e}. It must be a writable "
                       "folder: free some space there (`df -h /tmp`), or set TMPDIR to "
                       "another folder of yours") from e


@contextmanager
def temp_folder(label: str = "tmp") -> Iterator[Path]:
    """A temporary folder inside the session's private folder, removed when the block ends.

    If the kernel dies first, the janitor (or ``labkit clean``) removes it
    with the session's folder.

    >>> with temp_folder("demo") as folder:
    ...     (folder / "notes.txt").write_text("hi")
    2
    >>> folder.exists()
    False
    """
    _check_label(label)
    CLIENT.start()
    with tempfile.TemporaryDirectory(prefix=f"{label}-", dir=_session_folder()) as folder:
        yield Path(folder)


def _destroy(kind: str, name: str, obj: Any) -> None:
    if kind == "shm":
        if obj.fd >= 0:
            obj.close_fd()
    elif kind in ("sem", "mq"):
        try:
            obj.close()
        except posix_ipc.ExistentialError:
            pass  # the user closed it already; its name is still ours to remove
    unlink_name(kind, name)  # False if another process that shared it unlinked it first


SESSION = Scope()
atexit.register(SESSION.close)


def scope() -> Scope:
    """A ``with`` block that owns objects: ``with labkit.objects.scope() as objs: ...``."""
    return Scope()


def shared_memory(size: int, label: str = "shm") -> posix_ipc.SharedMemory:
    """A session-owned shared memory object; see :meth:`Scope.shared_memory`.

    >>> shm = shared_memory(4096)
    >>> shm.size
    4096
    >>> remove(shm)                 # or leave it: it goes when the kernel ends
    """
    return SESSION.shared_memory(size, label)


def semaphore(value: int = 1, label: str = "sem") -> posix_ipc.Semaphore:
    """A session-owned semaphore; see :meth:`Scope.semaphore`."""
    return SESSION.semaphore(value, label)


def message_queue(max_messages: int = 10, max_message_size: int = 8192,
                  label: str = "mq") -> posix_ipc.MessageQueue:
    """A session-owned message queue; see :meth:`Scope.message_queue`."""
    return SESSION.message_queue(max_messages, max_message_size, label)


def fifo(label: str = "fifo") -> Path:
    """A session-owned FIFO path; see :meth:`Scope.fifo`."""
    return SESSION.fifo(label)


def socket_path(label: str = "sock") -> Path:
    """A session-owned path for a Unix socket; see :meth:`Scope.socket_path`.

    >>> p = socket_path("demo")
    >>> p.parent.stat().st_mode & 0o777 == 0o700, p.exists()
    (True, False)
    >>> remove(p)
    """
    return SESSION.socket_path(label)


def remove(obj: Any) -> None:
    """Remove a session-owned object now."""
    SESSION.remove(obj)


def acquire(sem: posix_ipc.Semaphore, timeout: float) -> None:
    """``sem.acquire(timeout)``, also where the system has no ``sem_timedwait`` (macOS).

    Lab code never waits for a semaphore without a timeout: one held by a
    killed process stays taken forever. Raises ``posix_ipc.BusyError`` when
    ``timeout`` seconds pass first.

    >>> with scope() as objs:
    ...     sem = objs.semaphore(1)
    ...     acquire(sem, 1.0)
    ...     acquire(sem, 0.01)
    Traceback (most recent call last):
    ...
    posix_ipc.BusyError: Semaphore is busy
    """
    if posix_ipc.SEMAPHORE_TIMEOUT_SUPPORTED:
        sem.acquire(timeout)
        return

    def taken() -> bool:
        try:
            sem.acquire(0)
        except posix_ipc.BusyError:
            return False
        return True

    if not wait_until(taken, timeout, None, every=0.001):
        raise posix_ipc.BusyError("Semaphore is busy")


# --- what is left on the machine -----------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """One lab object found on the machine."""

    kind: str          # "shm", "sem", "mq", "fifo", "socket", "folder" or "file"
    name: str          # the POSIX name ("/labkit_...") or the path in a session folder
    uid: int           # owner
    size: int          # bytes (0 for semaphores and FIFOs)
    mode: int          # permission bits
    session_pid: int   # the process whose session created it
    alive: bool        # whether that process still runs

    def __str__(self) -> str:
        state = "live session" if self.alive else "session gone"
        return (f"{self.kind:<4} {self.name}  {format_bytes(self.size):>9}  "
                f"mode {self.mode:o}  uid {self.uid}  pid {self.session_pid} ({state})")


def list_objects(all_users: bool = False) -> list[ObjectInfo]:
    """The lab's objects on this machine: yours, or everyone's with ``all_users=True``.

    Session folders and what they hold (FIFOs, sockets, temporary folders)
    are listed for your own sessions only: another user's are private to
    them, and are never looked into.

    >>> with scope() as objs:
    ...     name = objs.semaphore(0).name
    ...     [o.kind for o in list_objects() if o.name == name]
    ['sem']
    """
    found: list[ObjectInfo] = []

    def add(kind: str, name: str, path: Path, pid: int) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # removed while we looked
        if not all_users and st.st_uid != os.getuid():
            return  # a name that says it is ours, on an object that is not
        size = st.st_size if kind in ("shm", "mq") else 0
        found.append(ObjectInfo(kind, name, st.st_uid, size, stat.S_IMODE(st.st_mode), pid,
                                pid_alive(pid)))

    for e in lab_entries(all_users=all_users):
        if e.kind != "folder":
            add(e.kind, e.name, e.path, e.session_pid)
            continue
        try:
            inside = sorted(e.path.iterdir())
        except OSError:
            continue  # removed while we looked
        for f in inside:
            kind = ("socket" if f.is_socket() else "fifo" if f.is_fifo()
                    else "folder" if f.is_dir() and not f.is_symlink() else "file")
            add(kind, str(f), f, e.session_pid)
        add("folder", e.name, e.path, e.session_pid)  # last: removed once it is empty
    return found


def clean(dry_run: bool = False) -> list[ObjectInfo]:
    """Remove your lab objects whose session has ended, and return them.

    Another user's objects and those of a running session are never touched.
    An ended session's folder goes too, with every FIFO, socket and
    temporary folder in it; each counts once.

    >>> for obj in clean(): print("removed", obj)  # doctest: +SKIP
    """
    removed = []
    for info in list_objects():
        if info.alive or info.uid != os.getuid():
            continue
        if not dry_run and not _remove_leftover(info):
            continue  # gone meanwhile
        removed.append(info)
    return removed


def _remove_leftover(info: ObjectInfo) -> bool:
    """Remove a leftover; False if it was gone already."""
    if info.kind not in ("folder", "file"):
        return unlink_name(info.kind, info.name)
    try:
        if info.kind == "folder":
            shutil.rmtree(info.name)
        else:
            os.unlink(info.name)
    except FileNotFoundError:
        return False
    return True
