"""Lesson 06's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers (a lost priority, a world-readable or leaked reply queue, a server that
waits for a stuck client, a value cut at its first space, a queue never flushed before
os._exit) fail with a message that points at the mistake."""
from __future__ import annotations

import multiprocessing
import os
import socket

import posix_ipc
from helpers import failures as _failures
from helpers import load_answers

import labkit
from labkit import mq, objects
from labkit.checking import PASSED, run_checks

SOLVED = load_answers("solutions/06_message_passing.ipynb")


# --- 06.ask ---------------------------------------------------------------------------


def _ask(server, question, priority=0, timeout=2.0, *, keep_priority=True, mode=None,
         remove=True, send_timeout=True, translate=True):
    """An ask() that can make each of the usual mistakes."""
    if mode is None:
        scope = objects.scope()
        replies = scope.message_queue(1, 1024, label="reply")
    else:
        scope = None
        replies = posix_ipc.MessageQueue(objects.lab_name("reply"), posix_ipc.O_CREX,
                                         mode=mode, max_messages=1, max_message_size=1024)
    try:
        requests = posix_ipc.MessageQueue(server)
        try:
            requests.send(f"{replies.name}\n{question}".encode(),
                          priority=priority if keep_priority else 0,
                          timeout=timeout if send_timeout else None)
        finally:
            requests.close()
        try:
            answer, _ = replies.receive(timeout=timeout)
        except posix_ipc.BusyError:
            if translate:
                raise TimeoutError("no answer") from None
            raise
        return answer.decode()
    except posix_ipc.BusyError:
        if translate:
            raise TimeoutError("queue full") from None
        raise
    finally:
        if scope is not None:
            scope.close()
        elif remove:
            replies.close()
            replies.unlink()


def test_the_reference_mistake_free_ask_passes():
    assert {r.status for r in run_checks("06.ask", _ask)} == {PASSED}


def test_a_lost_priority_is_caught_twice():
    def no_priority(server, question, priority=0, timeout=2.0):
        return _ask(server, question, priority, timeout, keep_priority=False)

    failed = _failures("06.ask", no_priority)
    assert set(failed) == {"the priority travels with the request",
                           "a real server in a separate program serves a backlog by priority"}
    assert "expected 7" in failed["the priority travels with the request"]


def test_a_reply_queue_others_can_read_is_caught():
    def readable(server, question, priority=0, timeout=2.0):
        return _ask(server, question, priority, timeout, mode=0o666)

    failed = _failures("06.ask", readable)
    assert list(failed) == ["the reply queue is private (0600) and gone afterwards"]
    assert "expected 600" in failed["the reply queue is private (0600) and gone afterwards"]


def test_a_reply_queue_never_removed_is_caught_and_removed():
    def leaks(server, question, priority=0, timeout=2.0):
        return _ask(server, question, priority, timeout, mode=0o600, remove=False)

    failed = _failures("06.ask", leaks)
    assert set(failed) == {"the reply queue is private (0600) and gone afterwards",
                           "a full request queue raises TimeoutError instead of hanging",
                           "no answer in time raises TimeoutError"}
    assert all("left behind" in m or "behind (the check removed it)" in m
               for m in failed.values())


def test_waiting_forever_on_a_full_queue_is_stopped(quick_timeout):
    def waits(server, question, priority=0, timeout=2.0):
        return _ask(server, question, priority, timeout, send_timeout=False)

    failed = _failures("06.ask", waits)
    assert list(failed) == ["a full request queue raises TimeoutError instead of hanging"]
    assert "did not finish" in failed["a full request queue raises TimeoutError instead of "
                                      "hanging"]


def test_busy_error_leaking_out_instead_of_timeout_error_is_caught():
    def untranslated(server, question, priority=0, timeout=2.0):
        return _ask(server, question, priority, timeout, translate=False)

    failed = _failures("06.ask", untranslated)
    assert set(failed) == {"a full request queue raises TimeoutError instead of hanging",
                           "no answer in time raises TimeoutError"}
    assert all("raised BusyError" in m and "expected TimeoutError" in m
               for m in failed.values())


# --- 06.serve -------------------------------------------------------------------------


def _serve(requests, count, *, block=False, skip_missing=True, unlink=False,
           same_priority=True):
    """A serve() that can make each of the usual mistakes."""
    inbox = posix_ipc.MessageQueue(requests)
    log = []
    try:
        for _ in range(count):
            data, priority = inbox.receive(timeout=5)
            reply_to, _, question = data.decode().partition("\n")
            try:
                replies = posix_ipc.MessageQueue(reply_to)
            except posix_ipc.ExistentialError:
                if not skip_missing:
                    raise
                log.append((question, priority, "dropped"))
                continue
            try:
                replies.send(question.upper().encode(),
                             priority=priority if same_priority else 0,
                             timeout=None if block else 0)
                log.append((question, priority, "answered"))
            except posix_ipc.BusyError:
                log.append((question, priority, "dropped"))
            finally:
                replies.close()
    finally:
        inbox.close()
        if unlink:
            inbox.unlink()
    return log


