"""Checks for lesson 06's key-value server over a Unix datagram socket (06.kv_server).

The check plays the clients: one of its own, and in one check separate
programs (``labkit/programs/kv_client.py``) that share nothing with the answer
but the socket's path. The server is watched while it runs (see
:mod:`labkit.checks.mq`) and stopped, with the reason, if it hangs.
"""
from __future__ import annotations

import os
import signal
import socket
import stat
from pathlib import Path
from typing import Any

from .. import checking, objects
from ..checking import (
    Attempt,
    Exercise,
    Launched,
    expect,
    expect_clean,
    launch,
)
from ..waiting import wait_until
from .mq import GRACE, end_answer, run_clients, stop_stuck

# --- 06.kv_server ---------------------------------------------------------------------

KV = Exercise("06.kv_server", "A key-value server over a Unix datagram socket", timeout=60)


def _bound(path: Path, running: Any, timeout: float = 3.0) -> None:
    """Wait until the answer has bound a socket at ``path`` (or has ended, or 3 s passed)."""

    def bound() -> bool:
        try:
            return stat.S_ISSOCK(os.stat(path).st_mode)
        except FileNotFoundError:
            return not running.running

    wait_until(bound, timeout, None, every=0.002)


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
                stop_stuck(running, "no socket appeared at the path kv_server was given "
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
                outputs = run_clients("kv_client", [[str(path), str(folder / f"s{k}.sock"),
                                                   *[r.decode() for r in reqs]]
                                                  for k, reqs in enumerate(strangers)],
                                     lambda: running.running)
            if interrupt and running.running:
                running.send_signal("SIGINT")
            if refused:
                end_answer(running)
            else:
                _after_the_last(running, count or total, outputs)
                attempt = running.finish()
        left = path.exists()
    expect(not refused, f"a datagram sent to {path.name} was refused ({refused}): is the "
                        "server's socket a datagram socket (SOCK_DGRAM), bound at the path "
                        "it was given?")
    return attempt, replies, left, outputs


_UNANSWERED = "got no answer at its own address"


def _after_the_last(running: Launched, count: int, outputs: list[str]) -> None:
    """Every request has been sent: the server has GRACE seconds left to end."""
    wait_until(lambda: not running.running, GRACE, None, every=0.01)
    failed = [out for out in outputs if out.startswith("(failed")]
    unanswered = [k for k, out in enumerate(outputs) if "(no reply)" in out]
    stop_stuck(running, f"kv_server was still running {GRACE:g} s after the last of its "
                         f"{count} requests had been sent, and was stopped"
                + (f"; program {unanswered[0]} {_UNANSWERED}" if unanswered else
                   f"; a client program reported {failed[0]}" if failed else
                   ": did some request get no reply, or was one never received?"))


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


@KV.check("SET, then GET from one client",
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


@KV.check("a value keeps its spaces, newlines and emptiness",
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


@KV.check("three unrelated programs, each answered at its own address",
          hint="Answer each request at the address it came from, which the receive gave "
               "you with it, not at one fixed address.",
          concept=_DATAGRAM)
def _(answer):
    strangers = [[f"SET who{k} program{k}".encode(), f"GET who{k}".encode()] for k in range(3)]
    attempt, _, _, outputs = _kv(answer, [], strangers=strangers)
    want = [f"OK|program{k}" for k in range(3)]
    lost = [k for k, out in enumerate(outputs) if out != want[k]]
    expect(not lost, f"the three programs printed {outputs!r}, expected {want!r}: "
                     f"program {lost[0] if lost else ''} {_UNANSWERED}")
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
