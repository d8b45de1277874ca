"""Synchronization experiments for lesson 05: a bounded buffer, a deadlock, a lost lock.

Every semaphore comes from :mod:`labkit.objects` and every buffer lives in a
lab segment (:mod:`labkit.shm`), owned by a ``with`` block, so nothing is
left behind even when a worker is killed on purpose. Workers are forked by
:mod:`labkit.processes` with a timeout, so a deadlock or a lock that is
never released ends in an error after seconds instead of a hung cell.

* :class:`Ring` is the bounded buffer (slots, ``head``, ``tail``, and the
  ``empty``/``full``/``mutex`` semaphores); :func:`deliver` runs producer
  and consumer functions on it in real processes and checks every item
  arrived exactly once and in order; :func:`bounded_buffer` measures its
  occupancy over time for fast and slow producers and consumers, live.
* :func:`deadlock` and :func:`killed_holder` (from :mod:`labkit.locks`,
  re-exported here for the notebook) show locks going wrong.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import posix_ipc

from . import objects
from ._validate import seconds
from ._validate import whole as _whole
from .display import axes
from .errors import LabError, LabTimeout
from .framing import plain_data
from .locks import DeadlockRun, HolderRun, LockEvent, deadlock, killed_holder, plot_lock_timeline
from .objects import acquire
from .processes import start_workers
from .segment import Segment
from .waiting import wait_until

__all__ = [
    "BufferRun",
    "DeadlockRun",
    "Delivery",
    "HolderRun",
    "LockEvent",
    "Ring",
    "bounded_buffer",
    "deadlock",
    "decode_item",
    "deliver",
    "item_code",
    "killed_holder",
    "plot_lock_timeline",
    "plot_occupancy",
    "plot_ring",
]

_MAX_CAPACITY = 4096
_MAX_ITEMS = 100_000


# --- the bounded buffer ------------------------------------------------------------------------


class Ring:
    """A bounded buffer in shared memory, and the three semaphores that guard it.

    * ``slots``: ``capacity`` 64-bit integers (a NumPy view of the segment);
    * ``head``: how many items have been taken so far; the next item to take
      is in ``slots[head % capacity]``;
    * ``tail``: how many items have been put so far; the next free slot is
      ``slots[tail % capacity]``;
    * ``empty``: a semaphore counting free slots (it starts at ``capacity``);
    * ``full``: a semaphore counting items waiting (it starts at 0);
    * ``mutex``: a semaphore of value 1 for the critical sections.

    ``head`` and ``tail`` are ``ctypes.c_int64`` views of the segment: read and
    write them with ``.value``. Use it as a ``with`` block: leaving it removes
    the segment and the semaphores. Forked workers inherit all of it.

    >>> with Ring(4) as ring:
    ...     ring.empty.acquire()
    ...     ring.slots[ring.tail.value % ring.capacity] = 7
    ...     ring.tail.value += 1
    ...     ring.full.release()
    ...     ring.occupancy()
    1
    """

    def __init__(self, capacity: int = 8) -> None:
        _whole("capacity", capacity, 1, _MAX_CAPACITY, "slots")
        self.capacity = capacity
        self._scope = objects.scope()
        try:
            self._seg = Segment.create(16 + 8 * capacity, label="ring")
            self.empty = self._scope.semaphore(capacity, label="empty")
            self.full = self._scope.semaphore(0, label="full")
            self.mutex = self._scope.semaphore(1, label="mutex")
        except BaseException:
            self._scope.close()
            raise
        self.head = self._seg.struct(ctypes.c_int64, 0)
        self.tail = self._seg.struct(ctypes.c_int64, 8)
        self.slots = self._seg.array(np.int64, capacity, offset=16)

    @property
    def name(self) -> str:
        """The segment's name (the semaphores have names of their own)."""
        return self._seg.name

    def occupancy(self, timeout: float = 2.0) -> int:
        """Items in the buffer now: ``tail - head``, read under the mutex (both at once).

        Raises LabTimeout if the mutex is not free within ``timeout`` seconds (a
        process holds it and waits for something, or died holding it).
        """
        with self._locked(timeout):
            return self.tail.value - self.head.value

    def snapshot(self, timeout: float = 2.0) -> tuple[list[int], int, int]:
        """A consistent copy of ``(slots, head, tail)``, taken under the mutex (see
        :meth:`occupancy` for ``timeout``)."""
        with self._locked(timeout):
            return [int(v) for v in self.slots], self.head.value, self.tail.value

    @contextlib.contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        try:
            acquire(self.mutex, timeout)
        except posix_ipc.BusyError:
            raise LabTimeout(f"the ring's mutex was not released within {timeout:g} s: a "
                             "process holds it while it waits for something (a deadlock?), "
                             "or died holding it") from None
        try:
            yield
        finally:
            self.mutex.release()

    def close(self) -> None:
        """Remove the segment and the semaphores (leaving the ``with`` block does it)."""
        for view in ("head", "tail", "slots"):
            self.__dict__.pop(view, None)
        if hasattr(self, "_seg"):
            self._seg.__exit__(None, None, None)
        self._scope.close()

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ring of {self.capacity} slots in {self._seg.name}>"


