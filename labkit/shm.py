"""Lesson 03, shared memory: what a segment looks like from inside and from outside.

The segment itself is :class:`labkit.segment.Segment` (re-exported here, with
``PAGE_SIZE`` and the errors, for the notebook). This module lists the lab's
objects in ``/dev/shm``, draws a segment's bytes, maps one segment in an
unrelated process to compare the two mappings, shows a System V segment's
life, and measures copying into shared memory. Experiments return plain data;
plots take it and return Axes.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import pwd
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import objects
from ._platform import LINUX, MACOS
from ._validate import whole
from .display import Table, axes
from .errors import AccessDenied, LabError, NoSuchSegment, NotSupportedHere
from .processes import ExitStatus, run
from .runner import ProgramRun, run_module, run_program
from .segment import PAGE_SIZE, Segment, check_name, check_offset, maps_line

__all__ = [
    "PAGE_SIZE",
    "AccessDenied",
    "CopyBenchmark",
    "Mappings",
    "NoSuchSegment",
    "ProcessMapping",
    "Segment",
    "SegmentBytes",
    "SysVDemo",
    "Unrelated",
    "check_name",
    "copy_benchmark",
    "lab_objects",
    "objects_table",
    "plot_bytes",
    "plot_copy_bandwidth",
    "plot_first_touch",
    "plot_mappings",
    "run_unrelated",
    "segment_bytes",
    "struct_fields",
    "sysv_demo",
    "two_mappings",
]


# --- what is in /dev/shm -------------------------------------------------------------


def lab_objects(all_users: bool = False) -> list[objects.ObjectInfo]:
    """The lab's objects in ``/dev/shm`` (segments and semaphores), yours or everyone's.

    Each entry has its owner (``uid``), ``size``, ``mode``, the session that
    created it (``session_pid``) and whether that session still runs (``alive``).

    >>> with Segment.create(4096) as seg:
    ...     [(o.kind, o.size, oct(o.mode), o.alive) for o in lab_objects() if o.name == seg.name]
    [('shm', 4096, '0o600', True)]
    """
    if MACOS:
        raise NotSupportedHere("macOS keeps POSIX shared memory out of the file system: there "
                               "is no /dev/shm to list (Linux has it)")
    return [o for o in objects.list_objects(all_users) if o.kind in ("shm", "sem")]


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def objects_table(found: list[objects.ObjectInfo]) -> Table:
    """A table of :func:`lab_objects` entries: name, kind, owner, size, mode, creator.

    >>> objects_table([])
    name   kind   owner   size   mode   creator session   creator
    """
    rows = [[o.name, "segment" if o.kind == "shm" else "semaphore", _user(o.uid),
             objects.format_bytes(o.size), f"{o.mode:04o}", o.session_pid,
             "running" if o.alive else "gone"] for o in found]
    return Table(["name", "kind", "owner", "size", "mode", "creator session", "creator"], rows)


# --- pictures of bytes ---------------------------------------------------------------


@dataclass(frozen=True)
class SegmentBytes:
    """A copy of some bytes of a segment, and where they were."""

    name: str
    address: int              # where the segment starts in the process that looked
    offset: int               # the first byte copied
    data: tuple[int, ...]     # the bytes, as numbers 0 to 255


def segment_bytes(seg: Segment, offset: int = 0, length: int = 128) -> SegmentBytes:
    """Copy ``length`` bytes of ``seg`` from ``offset`` (for :func:`plot_bytes`).

    >>> with Segment.create(4096) as seg:
    ...     seg.buf[1] = 255
    ...     segment_bytes(seg, 0, 4).data
    (0, 255, 0, 0)
    """
    whole("length", length, 1, None, "bytes")
    check_offset(offset, 1, "a byte", seg.size)
    end = min(offset + length, seg.size)
    return SegmentBytes(seg.name, seg.address, offset, tuple(seg.buf[offset:end]))


def struct_fields(ctype: type) -> list[tuple[str, int, int]]:
    """``(name, offset, size)`` of each field of a ctypes Structure, for :func:`plot_bytes`.

    >>> class R(ctypes.Structure):
    ...     _fields_ = [("a", ctypes.c_int8), ("b", ctypes.c_int32)]
    >>> struct_fields(R)
    [('a', 0, 1), ('b', 4, 4)]
    """
    if not (isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union))):
        raise TypeError(f"ctype must be a ctypes Structure subclass, got {ctype!r}")
    return [(f[0], getattr(ctype, f[0]).offset, getattr(ctype, f[0]).size)
            for f in ctype._fields_]


def plot_bytes(snap: SegmentBytes, fields: list[tuple[str, int, int]] | None = None,
               title: str | None = None, ax: Any = None) -> Any:
    """Draw bytes as a grid, 16 to a row, each with its hex value; zero bytes are pale.

    ``fields`` (from :func:`struct_fields`, offsets relative to ``snap.offset``)
    outlines and names each field, so padding shows as unnamed bytes.
    Returns the Axes.

    >>> plot_bytes(segment_bytes(seg, 0, 32), fields=struct_fields(Reading))  # doctest: +SKIP
    """
    import matplotlib.patches as patches

    data = np.array(snap.data, dtype=np.uint8)
    rows = -(-len(data) // 16)
    flat = np.full(rows * 16, np.nan)
    flat[:len(data)] = data
    grid = flat.reshape(rows, 16)
    ax = axes(title or f"{len(data)} bytes of {snap.name} from offset {snap.offset}",
              "byte within the row (+0 to +15)", "offset of the row (bytes)", ax=ax,
              figsize=(8.0, 0.45 * rows + 1.4))
    ax.grid(False)
    shown = np.where(grid == 0, np.nan, grid)          # zero bytes stay white
    ax.imshow(np.full_like(grid, 0.0), cmap="Greys", vmin=0, vmax=10, aspect="auto")
    ax.imshow(shown, cmap="YlOrRd", vmin=-64, vmax=255, aspect="auto")
    for i, value in enumerate(data):
        ax.text(i % 16, i // 16, f"{value:02x}", ha="center", va="center", fontsize=8,
                color="black" if value else "#999999", family="monospace")
    for name, start, size in fields or []:
        for j in range(start, start + size):          # one outline per byte run within a row
            if j == start or j % 16 == 0:
                run_len = min(start + size - j, 16 - j % 16)
                ax.add_patch(patches.Rectangle((j % 16 - 0.5, j // 16 - 0.5), run_len, 1,
                                               fill=False, lw=2, ec="#1f5fbf"))
                if j == start:
                    ax.text(j % 16 - 0.42, j // 16 - 0.3, name, fontsize=7, color="#1f5fbf",
                            va="center", ha="left",
                            bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.85})
    ax.set_xticks(range(16), [f"+{i:x}" for i in range(16)])
    ax.set_yticks(range(rows), [str(snap.offset + 16 * r) for r in range(rows)])
    return ax


# --- unrelated processes -------------------------------------------------------------


@dataclass(frozen=True)
class Unrelated:
    """What a process started by :func:`run_unrelated` did."""

    pid: int
    status: ExitStatus
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True if it exited with code 0."""
        return self.status.ok

    def __str__(self) -> str:
        return f"process {self.pid} {self.status}"


