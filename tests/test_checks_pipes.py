"""Lesson 02's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers (a forgotten close, a missing waitpid, SIGPIPE left ignored, a single
read where a loop is needed) fail with a message that points at the mistake."""
from __future__ import annotations

import os
import signal
import struct

import pytest
from helpers import failures as _failures
from helpers import load_answers

import labkit
from labkit import checking
from labkit.checking import PASSED, run_checks

SOLVED = load_answers("solutions/02_pipes.ipynb")


@pytest.fixture()
def hangs(monkeypatch):
    """For answers that hang in every check: stop each call after half a second."""
    monkeypatch.setattr(checking, "CALL_TIMEOUT", 0.5)


# --- 02.converse ----------------------------------------------------------------------


def _converse(transform, messages, *, child_closes=True, parent_waits=True, alternate=True,
              transform_in_child=True, fork_per_message=False):
    """A converse() that can make each of the usual mistakes."""
    if fork_per_message:
        return [_converse(transform, [m])[0] for m in messages]
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if child_closes:
                os.close(down_w)
            os.close(up_r)
            with open(down_r, encoding="utf-8") as inbox, \
                    open(up_w, "w", encoding="utf-8") as outbox:
                for line in inbox:
                    text = line.rstrip("\n")
                    outbox.write((transform(text) if transform_in_child else text) + "\n")
                    outbox.flush()
        finally:
            os._exit(0)
    os.close(down_r)
    os.close(up_w)
    with open(down_w, "w", encoding="utf-8") as out, open(up_r, encoding="utf-8") as back:
        replies = []
        if alternate:
            for m in messages:
                out.write(m + "\n")
                out.flush()
                replies.append(back.readline().rstrip("\n"))
        else:
            for m in messages:
                out.write(m + "\n")
            out.flush()
            replies = [back.readline().rstrip("\n") for _ in messages]
    if parent_waits:
        os.waitpid(pid, 0)
    if not transform_in_child:
        replies = [transform(r) for r in replies]
    return replies


def test_the_reference_mistake_free_converse_passes():
    assert {r.status for r in run_checks("02.converse", _converse)} == {PASSED}


def test_a_child_that_keeps_its_own_write_end_hangs_and_is_stopped(hangs):
    def keeps_it(transform, messages):
        return _converse(transform, messages, child_closes=False)

    failed = _failures("02.converse", keeps_it)
    assert len(failed) == 6
    assert all("did not finish in" in m and "pipe end still open" in m for m in failed.values())


def test_sending_everything_before_reading_deadlocks_only_the_long_conversation(
        quick_timeout):
    def all_at_once(transform, messages):
        return _converse(transform, messages, alternate=False)

    failed = _failures("02.converse", all_at_once)
    assert list(failed) == ["a conversation longer than the pipes can hold"]
    assert "did not finish in 3 s" in failed["a conversation longer than the pipes can hold"]


def test_transforming_in_the_parent_is_caught():
    def in_parent(transform, messages):
        return _converse(transform, messages, transform_in_child=False)

    failed = _failures("02.converse", in_parent)
    assert list(failed) == ["one child does all the transforming"]
    assert "not in a child" in failed["one child does all the transforming"]


def test_a_child_per_message_is_caught(quick_timeout):
    def many(transform, messages):
        return _converse(transform, messages, fork_per_message=True)

    failed = _failures("02.converse", many)
    assert "came from 4 different processes" in failed["one child does all the transforming"]


def test_a_child_never_waited_for_is_caught():
    def no_wait(transform, messages):
        return _converse(transform, messages, parent_waits=False)

    failed = _failures("02.converse", no_wait)
    assert list(failed) == ["no zombie and no open descriptor is left behind"]
    assert "nobody waited for it" in failed["no zombie and no open descriptor is left behind"]


# --- 02.pipeline ----------------------------------------------------------------------


def _pipeline(cmd1, cmd2, *, restore_sigpipe=True, parent_closes=True, exit_127=True,
              as_bytes=False):
    link_r, link_w = os.pipe()
    out_r, out_w = os.pipe()

    def spawn(argv, stdin, stdout):
        pid = os.fork()
        if pid == 0:
            if not exit_127:
                _exec(argv, stdin, stdout)
            try:
                _exec(argv, stdin, stdout)
            finally:
                os._exit(127)
        return pid

    def _exec(argv, stdin, stdout):
        if restore_sigpipe:
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if stdin is not None:
            os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.execvp(argv[0], argv)

    first = spawn(cmd1, None, link_w)
    second = spawn(cmd2, link_r, out_w)
    os.close(out_w)
    if parent_closes:
        os.close(link_r)
        os.close(link_w)
    with open(out_r, "rb") as out:
        output = out.read()
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in (first, second)]
    if not parent_closes:
        os.close(link_r)
        os.close(link_w)
    return (output if as_bytes else output.decode()), codes[0], codes[1]


def test_the_reference_mistake_free_pipeline_passes():
    assert {r.status for r in run_checks("02.pipeline", _pipeline)} == {PASSED}


