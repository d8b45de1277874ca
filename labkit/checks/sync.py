"""Checks for the exercises of lesson 05 (synchronization).

Every answer runs through :func:`labkit.checking.call`, in a process of its
own, and what is judged holds in every correct run. A missing or misplaced
lock is made to show every time rather than now and then: the counters run
under the watch of :mod:`.race` (each worker's first store waits until the
others have loaded the counter or sleep on a lock, so a lock around only part
of the increment loses updates in every trial, and a number made up without
the counter stored nothing); the bank's locks record the order in which they
are taken and its accounts refuse a read or write without the account's lock;
the buffer must deliver every item exactly once and in order, and block where
the rules say a process must wait (a process that has waited half a second is
waiting); the deadlock schedules run in the deterministic model.

The one timing, "batching is at least 3 times faster than locking every
increment", is measured three times, interleaved with a reference that locks
every increment and one that only starts its workers (its time is taken off
both), and compared by medians with a wide margin. It counts CPU time, the
workers' included, not wall time: a busy machine stretches wall time, and
runs two workers one after the other, so that they seldom meet at the lock.
"""
from __future__ import annotations

import contextlib
import ctypes
import resource
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import posix_ipc

from .. import interleave, objects
from ..checking import CheckFailed, Exercise, expect
from ..errors import ChildError, Deadlock, LabTimeout, SelfDeadlock, Unguarded
from ..processes import run_workers, start
from ..segment import Segment
from ..sync import Delivery, Ring, deliver, item_code
from ._shared import (
    counted,
    expect_nothing_left,
    expect_stores,
    guarded_call,
    pair,
    plain,
    run_schedule,
    schedule_of,
    spread_over_cpus,
    whole_number,
)

# --- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _not_done() -> Iterator[None]:
    """In the answer's process: an answer that is still the placeholder (it raised
    NotImplementedError in a worker) is "not done yet", not a failure."""
    try:
        yield
    except ChildError as e:
        if isinstance(e.exception, NotImplementedError) or "NotImplementedError" in str(e):
            raise NotImplementedError("exercise not done yet") from None
        raise


def _still_placeholder(result: Any) -> None:
    if result.error_type == "NotImplementedError":
        raise NotImplementedError("exercise not done yet")


# --- counters -----------------------------------------------------------------------------


def _exact_every_trial(answer: Any, who: str, workers: int, iterations: int, trials: int,
                       stores_per_worker: int | None) -> None:
    """Every trial exact, counted by the workers in the watched counter (see :mod:`.race`:
    each worker's first store waits until the others have loaded or are blocked, so an
    increment only partly locked loses updates in every trial)."""
    want = workers * iterations
    call = f"{who}({workers}, {iterations})"
    for trial in range(1, trials + 1):
        got, seen, _ = counted(answer, workers, iterations, who, spread=True)
        if got == 0:
            raise CheckFailed(f"{call} returned 0: the workers' increments never reached the "
                              "counter you read (a plain variable is copied into each child; "
                              "use shared memory)")
        expect(got <= want, f"{call} returned {got:,}, more than the {want:,} increments "
                            "made: something counts twice")
        expect(seen.forks >= workers, f"{call} forked {seen.forks} process(es): the counting "
                                      f"must be done by {workers} worker processes running "
                                      "at the same time")
        expect_stores(seen, call, workers,
                      None if stores_per_worker is None else stores_per_worker * workers)
        expect(got == want, f"trial {trial}: {call} returned {got:,} instead of {want:,}: "
                            f"{want - got:,} updates were lost. The check let another worker "
                            "load the counter while one was between its load and its store; "
                            "that can only lose updates if the load, the add and the store "
                            "are not all inside one lock that every worker shares")


# --- 05.locked_counter ------------------------------------------------------------------------

LOCKED = Exercise("05.locked_counter", "Fix the counter with a semaphore", timeout=60.0)


@LOCKED.check("exact in every trial: 2 workers x 20,000 increments, three times",
              hint="Which steps of an increment must no other worker run in between? All of "
                   "them must be inside the critical section, not only some.",
              concept="Adding 1 to a shared value is a load, an add and a store. A lock around the "
                      "load alone (or the store alone) still lets another worker load the "
                      "same old value before the first one stores: both store the same "
                      "number, and one update is lost.")
