"""Locks for lesson 05: what a semaphore is on Linux, a deadlock, a killed holder.

* :func:`semaphore_file` finds the file of a named semaphore (glibc keeps it in
  ``/dev/shm/sem.NAME``) so the lesson can map it and watch its value and
  waiter count, and :func:`blocked_in` says in which system call (``futex``) and on which
  word a blocked process sleeps;
* :func:`deadlock` takes two locks in opposite orders and lets a timeout
  notice; :func:`plot_lock_timeline` draws who held and who waited;
* :func:`killed_holder` kills the process holding a semaphore and shows it is
  never released, then how a timeout and a robust design (``flock``, which the
  kernel releases when the holder dies) recover.

Every lock comes from :mod:`labkit.objects` and every worker from
:mod:`labkit.processes` with a timeout, so a deadlock ends in an error after
seconds instead of a hung cell. :mod:`labkit.sync` re-exports these names.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import signal
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

import posix_ipc

from . import objects
from ._validate import seconds
from .display import Status, axes
from .errors import LabError, NotSupportedHere
from .objects import acquire
from .processes import run, start, start_workers
from .segment import Segment
from .waiting import wait_until

__all__ = ["Blocked", "DeadlockRun", "HolderRun", "LockEvent", "LockStep", "NextGot",
           "blocked_in", "deadlock", "killed_holder", "plot_lock_timeline", "semaphore_file"]


# --- what a semaphore is on Linux -------------------------------------------------------------

# The futex system call's number, where we know it (it differs between architectures).
_FUTEX = {"x86_64": 202, "aarch64": 98}


def _glibc_layout() -> str | None:
    """Why this machine's sem_t is not the 64-bit glibc layout we read, or None if it is."""
    if not sys.platform.startswith("linux"):
        return (f"this is {platform.system()}, not Linux: named semaphores are not files in "
                "/dev/shm here (macOS keeps them inside the kernel)")
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        return (f"this Linux uses {libc or 'a C library other than glibc (musl?)'}, whose "
                "sem_t has a different layout")
    if struct.calcsize("P") != 8:
        return "this is a 32-bit process: glibc lays out sem_t differently there"
    return None


def semaphore_file(sem: posix_ipc.Semaphore) -> str:
    """The file in which glibc keeps a named semaphore: ``/dev/shm/sem.NAME``.

    ``sem_open`` maps this file into every process that opens the semaphore,
    and ``sem_wait``/``sem_post`` change its first 8 bytes with atomic
    instructions. On 64-bit Linux with glibc (x86-64, ARM64) they hold the
    value in the low 32 bits and the number of sleeping waiters in the high 32:
    ``struct.unpack("=II", first_8_bytes)`` gives ``(value, waiters)``. That
    layout is glibc's (POSIX only says ``sem_t`` is opaque).

    Raises:
        NotSupportedHere: not Linux with 64-bit glibc (macOS keeps named
            semaphores in the kernel; musl and 32-bit glibc lay them out
            differently), or the file is not where glibc puts it.

    >>> with objects.scope() as objs:
    ...     sem = objs.semaphore(2, label="word")
    ...     sem.acquire()
    ...     with open(semaphore_file(sem), "rb") as f:
    ...         struct.unpack("=II", f.read(8))
    (1, 0)
    """
    why = _glibc_layout()
    if why is not None:
        raise NotSupportedHere(f"cannot show the semaphore's word: {why}")
    path = "/dev/shm/sem." + sem.name.lstrip("/")
    if not os.path.exists(path):
        raise NotSupportedHere(f"{sem.name} has no file {path}: this C library keeps named "
                               "semaphores somewhere else")
    return path


