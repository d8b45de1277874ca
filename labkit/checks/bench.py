"""Checks for the exercises of lesson 07 (performance); the ring's are in checks/bench_ring.

Timings decide nothing here unless a check compares the answer with its own
reference, measured the same way, in fresh processes, in alternation with the
answer (so a busy moment of the machine hits both), with medians and generous
margins. What the answer does is observed through callbacks the check hands
it: they run inside the answer's processes and write what they see (how many
calls, in which process, on which CPU, at what time, whether the bytes were
right, whether they lay in shared memory) into an anonymous shared mapping
the check made before the call, so the answer's own report is never trusted.

Wrong answers are caught by what they did, never by being slow: an echo that
dawdles on marked messages shows whether a time covers the whole round trip,
the echo's own clock bounds the sum of the times, the figures fastest returns
are compared with what its own bench run gave it (noted in its process), and a
ring's reader that dawdles, or a writer that does, shows a slot reused too soon
or read too early.
"""
from __future__ import annotations

import contextlib
import math
import mmap
import os
import statistics
import struct
import time
from typing import Any

from .. import bench, bench_harness, checking
from ..checking import (
    Attempt,
    CheckFailed,
    CheckTimedOut,
    Exercise,
    NotDone,
    call,
    expect,
    expect_clean,
    launch,
)
from ..processes import start

# --- a notebook shared by the check and the answer's processes -------------------------


class Board:
    """Named 8-byte fields in an anonymous shared mapping, inherited through fork."""

    FIELDS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._mm = mmap.mmap(-1, 8 * len(self.FIELDS))   # MAP_SHARED: children write here

    def __getattr__(self, name: str) -> Any:
        fields = type(self).FIELDS
        if name in fields:
            kind = "d" if name.startswith("t_") else "q"
            return struct.unpack_from(kind, self._mm, 8 * fields.index(name))[0]
        raise AttributeError(name)

    def set(self, name: str, value: float) -> None:
        kind = "d" if name.startswith("t_") else "q"
        struct.pack_into(kind, self._mm, 8 * type(self).FIELDS.index(name), value)

    def close(self) -> None:
        self._mm.close()


def _mask(cpus: set[int]) -> int:
    return sum(1 << c for c in cpus)


def _cpus(mask: int) -> set[int]:
    return {c for c in range(64) if mask >> c & 1}


def _shared_ranges() -> list[tuple[int, int]]:
    """This process's shared-memory mappings (POSIX objects, or anonymous MAP_SHARED)."""
    ranges = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "/dev/shm/" in line or "/dev/zero (deleted)" in line or "anon_shmem" in line:
                    lo, hi = line.split()[0].split("-")
                    ranges.append((int(lo, 16), int(hi, 16)))
    except FileNotFoundError:
        pass
    return ranges


def _address(view: Any) -> int | None:
    import numpy as np

    try:
        return int(np.frombuffer(view, dtype=np.uint8, count=1).ctypes.data)
    except (TypeError, ValueError):
        return None


def in_shared_memory(view: Any) -> bool:
    addr = _address(view)
    return addr is not None and any(lo <= addr < hi for lo, hi in _shared_ranges())


# --- 07.round_trip --------------------------------------------------------------------

ROUND_TRIP = Exercise("07.round_trip", "Measure a round trip yourself", timeout=60)


class _EchoBoard(Board):
    FIELDS = ("calls", "pid", "cpus", "parent_cpus", "t_warm", "t_last")


_WARM_UP = 50
_SLOW = 0.002   # seconds the echo dawdles on a few marked messages


