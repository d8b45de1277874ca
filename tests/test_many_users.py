"""Twenty students on one server at once: no name collides, nothing crosses over.

Each simulated student is a separate Python process (a separate labkit
session), and, when the test runs as root and other users can run this Python,
a separate user. All twenty start
together and run the shared-memory, semaphore and message-queue experiments of
lessons 03 to 06; each checks that it reads back only what it wrote itself.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import posix_ipc
import pytest
from helpers import read_bytes

from labkit import doctor, mq, objects, run, shm, signals, start
from labkit._janitor import CLIENT
from labkit.cli import main

ROOT = Path(__file__).resolve().parent.parent

USERS = 20
STUDENT = textwrap.dedent("""
    import json, os, sys, time
    token = sys.argv[1].encode()
    ready, go = map(int, sys.argv[2:4])
    from labkit import mq, objects, race, run, shm, sync
    from labkit.objects import list_objects

    os.write(ready, b"+")                  # imported; every student starts at the same moment:
    os.close(ready)
    os.read(go, 1)                         # when the test closes the other end
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
    as_root = os.geteuid() == 0 and _other_users_can_run_python()
    students = []
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    for i in range(USERS):
        token = f"student-{i:02d}-{os.urandom(4).hex()}"
        who = {"user": 62000 + i, "group": 62000 + i, "extra_groups": []} if as_root else {}
        students.append((token, subprocess.Popen(
            [sys.executable, "-c", STUDENT, token, str(ready_w), str(go_r)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
            pass_fds=(ready_w, go_r), **who)))
    os.close(ready_w)
    os.close(go_r)
    read_bytes(ready_r, USERS)  # all have imported labkit (or died: then fewer bytes come)
    os.close(ready_r)
    os.close(go_w)              # and off they go, together
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


# --- two real Unix users on one machine ---------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="needs root and useradd to create a second Unix user")


@pytest.fixture()
def user_b():
    """A fresh Unix user, removed afterwards whatever happens."""
    name = f"lkb{os.urandom(3).hex()}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=30)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30, check=False)


def _as(user, fn, *args):
    """Run ``fn(*args)`` in a forked child that has become ``user``; return its value.

    B cannot read this Python's files (they live under root's home), so
    everything ``fn`` needs is imported here, before the fork. The child
    forgets this session's janitor (it is root's: user B must never talk to
    it) and uses labkit as a session of B's would.
    """
    def become():
        CLIENT._fd, CLIENT._broken = None, True
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        return fn(*args)

    return run(become, show=False, timeout=30).value


def _b_lists_cleans_and_asks_the_doctor():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        codes = [main(["clean", "--dry-run"]), main(["clean"]), main(["doctor"])]
    return (codes, len(objects.list_objects()), len(objects.list_objects(all_users=True)) >= 0,
            len(shm.lab_objects()), [f.topic for f in doctor.diagnose()], out.getvalue())


@needs_root
def test_another_users_live_session_never_breaks_listing_clean_or_doctor(user_b):
    with objects.scope() as objs, objects.temp_folder("live"):
        objs.fifo()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(objs.socket_path()))
            codes, mine, _, segments, topics, out = _as(user_b, _b_lists_cleans_and_asks_the_doctor)
    assert codes == [0, 0, 0], out
    assert mine == 0 and segments == 0 and "leftovers" in topics
    assert "PermissionError" not in out and "0 leftover" in out


def _plant(names):
    for path in names:
        with contextlib.suppress(OSError):
            os.mkdir(path, 0o777)
            os.chmod(path, 0o777)
    return [p for p in names if os.path.isdir(p)]


A_SESSION = textwrap.dedent("""
    import socket, sys
    print(flush=True)
    sys.stdin.readline()                    # B plants its names now
    from labkit import objects
    with objects.scope() as objs, objects.temp_folder("after"):
        fifo = objs.fifo()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(objs.socket_path()))
        print(fifo.parent.name, len(objects.list_objects()), len(objects.clean()))
""")


