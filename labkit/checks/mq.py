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
import stat
import subprocess
import time
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
from ..runner import end_program, start_module
from ..session import SESSION_PID, lab_entries
from ..waiting import Deadline, wait_until

# --- helpers the checks share ------------------------------------------------------------


def _session_queues() -> set[str]:
    """Lab queues of this session in /dev/mqueue (an answer run from here carries our pid).

    Empty where the queue filesystem is not mounted: :class:`_Queues` then relies on
    the names it sees in requests and in the answer's descriptors.
    """
    return {e.name for e in lab_entries(SESSION_PID) if e.kind == "mq"}


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
    names: set[str] = set()
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
GRACE = 1.5


def end_answer(running: Launched) -> None:
    """Kill the answer's process and collect it, whatever it was doing."""
    running.send_signal("SIGKILL")
    with contextlib.suppress(CheckFailed, NotDone):
        running.finish()


def stop_stuck(running: Launched, why: str, everywhere: bool = False) -> None:
    """If the answer still runs, kill it and fail the check with ``why``.

    If it is ``everywhere`` stuck (every check would find it so), the later checks of
    the exercise are not run: it would hang in the same way there, seconds each time.
    """
    if running.running:
        end_answer(running)
        raise (CheckTimedOut if everywhere else CheckFailed)(why)


def run_clients(program: str, args_list: list[list[str]], alive: Any,
               timeout: float = 10.0) -> list[str]:
    """Run a client ``program`` of labkit/programs/ once per argument list, all at once.

    They are stopped early if ``alive()`` turns false (the answer they talk to has
    ended) and they have not finished two seconds later.
    """
    procs = []
    try:
        for args in args_list:
            procs.append(start_module(f"labkit.programs.{program}", *args, lifetime=timeout,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
        gone: list[float] = []      # when the answer was first seen to have ended

        def settled() -> bool:
            if not gone and not alive():
                gone.append(time.monotonic())
            return all(p.poll() is not None for p in procs) or bool(
                gone and time.monotonic() > gone[0] + 2.0)

        wait_until(settled, timeout, None, every=0.005)
    finally:
        for p in procs:
            end_program(p)
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
                deadline = Deadline(timeout + GRACE)
                while running.running and not deadline.passed:
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
                stop_stuck(running, _stuck_asking(info, timeout), respond and not full)
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
    waited = (f"ask was still waiting {GRACE:g} s after its timeout of {timeout:g} s and was "
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


@ASK.check("one question, one answer, through your own reply queue",
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


@ASK.check("a real server in a separate program serves a backlog by priority",
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
                    wait_until(lambda: requests.current_messages >= len(asks)
                               or not running.running, checking.CALL_TIMEOUT, None,
                               every=0.005)
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


@ASK.check("a full request queue raises TimeoutError instead of hanging",
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

    Replying never waits in these checks, so serve has 2 * GRACE seconds to take
    its first request and GRACE to take each next one or return after the last:
    a serve that misses either hangs in every check, and the later ones are not run.
    """
    expect(callable(answer), f"expected a function, got {answer!r}")
    with launch(answer, requests.name, count) as running:
        since, left = time.monotonic(), requests.current_messages
        while running.running and time.monotonic() - since < GRACE * (1 + (left == count)):
            if requests.current_messages != left:
                since, left = time.monotonic(), requests.current_messages
            time.sleep(0.01)
        taken = count - requests.current_messages
        waited = GRACE * (1 + (taken == 0))
        stop_stuck(running, f"serve was still running {waited:g} s after taking "
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


@SERVE.check("one request answered into the client's reply queue",
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


@SERVE.check("highest priority first, first come first served within one",
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


@SERVE.check("a full reply queue is skipped, never waited for",
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
            wait_until(lambda: not running.running, GRACE, None, every=0.01)
            stop_stuck(running, f"serve was still running {GRACE:g} s later, stuck on the "
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


@SERVE.check("clients in unrelated programs get their answers",
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
        outputs = run_clients("ask_client", [[requests.name, q, str(p)] for q, p in asks],
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
