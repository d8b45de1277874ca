"""Checks for the exercises of lesson 02 (pipes and named pipes).

Every answer runs in a process of its own, started with
:func:`~labkit.checking.launch` (as :func:`~labkit.checking.call` does). Where
an answer reads from a pipe, the data comes from a feeder child that waits
until the pipe is empty before each next piece, so short reads happen for
certain, not by luck; and the answer's process never holds a write
end, so end of file can come.

An answer that hangs is looked at just before it is stopped: what each of its
processes is blocked in (``/proc/PID/wchan``: a pipe read or write, waitpid, a
FIFO open) and which of them still hold the write end of a pipe someone waits
to read. The timeout message then names the cause (a write end never closed,
a wait before the read, two full pipes) instead of only the time. Whether a
request goes to the server in one write is seen by counting, in the answer's
own process, the ``os.write`` calls that reach the server's FIFO.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import random
import shlex
import signal
import struct
import subprocess
import threading
from pathlib import Path

import psutil

from .. import checking, objects
from ..checking import (
    Attempt,
    CheckFailed,
    CheckTimedOut,
    Exercise,
    Launched,
    answer_pid,
    expect,
    expect_clean,
    launch,
)
from ..pipes import PIPE_BUF, bytes_waiting, fifo_server
from ..processes import start
from ..runner import end_program, start_program
from ..waiting import Deadline, wait_until

# --- what a hanging answer was waiting for --------------------------------------------

# What /proc/PID/wchan shows for the waits that matter here (6.x names anonymous pipes'
# anon_pipe_read; older kernels, and FIFOs, pipe_read).
_BLOCKED_IN = (("pipe_read", "read"), ("pipe_write", "write"), ("do_wait", "wait"),
               ("wait_for_partner", "open"))


def _blocked_in(pid: int) -> str:
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""
    return next((what for key, what in _BLOCKED_IN if key in wchan), "")


def _syscall_fd(pid: int) -> int | None:
    """The descriptor a process blocked in read or write is using (its first argument)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
        return int(fields[1], 16)
    except (OSError, IndexError, ValueError):
        return None


def _pipe_ends(pid: int) -> dict[int, tuple[str, bool]]:
    """{fd: (target, is a write end)} for a process's pipes and FIFOs."""
    ends = {}
    try:
        for entry in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
            info = Path(f"/proc/{pid}/fdinfo/{entry}").read_text()
            flags = int(info.split("flags:")[1].split()[0], 8)
            ends[int(entry)] = (target, flags & os.O_ACCMODE == os.O_WRONLY)
    except (OSError, ValueError, IndexError):
        pass  # it ended while we looked; what we have is still true of the moment
    return ends


def _who(pid: int, root: int) -> str:
    if pid == root:
        return "your function's process"
    try:
        return f"its child {pid} ({psutil.Process(pid).name()})"
    except psutil.Error:
        return f"its child {pid}"


def _holders(pipe: str, ends: dict[int, dict[int, tuple[str, bool]]], write_end: bool
             ) -> list[tuple[int, int]]:
    """(pid, descriptor) of every process in ``ends`` holding that end of ``pipe``."""
    return [(pid, fd) for pid, fds in ends.items() for fd, (target, w) in fds.items()
            if pipe and target == pipe and w == write_end]


