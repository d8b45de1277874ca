"""The bench harness of lesson 07: worker processes driven step by step, and their results.

Two workers per mechanism (a sender and a receiver, pinned as asked) hold the
two ends of a channel (:mod:`labkit.bench_channels`) and answer the lab's
steps over a pair of pipes each: a timed throughput step, a batch of round
trips, or a transfer to check. Steps of every mechanism and size are shuffled
together in each round, so a burst of other work on the machine spreads over
all of them. Two references run in the same rounds: NumPy copies (the memory
bandwidth) and ``dd`` through a pipe. The results are plain data
(:class:`Sweep`); :mod:`labkit.bench_plots` draws them.
"""
from __future__ import annotations

import math
import os
import pickle
import random
import resource
import select
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import objects
from ._validate import seconds as _seconds
from ._validate import whole as _whole
from .bench_channels import CHANNELS, LABELS, MECHANISMS, ZERO_COPY, Channel, message_bytes
from .cpus import pin_to, place
from .errors import LabError, LabTimeout, NotSupportedHere
from .framing import read_frame, write_frame
from .pipes_throughput import quartiles
from .processes import start_workers

__all__ = [
    "FULL_SIZES",
    "MAX_SIZE",
    "QUICK_SIZES",
    "Sweep",
    "checked_mechanisms",
    "mq_size_limit",
    "quick",
    "round_trips",
    "size_name",
    "sweep",
    "transfer",
]

QUICK_SIZES = (1, 64, 4096, 65536, 1 << 20)
FULL_SIZES = tuple(4 ** k for k in range(13))      # 1 B, 4 B, ... 4 MiB, 16 MiB
MAX_SIZE = 16 << 20
MAX_LATENCY_SIZE = 4096


def checked_mechanisms(mechanisms: Any) -> list[str]:
    """The mechanisms asked for, as a list, or a ValueError saying which names exist.

    >>> checked_mechanisms(("pipe", "shm"))
    ['pipe', 'shm']
    """
    known = ", ".join((*MECHANISMS, *ZERO_COPY))
    if isinstance(mechanisms, str) or not isinstance(mechanisms, Sequence) or not mechanisms:
        raise ValueError(f"mechanisms must be a non-empty list of names from {known}; "
                         f"got {mechanisms!r}")
    for m in mechanisms:
        if m not in MECHANISMS and m not in ZERO_COPY:
            raise ValueError(f"unknown mechanism {m!r}; choose from {known}")
    if len(set(mechanisms)) != len(mechanisms):
        raise ValueError(f"mechanisms must not repeat a name, got {list(mechanisms)}")
    return list(mechanisms)


def _sizes(sizes: Any, allow_empty: bool = False) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or (
            not sizes and not allow_empty):
        raise ValueError(f"sizes must be a non-empty list of message sizes in bytes, "
                         f"got {sizes!r}")
    for s in sizes:
        _whole("every message size", s, 1, MAX_SIZE, "bytes")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must not repeat a size, got {list(sizes)}")
    return sorted(sizes)


def mq_size_limit() -> int:
    """The largest message a POSIX message queue takes here (0 where there are none).

    >>> mq_size_limit() > 0
    True
    """
    from .mq import limits, supported

    return limits().msgsize_max if supported() else 0


# --- framed pickles between the lab and its workers (labkit's own code on both sides) -----


def _put(fd: int, obj: Any) -> None:
    write_frame(fd, pickle.dumps(obj))


def _get(fd: int) -> Any:
    return pickle.loads(read_frame(fd))


# --- the workers ----------------------------------------------------------------------


def _switches() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_nvcsw + ru.ru_nivcsw