@dataclass(frozen=True)
class Blocked:
    """The system call a process is blocked in, from ``/proc/PID/syscall`` (Linux)."""

    pid: int
    syscall: str                 # "futex", or "system call N" where we do not know the name
    address: int                 # its first argument (for futex: the word it sleeps on)
    mapped_from: str | None      # the file mapped at that address in the process, if any

    def __str__(self) -> str:
        where = f" of {self.mapped_from}" if self.mapped_from else ""
        return f"pid {self.pid} sleeps in {self.syscall} on address {self.address:#x}{where}"


def blocked_in(pid: int) -> Blocked:
    """Which system call a (blocked) process is in, and which file its first argument
    points into. Reads ``/proc/PID/syscall`` and ``/proc/PID/maps`` (Linux; our own
    children may be read, others need privileges).

    Raises:
        NotSupportedHere: no ``/proc/PID/syscall`` here (not Linux), or the kernel does not
            let this process read it (a sandbox, a non-dumpable process, Yama's
            ``ptrace_scope`` of 2 or 3).
        LabError: the process is gone.

    >>> import time
    >>> with start(time.sleep, 5, timeout=10, show=False) as child:
    ...     wait_until(lambda: blocked_in(child.pid).syscall != "running", 5, "it never slept")
    True
    """
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read().splitlines()
    except FileNotFoundError as e:
        if not os.path.exists("/proc/self/syscall"):
            raise NotSupportedHere("this system has no /proc/PID/syscall (Linux only)") from e
        raise LabError(f"process {pid} does not exist (any more)") from e
    except PermissionError as e:
        raise NotSupportedHere(
            f"the kernel does not let this process read /proc/{pid}/syscall: that needs the "
            "right to trace the process, which a sandbox, a process marked not dumpable or "
            "Yama's ptrace_scope (2 or 3) takes away here") from e
    if not fields or not fields[0].isdigit():
        return Blocked(pid, "running", 0, None)
    number, address = int(fields[0]), int(fields[1], 16)
    name = ("futex" if _FUTEX.get(platform.machine()) == number else f"system call {number}")
    mapped = None
    for line in maps:
        parts = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in parts[0].split("-"))
        if low <= address < high and parts[4] != "0":          # a file, by inode
            mapped = _file_of_inode(int(parts[4])) or (parts[5] if len(parts) > 5 else None)
            break
    return Blocked(pid, name, address, mapped)


def _file_of_inode(inode: int) -> str | None:
    """The name in /dev/shm of the file with this inode, if there is one.

    glibc's ``sem_open`` creates a semaphore under a temporary name and then
    links it to the real one, so ``/proc/PID/maps`` shows the temporary name.
    """
    try:
        with os.scandir("/dev/shm") as entries:
            for entry in entries:
                if entry.inode() == inode:
                    return entry.path
    except OSError:
        pass
    return None


# --- a deadlock -------------------------------------------------------------------------------


class LockStep(Status):
    """What a worker did with a lock."""

    WAITING = "waiting"
    ACQUIRED = "acquired"
    TIMED_OUT = "timed out"
    RELEASED = "released"


class NextGot(Status):
    """What the next process got, after the lock's holder was killed."""

    GOT_THE_LOCK = "got the lock"
    TIMED_OUT = "timed out"
    RECOVERED = "recovered the lock"


@dataclass(frozen=True)
class LockEvent:
    """One thing a worker did with a lock, at ``t`` seconds after the start."""

    worker: int
    t: float
    what: LockStep
    lock: str


@dataclass(frozen=True)
class DeadlockRun:
    """Two workers and two locks (see :func:`deadlock`)."""

    same_order: bool
    timeout: float
    events: list[LockEvent]
    finished: list[bool]          # did each worker get both locks and do its work?

    @property
    def deadlocked(self) -> bool:
        """True when the workers waited for each other until a timeout ended the wait.

        The worker that gives up releases its lock, so the other may then finish:
        the timeout both detects the deadlock and breaks it.
        """
        return any(e.what == LockStep.TIMED_OUT for e in self.events)

    def __str__(self) -> str:
        done = " and ".join(f"worker {i}" for i, ok in enumerate(self.finished) if ok)
        lines = [f"{'same' if self.same_order else 'opposite'} order: "
                 + ("DEADLOCK, caught by the timeout" if self.deadlocked else "no deadlock")
                 + f"; {done or 'no worker'} did the work"]
        lines += [f"  {e.t * 1e3:7.1f} ms  worker {e.worker} {e.what} {e.lock}"
                  for e in self.events]
        return "\n".join(lines)