def run_unrelated(code: str, *args: str, timeout: float = 10.0) -> Unrelated:
    """Run Python ``code`` in a brand-new process that shares nothing with this one.

    Unlike a forked child it inherits no memory, no mapping and no open
    object: it starts a fresh interpreter (``subprocess``, then exec), as a
    program started from a terminal would. ``args`` arrive in ``sys.argv[1:]``.
    Output is captured, never printed. It is killed after ``timeout`` seconds.

    >>> r = run_unrelated("import os, sys; print(os.getpid(), sys.argv[1])", "hi")
    >>> r.stdout.split()[1], r.pid != os.getpid(), str(r.status)
    ('hi', True, 'exited with code 0')
    """
    if not isinstance(code, str):
        raise TypeError(f"code must be Python source text (a str), got {type(code).__name__}")
    return _unrelated(run_module("labkit.programs.run_code", code, *map(str, args),
                                 timeout=timeout, what="the unrelated process"))


def _unrelated(ran: ProgramRun) -> Unrelated:
    status = ExitStatus(ran.returncode) if ran.returncode >= 0 else ExitStatus(
        None, -ran.returncode)
    return Unrelated(ran.pid, status, ran.stdout, ran.stderr)


# --- two processes, one segment ------------------------------------------------------


@dataclass(frozen=True)
class ProcessMapping:
    """How one process sees a segment."""

    role: str                 # "this process" or "unrelated process"
    pid: int
    address: int              # where the mapping starts in that process
    first_bytes: tuple[int, ...]
    maps_line: str            # the line of /proc/PID/maps (empty where there is none)


