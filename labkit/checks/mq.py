"""Checks for the exercises of lesson 06 (message passing).

Every answer runs through :func:`~labkit.checking.call` or
:func:`~labkit.checking.launch` in a process of its own. Where the answer is a
client, the check itself plays the server (it reads the request from a queue
it made and answers it), so it can look at the request: its priority, and the
reply queue's mode while it exists. Where the answer is a server, the check
plays the clients, and in one check per exercise the clients are separate
programs that share nothing with the answer but a name. Queues or socket files
an answer leaves behind are noticed here even when the answer raised (its own
process cannot report them then), and removed: a queue is found by the name in
its request or among the answer's open descriptors, whatever that name is, and
without /dev/mqueue being mounted.

The answer is watched while it runs rather than left to a time limit: a client
that outlives its own timeout, a server that takes no request, workers that have
all ended while gather still waits. It is stopped then, the check says what it
was waiting for, and where every check would hang the same way the later ones
are not run again.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from multiprocessing.sharedctypes import RawArray, RawValue
from pathlib import Path
from typing import Any

import posix_ipc

from .. import checking, mq, objects
from .._janitor import unlink_name
from ..checking import (
    Attempt,
    CheckFailed,
    CheckTimedOut,
    Exercise,
    Launched,
    NotDone,
    expect,
    expect_clean,
    launch,
)
from ..processes import start
from ..session import MQUEUE_DIR, SESSION_PID

_ROOT = Path(__file__).resolve().parent.parent.parent


# --- helpers the checks share ------------------------------------------------------------


def _session_queues() -> set[str]:
    """Lab queues of this session in /dev/mqueue (an answer run from here carries our pid).

    Empty where the queue filesystem is not mounted: :class:`_Queues` then relies on
    the names it sees in requests and in the answer's descriptors.
    """
    prefix = f"labkit_{os.getuid()}_{SESSION_PID}_"
    return {"/" + e for e in os.listdir(MQUEUE_DIR)
            if e.startswith(prefix)} if MQUEUE_DIR.is_dir() else set()


def _open_queue(name: str) -> posix_ipc.MessageQueue | None:
    """The existing queue ``name``, opened (never created), or None if there is none."""
    try:
        return posix_ipc.MessageQueue(name)
    except (posix_ipc.Error, ValueError):
        return None


def _exists(name: str) -> bool:
    q = _open_queue(name)
    if q is not None:
        q.close()
    return q is not None


def _queue_mode(q: posix_ipc.MessageQueue) -> int:
    # On Linux a queue descriptor is a file descriptor: fstat gives the queue's mode
    # without /dev/mqueue being mounted.
    return stat.S_IMODE(os.fstat(q.mqd).st_mode)


def _queue_fds(pid: int) -> set[str]:
    """Names that may be message queues among process ``pid``'s open descriptors.

    A queue descriptor's link reads ``/name``; a path of the file system never
    looks like that unless it is a file in /, which exists.
    """
    names = set()
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return names
    for entry in entries:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if link.startswith("/") and "/" not in link[1:] and " " not in link \
                and not os.path.lexists(link):
            names.add(link)
    return names


class _Queues:
    """The queues an answer made, whatever their names, so that none outlives a check.

    They are found in the requests the check reads, in the answer's open
    descriptors while it runs, and (where it is mounted) in /dev/mqueue.
    """

    def __init__(self, *ours: str) -> None:
        self.ours = set(ours)
        self.seen: set[str] = set()
        self._before = _session_queues()

    def look(self, pid: int) -> None:
        """Note the queues process ``pid`` has open now."""
        self.seen |= _queue_fds(pid)

    def remove(self) -> list[str]:
        """Remove every queue the answer made that is still there; return their names."""
        names = (self.seen | (_session_queues() - self._before)) - self.ours
        left = sorted(n for n in names if _exists(n))
        for name in left:
            unlink_name("mq", name)
        return left


def _left_message(left: list[str]) -> str:
    return (f"your function left the queue {left[0]} behind (the check removed it): a queue "
            "lives until someone unlinks it, so remove the reply queue you create, also when "
            "you give up with an error")


# A hanging answer is stopped this long after the time it was given, with the reason.
_GRACE = 1.5


def _end(running: Launched) -> None:
    """Kill the answer's process and collect it, whatever it was doing."""
    running.send_signal("SIGKILL")
    with contextlib.suppress(CheckFailed, NotDone):
        running.finish()


def _stop_stuck(running: Launched, why: str, everywhere: bool = False) -> None:
    """If the answer still runs, kill it and fail the check with ``why``.

    If it is ``everywhere`` stuck (every check would find it so), the later checks of
    the exercise are not run: it would hang in the same way there, seconds each time.
    """
    if running.running:
        _end(running)
        raise (CheckTimedOut if everywhere else CheckFailed)(why)