def item_code(producer: int, k: int) -> int:
    """The ``k``-th item of ``producer`` as the buffer carries it: ``(producer + 1) *
    1_000_000 + k``, so every item says who made it and in what order.

    >>> item_code(0, 5), decode_item(2_000_007)
    (1000005, (1, 7))
    """
    return (producer + 1) * 1_000_000 + k


def decode_item(item: int) -> tuple[int, int]:
    """``(producer, k)`` of an item made by :func:`item_code`."""
    return int(item) // 1_000_000 - 1, int(item) % 1_000_000


@plain_data
@dataclass(frozen=True)
class Delivery:
    """What went through the buffer (see :func:`deliver`)."""

    producers: int
    consumers: int
    capacity: int
    sent: list[list[int]]            # the items of each producer, in the order it put them
    received: list[list[int]]        # what each consumer got, in the order it got them
    seconds: float

    @property
    def missing(self) -> list[int]:
        """Items put but never received."""
        got = {v for r in self.received for v in r}
        return [v for s in self.sent for v in s if v not in got]

    @property
    def duplicated(self) -> list[int]:
        """Items received more than once."""
        seen: dict[int, int] = {}
        for r in self.received:
            for v in r:
                seen[v] = seen.get(v, 0) + 1
        return sorted(v for v, n in seen.items() if n > 1)

    @property
    def unknown(self) -> list[int]:
        """Values received that no producer put (stale slots, zeros)."""
        sent = {v for s in self.sent for v in s}
        return sorted({v for r in self.received for v in r if v not in sent})

    @property
    def out_of_order(self) -> list[tuple[int, int, int]]:
        """``(consumer, earlier, later)`` where a consumer got a producer's items in the
        wrong order (a later item before an earlier one)."""
        bad = []
        for c, got in enumerate(self.received):
            last: dict[int, int] = {}
            for v in got:
                p, k = decode_item(v)
                if p in last and k < last[p]:
                    bad.append((c, item_code(p, last[p]), v))
                last[p] = max(k, last.get(p, -1))
        return bad

    @property
    def ok(self) -> bool:
        """Every item exactly once, nothing else, each producer's items in order."""
        return not (self.missing or self.duplicated or self.unknown or self.out_of_order)

    def __str__(self) -> str:
        total = sum(map(len, self.sent))
        if self.ok:
            return (f"all {total} items from {_count(self.producers, 'producer')} arrived "
                    f"exactly once and in order at {_count(self.consumers, 'consumer')} "
                    f"({self.seconds * 1e3:.0f} ms)")
        return (f"of {total} items: {len(self.missing)} missing, {len(self.duplicated)} "
                f"received twice or more, {len(self.unknown)} unknown values received, "
                f"{len(self.out_of_order)} out of order")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _deliver_worker(i: int, ring: Ring, producer: Callable, consumer: Callable,
                    sent: list[list[int]], shares: list[int], consumer_delay: float) -> Any:
    if i < len(sent):
        producer(ring, sent[i])
        return None
    time.sleep(consumer_delay)
    got = consumer(ring, shares[i - len(sent)])
    if got is None:
        raise LabError("the consumer returned None; it must return the list of items it got")
    return [int(v) for v in got]