def test_the_reference_mistake_free_serve_passes():
    assert {r.status for r in run_checks("06.serve", _serve)} == {PASSED}


def test_a_server_that_waits_for_a_full_reply_queue_is_stopped(quick_timeout):
    failed = _failures("06.serve", lambda requests, count: _serve(requests, count, block=True))
    assert list(failed) == ["a full reply queue is skipped, never waited for"]
    assert "did not finish" in failed["a full reply queue is skipped, never waited for"]


def test_a_server_that_crashes_on_a_vanished_client_is_caught():
    failed = _failures("06.serve", lambda r, c: _serve(r, c, skip_missing=False))
    assert list(failed) == ["a reply queue that does not exist is skipped too"]
    assert "raised ExistentialError" in failed["a reply queue that does not exist is "
                                               "skipped too"]


def test_a_server_that_unlinks_the_callers_queue_is_caught():
    failed = _failures("06.serve", lambda r, c: _serve(r, c, unlink=True))
    assert "the caller's queue stays, and nothing is left open" in failed
    assert "close it, not unlink it" in failed["the caller's queue stays, and nothing is left "
                                               "open"]


def test_answers_without_their_priority_are_caught():
    failed = _failures("06.serve", lambda r, c: _serve(r, c, same_priority=False))
    assert "highest priority first, first come first served within one" in failed


# --- 06.kv_server ---------------------------------------------------------------------


def _kv_server(path, count, *, split_all=False, fixed_address=False, unlink=True):
    store = {}
    first = None
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        try:
            for _ in range(count):
                request, client = server.recvfrom(1 << 16)
                first = first or client
                words = request.split(b" ") if split_all else request.split(b" ", 2)
                try:
                    key = words[1].decode() if len(words) > 1 else ""
                except UnicodeDecodeError:
                    key = ""
                if words[0] == b"SET" and len(words) >= 3 and key:
                    store[key] = words[2]
                    reply = b"OK"
                elif words[0] == b"GET" and len(words) == 2 and key:
                    reply = store.get(key, b"NOT FOUND")
                else:
                    reply = b"ERROR"
                server.sendto(reply, first if fixed_address else client)
        finally:
            if unlink:
                os.unlink(path)
    return store


def test_the_reference_mistake_free_kv_server_passes():
    assert {r.status for r in run_checks("06.kv_server", _kv_server)} == {PASSED}


def test_a_value_cut_at_its_first_space_is_caught():
    failed = _failures("06.kv_server", lambda p, c: _kv_server(p, c, split_all=True))
    assert list(failed) == ["a value keeps its spaces, newlines and emptiness"]


def test_replies_sent_to_the_wrong_address_are_caught():
    failed = _failures("06.kv_server", lambda p, c: _kv_server(p, c, fixed_address=True))
    assert list(failed) == ["three unrelated programs, each answered at its own address"]


def test_a_socket_file_left_behind_is_caught():
    failed = _failures("06.kv_server", lambda p, c: _kv_server(p, c, unlink=False))
    assert list(failed) == ["the socket file is removed and nothing is left open"]
    assert "still there" in failed["the socket file is removed and nothing is left open"]


# --- 06.gather ------------------------------------------------------------------------


def _gather(fn, items, workers, *, flush=True, wait_first=False, in_parent=False):
    if in_parent:
        return {item: fn(item) for item in items}
    results = multiprocessing.get_context("fork").Queue()

    def work(i):
        for item in items[i::workers]:
            results.put((item, fn(item)))
        if flush:
            results.close()
            results.join_thread()

    with labkit.start_workers(work, workers, show=False) as running:
        if wait_first:
            running.wait()
        gathered = dict(results.get(timeout=30) for _ in items)
        running.wait()
    results.close()
    results.join_thread()
    return gathered


def test_the_reference_mistake_free_gather_passes():
    assert {r.status for r in run_checks("06.gather", _gather)} == {PASSED}


def test_a_queue_never_flushed_before_os_exit_loses_results(quick_timeout):
    failed = _failures("06.gather", lambda f, i, w: _gather(f, i, w, flush=False))
    assert "every result arrives" in failed
    assert "did not finish" in failed["every result arrives"]


def test_waiting_for_the_workers_before_reading_deadlocks_only_on_big_results(quick_timeout):
    failed = _failures("06.gather", lambda f, i, w: _gather(f, i, w, wait_first=True))
    assert list(failed) == ["results bigger than a pipe holds arrive too"]


def test_computing_in_the_parent_is_caught():
    failed = _failures("06.gather", lambda f, i, w: _gather(f, i, w, in_parent=True))
    assert list(failed) == ["the work is shared by the workers"]


def test_the_queues_a_check_makes_are_all_gone():
    run_checks("06.ask", SOLVED["ask"])
    prefix = f"labkit_{os.getuid()}_{os.getpid()}_"
    assert not [e for e in os.listdir("/dev/mqueue") if e.startswith(prefix)]
    assert mq.supported()