def _strangers(code: str, args_list: list[list[str]], alive: Any,
               timeout: float = 10.0) -> list[str]:
    """Run ``code`` in one brand-new Python program per argument list, all at once.

    They are stopped early if ``alive()`` turns false (the answer they talk to has
    ended) and they have not finished two seconds later.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for args in args_list]
    deadline = time.monotonic() + timeout
    gone: float | None = None
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if gone is None and not alive():
                gone = now
            if now > deadline or (gone is not None and now > gone + 2.0):
                break
            time.sleep(0.005)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode == 0:
            outputs.append(out.strip())
        else:
            outputs.append("(no answer in time)" if p.returncode < 0 else
                           f"(failed: {err.strip()[-300:]})")
    return outputs


# --- 06.ask ---------------------------------------------------------------------------

ASK = Exercise("06.ask", "A client for a message-queue server", timeout=60)


def _serve_one(answer: Any, question: str, priority: int = 0, respond: bool = True,
              timeout: float = 2.0, full: bool = False) -> tuple[Attempt, dict[str, Any]]:
    """Run ``ask`` against a request queue the check reads itself, playing the server.

    Returns the attempt and what the check saw: the request's reply queue
    (``reply_to``), question, priority, the reply queue's ``mode``, and whether
    it was ``left`` after ask returned. A queue ask left is removed here. With
    ``full``, the request queue holds one message already and has no room for more.
    """
    expect(callable(answer), f"expected a function, got {answer!r}")
    info: dict[str, Any] = {}
    with mq.queue(1 if full else 4, 1024, label="requests") as requests:
        if full:
            requests.send(b"/nobody\nthe queue is full already")
        made = _Queues(requests.name)
        try:
            with launch(answer, requests.name, question, priority, timeout,
                        timeout=timeout + checking.CALL_TIMEOUT) as running:
                deadline = time.monotonic() + timeout + _GRACE
                while running.running and time.monotonic() < deadline:
                    made.look(running.pid)
                    if full or "reply_to" in info:
                        time.sleep(0.01)
                        continue
                    try:
                        data, prio = requests.receive(timeout=0.01)
                    except posix_ipc.BusyError:
                        continue
                    _answer_request(data, prio, respond, info)
                    made.seen.add(info["reply_to"])
                # stuck with a server that answers: it would hang in every check
                _stop_stuck(running, _stuck_asking(info, timeout), respond and not full)
                attempt = running.finish()
        finally:
            left = made.remove()
    info["left"] = info.get("reply_to") in left
    info["leaks"] = left
    return attempt, info


def _answer_request(data: bytes, prio: int, respond: bool, info: dict[str, Any]) -> None:
    """Read one request as the server would, note what it shows, and answer it."""
    reply_to, newline, asked = data.decode("utf-8", "replace").partition("\n")
    info.update(reply_to=reply_to, question=asked, priority=prio, newline=bool(newline),
                mode=None)
    replies = _open_queue(reply_to) if newline else None
    if replies is None:
        return
    try:
        info["mode"] = _queue_mode(replies)
        if respond:
            replies.send(asked.upper().encode(), priority=prio, timeout=1)
    except posix_ipc.Error:
        pass            # a reply queue the answer made full or too small: it gets no answer
    finally:
        replies.close()


def _stuck_asking(info: dict[str, Any], timeout: float) -> str:
    waited = (f"ask was still waiting {_GRACE:g} s after its timeout of {timeout:g} s and was "
              "stopped")
    if "reply_to" not in info:
        return (f"{waited}; its request never reached the server's queue: sending must give "
                "up after `timeout` seconds too")
    return (f"{waited}: no answer came, and receiving must give up after `timeout` seconds "
            "(then raise TimeoutError)")


def _asked(attempt: Attempt, info: dict[str, Any]) -> Any:
    if attempt.result.returned:
        expect(info.get("newline"), "no request in the form 'reply queue name\\nquestion' "
               f"reached the server's queue (got {info.get('reply_to', 'nothing')!r})"
               if info else "no request reached the server's queue")
    got = attempt.value
    expect(not isinstance(got, (bytes, bytearray)), f"ask returned bytes {got!r}; the answer "
                                                     "must be text: decode it")
    return got


@ASK.check("one question, one answer, through your own reply queue", points=2,
           hint="Three steps: make a queue of your own, send the server one message naming "
                "it (its name, a newline, the question), then wait on your queue.",
           concept="A queue has no sender address: a server can answer only where the "
                   "request tells it to, so every client brings its own reply queue.")
def _(answer):
    attempt, info = _serve_one(answer, "hello queue")
    got = _asked(attempt, info)
    expect(got == "HELLO QUEUE", f"ask(server, 'hello queue') returned {got!r}, expected "
                                 "'HELLO QUEUE' (the answer as text)")


@ASK.check("text beyond ASCII survives",
           hint="A queue carries bytes: turn the text into UTF-8 bytes on the way out and "
                "back into text on the way in.",
           concept="Messages are bytes, not characters: both ends must agree on an encoding.")
def _(answer):
    attempt, info = _serve_one(answer, "naïve café ☕")
    got = _asked(attempt, info)
    expect(got == "NAÏVE CAFÉ ☕", f"returned {got!r}, expected 'NAÏVE CAFÉ ☕'")


@ASK.check("the priority travels with the request",
           hint="The priority is not part of the text: it is an argument of the send itself.",
           concept="A POSIX queue keeps its messages sorted by priority; the priority is "
                   "given when sending, and receive reports it.")
def _(answer):
    attempt, info = _serve_one(answer, "urgent", priority=7)
    _asked(attempt, info)
    expect(info.get("priority") == 7, f"the request arrived with priority "
                                      f"{info.get('priority')}, expected 7: the priority was "
                                      "lost on the way (it is an argument of send)")


_PRIVATE = ("A queue is a name any process of the machine can open: make yours with labkit, "
            "which gives it a fresh name and mode 600 and removes it at the end of its with "
            "block, even after an error.")


@ASK.check("the reply queue is private (0600) and gone afterwards",
           hint="Let labkit make the reply queue in a with block.", concept=_PRIVATE)
def _(answer):
    attempt, info = _serve_one(answer, "tidy")
    _asked(attempt, info)
    mode = info.get("mode")
    expect(mode == 0o600, f"your reply queue {info.get('reply_to')} had mode "
                          f"{mode or 0:o}, expected 600: anyone could read your answers or "
                          "send you fakes")
    expect(not info["leaks"], _left_message(info["leaks"]) if info["leaks"] else "")
    expect_clean(attempt)


def _clients_at_once(answer: Any, server: str, asks: list[tuple[str, int]]) -> list[str]:
    """Runs as the answer's process: one child per question, all asking at once.

    One process watches the hygiene of all of them: answers measured one by one
    would each see the others' reply queues come and go.
    """
    children = [start(answer, server, q, p, 5.0, timeout=4 * checking.CALL_TIMEOUT,
                      show=False) for q, p in asks]
    results = [c.wait() for c in children]
    if all(r.error_type == "NotImplementedError" for r in results):
        raise NotImplementedError
    return [r.value if r.returned else f"(raised {r.error_type}: {r.error_message})"
            for r in results]


@ASK.check("a real server in a separate program serves a backlog by priority", points=2,
           hint="Three clients ask at once: each needs a reply queue no other client uses, "
                "and its request must carry its priority.",
           concept="The server takes the highest priority first from whatever is waiting; "
                   "clients that run at the same time must never share a reply queue.")
def _(answer):
    expect(callable(answer), f"expected a function, got {answer!r}")
    asks = [("routine", 0), ("urgent", 7), ("soon", 3)]
    with mq.mq_server(paused=True) as server:
        made = _Queues(server.requests)
        try:
            with launch(_clients_at_once, answer, server.requests, asks,
                        timeout=5 * checking.CALL_TIMEOUT) as running:
                requests = posix_ipc.MessageQueue(server.requests)
                try:
                    deadline = time.monotonic() + checking.CALL_TIMEOUT
                    while requests.current_messages < len(asks) and running.running \
                            and time.monotonic() < deadline:
                        time.sleep(0.005)
                finally:
                    requests.close()
                server.resume()
                got = running.finish().value
        finally:
            made.seen |= {s.reply_to for s in server.served if s.reply_to}
            made.remove()
    served = server.served
    names = [s.reply_to for s in served]
    expect(len(set(names)) == len(names), f"the three clients asked for their answers on "
                                          f"the same reply queue {names[0] if names else ''}: "
                                          "clients running at once read each other's answers; "
                                          "each needs a fresh name of its own")
    want = [q.upper() for q, _ in asks]
    expect(got == want, f"the three clients got {got!r}, expected {want!r}")
    order = [(s.question, s.priority) for s in served]
    expect([q for q, _ in order] == ["urgent", "soon", "routine"],
           f"the server served (question, priority) {order}, expected urgent (7), soon (3), "
           "routine (0): the priorities did not travel with the requests")


@ASK.check("a full request queue raises TimeoutError instead of hanging", points=2,
           hint="Sending can wait for room: give it the time limit you were given, and turn "
                "the queue's own 'busy' error into TimeoutError; your queue must still go.",
           concept="A blocking call with no time limit hands your progress to someone else: "
                   "here, to a server that may never read. Every wait needs a bound, and the "
                   "error path must clean up like the normal one.")
def _(answer):
    attempt, info = _serve_one(answer, "anyone?", timeout=0.3, full=True)
    r = attempt.result
    expect(not r.returned, f"ask returned {r.value if r.returned else ''!r} although its "
                           "request could not be sent; expected TimeoutError")
    expect(r.error_type == "TimeoutError", f"ask raised {r.error_type}: {r.error_message}; "
                                           "expected TimeoutError (the caller should not "
                                           "need to know which mechanism timed out)")
    expect(not info["leaks"], _left_message(info["leaks"]) if info["leaks"] else "")


@ASK.check("no answer in time raises TimeoutError",
           hint="Waiting for the answer needs the same time limit, and the same translation "
                "into TimeoutError.",
           concept="A server may be slow, stuck or gone: a client that waits without a bound "
                   "hangs with it. Every exit (answer, time-out, error) removes the reply "
                   "queue.")
def _(answer):
    attempt, info = _serve_one(answer, "is anyone there?", respond=False, timeout=0.3)
    r = attempt.result
    expect(not r.returned, f"ask returned {attempt.value if r.returned else ''!r} although no "
                           "answer came; expected TimeoutError")
    expect(r.error_type == "TimeoutError", f"ask raised {r.error_type}: {r.error_message}; "
                                           "expected TimeoutError (the caller should not "
                                           "need to know which mechanism timed out)")
    expect(not info["leaks"], f"after the time-out, {_left_message(info['leaks'])}"
           if info["leaks"] else "")


# --- 06.serve -------------------------------------------------------------------------

SERVE = Exercise("06.serve", "A message-queue server that never waits for a client",
                 timeout=60)


def _request(requests: posix_ipc.MessageQueue, reply_to: str, question: str,
             priority: int = 0) -> None:
    requests.send(f"{reply_to}\n{question}".encode(), priority=priority, timeout=1)


def _served(attempt: Attempt, count: int) -> list[tuple]:
    got = attempt.value
    expect(isinstance(got, list) and len(got) == count and all(
        isinstance(g, (tuple, list)) and len(g) == 3 for g in got),
        f"serve returned {got!r}; expected a list of {count} (question, priority, status) "
        "tuples")
    return [tuple(g) for g in got]


def _serving(answer: Any, requests: posix_ipc.MessageQueue, count: int) -> Attempt:
    """Run serve on ``count`` waiting requests; stop it, saying why, if it stalls.

    Replying never waits in these checks, so serve has 2 * _GRACE seconds to take
    its first request and _GRACE to take each next one or return after the last:
    a serve that misses either hangs in every check, and the later ones are not run.
    """
    expect(callable(answer), f"expected a function, got {answer!r}")
    with launch(answer, requests.name, count) as running:
        since, left = time.monotonic(), requests.current_messages
        while running.running and time.monotonic() - since < _GRACE * (1 + (left == count)):
            if requests.current_messages != left:
                since, left = time.monotonic(), requests.current_messages
            time.sleep(0.01)
        taken = count - requests.current_messages
        waited = _GRACE * (1 + (taken == 0))
        _stop_stuck(running, f"serve was still running {waited:g} s after taking "
                             + (f"{taken} of its {count} requests, and was stopped: does it "
                                "wait for something after receiving them?" if taken else
                                "no request from its queue, and was stopped: open the "
                                "queue by the name you are given and receive from it"),
                    answer)
        return running.finish()


def _drain(q: posix_ipc.MessageQueue) -> list[tuple[bytes, int]]:
    out = []
    while True:
        try:
            out.append(q.receive(timeout=0))
        except posix_ipc.BusyError:
            return out


_NEVER_WAIT = ("A server that waits for one client stops serving all the others: the slowest "
               "(or a dead) client would decide everyone's progress.")


@SERVE.check("one request answered into the client's reply queue", points=2,
             hint="Each request names the queue to answer on: split it at its first newline "
                  "and open that queue by name.",
             concept="The reply queue belongs to the client: the server only opens it, sends "
                     "one answer and closes it.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as replies:
        _request(requests, replies.name, "hello", 0)
        got = _served(_serving(answer, requests, 1), 1)
        back = _drain(replies)
    expect(got == [("hello", 0, "answered")], f"serve returned {got!r}, expected "
                                              "[('hello', 0, 'answered')]")
    expect(back == [(b"HELLO", 0)], f"the reply queue received {back!r}, expected "
                                    "[(b'HELLO', 0)]")


@SERVE.check("highest priority first, first come first served within one", points=2,
             hint="The queue already hands you the highest priority first; answer each with "
                  "the priority its request came with.",
             concept="Priorities order a POSIX queue; a reply sent at priority 0 loses the "
                     "client's urgency on the way back.")
def _(answer):
    asks = [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5)]
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(8, 1024) as replies:
        for q, p in asks:
            _request(requests, replies.name, q, p)
        got = _served(_serving(answer, requests, len(asks)), len(asks))
        back = _drain(replies)
    want = [("d", 9, "answered"), ("b", 5, "answered"), ("e", 5, "answered"),
            ("a", 0, "answered"), ("c", 0, "answered")]
    expect(got == want, f"serve returned {got!r}, expected {want!r}")
    expect(back == [(q.upper().encode(), p) for q, p, _ in want],
           f"the answers came back as {back!r}: each answer must carry its request's "
           "priority")


@SERVE.check("a full reply queue is skipped, never waited for", points=2,
             hint="Send each answer without waiting at all: a queue with no room then says "
                  "so at once, and that answer is logged as dropped.",
             concept=_NEVER_WAIT)
def _(answer):
    expect(callable(answer), f"expected a function, got {answer!r}")
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(1, 1024) as full, \
            mq.queue(2, 1024) as fine:
        full.send(b"an old answer nobody read")
        _request(requests, full.name, "lost", 3)
        _request(requests, fine.name, "kept", 1)
        with launch(answer, requests.name, 2) as running:
            deadline = time.monotonic() + _GRACE
            while running.running and time.monotonic() < deadline:
                time.sleep(0.01)
            _stop_stuck(running, f"serve was still running {_GRACE:g} s later, stuck on the "
                                 "client whose reply queue is full (the next client "
                                 f"{'got nothing' if not fine.current_messages else 'waited'}"
                                 "): it waited for room instead of dropping that answer")
            got = _served(running.finish(), 2)
        back = _drain(fine)
    expect(got == [("lost", 3, "dropped"), ("kept", 1, "answered")],
           f"serve returned {got!r}, expected [('lost', 3, 'dropped'), ('kept', 1, "
           "'answered')]")
    expect(back == [(b"KEPT", 1)], f"the second client got {back!r}, expected [(b'KEPT', 1)]")


@SERVE.check("a reply queue that does not exist is skipped too",
             hint="Opening a queue that is not there raises an error of its own: that client "
                  "has gone, so log its answer as dropped and carry on. Open, never create.",
             concept=_NEVER_WAIT + " A client that vanished is the same case: its queue "
                                   "is gone.")
def _(answer):
    gone = objects.lab_name("gone")
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as fine:
        _request(requests, gone, "gone", 2)
        _request(requests, fine.name, "here", 1)
        attempt = _serving(answer, requests, 2)
    # labkit may have removed it already as the answer's leftover: it says so if it did
    created = _exists(gone) or any(gone in problem for problem in attempt.problems)
    unlink_name("mq", gone)
    expect(not created, f"serve created the queue {gone} of a client that had gone (the check "
                        "removed it): open a reply queue by its name only, never with a "
                        "create flag")
    got = _served(attempt, 2)
    expect(got == [("gone", 2, "dropped"), ("here", 1, "answered")],
           f"serve returned {got!r}, expected [('gone', 2, 'dropped'), ('here', 1, "
           "'answered')]")


_CLIENT = r'''
import sys, posix_ipc
from labkit import objects
requests_name, question, priority = sys.argv[1], sys.argv[2], int(sys.argv[3])
with objects.scope() as objs:
    replies = objs.message_queue(1, 1024, label="reply")
    requests = posix_ipc.MessageQueue(requests_name)
    requests.send(f"{replies.name}\n{question}".encode(), priority=priority, timeout=5)
    requests.close()
    answer, prio = replies.receive(timeout=5)
    print(answer.decode(), prio)
'''


@SERVE.check("clients in unrelated programs get their answers", points=2,
             hint="Everything a client needs is in its message: the reply queue's name. "
                  "Open it by that name for every request.",
             concept="Unrelated processes share nothing but names: a queue's name is all a "
                     "server needs to reach a client it has never met.")
def _(answer):
    expect(callable(answer), f"expected a function, got {answer!r}")
    asks = [("first program", 1), ("second program", 2), ("third program", 3)]
    with mq.queue(8, 1024, label="requests") as requests, \
            launch(answer, requests.name, len(asks),
                   timeout=4 * checking.CALL_TIMEOUT) as running:
        outputs = _strangers(_CLIENT, [[requests.name, q, str(p)] for q, p in asks],
                             lambda: running.running)
        attempt = running.finish()
    want = [f"{q.upper()} {p}" for q, p in asks]
    expect(outputs == want, f"the three programs printed {outputs!r}, expected {want!r}")
    _served(attempt, len(asks))


@SERVE.check("the caller's queue stays, and nothing is left open",
             hint="Close every queue you open, the request queue and each reply queue, but "
                  "remove none of them: they belong to whoever created them.",
             concept="Closing gives up your descriptor; unlinking removes the name for "
                     "everyone. Only the creator unlinks.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as replies:
        _request(requests, replies.name, "tidy", 0)
        attempt = _serving(answer, requests, 1)
        _served(attempt, 1)
        expect(_exists(requests.name), "the request queue was gone after serve returned: "
                                       "serve must close it, not unlink it")
        expect(_exists(replies.name), "the client's reply queue was gone after serve "
                                      "returned: close it, do not unlink it")
        expect_clean(attempt)


# --- 06.kv_server ---------------------------------------------------------------------

KV = Exercise("06.kv_server", "A key-value server over a Unix datagram socket", timeout=60)


def _bound(path: Path, running: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while running.running and time.monotonic() < deadline:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


def _interruptible(answer: Any, *args: Any) -> Any:
    """Runs as the answer's process: Ctrl-C raises KeyboardInterrupt there, as in a notebook."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return answer(*args)


