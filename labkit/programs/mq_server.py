"""A question server reachable only through a POSIX message queue (lesson 06).

Usage: python -m labkit.programs.mq_server [--paused] [--lifetime S] REQUEST_QUEUE WORK

The lab creates REQUEST_QUEUE (a name like /lab_..._requests) and this
server opens it by name: the two processes share nothing else. A request is
one message, "REPLY_QUEUE\\nquestion" in UTF-8, sent with any priority. For
each request, highest priority first, the server works WORK seconds, opens the
client's reply queue by name and sends the question in capitals with the
request's priority. It never waits for a client: a full reply queue loses the
answer, and the log says so. Each request handled is one line of the log,
its status one of the words of labkit.mq.ServeStatus.
"""
import os
import time

import posix_ipc

from labkit.programs import serving


def main() -> None:
    name, work_text = serving.start()
    work = float(work_text)
    requests = posix_ipc.MessageQueue(name)          # open by name: no O_CREAT, the lab made it
    serving.hold()
    serving.log(ready=True, pid=os.getpid())
    order = 0
    while not serving.stopping():
        try:
            data, priority = requests.receive(timeout=0.05)   # wake now and then: stopping?
        except (posix_ipc.BusyError, posix_ipc.SignalError):
            continue
        order += 1
        reply_to, newline, question = data.decode("utf-8", "replace").partition("\n")
        if not newline:
            serving.log(order=order, priority=priority, question=reply_to, reply_to="",
                        status="bad request: no reply queue")
            continue
        if work:
            time.sleep(work)                              # the time a real server would spend
        try:
            replies = posix_ipc.MessageQueue(reply_to)
        except posix_ipc.ExistentialError:
            status = "no such reply queue"
        except posix_ipc.PermissionsError:
            status = "reply queue not ours to open"
        else:
            try:
                replies.send(question.upper().encode("utf-8"), priority=priority, timeout=0)
                status = "answered"
            except posix_ipc.BusyError:                   # timeout=0: never wait for a client
                status = "reply queue full: answer dropped"
            except ValueError:
                status = "answer too long for the reply queue"
            finally:
                replies.close()
        serving.log(order=order, priority=priority, question=question, reply_to=reply_to,
                    status=status)


if __name__ == "__main__":
    main()
