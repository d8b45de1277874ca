"""Checks for the exercises of lesson 02 (pipes and named pipes).

Every answer runs through :func:`~labkit.checking.call` in a process of its
own. Where an answer reads from a pipe, the data comes from a feeder child
that waits until the pipe is empty before each next piece, so short reads
happen for certain, not by luck; and the answer's process never holds a write
end, so end of file can come.
"""
from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from .. import checking
from ..checking import Exercise, answer_pid, call, expect, expect_clean, launch
from ..pipes import bytes_waiting, fifo_server
from ..processes import start

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
    deadline = time.monotonic() + 4 * checking.CALL_TIMEOUT
    for n, piece in enumerate(pieces):
        if n:
            while bytes_waiting(w) and time.monotonic() < deadline:
                time.sleep(0.0005)
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
            attempt = call(_receive, answer, r, times)
            feeder.stop()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return attempt


def _shell(command: str) -> str:
    return subprocess.run(command, shell=True, capture_output=True, text=True,
                          check=False).stdout


def _result_triple(got, call_text: str) -> tuple:
    expect(isinstance(got, (tuple, list)) and len(got) == 3,
           f"{call_text} returned {got!r}; expected a tuple (output, status1, status2)")
    expect(isinstance(got[0], str), f"{call_text} returned output {got[0]!r}; expected text "
                                    "(a str): decode the bytes you read")
    return tuple(got)


# --- 02.converse ----------------------------------------------------------------------

CONVERSE = Exercise("02.converse", "A conversation both ways over two pipes", timeout=60)


@CONVERSE.check("three messages come back transformed, in order", points=2,
                hint="Two pipes: one parent->child, one child->parent. For each message, "
                     "write one line, then read one line back.")
def _(answer):
    messages = ["hello", "pipes are one-way", "so we use two"]
    got = call(answer, _shout, messages).value
    want = [m.upper() for m in messages]
    expect(got == want, f"converse(str.upper, {messages!r}) returned {got!r}, expected {want!r}")


@CONVERSE.check("one child does all the transforming",
                hint="fork once, before the loop; only the child calls transform.")
def _(answer):
    got = call(answer, _whoami, ["a", "b", "c", "d"]).value
    expect(isinstance(got, list) and len(got) == 4, f"expected 4 replies, got {got!r}")
    expect(all(isinstance(g, str) and not g.startswith("parent") for g in got),
           "transform ran in the process that called converse, not in a child")
    expect(len(set(got)) == 1, f"the replies came from {len(set(got))} different processes "
                               f"({sorted(set(got))}); one child should answer them all")


@CONVERSE.check("no messages give [] and the child still ends",
                hint="Close your write end: the child's read then returns end of file and "
                     "it can exit; then waitpid.")
def _(answer):
    got = call(answer, _shout, []).value
    expect(got == [], f"converse(str.upper, []) returned {got!r}, expected []")


@CONVERSE.check("text beyond ASCII survives",
                hint="Encode to bytes before os.write and decode whole lines after reading "
                     "(os.fdopen in text mode does both).")
def _(answer):
    messages = ["café", "→ naïve ←", "日本語"]
    got = call(answer, _shout, messages).value
    want = [m.upper() for m in messages]
    expect(got == want, f"returned {got!r}, expected {want!r}")


@CONVERSE.check("a conversation longer than the pipes can hold", points=2,
                hint="If you send every message before reading any reply, both pipes fill "
                     "up and parent and child wait for each other forever. Alternate: send "
                     "one, read one.")
def _(answer):
    messages = [f"{n:05d} " + "x" * 100 for n in range(2000)]  # about 200 KB each way
    got = call(answer, _shout, messages, timeout=3 * checking.CALL_TIMEOUT).value
    expect(isinstance(got, list) and len(got) == len(messages),
           f"expected {len(messages)} replies, got {len(got) if isinstance(got, list) else got!r}")
    wrong = [n for n, (g, m) in enumerate(zip(got, messages)) if g != m.upper()]
    expect(not wrong, f"{len(wrong)} replies were wrong, the first at index {wrong[:1]}")


@CONVERSE.check("no zombie and no open descriptor is left behind",
                hint="Close all four pipe ends you hold (two in the parent, two in the "
                     "child), and waitpid the child.")
def _(answer):
    expect_clean(call(answer, _shout, ["tidy", "up"]))


# --- 02.pipeline ----------------------------------------------------------------------

PIPELINE = Exercise("02.pipeline", "cmd1 | cmd2 by hand: pipe, fork, dup2, exec", timeout=90)


@PIPELINE.check("ls -l | wc -l gives the shell's answer", points=2,
                hint="First child: os.dup2(write end, 1). Second child: os.dup2(read end, 0) "
                     "and os.dup2(the output pipe's write end, 1). Then os.execvp.")
