"""Data races on real processes, for lessons 04 and 05: measured, repeated, plotted.

The lost-update counter runs in worker processes that share one 64-bit
counter in a lab segment (:mod:`labkit.shm`). Each trial the workers are
released together and each adds 1 to the counter ``iterations`` times, with
no synchronization, with a ``posix_ipc`` semaphore, with a
``multiprocessing.Lock``, or by counting locally and adding once under the
semaphore. Results are plain data, one row per trial: the final value, the
correct total, the updates lost, the wall time.

The workers are started once per experiment and stay for all its trials: a
fork of a notebook kernel costs more than a trial, and ``run_workers`` would
dominate the timings. Between trials this process and the workers meet at
two semaphores (``go`` and ``done``), never at a flag in shared memory: a
harness built on unsynchronized flags would have the very race it measures.
By default each worker is pinned to its own CPU, because the scheduler alone
sometimes keeps two fresh processes on one CPU for their whole (short) run,
and then almost nothing is lost; ``pin`` compares the two on purpose.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any

import posix_ipc

from . import objects
from ._validate import seconds
from ._validate import whole as _whole
from .cpus import pin_to, place
from .display import Table, axes
from .errors import LabError, LabTimeout
from .objects import acquire
from .processes import Workers, start_workers
from .segment import Segment

__all__ = [
    "FLAVOURS",
    "RaceResult",
    "RaceSweep",
    "Record",
    "SeqlockReads",
    "TornReads",
    "Trial",
    "counter_race",
    "plot_finals",
    "plot_lost_fraction",
    "plot_times",
    "plot_torn_reads",
    "seqlock_read",
    "seqlock_reads",
    "seqlock_write",
    "sweep",
    "times_table",
    "torn_reads",
]

FLAVOURS = ("none", "semaphore", "mp_lock", "batched")
_DESCRIBE = {"none": "no lock", "semaphore": "posix_ipc semaphore",
             "mp_lock": "multiprocessing.Lock", "batched": "batched (local count, one locked add)"}
_SHORT = {"none": "no lock", "semaphore": "semaphore\n(posix_ipc)",
          "mp_lock": "multiprocessing\n.Lock", "batched": "batched"}
MAX_WORKERS = 64
MAX_ITERATIONS = 10_000_000
MAX_TRIALS = 1000


# --- the counter ------------------------------------------------------------------------------


def _count_unlocked(counter: Any, n: int, lock: Any) -> None:
    for _ in range(n):
        counter.value += 1           # a load, an add and a store: another process can cut in


def _count_locked(counter: Any, n: int, lock: Any) -> None:
    for _ in range(n):
        lock.acquire()               # enter the critical section
        counter.value += 1
        lock.release()               # leave it


def _count_batched(counter: Any, n: int, lock: Any) -> None:
    local = 0
    for _ in range(n):
        local += 1                   # private memory: no other process can see it
    lock.acquire()
    counter.value += local           # one locked update for all n
    lock.release()


_COUNT = {"none": _count_unlocked, "semaphore": _count_locked, "mp_lock": _count_locked,
          "batched": _count_batched}


def _race_worker(i: int, seg: Segment, iterations: int, trials: int, flavour: str, lock: Any,
                 go: list[posix_ipc.Semaphore], done: posix_ipc.Semaphore,
                 cpus: tuple[int | None, ...]) -> list[tuple[float, float]]:
    """One worker: for each trial wait for its ``go``, count, note the times, post ``done``.

    Each worker has a ``go`` semaphore of its own: with one shared ``go``, a
    fast worker could take a second post, meant for a slow one, and count twice.
    Waking up from a semaphore can take a sleeping CPU a millisecond or more, so
    after ``go`` the workers also wait for each other at flags in shared memory
    (each flag written by one worker only, and only ever raised).
    """
    pin_to(cpus[i])
    counter = seg.struct(ctypes.c_int64)
    arrived = seg.struct(ctypes.c_int64 * len(cpus), 8)
    count = _COUNT[flavour]
    # Workers that share a CPU must yield it to each other while they wait; a worker alone
    # on its CPU spins, because a yield hands the CPU to any other program for a time slice.
    share = cpus[i] is None or cpus.count(cpus[i]) > 1
    times = []
    for trial in range(1, trials + 1):
        go[i].acquire()
        arrived[i] = trial
        while min(arrived) < trial:
            if share:
                os.sched_yield()
        start = time.perf_counter()  # CLOCK_MONOTONIC: one clock for every process
        count(counter, iterations, lock)
        times.append((start, time.perf_counter()))
        done.release()
    return times


def _ended_early(workers: Workers) -> int | None:
    """The index of a worker that died or raised, if any. Peeks (WNOWAIT): the group reaps it.

    A worker that exited with code 0 has done all its trials (it is only
    waiting for slower ones), so it does not count.
    """
    for i, pid in enumerate(workers.pids):
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            continue  # already reaped by the group, which keeps its result
        if info is not None and not (info.si_code == os.CLD_EXITED and info.si_status == 0):
            return i
    return None


def _await(sem: posix_ipc.Semaphore, count: int, deadline: float, workers: Workers,
           what: str) -> None:
    """Take ``count`` posts of ``sem`` before ``deadline``; fail fast if a worker died."""
    for _ in range(count):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabTimeout(f"{what} did not finish in time; its workers were killed")
            try:
                acquire(sem, min(left, 0.05))
                break
            except posix_ipc.BusyError:
                early = _ended_early(workers)
                if early is not None:
                    ended = workers.stop()[early]
                    ended.raise_if_failed()  # ChildError, with the worker's traceback
                    raise LabError(f"worker {early} of {what} returned before its work was "
                                   "done") from None


@dataclass(frozen=True)
class Trial:
    """One trial of the counter: what it ended at, what it should have, how long it took."""

    final: int
    expected: int
    seconds: float               # from the first worker's start to the last one's end
    overlap: float = 1.0         # the share of those seconds in which all workers counted

    @property
    def lost(self) -> int:
        """Updates lost: the correct total minus the final value."""
        return self.expected - self.final

    @property
    def lost_fraction(self) -> float:
        """The share of the updates that were lost (0 when all arrived)."""
        return self.lost / self.expected if self.expected else 0.0


@dataclass(frozen=True)
class RaceResult:
    """The trials of one counter experiment (see :func:`counter_race`)."""

    workers: int
    iterations: int              # increments per worker per trial
    flavour: str                 # "none", "semaphore", "mp_lock" or "batched"
    placement: str               # where the workers ran, in words
    cpus: tuple[int | None, ...] # the CPU each worker was pinned to (None: not pinned)
    trials: tuple[Trial, ...]

    @property
    def expected(self) -> int:
        """The correct total: workers x iterations."""
        return self.workers * self.iterations

    @property
    def finals(self) -> list[int]:
        """The final value of each trial."""
        return [t.final for t in self.trials]

    @property
    def lost(self) -> list[int]:
        """The updates lost in each trial."""
        return [t.lost for t in self.trials]

    @property
    def lost_fractions(self) -> list[float]:
        """The share of updates lost in each trial."""
        return [t.lost_fraction for t in self.trials]

    @property
    def seconds(self) -> list[float]:
        """The wall time of each trial."""
        return [t.seconds for t in self.trials]

    @property
    def lossy_trials(self) -> int:
        """How many trials lost at least one update."""
        return sum(t.lost > 0 for t in self.trials)

    @property
    def median_overlap(self) -> float:
        """The median share of a trial during which every worker was counting: near 1 when
        they ran side by side, near 0 when one finished before another started."""
        return statistics.median(t.overlap for t in self.trials)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ns_per_increment(self) -> float:
        """Median wall time of a trial divided by all its increments, in nanoseconds."""
        return self.median_seconds / max(self.expected, 1) * 1e9

    @property
    def label(self) -> str:
        """A short description: the flavour and the placement."""
        return f"{_DESCRIBE[self.flavour]}, {self.placement.split(' (')[0]}"

    def __str__(self) -> str:
        lost = statistics.median(self.lost_fractions)
        ms = self.median_seconds * 1e3
        return (f"{self.workers} workers x {self.iterations:,} increments, "
                f"{_DESCRIBE[self.flavour]}, {self.placement}: {self.lossy_trials} of "
                f"{len(self.trials)} trials lost updates (median {lost:.0%} lost); correct total "
                f"{self.expected:,}, finals {min(self.finals):,} to {max(self.finals):,}; "
                f"median {ms:.1f} ms per trial")


def counter_race(workers: int = 2, iterations: int = 200_000, trials: int = 20,
                 flavour: str = "none", pin: str | None = "auto",
                 timeout: float = 30.0) -> RaceResult:
    """Run the shared counter on real processes, ``trials`` times.

    ``workers`` processes share one 64-bit counter in a lab segment. In each
    trial the counter starts at 0, the workers are released together and each
    adds 1 to it ``iterations`` times, as ``flavour`` says:

    * ``"none"``: ``counter.value += 1`` and nothing else (updates get lost);
    * ``"semaphore"``: each increment between ``acquire`` and ``release`` of a
      ``posix_ipc`` semaphore made by :mod:`labkit.objects`;
    * ``"mp_lock"``: the same with a ``multiprocessing.Lock`` (from an explicit
      ``"fork"`` context);
    * ``"batched"``: count in a private variable, then add it once under the
      semaphore.

    ``pin`` places the workers (see :func:`labkit.cpus.place`). Everything is killed
    after ``timeout`` seconds. Unsynchronized results vary from run to run;
    the invariants do not: no trial ends above the correct total, and a
    locked trial always ends exactly on it.

    The defaults lose updates in every one of the 20 trials on a 2-core
    machine and take about half a second: each trial is long enough that the
    two workers overlap even when other programs take their CPUs for a while.

    >>> r = counter_race(workers=2, iterations=20_000, trials=3)
    >>> len(r.finals), max(r.finals) <= r.expected == 40_000
    (3, True)
    >>> counter_race(workers=2, iterations=2_000, trials=2, flavour="semaphore").finals
    [4000, 4000]
    """
    _whole("workers", workers, 1, MAX_WORKERS, "workers")
    _whole("iterations", iterations, 1, MAX_ITERATIONS, "increments")
    _whole("trials", trials, 1, MAX_TRIALS, "trials")
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {', '.join(map(repr, FLAVOURS))}, "
                         f"got {flavour!r}")
    timeout = seconds("timeout", timeout, above=True)
    cpus, placement = astuple(place(pin, workers))
    deadline = time.monotonic() + timeout
    finals: list[int] = []
    with objects.scope() as objs, Segment.create(8 * (workers + 1), label="race") as seg:
        go = [objs.semaphore(0, label="racego") for _ in range(workers)]
        done = objs.semaphore(0, label="racedone")
        lock: Any = None
        if flavour == "mp_lock":
            lock = multiprocessing.get_context("fork").Lock()
        elif flavour != "none":
            lock = objs.semaphore(1, label="racelock")
        counter = seg.struct(ctypes.c_int64)
        try:
            with start_workers(_race_worker, workers, seg, iterations, trials, flavour, lock,
                               go, done, cpus, timeout=timeout, show=False) as group:
                for _ in range(trials):
                    counter.value = 0
                    for sem in go:
                        sem.release()
                    _await(done, workers, deadline, group, "the counter race")
                    finals.append(counter.value)
                times = group.wait(timeout=max(deadline - time.monotonic(), 0.1)).values
        finally:
            del counter
    expected = workers * iterations
    rows = tuple(_trial(final, expected, per) for final, per in zip(finals, zip(*times, strict=True), strict=True))
    return RaceResult(workers, iterations, flavour, placement, cpus, rows)


def _trial(final: int, expected: int, spans: Sequence[tuple[float, float]]) -> Trial:
    """A trial from each worker's (start, end) of counting."""
    first, last = min(b for b, _ in spans), max(e for _, e in spans)
    together = min(e for _, e in spans) - max(b for b, _ in spans)
    seconds = last - first
    return Trial(final, expected, seconds,
                 max(0.0, together) / seconds if seconds > 0 else 1.0)