def _worker(i: int, fds: dict[str, int], channel: Channel, cpus: tuple, max_size: int,
            prefault: bool) -> int:
    """Worker 0 sends and times, worker 1 receives; each answers the lab's steps."""
    mine = {f"ctl{i}_r", f"res{i}_w"}
    for name, fd in fds.items():
        if name not in mine:
            os.close(fd)
    ctl, res = fds[f"ctl{i}_r"], fds[f"res{i}_w"]
    pin_to(cpus[i])
    end = channel.end(i, prefault)
    source = message_bytes(max_size if i == 0 else 1)   # only the sender sends data
    ack = end.prepare(memoryview(b"!"))
    _put(res, "ready")
    steps = 0
    try:
        while True:
            try:
                step = _get(ctl)
            except EOFError:
                break
            kind = step[0]
            if kind == "stop":
                break
            if kind == "tp":
                _, size, warm, count = step
                if i == 0:
                    msg = end.prepare(source[:size])
                    for _ in range(warm):
                        end.send(msg)
                    end.recv(1)
                    sw = _switches()
                    began = time.perf_counter()
                    for _ in range(count):
                        end.send(msg)
                    end.recv(1)
                    _put(res, (time.perf_counter() - began, _switches() - sw))
                else:
                    for _ in range(warm):
                        end.recv(size)
                    end.send(ack)
                    sw = _switches()
                    for _ in range(count):
                        end.recv(size)
                    end.send(ack)
                    _put(res, _switches() - sw)
            elif kind == "lat":
                _, size, warm, count = step
                if i == 0:
                    msg = end.prepare(source[:size])
                    times = []
                    clock = time.perf_counter_ns
                    for _ in range(warm + count):
                        began = clock()
                        end.send(msg)
                        end.recv(size)
                        times.append(clock() - began)
                    _put(res, times[warm:])
                else:
                    for _ in range(warm + count):
                        end.send(end.recv(size))
                    _put(res, None)
            elif kind == "xfer":
                _, messages = step
                if i == 0:
                    for m in messages:
                        end.send(end.prepare(memoryview(m)))
                    end.recv(1)
                    _put(res, None)
                else:
                    got = [bytes(end.recv(len(m))) for m in messages]
                    end.send(ack)
                    _put(res, got)
            steps += 1
    finally:
        end.close()
    return steps


def _reference_steps(fds: dict[str, int], measure: Any) -> int:
    """A one-process reference's loop: ``measure(size, warm, count)`` per step, until stop."""
    for name, fd in fds.items():
        if name not in ("ctl0_r", "res0_w"):
            os.close(fd)
    _put(fds["res0_w"], "ready")
    steps = 0
    while True:
        try:
            step = _get(fds["ctl0_r"])
        except EOFError:
            break
        if step[0] == "stop":
            break
        _, size, warm, count = step
        _put(fds["res0_w"], (measure(size, warm, count), 0))
        steps += 1
    return steps


def _copy_worker(i: int, fds: dict[str, int], cpu: int | None, max_size: int) -> int:
    """The memory-bandwidth reference: NumPy copies of each size, in this process."""
    import numpy as np

    pin_to(cpu)
    src = np.frombuffer(message_bytes(max_size), dtype=np.uint8)
    dst = np.zeros(max_size, dtype=np.uint8)
    dst[:] = 1                                             # fault every page in

    def copies(size: int, warm: int, count: int) -> float:
        a, b = src[:size], dst[:size]
        for _ in range(warm):
            np.copyto(b, a)
        began = time.perf_counter()
        for _ in range(count):
            np.copyto(b, a)
        return time.perf_counter() - began

    return _reference_steps(fds, copies)


def _dd_worker(i: int, fds: dict[str, int], cpus: tuple) -> int:
    """The C baseline: dd if=/dev/zero | dd of=/dev/null, as lesson 02 measured it."""
    from .pipes import dd_pair

    return _reference_steps(fds, lambda size, _warm, count: dd_pair(size, count, cpus))


