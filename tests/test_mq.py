"""labkit.mq: private queues and clear limit errors, servers that run apart from the lab and
stop cleanly, and a survey whose every cell rests on what really happened."""
from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import posix_ipc
import pytest

from labkit import mq, objects, programs, runner
from labkit.errors import LabError, NoSpaceError, NotSupportedHere

BAD_COUNTS = [0, -1, True, 1.5, "4"]


pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


def _sockets_left() -> list[str]:
    from labkit.session import SESSION_DIR

    folder = SESSION_DIR.made
    return [p.name for p in folder.glob("*.sock")] if folder and folder.is_dir() else []


# --- queues ---------------------------------------------------------------------------


def test_a_queue_is_private_exclusive_and_gone_after_its_block():
    with mq.queue(3, 32) as q:
        path = "/dev/mqueue" + q.name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert q.name.startswith(f"/labkit_{os.getuid()}_")
        with pytest.raises(posix_ipc.ExistentialError):  # O_EXCL: the name is taken
            posix_ipc.MessageQueue(q.name, posix_ipc.O_CREX)
        assert (q.max_messages, q.max_message_size) == (3, 32)
    assert not os.path.exists(path)


def test_two_queues_never_share_a_name():
    with mq.queue(1, 8) as a, mq.queue(1, 8) as b:
        assert a.name != b.name


def test_closing_the_queue_inside_the_block_still_removes_its_name():
    with mq.queue(1, 8) as q:
        q.close()
    assert not os.path.exists("/dev/mqueue" + q.name)


def test_the_name_goes_even_when_the_block_raises():
    with pytest.raises(RuntimeError), mq.queue(1, 8) as q:
        raise RuntimeError("boom")
    assert not os.path.exists("/dev/mqueue" + q.name)


@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_bad_queue_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="must be a whole number from 1 to"), mq.queue(bad, 8):
        pass
    with pytest.raises(ValueError, match="must be a whole number from 1 to"), mq.queue(2, bad):
        pass


def test_a_queue_over_the_kernels_hard_limits_is_a_clear_no_space_error():
    with pytest.raises(NoSpaceError, match=r"Limits here: at most \d+ messages") as e, \
            mq.queue(1_000_000, 8):
        pass
    assert e.value.__cause__ is not None  # posix_ipc's own error is kept


def test_a_message_longer_than_the_queue_allows_is_refused_and_nothing_is_sent():
    with mq.queue(2, 16) as q:
        with pytest.raises(ValueError, match="too long"):
            q.send(b"x" * 17)
        assert q.current_messages == 0


def test_the_state_reports_what_the_kernel_holds():
    with mq.queue(3, 32) as q:
        q.send(b"abc", priority=2)
        q.send(b"de")
        s = mq.state(q)
    assert (s.current_messages, s.queued_bytes, s.max_messages, s.max_message_size) == (
        2, 5, 3, 32)
    assert s.mode == 0o600 and s.notify_pid == 0
    assert "2 of 3 messages" in str(s)


def test_without_posix_message_queues_the_error_says_so(monkeypatch):
    monkeypatch.setattr(mq, "MACOS", True)
    monkeypatch.setattr(objects, "MACOS", True)
    assert not mq.supported()
    with pytest.raises(NotSupportedHere, match="macOS"):
        mq.require()
    with pytest.raises(NotSupportedHere, match="macOS"), mq.queue():
        pass
    with pytest.raises(NotSupportedHere):
        mq.exhaust()


# --- limits ---------------------------------------------------------------------------


def test_the_limits_are_read_from_proc_and_the_rlimit():
    lim = mq.limits()
    with open("/proc/sys/fs/mqueue/msg_max") as f:
        assert lim.msg_max == int(f.read())
    assert lim.default_queue_bytes == mq.queue_bytes(lim.msg_default, lim.msgsize_default)
    assert lim.default_queues_per_user == lim.rlimit // lim.default_queue_bytes
    assert len(lim.table().rows) == 6


def test_a_default_queue_costs_its_messages_plus_96_bytes_each():
    assert mq.queue_bytes(10, 8192) == 10 * 8192 + 10 * 96
    assert 819200 // mq.queue_bytes(10, 8192) == 9  # the "about 9 queues per user"