# --- sweeps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaceSweep:
    """Counter experiments that differ in one parameter (see :func:`sweep`)."""

    varied: str                       # "iterations" or "workers"
    results: tuple[RaceResult, ...]

    @property
    def values(self) -> list[int]:
        """The values the varied parameter took."""
        return [getattr(r, self.varied) for r in self.results]


def sweep(varied: str = "iterations", values: Sequence[int] = (1_000, 10_000, 30_000, 100_000),
          trials: int = 10, progress: bool = False, **fixed: Any) -> RaceSweep:
    """Run :func:`counter_race` once for each value of ``iterations`` or ``workers``.

    ``fixed`` passes the other arguments on (``workers=3``, ``pin="same"``...).
    ``progress`` shows a progress bar.

    >>> s = sweep("workers", [1, 2], trials=2, iterations=5_000)
    >>> s.values, s.results[0].lossy_trials
    ([1, 2], 0)
    """
    if varied not in ("iterations", "workers"):
        raise ValueError(f"varied must be 'iterations' or 'workers', got {varied!r}")
    if varied in fixed or "trials" in fixed:
        raise ValueError(f"{varied} takes the values of the sweep; do not pass it as well")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"values must be a non-empty list of whole numbers, got {values!r}")
    steps: Any = values
    if progress:
        from .display import progress as bar

        steps = bar(values, desc=f"sweeping {varied}")
    return RaceSweep(varied, tuple(counter_race(**{varied: v}, trials=trials, **fixed)
                               for v in steps))