class _Session:
    """Worker processes for one mechanism (or a reference), driven step by step."""

    def __init__(self, name: str, fn: Any, n: int, args: tuple, timeout: float,
                 deadline: float, channel: Channel | None = None) -> None:
        self.name, self.n, self.deadline = name, n, deadline
        self.fds: dict[str, int] = {}
        self.channel = channel
        try:
            for k in range(n):
                self.fds[f"ctl{k}_r"], self.fds[f"ctl{k}_w"] = os.pipe()
                self.fds[f"res{k}_r"], self.fds[f"res{k}_w"] = os.pipe()
            self.workers = start_workers(fn, n, self.fds, *args, timeout=timeout, show=False)
        except BaseException:
            for fd in self.fds.values():
                os.close(fd)
            raise
        for name_, fd in list(self.fds.items()):
            if (name_.startswith("ctl") and name_.endswith("_r")) or \
                    (name_.startswith("res") and name_.endswith("_w")):
                os.close(fd)
                del self.fds[name_]

    def _result(self, k: int) -> Any:
        fd = self.fds[f"res{k}_r"]
        left = self.deadline - time.monotonic()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if left <= 0 or not poller.poll(left * 1000):
            raise LabTimeout(f"the {self.name} measurement did not finish in time; its "
                             "processes were killed")
        try:
            return _get(fd)
        except EOFError:
            self.workers.wait(timeout=2.0).raise_if_failed()  # a ChildError says why
            raise LabError(f"a {self.name} worker ended early without saying why") from None

    def ready(self) -> None:
        for k in range(self.n):
            self._result(k)

    def step(self, step: tuple) -> list[Any]:
        for k in reversed(range(self.n)):              # the receiver first
            _put(self.fds[f"ctl{k}_w"], step)
        return [self._result(k) for k in range(self.n)]

    def close(self) -> None:
        for k in range(self.n):
            fd = self.fds.pop(f"ctl{k}_w", None)
            if fd is not None:
                # Say stop: end of file alone would not do, since workers of sessions
                # started later inherited a copy of this write end.
                _put(fd, ("stop",))
                os.close(fd)
        try:
            left = max(self.deadline - time.monotonic(), 0.5)
            self.workers.wait(timeout=left).raise_if_failed()
        finally:
            self.workers.close()
            for fd in self.fds.values():
                os.close(fd)
            self.fds.clear()