def deliver(producer: Callable, consumer: Callable, producers: int = 1, consumers: int = 1,
            items: int = 1000, capacity: int = 8, consumer_delay: float = 0.0,
            timeout: float = 10.0) -> Delivery:
    """Run producer and consumer functions on a :class:`Ring`, in real processes.

    Each of ``producers`` workers calls ``producer(ring, items_list)`` with its
    own ``items`` items (made by :func:`item_code`), to put in that order;
    each of ``consumers`` workers calls ``consumer(ring, count)``, which must
    take ``count`` items and return them as a list in the order it got them
    (the counts add up to all items). All start together, but the consumers
    first sleep ``consumer_delay`` seconds (so that the buffer fills up). After
    ``timeout`` seconds everything is killed (a deadlock, a lost wake-up) and
    LabTimeout says so.

    >>> def producer(ring, items):
    ...     for item in items:
    ...         ring.empty.acquire()
    ...         ring.slots[ring.tail.value % ring.capacity] = item
    ...         ring.tail.value += 1
    ...         ring.full.release()
    >>> def consumer(ring, count):
    ...     got = []
    ...     for _ in range(count):
    ...         ring.full.acquire()
    ...         got.append(int(ring.slots[ring.head.value % ring.capacity]))
    ...         ring.head.value += 1
    ...         ring.empty.release()
    ...     return got
    >>> deliver(producer, consumer, items=500, capacity=4).ok
    True
    """
    if not (callable(producer) and callable(consumer)):
        raise TypeError(f"producer and consumer must be functions, got {producer!r} and "
                        f"{consumer!r}")
    _whole("producers", producers, 1, 16, "producers")
    _whole("consumers", consumers, 1, 16, "consumers")
    _whole("items", items, 0, _MAX_ITEMS, "items per producer")
    consumer_delay = seconds("consumer_delay", consumer_delay, 0, 60)
    timeout = seconds("timeout", timeout, 0.1, 600)
    sent = [[item_code(p, k) for k in range(items)] for p in range(producers)]
    shares = _shares(producers * items, consumers)
    with Ring(capacity) as ring:
        began = time.perf_counter()
        with start_workers(_deliver_worker, producers + consumers, ring, producer, consumer,
                           sent, shares, consumer_delay, timeout=timeout,
                           show=False) as group:
            try:
                values = group.wait().values
            except LabTimeout as e:
                inside = ring.tail.value - ring.head.value  # all are dead: no lock needed,
                raise LabTimeout(                          # and the mutex may never come back
                    f"the producers and consumers did not finish in {timeout:g} s and were "
                    f"killed (a deadlock? {inside} items were in the buffer of {capacity})",
                    e.results) from None
        elapsed = time.perf_counter() - began
    return Delivery(producers, consumers, capacity, sent, values[producers:], elapsed)


# --- occupancy over time --------------------------------------------------------------------


@dataclass(frozen=True)
class BufferRun:
    """The occupancy of a bounded buffer over time (see :func:`bounded_buffer`)."""

    label: str
    capacity: int
    producers: int
    consumers: int
    items: int                       # per producer
    times: list[float]               # seconds since the start
    occupancy: list[int]             # items in the buffer at each time
    stalls: list[int]                # per producer: puts that found the buffer full
    waits: list[int]                 # per consumer: gets that found it empty
    delivered_ok: bool               # every item exactly once and in order
    seconds: float

    @property
    def full_share(self) -> float:
        """The share of samples that found the buffer full."""
        return sum(o >= self.capacity for o in self.occupancy) / max(len(self.occupancy), 1)

    @property
    def empty_share(self) -> float:
        """The share of samples that found the buffer empty."""
        return sum(o <= 0 for o in self.occupancy) / max(len(self.occupancy), 1)

    def __str__(self) -> str:
        return (f"{self.label}: {_count(self.producers, 'producer')} x {self.items} items, "
                f"{_count(self.consumers, 'consumer')}, {self.capacity} slots: full in "
                f"{self.full_share:.0%} of samples, empty in {self.empty_share:.0%}; producers "
                f"stalled {sum(self.stalls)} times, consumers waited {sum(self.waits)} times; "
                f"{'all items exactly once, in order' if self.delivered_ok else 'ITEMS WRONG'}"
                f" ({self.seconds:.2f} s)")


def _take(sem: posix_ipc.Semaphore) -> bool:
    """Acquire ``sem``; True if it had to wait (it was 0 when we came)."""
    try:
        sem.acquire(0)
        return False
    except posix_ipc.BusyError:
        sem.acquire()
        return True


def _pause(rng: random.Random, mean: float) -> None:
    if mean > 0:
        time.sleep(rng.uniform(0.5, 1.5) * mean)


def _producer(i: int, ring: Ring, items: int, produce: float, rng: random.Random) -> int:
    """A producer of :func:`bounded_buffer`: ``items`` items; returns how often it stalled."""
    stalls = 0
    for k in range(items):
        _pause(rng, produce)                       # making the item takes a while
        stalls += _take(ring.empty)                # wait for a free slot
        with ring.mutex:                           # only one process moves tail at a time
            ring.slots[ring.tail.value % ring.capacity] = item_code(i, k)
            ring.tail.value += 1
        ring.full.release()                        # one more item for the consumers
    return stalls


