"""``labkit doctor``: is this machine ready for the lab, and if not, what to change.

Each finding has a verdict (ok, note, warn, fail) and, where something
should change, the fix: the Docker flag, the Kubernetes setting or the
sysctl. Containers are where labs break (a 64 MB ``/dev/shm``, a low process
limit, an init that never reaps zombies), so those get the most care. On a
shared server the limits every user draws from (queues, processes, open
files) are reported as the whole machine's use, not only yours.

Each check is a function in :data:`CHECKS` returning one finding or a list;
a new check is one more entry there.
"""
from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._platform import LINUX, MACOS
from .display import Status
from .objects import format_bytes, list_objects, mqueue_limits, mqueue_use
from .session import SHM_DIR

__all__ = ["Finding", "Verdict", "diagnose", "report"]


class Verdict(Status):
    """How one topic of the doctor's report stands; FAIL is loud on purpose."""

    OK = "ok"
    NOTE = "note"
    WARN = "warn"
    FAIL = "FAIL"


SHM_WANTED = 256 * 2**20
NPROC_WANTED = 256
SHARED_WARN = 0.8  # a machine-wide limit this full is flagged: the next users will hit it
REAPING_INITS = {"systemd", "init", "tini", "docker-init", "dumb-init", "catatonit",
                 "s6-svscan", "runit", "openrc-init", "launchd"}


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    verdict: Verdict
    topic: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"[{self.verdict:>4}] {self.topic}: {self.detail}"
        return text + (f"\n         fix: {self.fix}" if self.fix else "")


def _python() -> Finding:
    v = sys.version_info
    text = f"Python {platform.python_version()} ({sys.executable})"
    if v < (3, 10):
        return Finding(Verdict.FAIL, "python", text, "install Python 3.10 or newer")
    if v >= (3, 14):
        return Finding(Verdict.NOTE, "python", text + "; multiprocessing now starts workers with "
                       "forkserver by default: labkit always names its start method")
    if v >= (3, 12):
        return Finding(Verdict.NOTE, "python", text + "; a raw os.fork() in a cell warns that the "
                       "kernel is multi-threaded (lesson 00 explains why)")
    return Finding(Verdict.OK, "python", text)


def _system() -> Finding:
    if MACOS:
        return Finding(Verdict.WARN, "system", "macOS: no POSIX message queues, no "
                       "F_GETPIPE_SZ, no prctl; lessons 02 and 06 stop with a clear error "
                       "where they need them",
                       "use Linux (a VM, a container, or WSL 2 on Windows)")
    if not LINUX:
        return Finding(Verdict.FAIL, "system", f"{sys.platform} is not supported", "use Linux")
    release = platform.release()
    if "microsoft" in release.lower() and "WSL2" not in release:
        return Finding(Verdict.WARN, "system", f"WSL 1 ({release}) lacks real POSIX IPC",
                       "upgrade the distribution to WSL 2: wsl --set-version <distro> 2")
    return Finding(Verdict.OK, "system", f"Linux {release}")


def _posix_ipc() -> Finding:
    try:
        import posix_ipc
    except ImportError:
        return Finding(Verdict.FAIL, "posix_ipc", "not installed", "pip install posix_ipc")
    queues = "with" if posix_ipc.MESSAGE_QUEUES_SUPPORTED else "WITHOUT"
    return Finding(Verdict.OK, "posix_ipc", f"version {posix_ipc.VERSION}, {queues} message queues")


def _cores() -> Finding:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (n or 1) < 2:
        return Finding(Verdict.WARN, "cores", f"{n} core: races between processes show "
                       "rarely on one core", "give the machine or container at least 2 CPUs")
    return Finding(Verdict.OK, "cores", f"{n} usable")


def _shm() -> Finding:
    if not SHM_DIR.is_dir():
        return Finding(Verdict.FAIL if LINUX else Verdict.NOTE, "/dev/shm", "missing",
                       "mount a tmpfs there: mount -t tmpfs -o size=1g tmpfs /dev/shm")
    st = os.statvfs(SHM_DIR)
    size, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    text = f"{format_bytes(size)}, {format_bytes(free)} free"
    if size < SHM_WANTED or free < SHM_WANTED // 2:
        return Finding(Verdict.WARN, "/dev/shm",
                       text + " (small: Docker and Kubernetes give 64 MB)",
                       "docker run --shm-size=1g ...; on Kubernetes mount an emptyDir with "
                       "medium: Memory at /dev/shm; or remove leftovers with `labkit clean`")
    return Finding(Verdict.OK, "/dev/shm", text)


def _mqueue() -> list[Finding]:
    limits = mqueue_limits()
    text = (f"{limits['msg_max']} messages of at most {limits['msgsize_max']} bytes per "
            f"queue, {limits['queues_max']} queues, {format_bytes(limits['rlimit'])} per "
            "user (RLIMIT_MSGQUEUE)")
    found = []
    if limits["msg_max"] < 10 or limits["msgsize_max"] < 8192 or limits["rlimit"] < 819200:
        found.append(Finding(Verdict.WARN, "message queues", text + ": below Linux's defaults",
                             "sysctl fs.mqueue.msg_max=10 fs.mqueue.msgsize_max=8192; "
                             "ulimit -q 819200"))
    else:
        found.append(Finding(Verdict.OK, "message queues", text))
    use = mqueue_use()
    if LINUX and use is None:
        found.append(Finding(Verdict.NOTE, "/dev/mqueue", "not mounted: queues work, but leftovers "
                             "cannot be listed or cleaned by name, and the machine-wide "
                             "number of queues cannot be seen",
                             "mount -t mqueue none /dev/mqueue (as root)"))
    elif use is not None:
        found.append(_shared("queues in use", use, limits["queues_max"], "all users' queues",
                             "close queues you no longer need (`labkit clean`); an "
                             "administrator can raise it: sysctl fs.mqueue.queues_max=1024"))
    return found


