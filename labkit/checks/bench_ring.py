"""Checks for lesson 07's zero-copy ring (07.ring): shared memory that beats a pipe.

The check hands the answer its own produce and consume callbacks: they write
each message in place and check it where it lies, and note in shared memory
the check made (:class:`~labkit.checks.bench.Board`) who ran them, whether the
views lay in shared memory, and how far each side has got. So a ring whose
reader runs ahead, a slot reused too soon, or a copy through the kernel is
seen by what happened. The reference is the same messages through a pipe, in
alternation with the answer.
"""
from __future__ import annotations

import os
import statistics
import struct
import time
from typing import Any

from .. import checking
from ..checking import Attempt, Exercise, call, expect, expect_clean
from ..processes import start
from .bench import STALL, Board, in_shared_memory, watched

# --- 07.ring --------------------------------------------------------------------------

RING = Exercise("07.ring", "A zero-copy shared-memory ring that beats a pipe", timeout=120)
_RUNS, _RUNS_BEHIND = 5, 15   # runs of the ring and of a pipe each; more while the ring is behind


class _RingBoard(Board):
    FIELDS = ("t_first", "t_last", "consumed", "errors", "first_bad", "producer", "consumer",
              "produced_in_shm", "consumed_in_shm", "views_ok", "produced")


class _Produce:
    """Writes message i in place: its number in the first 8 bytes, then i % 251 throughout.

    With ``slow`` it takes that long over message 0: a consumer that does not wait
    for a full slot reads it before it is written.
    """

    def __init__(self, board: _RingBoard, size: int, slow: float = 0.0) -> None:
        self.board, self.size, self.slow = board, size, slow

    def __call__(self, i: int, view: Any) -> None:
        import numpy as np

        b = self.board
        if i == 0:
            b.set("t_first", time.perf_counter())
            b.set("producer", os.getpid())
            b.set("produced_in_shm", int(in_shared_memory(view)))
            time.sleep(self.slow)
        data = np.frombuffer(view, dtype=np.uint8)
        if data.size != self.size:
            b.set("views_ok", -1)
            return
        data[8:] = i % 251
        struct.pack_into("q", view, 0, i)
        b.set("produced", i + 1)


