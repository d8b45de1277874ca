"""Checks for the exercises of lesson 03 (shared memory).

Every answer runs through :func:`labkit.checking.call`, wrapped so that its
process also reports shared mappings still in place when the answer returned
(a NumPy or ctypes view kept alive, an ``mmap`` never closed), and, when the
answer raised, the names in ``/dev/shm`` at the moment the exception left it:
in a notebook the traceback keeps the answer's objects alive, so a segment that
only garbage collection would remove has leaked there, and the check must not
be fooled by a collection in its own process. The checker itself notes names
that appear during a call and stay (an answer whose process died). The
segments a check hands to an answer are made here with
:class:`labkit.shm.Segment`, and the check reads them through its own mapping,
in a process other than the answer's; a walker is run where the segment lands
at another address than in the builder's process.
"""
from __future__ import annotations

import ctypes
import functools
import gc
import mmap
import os
import signal
from dataclasses import dataclass
from typing import Any

import numpy as np
import posix_ipc

from .._janitor import unlink_name
from ..checking import Attempt, CheckFailed, Exercise, call, expect
from ..segment import Segment
from ..session import SESSION_PID, SHM_DIR, parse_lab_name
from ..waiting import wait_until
from ._shared import pair, shared_maps


class Reading(ctypes.Structure):
    """The record of 03.record (the exercise notebook defines the same)."""

    _fields_ = [("sensor", ctypes.c_int32), ("count", ctypes.c_uint32),
                ("value", ctypes.c_double), ("unit", ctypes.c_char * 8)]


class Node(ctypes.Structure):
    """A node of 03.linked_list: a value and the offset of the next node (0: none)."""

    _fields_ = [("value", ctypes.c_int64), ("next", ctypes.c_int64)]


SLOT = np.dtype([("pid", np.int64), ("total", np.int64)])


# --- running an answer and judging its hygiene -----------------------------------------


def _watched(answer: Any, *args: Any) -> tuple:
    """Run in the answer's process. ``("returned", value, mappings still in place)``, or
    ``("raised", error text, names in /dev/shm that the answer made and had not removed
    when its exception left it)``: plain data either way."""
    before, names = shared_maps(), _entries()
    try:
        value = answer(*args)
    except NotImplementedError:
        raise                         # not attempted yet: the harness says "not done"
    except BaseException as e:
        return "raised", f"{type(e).__name__}: {e}", sorted(_entries() - names)
    gc.collect()                      # views that are merely unreferenced do not count
    return "returned", value, sorted(shared_maps() - before)


def _elsewhere(answer: Any, name: str, *args: Any) -> tuple:
    """:func:`_watched`, in a process where the segment cannot land where it did in a
    sibling process: the free space a fresh fork would map it into is taken first."""
    size = os.stat(SHM_DIR / name.lstrip("/")).st_size
    taken = mmap.mmap(-1, size)       # the same size: the first free space that fits it
    try:
        return _watched(answer, name, *args)
    finally:
        taken.close()


def _entries() -> set[str]:
    """Entries of /dev/shm that an answer run from this session could have made.

    Lab names of other sessions (a concurrent test run, a stale object a test
    planted on purpose) and multiprocessing's own locks are never counted, and
    so never removed.
    """
    found = set()
    for entry in os.listdir(SHM_DIR) if SHM_DIR.is_dir() else []:
        owner = parse_lab_name(entry)
        if entry.startswith("sem.mp-") or (owner and owner[1] != SESSION_PID):
            continue
        found.add(entry)
    return found


