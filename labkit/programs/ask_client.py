"""A client of a message-queue server, as a program of its own (lesson 06's checks).

Usage: python -m labkit.programs.ask_client REQUEST_QUEUE QUESTION PRIORITY

It makes a private reply queue, sends "REPLY_QUEUE\\nQUESTION" to the server's
REQUEST_QUEUE with PRIORITY, waits up to 5 s for the answer, and prints it with
its priority ("HELLO 3"). It shares nothing with the server but the names.
"""
import sys

import posix_ipc

from labkit import objects


def main() -> None:
    requests_name, question, priority = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with objects.scope() as objs:                  # the reply queue goes at the end of the block
        replies = objs.message_queue(1, 1024, label="reply")
        requests = posix_ipc.MessageQueue(requests_name)   # by name only: the server made it
        requests.send(f"{replies.name}\n{question}".encode(), priority=priority, timeout=5)
        requests.close()
        answer, prio = replies.receive(timeout=5)
        print(answer.decode(), prio)


if __name__ == "__main__":
    main()
