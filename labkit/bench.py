"""The performance lab (lesson 07): every mechanism of the course on one harness.

Each mechanism is measured the same way, by two worker processes (a sender
and a receiver, pinned to one CPU or to two) that the lab drives step by
step: **latency** is the round trip of a small message, repeated many times
(median and percentiles); **throughput** is bytes per second for a stream of
messages of one size, from 1 byte to 16 MiB, timed from the first send until
the receiver confirms it has the last byte. Every step runs after an
untimed warm-up of the same size, with every buffer allocated and its pages
faulted in beforehand, and steps of all mechanisms and sizes are shuffled
together in each round, so a burst of other work on the machine spreads over
all of them instead of spoiling one. Two references run in the same rounds:
a NumPy copy of each size (the memory-bandwidth line) and ``dd`` through a
pipe (a C program's figure next to ours). Results are plain data; the plots
take it.

This module is the lesson's face: it gathers the names the notebook uses
and adds the system-call counts (``strace``) and the full sweep of
``labkit bench --full``. The parts live in their own rooms:
:mod:`labkit.bench_channels` (the mechanisms, two ends each),
:mod:`labkit.bench_harness` (the workers, the sweep, its results) and
:mod:`labkit.bench_plots`.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import objects
from ._validate import whole as _whole
from .bench_channels import LABELS, MECHANISMS, ZERO_COPY
from .bench_harness import (
    FULL_SIZES,
    MAX_SIZE,
    QUICK_SIZES,
    Sweep,
    checked_mechanisms,
    mq_size_limit,
    quick,
    round_trips,
    size_name,
    sweep,
    transfer,
)
from .bench_plots import plot_round_trips, plot_throughput, plot_time_per_message
from .errors import LabError, LabTimeout, NotSupportedHere

__all__ = [
    "FULL_SIZES",
    "LABELS",
    "MECHANISMS",
    "QUICK_SIZES",
    "ZERO_COPY",
    "FullReport",
    "Sweep",
    "Syscalls",
    "count_syscalls",
    "full",
    "main",
    "plot_round_trips",
    "plot_throughput",
    "plot_time_per_message",
    "quick",
    "round_trips",
    "sweep",
    "transfer",
]

# --- where the time goes: system calls -----------------------------------------------------


@dataclass(frozen=True)
class Syscalls:
    """System calls per message of one mechanism, counted with ``strace -f -c``.

    ``per_message`` maps each system call to the calls per message, found as
    the difference between a run of ``count`` messages and a run of none
    (so starting Python costs nothing here), divided by ``count``.
    """

    mechanism: str
    size: int
    count: int
    per_message: dict[str, float]

    @property
    def total(self) -> float:
        """All system calls per message, both processes together."""
        return sum(self.per_message.values())

    def table(self) -> Any:
        """The calls that happen at least once every ten messages, most frequent first."""
        from .display import Table

        rows = [[name, round(n, 2)] for name, n in sorted(self.per_message.items(),
                                                          key=lambda x: -x[1]) if n >= 0.1]
        return Table([f"{LABELS[self.mechanism]}, {size_name(self.size)} messages",
                      "system calls per message"], rows)


# The program strace runs: labkit/programs/traced_transfer.py (open it: it is short). It runs
# as a module from the folder that holds labkit, so it imports this labkit.
_TRACED = "labkit.programs.traced_transfer"


_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def _strace_runs(mechanism: str, size: int, counts: list[int],
                 timeout: float) -> list[dict[str, int]]:
    """Trace one transfer per entry of ``counts``, all at once; the calls each one made."""
    import subprocess

    from .runner import ROOT, end_program, start_program

    # The folder lives in the session's private folder and strace dies with the kernel:
    # nothing of this survives a killed kernel.
    with objects.temp_folder("strace") as folder:
        outs = [Path(folder, f"{k}.txt") for k in range(len(counts))]
        procs = [start_program(
            ["strace", "-f", "-c", "-o", str(out), sys.executable, "-m", _TRACED, mechanism,
             str(size), str(count)], timeout, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            for out, count in zip(outs, counts, strict=True)]
        saids = []
        try:
            deadline = time.monotonic() + timeout
            for proc in procs:
                _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
                saids.append(err.decode(errors="replace").strip())
        except subprocess.TimeoutExpired:
            raise LabTimeout(f"the traced transfers did not finish in {timeout:g} s; they "
                             "were killed") from None
        finally:
            for proc in procs:  # strace and everything it traces: its own process group
                end_program(proc)
                proc.communicate()
        texts = [out.read_text() if out.exists() else "" for out in outs]
    results = []
    for proc, said, text in zip(procs, saids, texts, strict=True):
        if proc.returncode != 0 and ("ptrace" in said or "not permitted" in said):
            raise NotSupportedHere(f"strace may not trace processes here ({said[-200:]}); a "
                                   "container may forbid ptrace. Reason from the measured "
                                   "sizes instead")
        if proc.returncode != 0:
            raise LabError(f"the traced transfer failed (exit code {proc.returncode}): "
                           f"{said[-500:]}")
        calls: dict[str, int] = {}
        for line in text.splitlines():
            m = _STRACE_ROW.match(line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
        results.append(calls)
    return results


def count_syscalls(mechanism: str = "pipe", size: int = 65536, count: int = 200,
                   timeout: float = 20.0) -> Syscalls:
    """Count the system calls per message of one mechanism with ``strace -f -c``.

    Two traced runs, one with ``count`` messages of ``size`` bytes and one
    with none; the difference, divided by ``count``, is what each message
    costs both processes together. Needs the ``strace`` program (and a
    system that allows tracing your own processes); otherwise raises
    NotSupportedHere. strace slows every call down a lot: only the counts
    mean something, never the times.

    >>> calls = count_syscalls("pipe", 65536, 50)     # doctest: +SKIP
    >>> calls.per_message["write"]                      # doctest: +SKIP
    1.0
    """
    checked_mechanisms([mechanism])
    _whole("size", size, 1, MAX_SIZE, "bytes")
    _whole("count", count, 1, 100_000)
    if shutil.which("strace") is None:
        raise NotSupportedHere("the strace program is not installed here (apt install "
                               "strace); reason from the measured sizes instead")
    if mechanism == "mqueue" and size > mq_size_limit():
        raise ValueError(f"a POSIX message queue takes messages of at most "
                         f"{mq_size_limit()} bytes, not {size}")
    full_run, empty_run = _strace_runs(mechanism, size, [count, 0], timeout)
    per = {name: (n - empty_run.get(name, 0)) / count for name, n in full_run.items()}
    return Syscalls(mechanism, size, count, {k: v for k, v in per.items() if v > 0})


# --- the full sweep, from the command line ------------------------------------------------


@dataclass(frozen=True)
class FullReport:
    """What ``labkit bench --full`` measured, and where it wrote it."""

    same: Sweep
    split: Sweep | None
    csv: Path
    plots: list[Path]
    elapsed: float

    def summary(self) -> str:
        """The headline figures, one per line."""
        s = self.same
        lines = [(f"labkit bench --full took {self.elapsed:.0f} s (same core: {s.placement}; "
                  f"{s.trials} rounds)")]
        if "pipe" in s.mechanisms and s.dd and 65536 in s.sizes:
            lab, dd = s.rate("pipe", 65536), s.dd_rate()
            lines.append(f"pipe at 64 KiB, same core: this harness {lab / 1e9:.2f} GB/s, "
                         f"dd | dd {dd / 1e9:.2f} GB/s, ratio {lab / dd:.2f}")
        if {"pipe", "shm"} <= set(s.mechanisms) and 1 << 20 in s.sizes:
            pipe, shm = s.rate("pipe", 1 << 20), s.rate("shm", 1 << 20)
            lines.append(f"at 1 MiB, same core: shared memory {shm / 1e9:.2f} GB/s, pipe "
                         f"{pipe / 1e9:.2f} GB/s: {shm / pipe:.1f} x; a NumPy copy "
                         f"{s.memcpy_rate(1 << 20) / 1e9:.1f} GB/s")
        if self.split is not None and "pipe" in s.round_trip_ns and "pipe" in \
                self.split.round_trip_ns:
            a, b = s.round_trip("pipe"), self.split.round_trip("pipe")
            lines.append(f"round trip of {s.latency_size} B over a pipe: same core "
                         f"{a * 1e6:.1f} µs, cross core {b * 1e6:.1f} µs ({b / a:.1f} x)")
        for size in (64, 1 << 20):
            if size in s.sizes:
                order = ", ".join(LABELS[m] for m, _ in s.ranking(size))
                lines.append(f"fastest to slowest at {size_name(size)}: {order}")
        lines.append(f"wrote {self.csv} and {', '.join(str(p) for p in self.plots)}")
        return "\n".join(lines)


def _write_csv(path: Path, sweeps: list[Sweep]) -> None:
    rows = [row for s in sweeps for row in s.rows()]
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _save(draw: Any, path: Path, *args: Any) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.5), layout="constrained")
    draw(*args, ax=fig.add_subplot())
    fig.savefig(path, dpi=120)
    return path


def full(out: str | os.PathLike = "bench-results", progress: bool = True,
         sizes: Sequence[int] | None = None, trials: int = 5, round_trips: int = 5000,
         seed: int | None = 0) -> FullReport:
    """The full sweep: 1 B to 16 MiB on one CPU and on two, written as CSV and plots.

    Takes about a minute on a small machine (three at most). ``out`` is the
    folder for ``bench.csv`` and the PNG plots (created if needed). The
    cross-core sweep, where there are two CPUs, runs half the rounds and round
    trips. Smaller ``sizes``, ``trials`` and ``round_trips`` make it quicker.

    >>> print(full("bench-results").summary())     # doctest: +SKIP
    labkit bench --full took 34 s (same core: sender and receiver pinned to CPU 1; 5 rounds)
    ...
    """
    sizes = list(FULL_SIZES if sizes is None else sizes)
    _whole("trials", trials, 1, 100)
    _whole("round_trips", round_trips, 1, 1_000_000)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    same = sweep(MECHANISMS, sizes, trials=trials, pin="same", round_trips=round_trips,
                 total=32 << 20, max_messages=20_000, seed=seed, timeout=600,
                 progress=progress)
    split = None
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        split = sweep(MECHANISMS, sizes, trials=max(1, trials // 2), pin="split",
                      round_trips=max(1, round_trips * 3 // 5), total=16 << 20,
                      max_messages=5_000, baseline=False, seed=seed, timeout=600,
                      progress=progress)
    sweeps = [same] + ([split] if split is not None else [])
    csv_path = folder / "bench.csv"
    _write_csv(csv_path, sweeps)
    plots = [_save(plot_throughput, folder / "throughput_same_core.png", same),
             _save(plot_time_per_message, folder / "time_per_message_same_core.png", same)]
    if split is not None:
        plots.append(_save(plot_throughput, folder / "throughput_cross_core.png", split))
    plots.append(_save(plot_round_trips, folder / "round_trips.png", *sweeps))
    return FullReport(same, split, csv_path, plots, time.monotonic() - began)


def main(full_sweep: bool = False, out: str | os.PathLike = "bench-results") -> int:
    """``labkit bench``: the quick sweep's tables; ``--full``: the full sweep's report.

    >>> main(full_sweep=False)      # doctest: +SKIP
    """
    if full_sweep:
        report = full(out)
        print(report.same.table(unit=1e9))
        print()
        print(report.same.latency_table())
        if report.split is not None:
            print()
            print(report.split.latency_table())
        print()
        print(report.summary())
        return 0
    s = quick()
    print(s.table(unit=1e9))
    print()
    print(s.latency_table())
    return 0