@dataclass(frozen=True)
class _Outcome:
    """One call of an answer: what it did, and what it left."""

    attempt: Attempt
    leftover_names: tuple[str, ...]

    @property
    def _report(self) -> tuple:
        return self.attempt.value     # a failed check if the process died or a fork escaped

    @property
    def returned(self) -> bool:
        r = self.attempt.result
        return r.returned and not r.escaped and self._report[0] == "returned"

    @property
    def value(self) -> Any:
        self.expect_returned()
        return self._report[1]

    def expect_returned(self) -> None:
        """A failed check unless the call returned (when its value is not needed)."""
        how, value, _ = self._report
        if how == "raised":
            raise CheckFailed(f"your function raised {value}")

    @property
    def pid(self) -> int:
        return self.attempt.result.pid

    @property
    def problems(self) -> list[str]:
        problems = list(self.attempt.problems)
        r = self.attempt.result
        how, _, seen = self._report if r.returned and not r.escaped else ("", None, [])
        reported = " ".join(problems)         # names the answer's process already found left
        if how == "returned":
            problems += [f"a shared mapping was still in place when your function returned "
                         f"({_describe_map(line)}): close every mmap or segment, and do not "
                         "keep NumPy or ctypes views of it" for line in seen]
        elif how == "raised":
            problems += [f"shm /{name} was still there when your function raised; only "
                         "garbage collection removed it later, and in a notebook the "
                         "traceback keeps it alive, so the name leaks: unlink it on every "
                         "path (a with block or finally)"
                         for name in seen if f"shm /{name} " not in reported
                         and name not in self.leftover_names and not name.startswith("sem.")]
        problems += [f"shm /{name} was left behind (labkit removed it)"
                     for name in self.leftover_names]
        return problems


def _describe_map(line: str) -> str:
    parts = line.split(maxsplit=5)
    return parts[5] if len(parts) == 6 else line


def run_answer(fn: Any, *args: Any, timeout: float | None = None, where: Any = _watched
         ) -> _Outcome:
    """Call an answer function in its own process, watching its mappings and names
    (``run_answer(publish, seg.name, 7, 21.5, b"degC").expect_returned()``).

    ``where`` is :func:`_watched`, :func:`_elsewhere` for a call that must map the
    segment (named by the first argument) at another address than a sibling would, or
    :func:`_creating` to learn how the answer created its segments.
    """
    if not callable(fn):
        raise CheckFailed(f"expected a function, got {fn!r}")
    before = _entries()
    try:
        attempt = call(where, fn, *args, timeout=timeout)
    finally:
        leftovers = sorted(_entries() - before)
        for entry in leftovers:
            if entry.startswith("sem."):
                unlink_name("sem", "/" + entry[4:])
            else:
                unlink_name("shm", "/" + entry)
    return _Outcome(attempt, tuple(e for e in leftovers if not e.startswith("sem.")))


def expect_tidy(outcome: _Outcome, who: str) -> None:
    """Fail unless the call left nothing behind (names, mappings, descriptors, children)."""
    problems = outcome.problems
    expect(not problems, f"{who} did not clean up: " + "; ".join(problems))


def _check_segment(size: int) -> Segment:
    return Segment.create(size, label="check")


# --- 03.record ---------------------------------------------------------------------------

RECORD = Exercise("03.record", "A record in a named segment, across processes")


def _record_of(seg: Segment) -> tuple:
    r = Reading.from_buffer_copy(seg.buf)
    return (r.sensor, r.count, r.value, r.unit)


def _what_went_wrong(got: tuple, want: tuple) -> str:
    if got == (0, 0, 0.0, b""):
        return (": nothing reached shared memory; were the fields set on a copy (bytes, "
                "from_buffer_copy) instead of a view of the mapping?")
    if got[0] != want[0] or got[2] != want[2]:
        return (": the bytes are not laid out as Reading (sensor at byte 0, count at 4, value "
                "at 8, unit at 16)")
    return ""


def _fields(t: tuple) -> str:
    return f"sensor={t[0]!r}, count={t[1]!r}, value={t[2]!r}, unit={t[3]!r}"


_LAYOUT = ("Shared memory is only bytes: two programs understand each other because they "
           "agree on a layout, here the Reading structure at offset 0, which says which bytes "
           "hold which field and how.")


@RECORD.check("publish writes the record where a reader expects it",
              hint="Attach the segment by its name, lay a Reading over its first bytes, and "
                   "set the fields through that view.", concept=_LAYOUT)