# --- torn reads ---------------------------------------------------------------------------------


class Record(ctypes.Structure):
    """The two-field record of :func:`torn_reads`: the writer keeps ``x == y``.

    ``seq`` is the sequence count of a seqlock (:func:`seqlock_write`); the plain
    experiment leaves it at 0.
    """

    _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_int64), ("seq", ctypes.c_int64)]


_GUARDED = {"none": "with no lock", "semaphore": "under a semaphore",
            "seqlock": "through the seqlock (retrying)"}


@dataclass(frozen=True)
class TornReads:
    """What a reader saw of a two-field record that another process kept rewriting."""

    reads: int
    writes: int                       # complete records the writer wrote meanwhile
    guard: str                        # "none", "semaphore" or "seqlock": how the reader read
    placement: str
    differences: dict[int, int]       # y - x as the reader saw it -> how many reads
    examples: tuple[tuple[int, int], ...]  # torn reads (x, y), one for each y - x seen first
    retries: int = 0                  # seqlock reads started again (the count was odd or moved)

    @property
    def torn(self) -> int:
        """Reads whose two fields came from different writes (``x != y``)."""
        return self.reads - self.differences.get(0, 0)

    @property
    def torn_fraction(self) -> float:
        return self.torn / self.reads

    def __str__(self) -> str:
        retried = f", {self.retries:,} retries" if self.guard == "seqlock" else ""
        return (f"{self.torn:,} of {self.reads:,} reads torn ({self.torn_fraction:.2%}), "
                f"{_GUARDED[self.guard]}{retried}, while the writer wrote {self.writes:,} "
                f"records ({self.placement})")