def _consumer(ring: Ring, share: int, consume: float, rng: random.Random
              ) -> tuple[int, list[int]]:
    """A consumer of :func:`bounded_buffer`: ``share`` items; returns its waits and items."""
    waits, got = 0, []
    for _ in range(share):
        waits += _take(ring.full)                  # wait for an item
        with ring.mutex:
            got.append(int(ring.slots[ring.head.value % ring.capacity]))
            ring.head.value += 1
        ring.empty.release()                       # one more free slot for the producers
        _pause(rng, consume)                       # using the item takes a while
    return waits, got


def _sampler(ring: Ring, last: int, samples: Any, sample_every: float) -> int:
    """Note the occupancy (tail - head) every ``sample_every`` s until ``last`` items went."""
    times, counts, total = samples
    n = 0
    began = time.perf_counter()
    while n < len(times):
        with ring.mutex:                           # head and tail as one consistent pair
            head, tail = ring.head.value, ring.tail.value
        times[n], counts[n] = time.perf_counter() - began, tail - head
        n += 1
        total.value = n
        if head >= last:
            break
        time.sleep(sample_every)
    return n


def _buffer_worker(i: int, ring: Ring, producers: int, consumers: int, items: int,
                   produce: float, consume: float, seed: int, samples: Any,
                   sample_every: float) -> Any:
    """Producers 0..P-1, consumers P..P+C-1, and the last worker samples the occupancy."""
    rng = random.Random(seed * 1000 + i)
    if i < producers:
        return _producer(i, ring, items, produce, rng)
    if i < producers + consumers:
        share = _shares(producers * items, consumers)[i - producers]
        return _consumer(ring, share, consume, rng)
    return _sampler(ring, producers * items, samples, sample_every)


def bounded_buffer(producers: int = 1, consumers: int = 1, capacity: int = 8,
                   items: int = 200, produce: float = 0.0, consume: float = 0.0,
                   label: str = "", sample_every: float = 0.001, live: bool = False,
                   seed: int = 0, timeout: float = 20.0) -> BufferRun:
    """Run producers and consumers on a :class:`Ring` and sample its occupancy.

    Each producer makes ``items`` items, taking about ``produce`` seconds per
    item (uniformly 0.5 to 1.5 times that, seeded by ``seed``); each consumer
    spends about ``consume`` seconds per item. Producers wait on ``empty``,
    then take ``mutex`` to put; consumers wait on ``full``, then take
    ``mutex`` to get. A sampler process reads ``tail - head`` under the mutex
    every ``sample_every`` seconds. With ``live`` the plot is redrawn in the
    notebook while it runs.

    >>> r = bounded_buffer(producers=2, consumers=2, capacity=4, items=100)
    >>> r.delivered_ok, max(r.occupancy) <= 4
    (True, True)
    """
    _whole("producers", producers, 1, 16, "producers")
    _whole("consumers", consumers, 1, 16, "consumers")
    _whole("items", items, 1, _MAX_ITEMS, "items per producer")
    produce = seconds("produce", produce, 0, 1)
    consume = seconds("consume", consume, 0, 1)
    sample_every = seconds("sample_every", sample_every, 0.0001, 1)
    timeout = seconds("timeout", timeout, 0.1, 600)
    label = label or f"produce {produce * 1e3:g} ms, consume {consume * 1e3:g} ms per item"
    slots = 20_000
    with Ring(capacity) as ring, Segment.create(16 * slots + 8, label="samples") as seg:
        times = seg.array(np.float64, slots, offset=0)
        counts = seg.array(np.int64, slots, offset=8 * slots)
        total = seg.struct(ctypes.c_int64, 16 * slots)
        began = time.perf_counter()
        try:
            with start_workers(_buffer_worker, producers + consumers + 1, ring, producers,
                               consumers, items, produce, consume, seed, (times, counts, total),
                               sample_every, timeout=timeout, show=False) as group:
                if live:
                    _watch(group, ring, producers * items, times, counts, total, label,
                           began + timeout)
                values = group.wait().values
            elapsed = time.perf_counter() - began
            n = values[-1]
            sampled_t, sampled_o = times[:n].tolist(), counts[:n].tolist()
        finally:
            del times, counts, total
    sent = [[item_code(p, k) for k in range(items)] for p in range(producers)]
    received = [got for _, got in values[producers:producers + consumers]]
    ok = Delivery(producers, consumers, capacity, sent, received, elapsed).ok
    return BufferRun(label, capacity, producers, consumers, items, sampled_t, sampled_o,
                     list(values[:producers]), [w for w, _ in values[producers:-1]], ok,
                     elapsed)