def _kv(answer: Any, requests: list[bytes], count: int | None = None,
        strangers: list[list[bytes]] | None = None,
        interrupt: bool = False) -> tuple[Attempt, list[Any], bool, list]:
    """Run kv_server at a fresh path; send ``requests`` from a client of our own (and the
    strangers' requests from separate programs); return what happened. With
    ``interrupt``, the server is sent Ctrl-C (SIGINT) after the replies."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    total = len(requests) + sum(len(s) for s in strangers or []) + interrupt
    refused = ""
    with objects.temp_folder("kv") as folder:
        path = folder / "kv.sock"
        with launch(_interruptible, answer, str(path), count or total,
                    timeout=4 * checking.CALL_TIMEOUT) as running:
            _bound(path, running)
            if not path.exists():
                _stop_stuck(running, "no socket appeared at the path kv_server was given "
                                     "within 3 s, and it was stopped: bind a datagram socket "
                                     "there first", everywhere=True)
            replies: list[Any] = []
            outputs: list[str] = []
            if running.running and requests:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as me:
                    me.bind(str(folder / "check.sock"))
                    me.settimeout(2.0)
                    for request in requests:
                        try:
                            me.sendto(request, str(path))
                        except OSError as e:
                            refused = e.strerror or str(e)
                            break
                        try:
                            replies.append(me.recv(1 << 16))
                        except TimeoutError:
                            replies.append("(no reply)")
                            break
            if running.running and strangers:
                outputs = _strangers(_KV_CLIENT, [[str(path), str(folder / f"s{k}.sock"),
                                                   *[r.decode() for r in reqs]]
                                                  for k, reqs in enumerate(strangers)],
                                     lambda: running.running)
            if interrupt and running.running:
                running.send_signal("SIGINT")
            if refused:
                _end(running)
            else:
                _after_the_last(running, count or total, outputs)
                attempt = running.finish()
        left = path.exists()
    expect(not refused, f"a datagram sent to {path.name} was refused ({refused}): is the "
                        "server's socket a datagram socket (SOCK_DGRAM), bound at the path "
                        "it was given?")
    return attempt, replies, left, outputs


def _after_the_last(running: Launched, count: int, outputs: list[str]) -> None:
    """Every request has been sent: the server has _GRACE seconds left to end."""
    deadline = time.monotonic() + _GRACE
    while running.running and time.monotonic() < deadline:
        time.sleep(0.01)
    failed = [out for out in outputs if out.startswith("(failed")]
    _stop_stuck(running, f"kv_server was still running {_GRACE:g} s after the last of its "
                         f"{count} requests had been sent, and was stopped"
                + (f"; a client program reported {failed[0]}" if failed else
                   ": did some request get no reply, or was one never received?"))


_KV_CLIENT = r'''
import socket, sys
server, me = sys.argv[1], sys.argv[2]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.bind(me)
    s.settimeout(5)
    replies = []
    for request in sys.argv[3:]:
        s.sendto(request.encode(), server)
        replies.append(s.recv(1 << 16).decode())
print("|".join(replies))
'''


def _store(attempt: Attempt) -> dict:
    got = attempt.value
    expect(isinstance(got, dict), f"kv_server returned {got!r}; expected the store, a dict "
                                  "of str keys to bytes values")
    return got


def _crashed(attempt: Attempt, what: str) -> None:
    r = attempt.result
    expect(r.returned or not r.error_type,
           f"kv_server raised {r.error_type}: {r.error_message} on {what}: a server must "
           "answer a request it cannot handle (with ERROR), never crash on it")


_DATAGRAM = ("A datagram socket keeps each message whole and tells the receiver who sent it: "
             "the address to answer is part of what you receive.")


@KV.check("SET, then GET from one client", points=2,
          hint="A Unix socket of the datagram kind, bound at the path; each receive that "
               "also gives the sender's address tells you where to send the reply.",
          concept=_DATAGRAM)
def _(answer):
    attempt, replies, _, _ = _kv(answer, [b"SET colour blue", b"GET colour", b"GET size"])
    _crashed(attempt, "SET colour blue, GET colour, GET size")
    expect(replies == [b"OK", b"blue", b"NOT FOUND"], f"the replies were {replies!r}, "
                                                      "expected [b'OK', b'blue', b'NOT FOUND']")
    store = _store(attempt)
    expect(store == {"colour": b"blue"}, f"kv_server returned {store!r}, expected "
                                         "{'colour': b'blue'}")


@KV.check("a value keeps its spaces, newlines and emptiness", points=2,
          hint="Split a SET request at most twice: the value is everything after the key "
               "and its space, whatever it holds.",
          concept="One datagram is one whole message, so a request needs no delimiter of "
                  "its own; only the command and the key are words.")
def _(answer):
    note = b"two words\nand a line"
    attempt, replies, _, _ = _kv(answer, [b"SET note " + note, b"SET empty ", b"GET note",
                                          b"GET empty"])
    _crashed(attempt, "a value with spaces, or an empty value")
    expect(replies[2:3] != [b"two"], f"GET note gave {replies[2:3]!r}: the value was cut at "
                                     "its first space")
    expect(replies == [b"OK", b"OK", note, b""], f"the replies were {replies!r}, expected "
                                                 f"{[b'OK', b'OK', note, b'']!r}")
    store = _store(attempt)
    expect(store == {"note": note, "empty": b""}, f"kv_server returned {store!r}")


@KV.check("a SET replaces the old value",
          hint="A second SET of a key overwrites its value; a dict does that for you.")
def _(answer):
    _, replies, _, _ = _kv(answer, [b"SET k 1", b"SET k 22", b"GET k"])
    expect(replies == [b"OK", b"OK", b"22"], f"the replies were {replies!r}, expected "
                                             "[b'OK', b'OK', b'22']")


@KV.check("a bad request gets an ERROR reply, and the server carries on",
          hint="Anything that is not 'SET key value' or 'GET key' (too few words, a key that "
               "is not UTF-8) gets a reply starting with b'ERROR'; never crash on one.",
          concept="A server is only as robust as its worst client: every input it receives "
                  "is untrusted and must be answered, not obeyed or crashed on.")
def _(answer):
    bad = [b"HELLO", b"GET", b"SET onlykey", b"\xff\xfe"]
    attempt, replies, _, _ = _kv(answer, [*bad, b"SET a b", b"GET a"])
    _crashed(attempt, f"one of the bad requests {bad!r}")
    expect(len(replies) == 6 and all(isinstance(r, bytes) and r.startswith(b"ERROR")
                                     for r in replies[:4]),
           f"the replies to {bad!r} were {replies[:4]!r}; each should start with b'ERROR'")
    expect(replies[4:] == [b"OK", b"b"], f"after the bad requests the replies were "
                                         f"{replies[4:]!r}, expected [b'OK', b'b']")
    _store(attempt)


@KV.check("three unrelated programs, each answered at its own address", points=2,
          hint="Answer each request at the address it came from, which the receive gave "
               "you with it, not at one fixed address.",
          concept=_DATAGRAM)
def _(answer):
    strangers = [[f"SET who{k} program{k}".encode(), f"GET who{k}".encode()] for k in range(3)]
    attempt, _, _, outputs = _kv(answer, [], strangers=strangers)
    want = [f"OK|program{k}" for k in range(3)]
    lost = [k for k, out in enumerate(outputs) if out != want[k]]
    expect(not lost, f"the three programs printed {outputs!r}, expected {want!r}: "
                     f"program {lost[0] if lost else ''} got no answer at its own address")
    store = _store(attempt)
    expect(store == {f"who{k}": f"program{k}".encode() for k in range(3)},
           f"kv_server returned {store!r}")


_SOCKET_FILE = ("bind makes a file at the path that outlives the socket: the server removes "
                "it on every way out, a return, an error or Ctrl-C.")


@KV.check("the socket file is removed and nothing is left open",
          hint="Closing the socket does not remove the file bind made at the path: remove "
               "it yourself before returning.",
          concept=_SOCKET_FILE)
def _(answer):
    attempt, replies, left, _ = _kv(answer, [b"SET x 1"])
    expect(replies == [b"OK"], f"the reply was {replies!r}, expected [b'OK']")
    expect(not left, "the socket file was still there after kv_server returned")
    expect_clean(attempt)


@KV.check("the socket file goes even when the server is interrupted",
          hint="Ctrl-C raises KeyboardInterrupt wherever the server is waiting: remove the "
               "file in a block that runs however the function ends.",
          concept=_SOCKET_FILE)
def _(answer):
    attempt, replies, left, _ = _kv(answer, [b"SET x 1"], interrupt=True)
    expect(replies == [b"OK"], f"the reply was {replies!r}, expected [b'OK']")
    r = attempt.result
    expect(not r.returned, "kv_server returned although it had been interrupted (Ctrl-C) "
                           "while it waited for a request; let KeyboardInterrupt through")
    expect(not left, "the socket file was still there after kv_server was interrupted "
                     "(Ctrl-C) while waiting for its second request: the error path left "
                     "it behind")


# --- 06.gather ------------------------------------------------------------------------

GATHER = Exercise("06.gather", "Results from workers through a multiprocessing.Queue",
                  timeout=60)


class _Noted:
    """The ``fn`` a check hands gather: computes, and notes which process did each item.

    Items are 0 .. n-1; the notes live in shared memory inherited through fork, so
    the check sees what the workers did while the answer is still running.
    """

    def __init__(self, kind: str, n: int) -> None:
        self.kind = kind
        self.calls = RawArray("q", n)    # how many times each item was computed
        self.pids = RawArray("q", n)     # the process that computed it (last)
        self.returned = RawValue("q", 0)  # set once gather has returned

    def note_return(self) -> None:
        self.returned.value = 1

    def __call__(self, x: int) -> Any:
        if self.kind == "pid":
            time.sleep(0.01)      # long enough that one worker cannot take every item
            value: Any = os.getpid()
        elif self.kind == "big":
            value = _big(x)
        else:
            value = x * x
        self.pids[x] = os.getpid()
        self.calls[x] += 1
        return value

    def want(self, x: int) -> Any:
        return _big(x) if self.kind == "big" else x * x


def _big(x: int) -> bytes:
    return bytes([x % 256]) * 200_000


def _gather_and_note(answer: Any, fn: _Noted, items: list[int], workers: int) -> Any:
    """Runs as the answer's process: gather, then a note that it returned.

    The process itself may stay a while longer, handing a large result to the check.
    """
    got = answer(fn, items, workers)
    fn.note_return()
    return got


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie nobody has waited for yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _gather(answer: Any, kind: str, n: int, workers: int) -> tuple[Attempt, _Noted]:
    """Run gather on items 0 .. n-1, watching the workers; a stuck answer is stopped
    as soon as it is clear what it waits for, and the check says what that is."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    fn = _Noted(kind, n)
    items = list(range(n))
    with launch(_gather_and_note, answer, fn, items, workers,
                timeout=3 * checking.CALL_TIMEOUT) as running:
        since, seen = time.monotonic(), -1
        while running.running and not fn.returned.value:
            done = sum(1 for c in fn.calls if c)
            if done != seen:
                since, seen = time.monotonic(), done
            stalled = time.monotonic() - since
            pids = {p for p in fn.pids if p}
            if done and stalled > _GRACE and all(map(_ended, pids)):
                # results lost hang every check; items given to no worker only some
                _stop_stuck(running, _gather_stuck(done, n), done == n)
            if stalled > 2 * _GRACE:
                _stop_stuck(running, _gather_stalled(done, n), done < n)
            time.sleep(0.01)
        return running.finish(), fn


