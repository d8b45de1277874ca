"""Lesson 06's check machinery (its wrong answers are tests/mutants/06_message_passing.py;
tests/test_checks.py runs the solutions): the queues an answer makes are found whatever their
names, even where /dev/mqueue is not mounted, and none outlives a check."""
from __future__ import annotations

import os
import secrets

import posix_ipc
import pytest
from helpers import load_answers

from labkit import mq
from labkit.checking import FAILED, NOT_RUN, run_checks
from labkit.checks import mq as checks
from labkit.checks import mq_squares as squares_checks

SOLVED = load_answers("solutions/06_message_passing.ipynb")


def test_a_queue_a_process_holds_open_is_seen_by_its_name():
    with mq.queue(1, 64) as q:
        assert q.name in checks._queue_fds(os.getpid())
    assert not checks._exists(q.name)


def test_a_queue_with_a_name_of_its_own_is_removed_and_reported():
    name = f"/ipclab_test_{os.getpid()}_{secrets.token_hex(3)}"
    posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=0o600).close()
    made = checks._Queues()
    made.seen.add(name)
    assert made.remove() == [name]
    assert not checks._exists(name)


def test_the_mode_of_a_queue_is_read_from_its_descriptor():
    with mq.queue(1, 64) as q:
        assert checks._queue_mode(q) == 0o600


def test_the_queues_a_check_makes_are_all_gone():
    run_checks("06.ask", SOLVED["ask"])
    prefix = f"labkit_{os.getuid()}_{os.getpid()}_"
    left = [e for e in os.listdir("/dev/mqueue") if e.startswith(prefix)] \
        if os.path.isdir("/dev/mqueue") else []
    assert left == []
    assert mq.supported()


def test_a_gather_that_loses_its_last_results_is_told_why_once():
    def unflushed(fn, items, workers):
        import multiprocessing

        import labkit

        q = multiprocessing.get_context("fork").Queue()

        def work(i):
            for item in items[i::workers]:
                q.put((item, fn(item)))

        with labkit.start_workers(work, workers, show=False) as ws:
            got = dict(q.get(timeout=30) for _ in items)
            ws.wait()
        return got

    results = run_checks("06.gather", unflushed)
    failed = [r for r in results if r.status == FAILED]
    assert failed, "an answer that loses its results passed"
    assert all("feeder thread" in r.message for r in failed)
    # after the first diagnosis, the later checks do not wait for the answer again
    assert all(r.message.startswith("not run:") for r in failed[1:])


def test_a_check_removes_a_reply_queue_the_answer_left_under_any_name():
    name = f"/ipclab_left_{os.getpid()}_{secrets.token_hex(3)}"

    def leaves(server, question, priority=0, timeout=2.0):
        mine = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=0o600, max_messages=1,
                                      max_message_size=1024)
        requests = posix_ipc.MessageQueue(server)
        requests.send(f"{name}\n{question}".encode(), priority=priority, timeout=timeout)
        requests.close()
        try:
            return mine.receive(timeout=timeout)[0].decode()
        finally:
            mine.close()

    failed = {r.check: r.message for r in run_checks("06.ask", leaves) if r.status == FAILED}
    # labkit's hygiene, or the check itself, names it
    assert any(name in m and "behind" in m for m in failed.values()), failed
    assert not checks._exists(name)


def _sleeps(*args):
    import time

    time.sleep(60)


@pytest.mark.parametrize("exercise, cause", [
    ("06.ask", "its request never reached the server's queue"),
    ("06.serve", "after taking no request from its queue"),
    ("06.kv_server", "no socket appeared at the path"),
    ("06.gather", "no item had been computed"),
])
def test_an_answer_that_hangs_is_stopped_once_with_its_cause(exercise, cause):
    results = run_checks(exercise, _sleeps)
    assert results[0].status == FAILED and cause in results[0].message
    assert all(r.status == NOT_RUN for r in results[1:])
    # the later checks do not wait for it again, and none of them just timed out
    assert all(r.message.startswith("not run: ") and cause in r.message for r in results[1:])


# --- 06.squares -------------------------------------------------------------------------------

def test_squares_out_of_place_are_found_at_their_first_wrong_index():
    assert squares_checks._compared(lambda w, n: [k * k for k in range(n)], 2, 50) == ("ok", 50, "")
    assert squares_checks._compared(lambda w, n: [0, 4, 1], 2, 3) == ("value", 1, "4")
    assert squares_checks._compared(lambda w, n: [0], 2, 3) == ("length", 1, "")
    assert squares_checks._compared(lambda w, n: "0 1 4", 2, 3)[0] == "type"


def test_the_results_the_check_asks_for_do_not_fit_in_a_pipe():
    # the premise of every 06.squares check: one worker's part, pickled as a queue sends it,
    # is bigger than a pipe, so its sender cannot end before someone reads
    import fcntl
    import pickle

    r, w = os.pipe()
    try:
        room = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)
    smallest = min(len(pickle.dumps((0, [k * k for k in range(i, n, workers)])))
                   for workers, n in ((3, 200_000), (1, 100_000)) for i in range(workers))
    assert smallest > 2 * room