class _Consume:
    """Checks message i where it lies (header and a few bytes).

    With ``dawdle`` it holds message 1 until the producer has written the message
    that would reuse its slot, or ``dawdle`` seconds have passed: a producer that
    does not wait for a free slot overwrites it meanwhile, however busy the machine.
    """

    def __init__(self, board: _RingBoard, size: int, count: int, dawdle: float = 0.0,
                 slots: int = 1) -> None:
        self.board, self.size, self.count, self.dawdle = board, size, count, dawdle
        self.lap = 2 + slots     # produced messages once message 1 + slots is written

    def __call__(self, i: int, view: Any) -> None:
        b = self.board
        if i == 0:
            b.set("consumer", os.getpid())
            b.set("consumed_in_shm", int(in_shared_memory(view)))
        if i == 1 and self.dawdle:
            until = time.monotonic() + self.dawdle
            while b.produced < self.lap and time.monotonic() < until:
                time.sleep(0.001)
        ok = len(view) == self.size and struct.unpack_from("q", view, 0)[0] == i and all(
            view[k] == i % 251 for k in (8, self.size // 2, self.size - 1))
        if i != b.consumed:
            ok = False                # out of order, or a message skipped
        if not ok and not b.errors:
            b.set("first_bad", i)
        b.set("errors", b.errors + (not ok))
        b.set("consumed", b.consumed + 1)
        if i == self.count - 1:
            b.set("t_last", time.perf_counter())


def _pipe_reader(r: int, w: int, count: int, size: int, consume: Any) -> None:
    os.close(w)
    buf = memoryview(bytearray(size))
    for i in range(count):
        got = 0
        while got < size:
            n = os.readv(r, [buf[got:]])
            if not n:
                raise EOFError(f"the pipe ended {got} bytes into message {i}")
            got += n
        consume(i, buf)


def _pipe_transfer(count: int, size: int, slots: int, produce: Any, consume: Any) -> None:
    """The check's reference: the same messages through a pipe (two copies each)."""
    r, w = os.pipe()
    try:
        child = start(_pipe_reader, r, w, count, size, consume, timeout=120, show=False,
                      name="the check's pipe reader")
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    buf = memoryview(bytearray(size))
    with child:
        try:
            for i in range(count):
                produce(i, buf)
                sent = 0
                while sent < size:
                    sent += os.write(w, buf[sent:])
        finally:
            os.close(w)
        child.wait().raise_if_failed()  # the reader failed: say why


def _ring(answer: Any, count: int, size: int, slots: int, dawdle: float = 0.0,
          slow: float = 0.0, timeout: float | None = None) -> tuple[Attempt, _RingBoard]:
    """Run ring_transfer with the check's produce and consume, watching it move.

    A ring in which nothing moves for STALL seconds is stopped, and the check says
    who was waiting for what; the later checks do not run it again.
    """
    expect(callable(answer), f"expected a function, got {answer!r}")
    board = _RingBoard()
    attempt = watched(answer, (count, size, slots, _Produce(board, size, slow),
                                _Consume(board, size, count, dawdle, slots)),
                       lambda: board.produced + board.consumed,
                       lambda: _stalled(board.produced, board.consumed, count), timeout)
    return attempt, board


def _stalled(produced: int, consumed: int, count: int) -> str:
    head = f"nothing moved for {STALL:g} s and the ring was stopped: "
    if consumed == count:
        return (head + "every message had been consumed, but ring_transfer had not returned: "
                "does the consumer end, and is it waited for?")
    if produced == 0:
        return (head + "not one message had been written: is the producer waiting for a "
                "free slot, when none is free at the start?")
    if consumed == produced:
        return (head + f"{produced} messages were written and consumed, then the producer "
                "waited for a free slot that was never handed back: the consumer must hand "
                "each slot back once it has consumed it")
    return (head + f"{produced} messages were written but only {consumed} consumed: the "
            "consumer waited for a message it was never told about (announce each written "
            "slot)")


def _delivered(attempt: Attempt, board: _RingBoard, count: int) -> None:
    _ = attempt.value  # a failed check if the answer raised
    expect(board.views_ok == 0, "produce got a view of the wrong size: give it exactly "
                                "`size` bytes of the slot")
    expect(board.consumed == count, f"consume was called {board.consumed} times for {count} "
                                    "messages")
    expect(board.errors == 0, f"{board.errors} of {count} messages arrived wrong, the first "
                              f"being message {board.first_bad}: overwritten before it was "
                              "consumed, out of order, or not the slot it was written to")


_ZERO_COPY = ("Shared memory is fast because nothing is copied through the kernel: both "
              "processes read and write the same pages. A copy on either side, or a "
              "reader that works on bytes() of a slot, gives that up.")
_HAND_OFF = ("Two counting semaphores hand the slots back and forth: one counts the free "
             "slots (the producer waits on it), the other the written ones (the consumer "
             "waits on it). A slot is handed back only when its reader is done with it.")


@RING.check("every message arrives whole and in order",
            hint="Message i goes into slot i modulo the number of slots, each slot `size` "
                 "bytes long, and the consumer, a child process, takes them in the same "
                 "order.",
            concept=_HAND_OFF)
def _(answer):
    attempt, board = _ring(answer, 20, 1 << 16, 4)
    _delivered(attempt, board, 20)
    expect(board.consumer not in (0, board.producer), "produce and consume ran in the same "
                                                      "process: the consumer must be a child")
    board.close()


@RING.check("zero copy: produce and consume work inside the shared memory",
            hint="Hand produce and consume a view of the slot in the segment (a memoryview "
                 "slice), never a copy of its bytes.",
            concept=_ZERO_COPY)
def _(answer):
    attempt, board = _ring(answer, 6, 1 << 16, 2)
    _delivered(attempt, board, 6)
    expect(board.produced_in_shm == 1, "produce got memory that is not the shared segment: a "
                                       "copy that nobody else can see")
    expect(board.consumed_in_shm == 1, "consume got a copy of the message, not the slot in "
                                       "shared memory itself")
    board.close()


@RING.check("a slot is read only once written, and reused only once consumed",
            hint="The producer waits for a free slot before writing, the consumer for a "
                 "written one before reading; a slot becomes free only after consume has "
                 "returned.",
            concept=_HAND_OFF)
def _(answer):
    # a slow reader: a producer that does not wait for a free slot laps it
    attempt, board = _ring(answer, 8, 4096, 2, dawdle=0.3)
    _delivered(attempt, board, 8)
    board.close()
    attempt, board = _ring(answer, 5, 4096, 1)
    _delivered(attempt, board, 5)
    board.close()
    # a slow writer: a consumer that does not wait for a written slot reads it too soon
    attempt, board = _ring(answer, 3, 4096, 2, slow=0.1)
    _delivered(attempt, board, 3)
    board.close()


@RING.check("faster than a pipe with 1 MiB messages",
            hint="No copies and no system call per byte: produce and consume work in the "
                 "slots themselves; only the two semaphore operations per message remain.",
            concept=_ZERO_COPY)
def _(answer):
    count, size, slots = 32, 1 << 20, 4
    ring: list[float] = []
    pipe: list[float] = []
    # In turn, so that a busy moment of the machine hits both. A busy machine only ever slows
    # a run down, so the fastest run of each is the nearest to what the two can do; and while
    # the ring is behind, up to _RUNS_BEHIND runs each: an honest ring (twice a pipe's best
    # when undisturbed) needs one run that load left alone, and a slow ring never gets ahead.
    while len(ring) < _RUNS or (max(ring) <= max(pipe) and len(ring) < _RUNS_BEHIND):
        attempt, board = _ring(answer, count, size, slots, timeout=3 * checking.CALL_TIMEOUT)
        _delivered(attempt, board, count)
        ring.append(count * size / (board.t_last - board.t_first))
        board.close()
        ref = _RingBoard()
        reference = call(_pipe_transfer, count, size, slots, _Produce(ref, size),
                         _Consume(ref, size, count))
        _ = reference.value  # raises if the reference failed
        pipe.append(count * size / (ref.t_last - ref.t_first))
        ref.close()
    a, b = max(ring), max(pipe)
    medians = f"{statistics.median(ring) / 1e9:.2f} and {statistics.median(pipe) / 1e9:.2f}"
    expect(a > b, f"your ring moved at best {a / 1e9:.2f} GB/s, a pipe {b / 1e9:.2f} GB/s "
                  f"(the best of {len(ring)} runs each, taken in turn; medians {medians} GB/s)")


@RING.check("the segment, the semaphores and the child are gone afterwards",
            hint="Create the segment and the semaphores in with blocks, and wait for the "
                 "consumer before they end.",
            concept="Named objects outlive the processes that made them: whoever creates one "
                    "removes it, on every way out.")
def _(answer):
    attempt, board = _ring(answer, 4, 4096, 2)
    _delivered(attempt, board, 4)
    expect_clean(attempt)
    board.close()