def _(answer):
    with tempfile.TemporaryDirectory(prefix="labkit_ls_") as folder:
        for name in ("fork", "pipe", "dup2", "exec", "wait", "close", "read"):
            Path(folder, name).write_text(name)
        cmd1, cmd2 = ["ls", "-l", folder], ["wc", "-l"]
        want = _shell(f"ls -l {shlex.quote(folder)} | wc -l")
        got = _result_triple(call(answer, cmd1, cmd2).value, f"pipeline({cmd1}, {cmd2})")
    expect(got[0] == want, f"the output was {got[0]!r}; the shell's `ls -l | wc -l` gives "
                           f"{want!r}")


@PIPELINE.check("data really flows through the pipe: printf | sort",
                hint="The second command reads its standard input (descriptor 0): that must "
                     "be the pipe's read end.")
def _(answer):
    cmd1, cmd2 = ["printf", "pear\\napple\\nfig\\n"], ["sort"]
    got = _result_triple(call(answer, cmd1, cmd2).value, f"pipeline({cmd1}, {cmd2})")
    expect(got[0] == "apple\nfig\npear\n",
           f"the output was {got[0]!r}, expected 'apple\\nfig\\npear\\n'")


@PIPELINE.check("both exit statuses come back",
                hint="waitpid both children; os.waitstatus_to_exitcode turns each status into "
                     "a number.")
def _(answer):
    cmd1, cmd2 = ["sh", "-c", "echo hi; exit 3"], ["sh", "-c", "cat; exit 4"]
    got = _result_triple(call(answer, cmd1, cmd2).value, f"pipeline({cmd1}, {cmd2})")
    expect(got == ("hi\n", 3, 4), f"pipeline({cmd1}, {cmd2}) returned {got!r}, expected "
                                  "('hi\\n', 3, 4)")


@PIPELINE.check("cat sees end of file: every write end gets closed", points=2,
                hint="cat ends only when *every* copy of the pipe's write end is closed: the "
                     "parent's, and the one the second child inherited, before its exec.")
def _(answer):
    got = _result_triple(call(answer, ["echo", "done"], ["cat"]).value,
                         "pipeline(['echo', 'done'], ['cat'])")
    expect(got == ("done\n", 0, 0), f"returned {got!r}, expected ('done\\n', 0, 0)")


@PIPELINE.check("yes | head -n 2: yes dies of SIGPIPE, as in a shell", points=2,
                hint="Python ignores SIGPIPE, and exec keeps an ignored signal ignored: in "
                     "each child call signal.signal(signal.SIGPIPE, signal.SIG_DFL) before "
                     "exec. And the parent must close the read end, or yes never learns that "
                     "nobody reads.")
def _(answer):
    got = _result_triple(call(answer, ["yes"], ["head", "-n", "2"]).value,
                         "pipeline(['yes'], ['head', '-n', '2'])")
    expect(got[0] == "y\ny\n", f"the output was {got[0]!r}, expected 'y\\ny\\n'")
    want = -signal.SIGPIPE
    expect(got[1] == want,
           f"yes ended with status {got[1]!r}, expected {want} (killed by SIGPIPE)"
           + (": it exited with an error instead, so it saw EPIPE because SIGPIPE was still "
              "ignored" if got[1] == 1 else ""))
    expect(got[2] == 0, f"head ended with status {got[2]!r}, expected 0")


@PIPELINE.check("a program that does not exist gives 127, and its child still ends",
                hint="exec raises in the child when the program is missing: catch it with "
                     "try/finally and os._exit(127), as a shell does.")
def _(answer):
    cmd1 = ["labkit-no-such-program"]
    got = _result_triple(call(answer, cmd1, ["cat"]).value, f"pipeline({cmd1}, ['cat'])")
    expect(got == ("", 127, 0), f"pipeline({cmd1}, ['cat']) returned {got!r}, expected "
                                "('', 127, 0)")


@PIPELINE.check("no zombie and no open descriptor is left behind",
                hint="Close every pipe end in the parent once the children have them, and "
                     "waitpid both children.")
def _(answer):
    expect_clean(call(answer, ["echo", "x"], ["cat"]))


# --- 02.recv_message ------------------------------------------------------------------

RECV = Exercise("02.recv_message", "Whole messages out of a byte stream", timeout=60)


@RECV.check("a message sent in one piece",
            hint="Read 4 bytes, struct.unpack('!I', ...) them into a length, then read that "
                 "many bytes.")
def _(answer):
    got = _received(answer, [_frame(b"hello, pipe")], 1).value
    expect(got == [b"hello, pipe"], f"recv_message returned {got[0]!r}, expected "
                                    "b'hello, pipe'")