def _(answer):
    publish, _ = pair(answer, "publish", "read_record")
    with _check_segment(ctypes.sizeof(Reading)) as seg:
        run_answer(publish, seg.name, 7, 21.5, b"degC").expect_returned()
        got = _record_of(seg)
    want = (7, 1, 21.5, b"degC")
    expect(got == want, f"after publish(name, 7, 21.5, b'degC') on a fresh segment, another "
                        f"process reads {_fields(got)}; expected {_fields(want)}"
           + _what_went_wrong(got, want))


@RECORD.check("publishing twice counts 2 and keeps the latest values",
              hint="count counts the publishes: add one to what the segment already holds; "
                   "the other fields are overwritten.", concept=_LAYOUT)
def _(answer):
    publish, _ = pair(answer, "publish", "read_record")
    with _check_segment(ctypes.sizeof(Reading)) as seg:
        run_answer(publish, seg.name, 1, 1.0, b"V").expect_returned()
        run_answer(publish, seg.name, 2, -0.5, b"mV").expect_returned()
        got = _record_of(seg)
    want = (2, 2, -0.5, b"mV")
    expect(got == want, f"after two publishes (sensor 1, then sensor 2 with -0.5 mV) the "
                        f"segment holds {_fields(got)}; expected {_fields(want)}"
           + (": count must say how many times the record was published, so add 1 to what "
              "the segment holds" if got[1] != 2 else ""))


@RECORD.check("read_record reads a record another process wrote",
              hint="Attach read-only and copy the record out of the mapping; return plain "
                   "values, not a view.",
              concept="A view into a mapping is only valid while the mapping is; a copy "
                      "survives the detach.")
def _(answer):
    _, read_record = pair(answer, "publish", "read_record")
    with _check_segment(ctypes.sizeof(Reading)) as seg:
        record = seg.struct(Reading)
        record.sensor, record.count, record.value, record.unit = 3, 5, -1.25, b"kPa"
        del record
        got = run_answer(read_record, seg.name).value
    want = (3, 5, -1.25, b"kPa")
    expect(isinstance(got, (tuple, list)) and tuple(got) == want,
           f"read_record returned {got!r}; expected the tuple {want!r} "
           "(sensor, count, value, unit, with unit as bytes)")


@RECORD.check("written by publish in one process, read by read_record in another",
              hint="Both functions must use the same layout: the Reading structure at "
                   "offset 0.", concept=_LAYOUT)
def _(answer):
    publish, read_record = pair(answer, "publish", "read_record")
    with _check_segment(ctypes.sizeof(Reading)) as seg:
        run_answer(publish, seg.name, 11, 3.5, b"Hz").expect_returned()
        got = run_answer(read_record, seg.name).value
    want = (11, 1, 3.5, b"Hz")
    expect(isinstance(got, (tuple, list)) and tuple(got) == want,
           f"publish(name, 11, 3.5, b'Hz') then read_record(name) gave {got!r}; "
           f"expected {want!r}")


@RECORD.check("both leave the segment to its owner and clean up",
              hint="Detach when you are done (leave the with block, or close the mapping and "
                   "the descriptor); never unlink a segment you did not create.",
              concept="Attaching and detaching are this process's business; the name belongs "
                      "to the creator, and other processes still use it.")
def _(answer):
    publish, read_record = pair(answer, "publish", "read_record")
    with _check_segment(ctypes.sizeof(Reading)) as seg:
        for fn, args, who in ((publish, (seg.name, 4, 2.0, b"s"), "publish"),
                              (read_record, (seg.name,), "read_record")):
            outcome = run_answer(fn, *args)
            outcome.expect_returned()
            expect(os.path.exists(seg.path), f"the segment no longer exists after {who}: it "
                   "belongs to the caller; detach from it, do not unlink it")
            expect_tidy(outcome, who)


# --- 03.parallel_sum ---------------------------------------------------------------------

PARALLEL_SUM = Exercise("03.parallel_sum", "A parallel sum into disjoint slots")


