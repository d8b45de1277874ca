"""Helpers for tests: a notebook's answer functions, the checks an answer fails, a
single-producer ring buffer's producer and consumer, and stopping a server process."""
from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def load_answers(relative: str) -> dict:
    """A notebook's names, defined as the grader defines them (labkit.answers.definitions).

    >>> load_answers("solutions/00_processes.ipynb")["exit_code_of"]  # doctest: +SKIP
    """
    from labkit.answers import define, definitions

    return define(definitions(nbformat.read(ROOT / relative, as_version=4).cells))


def failures(exercise: str, answer) -> dict[str, str]:
    """{check name: message} of the checks an answer fails."""
    from labkit.checking import FAILED, run_checks

    return {r.check: r.message for r in run_checks(exercise, answer) if r.status == FAILED}


# A bounded buffer's producer and consumer with the two counting semaphores and no mutex:
# right for one producer and one consumer (lesson 05), wrong for more.


def spsc_producer(ring, items):
    for item in items:
        ring.empty.acquire()
        ring.slots[ring.tail.value % ring.capacity] = item
        ring.tail.value += 1
        ring.full.release()


def spsc_consumer(ring, count):
    got = []
    for _ in range(count):
        ring.full.acquire()
        got.append(int(ring.slots[ring.head.value % ring.capacity]))
        ring.head.value += 1
        ring.empty.release()
    return got


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``grace`` seconds; always reaped.

    >>> stop_process(subprocess.Popen(["sleep", "60"]), grace=5)
    """
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