def _(answer):
    _exact_every_trial(answer, "locked_count", 2, 20_000, 3, stores_per_worker=20_000)


@LOCKED.check("exact with 4 workers, and with 1",
              hint="Every worker must take the same lock, one that lets only one holder in "
                   "at a time and that exists before the workers start.",
              concept="A semaphore is a lock only if its value starts at 1, and only for the "
                      "processes that share that one semaphore: a lock each worker makes for "
                      "itself excludes nobody.")
def _(answer):
    _exact_every_trial(answer, "locked_count", 4, 5_000, 1, stores_per_worker=5_000)
    _exact_every_trial(answer, "locked_count", 1, 1_000, 1, stores_per_worker=1_000)


@LOCKED.check("nothing is left behind: no semaphore, segment, descriptor or child",
              hint="Give the semaphore and the segment owners that end: labkit.objects.scope()"
                   " and shm.Segment.create both work as with blocks.",
              concept="Named semaphores and segments outlive the processes that use them "
                      "until they are unlinked.")
def _(answer):
    got, seen, attempt = counted(answer, 2, 2_000, "locked_count", spread=True)
    expect(got == 4_000, f"locked_count(2, 2000) returned {got:,}; expected 4,000")
    expect_stores(seen, "locked_count(2, 2000)", 2, 2_000 * 2)
    expect_nothing_left(seen, attempt, "locked_count")


# --- 05.batched_counter -----------------------------------------------------------------------

BATCHED = Exercise("05.batched_counter", "Make the fixed counter fast", timeout=90.0)


def _reference_worker(i: int, counter: Any, lock: Any, n: int) -> None:
    for _ in range(n):
        with lock:
            counter.value += 1


def _reference(workers: int, iterations: int) -> int:
    """What a student would write to lock every increment (with 0 iterations: only the
    start-up: a segment, a semaphore, workers forked, waited for)."""
    with objects.scope() as objs, Segment.create(8, label="ref") as seg:
        lock = objs.semaphore(1, label="ref")
        counter = seg.struct(ctypes.c_int64)
        run_workers(_reference_worker, workers, counter, lock, iterations,
                    show=False).raise_if_failed()
        final = int(counter.value)
        del counter
    return final


def _cpu_seconds() -> float:
    """CPU time (user and system) of this process and of every child it has waited for."""
    me, children = (resource.getrusage(who)
                    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn: Any, *args: Any) -> tuple[tuple[int | None, str], float]:
    """Run in a fresh process: fn's value (as plain data) and the CPU time it took, its
    workers' included (spread over the CPUs). CPU time, not wall time: on a busy machine the
    workers may wait their turn for a CPU, and two workers that seldom run at once seldom
    meet at the lock, which made locking every increment look as cheap as batching."""
    spread_over_cpus()
    began = _cpu_seconds()
    value = fn(*args)
    return plain(value), _cpu_seconds() - began


@BATCHED.check("exact in every trial: 2 workers x 100,000, twice; 3 workers x 10,000",
               hint="Batching moves the counting out of the critical section, not the "
                    "critical section out of the program: the one shared update per worker "
                    "still needs the lock around all of it.",
               concept="Each worker's single addition to the shared counter is a load, an add "
                       "and a store like any other; two workers adding their totals at the "
                       "same moment lose one of them unless the whole addition is locked.")
def _(answer):
    _exact_every_trial(answer, "batched_count", 2, 100_000, 2, stores_per_worker=None)
    _exact_every_trial(answer, "batched_count", 3, 10_000, 1, stores_per_worker=None)


@BATCHED.check("at least 3 times faster than locking every increment (2 workers x 300,000)",
               hint="How often does each worker take the lock? The loop itself does not need "
                    "to touch anything shared.",
               concept="Taking and releasing a semaphore costs far more than adding 1 to a "
                       "number; a worker can count in private memory and share only its "
                       "total.")