# --- the results ----------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        raise ValueError("no values")
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass(frozen=True)
class Sweep:
    """Everything one run of the harness measured, as plain data.

    ``seconds[m][j]`` holds one time per repeat for moving ``counts[j]``
    messages of ``sizes[j]`` bytes with mechanism ``m`` (an empty list where
    the mechanism cannot carry that size: see ``skipped``);
    ``switches[m][j]`` the context switches of sender and receiver together in
    those runs. ``memcpy[j]`` times the same number of NumPy copies of the same
    size, ``dd`` the C baseline at ``dd_size``. ``round_trip_ns[m]`` lists every
    timed round trip of a ``latency_size``-byte message, in nanoseconds.
    """

    mechanisms: list[str]
    sizes: list[int]
    counts: list[int]
    warmups: list[int]
    trials: int
    placement: str
    pin: str | None
    seconds: dict[str, list[list[float]]]
    switches: dict[str, list[list[int]]]
    memcpy: list[list[float]]
    dd_size: int | None
    dd: list[float]
    latency_size: int
    round_trip_ns: dict[str, list[int]]
    skipped: dict[str, str]
    method: str
    elapsed: float
    seed: int | None = None

    # --- throughput

    def rates(self, mechanism: str, size: int) -> list[float]:
        """Bytes per second of every repeat (empty if not measured)."""
        j = self.sizes.index(size)
        return [self.sizes[j] * self.counts[j] / t for t in self.seconds[mechanism][j]]

    def quartiles(self, mechanism: str, size: int) -> tuple[float, float, float]:
        """(first quartile, median, third quartile) of bytes per second."""
        return quartiles(self.rates(mechanism, size),
                         f"measurement of {mechanism} at {size} bytes")

    def rate(self, mechanism: str, size: int) -> float:
        """Median bytes per second; NaN where the mechanism could not carry that size."""
        rates = self.rates(mechanism, size)
        return statistics.median(rates) if rates else math.nan

    def per_message(self, mechanism: str, size: int) -> float:
        """Median seconds per message in a stream of messages of ``size`` bytes."""
        j = self.sizes.index(size)
        times = self.seconds[mechanism][j]
        return statistics.median(times) / self.counts[j] if times else math.nan

    def switches_per_message(self, mechanism: str, size: int) -> float:
        """Median context switches (sender and receiver) per message: the wake-ups."""
        j = self.sizes.index(size)
        counts = self.switches[mechanism][j]
        return statistics.median(counts) / self.counts[j] if counts else math.nan

    def memcpy_rate(self, size: int) -> float:
        """Median bytes per second of a NumPy copy of ``size`` bytes (the bandwidth line)."""
        j = self.sizes.index(size)
        return statistics.median(self.sizes[j] * self.counts[j] / t for t in self.memcpy[j])

    def dd_rate(self) -> float:
        """Median bytes per second of ``dd`` through a pipe at ``dd_size`` (NaN if not run)."""
        if not self.dd or self.dd_size is None:
            return math.nan
        j = self.sizes.index(self.dd_size)
        return statistics.median(self.dd_size * self.counts[j] / t for t in self.dd)

    def ranking(self, size: int) -> list[tuple[str, float]]:
        """Mechanisms from fastest to slowest at ``size``, with their median bytes/s."""
        measured = [(m, self.rate(m, size)) for m in self.mechanisms]
        return sorted([x for x in measured if not math.isnan(x[1])], key=lambda x: -x[1])

    # --- latency

    def round_trip(self, mechanism: str, q: float = 0.5) -> float:
        """A percentile (``q=0.5``: the median) of the round trips, in seconds."""
        values = sorted(self.round_trip_ns[mechanism])
        return _percentile(values, q) / 1e9

    # --- tables

    def table(self, unit: float = 1e6) -> Any:
        """Median throughput per mechanism and size (MB/s by default), with the references."""
        from .display import Table

        def cell(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x / unit:,.0f}" if x / unit >= 10 else \
                f"{x / unit:.2g}"

        rows = [[LABELS[m], *(cell(self.rate(m, s)) for s in self.sizes)]
                for m in self.mechanisms]
        rows.append(["NumPy copy (memory bandwidth)", *(cell(self.memcpy_rate(s))
                                                        for s in self.sizes)])
        if self.dd:
            rows.append(["dd | dd (C, through a pipe)",
                         *(cell(self.dd_rate()) if s == self.dd_size else "" for s in
                           self.sizes)])
        unit_name = {1e6: "MB/s", 1e9: "GB/s"}.get(unit, f"x{unit:g} B/s")
        return Table([f"{unit_name} by message size", *(size_name(s) for s in self.sizes)],
                     rows)

    def latency_table(self) -> Any:
        """Round trips: median and percentiles in microseconds, fastest first."""
        from .display import Table

        rows = []
        for m in sorted(self.round_trip_ns, key=self.round_trip):
            rows.append([LABELS[m], *(round(self.round_trip(m, q) * 1e6, 1)
                                      for q in (0.1, 0.5, 0.9, 0.99)),
                         len(self.round_trip_ns[m])])
        return Table([f"round trip of {self.latency_size} B ({self.placement})", "p10 (µs)",
                      "median (µs)", "p90 (µs)", "p99 (µs)", "round trips"], rows)

    def switches_table(self) -> Any:
        """Context switches per message (sender and receiver together), by size."""
        from .display import Table

        return Table(["context switches per message", *(size_name(s) for s in self.sizes)],
                     [[LABELS[m], *("n/a" if math.isnan(x := self.switches_per_message(m, s))
                                    else round(x, 2) for s in self.sizes)]
                      for m in self.mechanisms])

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (mechanism, size) with medians and spread: what the CSV holds."""
        out = []
        for m in self.mechanisms:
            for j, s in enumerate(self.sizes):
                row: dict[str, Any] = {"placement": self.placement, "mechanism": m,
                                       "size": s, "messages": self.counts[j]}
                if self.seconds[m][j]:
                    q1, q2, q3 = self.quartiles(m, s)
                    row.update(median_Bps=q2, q1_Bps=q1, q3_Bps=q3,
                               us_per_message=self.per_message(m, s) * 1e6,
                               switches_per_message=self.switches_per_message(m, s))
                else:
                    row.update(note=self.skipped.get(m, "not measured"))
                row["memcpy_Bps"] = self.memcpy_rate(s)
                if self.dd and s == self.dd_size and m == "pipe":
                    row["dd_Bps"] = self.dd_rate()
                out.append(row)
        for m in self.round_trip_ns:
            out.append({"placement": self.placement, "mechanism": m, "size": self.latency_size,
                        "round_trips": len(self.round_trip_ns[m]),
                        **{f"rtt_p{int(q * 100)}_us": self.round_trip(m, q) * 1e6
                           for q in (0.1, 0.5, 0.9, 0.99)}})
        return out


def size_name(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# --- running a sweep --------------------------------------------------------------------


def _plan(size: int, total: int, min_count: int, max_count: int) -> tuple[int, int]:
    count = max(min_count, min(max_count, total // size))
    warm = max(1, min(count // 8, 200))
    return warm, count


def sweep(mechanisms: Sequence[str] = MECHANISMS, sizes: Sequence[int] = QUICK_SIZES,
          trials: int = 3, pin: str | None = "same", round_trips: int = 300,
          latency_size: int = 1, total: int = 4 << 20, max_messages: int = 400,
          baseline: bool = True, seed: int | None = 0, timeout: float = 60.0,
          progress: bool = False) -> Sweep:
    """Measure latency and throughput of each mechanism on one harness.

    Args:
        mechanisms: names from :data:`MECHANISMS`.
        sizes: message sizes in bytes for the throughput steps (1 B to 16 MiB);
            ``[]`` measures round trips only.
        trials: rounds; every (mechanism, size) step runs once per round, all
            steps of a round in a shuffled order (``seed``).
        pin: ``"same"`` puts sender and receiver on one CPU, ``"split"`` on two
            (every wake-up then crosses CPUs), ``None`` leaves them to the
            scheduler, ``"auto"`` splits them where there are two CPUs
            (:func:`labkit.cpus.place`). The NumPy copies run on the receiver's CPU.
        round_trips: timed round trips per mechanism (spread over the rounds),
            after an untimed warm-up of a tenth as many.
        latency_size: the size of the round-trip message (1 to 4096 bytes).
        total: bytes per throughput step, as ``total // size`` messages but
            never fewer than 4 nor more than ``max_messages``.
        baseline: also run ``dd`` through a pipe at 64 KiB (when 64 KiB is
            among ``sizes``), as lesson 02 did.
        timeout: everything is killed after this many seconds.
        progress: show a progress bar.

    POSIX message queues cannot carry messages over ``msgsize_max`` (8 KiB
    by default): those sizes are skipped for ``mqueue`` and ``skipped`` says
    why. Timings vary from run to run, and more on a busy machine.

    >>> s = sweep(["pipe", "shm"], sizes=[4096], trials=1, round_trips=20, baseline=False)
    >>> s.rate("shm", 4096) > 0 and s.round_trip("pipe") > 0
    True
    """
    mechanisms = checked_mechanisms(mechanisms)
    sizes = _sizes(sizes, allow_empty=True)
    _whole("trials", trials, 1, 100)
    _whole("round_trips", round_trips, 0, 1_000_000)
    _whole("latency_size", latency_size, 1, MAX_LATENCY_SIZE, "bytes")
    _whole("total", total, 1, 1 << 30, "bytes")
    _whole("max_messages", max_messages, 4, 1_000_000)
    _seconds("timeout", timeout, 0, 3600, above=True)
    if not sizes and not round_trips:
        raise ValueError("nothing to measure: give some sizes, or round_trips > 0")
    placed = place(pin, ("sender", "receiver"))
    cpus, placement = placed.cpus, placed.text
    skipped: dict[str, str] = {}
    mq_limit = None
    if "mqueue" in mechanisms:
        from .mq import supported

        if not supported():
            mechanisms.remove("mqueue")
            skipped["mqueue"] = "no POSIX message queues on this system (macOS)"
        else:
            mq_limit = mq_size_limit()
            if any(s > mq_limit for s in sizes):
                skipped["mqueue"] = (f"messages over {mq_limit} bytes (msgsize_max) do not fit "
                                     "in a POSIX message queue")
    dd_size = 65536 if baseline and 65536 in sizes and "pipe" in mechanisms else None
    if dd_size is not None and shutil.which("dd") is None:
        raise NotSupportedHere("the baseline needs the dd program, which is not on the PATH; "
                               "pass baseline=False")
    plans = [_plan(s, total, 4, max_messages) for s in sizes]
    max_size = max([*sizes, latency_size, 1])
    began = time.monotonic()
    deadline = began + timeout
    rng = random.Random(seed)

    def fits(m: str, size: int) -> bool:
        return not (m == "mqueue" and mq_limit is not None and size > mq_limit)

    seconds: dict[str, list[list[float]]] = {m: [[] for _ in sizes] for m in mechanisms}
    switches: dict[str, list[list[int]]] = {m: [[] for _ in sizes] for m in mechanisms}
    memcpy: list[list[float]] = [[] for _ in sizes]
    dd: list[float] = []
    rtts: dict[str, list[int]] = {m: [] for m in mechanisms} if round_trips else {}
    sessions: dict[str, _Session] = {}
    with objects.scope() as objs:
        try:
            for m in mechanisms:
                channel_max = max(s for s in [*sizes, latency_size, 1] if fits(m, s))
                channel = CHANNELS[m](objs, channel_max, latency_size)
                try:
                    sessions[m] = _Session(m, _worker, 2, (channel, cpus, channel_max, True),
                                           timeout, deadline, channel)
                finally:
                    channel.close()                 # the workers hold what they need
            if sizes:
                sessions["memcpy"] = _Session("memcpy", _copy_worker, 1, (cpus[1], max_size),
                                              timeout, deadline)
            if dd_size is not None:
                sessions["dd"] = _Session("dd", _dd_worker, 1, (cpus,), timeout, deadline)
            for s in sessions.values():
                s.ready()
            rounds: list[list[tuple]] = []
            per_round = [round_trips // trials + (r < round_trips % trials)
                         for r in range(trials)]
            for r in range(trials):
                steps: list[tuple] = [(m, j) for m in mechanisms for j, s in enumerate(sizes)
                                      if fits(m, s)]
                steps += [("memcpy", j) for j in range(len(sizes))]
                if dd_size is not None:
                    steps.append(("dd", sizes.index(dd_size)))
                if per_round[r]:
                    steps += [(m, "lat") for m in mechanisms]
                rng.shuffle(steps)
                rounds.append(steps)
            todo: Any = [(r, step) for r, steps in enumerate(rounds) for step in steps]
            if progress:
                from .display import progress as bar

                todo = bar(todo, desc="measuring")
            for r, (who, j) in todo:
                session = sessions[who]
                if j == "lat":
                    n = per_round[r]
                    warm = max(2, round_trips // 10 // trials)
                    times, _ = session.step(("lat", latency_size, warm, n))
                    rtts[who].extend(times)
                    continue
                warm, count = plans[j]
                if who == "dd":
                    dd.append(session.step(("tp", sizes[j], warm, count))[0][0])
                elif who == "memcpy":
                    memcpy[j].append(session.step(("tp", sizes[j], warm, count))[0][0])
                else:
                    (t, sw_a), sw_b = session.step(("tp", sizes[j], warm, count))
                    seconds[who][j].append(t)
                    switches[who][j].append(sw_a + sw_b)
            for s in sessions.values():
                s.close()
        finally:
            for s in sessions.values():
                s.workers.close()
                for fd in s.fds.values():
                    os.close(fd)
                s.fds.clear()
    method = (f"{placement}; {trials} rounds, every step of a round in a shuffled order "
              f"(seed {seed}); each throughput step after an untimed warm-up of the same "
              "size; buffers allocated and filled (every page faulted in) before timing, the "
              "shared segment's pages touched by both processes; throughput timed from the "
              "first send until the receiver's acknowledgement of the last message")
    return Sweep(mechanisms, sizes, [p[1] for p in plans], [p[0] for p in plans], trials,
                 placement, pin, seconds, switches, memcpy, dd_size, dd, latency_size, rtts,
                 skipped, method, time.monotonic() - began, seed)


def quick(progress: bool = True, seed: int | None = 0) -> Sweep:
    """The lesson's sweep: every mechanism, 1 B to 1 MiB, three rounds, in a second or two.

    >>> s = quick(progress=False)
    >>> s.sizes, s.ranking(1 << 20)[0][1] > s.rate("mp_queue", 1 << 20)
    ([1, 64, 4096, 65536, 1048576], True)
    """
    return sweep(MECHANISMS, QUICK_SIZES, trials=3, pin="same", round_trips=300,
                 total=8 << 20, max_messages=300, progress=progress, seed=seed)


def round_trips(mechanisms: Sequence[str] = ("pipe", "unix", "shm"), n: int = 500,
                pin: str | None = "same", size: int = 1, trials: int = 3,
                seed: int | None = 0, timeout: float = 30.0) -> Sweep:
    """Round trips only: ``n`` per mechanism, over ``trials`` interleaved rounds.

    >>> s = round_trips(["pipe"], n=50)
    >>> len(s.round_trip_ns["pipe"])
    50
    """
    _whole("n", n, 1, 1_000_000)
    return sweep(mechanisms, [], trials=trials, pin=pin, round_trips=n, latency_size=size,
                 baseline=False, seed=seed, timeout=timeout)


def transfer(mechanism: str, messages: Sequence[bytes], pin: str | None = None,
             timeout: float = 20.0) -> list[bytes]:
    """Send ``messages`` through one mechanism of the harness; return what arrived.

    The harness moves real bytes: this is how the tests (and you) can check it.

    >>> transfer("shm", [b"zero", b"copies"])
    [b'zero', b'copies']
    """
    checked_mechanisms([mechanism])
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(f"messages must be a non-empty list of bytes, got {messages!r}")
    for m in messages:
        if not isinstance(m, (bytes, bytearray)) or not 1 <= len(m) <= MAX_SIZE:
            raise ValueError(f"every message must be bytes of 1 to {MAX_SIZE} bytes, "
                             f"got {m!r:.40}")
    cpus = place(pin, ("sender", "receiver")).cpus
    biggest = max(len(m) for m in messages)
    if mechanism == "mqueue":
        from .mq import require

        require()
        if biggest > mq_size_limit():
            raise ValueError(f"a POSIX message queue takes messages of at most "
                             f"{mq_size_limit()} bytes (msgsize_max); got one of {biggest}")
    deadline = time.monotonic() + timeout
    with objects.scope() as objs:
        channel = CHANNELS[mechanism](objs, biggest, 1)
        try:
            session = _Session(mechanism, _worker, 2, (channel, cpus, biggest, False),
                               timeout, deadline, channel)
        finally:
            channel.close()
        try:
            session.ready()
            _, got = session.step(("xfer", [bytes(m) for m in messages]))
            session.close()
        finally:
            session.workers.close()
            for fd in session.fds.values():
                os.close(fd)
    return got