def _sum_case(answer: Any, data: np.ndarray, n: int) -> tuple[_Outcome, Any, Any]:
    outcome = run_answer(answer, data, n)
    got = outcome.value
    expect(isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], (list, tuple)),
           f"expected (total, slots) with slots a list of (pid, total) pairs, got {got!r}")
    total, slots = got
    expect(len(slots) == n and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in slots),
           f"expected {n} slots, one (pid, total) pair per worker, got {slots!r}")
    return outcome, total, [(int(p), int(t)) for p, t in slots]


def _parts(data: np.ndarray, n: int) -> list[int]:
    return [int(part.sum()) for part in np.array_split(data, n)]


@PARALLEL_SUM.check("the total is right (4 workers, 100,001 numbers)",
                    hint="Add up the slot totals after every worker has ended.")
def _(answer):
    data = np.random.default_rng(3).integers(-10**6, 10**6, 100_001)
    _, total, _ = _sum_case(answer, data, 4)
    expect(total == int(data.sum()), f"parallel_sum returned total {total!r}; the numbers "
                                     f"add up to {int(data.sum())}")


@PARALLEL_SUM.check("each slot holds its part's sum, written by its own worker process",
                    hint="Worker i adds up part i of np.array_split and writes its own pid and "
                         "that sum into slot i of an array that lives in shared memory.",
                    concept="A fork copies the parent's memory: after it, a plain NumPy array "
                            "is private to each process. Only a shared mapping is seen by all.")
def _(answer):
    data = np.random.default_rng(4).integers(0, 1000, 10_001)
    outcome, _, slots = _sum_case(answer, data, 4)
    totals, pids = [t for _, t in slots], [p for p, _ in slots]
    want = _parts(data, 4)
    if totals != want and not any(totals):
        raise CheckFailed(f"the slot totals came back as {totals}, but the parts sum to {want}: "
                          "the workers wrote into their own copies, not into shared memory")
    expect(totals == want, f"the slot totals are {totals}; the parts "
                           f"np.array_split(data, 4) sum to {want}")
    expect(len(set(pids)) == 4 and outcome.pid not in pids and 0 not in pids,
           f"the slots carry the pids {pids}: expected four different worker processes, none "
           f"of them the process that called parallel_sum ({outcome.pid})")


@PARALLEL_SUM.check("one worker, and more workers than numbers",
                    hint="np.array_split gives empty parts when there are more workers than "
                         "numbers; their sum is 0.")
def _(answer):
    data = np.arange(1, 11)
    for d, n in ((data, 1), (data[:5], 7)):
        _, total, slots = _sum_case(answer, d, n)
        want = _parts(d, n)
        expect(total == int(d.sum()) and [t for _, t in slots] == want,
               f"parallel_sum({d.tolist()}, {n}) gave total {total} and slot totals "
               f"{[t for _, t in slots]}; expected {int(d.sum())} and {want}")


@PARALLEL_SUM.check("nothing is left behind: no segment, mapping, descriptor or child",
                    hint="Create the slots' segment in a with block, wait for every worker, "
                         "and return plain ints copied out of shared memory, not views.",
                    concept="A view (a NumPy array or a ctypes object over the mapping) keeps "
                            "the mapping alive as long as the view lives.")
def _(answer):
    outcome, _, _ = _sum_case(answer, np.arange(100), 3)
    expect_tidy(outcome, "parallel_sum")


# --- 03.linked_list ----------------------------------------------------------------------

LINKED_LIST = Exercise("03.linked_list", "An offset-based linked list across processes")

_OFFSETS = ("Each process maps a segment wherever its own address space has room, so the same "
            "node has a different address in each; its offset from the start of the segment "
            "is the same everywhere.")


def _list_segment(n: int) -> Segment:
    return _check_segment(8 + 16 * max(2 * n, 1))