@needs_root
def test_names_planted_in_tmp_never_stop_a_session(user_b):
    """B creates every name A's session could predict; A's session works all the same."""
    a = subprocess.Popen([sys.executable, "-c", A_SESSION], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    a.stdout.readline()
    guesses = [f"/tmp/labkit_0_{a.pid}", f"/tmp/labkit_0_{a.pid}_fifo"]
    planted = _as(user_b, _plant, guesses)
    try:
        out, err = a.communicate("go\n", timeout=60)
    finally:
        for path in planted:
            shutil.rmtree(path, ignore_errors=True)
    assert planted == guesses, "B could not plant (the test proves nothing)"
    assert a.returncode == 0, err
    folder, listed, cleaned = out.split()
    assert folder.startswith(f"labkit_0_{a.pid}_") and folder not in guesses
    assert int(listed) >= 3 and cleaned == "0"


def _b_tries_to_reach(names):
    reached = {}
    tries = {
        "shm": lambda: posix_ipc.SharedMemory(names["shm"]).close_fd(),
        "sem": lambda: posix_ipc.Semaphore(names["sem"]).close(),
        "mq": lambda: posix_ipc.MessageQueue(names["mq"]).close(),
        "fifo": lambda: os.close(os.open(names["fifo"], os.O_RDONLY | os.O_NONBLOCK)),
        "socket": lambda: socket.socket(socket.AF_UNIX).connect(names["socket"]),
        "folder": lambda: os.listdir(names["folder"]),
        "session folder": lambda: os.listdir(names["session folder"]),
    }
    for what, attempt in tries.items():
        try:
            attempt()
            reached[what] = "opened"
        except (PermissionError, posix_ipc.PermissionsError):
            reached[what] = "denied"
        except (OSError, posix_ipc.Error) as e:
            reached[what] = f"{type(e).__name__}: {e}"
    return reached


@needs_root
def test_none_of_a_users_objects_sockets_or_folders_is_reachable_by_another(user_b):
    with objects.scope() as objs, objects.temp_folder("mine") as folder, \
            mq.socket_server("stream") as server:
        names = {"shm": objs.shared_memory(4096).name, "sem": objs.semaphore(1).name,
                 "mq": objs.message_queue(2, 64).name, "fifo": str(objs.fifo()),
                 "socket": str(server.address), "folder": str(folder),
                 "session folder": str(folder.parent)}
        reached = _as(user_b, _b_tries_to_reach, names)
        assert stat.S_IMODE(os.stat(server.address).st_mode) == 0o600
    assert reached == dict.fromkeys(names, "denied")


# --- the machine-wide queue limit, in a private IPC namespace -----------------------

QUEUES_FULL = textwrap.dedent("""
    import os, subprocess, sys
    subprocess.run(["mount", "-t", "mqueue", "none", "/dev/mqueue"], check=True)
    with open("/proc/sys/fs/mqueue/queues_max", "w") as f:
        f.write("2")
    import posix_ipc
    taken = [posix_ipc.MessageQueue(f"/other{i}", posix_ipc.O_CREX, max_messages=1,
                                    max_message_size=8) for i in range(2)]
    uid = int(sys.argv[1])
    from labkit import doctor, objects
    from labkit._janitor import CLIENT
    CLIENT.not_needed()                     # no janitor for this short session
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
    try:
        objects.message_queue(2, 64)
        print("created")
    except objects.NoSpaceError as e:
        print("NoSpaceError:", e)
    print([str(f) for f in doctor.diagnose() if f.topic == "queues in use"][0])
    print(doctor.report(doctor.diagnose()).splitlines()[-1])
""")


@needs_root
def test_when_other_users_take_every_queue_the_error_and_the_doctor_say_so(user_b):
    if not shutil.which("unshare"):
        pytest.skip("needs unshare for a private IPC namespace")
    out = subprocess.run(["unshare", "--ipc", "--mount", "--propagation", "private",
                          sys.executable, "-c", QUEUES_FULL, str(user_b.pw_uid)],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    error, finding, verdict = lines[0], lines[1], lines[-1]
    assert error.startswith("NoSpaceError:") and "fs.mqueue.queues_max" in error
    assert "shared by every user" in error and "RLIMIT_MSGQUEUE" not in error
    assert finding.startswith("[FAIL] queues in use: 2 of 2")
    assert verdict == "IPC Lab on this machine: not ready"


def _b_signals(pid):
    from labkit.errors import LabError

    try:
        signals.send_and_settle(pid, "SIGUSR1")
    except LabError as e:
        return str(e)
    return "sent"


@needs_root
def test_signalling_another_users_process_is_a_clear_error(user_b):
    with start(time.sleep, 30, timeout=30) as child:
        said = _as(user_b, _b_signals, child.pid)
        assert child.running  # B's signal never arrived
    assert "belongs to another user" in said and "Errno" not in said