def _gather_stalled(done: int, n: int) -> str:
    late = f"{2 * _GRACE:g} s"
    if done == n:
        return (f"every item had been computed {late} earlier, but the workers had not ended "
                "and gather was still waiting: nobody was reading their results, so they "
                "could not finish writing them into the queue's pipe. Read every result "
                "before you wait for the workers")
    if done == 0:
        return (f"no item had been computed after {late}, and gather was still running: "
                "start the workers, and have each call fn on its share of the items")
    return (f"only {done} of {n} items had been computed, and nothing more happened for "
            f"{late}: gather was stopped")


def _gather_stuck(done: int, n: int) -> str:
    if done < n:
        return (f"only {done} of {n} items were computed and every worker had ended, but "
                "gather was still waiting for the rest: some items were given to no worker")
    return (f"every item was computed and every worker had ended {_GRACE:g} s earlier, but "
            "gather was still waiting for results: they were lost. A worker's puts are "
            "written by the queue's feeder thread, and os._exit (how labkit's workers end) "
            "kills that thread before it has written the last ones")


def _gathered(attempt: Attempt, fn: _Noted) -> dict:
    got = attempt.value
    n = len(fn.calls)
    expect(isinstance(got, dict), f"gather returned {type(got).__name__} {got!r:.60}; "
                                  "expected a dict {item: result}")
    twice = sum(c - 1 for c in fn.calls if c > 1)
    expect(not twice, f"fn was called {sum(fn.calls)} times for {n} items: each item must be "
                      "computed once, by one worker")
    missing = [i for i in range(n) if i not in got]
    expect(not missing, f"{len(missing)} of {n} results are missing (the first: item "
                        f"{missing[0] if missing else ''}){_early(fn, missing)}")
    return got