def _walk_offsets(seg: Segment) -> list[int]:
    """Follow the list the way the exercise defines it; fail clearly on a bad offset."""
    values: list[int] = []
    where = "the header (offset 0)"
    offset = ctypes.c_int64.from_buffer_copy(seg.buf, 0).value
    while offset:
        if not (8 <= offset <= seg.size - 16) or offset % 8:
            looks = (" It looks like an address in the builder's process: store offsets from "
                     "the start of the segment instead." if offset > seg.size else "")
            raise CheckFailed(f"{where} points to {offset:#x}, which is not the offset of a "
                              f"node inside the segment ({seg.size} bytes; nodes start at "
                              f"offset 8 or later, on a multiple of 8).{looks}")
        if len(values) > seg.size // 16:
            raise CheckFailed(f"the list never ends: after {len(values)} nodes it is still "
                              "going (a next offset points back into the list; the last node's "
                              "next must be 0)")
        node = Node.from_buffer_copy(seg.buf, offset)
        values.append(node.value)
        where = f"node {len(values) - 1} (offset {offset})"
        offset = node.next
    return values


def _lay_out(seg: Segment, values: list[int], seed: int) -> None:
    """Write a list with the nodes in a shuffled order, as any builder might."""
    slots = np.random.default_rng(seed).permutation(max(2 * len(values), 1))[:len(values)]
    offsets = [8 + 16 * int(s) for s in slots]
    for value, here, after in zip(values, offsets, [*offsets[1:], 0], strict=False):
        node = seg.struct(Node, here)
        node.value, node.next = value, after
        del node
    seg.struct(ctypes.c_int64).value = offsets[0] if offsets else 0


@LINKED_LIST.check("build_list stores offsets that another process can follow",
                   hint="Offset 0 holds the offset of the first node; each node's next holds "
                        "the offset of the following node, 0 for the last. Offsets count from "
                        "the start of the segment: never store an address.", concept=_OFFSETS)
def _(answer):
    build, _ = pair(answer, "build_list", "walk_list")
    values = [5, -3, 8, 2**40]
    with _list_segment(len(values)) as seg:
        run_answer(build, seg.name, values).expect_returned()
        got = _walk_offsets(seg)
    expect(got == values, f"after build_list(name, {values}) another process walking the "
                          f"offsets finds {got}")


@LINKED_LIST.check("walk_list follows the offsets, wherever the nodes are",
                   hint="Start at the offset stored at 0; read the Node at that offset of your "
                        "own mapping, take its value, move to its next; stop at 0. The nodes "
                        "need not be in order.", concept=_OFFSETS)
def _(answer):
    _, walk = pair(answer, "build_list", "walk_list")
    values = [10, 20, 30, 40, 50, 60]
    with _list_segment(len(values)) as seg:
        _lay_out(seg, values, seed=7)
        outcome = run_answer(walk, seg.name)
        if not outcome.returned and outcome.attempt.result.status.signal_name == "SIGSEGV":
            raise CheckFailed("the process running walk_list was killed by SIGSEGV: it used a "
                              "stored number as an address. They are offsets from the start "
                              "of the segment, to be read from your own mapping")
        got = outcome.value
    expect(isinstance(got, list) and got == values,
           f"walk_list returned {got!r} for a list holding {values} (its nodes stored out of "
           "order in the segment)")


@LINKED_LIST.check("an empty list has a head of 0, both ways",
                   hint="An empty list is a header of 0, and walking it gives an empty list.")
def _(answer):
    build, walk = pair(answer, "build_list", "walk_list")
    with _list_segment(0) as seg:
        _lay_out(seg, [], seed=0)
        got = run_answer(walk, seg.name).value
        expect(got == [], f"walk_list returned {got!r} for an empty list (0 at offset 0)")
        seg.buf[:8] = b"\xff" * 8     # garbage, which build_list must overwrite
        run_answer(build, seg.name, []).expect_returned()
        head = ctypes.c_int64.from_buffer_copy(seg.buf, 0).value
    expect(head == 0, f"build_list(name, []) left {head:#x} at offset 0; expected 0")