class _Tally:
    """The reader's count of each ``y - x``, and the first torn read of each kind."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.examples: list[tuple[int, int]] = []
        self.retries = 0

    def add(self, x: int, y: int) -> None:
        if x != y and y - x not in self.seen and len(self.examples) < 6:
            self.examples.append((x, y))
        self.seen[y - x] = self.seen.get(y - x, 0) + 1


def seqlock_write(record: Record, k: int) -> None:
    """The writer's side of a seqlock: make the count odd, write, make it even again.

    Only one process may write (the count itself is updated without a lock).

    >>> r = Record()
    >>> seqlock_write(r, 7); (r.x, r.y, r.seq)
    (7, 7, 2)
    """
    record.seq += 1                  # odd: a write is under way
    record.x = k
    record.y = k
    record.seq += 1                  # even again: the record is whole


def seqlock_read(record: Record) -> tuple[int, int, int]:
    """The reader's side of a seqlock: ``(x, y, retries)`` from one whole write.

    Read the count; if it is odd a write is under way: try again. Read the
    fields, then the count again; if it moved, a write overlapped: try again.
    The reader never blocks the writer and never writes anything.

    >>> r = Record(); seqlock_write(r, 3)
    >>> seqlock_read(r)
    (3, 3, 0)
    """
    retries = 0
    while True:
        before = record.seq
        if before % 2 == 0:          # no write under way when we start
            x = record.x
            y = record.y
            if record.seq == before:  # and none finished meanwhile: x and y belong together
                return x, y, retries
        retries += 1


def _torn_writer(record: Record, stop: Any, lock: Any, seqlock: bool) -> int:
    """Rewrite the record (x, then y) with k = 1, 2, 3... until ``stop`` is raised."""
    k = 0
    while not stop.value:
        k += 1
        if seqlock:
            seqlock_write(record, k)
            continue
        if lock is not None:
            lock.acquire()
        record.x = k                 # the record is inconsistent from here...
        record.y = k                 # ...to here
        if lock is not None:
            lock.release()
    return k


def _torn_reader(record: Record, reads: int, lock: Any) -> _Tally:
    """Read x, then y, ``reads`` times (under ``lock`` if one is given)."""
    tally = _Tally()
    for _ in range(reads):
        if lock is not None:
            lock.acquire()
        x = record.x
        y = record.y
        if lock is not None:
            lock.release()
        tally.add(x, y)
    return tally


def _both_readers(record: Record, reads: int) -> tuple[_Tally, _Tally]:
    """Read the record ``reads`` times each way, alternating: plainly, then by the seqlock."""
    plain, seqlocked = _Tally(), _Tally()
    for _ in range(reads):
        plain.add(record.x, record.y)             # ignores the count
        x, y, retries = seqlock_read(record)      # follows it
        seqlocked.add(x, y)
        seqlocked.retries += retries
    return plain, seqlocked


def _torn_worker(i: int, seg: Segment, reads: int, guard: str, lock: Any,
                 cpus: tuple[int | None, ...]) -> Any:
    """Worker 0 writes the record until told to stop; worker 1 reads it, then stops it."""
    pin_to(cpus[i])
    record = seg.struct(Record)
    stop = seg.struct(ctypes.c_int64, ctypes.sizeof(Record))
    if i == 0:
        return _torn_writer(record, stop, lock, guard == "seqlock")
    while not record.x:              # start reading once the writer is writing
        if cpus[0] is None or cpus[0] == cpus[1]:
            os.sched_yield()
    try:
        if guard == "seqlock":
            plain, seqlocked = _both_readers(record, reads)
            return ((plain.seen, plain.examples, 0),
                    (seqlocked.seen, seqlocked.examples, seqlocked.retries))
        tally = _torn_reader(record, reads, lock)
        return ((tally.seen, tally.examples, 0),)
    finally:
        stop.value = 1


def _run_torn(reads: int, guard: str, pin: str | None, timeout: float) -> list[TornReads]:
    """One writer and one reader over a lab segment; one TornReads per way of reading."""
    _whole("reads", reads, 1, MAX_ITERATIONS, "reads")
    timeout = seconds("timeout", timeout, above=True)
    cpus, placement = astuple(place(pin, ("writer", "reader")))
    with objects.scope() as objs, Segment.create(64, label="torn") as seg:
        lock = objs.semaphore(1, label="tornlock") if guard == "semaphore" else None
        with start_workers(_torn_worker, 2, seg, reads, guard, lock, cpus, timeout=timeout,
                           show=False) as pair:
            writes, tallies = pair.wait().values
    guards = ("none", "seqlock") if guard == "seqlock" else (guard,)
    return [TornReads(reads, writes, g, placement, dict(sorted(seen.items())),
                      tuple(examples), retries)
            for g, (seen, examples, retries) in zip(guards, tallies, strict=True)]


def torn_reads(reads: int = 200_000, locked: bool = False, pin: str | None = "auto",
               timeout: float = 10.0) -> TornReads:
    """One process rewrites a two-field record while another reads it ``reads`` times.

    The writer stores ``x = k`` and then ``y = k`` for k = 1, 2, 3...; so a
    record is consistent when ``x == y``. The reader loads ``x``, then ``y``,
    and counts each difference ``y - x`` it sees. With ``locked`` both sides
    hold a semaphore around their two accesses.

    >>> r = torn_reads(reads=20_000, locked=True)
    >>> r.torn, r.reads
    (0, 20000)
    """
    return _run_torn(reads, "semaphore" if locked else "none", pin, timeout)[0]


@dataclass(frozen=True)
class SeqlockReads:
    """One run of :func:`seqlock_reads`: the same reader, the same record, two ways of reading."""

    plain: TornReads
    seqlock: TornReads

    def __str__(self) -> str:
        return f"plain:   {self.plain}\nseqlock: {self.seqlock}"


def seqlock_reads(reads: int = 100_000, pin: str | None = "auto",
                  timeout: float = 10.0) -> SeqlockReads:
    """:func:`torn_reads` with a seqlock, next to the plain reads, in one run.

    The writer wraps each update in :func:`seqlock_write`. The reader reads the
    record ``reads`` times each way, alternating: plainly (x, then y, ignoring
    the count) and with :func:`seqlock_read`. Both ways see the same writer at
    the same moments; only the plain one can be torn. Nobody waits for a lock:
    the writer never stops, and a seqlock reader only retries.

    The seqlock relies on the processor keeping each process's stores in order
    and its loads in order, as x86-64 does; on ARM a seqlock written in C needs
    memory barriers (``atomic_thread_fence``), which Python cannot issue.

    >>> r = seqlock_reads(reads=20_000)
    >>> r.seqlock.torn, r.seqlock.reads
    (0, 20000)
    """
    plain, seqlocked = _run_torn(reads, "seqlock", pin, timeout)
    return SeqlockReads(plain, seqlocked)


# --- plots -----------------------------------------------------------------------------------


_COLOURS = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown"]


def plot_finals(results: RaceResult | Sequence[RaceResult], ax: Any = None) -> Any:
    """Histogram of the final values of one experiment (or several, overlaid), with the
    correct total marked. Returns the Axes.

    >>> plot_finals(counter_race())  # doctest: +SKIP
    """
    import numpy as np

    if isinstance(results, RaceResult):
        results = [results]
    if not results:
        raise ValueError("give at least one RaceResult to plot")
    expected = {r.expected for r in results}
    if len(expected) > 1:
        raise ValueError(f"the experiments have different correct totals {sorted(expected)}: "
                         "plot them on separate axes")
    total = expected.pop()
    first = results[0]
    ax = axes(f"{first.workers} workers x {first.iterations:,} increments: final values of "
              f"{len(first.trials)} trials", "final value of the counter",
              "trials", ax=ax)
    width = total / 50
    edges = np.linspace(-width / 2, total + width / 2, 52)   # the last bar is centred on the total
    for k, r in enumerate(results):
        ax.hist(r.finals, bins=edges, color=_COLOURS[k % len(_COLOURS)], alpha=0.6,
                label=f"{r.label}: {r.lossy_trials} of {len(r.trials)} trials lost updates")
    ax.axvline(total, color="black", ls="--", lw=1.5, label=f"correct total {total:,}")
    ax.axvspan(edges[-1], total * 1.12, color="grey", alpha=0.15,
               label="above the correct total: never")
    ax.set_xlim(0, total * 1.12)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_lost_fraction(result: RaceSweep, ax: Any = None, absolute: bool = False) -> Any:
    """The share of updates lost (or, with ``absolute``, the number lost, on a log
    scale) against the varied parameter: every trial as a dot, the median as a line.
    Returns the Axes.

    >>> plot_lost_fraction(sweep("iterations"), absolute=True)  # doctest: +SKIP
    """
    first = result.results[0]
    fixed = (f"{first.workers} workers" if result.varied == "iterations"
             else f"{first.iterations:,} each")
    label = "increments per worker" if result.varied == "iterations" else "worker processes"
    what = "Updates lost" if absolute else "Share lost"
    short = "increments" if result.varied == "iterations" else "workers"
    ax = axes(f"{what} against {short} ({fixed}, {first.placement.split(' (')[0]})",
              label + (" (log scale)" if result.varied == "iterations" else ""),
              "updates lost (log scale)" if absolute else "updates lost (% of the correct total)",
              ax=ax)
    xs = result.values

    def ys(r: RaceResult) -> list[float]:
        return [float(n) for n in r.lost] if absolute else [100 * f for f in r.lost_fractions]

    for x, r in zip(xs, result.results, strict=False):
        ax.scatter([x] * len(r.trials), ys(r), color="tab:red", alpha=0.35, s=18,
                   label="one trial" if x == xs[0] else None)
    ax.plot(xs, [statistics.median(ys(r)) for r in result.results], "o-", color="black",
            label="median of the trials")
    if result.varied == "iterations":
        ax.set_xscale("log")
    else:
        ax.set_xticks(xs)
    if absolute:
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=-0.5)
    else:
        ax.set_ylim(-3, 100)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_times(results: Sequence[RaceResult], ax: Any = None) -> Any:
    """Bars of the median wall time per trial for each experiment (with its fastest and
    slowest trial), labelled with the time per increment. Returns the Axes.

    >>> plot_times([counter_race(), counter_race(flavour="semaphore")])  # doctest: +SKIP
    """
    if not results:
        raise ValueError("give at least one RaceResult to plot")
    first = results[0]
    ax = axes(f"Time per trial: {first.workers} workers x {first.iterations:,} increments "
              f"(median of {len(first.trials)})", "", "wall time per trial (ms, log scale)",
              ax=ax, figsize=(8.0, 4.0))
    for k, r in enumerate(results):
        mid = r.median_seconds * 1e3
        ax.bar(k, mid, color=_COLOURS[k % len(_COLOURS)], alpha=0.8,
               label=f"{r.label}: {r.ns_per_increment:.0f} ns per increment")
        ax.errorbar(k, mid, yerr=[[mid - min(r.seconds) * 1e3], [max(r.seconds) * 1e3 - mid]],
                    color="black", capsize=5)
        ax.text(k, mid * 1.15, f"{mid:.1f} ms", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    places = {r.placement.split(" (")[0] for r in results}
    ax.set_xticks(range(len(results)), [_SHORT[r.flavour] + (
        "\n" + r.placement.split(" (")[0] if len(places) > 1 else "") for r in results])
    top = max(max(r.seconds) for r in results) * 1e3
    ax.set_ylim(min(min(r.seconds) for r in results) * 1e3 / 3, top * 8)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def times_table(results: Sequence[RaceResult]) -> Table:
    """A table of each experiment's times and losses, with its speed relative to the first.

    >>> times_table([])
    way   placement   median ms per trial   ns per increment   lost (median)   relative time
    """
    rows = []
    base = results[0].median_seconds if results else 1.0
    for r in results:
        rows.append([_DESCRIBE[r.flavour], r.placement.split(" (")[0],
                     round(r.median_seconds * 1e3, 2), round(r.ns_per_increment, 1),
                     f"{statistics.median(r.lost_fractions):.1%}",
                     f"{r.median_seconds / base:.1f}x"])
    return Table(["way", "placement", "median ms per trial", "ns per increment", "lost (median)",
                  "relative time"], rows)


def plot_torn_reads(result: TornReads, ax: Any = None) -> Any:
    """Bars of how often the reader saw each difference ``y - x``: 0 is a consistent
    record, every other bar is a torn read. Returns the Axes.

    >>> plot_torn_reads(torn_reads())  # doctest: +SKIP
    """
    ax = axes(f"{result.reads:,} reads of a record the writer keeps at x == y: "
              f"{result.torn:,} torn", "y - x as the reader saw it",
              "reads (log scale)", ax=ax)
    diffs = sorted(result.differences)
    shown = [d for d in diffs if -5 <= d <= 10]
    other = sum(result.differences[d] for d in diffs if d not in shown)
    ax.bar([d for d in shown if d == 0], [result.differences[0]] if 0 in shown else [],
           color="tab:green", label="consistent (x == y)")
    torn = [d for d in shown if d != 0]
    ax.bar(torn, [result.differences[d] for d in torn], color="tab:red",
           label="torn: x and y from different writes")
    if other:
        ax.bar([11], [other], color="tab:orange", label="y - x above 10")
    ax.set_yscale("log")
    ax.set_xticks(range(-5, 12), [str(d) for d in range(-5, 11)] + ["more"])
    ax.legend(fontsize=8)
    return ax