@RECV.check("a message that trickles in, header included, arrives whole", points=2,
            hint="os.read(fd, n) may return fewer than n bytes. Loop, appending, until you "
                 "have exactly n: for the 4 header bytes and for the body.")
def _(answer):
    body = random.Random(2).randbytes(3000)
    data = _frame(body)
    cuts = [0, 1, 2, 4, 5, 100, 1000, 1001, 2500, len(data)]
    got = _received(answer, [data[a:b] for a, b in zip(cuts, cuts[1:])], 1).value
    expect(got == [body], f"recv_message returned {_describe(got[0])}, expected the "
                          "3000-byte message")


@RECV.check("three messages in one write come out one per call", points=2,
            hint="Never read past the end of the current message: the bytes after it belong "
                 "to the next call.")
def _(answer):
    msgs = [b"first", b"second message", b"third"]
    got = _received(answer, [b"".join(_frame(m) for m in msgs)], 3).value
    expect(got == msgs, f"three calls returned {got!r}, expected {msgs!r}"
           + (": the first call read more than its message" if got and got[0] == msgs[0]
              else ""))


@RECV.check("an empty message is b'', and end of file is None",
            hint="A length of 0 is a real (empty) message. Only end of file before the first "
                 "header byte means 'no more messages'.")
def _(answer):
    got = _received(answer, [_frame(b""), _frame(b"x")], 3).value
    expect(got == [b"", b"x", None], f"three calls returned {got!r}, expected "
                                     "[b'', b'x', None]")


@RECV.check("end of file inside a message raises EOFError",
            hint="If os.read returns b'' after some of the header or body has arrived, the "
                 "message was cut short: raise EOFError.")
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
                 "until the whole length has arrived.")
def _(answer):
    body = random.Random(3).randbytes(1 << 20)
    got = _received(answer, [_frame(body)], 1).value
    expect(got == [body], f"recv_message returned {_describe(got[0])}, expected 1048576 bytes")


@RECV.check("nothing is left open", hint="recv_message reads from fd; it opens nothing.")
def _(answer):
    expect_clean(_received(answer, [_frame(b"tidy")], 1))


def _describe(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes" + (" (not the same ones)" if len(value) else "")
    return repr(value)


# --- 02.ask ---------------------------------------------------------------------------

ASK = Exercise("02.ask", "Ask a server through FIFOs", timeout=60)


def _ask_once(answer, question: str):
    with fifo_server(lifetime=30) as server:
        attempt = call(answer, str(server.path), question,
                       timeout=2 * checking.CALL_TIMEOUT)
    return attempt, server


@ASK.check("one question, one answer", points=2,
           hint="Make a reply FIFO, write one line 'reply_path\\tquestion\\n' to the "
                "server's FIFO, then open your reply FIFO for reading and read the answer.")
def _(answer):
    attempt, _ = _ask_once(answer, "hello fifo")
    got = attempt.value
    expect(got == "HELLO FIFO", f"ask(server, 'hello fifo') returned {got!r}, expected "
                                "'HELLO FIFO'")


@ASK.check("a long answer (more than a pipe holds) arrives whole", points=2,
           hint="One read returns at most what is in the pipe; read until end of file "
                "(when the server closes its end).")
def _(answer):
    attempt, _ = _ask_once(answer, "count to 30000")
    got = attempt.value
    want = " ".join(str(i) for i in range(1, 30001))
    expect(isinstance(got, str) and got == want,
           f"got {len(got) if isinstance(got, str) else got!r} characters of an answer of "
           f"{len(want)}" + (": read until end of file" if isinstance(got, str)
                             and want.startswith(got) else ""))


@ASK.check("three clients at once each get their own answer",
           hint="Each call needs a reply FIFO of its own, with a fresh name "
                "(labkit.objects.scope().fifo() makes one).")
def _(answer):
    questions = ["alpha", "beta", "gamma"]
    with fifo_server(lifetime=30) as server, contextlib.ExitStack() as stack:
        running = [stack.enter_context(launch(answer, str(server.path), q,
                                              timeout=2 * checking.CALL_TIMEOUT))
                   for q in questions]
        got = [r.finish().value for r in running]
    want = [q.upper() for q in questions]
    expect(got == want, f"the three clients got {got!r}, expected {want!r}")


@ASK.check("the reply FIFO is removed and nothing is left open",
           hint="Create the reply FIFO inside `with labkit.objects.scope() as objs:` and "
                "close every descriptor you open.")
def _(answer):
    attempt, server = _ask_once(answer, "clean up")
    left = [p for _, p in server.served if p and os.path.exists(p)]
    for p in left:
        os.unlink(p)
    expect(not left, f"your reply FIFO {left[0] if left else ''} was still there after "
                     "ask returned (the check removed it)")
    expect_clean(attempt)