@LINKED_LIST.check("built in one process, walked in another that maps it elsewhere, and "
                   "nothing left behind",
                   hint="Neither function unlinks the segment (the caller owns it); both detach "
                        "and keep no views. And the list must make sense wherever the walking "
                        "process maps the segment.", concept=_OFFSETS)
def _(answer):
    build, walk = pair(answer, "build_list", "walk_list")
    values = list(range(100, 120))
    with _list_segment(len(values)) as seg:
        built = run_answer(build, seg.name, values)
        built.expect_returned()
        expect(os.path.exists(seg.path), "the segment no longer exists after build_list: it "
                                         "belongs to the caller; detach from it, do not "
                                         "unlink it")
        walked = run_answer(walk, seg.name, where=_elsewhere)
        if not walked.returned and walked.attempt.result.status.signal_name == "SIGSEGV":
            raise CheckFailed("walk_list was killed by SIGSEGV in a process that maps the "
                              "segment at another address than build_list's did: the list "
                              "holds addresses, which mean nothing there; store offsets")
        got = walked.value
        expect(got == values, f"build_list then walk_list, in a process that maps the segment "
                              f"at another address, gave {got!r}; expected {values}"
               + ("" if got == values else ": an address is only valid in the process that "
                  "took it; the list must hold offsets from the start of the segment"))
        expect(os.path.exists(seg.path), "the segment no longer exists: it belongs to the "
                                         "caller; detach from it, do not unlink it")
        expect_tidy(built, "build_list")
        expect_tidy(walked, "walk_list")


# --- 03.lifecycle ------------------------------------------------------------------------

LIFECYCLE = Exercise("03.lifecycle", "Create, share and destroy, even when a worker fails",
                     timeout=60.0)  # six calls; the one that checks concurrency may take 10 s

_NOT_GC = ("Garbage collection is not cleanup: while an exception's traceback is kept (a "
           "notebook keeps the last one), it keeps your segment object alive, so a name you "
           "did not unlink yourself stays in /dev/shm.")


def _stamp(i: int, name: str) -> None:
    """A worker that writes i + 1 into byte i."""
    with Segment.attach(name) as seg:
        seg.buf[i] = i + 1


def _report(i: int, name: str) -> None:
    """Worker 0 writes the segment's mode (2 bytes) and its name from byte 16."""
    if i == 0:
        with Segment.attach(name) as seg:
            mode = os.stat(f"{SHM_DIR}{name if name.startswith('/') else '/' + name}").st_mode
            seg.buf[0:2] = (mode & 0o7777).to_bytes(2, "little")
            encoded = name.encode()[:200]
            seg.buf[16:16 + len(encoded)] = encoded


def _meet(i: int, name: str, count: int) -> None:
    """Say "here" in byte i, wait for all ``count`` workers, then mark byte count + i."""
    with Segment.attach(name) as seg:
        seg.buf[i] = 1
        if wait_until(lambda: all(seg.buf[:count]), 1.5, None, every=0.002):
            seg.buf[count + i] = 1


def _fails(i: int, name: str, how: str) -> None:
    """Worker 1 fails (raises, or is killed); the others write as _stamp does."""
    if i == 1:
        if how == "raise":
            raise ValueError("worker 1 fails on purpose")
        os.kill(os.getpid(), signal.SIGKILL)
    _stamp(i, name)


@LIFECYCLE.check("four workers write into one segment, and you return what they wrote",
                 hint="Create the segment, start all the workers with its name, wait for all "
                      "of them, and return a copy of its bytes, made before the segment goes.")
def _(answer):
    got = run_answer(answer, 4096, _stamp, 4).value
    want = bytes([1, 2, 3, 4]) + bytes(4092)
    expect(isinstance(got, bytes) and len(got) == 4096,
           f"expected the segment's 4096 bytes as bytes, got {type(got).__name__} of "
           f"length {len(got) if hasattr(got, '__len__') else '?'}")
    expect(got == want, f"the first bytes came back as {list(got[:8])}; each worker i wrote "
                        f"i + 1 into byte i, so expected {list(want[:8])}")