def _(answer: Any) -> None:
    workers, iterations = 2, 300_000
    times: dict[str, list[float]] = {"start-up": [], "locked": [], "answer": []}
    runs = [("start-up", _reference, 0), ("locked", _reference, iterations),
            ("answer", answer, iterations)]
    for round_ in range(3):
        for name, fn, n in runs[round_:] + runs[:round_]:      # a different order each round
            value, seconds = guarded_call(_timed, fn, workers, n, timeout=20).value
            if name == "answer":
                got = whole_number(value, "batched_count")
                expect(got == workers * n, f"batched_count({workers}, {n}) returned {got:,}; "
                                           f"expected {workers * n:,}")
            times[name].append(seconds)
    base, locked, mine = (statistics.median(times[k]) for k in ("start-up", "locked", "answer"))
    locking = max(locked - base, 1e-6)
    batching = max(mine - base, 0.0)
    speedup = locking / batching if batching > 0 else float("inf")
    expect(speedup >= 3, f"batched_count({workers}, {iterations:,}) took {mine * 1e3:.0f} ms "
                         f"of CPU and locking every increment {locked * 1e3:.0f} ms (medians "
                         f"of 3; {base * 1e3:.0f} ms of process start-up taken off both): "
                         f"{speedup:.1f} times faster, and at least 3 times is expected")


@BATCHED.check("nothing is left behind, and the result is right",
               hint="As for the locked counter: owners that end for the semaphore and the "
                    "segment.",
               concept="Named semaphores and segments outlive the processes that use them "
                       "until they are unlinked.")
def _(answer):
    got, seen, attempt = counted(answer, 2, 2_000, "batched_count", spread=True)
    expect(got == 4_000, f"batched_count(2, 2000) returned {got:,}; expected 4,000")
    expect_stores(seen, "batched_count(2, 2000)", 2, None)
    expect_nothing_left(seen, attempt, "batched_count")


# --- 05.bounded_buffer -----------------------------------------------------------------------

BUFFER = Exercise("05.bounded_buffer", "A bounded buffer for several producers and consumers",
                  timeout=60.0)