def _lock_worker(i: int, locks: dict[str, posix_ipc.Semaphore],
                 orders: list[tuple[str, str]], holding: list[posix_ipc.Semaphore],
                 hold: float, timeout: float, began: float) -> tuple[list[tuple], bool]:
    events = []

    def note(what: LockStep, lock: str) -> None:
        events.append((time.perf_counter() - began, what, lock))

    first, second = orders[i]
    try:
        locks[first].acquire(0)
    except posix_ipc.BusyError:                  # taken: show the wait, then wait
        note(LockStep.WAITING, first)
        locks[first].acquire()
    note(LockStep.ACQUIRED, first)
    holding[i].release()             # "I hold my first lock"...
    try:                             # ...and wait (at most hold s) until the other does too
        acquire(holding[1 - i], hold)
    except posix_ipc.BusyError:
        pass                         # it could not get its first lock: we hold it
    note(LockStep.WAITING, second)
    try:
        acquire(locks[second], timeout)
    except posix_ipc.BusyError:
        note(LockStep.TIMED_OUT, second)
        locks[first].release()
        note(LockStep.RELEASED, first)
        return events, False
    note(LockStep.ACQUIRED, second)
    time.sleep(hold / 2)             # the work done while holding both
    locks[second].release()
    note(LockStep.RELEASED, second)
    locks[first].release()
    note(LockStep.RELEASED, first)
    return events, True


def deadlock(same_order: bool = False, hold: float = 0.1, timeout: float = 0.5) -> DeadlockRun:
    """Two workers each need locks A and B. Worker 0 takes A, then B; worker 1 takes B,
    then A (both take A first with ``same_order``). After taking its first lock each
    waits until the other holds its own first lock too (at most ``hold`` seconds), so
    in opposite order the deadlock happens every time. Each then waits for its
    second lock at most ``timeout`` seconds; a worker that times out gives up and
    releases its lock, and the other can finish.

    >>> deadlock().deadlocked, deadlock(same_order=True).deadlocked
    (True, False)
    """
    hold = seconds("hold", hold, 0, 5)
    timeout = seconds("timeout", timeout, 0.01, 30)
    with objects.scope() as objs:
        locks = {"A": objs.semaphore(1, label="lockA"), "B": objs.semaphore(1, label="lockB")}
        holding = [objs.semaphore(0, label="holding") for _ in range(2)]
        orders = [("A", "B"), ("A", "B") if same_order else ("B", "A")]
        began = time.perf_counter()
        with start_workers(_lock_worker, 2, locks, orders, holding, hold, timeout, began,
                           timeout=5 * (hold + timeout) + 5, show=False) as pair:
            results = pair.wait().values
    events = sorted((LockEvent(i, t, what, lock) for i, (evs, _) in enumerate(results)
                     for t, what, lock in evs), key=lambda e: e.t)
    return DeadlockRun(same_order, timeout, events, [done for _, done in results])


