"""Pipe experiments for lesson 02: measure a pipe instead of trusting a number.

Each experiment runs on real processes (forked through :mod:`labkit.processes`,
so a stuck writer is killed by a timeout instead of hanging the kernel) and
returns plain data: the bytes a non-blocking writer could put into a pipe, the
fill level of a pipe over time, which writes of several writers arrived torn,
and the throughput for each write size next to ``dd`` measured in the same run
(:mod:`labkit.pipes_throughput`). The ``plot_*`` functions take that data and
return the Axes.

FIFOs are created by :mod:`labkit.objects` (private directory, unique name,
removed with their scope). This module opens them with a timeout, because
opening a FIFO blocks until the other side arrives and a cell that waits for a
process that died would wait forever; and :func:`fifo_server` runs a small
question server as a separate program behind one, for the FIFO exercise
(``labkit/programs/fifo_server.py``: open it, it is short).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import struct
import subprocess
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
from .pipes_throughput import Throughput, dd_pair, plot_pipe_throughput, throughput
from .processes import start_workers
from .runner import end_program, start_module
from .waiting import Deadline, wait_until

__all__ = [
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
    "plot_fill",
    "plot_interleaving",
    "plot_pipe_throughput",
    "plot_tears",
    "probe_capacity",
    "record_fill",
    "set_pipe_size",
    "throughput",
]

PIPE_BUF: int = select.PIPE_BUF  # writes up to this many bytes are atomic (4096 on Linux)

# Python has the names on Linux from 3.10; the numbers are Linux's own (fcntl.h).
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032 if LINUX else None)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031 if LINUX else None)
_NO_PIPE_SIZE = ("this system cannot report or change a pipe's capacity (F_GETPIPE_SZ and "
                 "F_SETPIPE_SZ exist only on Linux; macOS sizes its pipes itself, 16 KiB "
                 "growing to 64 KiB); probe_capacity() still measures it by filling a pipe")

MAX_CHUNK = 1 << 20           # largest single write the experiments accept


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
        return [(a, b) for a, b in zip(self.write_starts, self.write_ends, strict=True)
                if b - a > 0.001]

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
    chunks: list[bytes] = []
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
            group.wait().raise_if_failed()
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
    for start, length, who in zip(result.run_starts, result.run_lengths, result.run_writers,
                                  strict=True):
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
    labkit.errors.LabTimeout: nobody opened ... for reading (waited 0.2 s)
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
    deadline = Deadline(timeout)
    if mode == "w":
        opened: list[int] = []

        def reader_came() -> bool:
            try:
                opened.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                return True
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: no reader yet, so try again
                    raise
                return False

        wait_until(reader_came, timeout, f"nobody opened {path} for reading", every=0.002)
        fd = opened[0]
    else:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(deadline.left() * 1000):
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
        proc = start_module("labkit.programs.fifo_server", str(server.path), str(lifetime),
                            lifetime=lifetime, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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