@pytest.mark.parametrize("bad", [(0, 8), (8, 0), (-1, 8), (True, 8), (8, 2.5)])
def test_queue_bytes_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match="whole number"):
        mq.queue_bytes(*bad)


def test_running_out_of_budget_is_translated_and_the_real_budget_is_untouched():
    e = mq.exhaust(10, 1024, budget=60_000)
    assert e.per_queue == mq.queue_bytes(10, 1024)
    assert e.created <= 60_000 // e.per_queue  # fewer if you have queues elsewhere
    assert "too many open files', which it is not" in e.lab_error
    assert "RLIMIT_MSGQUEUE" in e.lab_error
    assert "files open" in e.raw_error  # posix_ipc's misleading message, kept
    with mq.queue(2, 16):  # and queues can still be made afterwards
        pass


@pytest.mark.parametrize("kwargs, message", [
    ({"max_messages": 0}, "max_messages"), ({"max_message_size": -1}, "max_message_size"),
    ({"budget": 0}, "budget"), ({"budget": 1.5}, "budget")])
def test_bad_exhaustion_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mq.exhaust(**kwargs)


# --- a queue over time ----------------------------------------------------------------


def test_a_fast_sender_blocks_on_a_full_queue_and_every_message_arrives_in_order():
    t = mq.record_queue(messages=8, max_messages=3, receive_every=0.02)
    assert t.max_depth <= 3
    assert t.received == [f"message {n}".encode() for n in range(8)]
    assert t.blocked, "8 messages into a queue of 3 with a slow receiver: the sender waits"


@pytest.mark.parametrize("kwargs", [{"messages": 0}, {"max_messages": 0},
                                    {"receive_every": -1}, {"timeout": 0}])
def test_bad_trace_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        mq.record_queue(**kwargs)


# --- the message-queue server ---------------------------------------------------------


def _ask(server, replies, question, priority=0):
    requests = posix_ipc.MessageQueue(server.requests)
    try:
        requests.send(f"{replies.name}\n{question}".encode(), priority=priority, timeout=5)
    finally:
        requests.close()


def test_the_server_is_a_separate_program_that_answers_with_the_priority():
    with mq.mq_server() as server, mq.queue(2, 64) as replies:
        assert server.pid != os.getpid()
        _ask(server, replies, "héllo", priority=4)
        assert replies.receive(timeout=5) == ("HÉLLO".encode(), 4)
    assert [(s.order, s.priority, s.question, s.status) for s in server.served] == [
        (1, 4, "héllo", "answered")]
    assert not os.path.exists("/dev/mqueue" + server.requests)


def test_a_paused_server_serves_the_highest_priority_first_and_fifo_within_one():
    with mq.mq_server(paused=True) as server, mq.queue(8, 64) as replies:
        for question, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5)]:
            _ask(server, replies, question, priority)
        server.resume()
        done = server.wait_served(5)
    assert [s.question for s in done] == ["d", "b", "e", "a", "c"]


def test_the_server_never_blocks_on_a_full_reply_queue():
    with mq.mq_server() as server, mq.queue(1, 64) as replies:
        replies.send(b"already here")
        _ask(server, replies, "one")
        _ask(server, replies, "two")
        done = server.wait_served(2)
    assert [s.status for s in done] == ["reply queue full: answer dropped"] * 2


def test_the_server_logs_requests_it_cannot_answer():
    with mq.mq_server() as server:
        requests = posix_ipc.MessageQueue(server.requests)
        requests.send(b"no newline here")
        requests.send(b"/labkit_no_such_queue\nhello")
        requests.close()
        done = server.wait_served(2)
    assert [s.status for s in done] == [mq.ServeStatus.BAD_REQUEST, mq.ServeStatus.NO_REPLY_QUEUE]
    assert [str(s.status) for s in done] == ["bad request: no reply queue", "no such reply queue"]