def _diagnosis(root: int) -> str:
    """What the answer's processes are blocked in, and who holds the pipes they wait on.

    Read from /proc while they are still blocked; "" if nothing can be said (they ended).
    """
    try:
        tree = [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return ""
    doing = {pid: _blocked_in(pid) for pid in tree}
    ends = {pid: _pipe_ends(pid) for pid in tree}

    def named(holders: list[tuple[int, int]]) -> str:
        return " and ".join(f"{_who(pid, root)} (descriptor {fd})" for pid, fd in holders)

    said, self_held, waits_on_writer = [], False, False
    for pid in tree:
        what, who = doing[pid], _who(pid, root)
        fd = _syscall_fd(pid) if what in ("read", "write") else None
        pipe = ends[pid].get(fd, ("", False))[0] if fd is not None else ""
        if what == "read":
            writers = _holders(pipe, ends, write_end=True)
            own = [n for other, n in writers if other == pid]
            if own:
                self_held = True
                said.append(f"{who} waits to read a pipe whose write end it still holds "
                            f"itself (descriptor {own[0]}), so end of file can never come")
            elif writers:
                said.append(f"{who} waits to read a pipe whose write end is still open in "
                            f"{named(writers)}, which is not writing, so end of file never "
                            "comes")
            else:
                said.append(f"{who} waits to read a pipe and nothing is written to it")
        elif what == "write":
            readers = _holders(pipe, ends, write_end=False)
            said.append(f"{who} is blocked writing into a full pipe" + (
                f" whose read end is open in {named(readers)}, which is not reading"
                if readers else ""))
            waits_on_writer |= doing[root] == "wait" and any(o == root for o, _ in readers)
        elif what == "wait":
            said.append(f"{who} is in waitpid, waiting for a child that has not ended")
        elif what == "open":
            said.append(f"{who} is blocked opening a FIFO: an open waits until another "
                        "process opens the other end, and one that first waits for something "
                        "from you never will")
    states = set(doing.values())
    if waits_on_writer:
        said.append("your function waits for a child that cannot end until someone reads "
                    "its output: read the output before you wait for the children (and close "
                    "a read end you do not use, so its writer gets SIGPIPE)")
    elif states == {"write"} and len(tree) > 1:
        said.append("every process is writing and none is reading: both pipes are full")
    elif states == {"read"} and len(tree) > 1 and not self_held:
        said.append("every process waits to read and none is writing: is a message still in "
                    "a buffer that was never flushed?")
    return "; ".join(said)


def _finish(running: Launched, limit: float, doing: str) -> Attempt:
    """``running.finish()``, but a timeout says what the answer's processes were blocked in."""
    seen: list[str] = []
    look = threading.Timer(limit - min(0.5, 0.4 * limit),
                           lambda: seen.append(_diagnosis(running.pid)))
    look.start()
    try:
        return running.finish()
    except CheckTimedOut:
        if not (seen and seen[0]):
            raise
        raise CheckTimedOut(f"{doing} did not finish in {limit:g} s and was stopped. Just "
                            f"before: {seen[0]}") from None
    finally:
        look.cancel()
        look.join()


def _call(answer, *args, timeout: float | None = None, doing: str = "your function"
          ) -> Attempt:
    """:func:`~labkit.checking.call`, with a diagnosis if the answer hangs."""
    limit = checking.CALL_TIMEOUT if timeout is None else timeout
    with launch(answer, *args, timeout=limit) as running:
        return _finish(running, limit, doing)


# --- helpers the checks run in their own processes ------------------------------------


def _shout(text: str) -> str:
    return text.upper()


def _whoami(text: str) -> str:
    """Says which process runs it: the answer's own ("parent") or another (a child)."""
    where = "parent" if os.getpid() == answer_pid() else "child"
    return f"{where} {os.getpid()}"


def _frame(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def _feed(r: int, w: int, pieces: list[bytes]) -> None:
    """Write each piece once the reader has taken everything before it."""
    os.close(r)
    deadline = Deadline(4 * checking.CALL_TIMEOUT)
    for n, piece in enumerate(pieces):
        if n:
            wait_until(lambda: not bytes_waiting(w), deadline.left(), None, every=0.0005)
        try:
            os.write(w, piece)
        except BrokenPipeError:
            break  # the answer stopped reading; the check says so
    os.close(w)


def _receive(answer, r: int, times: int) -> list:
    return [answer(r) for _ in range(times)]


def _received(answer, pieces: list[bytes], times: int):
    """Feed ``pieces`` into a pipe and call ``answer(fd)`` ``times`` times on its read end."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    r, w = os.pipe()
    try:
        with start(_feed, r, w, pieces, timeout=8 * checking.CALL_TIMEOUT, show=False) as feeder:
            os.close(w)
            w = -1
            attempt = _call(_receive, answer, r, times, doing="recv_message")
            feeder.stop()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return attempt


def _shell(command: str) -> str:
    """What the shell prints for ``command``: the reference a pipeline is compared with."""
    proc = start_program(["sh", "-c", command], 60, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        return proc.communicate(timeout=60)[0]
    finally:
        end_program(proc)


def _result_triple(got, call_text: str) -> tuple:
    expect(isinstance(got, (tuple, list)) and len(got) == 3,
           f"{call_text} returned {got!r}; expected a tuple (output, status1, status2)")
    expect(isinstance(got[0], str), f"{call_text} returned output {got[0]!r}; expected text "
                                    "(a str): decode the bytes you read")
    return tuple(got)


# --- 02.converse ----------------------------------------------------------------------

CONVERSE = Exercise("02.converse", "A conversation both ways over two pipes", timeout=60)

_TWO_PIPES = ("A pipe carries bytes one way, so a conversation needs two. A reader sees end "
              "of file only when every copy of the pipe's write end, in every process, is "
              "closed; and text written through a file object sits in its buffer until it is "
              "flushed.")


@CONVERSE.check("three messages come back transformed, in order",
                hint="One pipe for each direction. For each message: send one line, then read "
                     "one line back.", concept=_TWO_PIPES)
def _(answer):
    messages = ["hello", "pipes are one-way", "so we use two"]
    got = _call(answer, _shout, messages).value
    want = [m.upper() for m in messages]
    expect(got == want, f"converse(str.upper, {messages!r}) returned {got!r}, expected {want!r}")


@CONVERSE.check("one child does all the transforming",
                hint="Fork once, before the loop; only the child calls transform.",
                concept="The child is the other end of the conversation: it lives as long as "
                        "the messages keep coming, and the parent only sends and receives.")
def _(answer):
    got = _call(answer, _whoami, ["a", "b", "c", "d"]).value
    expect(isinstance(got, list) and len(got) == 4, f"expected 4 replies, got {got!r}")
    expect(all(isinstance(g, str) and not g.startswith("parent") for g in got),
           "transform ran in the process that called converse, not in a child")
    expect(len(set(got)) == 1, f"the replies came from {len(set(got))} different processes "
                               f"({sorted(set(got))}); one child should answer them all")


@CONVERSE.check("no messages give [] and the child still ends",
                hint="The child stops when its read returns end of file. Who still holds the "
                     "write end of the pipe it reads?", concept=_TWO_PIPES)
def _(answer):
    got = _call(answer, _shout, []).value
    expect(got == [], f"converse(str.upper, []) returned {got!r}, expected []")


@CONVERSE.check("text beyond ASCII survives",
                hint="Pipes carry bytes: encode with UTF-8 before writing, and decode whole "
                     "lines after reading (a file object opened in text mode does both).",
                concept="A character can take several bytes; decoding a piece cut in the "
                        "middle of one fails, so decode complete lines.")
def _(answer):
    messages = ["café", "→ naïve ←", "日本語"]
    got = _call(answer, _shout, messages).value
    want = [m.upper() for m in messages]
    expect(got == want, f"returned {got!r}, expected {want!r}")


@CONVERSE.check("a conversation longer than the pipes can hold",
                hint="If you send every message before reading any reply, both pipes fill "
                     "up and parent and child wait for each other forever. Alternate: send "
                     "one, read one.",
                concept="A pipe holds a fixed amount (64 KiB here); a writer into a full pipe "
                        "sleeps until someone reads.")
def _(answer):
    messages = [f"{n:05d} " + "x" * 100 for n in range(2000)]  # about 200 KB each way
    got = _call(answer, _shout, messages, timeout=2 * checking.CALL_TIMEOUT).value
    expect(isinstance(got, list) and len(got) == len(messages),
           f"expected {len(messages)} replies, got {len(got) if isinstance(got, list) else got!r}")
    wrong = [n for n, (g, m) in enumerate(zip(got, messages, strict=True)) if g != m.upper()]
    expect(not wrong, f"{len(wrong)} replies were wrong, the first at index {wrong[:1]}")


@CONVERSE.check("no zombie and no open descriptor is left behind",
                hint="Each process closes the two pipe ends it does not use, and the ends it "
                     "used once it is done; the parent waits for the child.",
                concept="Every descriptor is a reference to the pipe, and every ended child "
                        "stays a zombie until its parent collects its status.")
def _(answer):
    expect_clean(_call(answer, _shout, ["tidy", "up"]))


# --- 02.pipeline ----------------------------------------------------------------------

PIPELINE = Exercise("02.pipeline", "cmd1 | cmd2 by hand: pipe, fork, dup2, exec", timeout=90)

_SHELL = ("A shell connects the commands by copying the pipe's ends onto descriptors 0 and 1 "
          "before exec; the program then reads and writes its standard streams without "
          "knowing about the pipe.")
_EOF = ("A reader sees end of file only when every copy of the write end is closed: the "
        "parent's and each child's, since a fork copies every descriptor.")


def _pipeline_output(answer, cmd1: list[str], cmd2: list[str], **kwargs) -> tuple:
    text = f"pipeline({cmd1}, {cmd2})"
    return _result_triple(_call(answer, cmd1, cmd2, doing=text, **kwargs).value, text)


@PIPELINE.check("ls -l | wc -l gives the shell's answer",
                hint="First child: its standard output becomes the pipe's write end. Second "
                     "child: its standard input becomes the read end, its standard output the "
                     "write end of the pipe you read. Then exec.", concept=_SHELL)
def _(answer):
    with objects.temp_folder("ls") as folder:
        for name in ("fork", "pipe", "dup2", "exec", "wait", "close", "read"):
            (folder / name).write_text(name)
        cmd1, cmd2 = ["ls", "-l", str(folder)], ["wc", "-l"]
        want = _shell(f"ls -l {shlex.quote(str(folder))} | wc -l")
        got = _pipeline_output(answer, cmd1, cmd2)
    expect(got[0] == want, f"the output was {got[0]!r}; the shell's `ls -l | wc -l` gives "
                           f"{want!r}")


@PIPELINE.check("data really flows through the pipe: printf | sort",
                hint="The second command reads its standard input, descriptor 0: that must "
                     "be the pipe's read end.", concept=_SHELL)
def _(answer):
    got = _pipeline_output(answer, ["printf", "pear\\napple\\nfig\\n"], ["sort"])
    expect(got[0] == "apple\nfig\npear\n",
           f"the output was {got[0]!r}, expected 'apple\\nfig\\npear\\n'")


@PIPELINE.check("an output larger than a pipe holds: seq 100000 | cat",
                hint="Read the second command's output until end of file first, and only "
                     "then wait for the children.",
                concept="A pipe holds 64 KiB here. A program whose output is larger blocks in "
                        "write until someone reads, so it cannot end while its reader waits "
                        "for it to end.")
def _(answer):
    want = _shell("seq 100000")
    got = _pipeline_output(answer, ["seq", "100000"], ["cat"])
    expect(got[0] == want, f"the output was {len(got[0])} of {len(want)} characters "
                           f"({len(want.encode())} bytes, more than a pipe holds): one read "
                           "returns at most what is in the pipe; read until end of file")
    expect(got[1:] == (0, 0), f"seq and cat ended with statuses {got[1:]}, expected (0, 0)")


@PIPELINE.check("both exit statuses come back",
                hint="Wait for both children, and turn each wait status into the number "
                     "os.waitstatus_to_exitcode gives.",
                concept="The wait status packs how a child ended (exit code or signal) into "
                        "one number; decode it, do not return it raw.")
def _(answer):
    cmd1, cmd2 = ["sh", "-c", "echo hi; exit 3"], ["sh", "-c", "cat; exit 4"]
    got = _pipeline_output(answer, cmd1, cmd2)
    raw = any(isinstance(s, int) and s > 255 for s in got[1:])
    expect(got == ("hi\n", 3, 4), f"pipeline({cmd1}, {cmd2}) returned {got!r}, expected "
                                  "('hi\\n', 3, 4)" + (": those look like raw wait statuses "
                                                        "(the exit code sits in the high "
                                                        "byte); decode them" if raw else ""))


@PIPELINE.check("cat sees end of file: every write end gets closed",
                hint="cat ends only when every copy of the pipe's write end is closed: the "
                     "parent's, and the ones each child inherited, before its exec.",
                concept=_EOF)
def _(answer):
    got = _pipeline_output(answer, ["echo", "done"], ["cat"])
    expect(got == ("done\n", 0, 0), f"returned {got!r}, expected ('done\\n', 0, 0)")


@PIPELINE.check("yes | head -n 2: yes dies of SIGPIPE, as in a shell",
                hint="Python ignores SIGPIPE, and exec keeps an ignored signal ignored: give "
                     "SIGPIPE back its default action in each child before exec. And no "
                     "process but head may keep the read end open.",
                concept="A write into a pipe with no reader left raises SIGPIPE, whose default "
                        "action ends the writer quietly: that is how yes learns to stop.")
def _(answer):
    got = _pipeline_output(answer, ["yes"], ["head", "-n", "2"])
    expect(got[0] == "y\ny\n", f"the output was {got[0]!r}, expected 'y\\ny\\n'")
    want = -signal.SIGPIPE
    expect(got[1] == want,
           f"yes ended with status {got[1]!r}, expected {want} (killed by SIGPIPE)"
           + (": it exited with an error instead, so it saw EPIPE because SIGPIPE was still "
              "ignored" if got[1] == 1 else ""))
    expect(got[2] == 0, f"head ended with status {got[2]!r}, expected 0")


@PIPELINE.check("a program that does not exist gives 127, and its child still ends",
                hint="exec raises in the child when the program is missing. Make sure the "
                     "child then ends with code 127, as a shell does, whatever happens.",
                concept="A forked child runs your function's code after the fork; if exec "
                        "fails and the exception is not stopped, the child carries on as a "
                        "second copy of your function.")
def _(answer):
    cmd1 = ["labkit-no-such-program"]
    got = _pipeline_output(answer, cmd1, ["cat"])
    expect(got == ("", 127, 0), f"pipeline({cmd1}, ['cat']) returned {got!r}, expected "
                                "('', 127, 0)")


@PIPELINE.check("no zombie and no open descriptor is left behind",
                hint="Close every pipe end in the parent once the children have them, and "
                     "wait for both children.", concept=_EOF)
def _(answer):
    expect_clean(_call(answer, ["echo", "x"], ["cat"], doing="pipeline(['echo', 'x'], ['cat'])"))


# --- 02.recv_message ------------------------------------------------------------------

RECV = Exercise("02.recv_message", "Whole messages out of a byte stream", timeout=60)

_STREAM = ("A pipe is a stream of bytes with no message boundaries: a read returns whatever "
           "is there, up to the size asked for, and may stop in the middle of a header.")


def _explained(attempt: Attempt, why: str):
    """The answer's value, or a failure that adds ``why`` to the reason it has none."""
    try:
        return attempt.value
    except CheckFailed as e:
        raise CheckFailed(f"{e}; {why}") from None


@RECV.check("a message sent in one piece",
            hint="First the 4-byte header: unpack it as a big-endian unsigned length. Then "
                 "the body, that many bytes.", concept=_STREAM)
def _(answer):
    got = _received(answer, [_frame(b"hello, pipe")], 1).value
    expect(got == [b"hello, pipe"], f"recv_message returned {got[0]!r}, expected "
                                    "b'hello, pipe'")


@RECV.check("a message that trickles in, header included, arrives whole",
            hint="os.read(fd, n) may return fewer than n bytes. Keep reading, appending, "
                 "until you have exactly n: for the header and for the body.", concept=_STREAM)
def _(answer):
    body = random.Random(2).randbytes(3000)
    data = _frame(body)
    cuts = [0, 1, 2, 4, 5, 100, 1000, 1001, 2500, len(data)]
    sizes = ", ".join(str(b - a) for a, b in itertools.pairwise(cuts))
    why = (f"the message arrived in pieces of {sizes} bytes, so a read returned fewer bytes "
           "than asked (a short read)")
    got = _explained(_received(answer, [data[a:b] for a, b in itertools.pairwise(cuts)], 1), why)
    expect(got == [body], f"recv_message returned {_describe(got[0])}, expected the "
                          f"3000-byte message: {why}")


@RECV.check("three messages in one write come out one per call",
            hint="Never read past the end of the current message: the bytes after it belong "
                 "to the next call.", concept=_STREAM)
def _(answer):
    msgs = [b"first", b"second message", b"third"]
    got = _received(answer, [b"".join(_frame(m) for m in msgs)], 3).value
    expect(got == msgs, f"three calls returned {got!r}, expected {msgs!r}"
           + (": the first call read more than its message" if got and got[0] == msgs[0]
              else ""))


@RECV.check("an empty message is b'', and end of file is None",
            hint="A length of 0 is a real (empty) message. Only end of file before the first "
                 "header byte means 'no more messages'.",
            concept="Framing lets the reader tell 'an empty message' (a header saying 0) from "
                    "'the writer is gone' (end of file where a header should start).")
def _(answer):
    got = _received(answer, [_frame(b""), _frame(b"x")], 3).value
    why = ""
    if isinstance(got, list) and len(got) == 3:
        if got[0] is None:
            why = ": the empty message (a header saying 0) came back as None, as if the " \
                  "stream had ended"
        elif got[2] == b"":
            why = ": at end of file it returned b'' instead of None"
    expect(got == [b"", b"x", None], f"three calls returned {got!r}, expected "
                                     f"[b'', b'x', None]{why}")


@RECV.check("end of file inside a message raises EOFError",
            hint="If a read returns b'' after part of the header or body has arrived, the "
                 "message was cut short: raise EOFError.",
            concept="A cut message is an error, not the end of the stream: returning None "
                    "would hide that the sender broke off.")
def _(answer):
    for cut, where in ((2, "in the header"), (7, "in the body")):
        attempt = _received(answer, [_frame(b"abcdefgh")[:cut]], 1)
        r = attempt.result
        expect(not r.returned, f"with end of file {where} your function returned "
                               f"{_describe(r.value[0][0]) if r.returned else ''}, expected "
                               "EOFError")
        expect(r.error_type == "EOFError", f"with end of file {where} your function raised "
                                           f"{r.error_type}, expected EOFError")


@RECV.check("a message bigger than the pipe (1 MiB)",
            hint="The writer can put at most a pipe's capacity in at a time; keep reading "
                 "until the whole length has arrived.", concept=_STREAM)
def _(answer):
    body = random.Random(3).randbytes(1 << 20)
    why = "a pipe holds 64 KiB, so one read returns fewer bytes than asked (a short read)"
    got = _explained(_received(answer, [_frame(body)], 1), why)
    expect(got == [body], f"recv_message returned {_describe(got[0])}, expected 1048576 "
                          f"bytes: {why}")


@RECV.check("nothing is left open", hint="recv_message reads from fd; it opens nothing.")
def _(answer):
    expect_clean(_received(answer, [_frame(b"tidy")], 1))


def _describe(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes" + (" (not the same ones)" if len(value) else "")
    return repr(value)


# --- 02.ask ---------------------------------------------------------------------------

ASK = Exercise("02.ask", "Ask a server through FIFOs", timeout=60)

_FIFOS = ("A FIFO is a pipe with a name: opening it blocks until the other side opens it "
          "too, and the reader sees end of file when the writer closes it. Writes of at most "
          "PIPE_BUF bytes into it are atomic, never mixed with another writer's.")


def _counting_writes(answer, server_path: str, question: str) -> tuple:
    """Run in the answer's process: its value and the sizes of its os.write calls that
    went into the server's FIFO (writes through a file object are not seen)."""
    real, sizes = os.write, []
    target = os.path.realpath(server_path)

    def write(fd, data):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                sizes.append(len(data))
        except OSError:
            pass  # not a descriptor /proc can name: not the server's FIFO
        return real(fd, data)

    os.write = write
    try:
        return answer(server_path, question), sizes
    finally:
        os.write = real


def _ask(answer, server, question: str, count_writes: bool = False) -> Attempt:
    """One call of ``ask`` against ``server``; with ``count_writes``, its value is paired
    with the sizes of its writes into the server's FIFO."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    args = (_counting_writes, answer) if count_writes else (answer,)
    return _call(*args, str(server.path), question,
                 doing=f"ask(server, {question[:20]!r})")


def _ask_once(answer, question: str):
    with fifo_server(lifetime=30) as server:
        attempt = _ask(answer, server, question)
    return attempt, server


@ASK.check("one question, one answer",
           hint="Make your reply FIFO, send the request line to the server's FIFO, then open "
                "your reply FIFO for reading and read the answer.", concept=_FIFOS)
def _(answer):
    attempt, _ = _ask_once(answer, "hello fifo")
    got = attempt.value
    expect(got == "HELLO FIFO", f"ask(server, 'hello fifo') returned {got!r}, expected "
                                "'HELLO FIFO'")


@ASK.check("the request goes in one write",
           hint="Build the whole request line first, then send it with a single write.",
           concept=_FIFOS)
def _(answer):
    with fifo_server(lifetime=30) as server:
        got, sizes = _ask(answer, server, "atomic", count_writes=True).value
    expect(got == "ATOMIC", f"ask(server, 'atomic') returned {got!r}, expected 'ATOMIC'")
    expect(len(sizes) <= 1, f"your request reached the server's FIFO in {len(sizes)} writes "
                            f"({' + '.join(map(str, sizes))} bytes): another client's request "
                            "can land between them; send the whole line in one write")


@ASK.check("a request longer than PIPE_BUF is refused, not sent",
           hint="Before sending, compare the encoded request's length with select.PIPE_BUF; "
                "if it does not fit, raise ValueError.", concept=_FIFOS)
def _(answer):
    question = "q" * PIPE_BUF
    attempt, server = _ask_once(answer, question)
    r = attempt.result
    expect(not r.returned, f"a request of more than {PIPE_BUF} bytes (PIPE_BUF) was accepted: "
                           "the kernel may split such a write and mix other clients' bytes "
                           "into it; raise ValueError instead")
    expect(r.error_type == "ValueError", f"for a request of more than {PIPE_BUF} bytes "
                                         f"(PIPE_BUF) your function raised {r.error_type}, "
                                         "expected ValueError")
    expect(not server.served, "the over-long request was still sent to the server before "
                              "ValueError: check the length first")


@ASK.check("a long answer (more than a pipe holds) arrives whole",
           hint="One read returns at most what is in the pipe; read until end of file "
                "(when the server closes its end).", concept=_FIFOS)
def _(answer):
    attempt, _ = _ask_once(answer, "count to 30000")
    got = attempt.value
    want = " ".join(str(i) for i in range(1, 30001))
    expect(isinstance(got, str) and got == want,
           f"got {len(got) if isinstance(got, str) else got!r} characters of an answer of "
           f"{len(want)}" + (": read until end of file" if isinstance(got, str)
                             and want.startswith(got) else ""))


@ASK.check("a fresh reply FIFO each call, and three clients at once",
           hint="Each call needs a reply FIFO of its own, with a fresh private name: "
                "labkit.objects makes one inside a scope.",
           concept="A fixed name in a shared directory is taken by the first caller: a second "
                   "client cannot make it, or steals the first one's answer.")
def _(answer):
    with fifo_server(lifetime=30) as server:
        for q in ("one", "two"):
            _ = _ask(answer, server, q).value   # raises CheckFailed if it failed
    paths = [p for _, p in server.served]
    expect(len(set(paths)) == 2, f"two calls used the same reply FIFO {paths[0]!r}: make a "
                                 "fresh name each time (a fixed name can be taken by someone "
                                 "else, or by a second client at the same time)")
    questions = ["alpha", "beta", "gamma"]
    with fifo_server(lifetime=30) as server, contextlib.ExitStack() as stack:
        limit = checking.CALL_TIMEOUT
        running = [stack.enter_context(launch(answer, str(server.path), q, timeout=limit))
                   for q in questions]
        got = [_finish(r, limit, f"ask(server, {q!r})").value
               for r, q in zip(running, questions, strict=True)]
    want = [q.upper() for q in questions]
    expect(got == want, f"the three clients got {got!r}, expected {want!r}")


@ASK.check("the reply FIFO is removed and nothing is left open",
           hint="Make the reply FIFO inside a labkit.objects scope, which removes it at the "
                "end of its with block, and close every descriptor you open.",
           concept="A FIFO is a file on disk: it stays until someone unlinks it, long after "
                   "the process that made it has ended.")
def _(answer):
    attempt, server = _ask_once(answer, "clean up")
    left = [p for _, p in server.served if p and os.path.exists(p)]
    for p in left:
        os.unlink(p)
    expect(not left, f"your reply FIFO {left[0] if left else ''} was still there after "
                     "ask returned (the check removed it)")
    expect_clean(attempt)


# --- 02.fix_gather (debug) --------------------------------------------------------------

GATHER = Exercise("02.fix_gather", "The collector that never finishes", kind="debug",
                  timeout=45)
_GATHER_LIMIT = 3.0  # seconds: a correct gather of a few lines takes a fraction of that
# Twenty children, whose leftovers (zombies, if never reaped) the harness then ends: a busy
# machine may need seconds. Only an answer that gathered three lines gets this far.
_GATHER_MANY_LIMIT = 10.0


def _gathered(answer, lines: list[str], limit: float = _GATHER_LIMIT) -> tuple[Attempt, list]:
    expect(callable(answer), f"expected a function, got {answer!r}")
    attempt = _call(answer, lines, timeout=limit, doing=f"gather(<{len(lines)} lines>)")
    got = attempt.value
    expect(isinstance(got, list), f"gather returned {got!r}, expected a list of lines")
    return attempt, got


@GATHER.check("three children's lines come back, sorted",
              hint="When does the parent's read return b''? List every process that holds "
                   "the pipe's write end at that moment.", concept=_EOF)
def _(answer):
    lines = ["pear", "apple", "fig"]
    _, got = _gathered(answer, lines)
    expect(got != [], "no line arrived at all: did each child still have a write end to "
                      "write into when it wrote?")
    expect(got == sorted(lines), f"gather({lines}) returned {got!r}, expected {sorted(lines)}")


@GATHER.check("twenty lines of 4000 bytes, more than a pipe holds, arrive whole",
              hint="Twenty children write more than the pipe can hold at once: the parent "
                   "must keep reading until end of file, and only then wait.",
              concept="A writer blocks while the pipe is full; one read returns at most what "
                      "is in the pipe at that moment, never what is still to come.")
def _(answer):
    lines = [f"{i:02d}" + chr(ord("a") + i) * 3997 for i in range(20)]
    _, got = _gathered(answer, lines, _GATHER_MANY_LIMIT)
    complete = [line for line in got if line in lines]
    expect(got == lines, f"gather returned {len(got)} lines, {len(complete)} of them whole, "
                         f"expected all {len(lines)} ({len(lines) * 4000} bytes in all, more "
                         "than one read returns): read until end of file")


@GATHER.check("no zombie and nothing left open",
              hint="Each fork has its wait, and each pipe end its close.", concept=_EOF)
def _(answer):
    attempt, got = _gathered(answer, ["b", "a"])
    expect(got == ["a", "b"], "the function must work before its cleanup counts: it "
                              f"returned {got!r}, expected ['a', 'b']")
    expect_clean(attempt)