def _marked(n: int) -> list[int]:
    """Indices of the timed round trips whose echo dawdles ``_SLOW`` seconds."""
    return [n // 4, n // 2, 3 * n // 4]


class _Echo:
    """The echo an answer must call for each message; it notes who calls it, where, when.

    On the marked round trips it dawdles: a time that covers the whole round trip
    is then at least ``_SLOW`` seconds, whatever the load of the machine.
    """

    def __init__(self, board: _EchoBoard, n: int) -> None:
        self.board = board
        self.slow = {_WARM_UP + j for j in _marked(n)}
        self.last = _WARM_UP + n - 1

    def __call__(self, message: bytes) -> bytes:
        b = self.board
        k = b.calls
        if k == 0:
            b.set("pid", os.getpid())
            b.set("cpus", _mask(os.sched_getaffinity(0)))
            try:
                b.set("parent_cpus", _mask(os.sched_getaffinity(os.getppid())))
            except OSError:
                pass
        if k == _WARM_UP - 1:
            b.set("t_warm", time.perf_counter())
        if k in self.slow:
            time.sleep(_SLOW)
        if k == self.last:
            b.set("t_last", time.perf_counter())
        b.set("calls", k + 1)
        return message


def _echo_child(down_r: int, down_w: int, up_r: int, up_w: int, cpu: int, echo: Any) -> None:
    os.sched_setaffinity(0, {cpu})
    os.close(down_w)
    os.close(up_r)
    while message := os.read(down_r, 1):
        os.write(up_w, echo(message))


def _reference_round_trip(n: int, cpus: tuple[int, int], echo: Any) -> list[float]:
    """The check's own measurement: two pipes, a pinned child that calls echo, n timed."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    try:
        child = start(_echo_child, down_r, down_w, up_r, up_w, cpus[1], echo, timeout=60,
                      show=False, name="the check's echo")
    except BaseException:
        for fd in (down_r, down_w, up_r, up_w):
            os.close(fd)
        raise
    os.close(down_r)
    os.close(up_w)
    os.sched_setaffinity(0, {cpus[0]})
    times = []
    with child:
        try:
            for k in range(_WARM_UP + n):
                began = time.perf_counter_ns()
                os.write(down_w, b"x")
                os.read(up_r, 1)
                if k >= _WARM_UP:
                    times.append((time.perf_counter_ns() - began) / 1e9)
        finally:
            os.close(down_w)
            os.close(up_r)
        child.wait().raise_if_failed()  # the echo failed: say why
    return times


def _times(attempt: Attempt, n: int) -> list[float]:
    got = attempt.value
    expect(isinstance(got, (list, tuple)) and len(got) == n,
           f"round_trip returned {type(got).__name__} "
           f"{len(got) if isinstance(got, (list, tuple)) else got!r:.40}; expected a list of "
           f"{n} times")
    expect(all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
               and t > 0 for t in got), "every time must be a positive number of seconds")
    med = statistics.median(got)
    expect(med < 0.05, f"the median round trip is {med:g}: that is not seconds (did you "
                       "return nanoseconds? divide by 1e9)")
    expect(med > 2e-7, f"the median round trip is {med * 1e9:.0f} ns, faster than any two "
                       "processes can talk: time from before the write until after the read")
    return list(got)


def _run_round_trip(answer: Any, n: int, cpus: tuple[int, int]) -> tuple[Attempt, _EchoBoard]:
    expect(callable(answer), f"expected a function, got {answer!r}")
    board = _EchoBoard()
    attempt = watched(answer, (n, cpus, _Echo(board, n)), lambda: board.calls,
                       lambda: _still(board.calls, _WARM_UP + n))
    return attempt, board


def _still(calls: int, total: int) -> str:
    head = f"nothing happened for {STALL:g} s and round_trip was stopped: "
    if calls == total:
        return (head + f"all {total} round trips were done, but it had not returned: is the "
                "child still waiting for more input, because a write end of its pipe is "
                "still open somewhere (close yours before waiting for it)?")
    if calls == 0:
        return head + "echo was never called: did the child get the first message?"
    return (head + f"echo was called {calls} times of {total}, then nothing: one process "
            "waited for a message the other never sent (does the child write echo's reply "
            "back, one byte for one byte?)")


def _two_cpus() -> tuple[int, int]:
    mine = sorted(os.sched_getaffinity(0))
    return (mine[-2], mine[-1]) if len(mine) > 1 else (mine[0], mine[0])


_ROUND = ("A round trip is a message there and the answer back: two wake-ups of a sleeping "
          "process. Only a clock read just before sending and just after the answer is back "
          "sees both; warm-up runs first so that caches and page faults do not count.")


@ROUND_TRIP.check("n round trips, in seconds",
                  hint="Read a nanosecond clock around each timed round trip, skip the "
                       "warm-up, and convert to seconds before returning.",
                  concept=_ROUND)
def _(answer):
    cpu = _two_cpus()[1]
    attempt, board = _run_round_trip(answer, 300, (cpu, cpu))
    _times(attempt, 300)
    board.close()


@ROUND_TRIP.check("each time covers one whole round trip, and only that",
                  hint="Start the clock just before the write and stop it just after the "
                       "reply has been read, once per timed message, after the 50 untimed "
                       "ones.",
                  concept=_ROUND + " The check's echo dawdles on a few marked messages: "
                                   "their round trips must show it.")
def _(answer):
    cpu = _two_cpus()[1]
    n = 200
    attempt, board = _run_round_trip(answer, n, (cpu, cpu))
    times = _times(attempt, n)
    marks = _marked(n)
    if not all(times[j] >= _SLOW for j in marks):
        later = [j + _WARM_UP for j in marks if j + _WARM_UP < n]
        shifted = bool(later) and all(times[k] >= _SLOW for k in later)
        expect(not shifted, f"the echo dawdled {_SLOW * 1e3:g} ms on round trips "
                            f"{[_WARM_UP + j for j in marks]}, but your times show it 50 "
                            "places later: the 50 warm-up round trips were timed too")
        shown = [f"{times[j] * 1e6:.0f} µs" for j in marks]
        raise CheckFailed(f"the echo dawdled {_SLOW * 1e3:g} ms on timed round trips {marks}, "
                          f"but your times for them are {shown}: they did not include the "
                          "wait for the reply (timed one way only?)")
    span = board.t_last - board.t_warm
    total = sum(times[:-1])
    expect(total <= span + 1e-6 * n,
           f"your times add up to {total * 1e3:.1f} ms, but the echo saw all those round "
           f"trips within {span * 1e3:.1f} ms: each time must start anew at its own write "
           "(not at a fixed start, and not overlap the next)")
    board.close()


@ROUND_TRIP.check("every round trip goes through echo, in a child process",
                  hint="The child answers each message with what echo returns for it; the "
                       "parent only times.",
                  concept="The check's echo counts its calls and notes its process: a round "
                          "trip that skips it, or runs it in the timing process, does not "
                          "cross between processes.")
def _(answer):
    cpu = _two_cpus()[1]
    attempt, board = _run_round_trip(answer, 200, (cpu, cpu))
    _times(attempt, 200)
    expect(board.calls >= 200, f"echo was called {board.calls} times for 200 round trips")
    expect(board.pid not in (0, attempt.result.pid), "echo ran in the process that does the "
                                                     "timing; it must run in the child")
    board.close()


@ROUND_TRIP.check("each process runs on the CPU it was given",
                  hint="Pin each process (the timing parent and the echoing child) to its own "
                       "CPU of the pair, before the first message.",
                  concept="Unpinned, the scheduler moves the processes between CPUs, and the "
                          "time of a round trip jumps between a same-CPU hand-off and a "
                          "cross-CPU wake-up from run to run.")
def _(answer):
    cpus = _two_cpus()
    attempt, board = _run_round_trip(answer, 100, cpus)
    _times(attempt, 100)
    expect(_cpus(board.cpus) == {cpus[1]}, f"the child (where echo runs) may run on CPUs "
                                           f"{sorted(_cpus(board.cpus))}, expected only "
                                           f"{cpus[1]}: it was not pinned to cpus[1]")
    expect(_cpus(board.parent_cpus) == {cpus[0]},
           f"the timing process may run on CPUs {sorted(_cpus(board.parent_cpus))}, expected "
           f"only {cpus[0]}: it was not pinned to cpus[0]")
    board.close()


@ROUND_TRIP.check("the median agrees with the check's own measurement",
                  hint="Time only the round trip itself, not the fork, the warm-up or "
                       "printing; and one byte each way.",
                  concept=_ROUND)
def _(answer):
    cpu = _two_cpus()[1]
    mine, theirs = [], []
    for _ in range(3):   # alternate, so a busy moment of the machine hits both
        attempt, board = _run_round_trip(answer, 300, (cpu, cpu))
        mine.append(statistics.median(_times(attempt, 300)))
        board.close()
        ref = _EchoBoard()
        theirs.append(statistics.median(call(_reference_round_trip, 300, (cpu, cpu),
                                             _Echo(ref, 300)).value))
        ref.close()
    a, b = statistics.median(mine), statistics.median(theirs)
    expect(b / 4 <= a <= b * 6, f"your median round trip is {a * 1e6:.1f} µs, the check's "
                                f"own (two pipes, same CPU) {b * 1e6:.1f} µs: more than a "
                                "factor 4 to 6 apart")


@ROUND_TRIP.check("no zombie and no open descriptor is left behind",
                  hint="Close all four pipe ends (or your sockets) and wait for the child.",
                  concept="A child nobody waits for stays a zombie; a descriptor nobody "
                          "closes keeps its pipe alive.")
def _(answer):
    cpu = _two_cpus()[1]
    attempt, board = _run_round_trip(answer, 50, (cpu, cpu))
    _times(attempt, 50)
    expect_clean(attempt)
    board.close()


# --- 07.fastest -----------------------------------------------------------------------

FASTEST = Exercise("07.fastest", "Choose the fastest mechanism, and show it", timeout=120)


def _usable(size: int) -> set[str]:
    limit = bench_harness.mq_size_limit()
    return {m for m in bench.MECHANISMS if m != "mqueue" or 0 < size <= limit}


def _choice(attempt: Attempt, workload: dict) -> tuple[str, dict]:
    got = attempt.value
    expect(isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[1], dict),
           f"fastest returned {got!r:.80}; expected (mechanism, {{mechanism: seconds}})")
    choice, figures = got
    want = _usable(workload["size"])
    expect(set(figures) == want, f"figures for {sorted(figures)}; expected one for every "
                                 f"mechanism that can carry {workload['size']} bytes: "
                                 f"{sorted(want)}")
    expect(all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
               for v in figures.values()), "every figure must be a positive number of seconds")
    expect(choice == min(figures, key=figures.get),
           f"you chose {choice!r}, but by your own figures {min(figures, key=figures.get)!r} "
           "was fastest")
    return choice, figures


class _Readings(Board):
    """What the answer read from its own bench runs, per mechanism: the value and the size."""

    FIELDS = tuple(f"{what}_{m}" for m in bench.MECHANISMS
                   for what in ("t_stream", "stream_size", "t_round", "round_size"))


def _reading(answer: Any, readings: _Readings, workload: dict) -> Any:
    """Runs as the answer's process: note every figure it reads from a bench Sweep.

    The methods are replaced on the class in this process only, so however the
    answer imported bench, the check sees which measurement each figure came from.
    """
    per_message, round_trip = bench.Sweep.per_message, bench.Sweep.round_trip

    def noted_per_message(self: bench.Sweep, mechanism: str, size: int) -> float:
        value = per_message(self, mechanism, size)
        if mechanism in bench.MECHANISMS:
            readings.set(f"t_stream_{mechanism}", value)
            readings.set(f"stream_size_{mechanism}", size)
        return value

    def noted_round_trip(self: bench.Sweep, mechanism: str, q: float = 0.5) -> float:
        value = round_trip(self, mechanism, q)
        if mechanism in bench.MECHANISMS:
            readings.set(f"t_round_{mechanism}", value)
            readings.set(f"round_size_{mechanism}", self.latency_size)
        return value

    bench.Sweep.per_message = noted_per_message      # type: ignore[method-assign]
    bench.Sweep.round_trip = noted_round_trip        # type: ignore[method-assign]
    return answer(workload)


# The checks of one exercise run one after another in one process: each workload is
# measured once there, for the answer and for the reference, and the checks share it.
_measured: dict[tuple, Any] = {}


def _answered(answer: Any, workload: dict) -> tuple[str, dict]:
    return _answer_run(answer, workload)[0]


def _answer_run(answer: Any, workload: dict) -> tuple[tuple[str, dict], _Readings]:
    key = ("answer", id(answer), tuple(sorted(workload.items())))
    if key not in _measured:
        expect(callable(answer), f"expected a function, got {answer!r}")
        readings = _Readings()
        attempt = call(_reading, answer, readings, dict(workload),
                           timeout=2 * checking.CALL_TIMEOUT)
        # the answer is kept with its result, so that its id is not reused
        _measured[key] = (answer, (_choice(attempt, workload), readings))
    return _measured[key][1]


def _reference(workload: dict) -> dict[str, float]:
    key = ("reference", tuple(sorted(workload.items())))
    if key not in _measured:
        _measured[key] = _measure(workload)
    return _measured[key]


def _measure(workload: dict) -> dict[str, float]:
    """The check's own figures for the workload: seconds per message, or per round trip."""
    usable = [m for m in bench.MECHANISMS if m in _usable(workload["size"])]
    size, count = workload["size"], workload["count"]
    if workload["pattern"] == "request-response":
        s = bench.round_trips(usable, n=count, size=size, trials=3)
        return {m: s.round_trip(m) for m in usable}
    s = bench.sweep(usable, sizes=[size], trials=3, round_trips=0, total=size * count,
                    max_messages=count, baseline=False)
    return {m: s.per_message(m, size) for m in usable}


_LARGE = {"pattern": "one-way", "size": 1 << 20, "count": 16}
_SMALL = {"pattern": "request-response", "size": 64, "count": 300}

_FIGURES = ("A one-way stream is judged by its time per message (the sender never waits for "
            "the receiver); request and response by the round trip of one message of the "
            "workload's size. The same mechanism ranks differently in the two.")


@FASTEST.check("a choice, and a figure for every mechanism that can carry the workload",
               hint="Every mechanism the lesson measures gets a figure, except the message "
                    "queue when a message is larger than the queue's size limit.",
               concept=_FIGURES)
def _(answer):
    _answered(answer, _LARGE)


@FASTEST.check("large messages one way: the check's own measurement agrees",
               hint="For a one-way stream the figure is the time per message of a "
                    "throughput run, not a round trip.",
               concept=_FIGURES)
def _(answer):
    choice, _ = _answered(answer, _LARGE)
    ref = _reference(_LARGE)
    best = min(ref, key=ref.get)
    expect(ref[choice] <= 1.5 * ref[best],
           f"you chose {bench.LABELS[choice]}; the check measured it at "
           f"{ref[choice] * 1e6:.0f} µs per message, and {bench.LABELS[best]} at "
           f"{ref[best] * 1e6:.0f} µs")


@FASTEST.check("small requests and responses: the check's own measurement agrees",
               hint="For request and response the figure is a round trip of a message of "
                    "the workload's size, not a throughput run.",
               concept=_FIGURES)
def _(answer):
    choice, _ = _answered(answer, _SMALL)
    ref = _reference(_SMALL)
    best = min(ref, key=ref.get)
    expect(ref[choice] <= 2 * ref[best],
           f"you chose {bench.LABELS[choice]}; the check measured its round trip at "
           f"{ref[choice] * 1e6:.1f} µs, and {bench.LABELS[best]}'s at "
           f"{ref[best] * 1e6:.1f} µs")


def _from_readings(workload: dict, figures: dict, readings: _Readings) -> None:
    """Each figure must be what the answer's own bench run gave, read the right way."""
    size, stream = workload["size"], workload["pattern"] == "one-way"
    what = (f"a one-way stream of {size}-byte messages" if stream else
            f"request and response of {size} bytes")
    for m, figure in sorted(figures.items()):
        per_msg = getattr(readings, f"t_stream_{m}")
        round_trip = getattr(readings, f"t_round_{m}")
        if stream:
            expect(per_msg or not round_trip,
                   f"for {what} your figure for {m} was a round trip: a stream is judged by "
                   "its time per message")
            read, read_size = per_msg, getattr(readings, f"stream_size_{m}")
        else:
            expect(round_trip or not per_msg,
                   f"for {what} your figure for {m} was the time per message of a one-way "
                   "stream: request and response are judged by the round trip")
            read, read_size = round_trip, getattr(readings, f"round_size_{m}")
        if not read:
            continue
        expect(read_size == size, f"for {what} your figure for {m} was measured with "
                                  f"{read_size}-byte messages: measure the workload's size")
        ratio = figure / read
        expect(abs(ratio - 1) < 1e-6,
               f"for {what} your figure for {m} is {ratio:.3g} times what your own bench run "
               f"gave ({read:.3g} s){_unit_guess(ratio, workload['count'])}")


def _unit_guess(ratio: float, count: int) -> str:
    if abs(ratio / 1e6 - 1) < 0.01 or abs(ratio / 1e9 - 1) < 0.01:
        return ": that is not seconds"
    if abs(ratio / count - 1) < 0.01:
        return ": that is the whole run, not one message"
    return ""


@FASTEST.check("the figures are seconds per message, as measured",
               hint="Seconds, not microseconds or bytes per second; per message in a stream "
                    "for one-way, per round trip for request-response; not for the whole run.",
               concept=_FIGURES)
def _(answer):
    for workload in (_LARGE, _SMALL):
        (choice, figures), readings = _answer_run(answer, workload)
        if any(getattr(readings, f) for f in _Readings.FIELDS):
            _from_readings(workload, figures, readings)
            continue
        # measured without bench: compare with the check's own run, which follows closely
        # (a busy machine slows both; each is a median over three rounds of its own)
        a, b = figures[choice], _reference(workload)[choice]
        expect(b / 3 <= a <= b * 3,
               f"for {workload['pattern']} messages of {workload['size']} bytes your figure "
               f"for {choice} is {a:.3g} s, the check measured {b:.3g} s: more than a factor "
               "3 apart")


# --- watching an answer move --------------------------------------------------------


def watched(answer: Any, args: tuple, progress: Any, why: Any,
             timeout: float | None = None) -> Attempt:
    """``call(answer, *args)``, watching ``progress()`` while it runs.

    If it stands still for STALL seconds the answer is killed and the check
    fails with ``why()``; the later checks of the exercise do not run it again.
    """
    with launch(answer, *args, timeout=timeout) as running:
        since, seen = time.monotonic(), None
        while running.running:
            now, moved = time.monotonic(), progress()
            if moved != seen:
                since, seen = now, moved
            elif now - since > STALL:
                stopped = why()
                running.send_signal("SIGKILL")
                with contextlib.suppress(CheckFailed, NotDone):
                    running.finish()
                raise CheckTimedOut(stopped)
            time.sleep(0.005)
        return running.finish()


STALL = 3.0   # seconds an answer may stand still (the check's own pauses are shorter)