def test_the_servers_are_program_files_started_by_the_one_runner():
    with mq.mq_server(), mq.socket_server("tcp"):
        started = [" ".join(r.argv) for r in runner.programs()[-2:]]
    assert "labkit.programs.mq_server" in started[0]
    assert "labkit.programs.socket_server" in started[1]
    folder = Path(programs.__file__).parent
    for name in ("mq_server", "socket_server", "reach", "serving"):
        assert (folder / f"{name}.py").read_text().startswith('"""')   # a file one can read


def test_a_stopped_server_cannot_be_resumed():
    with mq.mq_server(paused=True) as server:
        pass
    with pytest.raises(LabError, match="stopped"):
        server.resume()


@pytest.mark.parametrize("kwargs", [{"work": -1}, {"work": 60}, {"lifetime": 0}])
def test_bad_server_parameters_are_refused(kwargs):
    with pytest.raises(ValueError), mq.mq_server(**kwargs):
        pass


# --- sockets --------------------------------------------------------------------------


def test_a_stream_server_echoes_and_sees_pieces_not_messages():
    with mq.socket_server("stream") as server:
        assert stat.S_ISSOCK(os.stat(server.address).st_mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(server.address))
            s.sendall(b"abc")
            assert s.recv(100) == b"ABC"
        log = server.wait_logged(1)
    assert log[0]["pieces"] == [3]
    assert not os.path.exists(server.address)


def test_a_datagram_server_answers_a_client_with_an_address_of_its_own():
    with objects.scope() as owned, mq.socket_server("dgram") as server, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        path = owned.socket_path("client")
        s.bind(str(path))
        for word in (b"one", b"", b"three"):
            s.sendto(word, str(server.address))
        replies = [s.recv(100) for _ in range(3)]
        log = server.wait_logged(3)
    assert not path.exists()
    assert replies == [b"ONE", b"", b"THREE"]
    assert [d["datagram"] for d in log] == [3, 0, 5]


def test_a_datagram_from_a_client_without_an_address_gets_no_reply():
    with mq.socket_server("dgram") as server, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"anyone?", str(server.address))
        log = server.wait_logged(1)
    assert log[0]["replied"] is False


def test_a_tcp_server_listens_on_loopback_only():
    with mq.socket_server("tcp") as server:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"over tcp")
            assert s.recv(100) == b"OVER TCP"
    assert not _sockets_left()


def test_a_bad_socket_kind_is_refused():
    with pytest.raises(ValueError, match="'stream'"), mq.socket_server("udp"):
        pass


# --- the survey -----------------------------------------------------------------------


def test_the_survey_fills_every_cell_from_an_observation():
    s = mq.survey()
    names = [r.mechanism for r in s.rows]
    assert names[:3] == ["pipe", "FIFO (named pipe)", "POSIX message queue"]
    assert {"Unix stream socket", "Unix datagram socket", "TCP (loopback)", "shared memory",
            "signal", "multiprocessing.Queue", "multiprocessing.Pipe", "file"} <= set(names)
    streams = ["pipe", "FIFO (named pipe)", "Unix stream socket", "TCP (loopback)"]
    assert all(s[m].boundaries == "none: a byte stream" for m in streams)
    kept = ["POSIX message queue", "Unix datagram socket", "multiprocessing.Queue",
            "multiprocessing.Pipe"]
    assert all(s[m].boundaries.startswith("kept") for m in kept)
    assert "65536 bytes fit" in s.evidence()
    assert "1 delivered" in s["signal"].evidence[0]
    assert "was lost" in s["multiprocessing.Queue"].evidence[-1]
    for named in ("FIFO (named pipe)", "POSIX message queue", "shared memory",
                  "Unix stream socket", "Unix datagram socket", "TCP (loopback)"):
        assert "unrelated process could open it" in s[named].evidence[-1]
    assert len(s.table().rows) == len(names)
    with pytest.raises(KeyError, match="no mechanism"):
        s["carrier pigeon"]
    assert not _sockets_left()


@pytest.mark.parametrize("kind", ["stream", "dgram"])
def test_socket_files_are_0600_whatever_the_umask(kind):
    old = os.umask(0)  # the worst case: bind would make the file 0777
    try:
        with mq.socket_server(kind) as server:
            assert stat.S_IMODE(os.lstat(server.address).st_mode) == 0o600
    finally:
        os.umask(old)