def test_sigpipe_left_ignored_is_caught_and_explained():
    def ignored(cmd1, cmd2):
        return _pipeline(cmd1, cmd2, restore_sigpipe=False)

    failed = _failures("02.pipeline", ignored)
    check = "yes | head -n 2: yes dies of SIGPIPE, as in a shell"
    assert list(failed) == [check]
    assert f"expected {-signal.SIGPIPE} (killed by SIGPIPE)" in failed[check]
    assert "SIGPIPE was still ignored" in failed[check]


def test_a_write_end_left_open_in_the_parent_hangs_and_is_stopped(hangs):
    def forgot(cmd1, cmd2):
        return _pipeline(cmd1, cmd2, parent_closes=False)

    failed = _failures("02.pipeline", forgot)
    assert len(failed) == 7  # every second command waits for an end of file that never comes
    assert "did not finish in 0.5 s" in failed["cat sees end of file: every write end gets closed"]


def test_a_failed_exec_that_escapes_is_caught():
    def no_127(cmd1, cmd2):
        return _pipeline(cmd1, cmd2, exit_127=False)

    failed = _failures("02.pipeline", no_127)
    check = "a program that does not exist gives 127, and its child still ends"
    assert list(failed) == [check]
    assert "returned from your function instead of ending" in failed[check]


def test_bytes_instead_of_text_are_caught():
    def raw(cmd1, cmd2):
        return _pipeline(cmd1, cmd2, as_bytes=True)

    failed = _failures("02.pipeline", raw)
    assert "expected text (a str): decode the bytes" in failed["ls -l | wc -l gives the shell's answer"]


# --- 02.recv_message ------------------------------------------------------------------


def one_read_each(fd):
    header = os.read(fd, 4)
    (length,) = struct.unpack("!I", header)
    return os.read(fd, length)


def test_single_reads_fail_on_short_reads_and_at_end_of_file():
    failed = _failures("02.recv_message", one_read_each)
    assert set(failed) == {
        "a message that trickles in, header included, arrives whole",
        "an empty message is b'', and end of file is None",
        "end of file inside a message raises EOFError",
        "a message bigger than the pipe (1 MiB)",
    }
    assert "raised error: unpack requires a buffer of 4 bytes" in failed[
        "a message that trickles in, header included, arrives whole"]


def test_reading_past_the_message_is_caught():
    def greedy(fd):
        data = os.read(fd, 65536)
        if not data:
            return None
        (length,) = struct.unpack("!I", data[:4])
        return data[4:4 + length]

    failed = _failures("02.recv_message", greedy)
    assert "the first call read more than its message" in failed[
        "three messages in one write come out one per call"]


def test_empty_bytes_at_end_of_file_is_not_none():
    solved = SOLVED["recv_message"]

    def empty_at_eof(fd):
        got = solved(fd)
        return b"" if got is None else got

    failed = _failures("02.recv_message", empty_at_eof)
    assert list(failed) == ["an empty message is b'', and end of file is None"]
    assert "expected [b'', b'x', None]" in next(iter(failed.values()))


def test_a_cut_message_returned_quietly_is_caught():
    def quiet(fd):
        try:
            return SOLVED["recv_message"](fd)
        except EOFError:
            return None

    failed = _failures("02.recv_message", quiet)
    assert "returned None, expected EOFError" in failed[
        "end of file inside a message raises EOFError"]


# --- 02.ask ---------------------------------------------------------------------------


def one_read(server_path, question):
    with labkit.objects.scope() as objs:
        reply = objs.fifo("reply")
        with open(server_path, "w") as requests:
            requests.write(f"{reply}\t{question}\n")
        fd = os.open(reply, os.O_RDONLY)
        try:
            return os.read(fd, 65536).decode()
        finally:
            os.close(fd)


def test_a_single_read_of_a_long_answer_is_caught():
    failed = _failures("02.ask", one_read)
    check = "a long answer (more than a pipe holds) arrives whole"
    assert list(failed) == [check]
    assert "read until end of file" in failed[check]


def test_a_reply_fifo_left_on_disk_is_caught_and_removed():
    def leaves_it(server_path, question):
        reply = labkit.objects.fifo("reply")  # owned by the session: a forked child never ends it
        with open(server_path, "w") as requests:
            requests.write(f"{reply}\t{question}\n")
        with open(reply) as answer:
            return answer.read()

    failed = _failures("02.ask", leaves_it)
    check = "the reply FIFO is removed and nothing is left open"
    assert list(failed) == [check]
    assert "was still there after ask returned (the check removed it)" in failed[check]


def test_opening_the_reply_fifo_before_asking_hangs_and_is_stopped(hangs):
    def too_early(server_path, question):
        with labkit.objects.scope() as objs:
            reply = objs.fifo("reply")
            with open(reply) as answer:  # waits for a writer that waits for our request
                with open(server_path, "w") as requests:
                    requests.write(f"{reply}\t{question}\n")
                return answer.read()

    failed = _failures("02.ask", too_early)
    assert len(failed) == 4
    assert all("did not finish in 1 s" in m for m in failed.values())
