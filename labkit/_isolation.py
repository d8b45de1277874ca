"""The grading sandbox's kernel mechanics: namespaces, an allowlisted root, privileges, cgroups.

Built the way bubblewrap and nsjail are: one job, set up from an allowlist
(an empty tmpfs root with read-only binds of only what the interpreter
needs), every step checked and fatal on failure (:class:`SetupError`), and
the result verified from ``/proc/self/mountinfo`` before student code runs.
A blocklist (hide what we know is secret) was rejected: it misses what we do
not know about. ``unshare --map-root-user`` was rejected: run as root it maps
the sandbox's root to the host's root; here root inside maps to ``nobody``
(or, for an unprivileged grader, to the grader's own uid).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import re
import secrets
import signal
import socket
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from ._platform import libc
from .errors import SetupError

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACES = (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
              | CLONE_NEWUTS)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
# statvfs f_flag bit -> mount flag; a remount must repeat the flags the kernel locked.
_LOCKED = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048,
           4096: 1 << 21}
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 24, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECURE_ALL = 0x3f        # noroot, no_setuid_fixup, keep_caps: each set and locked
NOBODY = 65534
WORK = "/submission"     # the private working folder (HOME), a tmpfs
WRITABLE = frozenset({WORK, "/dev/shm", "/dev/mqueue", "/dev/pts"})
DEVICES = ("null", "zero", "full", "random", "urandom")


def _call(what: str, result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {errno.errorcode.get(err, err)})")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _call(f"mount {target}", libc().mount(source.encode(), target.encode(),
                                           fstype.encode() if fstype else None, flags,
                                           data.encode() or None))


def _pivot_root(new: bytes, old: bytes) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SetupError(f"pivot_root's system call number on {platform.machine()} is unknown")
    _call("pivot_root", libc().syscall(number, new, old))


def _prctl(what: str, option: int, arg: int = 0) -> None:
    _call(what, libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


# --- identity ------------------------------------------------------------------------------


def unshare_all() -> None:
    """Enter new user, mount, IPC, PID (for the next child), network and UTS namespaces."""
    _call("unshare (user namespaces may be disabled here)", libc().unshare(NAMESPACES))


def map_ids(pid: int) -> int:
    """Map root in ``pid``'s new user namespace to nobody (grader is root) or to our own uid.

    Returns the host uid that root inside now is.
    """
    uid, gid = (NOBODY, NOBODY) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"),
                       ("gid_map", f"0 {gid} 1\n")):
        try:
            Path(f"/proc/{pid}/{name}").write_text(text)
        except OSError as e:
            raise SetupError(f"writing /proc/{pid}/{name}: {e.strerror}") from e
    return uid


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (and now, if it already has)."""
    _prctl("PR_SET_PDEATHSIG", PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def loopback_up() -> None:
    """Bring up ``lo`` in this (new) network namespace: the kernel talks to nbclient over it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, request))[1]  # SIOCGIFFLAGS
        try:
            fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 0x1))  # IFF_UP
        except OSError as e:
            raise SetupError(f"bringing up the loopback interface: {e.strerror}") from e


def drop_privileges() -> None:
    """No capabilities now or after exec, and no way to gain any (no_new_privs)."""
    _prctl("PR_SET_SECUREBITS", PR_SET_SECUREBITS, SECURE_ALL)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        _prctl(f"dropping capability {cap} from the bounding set", PR_CAPBSET_DROP, cap)
    _call("clearing ambient capabilities",
          libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0))
    _prctl("PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS, 1)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()                 # effective, permitted, inheritable = 0
    _call("capset", libc().capset(header, data))


def privileges_dropped() -> str:
    """"" if this process holds no capability and has no_new_privs set, else what is wrong."""
    status = dict(line.split(":\t", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":\t" in line)
    held = [k for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
            if int(status.get(k, "1"), 16) != 0]
    if held:
        return f"capabilities still held ({', '.join(held)})"
    return "" if status.get("NoNewPrivs", "0").strip() == "1" else "no_new_privs is not set"


# --- the filesystem ------------------------------------------------------------------------


def _unescape(field: str) -> str:
    # mountinfo escapes space as \040. No codec here: after the first pivot_root a lazy
    # import (of an encoding) would find no standard library.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(proc: str = "/proc") -> list[tuple[str, str, str]]:
    """(mount point, per-mount options, fs type) of each mount this process sees."""
    found = []
    for line in Path(proc, "self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        found.append((_unescape(fields[4]), fields[5], fstype))
    return found


def _remount_readonly(target: str, extra: int, below: bool = True) -> None:
    """Make ``target`` (and every mount below it) read-only, repeating their locked flags."""
    for point, _, _ in mounts("/oldroot/proc"):  # only called between the two pivots
        if point == target or (below and point.startswith(target.rstrip("/") + "/")):
            flags = sum(ms for st, ms in _LOCKED.items() if os.statvfs(point).f_flag & st)
            _mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags | extra)


def open_sources(paths: list[str]) -> dict[str, int]:
    """An O_PATH descriptor for each path, opened while this process still has the host
    ids (a pyenv under /root is reachable only by root) but is already in the new mount
    namespace (mount refuses a source from another one)."""
    sources = {}
    for path in paths:
        try:
            sources[path] = os.open(path, os.O_PATH | os.O_NOFOLLOW)
        except OSError as e:
            raise SetupError(f"cannot open {path} to show it in the sandbox: {e.strerror}") \
                from e
    return sources


def _bind(host: str, target: str, extra: int = MS_NOSUID | MS_NODEV,
          fd: int | None = None) -> None:
    source = "/oldroot" + host if fd is None else f"/oldroot/proc/self/fd/{fd}"
    try:
        mode = os.fstat(fd).st_mode if fd is not None else os.lstat(source).st_mode
    except OSError as e:
        raise SetupError(f"cannot bind {host}: {e.strerror}") from e
    if stat.S_ISLNK(mode):
        raise SetupError(f"refusing to bind {host}: it is a symbolic link")
    if stat.S_ISDIR(mode):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    _mount(source, target, None, MS_BIND | MS_REC)
    _remount_readonly(target, extra)


def _place(host: str) -> None:
    """Recreate a symlink of the host's root (/bin -> usr/bin), or bind the folder read-only."""
    link = "/oldroot" + host
    if os.path.islink(link):
        os.makedirs(os.path.dirname("/newroot" + host), exist_ok=True)
        os.symlink(os.readlink(link), "/newroot" + host)
    elif os.path.isdir(link):
        _bind(host, "/newroot" + host)


def _essential(paths: list[str]) -> list[str]:
    """The allowlist without entries inside another entry, refusing the host's root."""
    kept: list[str] = []
    for p in sorted({os.path.normpath(p) for p in paths}):
        if p == "/" or p == WORK or p.startswith(WORK + "/"):
            raise SetupError(f"refusing to show {p} in the sandbox: it is / or under {WORK}")
        if not any(p == k or p.startswith(k + "/") for k in kept):
            kept.append(p)
    return kept


def build_root(binds: dict[str, int], etc: dict[str, str], work_size: str,
               shm_size: str) -> None:
    """Pivot into a new tmpfs root that holds only ``binds`` (read-only) and the sandbox's own
    work folder, /dev, /dev/shm, /dev/mqueue, /dev/pts, /proc and made-up /etc files ``etc``."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700")
    for d in ("/tmp/oldroot", "/tmp/newroot"):
        os.mkdir(d)
    _pivot_root(b"/tmp", b"/tmp/oldroot")
    os.chdir("/")
    _mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        _place(top)
    for path in _essential(list(binds)):
        if not any(path == t or path.startswith(t + "/") for t in ("/usr", "/lib", "/lib64")):
            _bind(path, "/newroot" + path, fd=binds[path])
    os.makedirs("/newroot/etc", exist_ok=True)
    for host in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.islink("/oldroot" + host):
            os.symlink(os.readlink("/oldroot" + host), "/newroot" + host)
        elif os.path.isfile("/oldroot" + host):
            _bind(host, "/newroot" + host)
    for name, text in etc.items():
        Path("/newroot/etc", name).write_text(text)
    for d in (WORK, "/proc", "/dev", "/tmp"):
        os.makedirs("/newroot" + d, exist_ok=True)
    _mount("tmpfs", "/newroot" + WORK, "tmpfs", MS_NOSUID | MS_NODEV, f"size={work_size},mode=0700")
    _mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for device in DEVICES:
        _bind(f"/dev/{device}", f"/newroot/dev/{device}", MS_NOSUID | MS_NOEXEC)
    for d in ("shm", "mqueue", "pts"):
        os.mkdir(f"/newroot/dev/{d}")
    for name, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"),
                         ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/newroot/dev/{name}")
    _remount_readonly("/newroot/dev", MS_NOSUID | MS_NOEXEC, below=False)
    _mount("tmpfs", "/newroot/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={shm_size},mode=1777")
    _mount("mqueue", "/newroot/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620")
    _mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _remount_readonly("/newroot/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("none", "/newroot", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
           "size=4m,mode=0755")
    os.chdir("/newroot")
    _pivot_root(b".", b".")
    _call("detaching the host's root", libc().umount2(b".", MNT_DETACH))
    os.chdir("/")


def unexpected_writable() -> list[str]:
    """Mount points writable here beyond the work folder, /dev/shm, /dev/mqueue and /dev/pts, plus any
    of those missing: [] means the sandbox's filesystem is exactly as allowed."""
    seen = mounts()
    wrong = [p for p, opts, _ in seen if "rw" in opts.split(",") and p not in WRITABLE]
    present = {p for p, opts, _ in seen if "rw" in opts.split(",")}
    return wrong + [f"{p} (missing)" for p in sorted(WRITABLE - present)]


# --- limits on the whole sandbox -----------------------------------------------------------


@dataclass
class Cgroup:
    """A cgroup (v2, or v1 memory + pids) that holds one sandbox; remove it when done.

    >>> group = Cgroup.create(memory=2**30, processes=200)  # doctest: +SKIP
    >>> group.add(pid); ...; group.stopped_by(); group.remove()  # doctest: +SKIP
    """

    version: int
    dirs: dict[str, Path]        # controller ("memory", "pids", or "" for v2) -> folder

    @staticmethod
    def _hierarchies() -> dict[str, tuple[Path, Path]]:
        """Controller ("memory", "pids", "" for v2) -> (its mount, this process's cgroup)."""
        tops: dict[str, Path] = {}
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            fstype, options = fields[fields.index("-") + 1], fields[-1].split(",")
            for c in ([""] if fstype == "cgroup2" else ["memory", "pids"]
                      if fstype == "cgroup" else []):
                if c == "" or c in options:
                    tops.setdefault(c, Path(_unescape(fields[4])))
        found = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in (controllers.split(",") if controllers else [""]):
                if c in tops:
                    found[c] = (tops[c], tops[c] / path.lstrip("/"))
        return found

    @classmethod
    def create(cls, memory: int, processes: int, cpus: float = 1.0) -> Cgroup:
        """A new cgroup with these limits; raises SetupError saying why none can be made."""
        found, name = cls._hierarchies(), f"labkit-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
        top, own = found.get("", (None, None))
        for parent in [p for p in dict.fromkeys((own, top)) if p is not None] if top else []:
            try:
                available = set((parent / "cgroup.controllers").read_text().split())
                if not {"memory", "pids"} <= available:
                    continue
                (parent / "cgroup.subtree_control").write_text(
                    " ".join(f"+{c}" for c in ("memory", "pids", "cpu") if c in available))
                (parent / name).mkdir()
            except OSError:
                continue  # processes live in this one (or it is not ours): try the next
            group = cls(2, {"": parent / name})
            group._write("", "memory.max", memory, "memory.swap.max", 0, "pids.max", processes,
                         "cpu.max", f"{int(cpus * 100000)} 100000")
            return group
        parents = {c: own for c, (_, own) in found.items() if c}
        if "memory" in parents and "pids" in parents:
            made: dict[str, Path] = {}
            try:
                for c in ("memory", "pids"):
                    (parents[c] / name).mkdir()
                    made[c] = parents[c] / name
            except OSError as e:
                cls(1, made).remove()
                raise SetupError(f"cannot create a v1 cgroup: {e.strerror}") from e
            group = cls(1, made)
            group._write("memory", "memory.limit_in_bytes", memory,
                         "memory.memsw.limit_in_bytes", memory)
            group._write("pids", "pids.max", processes)
            return group
        raise SetupError("no cgroup with the memory and pids controllers can be created here")

    def _write(self, controller: str, *pairs: object) -> None:
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            path = self.dirs[controller] / str(key)
            if path.exists() or key in ("memory.max", "pids.max", "memory.limit_in_bytes"):
                try:
                    path.write_text(str(value))
                except OSError as e:
                    self.remove()
                    raise SetupError(f"setting {key}: {e.strerror}") from e

    def add(self, pid: int) -> None:
        """Move process ``pid`` (before it starts any child) into this cgroup."""
        for folder in self.dirs.values():
            (folder / "cgroup.procs").write_text(str(pid))

    def _counter(self, controller: str, file: str, key: str) -> int:
        folder = self.dirs.get(controller)
        try:
            lines = (folder / file).read_text().splitlines() if folder else []
        except OSError:
            return 0
        return sum(int(v) for k, v in (line.split() for line in lines if line.count(" ") == 1)
                   if k == key)

    def stopped_by(self) -> str:
        """"memory limit" or "process limit" if the sandbox hit one, else ""."""
        mem, pids = ("", "") if self.version == 2 else ("memory", "pids")
        if self._counter(mem, "memory.events" if self.version == 2 else "memory.oom_control",
                         "oom_kill"):
            return "memory limit"
        return "process limit" if self._counter(pids, "pids.events", "max") else ""

    def remove(self, wait: float = 5.0) -> None:
        """Kill what is left in the cgroup and remove it (waiting up to ``wait`` seconds)."""
        deadline = time.monotonic() + wait
        for folder in self.dirs.values():
            while folder.exists():
                try:
                    folder.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    for pid in (folder / "cgroup.procs").read_text().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass  # it ended on its own meanwhile
                    time.sleep(0.02)