def _watch(group: Any, ring: Ring, items: int, times: Any, counts: Any, total: Any,
           label: str, until: float) -> None:
    """Redraw the ring and the occupancy in the notebook until every item is taken, then
    once more when the sampler has recorded the empty buffer, so the last frame shows
    the drain and not the moment before it.

    It never waits for the workers to end: they send their results through
    pipes that only ``wait()`` reads, so a big result would keep them alive.
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is None:
        return
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 2]})
    handle = display(fig, display_id=True)

    def frame(title: str) -> bool:
        n = int(total.value)
        left.clear()
        right.clear()
        try:
            plot_ring(*ring.snapshot(), ax=left)
        except LabTimeout:
            return False                               # stuck: the final wait says why
        _draw_occupancy(right, times[:n].tolist(), counts[:n].tolist(), ring.capacity, title)
        handle.update(fig)
        return True

    try:
        while group.running and ring.head.value < items and time.perf_counter() < until:
            if not frame(f"{label} (live)"):
                return
            time.sleep(0.15)
        if ring.head.value >= items:
            _sampler_done(group.pids[-1], until)
            frame(f"{label} (done)")
    finally:
        plt.close(fig)


def _sampler_done(pid: int, until: float) -> None:
    """Wait (not past ``until``) for the sampler to end: its last sample is the drained
    buffer. Peeks with WNOWAIT, so the worker group still reaps it and reads its result."""

    def ended() -> bool:
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    wait_until(ended, max(0.0, until - time.perf_counter()), None, every=0.005)


def _draw_occupancy(ax: Any, ts: list[float], occ: list[int], capacity: int, title: str) -> None:
    axes(title, "time (ms)", "items in the buffer", ax=ax)
    ax.axhspan(capacity - 0.05, capacity + 0.5, color="tab:orange", alpha=0.15)
    ax.axhspan(-0.5, 0.05, color="tab:blue", alpha=0.12)
    ax.step([t * 1e3 for t in ts], occ, where="post", color="black", lw=1, label="occupancy")
    ax.axhline(capacity, color="tab:orange", ls="--", lw=1,
               label=f"full ({capacity}): producers stall")
    ax.axhline(0, color="tab:blue", ls="--", lw=1, label="empty: consumers wait")
    ax.set_ylim(-0.5, capacity + 0.5)
    ax.legend(fontsize=7, loc="upper right")


def plot_occupancy(result: BufferRun, ax: Any = None) -> Any:
    """Occupancy over time, with the full and empty levels marked. Returns the Axes.

    >>> plot_occupancy(bounded_buffer(produce=0.002))  # doctest: +SKIP
    """
    ax = axes("", "", "", ax=ax, figsize=(8.0, 3.2))
    _draw_occupancy(ax, result.times, result.occupancy, result.capacity,
                    f"{result.label}: full {result.full_share:.0%}, empty "
                    f"{result.empty_share:.0%} of the time")
    return ax


def plot_ring(slots: Sequence[int], head: int, tail: int, ax: Any = None) -> Any:
    """The ring as a circle of slots: filled slots hold an item, ``head`` and ``tail``
    are marked. Takes :meth:`Ring.snapshot`. Returns the Axes.

    >>> plot_ring([0, 5, 6, 0], head=1, tail=3)  # doctest: +SKIP
    """
    import matplotlib.patches as patches

    capacity = len(slots)
    ax = axes(f"The ring: {tail - head} of {capacity} slots full", "", "", ax=ax,
              figsize=(3.8, 3.8))
    ax.grid(False)
    ax.set_aspect("equal")
    width = 360 / capacity
    for s in range(capacity):
        filled = any((k % capacity) == s for k in range(head, tail))
        theta1 = 90 - (s + 1) * width
        ax.add_patch(patches.Wedge((0, 0), 1, theta1, theta1 + width, width=0.35,
                                   fc="tab:green" if filled else "white", ec="grey"))
    for index, name, colour, text_r, tip_r in ((head, "head", "tab:blue", 0.3, 0.62),
                                               (tail, "tail", "tab:orange", 1.45, 1.03)):
        angle = math.radians(90 - (index % capacity + 0.5) * width)
        ax.annotate(name, xy=(tip_r * math.cos(angle), tip_r * math.sin(angle)),
                    xytext=(text_r * math.cos(angle), text_r * math.sin(angle)), ha="center",
                    va="center", color=colour, fontsize=8,
                    arrowprops={"arrowstyle": "->", "color": colour})
    ax.set_xlim(-1.7, 1.7)
    ax.set_ylim(-1.7, 1.7)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