def _many(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _deliver(producer: Any, consumer: Any, settings: dict) -> Delivery | str:
    """Run in the answer's process: sync.deliver, or what stopped it."""
    spread_over_cpus()
    try:
        with _not_done():
            return deliver(producer, consumer, **settings)
    except LabTimeout as e:
        return str(e)


def _delivered(answer: Any, **kwargs: Any) -> Delivery:
    """sync.deliver with the answer's functions; a deadlock ends after a few seconds, and
    everything it made is removed (the check never waits for its own time limit)."""
    producer, consumer = pair(answer, "producer", "consumer")
    kwargs.setdefault("timeout", 4.0)
    setting = (f"{_many(kwargs['producers'], 'producer')} x {kwargs['items']} items, "
               f"{_many(kwargs['consumers'], 'consumer')}, {_many(kwargs['capacity'], 'slot')}")
    got = guarded_call(_deliver, producer, consumer, kwargs,
                       timeout=kwargs["timeout"] + 10).value
    if isinstance(got, str):
        raise CheckFailed(f"with {setting}: {got}")
    expect(isinstance(got, Delivery), f"unexpected result {got!r}")
    if not got.ok:
        problems = []
        if got.missing:
            problems.append(f"{len(got.missing)} items never arrived (e.g. {got.missing[:3]})")
        if got.duplicated:
            problems.append(f"{len(got.duplicated)} arrived more than once "
                            f"(e.g. {got.duplicated[:3]})")
        if got.unknown:
            problems.append(f"{len(got.unknown)} values arrived that no producer put "
                            f"(e.g. {got.unknown[:3]}: slots read before they were written)")
        if got.out_of_order:
            c, earlier, later = got.out_of_order[0]
            problems.append(f"consumer {c} got {later} after {earlier}, out of the order "
                            "its producer put them")
        raise CheckFailed(f"with {setting}: " + "; ".join(problems))
    return got


_HELD = ("it held ring.mutex while it waited, so nobody else could use the buffer (a "
         "deadlock): wait on the counting semaphore first, then take the mutex")


def _reference_put(ring: Ring, item: int) -> None:
    ring.empty.acquire()
    with ring._locked(2.0):                       # LabTimeout if the answer holds the mutex
        ring.slots[ring.tail.value % ring.capacity] = item
        ring.tail.value += 1
    ring.full.release()


def _reference_get(ring: Ring) -> int:
    ring.full.acquire()
    with ring._locked(2.0):
        item = int(ring.slots[ring.head.value % ring.capacity])
        ring.head.value += 1
    ring.empty.release()
    return item


def _consumer_waits(consumer: Any, capacity: int) -> dict:
    """Run in the answer's process: does a consumer wait on an empty ring, then get the item?"""
    with Ring(capacity) as ring, start(consumer, ring, 1, timeout=10, show=False,
                                     name="consumer") as child:
        time.sleep(0.5)
        if not child.running:
            r = child.wait()
            _still_placeholder(r)
            return {"waited": False, "got": r.value if r.returned else r.failure}
        try:
            _reference_put(ring, item_code(0, 0))
        except LabTimeout:
            return {"waited": True, "got": "nothing: " + _HELD}
        try:
            r = child.wait(timeout=3)
        except LabTimeout:
            return {"waited": True, "got": "nothing: it was still waiting 3 s after an "
                                           "item was put"}
        return {"waited": True, "got": r.value if r.returned else r.failure}


def _producer_waits(producer: Any, capacity: int) -> dict:
    """Run in the answer's process: does a producer stop at a full ring, then go on?"""
    items = [item_code(0, k) for k in range(capacity + 1)]
    with Ring(capacity) as ring:
        with start(producer, ring, items, timeout=10, show=False, name="producer") as child:
            time.sleep(0.5)
            waited = child.running
            if not waited:
                _still_placeholder(child.wait())
            try:
                slots, _, tail = ring.snapshot()
                first = _reference_get(ring) if waited else None
            except LabTimeout:
                return {"waited": waited, "held": True}
            try:
                r = child.wait(timeout=3)
                finished, failure = r.returned, r.failure
            except LabTimeout:
                finished, failure = False, "it was still waiting 3 s after a slot was freed"
            after = ring.snapshot()
        return {"waited": waited, "held": False, "slots": slots, "tail": tail, "first": first,
                "finished": finished, "failure": failure, "tail_after": after[2]}


@BUFFER.check("one producer, one consumer: 500 items through 4 slots, each once, in order",
              hint="Start from the lesson's producer and consumer: one semaphore counts the "
                   "free slots, the other the items, and each side waits on one and posts "
                   "the other.",
              concept="A bounded buffer is two counting semaphores around a ring of slots: "
                      "a producer may write only after taking a free slot, a consumer may "
                      "read only after taking an item.")
def _(answer):
    _delivered(answer, producers=1, consumers=1, items=500, capacity=4)


@BUFFER.check("a consumer waits while the buffer is empty, and takes the item once it comes",
              hint="Before it reads a slot, the consumer must wait for the semaphore that "
                   "counts the items; it is 0 while the buffer is empty.",
              concept="A semaphore at 0 puts the process that acquires it to sleep until "
                      "another posts it: waiting costs no CPU and cannot miss the item.")
def _(answer):
    _, consumer = pair(answer, "producer", "consumer")
    r = guarded_call(_consumer_waits, consumer, 4, timeout=15).value
    expect(r["waited"], f"consumer(ring, 1) returned {r['got']!r} at once from an empty "
                        "buffer; it must wait until a producer has put an item")
    want = [item_code(0, 0)]
    expect(r["got"] == want, f"after one item ({want[0]}) was put, consumer(ring, 1) gave "
                             f"{r['got']!r}; expected {want!r}")


@BUFFER.check("a producer waits while the buffer is full, and goes on once a slot is free",
              hint="Before it writes a slot, the producer must wait for the semaphore that "
                   "counts the free slots; it starts at the capacity.",
              concept="Without that wait, a producer faster than its consumers writes over "
                      "items that nobody has taken yet.")
def _(answer):
    producer, _ = pair(answer, "producer", "consumer")
    r = guarded_call(_producer_waits, producer, 3, timeout=15).value
    expect(not r["held"], "producer(ring, 4 items) with 3 free slots and no consumer waited "
                          "for the fourth slot, but " + _HELD)
    want = [item_code(0, k) for k in range(3)]
    expect(r["waited"], f"producer(ring, 4 items) with 3 free slots and no consumer did not "
                        f"wait: it {'returned' if r['finished'] else 'ended'} (slots now "
                        f"{r['slots']}), overwriting an item nobody had taken")
    expect(r["slots"] == want and r["tail"] == 3,
           f"with 3 slots the producer's first 3 items should fill slots 0, 1, 2 and tail be "
           f"3; found slots {r['slots']} and tail {r['tail']}")
    expect(r["finished"] and r["tail_after"] == 4,
           "once one item was taken the producer should have put its fourth and returned, but "
           + (r["failure"] or f"tail is {r['tail_after']}"))


@BUFFER.check("three producers, two consumers, two slots: every item exactly once, each "
              "producer's items in order",
              hint="Several producers share one index, several consumers the other: an "
                   "index update is lesson 04's race. The ring has a mutex for the slot and "
                   "its index together.",
              concept="The counting semaphores say how many slots may be used, not which one: "
                      "two producers that read the same index write the same slot. Reading "
                      "a slot and moving its index must be one critical section.")
def _(answer):
    for _ in range(2):
        _delivered(answer, producers=3, consumers=2, items=1_000, capacity=2)


@BUFFER.check("a full buffer does not deadlock several producers (the consumers start late)",
              hint="In which order do you wait for a slot and take the mutex? A producer "
                   "asleep on a full buffer must not hold anything a consumer needs.",
              concept="Hold a lock only while you can make progress: sleeping on a counting "
                      "semaphore while holding the mutex locks out the very process that "
                      "would wake you (a deadlock).")
def _(answer):
    _delivered(answer, producers=2, consumers=1, items=30, capacity=1, consumer_delay=0.3,
               timeout=3)


# --- 05.lock_order -------------------------------------------------------------------------

LOCK_ORDER = Exercise("05.lock_order", "Two locks without deadlock", timeout=60.0)


class _Accounts:
    """The balances given to ``transfer``: the shared NumPy array behind indexing that
    checks, on every read and write, that the worker holds the lock of each account it
    touches. A move outside its locks is a race that shows only now and then; this makes
    it show every time."""

    def __init__(self, array: Any, held: list[int]) -> None:
        self._array = array
        self._held = held

    def _guard(self, index: Any, what: str) -> None:
        touched = np.arange(len(self._array))[index]
        for k in np.atleast_1d(touched).tolist():
            if k not in self._held:
                raise Unguarded(f"a worker {what} account {k} while not holding its lock "
                                f"(it held {sorted(self._held) or 'no lock'})")

    def __getitem__(self, index: Any) -> Any:
        self._guard(index, "read")
        return self._array[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._guard(index, "changed")
        self._array[index] = value

    def __len__(self) -> int:
        return len(self._array)

    def __repr__(self) -> str:
        return f"<accounts {self._array.tolist()}>"


class _Lock:
    """A lock given to ``transfer``: a semaphore that notes what this worker does with it,
    and gives up after ``patience`` seconds instead of waiting forever."""

    def __init__(self, index: int, sem: posix_ipc.Semaphore, held: list[int],
                 log: list[tuple[str, int]], patience: float) -> None:
        self.index = index
        self._sem = sem
        self._held = held
        self._log = log
        self._patience = patience

    def acquire(self) -> bool:
        if self.index in self._held:
            raise SelfDeadlock(f"a worker asked for lock {self.index} while it already held "
                               "it: it was never released after an earlier move, and the "
                               "worker would now wait for itself forever")
        try:
            self._sem.acquire(self._patience)
        except posix_ipc.BusyError:
            raise Deadlock(f"a worker waited {self._patience:g} s for lock {self.index} while "
                           f"holding lock(s) {self._held}: a deadlock") from None
        self._held.append(self.index)
        self._log.append(("acquire", self.index))
        return True

    def release(self) -> None:
        if self.index not in self._held:
            raise RuntimeError(f"lock {self.index} released, but this worker does not hold it")
        self._held.remove(self.index)
        self._log.append(("release", self.index))
        self._sem.release()

    def __enter__(self) -> _Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<lock {self.index}>"


def _mover(i: int, transfer: Any, accounts: Any, sems: list, plans: list, patience: float
           ) -> dict:
    held: list[int] = []
    log: list[tuple[str, int]] = []
    locks = [_Lock(k, s, held, log, patience) for k, s in enumerate(sems)]
    try:
        transfer(_Accounts(accounts, held), locks, plans[i])
    except (Deadlock, Unguarded) as e:
        return {"deadlock": str(e) if isinstance(e, Deadlock) else "",
                "unguarded": str(e) if isinstance(e, Unguarded) else "",
                "forgotten": isinstance(e, SelfDeadlock), "log": log, "held": list(held)}
    return {"deadlock": "", "unguarded": "", "forgotten": False, "log": log, "held": list(held)}


def _bank(transfer: Any, balances: list[int], plans: list[list[tuple[int, int, int]]],
          patience: float = 2.0) -> dict:
    """Run in the answer's process: one worker per plan, each calling transfer() once."""
    spread_over_cpus()
    n = len(balances)
    with objects.scope() as objs, Segment.create(8 * n, label="bank") as seg:
        accounts = seg.array(np.int64, n)
        accounts[:] = balances
        sems = [objs.semaphore(1, label=f"acct{k}") for k in range(n)]
        with _not_done():
            results = run_workers(_mover, len(plans), transfer, accounts, sems, plans,
                                  patience, timeout=30, show=False).values
        final = [int(v) for v in accounts]
        free = []
        for s in sems:
            try:
                s.acquire(0)
                s.release()
                free.append(True)
            except posix_ipc.BusyError:
                free.append(False)
        del accounts
    return {"final": final, "workers": results, "free": free}


def _expected(balances: list[int], plans: list[list[tuple[int, int, int]]]) -> list[int]:
    want = list(balances)
    for plan in plans:
        for src, dst, amount in plan:
            want[src] -= amount
            want[dst] += amount
    return want


def _run_bank(answer: Any, balances: list[int], plans: list) -> dict:
    got = guarded_call(_bank, answer, balances, plans, timeout=40).value
    # A worker that found its own lock never released is named first: which worker ran
    # into the forgotten lock first (it, or another that then waited for it) is chance.
    for w, r in sorted(enumerate(got["workers"]), key=lambda wr: not wr[1]["forgotten"]):
        if r["unguarded"]:
            raise CheckFailed(f"worker {w}: {r['unguarded']}. Every read and write of a "
                              "balance must happen while both accounts' locks are held")
        if r["deadlock"]:
            raise CheckFailed(f"worker {w}: {r['deadlock']}. Take the two locks of a move in "
                              "one global order, whatever the direction of the move")
    return got


def _plans_two() -> list[list[tuple[int, int, int]]]:
    return [[(0, 1, 1 + k % 3) for k in range(300)], [(1, 0, 2 + k % 2) for k in range(300)]]


def _plans_cycle() -> list[list[tuple[int, int, int]]]:
    return [[(w, (w + 1) % 3, 1) for _ in range(200)] for w in range(3)]


def _moves_of(log: list[tuple[str, int]]) -> list[tuple[int, ...]]:
    """The locks taken by each stretch between holding nothing and holding nothing again."""
    moves, taken, held = [], [], 0
    for what, k in log:
        if what == "acquire":
            taken.append(k)
            held += 1
        else:
            held -= 1
            if held == 0:
                moves.append(tuple(taken))
                taken = []
    return moves


@LOCK_ORDER.check("opposite moves between two accounts: all done, money conserved, no "
                  "deadlock",
                  hint="Both accounts of a move need their locks for the whole move. If one "
                       "worker takes 0 then 1 and the other 1 then 0, each can end up holding "
                       "one lock and waiting for the other.",
                  concept="A deadlock needs a cycle of processes, each holding a lock the next "
                          "one waits for. If every process takes its locks in one global "
                          "order, no cycle can form.")
def _(answer):
    balances, plans = [1_000, 1_000], _plans_two()
    got = _run_bank(answer, balances, plans)
    want = _expected(balances, plans)
    expect(got["final"] == want, f"after every move the balances are {got['final']}; expected "
                                 f"{want} (the total must stay {sum(balances)}; lost or "
                                 "double money means a move ran without both locks)")


@LOCK_ORDER.check("every move takes both accounts' locks, the lower index first",
                  hint="The order of the two locks must not depend on the direction of the "
                       "move: decide it from the two account numbers alone.",
                  concept="Lock ordering: number the locks and always take them in "
                          "increasing order, so that no process ever waits for a lower lock "
                          "while holding a higher one.")
def _(answer):
    for balances, plans in (([1_000, 1_000], _plans_two()), ([500] * 3, _plans_cycle())):
        got = _run_bank(answer, balances, plans)
        for w, (plan, r) in enumerate(zip(plans, got["workers"], strict=False)):
            moves = _moves_of(r["log"])
            expect(len(moves) == len(plan), f"worker {w} made {len(plan)} moves but took and "
                                            f"released its locks {len(moves)} times; each move "
                                            "takes its two locks once and releases both")
            for (src, dst, _), taken in zip(plan, moves, strict=False):
                want = (min(src, dst), max(src, dst))
                expect(taken == want, f"the move from account {src} to account {dst} took the "
                                      f"locks in the order {list(taken)}; expected "
                                      f"{list(want)}: both accounts' locks, the lower index "
                                      "first")


@LOCK_ORDER.check("three accounts in a cycle, three workers: no deadlock, money conserved",
                  hint="The cycle 0 -> 1 -> 2 -> 0 deadlocks if each worker takes the lock of "
                       "its source first; one global order breaks it.",
                  concept="With a global order, the worker holding the highest lock of the "
                          "cycle never waits for a lower one, so somebody can always finish.")
def _(answer):
    balances, plans = [500] * 3, _plans_cycle()
    got = _run_bank(answer, balances, plans)
    want = _expected(balances, plans)
    expect(got["final"] == want, f"after the cycle of moves the balances are {got['final']}; "
                                 f"expected {want}")


@LOCK_ORDER.check("every lock is released in the end",
                  hint="Is every lock you take released on every path, including when the "
                       "move raises? A with block does it for you.",
                  concept="A lock that is never released makes every later acquirer wait "
                          "forever, even the process that forgot it.")
def _(answer):
    balances, plans = [1_000, 1_000], _plans_two()
    got = _run_bank(answer, balances, plans)
    expect(got["final"] == _expected(balances, plans), "the balances are wrong (see the first "
                                                       "check)")
    still = [w for w, r in enumerate(got["workers"]) if r["held"]]
    expect(not still and all(got["free"]),
           "some locks were still taken when transfer() returned: "
           + ", ".join(f"worker {w} held {got['workers'][w]['held']}" for w in still))


# --- 05.deadlock_schedule ------------------------------------------------------------------

DEADLOCK = Exercise("05.deadlock_schedule", "Schedules that deadlock")


def _stuck(answer: Any, system: interleave.System, who: str) -> None:
    call = f"{who}()"
    schedule = schedule_of(answer, call=call)
    trace = run_schedule(system, schedule, call)
    if trace.finished:
        raise CheckFailed(f"{call} gave {schedule!r}: every process finished (x = "
                          f"{trace.value()}), no deadlock")
    expect(trace.deadlocked, f"{call} gave {schedule!r}: after it some process can still "
                             f"move ({', '.join(f'P{p}' for p in system.enabled(trace.state))})"
                             "; a deadlock is a state where none can")


@DEADLOCK.check("two locks in opposite orders: a schedule that ends in a deadlock",
                hint="A process blocks when the lock it asks for is held. What if each holds "
                     "one lock when it asks for its second?",
                concept="A deadlock is a cycle of waiting: every unfinished process waits for "
                        "a lock that another waiting process holds.")
def _(answer):
    two, _ = pair(answer, "deadlock_two", "deadlock_philosophers")
    _stuck(two, interleave.two_locks(), "deadlock_two")


@DEADLOCK.check("three philosophers: a schedule that ends in a deadlock",
                hint="A cycle: each process holds the lock on its left and waits for the one on "
                     "its right, which its neighbour holds. Processes are numbered from 0.",
                concept="A deadlock is a cycle of waiting: every unfinished process waits for "
                        "a lock that another waiting process holds.")
def _(answer):
    _, three = pair(answer, "deadlock_two", "deadlock_philosophers")
    _stuck(three, interleave.philosophers(3), "deadlock_philosophers")
