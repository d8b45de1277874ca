"""What every server program of the lab shares (like the header file of a C book's examples).

A server is started by the lab as ``python SERVER.py [--paused] [--lifetime S] ARGS...``
and talks to the lab through three things only:

* its standard output: one JSON object per line (``log(ready=True)``,
  ``log(order=1, status="answered")``), which the lab reads while it runs;
* SIGTERM, sent when the lab's ``with`` block ends: ``stopping()`` turns true,
  and the server finishes the request in hand, logs it, then returns;
* with ``--paused``, one line on its standard input: ``hold()`` waits for it, so
  requests can pile up first.

A lifetime (60 s unless ``--lifetime`` says otherwise) ends it in any case, and
socket files it binds get mode 0600 (only their owner may connect).
"""
import json
import os
import signal
import sys

_stop_signals: list[int] = []   # SIGTERM's handler appends to it
_paused: list[bool] = []        # [True] when started with --paused


def start() -> list[str]:
    """Set the server up from ``sys.argv``; return the arguments that are its own."""
    args = sys.argv[1:]
    paused = "--paused" in args
    if paused:
        args.remove("--paused")
    lifetime = 60.0
    if "--lifetime" in args:
        at = args.index("--lifetime")
        lifetime = float(args[at + 1])
        del args[at:at + 2]
    os.umask(0o177)                                   # files it makes: 0600
    signal.alarm(max(1, round(lifetime)))             # the safety net
    signal.signal(signal.SIGTERM, lambda signum, frame: _stop_signals.append(signum))
    if paused:
        _paused.append(True)
    return args


def stopping() -> bool:
    """True once the lab has asked the server to stop (SIGTERM)."""
    return bool(_stop_signals)


def log(**fields: object) -> None:
    """One line of the log the lab reads: a JSON object, written and flushed at once."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def hold() -> None:
    """With --paused: say so, then wait for the lab's line on standard input."""
    if _paused:
        log(ready=True)
        sys.stdin.readline()
