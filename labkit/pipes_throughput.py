"""Pipe throughput for lesson 02: each write size, with ``dd`` measured in the same run.

A writer child writes from one buffer with ``os.write``, a reader child reads
into one reused buffer, and a third runs ``dd if=/dev/zero | dd of=/dev/null``
for the same sizes between the lab's steps, so both see the same machine.
The result is plain data (:class:`Throughput`); :func:`plot_pipe_throughput`
draws it.
"""
from __future__ import annotations

import os
import random
import re
import select
import shutil
import statistics
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._validate import seconds as _seconds
from ._validate import whole as _whole
from .cpus import pin_to, place
from .errors import LabError, LabTimeout, NotSupportedHere
from .processes import start_workers
from .runner import end_program, start_program

__all__ = ["MAX_TRANSFER", "MAX_WRITES", "Throughput", "dd_pair", "plot_pipe_throughput",
           "quartiles", "throughput"]

MAX_TRANSFER = 256 << 20      # most bytes one experiment may move through a pipe
MAX_WRITES = 20_000           # most writes of one throughput run (keeps tiny sizes quick)


def quartiles(values: Sequence[float], what: str) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of repeated measurements of ``what``.

    >>> quartiles([1.0, 2.0, 3.0, 4.0, 5.0], "rates")
    (2.0, 3.0, 4.0)
    """
    if not values:
        raise ValueError(f"no {what}")
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


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
    trials: int
    seed: int | None = None

    def rates(self, size: int, baseline: bool = False) -> list[float]:
        """Bytes per second of every repeat at ``size``."""
        j = self.sizes.index(size)
        times = self.baseline[j] if baseline else self.seconds[j]
        return [self.totals[j] / t for t in times]

    def quartiles(self, size: int, baseline: bool = False) -> tuple[float, float, float]:
        """(first quartile, median, third quartile) in bytes per second."""
        return quartiles(self.rates(size, baseline),
                         f"{'baseline ' if baseline else ''}measurement at {size} bytes")

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
    pin_to(cpus[i])
    if i == 1:  # the reader: each step's bytes into one reused buffer, then an ack
        buf = bytearray(max([*(s for s, _ in plan), 65536]))
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
        pin_to(cpus[1])  # each dd inherits the CPU this process is pinned to when it starts
        # the reader takes up to 64 KiB per read, like the lab's reader; the writer
        # writes `size` bytes per write (after reading them from /dev/zero)
        reader = start_program(["dd", "of=/dev/null", f"bs={max(size, 65536)}"], 600,
                               stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
        os.close(r)
        r = -1
        try:
            pin_to(cpus[0])
            writer = start_program(["dd", "if=/dev/zero", f"bs={size}", f"count={writes}"],
                                   600, stdout=w, stderr=subprocess.PIPE, env=env)
            try:
                said = writer.communicate()[1]
            finally:
                end_program(writer)
        finally:
            os.close(w)
            w = -1
            reader.wait()
            end_program(reader)
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    text = said.decode(errors="replace")
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
        workers.wait(timeout=2.0).raise_if_failed()  # names who failed
        raise LabError("a throughput worker ended early without saying why")
    raise LabTimeout("the throughput sweep did not finish in time; its processes were killed")


def throughput(sizes: Sequence[int] = (64, 1024, 4096, 65536, 1 << 20), trials: int = 5,
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
    figures), ``"split"`` on two, ``None`` leaves them to the scheduler,
    ``"auto"`` splits them where there are two CPUs (:func:`labkit.cpus.place`).
    ``progress`` shows a progress bar. Everything is killed after ``timeout``
    seconds.

    >>> t = throughput(sizes=[4096], trials=1, total=1 << 20, baseline=False)
    >>> t.median(4096) > 0
    True
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError(f"sizes must be a non-empty list of write sizes, got {sizes!r}")
    for s in sizes:
        _whole("every write size", s, 1, 16 << 20, "bytes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must not repeat a size, got {list(sizes)}")
    _whole("trials", trials, 1, 100, "trials")
    _whole("total", total, 1, MAX_TRANSFER, "bytes")
    _seconds("timeout", timeout, 0.1, 600)
    if baseline and shutil.which("dd") is None:
        raise NotSupportedHere("the baseline needs the dd program, which is not on the PATH; "
                               "pass baseline=False")
    placed = place(pin, ("writer", "reader"))
    cpus, where = placed.cpus, placed.text
    sizes = list(sizes)
    writes = [max(1, min(total // s, MAX_WRITES)) for s in sizes]
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(trials):
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
        with start_workers(_throughput_worker, 3 if baseline else 2, fds, plan, cpus,
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
            workers.wait(timeout=max(deadline - time.monotonic(), 0.1)).raise_if_failed()
    finally:
        for fd in fds.values():
            os.close(fd)
    return Throughput(sizes, [s * n for s, n in zip(sizes, writes, strict=True)], lab, dd, where,
                      trials, seed)


def plot_pipe_throughput(result: Throughput, ax: Any = None) -> Any:
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
