"""Checks for the exercises of lesson 06 (message passing).

Every answer runs through :func:`~labkit.checking.call` or
:func:`~labkit.checking.launch` in a process of its own. Where the answer is a
client, the check itself plays the server (it reads the request from a queue
it made and answers it), so it can look at the request: its priority, and the
reply queue's mode while it exists. Where the answer is a server, the check
plays the clients, and in one check per exercise the clients are separate
programs that share nothing with the answer but a name. Queues or socket files
an answer leaves behind are noticed here even when the answer raised (its own
process cannot report them then), and removed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import posix_ipc

from .. import checking, mq
from .._janitor import MQUEUE_DIR, SESSION_PID, unlink_name
from ..checking import Attempt, Exercise, call, expect, expect_clean, launch
from ..processes import start

_ROOT = Path(__file__).resolve().parent.parent.parent


# --- helpers the checks share ------------------------------------------------------------


def _session_queues() -> set[str]:
    """Lab queues of this session in /dev/mqueue (an answer run from here carries our pid)."""
    prefix = f"labkit_{os.getuid()}_{SESSION_PID}_"
    return {"/" + e for e in os.listdir(MQUEUE_DIR)
            if e.startswith(prefix)} if MQUEUE_DIR.is_dir() else set()


@contextlib.contextmanager
def _watching_queues(ours: set[str]):
    """Fail the check if queues other than ``ours`` appear during the block and stay."""
    before = _session_queues()
    try:
        yield
    finally:  # even when the answer was killed: its queues must not outlive the check
        left = sorted(_session_queues() - before - ours)
        for name in left:
            unlink_name("mq", name)
    expect(not left, f"your function left the queue {left[0] if left else ''} behind (the "
                     "check removed it): remove the reply queue you create, also when you "
                     "give up with an error")


def _strangers(code: str, args_list: list[list[str]], alive: Any,
               timeout: float = 10.0) -> list[str]:
    """Run ``code`` in one brand-new Python program per argument list, all at once.

    They are stopped early if ``alive()`` turns false (the answer they talk to has
    ended) and they have not finished half a second later.
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
            if now > deadline or (gone is not None and now > gone + 0.5):
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
               timeout: float = 2.0) -> tuple[Attempt, dict[str, Any]]:
    """Run ``ask`` against a request queue the check reads itself, playing the server."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    info: dict[str, Any] = {}
    with mq.queue(4, 1024, label="requests") as requests, \
            _watching_queues({requests.name}), \
            launch(answer, requests.name, question, priority, timeout,
                   timeout=timeout + checking.CALL_TIMEOUT) as running:
        deadline = time.monotonic() + timeout + 1
        while "reply_to" not in info and running.running and time.monotonic() < deadline:
            try:
                data, prio = requests.receive(timeout=0.05)
            except posix_ipc.BusyError:
                continue
            reply_to, newline, asked = data.decode("utf-8", "replace").partition("\n")
            info.update(reply_to=reply_to, question=asked, priority=prio, newline=bool(newline))
            try:
                info["mode"] = stat.S_IMODE(os.stat(MQUEUE_DIR / reply_to.lstrip("/")).st_mode)
            except (OSError, ValueError):
                info["mode"] = None
            if respond and newline and info["mode"] is not None:
                replies = posix_ipc.MessageQueue(reply_to)
                try:
                    replies.send(asked.upper().encode(), priority=prio, timeout=1)
                finally:
                    replies.close()
        attempt = running.finish()
    if "reply_to" in info:
        info["left"] = os.path.exists(MQUEUE_DIR / info["reply_to"].lstrip("/"))
    return attempt, info


def _asked(attempt: Attempt, info: dict[str, Any]) -> Any:
    if attempt.result.returned:
        expect(info.get("newline"), "no request in the form 'reply queue name\\nquestion' "
               f"reached the server's queue (got {info.get('reply_to', 'nothing')!r})"
               if info else "no request reached the server's queue")
    return attempt.value


@ASK.check("one question, one answer, through your own reply queue", points=2,
           hint="Create a reply queue (mq.queue(...)), send f'{replies.name}\\n{question}' "
                "to the queue named `server`, then receive from your reply queue.")
def _(answer):
    attempt, info = _serve_one(answer, "hello queue")
    got = _asked(attempt, info)
    expect(got == "HELLO QUEUE", f"ask(server, 'hello queue') returned {got!r}, expected "
                                 "'HELLO QUEUE' (the answer as text)")


@ASK.check("text beyond ASCII survives",
           hint="Encode the request with .encode() (UTF-8) and decode the answer's bytes.")
def _(answer):
    attempt, info = _serve_one(answer, "naïve café ☕")
    got = _asked(attempt, info)
    expect(got == "NAÏVE CAFÉ ☕", f"returned {got!r}, expected 'NAÏVE CAFÉ ☕'")


@ASK.check("the priority travels with the request",
           hint="q.send(message, priority=priority)")
def _(answer):
    attempt, info = _serve_one(answer, "urgent", priority=7)
    _asked(attempt, info)
    expect(info.get("priority") == 7, f"the request arrived with priority "
                                      f"{info.get('priority')}, expected 7")


@ASK.check("the reply queue is private (0600) and gone afterwards",
           hint="Make it with mq.queue(...) or objects.scope().message_queue(...) in a with "
                "block: private, and removed when the block ends.")
def _(answer):
    attempt, info = _serve_one(answer, "tidy")
    _asked(attempt, info)
    expect(info.get("mode") == 0o600, f"your reply queue {info.get('reply_to')} had mode "
                                      f"{info.get('mode') or 0:o}, expected 600: anyone could "
                                      "read your answers or send you fakes")
    expect(not info.get("left"), f"the reply queue {info.get('reply_to')} was still there "
                                 "after ask returned")
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
           hint="Send with the priority you are given; a server serves its highest "
                "priority first.")
def _(answer):
    expect(callable(answer), f"expected a function, got {answer!r}")
    asks = [("routine", 0), ("urgent", 7), ("soon", 3)]
    with mq.mq_server(paused=True) as server, \
            launch(_clients_at_once, answer, server.requests, asks,
                   timeout=5 * checking.CALL_TIMEOUT) as running:
        requests = posix_ipc.MessageQueue(server.requests)
        try:
            deadline = time.monotonic() + 3 * checking.CALL_TIMEOUT
            while requests.current_messages < len(asks) and time.monotonic() < deadline \
                    and running.running:
                time.sleep(0.005)
        finally:
            requests.close()
        server.resume()
        got = running.finish().value
    want = [q.upper() for q, _ in asks]
    expect(got == want, f"the three clients got {got!r}, expected {want!r}")
    order = [s.question for s in server.served]
    expect(order == ["urgent", "soon", "routine"], f"the server served {order}, expected "
                                                   "['urgent', 'soon', 'routine']")


@ASK.check("a full request queue raises TimeoutError instead of hanging", points=2,
           hint="q.send(..., timeout=timeout) raises posix_ipc.BusyError when the queue stays "
                "full; turn it into TimeoutError (and still remove your reply queue).")
def _(answer):
    expect(callable(answer), f"expected a function, got {answer!r}")
    with mq.queue(1, 1024, label="requests") as requests, _watching_queues({requests.name}):
        requests.send(b"/nobody\nthe queue is full already")
        attempt = call(answer, requests.name, "anyone?", 0, 0.3,
                       timeout=checking.CALL_TIMEOUT)
    r = attempt.result
    expect(not r.returned, f"ask returned {r.value if r.returned else ''!r} although its "
                           "request could not be sent; expected TimeoutError")
    expect(r.error_type == "TimeoutError", f"ask raised {r.error_type}: {r.error_message}; "
                                           "expected TimeoutError")


@ASK.check("no answer in time raises TimeoutError",
           hint="replies.receive(timeout=timeout) raises posix_ipc.BusyError when nothing "
                "comes: raise TimeoutError instead.")
def _(answer):
    attempt, info = _serve_one(answer, "is anyone there?", respond=False, timeout=0.3)
    r = attempt.result
    expect(not r.returned, f"ask returned {attempt.value if r.returned else ''!r} although no "
                           "answer came; expected TimeoutError")
    expect(r.error_type == "TimeoutError", f"ask raised {r.error_type}: {r.error_message}; "
                                           "expected TimeoutError")
    expect(not info.get("left"), "the reply queue was still there after the timeout")


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


def _drain(q: posix_ipc.MessageQueue) -> list[tuple[bytes, int]]:
    out = []
    while True:
        try:
            out.append(q.receive(timeout=0))
        except posix_ipc.BusyError:
            return out


@SERVE.check("one request answered into the client's reply queue", points=2,
             hint="Open the queue named `requests`, receive, split at the first '\\n', open "
                  "the reply queue by its name and send question.upper() to it.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as replies:
        _request(requests, replies.name, "hello", 0)
        got = _served(call(answer, requests.name, 1), 1)
        back = _drain(replies)
    expect(got == [("hello", 0, "answered")], f"serve returned {got!r}, expected "
                                              "[('hello', 0, 'answered')]")
    expect(back == [(b"HELLO", 0)], f"the reply queue received {back!r}, expected "
                                    "[(b'HELLO', 0)]")


@SERVE.check("highest priority first, first come first served within one", points=2,
             hint="The queue already orders messages: receive simply returns the highest "
                  "priority first. Send each answer with its request's priority.")
def _(answer):
    asks = [("a", 0), ("b", 5), ("c", 0), ("d", 9), ("e", 5)]
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(8, 1024) as replies:
        for q, p in asks:
            _request(requests, replies.name, q, p)
        got = _served(call(answer, requests.name, len(asks)), len(asks))
        back = _drain(replies)
    want = [("d", 9, "answered"), ("b", 5, "answered"), ("e", 5, "answered"),
            ("a", 0, "answered"), ("c", 0, "answered")]
    expect(got == want, f"serve returned {got!r}, expected {want!r}")
    expect(back == [(q.upper().encode(), p) for q, p, _ in want],
           f"the answers came back as {back!r}: each with its request's priority, please")


@SERVE.check("a full reply queue is skipped, never waited for", points=2,
             hint="Send the answer with timeout=0 (or block=False): posix_ipc.BusyError means "
                  "the client's queue is full; log 'dropped' and go on to the next request.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(1, 1024) as full, \
            mq.queue(2, 1024) as fine:
        full.send(b"an old answer nobody read")
        _request(requests, full.name, "lost", 3)
        _request(requests, fine.name, "kept", 1)
        got = _served(call(answer, requests.name, 2), 2)
        back = _drain(fine)
    expect(got == [("lost", 3, "dropped"), ("kept", 1, "answered")],
           f"serve returned {got!r}, expected [('lost', 3, 'dropped'), ('kept', 1, "
           "'answered')]")
    expect(back == [(b"KEPT", 1)], f"the second client got {back!r}, expected [(b'KEPT', 1)]")


@SERVE.check("a reply queue that does not exist is skipped too",
             hint="Opening a queue that does not exist raises posix_ipc.ExistentialError: "
                  "log 'dropped' and carry on.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as fine:
        _request(requests, "/labkit_no_such_reply_queue", "gone", 2)
        _request(requests, fine.name, "here", 1)
        got = _served(call(answer, requests.name, 2), 2)
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
                  "Open it by that name for every request.")
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
             hint="Close every queue you open (requests and each reply queue), but do not "
                  "unlink them: they belong to whoever created them.")
def _(answer):
    with mq.queue(8, 1024, label="requests") as requests, mq.queue(2, 1024) as replies:
        _request(requests, replies.name, "tidy", 0)
        attempt = call(answer, requests.name, 1)
        _served(attempt, 1)
        expect(os.path.exists(MQUEUE_DIR / requests.name.lstrip("/")),
               "the request queue was gone after serve returned: serve must close it, not "
               "unlink it")
        expect(os.path.exists(MQUEUE_DIR / replies.name.lstrip("/")),
               "the client's reply queue was gone after serve returned: close it, do not "
               "unlink it")
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


def _kv(answer: Any, requests: list[bytes], count: int | None = None,
        strangers: list[list[bytes]] | None = None) -> tuple[Attempt, list[Any], bool, list]:
    """Run kv_server at a fresh path; send ``requests`` from a client of our own (and the
    strangers' requests from separate programs); return what happened."""
    expect(callable(answer), f"expected a function, got {answer!r}")
    folder = Path(tempfile.mkdtemp(prefix="labkit-kv-"))
    path = folder / "kv.sock"
    total = len(requests) + sum(len(s) for s in strangers or [])
    try:
        with launch(answer, str(path), count or total,
                    timeout=4 * checking.CALL_TIMEOUT) as running:
            _bound(path, running)
            replies: list[Any] = []
            outputs: list[str] = []
            if running.running and requests:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as me:
                    me.bind(str(folder / "check.sock"))
                    me.settimeout(2.0)
                    for request in requests:
                        me.sendto(request, str(path))
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
            attempt = running.finish()
        left = path.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return attempt, replies, left, outputs


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


@KV.check("SET, then GET from one client", points=2,
          hint="socket(AF_UNIX, SOCK_DGRAM), bind(path); then recvfrom gives each request "
               "and the address to sendto the reply.")
def _(answer):
    attempt, replies, _, _ = _kv(answer, [b"SET colour blue", b"GET colour", b"GET size"])
    expect(replies == [b"OK", b"blue", b"NOT FOUND"], f"the replies were {replies!r}, "
                                                      "expected [b'OK', b'blue', b'NOT FOUND']")
    store = _store(attempt)
    expect(store == {"colour": b"blue"}, f"kv_server returned {store!r}, expected "
                                         "{'colour': b'blue'}")


@KV.check("a value keeps its spaces, newlines and emptiness", points=2,
          hint="Split a SET request only twice: request.split(b' ', 2). The value is all "
               "that follows the key, whatever it holds; a datagram is one whole message.")
def _(answer):
    note = b"two words\nand a line"
    attempt, replies, _, _ = _kv(answer, [b"SET note " + note, b"SET empty ", b"GET note",
                                          b"GET empty"])
    expect(replies == [b"OK", b"OK", note, b""], f"the replies were {replies!r}, expected "
                                                 f"{[b'OK', b'OK', note, b'']!r}")
    store = _store(attempt)
    expect(store == {"note": note, "empty": b""}, f"kv_server returned {store!r}")


@KV.check("a SET replaces the old value",
          hint="A dict does this for you: store[key] = value.")
def _(answer):
    _, replies, _, _ = _kv(answer, [b"SET k 1", b"SET k 22", b"GET k"])
    expect(replies == [b"OK", b"OK", b"22"], f"the replies were {replies!r}, expected "
                                             "[b'OK', b'OK', b'22']")


@KV.check("a bad request gets an ERROR reply, and the server carries on",
          hint="Anything that is not 'SET key value' or 'GET key' is answered with a reply "
               "starting with b'ERROR'; never crash on a bad request.")
def _(answer):
    bad = [b"HELLO", b"GET", b"SET onlykey", b"\xff\xfe"]
    attempt, replies, _, _ = _kv(answer, [*bad, b"SET a b", b"GET a"])
    expect(len(replies) == 6 and all(isinstance(r, bytes) and r.startswith(b"ERROR")
                                     for r in replies[:4]),
           f"the replies to {bad!r} were {replies[:4]!r}; each should start with b'ERROR'")
    expect(replies[4:] == [b"OK", b"b"], f"after the bad requests the replies were "
                                         f"{replies[4:]!r}, expected [b'OK', b'b']")
    _store(attempt)


@KV.check("three unrelated programs, each answered at its own address", points=2,
          hint="Reply with sendto(reply, address) to the address recvfrom gave you for that "
               "request, not to a fixed one.")
def _(answer):
    strangers = [[f"SET who{k} program{k}".encode(), f"GET who{k}".encode()] for k in range(3)]
    attempt, _, _, outputs = _kv(answer, [], strangers=strangers)
    want = [f"OK|program{k}" for k in range(3)]
    expect(outputs == want, f"the three programs printed {outputs!r}, expected {want!r}")
    store = _store(attempt)
    expect(store == {f"who{k}": f"program{k}".encode() for k in range(3)},
           f"kv_server returned {store!r}")


@KV.check("the socket file is removed and nothing is left open",
          hint="bind creates a file at path: close the socket and os.unlink(path) before "
               "returning (a finally block does it even after an error).")
def _(answer):
    attempt, replies, left, _ = _kv(answer, [b"SET x 1"])
    expect(replies == [b"OK"], f"the reply was {replies!r}, expected [b'OK']")
    expect(not left, "the socket file was still there after kv_server returned")
    expect_clean(attempt)


# --- 06.gather ------------------------------------------------------------------------

GATHER = Exercise("06.gather", "Results from workers through a multiprocessing.Queue",
                  timeout=60)


def _square(x: int) -> int:
    return x * x


def _pid_of(x: int) -> int:
    time.sleep(0.01)          # long enough that one worker cannot take every item
    return os.getpid()


def _big(x: int) -> bytes:
    return bytes([x % 256]) * 200_000


def _gathered(attempt: Attempt, items: list) -> dict:
    got = attempt.value
    expect(isinstance(got, dict), f"gather returned {type(got).__name__} {got!r:.60}; "
                                  "expected a dict {item: result}")
    missing = [i for i in items if i not in got]
    expect(not missing, f"{len(missing)} of {len(items)} results are missing (the first: "
                        f"item {missing[0] if missing else ''})")
    return got


_TRAP = ("a worker's last puts are still in its feeder thread when labkit ends it with "
         "os._exit: call results.close() and results.join_thread() at the end of each worker")


@GATHER.check("every result arrives", points=2,
              hint="If it hangs: " + _TRAP + ". Count the results you get: exactly "
                   "len(items).")
def _(answer):
    items = list(range(20))
    attempt = call(answer, _square, items, 3)
    got = _gathered(attempt, items)
    expect(got == {i: i * i for i in items}, "some results are wrong: expected "
                                             "{item: fn(item)}")


@GATHER.check("the work is shared by the workers",
              hint="Worker i takes items[i::workers]; the function runs in the workers, not "
                   "in the process that called gather.")
def _(answer):
    items = list(range(9))
    attempt = call(answer, _pid_of, items, 3)
    got = _gathered(attempt, items)
    pids = set(got.values())
    expect(attempt.result.pid not in pids, "fn ran in the process that called gather, not "
                                           "in the workers")
    expect(len(pids) == 3, f"the 9 items were computed by {len(pids)} process(es); expected "
                           "3 workers sharing them")


@GATHER.check("results bigger than a pipe holds arrive too", points=2,
              hint="Get every result *before* you wait for the workers: a worker cannot "
                   "finish flushing 200 KB into a 64 KiB pipe until someone reads.")
def _(answer):
    items = list(range(6))
    attempt = call(answer, _big, items, 2, timeout=3 * checking.CALL_TIMEOUT)
    got = _gathered(attempt, items)
    wrong = [i for i in items if got[i] != _big(i)]
    expect(not wrong, f"the results of items {wrong} were wrong")


@GATHER.check("one worker and many items: the last one arrives",
              hint=_TRAP)
def _(answer):
    items = list(range(50))
    attempt = call(answer, _square, items, 1)
    _gathered(attempt, items)


@GATHER.check("no zombie and no open descriptor is left behind",
              hint="Wait for the workers (running.wait()), and close the queue in the parent "
                   "too: results.close(); results.join_thread().")
def _(answer):
    items = list(range(6))
    attempt = call(answer, _square, items, 2)
    _gathered(attempt, items)
    expect_clean(attempt)