def _early(fn: _Noted, missing: list[int]) -> str:
    if missing and all(fn.calls[i] for i in missing):
        return (": they were computed, but gather returned before it had received them "
                "(get exactly one result per item, however long they take)")
    return ""


_QUEUE_TRAPS = ("Two traps of multiprocessing.Queue: a put returns before the data is "
                "written (a feeder thread writes it later, and os._exit kills that thread), "
                "and the data goes through a pipe of limited size, which blocks a writer "
                "until someone reads.")


@GATHER.check("every result arrives", points=2,
              hint="Each worker must make sure its last results have really been written "
                   "before it ends; and the parent gets exactly one result per item.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "square", 20, 3)
    got = _gathered(attempt, fn)
    expect(got == {i: i * i for i in range(20)}, "some results are wrong: expected "
                                                 "{item: fn(item)}")


@GATHER.check("the work is shared by the workers",
              hint="Worker i takes every workers-th item starting at i; fn runs in the "
                   "workers, never in the process that called gather.",
              concept="Workers are separate processes: the work is split up front, each "
                      "computes its share, and only the results travel back.")
def _(answer):
    attempt, fn = _gather(answer, "pid", 9, 3)
    _gathered(attempt, fn)
    pids = set(fn.pids)
    expect(attempt.result.pid not in pids, "fn ran in the process that called gather, not "
                                           "in the workers")
    expect(len(pids) == 3, f"the 9 items were computed by {len(pids)} process(es); expected "
                           "3 workers sharing them")


@GATHER.check("results bigger than a pipe holds arrive too", points=2,
              hint="Get every result before you wait for the workers: a worker cannot "
                   "finish writing 200 KB into a 64 KiB pipe until someone reads.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "big", 6, 2)
    got = _gathered(attempt, fn)
    wrong = [i for i in range(6) if got[i] != fn.want(i)]
    expect(not wrong, f"the results of items {wrong} were wrong")


@GATHER.check("one worker and many items: the last one arrives",
              hint="A worker's last results may still be on their way when it ends: make "
                   "sure they have been written first.",
              concept=_QUEUE_TRAPS)
def _(answer):
    attempt, fn = _gather(answer, "square", 50, 1)
    _gathered(attempt, fn)


@GATHER.check("no zombie and no open descriptor is left behind",
              hint="Wait for the workers after reading their results, and close the queue in "
                   "the parent too.",
              concept="Every process you start is waited for, and every descriptor you open "
                      "(a queue holds a pipe) is closed, in the process that opened it.")
def _(answer):
    attempt, fn = _gather(answer, "square", 6, 2)
    _gathered(attempt, fn)
    expect_clean(attempt)