def _creating(answer: Any, *args: Any) -> tuple:
    """:func:`_watched`, noting for each shared memory object the answer's process creates
    through posix_ipc (labkit's Segment included) whether it asked for O_EXCL; on return
    the value is paired with that list."""
    real, exclusive = posix_ipc.SharedMemory, []

    def recording(name: Any, flags: int = 0, *more: Any, **kwargs: Any) -> Any:
        if flags & posix_ipc.O_CREAT:
            exclusive.append(bool(flags & posix_ipc.O_EXCL))
        return real(name, flags, *more, **kwargs)

    posix_ipc.SharedMemory = recording
    try:
        how, value, seen = _watched(answer, *args)
    finally:
        posix_ipc.SharedMemory = real
    return (how, (value, exclusive), seen) if how == "returned" else (how, value, seen)


@LIFECYCLE.check("the segment is private: created exclusively, mode 0600, a fresh name each "
                 "time",
                 hint="shm.Segment.create does all three; by hand, create exclusively, with "
                      "mode 0600 and a name from objects.lab_name.",
                 concept="A name in /dev/shm is visible to every user: a predictable one can "
                         "be taken or planted first, and a lax mode lets others read it.")
def _(answer):
    names = []
    for _ in range(2):
        got, exclusive = run_answer(answer, 4096, _report, 1, where=_creating).value
        expect(all(exclusive), "the segment was created with O_CREAT but without O_EXCL: had "
                               "someone made that name first, you would have opened their "
                               "object instead of failing; create it exclusively")
        mode = int.from_bytes(got[0:2], "little")
        expect(mode == 0o600, f"the segment had mode {mode:04o}; only its owner should be able "
                              "to open it: 0600 (and create it with O_CREAT | O_EXCL)")
        names.append(got[16:].rstrip(b"\0").decode(errors="replace"))
    expect(names[0] != names[1], f"both calls used the name {names[0]!r}: a fixed name can be "
                                 "taken (or planted) by someone else; make a fresh one each time")


@LIFECYCLE.check("the workers run at the same time",
                 hint="Start all the workers before waiting for any, not one after the other.")
def _(answer):
    got = run_answer(answer, 64, functools.partial(_meet, count=3), 3, timeout=10).value
    met = list(got[3:6])
    expect(met == [1, 1, 1], f"only the workers {[i for i, m in enumerate(met) if m]} saw all "
                             "three at once (each waited 1.5 s for the others): they did not "
                             "run at the same time")


@LIFECYCLE.check("a worker that raises: the segment is still destroyed, and you raise",
                 hint="Put the cleanup where it runs on every path, and let the failure out: "
                      "asking the workers' results for their values raises if one failed.",
                 concept=_NOT_GC)
def _(answer):
    outcome = run_answer(answer, 4096, functools.partial(_fails, how="raise"), 3)
    expect(not outcome.returned, "worker 1 raised ValueError, but your function returned "
                                 "normally: after cleaning up, raise, so the caller knows")
    expect(not outcome.problems, "when a worker raised, your function did not clean up: "
           + "; ".join(outcome.problems))


@LIFECYCLE.check("a worker that is killed: the segment is still destroyed, and you raise",
                 hint="A worker killed by a signal returns nothing; its status says how it "
                      "ended. Treat it as a failure, after cleaning up.", concept=_NOT_GC)
def _(answer):
    outcome = run_answer(answer, 4096, functools.partial(_fails, how="kill"), 3)
    expect(not outcome.returned, "worker 1 was killed by SIGKILL, but your function returned "
                                 "normally: after cleaning up, raise, so the caller knows")
    expect(not outcome.problems, "when a worker was killed, your function did not clean up: "
           + "; ".join(outcome.problems))


@LIFECYCLE.check("nothing is left behind after a normal run",
                 hint="Every segment unlinked, every mapping closed, every worker waited for.")
def _(answer):
    expect_tidy(run_answer(answer, 4096, _stamp, 2), "share_and_destroy")


# --- 03.results_table (debugging) --------------------------------------------------------

