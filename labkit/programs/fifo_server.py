"""A question server behind a FIFO (lesson 02).

Usage: python -m labkit.programs.fifo_server REQUEST_FIFO [LIFETIME]

Clients write one line each into REQUEST_FIFO: "REPLY_PATH<TAB>question".
For each, the server opens the FIFO at REPLY_PATH for writing, writes the
answer (the question in capitals; "count to N" gives the numbers 1 to N) and
closes it: the client's end of file. It never creates or truncates a file: a
reply path that is not a FIFO is refused. One line per request on standard
output says what happened ("answered<TAB>REPLY_PATH"); the lab reads them
when it stops the server. It ends after LIFETIME seconds (60) in any case.
"""
import errno
import os
import re
import signal
import stat
import sys
import time


def answer(question: str) -> str:
    count = re.fullmatch(r"count to (\d{1,6})", question.strip())
    if count:
        return " ".join(str(i) for i in range(1, int(count.group(1)) + 1))
    return question.upper()


def log(status: str, reply_path: str) -> None:
    print(status + "\t" + reply_path, flush=True)


def reply(reply_path: str, text: str) -> None:
    # O_NONBLOCK: opening for writing fails with ENXIO until the client opens for reading,
    # so a client that never comes cannot hold the server forever.
    deadline = time.monotonic() + 5
    while True:
        try:
            fd = os.open(reply_path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                log(f"cannot open: {e.strerror}", reply_path)
                return
            if time.monotonic() > deadline:
                log("nobody opened the reply FIFO for reading", reply_path)
                return
            time.sleep(0.002)
    status = "answered"
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            status = "not a FIFO"
        else:
            os.set_blocking(fd, True)
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
    except BrokenPipeError:
        status = "the client stopped reading"
    finally:
        log(status, reply_path)  # before the close: the client's end of file comes after it
        os.close(fd)


def main() -> None:
    path = sys.argv[1]
    lifetime = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    signal.alarm(max(1, round(lifetime)))  # a safety net: never outlive the lab by long
    requests = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # a reader need not wait
    os.open(path, os.O_WRONLY)             # our own writer: no end of file between clients
    os.set_blocking(requests, True)
    with open(requests, encoding="utf-8", errors="replace", newline="\n") as lines:
        for line in lines:
            reply_path, tab, question = line.rstrip("\n").partition("\t")
            if tab:
                reply(reply_path, answer(question))
            else:
                log("bad request", reply_path)


if __name__ == "__main__":
    main()