def _shared(topic: str, used: int, limit: int, what: str, fix: str) -> Finding:
    """A limit every user of the machine draws from, and how much of it is taken."""
    text = f"{used} of {limit} ({what}, on the whole machine)"
    if limit and used >= limit and os.geteuid() != 0:
        return Finding(Verdict.FAIL, topic, text + ": none left for you", fix)
    if limit and used >= SHARED_WARN * limit:
        return Finding(Verdict.WARN, topic, text + ": nearly all taken", fix)
    return Finding(Verdict.OK, topic, text)


def _machine_processes() -> Finding:
    try:
        limit = int(Path("/proc/sys/kernel/pid_max").read_text())
        running = sum(1 for e in os.listdir("/proc") if e.isdigit())
    except OSError:
        return Finding(Verdict.NOTE, "processes in use", "unknown (no /proc)")
    return _shared("processes in use", running, limit, "all users' processes",
                   "end processes you no longer need; an administrator can raise "
                   "kernel.pid_max")


def _machine_files() -> Finding:
    try:
        used, _, limit = map(int, Path("/proc/sys/fs/file-nr").read_text().split())
    except (OSError, ValueError):
        return Finding(Verdict.NOTE, "open files in use", "unknown (no /proc/sys/fs/file-nr)")
    return _shared("open files in use", used, limit, "all users' open files",
                   "close files you no longer need; an administrator can raise fs.file-max")


def _processes() -> Finding:
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if soft == resource.RLIM_INFINITY:
        return Finding(Verdict.OK, "process limit", "unlimited (ulimit -u)")
    text = f"{soft} processes per user (ulimit -u)"
    if os.geteuid() == 0:
        text += "; root is not held to it"
    if soft < NPROC_WANTED:
        return Finding(Verdict.WARN, "process limit", text, "ulimit -u 4096; in Docker raise "
                       "--pids-limit; on Kubernetes the pod's pids limit")
    return Finding(Verdict.OK, "process limit", text)


def _init() -> Finding:
    try:
        name = Path("/proc/1/comm").read_text().strip()
    except OSError:
        return Finding(Verdict.NOTE, "PID 1", "unknown (no /proc/1)")
    if name in REAPING_INITS:
        return Finding(Verdict.OK, "PID 1", f"{name}, which reaps orphaned processes")
    return Finding(Verdict.NOTE, "PID 1", f"{name}: if it does not reap orphans, every orphan that "
                   "exits stays a zombie (labkit's own children never orphan)",
                   "docker run --init ...; or tini as the container's entry point")


def _leftovers() -> Finding:
    objs = list_objects()
    stale = [o for o in objs if not o.alive]
    if stale:
        return Finding(Verdict.WARN, "leftovers", f"{len(stale)} lab object(s) of ended sessions: "
                       + ", ".join(o.name for o in stale[:5]), "labkit clean")
    return Finding(Verdict.OK, "leftovers", f"none ({len(objs)} object(s) of live sessions)")


# --- the grader's sandbox ------------------------------------------------------------------


def _grading_isolation() -> Finding:
    """Which isolation ``labkit grade`` gets here, found by starting one empty sandbox."""
    if not LINUX:
        return Finding(Verdict.NOTE, "grading", "labkit grade needs Linux namespaces", "use Linux")
    from .errors import LabError

    try:
        from .grade import isolation_level

        usable, how = isolation_level()
    except (LabError, OSError, ImportError) as e:  # not in a course folder, or not ours to run
        return Finding(Verdict.NOTE, "grading", f"not checked here: {e}")
    if not usable:
        return Finding(Verdict.WARN, "grading", f"labkit grade will refuse to run: {how}",
                       "allow unprivileged user namespaces (sysctl "
                       "kernel.unprivileged_userns_clone=1; Ubuntu 24.04+: sysctl "
                       "kernel.apparmor_restrict_unprivileged_userns=0), or grade as root")
    if "no cgroup" in how:
        return Finding(Verdict.NOTE, "grading", how, "for limits on a whole submission, grade as "
                       "root or in a delegated cgroup v2 subtree (systemd-run --user --scope "
                       "-p Delegate=yes labkit grade ...)")
    return Finding(Verdict.OK, "grading", how)


CHECKS: list[Callable[[], Finding | list[Finding]]] = [
    _python, _system, _posix_ipc, _cores, _shm, _mqueue, _processes, _machine_processes,
    _machine_files, _init, _leftovers, _grading_isolation]


def diagnose() -> list[Finding]:
    """Every check of :data:`CHECKS`, in the order the report prints them.

    >>> [f.topic for f in diagnose()][:2]
    ['python', 'system']
    """
    found: list[Finding] = []
    for check in CHECKS:
        result = check()
        found += result if isinstance(result, list) else [result]
    return found


def report(findings: list[Finding]) -> str:
    """The findings as text, with a verdict line at the end."""
    worst = ("not ready" if any(f.verdict == Verdict.FAIL for f in findings)
             else "ready, with warnings" if any(f.verdict == Verdict.WARN for f in findings)
             else "ready")
    return "\n".join([*map(str, findings), f"IPC Lab on this machine: {worst}"])