RESULTS_TABLE = Exercise("03.results_table", "The workers' table reads as garbage",
                         kind="debug")


class Row(ctypes.Structure):
    """A row of 03.results_table, C's native layout: 4 bytes of padding after ``worker``."""

    _fields_ = [("worker", ctypes.c_int32), ("count", ctypes.c_int64),
                ("mean", ctypes.c_double)]


_ROWS = ("Two programs that share bytes must agree on every byte: where each field starts, "
         "how wide it is, and the padding between fields. A format string is a layout: a "
         "different prefix or a different stride is a different layout.")


def _rows_of(seg: Segment, n: int) -> list[tuple]:
    rows = (Row * n).from_buffer_copy(seg.buf)
    return [(r.worker, r.count, r.mean) for r in rows]


def _table_segment(n: int) -> Segment:
    return _check_segment(ctypes.sizeof(Row) * n)


_LAYOUT_SAID = ("row i at byte 24 * i: worker, 4 bytes of padding, count at byte 8, mean at "
                "byte 16")


def _as_rows(got: Any) -> Any:
    """What collect returned, as a list of tuples where it is a list of rows."""
    if isinstance(got, list) and all(isinstance(r, (tuple, list)) for r in got):
        return [tuple(r) for r in got]
    return got


def _collected(collect: Any, seg: Segment, n: int, after: str) -> _Outcome:
    """Call collect on the table; fail unless it returns the rows the table holds."""
    want = _rows_of(seg, n)
    outcome = run_answer(collect, seg.name, n)
    got = outcome.value
    expect(_as_rows(got) == want,
           f"collect(name, {n}) returned {got!r} {after}; expected {want}: collect does not "
           f"read the table's layout ({_LAYOUT_SAID})")
    return outcome


@RESULTS_TABLE.check("collect reads rows written in the table's layout",
                     hint="Set collect's offsets and sizes beside the statement's layout.",
                     concept=_ROWS)
def _(answer):
    _, collect = pair(answer, "report", "collect")
    with _table_segment(3) as seg:
        rows = (Row * 3).from_buffer(seg.buf)
        for row, (worker, count, mean) in zip(rows, [(0, 10, 1.5), (1, 20, 2.5),
                                                     (2, 30, -3.25)], strict=True):
            row.worker, row.count, row.mean = worker, count, mean
        del rows, row
        _collected(collect, seg, 3, "for rows another process wrote in the table's layout")


@RESULTS_TABLE.check("report writes the table's layout, and collect reads it back",
                     hint="Another program reads the table too: the bytes report writes must "
                          "follow the statement's layout, not merely agree with collect.",
                     concept=_ROWS)
def _(answer):
    report, collect = pair(answer, "report", "collect")
    want = [(0, 0, 0.0), (1, 5, 2.5), (2, 7, -1.0)]
    with _table_segment(3) as seg:
        for row in want[1:]:
            run_answer(report, seg.name, *row).expect_returned()
        got = _rows_of(seg, 3)
        expect(got == want, f"after report(name, 1, 5, 2.5) and report(name, 2, 7, -1.0), "
                            f"another process reading the table's layout ({_LAYOUT_SAID}) "
                            f"finds rows {got}; expected {want}: report must write that layout")
        _collected(collect, seg, 3, "after those two reports")


@RESULTS_TABLE.check("report and collect leave the segment to its owner, clean",
                     hint="Detach when you are done, keep no views, and never unlink a segment "
                          "you did not create.")
def _(answer):
    report, collect = pair(answer, "report", "collect")
    with _table_segment(4) as seg:
        outcomes = [run_answer(report, seg.name, i, 100 + i, i / 4) for i in range(4)]
        outcomes.append(_collected(collect, seg, 4, "after four reports"))
        expect(os.path.exists(seg.path), "the segment no longer exists after collect: it "
                                         "belongs to the caller; detach, do not unlink it")
        for outcome, who in zip(outcomes, ["report"] * 4 + ["collect"], strict=True):
            expect_tidy(outcome, who)
