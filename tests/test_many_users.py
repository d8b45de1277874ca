"""Twenty students on one server at once: no name collides, nothing crosses over.

Each simulated student is a separate Python process (a separate labkit
session), and, when the test runs as root and other users can run this Python,
a separate user. All twenty start
together and run the shared-memory, semaphore and message-queue experiments of
lessons 03 to 06; each checks that it reads back only what it wrote itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

USERS = 20
STUDENT = textwrap.dedent("""
    import json, os, sys, time
    token = sys.argv[1].encode()
    start_at = float(sys.argv[2])
    from labkit import mq, objects, race, run, shm, sync
    from labkit.objects import list_objects

    while time.time() < start_at:          # every student starts at the same moment
        time.sleep(0.005)
    report = {"uid": os.getuid(), "names": [], "problems": []}

    def read_back(name):                   # another process attaches by name
        with shm.Segment.attach(name) as other:
            return bytes(other.buf[:len(token)])

    def expect(ok, what):
        if not ok:
            report["problems"].append(what)

    with shm.Segment.create(4096, label="mine") as seg:          # lesson 03
        seg.buf[:len(token)] = token
        report["names"].append(seg.name)
        back = run(read_back, seg.name, show=False).value
        expect(back == token, f"read {back!r} from my segment, wrote {token!r}")
        report["names"] += [o.name for o in list_objects()
                            if o.session_pid == os.getpid() and o.name != seg.name]

    locked = race.counter_race(workers=2, iterations=5_000, trials=2,  # lessons 04 and 05
                               flavour="semaphore", pin=None)
    expect(locked.finals == [locked.expected] * 2, f"locked counter gave {locked.finals}")
    buffer = sync.bounded_buffer(producers=2, consumers=2, capacity=4, items=50)
    expect(buffer.delivered_ok, "the bounded buffer lost or repeated an item")

    if mq.supported():                                           # lesson 06
        with mq.queue(max_messages=2, max_message_size=64) as q:
            report["names"].append(q.name)
            q.send(token)
            got, _ = q.receive(timeout=5)
            expect(got == token, f"received {got!r} from my queue, sent {token!r}")
    print(json.dumps(report))
""")


def _other_users_can_run_python() -> bool:
    """Root can make each student a user of their own, if they can reach this Python."""
    try:
        subprocess.run([sys.executable, "-c", "import labkit"], user=62000, group=62000,
                       extra_groups=[], cwd="/", check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False  # e.g. the interpreter lives under a private home directory
    return True


def test_twenty_students_at_once_never_collide():
    start_at = time.time() + 3.0  # room for all of them to import labkit first
    as_root = os.geteuid() == 0 and _other_users_can_run_python()
    students = []
    for i in range(USERS):
        token = f"student-{i:02d}-{os.urandom(4).hex()}"
        who = {"user": 62000 + i, "group": 62000 + i, "extra_groups": []} if as_root else {}
        students.append((token, subprocess.Popen(
            [sys.executable, "-c", STUDENT, token, str(start_at)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd="/", **who)))
    reports, failures = [], []
    for token, proc in students:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(f"{token}: exited {proc.returncode}: {err[-2000:]}")
            continue
        report = json.loads(out.strip().splitlines()[-1])
        failures += [f"{token}: {p}" for p in report["problems"]]
        reports.append(report)
    assert not failures, "\n".join(failures)
    names = [n for r in reports for n in r["names"]]
    assert len(names) == len(set(names)), "two students' objects had the same name"
    if as_root:
        assert len({r["uid"] for r in reports}) == USERS
    for name in names:  # and nothing of theirs is left
        assert not os.path.exists(f"/dev/shm{name}") and not os.path.exists(f"/dev/mqueue{name}")