def plot_lock_timeline(result: DeadlockRun, ax: Any = None) -> Any:
    """Each worker's row: when it held each lock, when it waited, when it gave up.
    Returns the Axes.

    >>> plot_lock_timeline(deadlock())  # doctest: +SKIP
    """
    from matplotlib.patches import Patch

    title = ("Locks taken in opposite orders: a deadlock, ended by the timeout"
             if result.deadlocked else "Locks taken in the same order: no deadlock")
    ax = axes(title, "time (ms)", "", ax=ax, figsize=(8.0, 2.6))
    colours = {"A": "tab:blue", "B": "tab:orange"}
    end = max(e.t for e in result.events) * 1e3
    for w in (0, 1):
        mine = [e for e in result.events if e.worker == w]
        for lock, shift in (("A", -0.18), ("B", 0.18)):
            held = None
            waiting = None
            for e in mine:
                if e.lock != lock:
                    continue
                if e.what == LockStep.WAITING:
                    waiting = e.t
                elif e.what == LockStep.ACQUIRED:
                    if waiting is not None:
                        ax.broken_barh([(waiting * 1e3, (e.t - waiting) * 1e3)],
                                       (w + shift - 0.15, 0.3), facecolors="white",
                                       edgecolors="grey", hatch="///")
                        waiting = None
                    held = e.t
                elif e.what == LockStep.TIMED_OUT and waiting is not None:
                    ax.broken_barh([(waiting * 1e3, (e.t - waiting) * 1e3)],
                                   (w + shift - 0.15, 0.3), facecolors="white",
                                   edgecolors="grey", hatch="///")
                    ax.plot(e.t * 1e3, w + shift, "x", color="red", ms=10, mew=2)
                    waiting = None
                elif e.what == LockStep.RELEASED and held is not None:
                    ax.broken_barh([(held * 1e3, (e.t - held) * 1e3)], (w + shift - 0.15, 0.3),
                                   facecolors=colours[lock])
                    held = None
    ax.set_yticks([0, 1], ["worker 0", "worker 1"])
    ax.set_ylim(1.6, -0.6)
    ax.set_xlim(0, end * 1.05 + 1)
    ax.legend(handles=[Patch(color="tab:blue", label="holds A"),
                       Patch(color="tab:orange", label="holds B"),
                       Patch(facecolor="white", edgecolor="grey", hatch="///",
                             label="waits for the lock"),
                       ax.plot([], [], "x", color="red", ms=8, mew=2,
                               label="gives up (timeout)")[0]],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


# --- a lock whose holder is killed ---------------------------------------------------------


@dataclass(frozen=True)
class HolderRun:
    """What happened to a lock when the process holding it was killed."""

    lock: str                    # "semaphore" or "flock"
    recover: bool
    holder_pid: int
    holder_status: str           # "killed by SIGKILL (Killed)"
    value_after: int | None      # the semaphore's value after the holder died (None: n/a)
    outcome: NextGot             # what the next process got
    waited: float                # seconds it waited
    steps: list[str]             # what the next process did, in order

    def __str__(self) -> str:
        value = "" if self.value_after is None else f"; semaphore value {self.value_after}"
        return (f"the holder (pid {self.holder_pid}) {self.holder_status}{value}; the next "
                f"process {self.outcome} after {self.waited * 1e3:.0f} ms")


def _hold_forever(lock: str, name: str, owner: Any, ready: posix_ipc.Semaphore,
                  sem: posix_ipc.Semaphore | None) -> None:
    if lock == "semaphore":
        sem.acquire()                              # type: ignore[union-attr]
    else:
        mem = posix_ipc.SharedMemory(name)         # a descriptor of our own: flock is per open file
        fcntl.flock(mem.fd, fcntl.LOCK_EX)
    owner.value = os.getpid()                      # for a robust design: who holds it
    ready.release()
    time.sleep(60)                                 # "working" in the critical section...


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _next_process(lock: str, name: str, owner: Any, sem: posix_ipc.Semaphore | None,
                  timeout: float, recover: bool) -> tuple[NextGot, float, list[str]]:
    began = time.perf_counter()
    steps = []
    if lock == "flock":
        mem = posix_ipc.SharedMemory(name)
        try:
            if not wait_until(lambda: _try_flock(mem.fd), timeout, None, every=0.001):
                steps.append(f"gave up after {timeout:g} s")
                return NextGot.TIMED_OUT, time.perf_counter() - began, steps
            steps.append("flock(LOCK_EX) succeeded: the kernel released the dead "
                         "holder's lock when its descriptors were closed")
            fcntl.flock(mem.fd, fcntl.LOCK_UN)
            return NextGot.GOT_THE_LOCK, time.perf_counter() - began, steps
        finally:
            mem.close_fd()
    assert sem is not None
    try:
        acquire(sem, timeout)
        sem.release()
        return NextGot.GOT_THE_LOCK, time.perf_counter() - began, ["acquire succeeded"]
    except posix_ipc.BusyError:
        steps.append(f"acquire timed out after {timeout:g} s: the semaphore is still taken")
    if not recover:
        return NextGot.TIMED_OUT, time.perf_counter() - began, steps
    holder = owner.value
    try:
        os.kill(holder, 0)                         # signal 0: only asks "does it exist?"
    except ProcessLookupError:
        steps.append(f"the owner recorded in shared memory, pid {holder}, no longer exists")
    except PermissionError:
        pass                                       # it exists (as another user's process)
    if len(steps) == 1:
        steps.append(f"the owner, pid {holder}, is alive: keep waiting (it may just be slow)")
        return NextGot.TIMED_OUT, time.perf_counter() - began, steps
    sem.release()                                  # give back the dead owner's unit...
    steps.append("released the semaphore on the dead owner's behalf (after repairing "
                 "whatever the owner may have left half-done)")
    acquire(sem, timeout)                         # ...and take it properly
    owner.value = os.getpid()
    steps.append(f"acquired it; the owner is now pid {os.getpid()}")
    sem.release()
    return NextGot.RECOVERED, time.perf_counter() - began, steps


def killed_holder(lock: str = "semaphore", recover: bool = False,
                  timeout: float = 0.5) -> HolderRun:
    """A process takes a lock, and is killed (SIGKILL) while it holds it; then another
    process asks for the lock, waiting at most ``timeout`` seconds.

    ``lock="semaphore"``: a POSIX semaphore has no owner, so nothing gives it back:
    the next process times out. With ``recover`` it then checks the owner's pid
    that the holder wrote into shared memory, finds it dead, and releases the
    semaphore itself. ``lock="flock"``: an ``flock`` lock on a file (here, the
    lab's shared memory object) belongs to the open file, and the kernel drops
    it when the killed process's descriptors are closed: the next process gets it.
    Everything is removed afterwards, the semaphore included.

    >>> killed_holder().outcome
    'timed out'
    >>> killed_holder(lock="flock").outcome
    'got the lock'
    """
    if lock not in ("semaphore", "flock"):
        raise ValueError(f"lock must be 'semaphore' or 'flock', got {lock!r}")
    timeout = seconds("timeout", timeout, 0.01, 30)
    with objects.scope() as objs, Segment.create(8, label="owner") as seg:
        ready = objs.semaphore(0, label="ready")
        sem = objs.semaphore(1, label="held") if lock == "semaphore" else None
        name = objs.shared_memory(4096, label="flocked").name if lock == "flock" else ""
        owner = seg.struct(ctypes.c_int64)
        try:
            with start(_hold_forever, lock, name, owner, ready, sem, timeout=30,
                       show=False, name="holder") as holder:
                try:
                    acquire(ready, 5.0)
                except posix_ipc.BusyError:
                    raise LabError("the holder did not take the lock within 5 s") from None
                holder.send_signal(signal.SIGKILL)
                ended = holder.wait()
            value = sem.value if sem is not None and posix_ipc.SEMAPHORE_VALUE_SUPPORTED \
                else None
            outcome, waited, steps = run(_next_process, lock, name, owner, sem, timeout,
                                         recover, timeout=timeout + 10, show=False).value
        finally:
            del owner
    return HolderRun(lock, recover, ended.pid, str(ended.status), value, outcome, waited,
                     steps)
