"""Pipe experiments for lesson 02: measure a pipe instead of trusting a number.

Each experiment runs on real processes (forked through :mod:`labkit.processes`,
so a stuck writer is killed by a timeout instead of hanging the kernel) and
returns plain data: the bytes a non-blocking writer could put into a pipe, the
fill level of a pipe over time, which writes of several writers arrived torn,
and the throughput for each write size next to ``dd`` measured in the same run.
The ``plot_*`` functions take that data and return the Axes.

FIFOs are created by :mod:`labkit.objects` (private directory, unique name,
removed with their scope). This module opens them with a timeout, because
opening a FIFO blocks until the other side arrives and a cell that waits for a
process that died would wait forever; and :func:`fifo_server` runs a small
question server as a separate program behind one, for the FIFO exercise.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import re
import select
import shutil
import stat
import statistics
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import objects
from ._platform import LINUX
from ._validate import seconds as _seconds
from ._validate import whole as _whole
from .errors import LabError, LabTimeout, NotSupportedHere
from .processes import start_workers
from .runner import end_program, start_program

__all__ = [
    "PAGE_SIZE",
    "PIPE_BUF",
    "Capacity",
    "FifoServer",
    "FillTrace",
    "Interleaving",
    "Throughput",
    "bytes_waiting",
    "dd_pair",
    "fifo_server",
    "interleaving",
    "max_pipe_size",
    "open_fifo",
    "pipe_size",
    "placement",
    "plot_fill",
    "plot_interleaving",
    "plot_tears",
    "plot_throughput",
    "probe_capacity",
    "record_fill",
    "set_pipe_size",
    "throughput",
]

PIPE_BUF: int = select.PIPE_BUF  # writes up to this many bytes are atomic (4096 on Linux)
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")

# Python has the names on Linux from 3.10; the numbers are Linux's own (fcntl.h).
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032 if LINUX else None)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031 if LINUX else None)
_NO_PIPE_SIZE = ("this system cannot report or change a pipe's capacity (F_GETPIPE_SZ and "
                 "F_SETPIPE_SZ exist only on Linux; macOS sizes its pipes itself, 16 KiB "
                 "growing to 64 KiB); probe_capacity() still measures it by filling a pipe")

MAX_CHUNK = 1 << 20           # largest single write the experiments accept
MAX_TRANSFER = 256 << 20      # most bytes one experiment may move through a pipe
MAX_WRITES = 20_000           # most writes of one throughput run (keeps tiny sizes quick)


def _pipe_fd(fd: Any) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise ValueError(f"expected a file descriptor (an int), got {fd!r}")
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        raise ValueError(f"{fd} is not an open file descriptor") from e
    if not stat.S_ISFIFO(mode):
        raise ValueError(f"descriptor {fd} is not a pipe or FIFO")
    return fd


# --- the pipe's own numbers -----------------------------------------------------------


def max_pipe_size() -> int:
    """The largest capacity an ordinary user may give a pipe (``/proc/sys/fs/pipe-max-size``).

    >>> max_pipe_size() >= 65536
    True
    """
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return 1 << 20  # Linux's default


def pipe_size(fd: int) -> int:
    """The capacity of the pipe behind ``fd``, in bytes, as the kernel reports it.

    Raises NotSupportedHere where ``F_GETPIPE_SZ`` does not exist (macOS).

    >>> r, w = os.pipe()
    >>> pipe_size(w)
    65536
    >>> os.close(r); os.close(w)
    """
    _pipe_fd(fd)
    if _F_GETPIPE_SZ is None:
        raise NotSupportedHere(_NO_PIPE_SIZE)
    return fcntl.fcntl(fd, _F_GETPIPE_SZ)


def set_pipe_size(fd: int, size: int) -> int:
    """Ask for a capacity of ``size`` bytes and return what the kernel gave.

    Linux rounds up to a power of two pages. ``size`` must be from 1 to
    :func:`max_pipe_size`. Raises NotSupportedHere on systems without
    ``F_SETPIPE_SZ`` (macOS), LabError if the kernel refuses.

    >>> r, w = os.pipe()
    >>> set_pipe_size(w, 10_000)
    16384
    >>> os.close(r); os.close(w)
    """
    _pipe_fd(fd)
    limit = max_pipe_size()
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= limit:
        raise ValueError(f"size must be a whole number of bytes from 1 to {limit} (the "
                         f"limit in /proc/sys/fs/pipe-max-size), got {size!r}")
    if _F_SETPIPE_SZ is None:
        raise NotSupportedHere(_NO_PIPE_SIZE)
    try:
        return fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise LabError(f"cannot shrink the pipe to {size} bytes: it holds "
                           f"{bytes_waiting(fd)} bytes now, more than would fit; read "
                           "them first") from e
        if e.errno == errno.EPERM:
            raise LabError(f"the kernel refused {size} bytes for this pipe: your pipes "
                           "together use more memory than /proc/sys/fs/pipe-user-pages-soft "
                           "allows; close pipes you no longer need") from e
        raise LabError(f"could not set the pipe's capacity to {size} bytes: "
                       f"{e.strerror}") from e


def bytes_waiting(fd: int) -> int:
    """How many bytes sit in the pipe behind ``fd`` right now, written and not yet read.

    This is the ``FIONREAD`` ioctl; it works on either end of a pipe or FIFO.

    >>> r, w = os.pipe()
    >>> os.write(w, b"hello")
    5
    >>> bytes_waiting(r)
    5
    >>> os.close(r); os.close(w)
    """
    _pipe_fd(fd)
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


# --- capacity -------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """What a non-blocking writer could put into one pipe before it said "full"."""

    chunk: int                 # bytes per write
    requested: int | None      # capacity asked for with F_SETPIPE_SZ (None: the default)
    reported: int | None       # F_GETPIPE_SZ (None where the system cannot tell)
    filled: int                # bytes written before the write failed with EAGAIN
    writes: int                # writes that succeeded (some may have been partial)
    waiting: int               # bytes FIONREAD counted in the pipe afterwards

    def __str__(self) -> str:
        said = f"; the kernel reports {self.reported}" if self.reported is not None else ""
        return (f"{self.filled} bytes fit, in {self.writes} writes of up to {self.chunk} "
                f"bytes{said}")


def probe_capacity(chunk: int = 1024, size: int | None = None) -> Capacity:
    """Fill a fresh pipe with non-blocking writes of ``chunk`` bytes until it is full.

    Nothing blocks: with ``O_NONBLOCK`` a write to a full pipe fails with
    EAGAIN (``BlockingIOError``) instead of waiting for a reader. ``size``
    first asks for another capacity with ``F_SETPIPE_SZ`` (Linux only).

    >>> probe_capacity().filled
    65536
    >>> probe_capacity(size=4096).filled
    4096
    """
    _whole("chunk", chunk, 1, MAX_CHUNK, "bytes")
    r, w = os.pipe()
    try:
        if size is not None:
            set_pipe_size(w, size)
        reported = pipe_size(w) if _F_GETPIPE_SZ is not None else None
        os.set_blocking(w, False)
        data = bytes(chunk)
        filled = writes = 0
        while True:
            try:
                filled += os.write(w, data)
            except BlockingIOError:
                break
            writes += 1
        return Capacity(chunk, size, reported, filled, writes, bytes_waiting(r))
    finally:
        os.close(r)
        os.close(w)


# --- fill level over time -------------------------------------------------------------


@dataclass(frozen=True)
class FillTrace:
    """A pipe's fill level over time, with a paced writer and a slower paced reader.

    Times are seconds since the writer started. ``levels`` are FIONREAD
    samples taken by the parent; ``write_starts``/``write_ends`` bracket each
    ``write()`` call, so a long one is time the writer spent blocked.
    """

    capacity: int | None
    write_size: int
    write_every: float
    read_size: int
    read_every: float
    times: list[float]
    levels: list[int]
    write_starts: list[float]
    write_ends: list[float]
    read_times: list[float]
    read_sizes: list[int]

    @property
    def max_level(self) -> int:
        """The fullest the pipe was seen."""
        return max(self.levels, default=0)

    @property
    def blocked(self) -> list[tuple[float, float]]:
        """(start, end) of every write that waited noticeably (over 1 ms) for room."""
        return [(a, b) for a, b in zip(self.write_starts, self.write_ends) if b - a > 0.001]

    @property
    def blocked_seconds(self) -> float:
        """Total time the writer spent blocked in ``write()``."""
        return sum(b - a for a, b in self.blocked)


def _pace(start: float, k: int, every: float) -> None:
    delay = start + k * every - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _fill_worker(i: int, r: int, w: int, total: int, write_size: int, write_every: float,
                 read_size: int, read_every: float) -> tuple[list[float], list[Any]]:
    if i == 0:  # the writer: one write every write_every seconds, blocking when full
        os.close(r)
        data = bytes(write_size)
        starts: list[float] = []
        ends: list[float] = []
        begin = time.monotonic()
        k = sent = 0
        while sent < total:
            _pace(begin, k, write_every)
            piece = data[:min(write_size, total - sent)]
            starts.append(time.monotonic())
            sent += os.write(w, piece)
            ends.append(time.monotonic())
            k += 1
        os.close(w)
        return starts, ends
    os.close(w)  # the reader: one read every read_every seconds, until end of file
    times: list[float] = []
    sizes: list[int] = []
    begin = time.monotonic()
    k = 0
    while True:
        _pace(begin, k, read_every)
        n = len(os.read(r, read_size))
        if not n:
            break
        times.append(time.monotonic())
        sizes.append(n)
        k += 1
    os.close(r)
    return times, sizes


def record_fill(total: int = 256 * 1024, write_size: int = 4096, write_every: float = 0.002,
                read_size: int = 4096, read_every: float = 0.004, size: int | None = None,
                sample_every: float = 0.0005, timeout: float = 10.0) -> FillTrace:
    """Record a pipe's fill level while a paced writer outruns a paced reader.

    A writer child writes ``total`` bytes, ``write_size`` at a time, one
    write every ``write_every`` seconds; a reader child reads ``read_size``
    bytes every ``read_every`` seconds. Meanwhile this process samples the
    bytes waiting in the pipe (FIONREAD) every ``sample_every`` seconds.
    ``size`` sets the pipe's capacity first (Linux only).

    >>> trace = record_fill(total=32 * 1024, read_every=0.002)
    >>> trace.max_level <= trace.capacity
    True
    >>> sum(trace.read_sizes)
    32768
    """
    _whole("total", total, 1, 64 << 20, "bytes")
    _whole("write_size", write_size, 1, MAX_CHUNK, "bytes")
    _whole("read_size", read_size, 1, MAX_CHUNK, "bytes")
    _seconds("write_every", write_every, 0, 1)
    _seconds("read_every", read_every, 0, 1)
    _seconds("sample_every", sample_every, 0.0001, 0.1)
    _seconds("timeout", timeout, 0.1, 600)
    r, w = os.pipe()
    try:
        if size is not None:
            set_pipe_size(w, size)
        capacity = pipe_size(w) if _F_GETPIPE_SZ is not None else None
        deadline = time.monotonic() + timeout
        with start_workers(_fill_worker, 2, r, w, total, write_size, write_every, read_size,
                           read_every, timeout=timeout, show=False) as workers:
            os.close(w)
            w = -1
            times: list[float] = []
            levels: list[int] = []
            while workers.running and time.monotonic() < deadline:
                times.append(time.monotonic())
                levels.append(bytes_waiting(r))
                time.sleep(sample_every)
            (starts, ends), (read_times, read_sizes) = workers.wait().values
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    t0 = starts[0] if starts else (times[0] if times else 0.0)

    def rel(ts: list[float]) -> list[float]:
        return [t - t0 for t in ts]

    return FillTrace(capacity, write_size, write_every, read_size, read_every, rel(times),
                     levels, rel(starts), rel(ends), rel(read_times), read_sizes)


def plot_fill(trace: FillTrace, ax: Any = None) -> Any:
    """Draw the fill level over time, the capacity, and when the writer was blocked."""
    from .display import axes

    ax = axes("Bytes waiting in the pipe: fast writer, slow reader", "time (ms)",
              "bytes in the pipe (KiB)", ax=ax)
    ms = [t * 1000 for t in trace.times]
    ax.step(ms, [lv / 1024 for lv in trace.levels], where="post", color="tab:blue",
            label="bytes in the pipe (FIONREAD)")
    if trace.capacity is not None:
        ax.axhline(trace.capacity / 1024, color="tab:red", ls="--",
                   label=f"capacity ({trace.capacity // 1024} KiB)")
    for n, (a, b) in enumerate(trace.blocked):
        ax.axvspan(a * 1000, b * 1000, color="tab:orange", alpha=0.25, lw=0,
                   label="writer blocked in write()" if n == 0 else None)
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower center", fontsize=8)
    return ax


# --- interleaving of writes from several writers --------------------------------------


@dataclass(frozen=True)
class Interleaving:
    """What a reader saw when several writers wrote into one pipe at once.

    Writer ``i`` writes bytes of value ``ord("A") + i``, so every byte of the
    stream says who wrote it. The stream is kept as runs (stretches of bytes
    from one writer): ``run_starts``, ``run_lengths``, ``run_writers``.
    ``pieces[i][k]`` is the number of runs write ``k`` of writer ``i`` arrived
    in: 1 for an intact write, more for a torn one.
    """

    writers: int
    write_size: int
    writes: int                  # per writer
    read_size: int
    run_starts: list[int]
    run_lengths: list[int]
    run_writers: list[int]
    pieces: list[list[int]]

    @property
    def total_writes(self) -> int:
        return self.writers * self.writes

    @property
    def torn(self) -> int:
        """How many writes arrived in more than one piece."""
        return sum(p > 1 for row in self.pieces for p in row)

    @property
    def torn_fraction(self) -> float:
        return self.torn / self.total_writes

    @property
    def stream_bytes(self) -> int:
        return sum(self.run_lengths)

    def __str__(self) -> str:
        return (f"{self.writers} writers x {self.writes} writes of {self.write_size} bytes: "
                f"{self.torn} of {self.total_writes} writes torn")


def _interleave_worker(i: int, r: int, w: int, write_size: int, writes: int) -> int:
    os.close(r)
    data = bytes([ord("A") + i]) * write_size
    for _ in range(writes):
        os.write(w, data)  # blocking: returns only once every byte is in the pipe
    os.close(w)
    return writes


def _drain(r: int, read_size: int, deadline: float, what: str) -> bytes:
    """Read ``r`` until end of file, ``read_size`` bytes at a time, before ``deadline``."""
    chunks = []
    poller = select.poll()
    poller.register(r, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise LabTimeout(f"{what} did not finish in time; its processes were killed")
        chunk = os.read(r, read_size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _runs(stream: bytes) -> tuple[list[int], list[int], list[int]]:
    import numpy as np

    a = np.frombuffer(stream, dtype=np.uint8)
    if a.size == 0:
        return [], [], []
    starts = np.concatenate(([0], np.flatnonzero(a[1:] != a[:-1]) + 1))
    lengths = np.diff(np.append(starts, a.size))
    return starts.tolist(), lengths.tolist(), (a[starts] - ord("A")).tolist()


def _pieces(lengths: list[int], owners: list[int], writers: int, writes: int,
            write_size: int) -> list[list[int]]:
    """For each write, the number of runs of its writer that overlap it."""
    import numpy as np

    lengths_a = np.asarray(lengths, dtype=np.int64)
    owners_a = np.asarray(owners, dtype=np.int64)
    out = []
    for i in range(writers):
        ends = np.cumsum(lengths_a[owners_a == i])     # where each run of writer i ends
        k = np.arange(writes, dtype=np.int64)
        first = np.searchsorted(ends, k * write_size, side="right")
        last = np.searchsorted(ends, (k + 1) * write_size - 1, side="right")
        out.append((last - first + 1).tolist())
    return out


def interleaving(writers: int = 4, write_size: int = PIPE_BUF, writes: int = 32,
                 read_size: int = 4096, timeout: float = 10.0) -> Interleaving:
    """Let several writers write into one pipe at once, and find the torn writes.

    ``writers`` children are released together; each makes ``writes``
    blocking writes of ``write_size`` bytes. This process reads the stream
    ``read_size`` bytes at a time. POSIX promises that writes of at most
    :data:`PIPE_BUF` bytes are never torn; larger ones may be.

    >>> small = interleaving(writers=3, write_size=512, writes=20)
    >>> small.torn, small.stream_bytes
    (0, 30720)
    """
    _whole("writers", writers, 1, 26, "writers")
    _whole("write_size", write_size, 1, MAX_CHUNK, "bytes")
    _whole("writes", writes, 1, 10_000, "writes")
    _whole("read_size", read_size, 1, MAX_CHUNK, "bytes")
    _seconds("timeout", timeout, 0.1, 600)
    total = writers * writes * write_size
    if total > 64 << 20:
        raise ValueError(f"writers x writes x write_size is {total} bytes; keep it at most "
                         f"{64 << 20} (64 MiB) so the experiment stays quick")
    r, w = os.pipe()
    try:
        deadline = time.monotonic() + timeout
        with start_workers(_interleave_worker, writers, r, w, write_size, writes,
                           timeout=timeout, show=False) as group:
            os.close(w)
            w = -1
            stream = _drain(r, read_size, deadline, "the interleaving experiment")
            group.wait().values  # noqa: B018 - raises ChildError if a writer failed
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if len(stream) != total:
        raise LabError(f"the reader got {len(stream)} bytes, expected {total}")
    starts, lengths, owners = _runs(stream)
    return Interleaving(writers, write_size, writes, read_size, starts, lengths, owners,
                        _pieces(lengths, owners, writers, writes, write_size))


_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink",
            "tab:olive", "tab:cyan"]


def plot_interleaving(result: Interleaving, ax: Any = None, limit: int | None = None) -> Any:
    """Draw the stream as the reader got it: one row per writer, one bar per piece of a write.

    A write that arrived whole is one plain bar; the pieces of a torn write are
    hatched and outlined in red. ``limit`` shows only the first ``limit`` bytes.
    """
    from matplotlib.patches import Patch

    from .display import axes

    limit = result.stream_bytes if limit is None else limit
    ax = axes(f"{result.writers} writers, writes of {result.write_size} bytes: "
              f"{result.torn} of {result.total_writes} torn", "offset in the stream (KiB)",
              "writer", ax=ax, figsize=(8.0, 0.5 * result.writers + 1.6))
    seen = [0] * result.writers       # bytes of each writer drawn so far
    for start, length, who in zip(result.run_starts, result.run_lengths, result.run_writers):
        while length and start < limit:
            k, offset = divmod(seen[who], result.write_size)   # write k of this writer
            piece = min(length, result.write_size - offset)
            torn = result.pieces[who][k] > 1
            ax.broken_barh([(start / 1024, piece / 1024)], (who - 0.4, 0.8),
                           facecolors=_COLOURS[who % len(_COLOURS)],
                           edgecolors="red" if torn else "white",
                           linewidth=0.8 if torn else 0.4, hatch="////" if torn else None)
            start, length, seen[who] = start + piece, length - piece, seen[who] + piece
    ax.set_yticks(range(result.writers), [chr(ord("A") + i) for i in range(result.writers)])
    ax.set_xlim(0, limit / 1024)
    ax.set_ylim(result.writers - 0.5, -0.5)
    ax.legend(handles=[Patch(facecolor="lightgrey", edgecolor="white", label="a whole write"),
                       Patch(facecolor="lightgrey", edgecolor="red", hatch="////",
                             label="a piece of a torn write")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return ax


def plot_tears(results: Sequence[Interleaving], ax: Any = None) -> Any:
    """Percentage of torn writes for each write size, with ``PIPE_BUF`` marked."""
    from .display import axes

    ax = axes("Torn writes against write size", "write size (bytes)",
              "writes that arrived torn (%)", ax=ax)
    ordered = sorted(results, key=lambda r: r.write_size)
    colours = ["tab:green" if r.write_size <= PIPE_BUF else "tab:orange" for r in ordered]
    ax.bar(range(len(ordered)), [100 * r.torn_fraction for r in ordered], color=colours)
    ax.set_xticks(range(len(ordered)), [str(r.write_size) for r in ordered])
    fits = sum(r.write_size <= PIPE_BUF for r in ordered)
    ax.axvline(fits - 0.5, color="tab:red", ls="--", label=f"PIPE_BUF = {PIPE_BUF}")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left")
    return ax


# --- throughput -----------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """Seconds to move data through a pipe, per write size, for the lab and for ``dd``.

    ``seconds[j]`` holds one time per repeat for ``sizes[j]`` with
    ``totals[j]`` bytes moved; ``baseline`` the same for ``dd`` (empty lists
    when it was not measured). Times run from the writer's first write until
    its last write returned, with the reader already waiting.
    """

    sizes: list[int]
    totals: list[int]
    seconds: list[list[float]]
    baseline: list[list[float]]
    placement: str
    repeats: int
    seed: int | None = None

    def rates(self, size: int, baseline: bool = False) -> list[float]:
        """Bytes per second of every repeat at ``size``."""
        j = self.sizes.index(size)
        times = self.baseline[j] if baseline else self.seconds[j]
        return [self.totals[j] / t for t in times]

    def quartiles(self, size: int, baseline: bool = False) -> tuple[float, float, float]:
        """(first quartile, median, third quartile) in bytes per second."""
        rates = self.rates(size, baseline)
        if not rates:
            raise ValueError(f"no {'baseline ' if baseline else ''}measurement at {size} bytes")
        if len(rates) == 1:
            return rates[0], rates[0], rates[0]
        q1, q2, q3 = statistics.quantiles(rates, n=4, method="inclusive")
        return q1, q2, q3

    def median(self, size: int, baseline: bool = False) -> float:
        """Median bytes per second at ``size``."""
        return self.quartiles(size, baseline)[1]

    def ratio(self, size: int) -> float:
        """The lab's median divided by the baseline's median at ``size``."""
        return self.median(size) / self.median(size, baseline=True)

    def table(self) -> Any:
        """The medians and quartiles as a :class:`labkit.display.Table` (MB/s)."""
        from .display import Table

        rows = []
        for s in self.sizes:
            q = self.quartiles(s)
            row = [s, f"{q[1] / 1e6:.0f}", f"{q[0] / 1e6:.0f} to {q[2] / 1e6:.0f}"]
            if self.baseline[self.sizes.index(s)]:
                b = self.quartiles(s, baseline=True)
                row += [f"{b[1] / 1e6:.0f}", f"{b[0] / 1e6:.0f} to {b[2] / 1e6:.0f}",
                        f"{q[1] / b[1]:.2f}"]
            else:
                row += ["", "", ""]
            rows.append(row)
        return Table(["write size (bytes)", "lab median (MB/s)", "lab quartiles",
                      "dd median (MB/s)", "dd quartiles", "lab / dd"], rows)


def placement(pin: str | None) -> tuple[int | None, int | None, str]:
    """The CPUs for a writer and a reader: ``"same"`` one CPU, ``"split"`` two, None unpinned.

    Returns (writer's CPU, reader's CPU, a sentence saying so).

    >>> placement(None)
    (None, None, 'unpinned')
    """
    if pin not in ("same", "split", None):
        raise ValueError(f"pin must be 'same' (writer and reader on one CPU), 'split' (on "
                         f"two CPUs) or None (wherever the scheduler likes), got {pin!r}")
    if pin is None:
        return None, None, "unpinned"
    if not hasattr(os, "sched_setaffinity"):
        return None, None, "unpinned (this system cannot pin processes to CPUs)"
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "same":
        return cpus[-1], cpus[-1], f"writer and reader pinned to CPU {cpus[-1]}"
    if len(cpus) < 2:
        raise NotSupportedHere(f"pin='split' needs two CPUs, and this process may use only "
                               f"CPU {cpus[0]}; use pin='same'")
    return cpus[-2], cpus[-1], f"writer on CPU {cpus[-2]}, reader on CPU {cpus[-1]}"


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


_STEP = struct.Struct("!d")


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError(f"the other end closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _throughput_worker(i: int, fds: dict[str, int], plan: list[tuple[int, int]],
                       cpus: tuple[int | None, int | None]) -> int:
    """Worker 0 writes, worker 1 reads, worker 2 runs dd; each keeps only its own pipes."""
    mine = {0: ("data_w", "go_r", "done_w", "ack_r"), 1: ("data_r", "ack_w"),
            2: ("dd_r", "dd_done_w")}[i]
    for name, fd in fds.items():
        if name not in mine:
            os.close(fd)
    if i == 2:  # the dd runner: one step per request from the parent
        steps = 0
        while request := os.read(fds["dd_r"], 8):
            size, writes = struct.unpack("!II", request)
            os.write(fds["dd_done_w"], _STEP.pack(dd_pair(size, writes, cpus)))
            steps += 1
        return steps
    _pin(cpus[i])
    if i == 1:  # the reader: each step's bytes into one reused buffer, then an ack
        buf = bytearray(max(max(s for s, _ in plan), 65536))
        for size, writes in plan:
            left = size * writes
            while left:
                n = os.readv(fds["data_r"], [memoryview(buf)[:min(left, len(buf))]])
                if not n:
                    raise EOFError(f"the writer stopped with {left} bytes still to come")
                left -= n
            os.write(fds["ack_w"], b".")
        return len(plan)
    # the writer: on each go, one step, timed from its first write until its last returned
    for size, writes in plan:
        if not os.read(fds["go_r"], 1):
            break  # the parent stopped early
        data = memoryview(bytes(size))
        begin = time.perf_counter()
        for _ in range(writes):
            sent = os.write(fds["data_w"], data)
            while sent < size:  # only a signal could cut a blocking write short
                sent += os.write(fds["data_w"], data[sent:])
        seconds = time.perf_counter() - begin
        _read_exactly(fds["ack_r"], 1)  # the reader has everything: the pipe is empty again
        os.write(fds["done_w"], _STEP.pack(seconds))
    return len(plan)


def dd_pair(size: int, writes: int, cpus: tuple[int | None, int | None]) -> float:
    """``dd if=/dev/zero | dd of=/dev/null``; returns the writer's own time in seconds."""
    env = {**os.environ, "LC_ALL": "C"}
    r, w = os.pipe()
    try:
        _pin(cpus[1])  # each dd inherits the CPU this process is pinned to when it starts
        # the reader takes up to 64 KiB per read, like the lab's reader; the writer
        # writes `size` bytes per write (after reading them from /dev/zero)
        reader = start_program(["dd", "of=/dev/null", f"bs={max(size, 65536)}"], 600,
                               stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
        os.close(r)
        r = -1
        try:
            _pin(cpus[0])
            writer = subprocess.run(["dd", "if=/dev/zero", f"bs={size}", f"count={writes}"],
                                    stdout=w, stderr=subprocess.PIPE, env=env, check=False)
        finally:
            os.close(w)
            w = -1
            reader.wait()
            end_program(reader)
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    text = writer.stderr.decode(errors="replace")
    found = _DD_SUMMARY.search(text)
    if writer.returncode != 0 or reader.returncode != 0 or not found:
        raise LabError(f"dd failed or said something unexpected (exit codes {writer.returncode}"
                       f" and {reader.returncode}): {text.strip()!r}")
    if int(found.group(1)) != size * writes:
        raise LabError(f"dd copied {found.group(1)} bytes, expected {size * writes}")
    return float(found.group(2))


_DD_SUMMARY = re.compile(r"(\d+) bytes.*?(?:copied, |transferred in )([0-9.]+(?:e-?\d+)?) s",
                         re.S)


def _await_step(fd: int, deadline: float, workers: Any) -> float:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    left = deadline - time.monotonic()
    if left > 0 and poller.poll(left * 1000):
        data = os.read(fd, _STEP.size)
        if len(data) == _STEP.size:
            return _STEP.unpack(data)[0]
        workers.wait(timeout=2.0).values  # noqa: B018 - raises ChildError naming who failed
        raise LabError("a throughput worker ended early without saying why")
    raise LabTimeout("the throughput sweep did not finish in time; its processes were killed")


def throughput(sizes: Sequence[int] = (64, 1024, 4096, 65536, 1 << 20), repeats: int = 5,
               total: int = 32 << 20, baseline: bool = True, pin: str | None = "same",
               seed: int | None = 0, timeout: float = 60.0, progress: bool = False
               ) -> Throughput:
    """Measure pipe throughput for each write size, with ``dd`` side by side in the same run.

    For each size a writer child writes ``total`` bytes (at most
    :data:`MAX_WRITES` writes) from one buffer with ``os.write``; a reader
    child reads them into one reused buffer. With ``baseline`` the same
    transfer runs between two ``dd`` processes right after it, so both see the
    same machine. Sizes are visited in a shuffled order (``seed``) in every
    repeat. ``pin="same"`` puts writer and reader on one CPU (the steadiest
    figures), ``"split"`` on two, ``None`` leaves them to the scheduler.
    ``progress`` shows a progress bar. Everything is killed after ``timeout``
    seconds.

    >>> t = throughput(sizes=[4096], repeats=1, total=1 << 20, baseline=False)
    >>> t.median(4096) > 0
    True
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError(f"sizes must be a non-empty list of write sizes, got {sizes!r}")
    for s in sizes:
        _whole("every write size", s, 1, 16 << 20, "bytes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must not repeat a size, got {list(sizes)}")
    _whole("repeats", repeats, 1, 100, "repeats")
    _whole("total", total, 1, MAX_TRANSFER, "bytes")
    _seconds("timeout", timeout, 0.1, 600)
    if baseline and shutil.which("dd") is None:
        raise NotSupportedHere("the baseline needs the dd program, which is not on the PATH; "
                               "pass baseline=False")
    *cpus, where = placement(pin)
    sizes = list(sizes)
    writes = [max(1, min(total // s, MAX_WRITES)) for s in sizes]
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(repeats):
        shuffled = list(range(len(sizes)))
        rng.shuffle(shuffled)
        order.extend(shuffled)
    plan = [(sizes[j], writes[j]) for j in order]
    lab: list[list[float]] = [[] for _ in sizes]
    dd: list[list[float]] = [[] for _ in sizes]
    names = ("data", "go", "done", "ack", "dd", "dd_done")
    fds: dict[str, int] = {}
    try:
        for name in names:
            fds[name + "_r"], fds[name + "_w"] = os.pipe()
        deadline = time.monotonic() + timeout
        with start_workers(_throughput_worker, 3 if baseline else 2, fds, plan, tuple(cpus),
                           timeout=timeout, show=False) as workers:
            for name in ("data_r", "data_w", "go_r", "done_w", "ack_r", "ack_w", "dd_r",
                         "dd_done_w"):
                os.close(fds.pop(name))
            steps: Any = order
            if progress:
                from .display import progress as bar

                steps = bar(order, desc="throughput")
            for j in steps:
                runs = ["lab", "dd"] if baseline else ["lab"]
                rng.shuffle(runs)  # neither side always goes first
                for who in runs:
                    if who == "lab":
                        os.write(fds["go_w"], b".")
                        lab[j].append(_await_step(fds["done_r"], deadline, workers))
                    else:
                        os.write(fds["dd_w"], struct.pack("!II", sizes[j], writes[j]))
                        dd[j].append(_await_step(fds["dd_done_r"], deadline, workers))
            for name in ("go_w", "dd_w"):
                os.close(fds.pop(name))  # end of file: the workers finish
            workers.wait(timeout=max(deadline - time.monotonic(), 0.1)).values  # noqa: B018
    finally:
        for fd in fds.values():
            os.close(fd)
    return Throughput(sizes, [s * n for s, n in zip(sizes, writes)], lab, dd, where,
                      repeats, seed)


def plot_throughput(result: Throughput, ax: Any = None) -> Any:
    """Median throughput against write size (log-log), quartiles as error bars."""
    from .display import axes

    ax = axes(f"Pipe throughput against write size ({result.placement})",
              "write size (bytes, log scale)", "throughput (MB/s, log scale)", ax=ax)
    series = [(False, "Python: os.write / os.readv", "o-")]
    if any(result.baseline):
        series.append((True, "dd if=/dev/zero | dd of=/dev/null", "s--"))
    for baseline, label, style in series:
        sizes = [s for j, s in enumerate(result.sizes)
                 if (result.baseline[j] if baseline else result.seconds[j])]
        qs = [result.quartiles(s, baseline) for s in sizes]
        med = [q[1] / 1e6 for q in qs]
        err = [[(q[1] - q[0]) / 1e6 for q in qs], [(q[2] - q[1]) / 1e6 for q in qs]]
        ax.errorbar(sizes, med, yerr=err, fmt=style, capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return ax


# --- FIFOs ----------------------------------------------------------------------------


def open_fifo(path: str | os.PathLike, mode: str = "r", timeout: float = 5.0) -> int:
    """Open one end of a FIFO like ``os.open`` would, but give up after ``timeout`` seconds.

    A plain ``os.open`` of a FIFO blocks until the other side opens it too.
    This opens without blocking and waits with a deadline instead:

    * ``mode="w"`` retries until a reader has the FIFO open (``ENXIO`` until then);
    * ``mode="r"`` waits until a writer has opened it and written something or
      closed it again, so the first ``read`` cannot mistake "nobody came yet"
      for end of file.

    Returns a blocking descriptor; raises LabTimeout if nobody came.

    >>> from labkit import objects
    >>> with objects.scope() as objs:
    ...     path = objs.fifo("doc")
    ...     open_fifo(path, "w", timeout=0.2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.LabTimeout: nobody opened ... for reading within 0.2 s
    """
    if mode not in ("r", "w"):
        raise ValueError(f"mode must be 'r' (the reading end) or 'w' (the writing end), "
                         f"got {mode!r}")
    _seconds("timeout", timeout, 0.001, 600)
    path = _fifo_path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no FIFO at {path}; create one with "
                                "labkit.objects.fifo() (or os.mkfifo)", path) from None
    if not stat.S_ISFIFO(st.st_mode):
        raise ValueError(f"{path} exists but is not a FIFO (a named pipe); pass the path "
                         "labkit.objects.fifo() returned")
    deadline = time.monotonic() + timeout
    if mode == "w":
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if time.monotonic() >= deadline:
                raise LabTimeout(f"nobody opened {path} for reading within {timeout:g} s")
            time.sleep(0.002)
    else:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(max(deadline - time.monotonic(), 0) * 1000):
                raise LabTimeout(f"nobody opened {path} for writing (and wrote to it) within "
                                 f"{timeout:g} s")
        except BaseException:
            os.close(fd)
            raise
    os.set_blocking(fd, True)
    return fd


def _fifo_path(path: Any) -> str:
    """``path`` as text if it can name a file, else a TypeError or ValueError saying why."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a pathlib.Path (the one labkit.objects.fifo() "
                        f"returned), got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"path must be text, got {type(text).__name__}")
    if not text or "\0" in text or len(text.encode(errors="surrogateescape")) >= 4096:
        raise ValueError(f"path must be a file path of 1 to 4095 bytes without NUL characters, "
                         f"got {text[:60]!r}{'...' if len(text) > 60 else ''}")
    if any(len(part.encode(errors="surrogateescape")) > 255 for part in text.split("/")):
        raise ValueError("each name in path must be at most 255 bytes (no file system allows "
                         "longer); pass the path labkit.objects.fifo() returned")
    return text


# The question server of :func:`fifo_server`: a separate Python program, so that it shares
# nothing with its clients but the FIFO's path. It never creates or truncates a file: a reply
# path that is not a FIFO is refused.
_SERVER = r'''
import errno, os, re, signal, stat, sys, time

path, lifetime = sys.argv[1], float(sys.argv[2])
signal.alarm(max(1, round(lifetime)))  # a safety net: never outlive the lab by long
requests = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
keep = os.open(path, os.O_WRONLY)      # our own writer: no end of file between clients
os.set_blocking(requests, True)


def answer(question):
    count = re.fullmatch(r"count to (\d{1,6})", question.strip())
    if count:
        return " ".join(str(i) for i in range(1, int(count.group(1)) + 1))
    return question.upper()


def log(status, reply_path):
    print(status + "\t" + reply_path, flush=True)


def reply(reply_path, text):
    deadline = time.monotonic() + 5
    while True:
        try:
            fd = os.open(reply_path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                return log("cannot open: " + e.strerror, reply_path)
            if time.monotonic() > deadline:
                return log("nobody opened the reply FIFO for reading", reply_path)
            time.sleep(0.002)
    status = "answered"
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            status = "not a FIFO"
        else:
            os.set_blocking(fd, True)
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
    except BrokenPipeError:
        status = "the client stopped reading"
    finally:
        log(status, reply_path)  # before the close: the client's end of file comes after it
        os.close(fd)


with open(requests, encoding="utf-8", errors="replace", newline="\n") as lines:
    for line in lines:
        reply_path, tab, question = line.rstrip("\n").partition("\t")
        if tab:
            reply(reply_path, answer(question))
        else:
            log("bad request", reply_path)
'''


@dataclass
class FifoServer:
    """A running :func:`fifo_server`: its request FIFO, and (once stopped) what it did."""

    path: Path
    served: list[tuple[str, str]] = field(default_factory=list)  # (status, reply path)


@contextlib.contextmanager
def fifo_server(lifetime: float = 60.0) -> Iterator[FifoServer]:
    """Run a small question server as a separate program, reachable only through a FIFO.

    The server reads requests from the FIFO ``server.path``: one line each,
    ``reply_path + "\\t" + question + "\\n"``. For each it opens the FIFO at
    ``reply_path`` for writing, writes the answer (the question in capitals;
    ``"count to N"`` gives the numbers 1 to N) and closes it, which is the
    client's end of file. It is stopped when the block ends, and after
    ``lifetime`` seconds in any case; ``server.served`` then lists each
    request's outcome and reply path.

    >>> from labkit import objects
    >>> with fifo_server() as server, objects.scope() as objs:
    ...     reply = objs.fifo("reply")
    ...     with open(server.path, "w") as requests:
    ...         _ = requests.write(f"{reply}\\thello\\n")
    ...     with open(reply) as answer:
    ...         print(answer.read())
    HELLO
    >>> server.served[0][0]
    'answered'
    """
    _seconds("lifetime", lifetime, 1, 3600)
    with objects.scope() as objs:
        server = FifoServer(objs.fifo("server"))
        proc = start_program([sys.executable, "-c", _SERVER, str(server.path), str(lifetime)],
                             lifetime, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        try:
            yield server
        finally:
            proc.terminate()
            try:
                log, _ = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                log, _ = proc.communicate()
            finally:
                end_program(proc)
            for line in log.decode(errors="replace").splitlines():
                status, _, reply_path = line.partition("\t")
                server.served.append((status, reply_path))