@dataclass(frozen=True)
class Mappings:
    """One segment as two processes map it (see :func:`two_mappings`)."""

    name: str
    size: int
    processes: tuple[ProcessMapping, ...]

    @property
    def same_contents(self) -> bool:
        return len({p.first_bytes for p in self.processes}) == 1

    @property
    def same_address(self) -> bool:
        return len({p.address for p in self.processes}) == 1


def two_mappings(seg: Segment, nbytes: int = 16) -> Mappings:
    """Map ``seg`` in an unrelated process too; report both addresses and first bytes.

    >>> with Segment.create(4096) as seg:
    ...     seg.buf[:3] = b"abc"
    ...     m = two_mappings(seg, 3)
    >>> m.same_contents, bytes(m.processes[1].first_bytes)
    (True, b'abc')
    """
    whole("nbytes", nbytes, 1, seg.size)
    here = ProcessMapping("this process", os.getpid(), seg.address, tuple(seg.buf[:nbytes]),
                          maps_line(seg.name))
    r = _unrelated(run_module("labkit.programs.report_mapping", seg.name, str(nbytes),
                              timeout=10.0))
    if not r.ok:
        raise LabError(f"the unrelated process could not map {seg.name}: {r.status}\n"
                       f"{r.stderr.strip()}")
    got = json.loads(r.stdout)
    there = ProcessMapping("unrelated process", got["pid"], got["address"], tuple(got["first"]),
                           got["maps"])
    return Mappings(seg.name, seg.size, (here, there))


def plot_mappings(m: Mappings, ax: Any = None) -> Any:
    """Draw the part of the address space that holds the segment in each process, side
    by side, both joined to the one object in ``/dev/shm``. Returns the Axes.

    >>> plot_mappings(two_mappings(seg))  # doctest: +SKIP
    """
    import matplotlib.patches as patches
    from matplotlib.ticker import FuncFormatter

    ax = axes(f"One segment, two processes: {m.name}", "",
              "virtual address (part of the address space)", ax=ax, figsize=(8.0, 4.5))
    ax.grid(False)
    starts = [p.address for p in m.processes]
    span = max(max(starts) - min(starts), 1 << 20)
    lo, hi = min(starts) - span // 2, max(starts) + m.size + span // 2
    height = max(m.size, (hi - lo) // 30)          # drawn at least 1/30 high, to be seen
    middle = (lo + hi) / 2
    for x, p in zip((0, 2), m.processes, strict=False):
        ax.add_patch(patches.Rectangle((x - 0.4, lo), 0.8, hi - lo, fc="#f2f2f2", ec="grey"))
        ax.add_patch(patches.Rectangle((x - 0.4, p.address), 0.8, height, fc="#7fb3e6",
                                       ec="#1f5fbf"))
        ax.text(x, hi + (hi - lo) * 0.02, f"{p.role}\npid {p.pid}", ha="center", va="bottom",
                fontsize=9)
        ax.text(x, p.address - (hi - lo) * 0.02, f"starts at {p.address:#x}\nreads "
                f"{bytes(p.first_bytes[:6]).hex(' ')}", ha="center", va="top", fontsize=8,
                family="monospace")
        edge = x + 0.4 if x == 0 else x - 0.4
        ax.annotate("", xy=(0.62 if x == 0 else 1.38, middle), xytext=(edge, p.address + height / 2),
                    arrowprops={"arrowstyle": "->", "color": "#1f5fbf"})
    ax.add_patch(patches.FancyBboxPatch((0.62, middle - (hi - lo) * 0.12), 0.76, (hi - lo) * 0.24,
                                        boxstyle="round,pad=0.02", fc="#fff3c4", ec="#b38f00"))
    ax.text(1, middle, f"the object in /dev/shm\n{objects.format_bytes(m.size)}, "
            "one set of pages", ha="center", va="center", fontsize=8)
    ax.set_xlim(-0.6, 2.6)
    ax.set_ylim(lo - (hi - lo) * 0.12, hi + (hi - lo) * 0.15)
    ax.set_xticks([])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{int(y):#x}"))
    return ax


# --- System V --------------------------------------------------------------------------


@dataclass(frozen=True)
class SysVDemo:
    """A System V segment's life as ``ipcs -m`` (or ``/proc/sysvipc/shm``) saw it."""

    tool: str                 # "ipcs -m", "/proc/sysvipc/shm", or "" if neither exists
    header: str               # the listing's column names
    shmid: int | None         # the segment's id (None if shmget failed)
    while_attached: list[str] # its line(s) while attached and marked for destruction
    after_detach: list[str]   # its line(s) once detached (none: it is gone)
    read_back: bytes          # what was read through the mapping
    note: str = ""            # why a step could not run, if one could not


def _sysv_listing(shmid: int) -> tuple[str, str, list[str]]:
    if shutil.which("ipcs"):
        out = run_program(["ipcs", "-m"], timeout=5).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        header = next((line for line in lines if line.lstrip().startswith("key")), "")
        mine = [line for line in lines if len(line.split()) > 1 and line.split()[1] == str(shmid)]
        return "ipcs -m", header, mine
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return "", "", []
    mine = [line for line in lines[1:] if len(line.split()) > 1 and line.split()[1] == str(shmid)]
    return "/proc/sysvipc/shm", lines[0] if lines else "", mine


def _sysv_child() -> SysVDemo:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    ipc_private, ipc_creat, ipc_rmid = 0, 0o1000, 0
    shmid = libc.shmget(ipc_private, PAGE_SIZE, ipc_creat | 0o600)
    if shmid < 0:
        err = ctypes.get_errno()
        return SysVDemo("", "", None, [], [], b"", f"shmget failed: {os.strerror(err)} "
                        "(System V IPC is switched off in some sandboxes)")
    addr = libc.shmat(shmid, None, 0)
    libc.shmctl(shmid, ipc_rmid, None)   # at once: it goes when the last process detaches
    if addr in (None, ctypes.c_void_p(-1).value):
        return SysVDemo("", "", shmid, [], [], b"", "shmat failed")
    ctypes.memmove(addr, b"System V", 8)
    read_back = ctypes.string_at(addr, 8)
    tool, header, attached = _sysv_listing(shmid)
    libc.shmdt(ctypes.c_void_p(addr))
    _, _, after = _sysv_listing(shmid)
    return SysVDemo(tool, header, shmid, attached, after, read_back)


def sysv_demo() -> SysVDemo:
    """Make a System V segment in a child: ``shmget``, ``shmat``, mark it for removal
    (``IPC_RMID``), list it, detach, list again. Nothing can leak: it is marked
    for removal the moment it is attached.

    >>> d = sysv_demo()  # doctest: +SKIP
    >>> d.after_detach   # doctest: +SKIP
    []
    """
    if not LINUX:
        raise NotSupportedHere("this System V demonstration reads Linux's ipcs layout; macOS "
                               "has shmget too, but a different ipcs")
    return run(_sysv_child, timeout=10, show=False).value


# --- copying into shared memory --------------------------------------------------------


@dataclass(frozen=True)
class CopyBenchmark:
    """Seconds per trial of each way of copying (see :func:`copy_benchmark`)."""

    nbytes: int                  # bytes copied per trial in the copy measurements
    segment_bytes: int           # the lab segment's size (the copy goes in pieces of this size)
    page_size: int
    numpy_seconds: list[float]   # private memory -> private memory (the machine's memcpy)
    segment_seconds: list[float] # private memory -> the mapped lab segment
    shared_first: list[float]    # one pass over a fresh mapping of the segment (page faults)
    shared_again: list[float]    # the same pass again on that mapping (no faults)
    private_first: list[float]   # one pass over fresh private memory (faults + zero fill)
    private_again: list[float]

    @staticmethod
    def _median(xs: list[float]) -> float:
        return float(np.median(xs))

    @property
    def numpy_gbps(self) -> float:
        """Median bandwidth of the NumPy copy, in GB/s (1e9 bytes per second)."""
        return self.nbytes / self._median(self.numpy_seconds) / 1e9

    @property
    def segment_gbps(self) -> float:
        """Median bandwidth of copying into the lab segment, in GB/s."""
        return self.nbytes / self._median(self.segment_seconds) / 1e9

    @property
    def pages(self) -> int:
        return self.segment_bytes // self.page_size

    @property
    def shared_fault_us(self) -> float:
        """Extra microseconds per page of the first touch of a fresh shared mapping."""
        extra = self._median(self.shared_first) - self._median(self.shared_again)
        return max(extra, 0.0) / self.pages * 1e6

    @property
    def private_fault_us(self) -> float:
        """Extra microseconds per page of the first touch of fresh private memory."""
        extra = self._median(self.private_first) - self._median(self.private_again)
        return max(extra, 0.0) / self.pages * 1e6


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _copy_pieces(target: Any, pieces: list[Any]) -> None:
    for piece in pieces:
        np.copyto(target, piece)


def copy_benchmark(nbytes: int = 64 << 20, segment_bytes: int = 32 << 20,
                   trials: int = 5) -> CopyBenchmark:
    """Time copying ``nbytes`` into a lab segment against a plain NumPy copy, and the
    first touch of fresh pages, ``trials`` times each (timings vary from run to run).

    The segment holds ``segment_bytes`` (default 32 MiB, so the lesson fits a
    64 MB ``/dev/shm``); ``nbytes`` go into it in pieces of that size.

    >>> b = copy_benchmark(1 << 20, 1 << 18, trials=2)
    >>> b.numpy_gbps > 0 and b.segment_gbps > 0 and len(b.shared_first) == 2
    True
    """
    whole("nbytes", nbytes, 1, 1 << 36, "bytes")
    whole("segment_bytes", segment_bytes, 1, 1 << 36, "bytes")
    whole("trials", trials, 1, 1000, "trials")
    if segment_bytes % PAGE_SIZE or nbytes % segment_bytes:
        raise ValueError(f"segment_bytes must be a multiple of the page size ({PAGE_SIZE}) and "
                         f"nbytes a multiple of segment_bytes, got {nbytes} and {segment_bytes}")
    words = segment_bytes // 8
    src = np.arange(nbytes // 8, dtype=np.uint64)
    dst = np.zeros_like(src)
    numpy_s = [_timed(np.copyto, dst, src) for _ in range(trials)]
    del dst
    pieces = [src[i:i + words] for i in range(0, len(src), words)]
    segment_s, shared_first, shared_again, private_first, private_again = [], [], [], [], []
    with Segment.create(segment_bytes, label="bench") as seg:
        target = seg.array(np.uint64)
        np.copyto(target, pieces[0])          # touch every page once in this mapping
        for _ in range(trials):
            segment_s.append(_timed(_copy_pieces, target, pieces))
        del target
        for _ in range(trials):
            fresh = Segment.attach(seg.name)  # a new mapping: no page is in our page table yet
            view = fresh.array(np.uint64)
            shared_first.append(_timed(np.copyto, view, pieces[0]))
            shared_again.append(_timed(np.copyto, view, pieces[0]))
            del view
            fresh.close()
    for _ in range(trials):
        anon = mmap.mmap(-1, segment_bytes, flags=mmap.MAP_PRIVATE)  # fresh, never touched
        view = np.frombuffer(anon, dtype=np.uint64)
        private_first.append(_timed(np.copyto, view, pieces[0]))
        private_again.append(_timed(np.copyto, view, pieces[0]))
        del view
        anon.close()
    return CopyBenchmark(nbytes, segment_bytes, PAGE_SIZE, numpy_s, segment_s, shared_first,
                         shared_again, private_first, private_again)


def plot_copy_bandwidth(b: CopyBenchmark, ax: Any = None) -> Any:
    """Bars of GB/s (median, with the range of the trials) for the two copies. Returns Axes.

    >>> plot_copy_bandwidth(copy_benchmark())  # doctest: +SKIP
    """
    mib = b.nbytes >> 20
    ax = axes(f"Copying {mib} MiB: the median of {len(b.numpy_seconds)} trials", "",
              "bandwidth (GB/s)", ax=ax, figsize=(7.0, 3.8))
    labels = ["NumPy copy, private\nmemory (memcpy)",
              f"into a lab segment\n({b.segment_bytes >> 20} MiB pieces)"]
    for i, (label, secs, colour) in enumerate(zip(
            labels, (b.numpy_seconds, b.segment_seconds), ("#999999", "#1f77b4"), strict=True)):
        rates = [b.nbytes / s / 1e9 for s in secs]
        mid = float(np.median(rates))
        ax.bar(i, mid, color=colour, label=label.replace("\n", " "))
        ax.errorbar(i, mid, yerr=[[mid - min(rates)], [max(rates) - mid]], color="black",
                    capsize=6)
        ax.text(i, mid / 2, f"{mid:.1f} GB/s", ha="center", color="white", fontweight="bold")
    top = max(b.nbytes / s / 1e9 for s in b.numpy_seconds + b.segment_seconds)
    ax.set_ylim(0, top * 1.3)
    ax.set_xticks([0, 1], labels)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    return ax


def plot_first_touch(b: CopyBenchmark, ax: Any = None) -> Any:
    """Bars of the extra microseconds per page that the first touch of fresh pages costs.

    >>> plot_first_touch(copy_benchmark())  # doctest: +SKIP
    """
    ax = axes(f"First touch: extra cost per {b.page_size // 1024} KiB page "
              f"({b.pages} pages, median of {len(b.shared_first)})", "",
              "extra time per page (µs)", ax=ax, figsize=(7.0, 3.8))
    labels = ["lab segment, fresh mapping\n(pages already reserved)",
              "private memory, fresh\n(page allocated and zeroed)"]
    values = [b.shared_fault_us, b.private_fault_us]
    for i, (label, v, colour) in enumerate(zip(labels, values, ("#1f77b4", "#999999"), strict=False)):
        ax.bar(i, v, color=colour, label=label.replace("\n", " "))
        ax.text(i, v, f"{v:.2f} µs", ha="center", va="bottom")
    ax.set_ylim(0, max(*values, 0.01) * 1.35)
    ax.set_xticks([0, 1], labels)
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    return ax
