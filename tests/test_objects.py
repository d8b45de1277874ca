"""labkit.objects: named kernel objects that are private, exclusive, unique and owned."""
from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import posix_ipc
import psutil
import pytest

from labkit import objects, run
from labkit.errors import LabError, NoSpaceError
from labkit.objects import list_objects, scope
from labkit.waiting import wait_until


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_shared_memory_is_private_unique_reserved_and_removed():
    with scope() as objs:
        a = objs.shared_memory(1 << 20)
        b = objs.shared_memory(4096)
        path = f"/dev/shm{a.name}"
        assert a.name != b.name and a.name.startswith(f"/labkit_{os.getuid()}_{os.getpid()}_shm_")
        assert _mode(path) == 0o600
        st = os.stat(path)
        assert st.st_size == 1 << 20 and st.st_blocks * 512 >= 1 << 20  # reserved, not sparse
    assert not os.path.exists(path)


def test_objects_are_removed_even_when_the_block_raises():
    with pytest.raises(RuntimeError), scope() as objs:
        shm = objs.shared_memory(4096)
        sem = objs.semaphore(0)
        raise RuntimeError("boom")
    assert not os.path.exists(f"/dev/shm{shm.name}")
    assert not os.path.exists(f"/dev/shm/sem.{sem.name[1:]}")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4096", True, None])
def test_bad_sizes_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="size must be a whole number of bytes > 0"):
        objects.shared_memory(bad)


def test_a_size_beyond_the_free_space_is_a_clear_error_and_leaves_nothing():
    free = objects.shm_free_bytes()
    with pytest.raises(NoSpaceError, match=r"/dev/shm has only .* free.*--shm-size"):
        objects.shared_memory(free + (1 << 30))


def test_reservation_turns_a_full_filesystem_into_an_error_not_a_sigbus(monkeypatch):
    # Pretend the free-space check passed: posix_fallocate itself must then refuse.
    monkeypatch.setattr(objects, "shm_free_bytes", lambda: 1 << 62)
    too_big = os.statvfs("/dev/shm").f_blocks * os.statvfs("/dev/shm").f_frsize * 2
    with pytest.raises(NoSpaceError, match="cannot reserve"):
        objects.shared_memory(too_big)


def test_semaphore_is_private_and_takes_its_value():
    with scope() as objs:
        sem = objs.semaphore(3)
        assert sem.value == 3
        assert _mode(f"/dev/shm/sem.{sem.name[1:]}") == 0o600


@pytest.mark.parametrize("bad", [-1, 2**40, 1.0, "1"])
def test_bad_semaphore_values_are_refused(bad):
    with pytest.raises(ValueError, match="value must be a whole number from 0 to"):
        objects.semaphore(bad)


@pytest.mark.skipif(not os.path.isdir("/dev/mqueue"), reason="/dev/mqueue is not mounted")
def test_message_queue_is_private():
    with scope() as objs:
        mq = objs.message_queue(4, 128)
        assert mq.max_messages == 4 and mq.max_message_size == 128
        assert _mode(f"/dev/mqueue{mq.name}") == 0o600


@pytest.mark.parametrize("kwargs", [{"max_messages": 0}, {"max_message_size": -1},
                                    {"max_messages": 2**64}, {"max_message_size": 2**31}])
def test_bad_queue_sizes_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be a whole number from 1 to 2147483647"):
        objects.message_queue(**kwargs)


def _exhaust_queues() -> str:
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (200_000, 200_000))
    with scope() as objs:
        try:
            for _ in range(10):
                objs.message_queue()
        except NoSpaceError as e:
            return str(e)
    return "no error"


def test_the_queue_limit_error_says_what_happened_and_what_to_do():
    message = run(_exhaust_queues).value
    assert "RLIMIT_MSGQUEUE" in message and "not" in message and "too many open files" in message


def test_fifo_lives_in_a_private_directory_and_goes_away():
    with scope() as objs:
        path = objs.fifo()
        assert stat.S_ISFIFO(os.stat(path).st_mode) and _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
    assert not path.exists()


def test_socket_paths_are_fresh_private_and_removed_with_their_scope():
    import socket

    with scope() as objs:
        a, b = objs.socket_path("x"), objs.socket_path("x")
        assert a != b and a.parent == b.parent and _mode(a.parent) == 0o700
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(a))
        assert [o.kind for o in list_objects() if o.name == str(a)] == ["socket"]
    assert not a.exists()
    with pytest.raises(ValueError, match="label"):
        objects.socket_path("no/slashes")


def test_a_queue_closed_by_its_user_is_still_removed_with_its_scope():
    if not os.path.isdir("/dev/mqueue"):
        pytest.skip("/dev/mqueue is not mounted")
    with scope() as objs:
        mq = objs.message_queue(2, 64)
        mq.close()
    assert not os.path.exists(f"/dev/mqueue{mq.name}")


def test_the_session_folder_is_private_unguessable_and_not_the_old_fixed_name():
    with scope() as objs:
        path = objs.fifo()
    folder = path.parent
    assert folder.name.startswith(f"labkit_{os.getuid()}_{os.getpid()}_")
    assert folder.name != f"labkit_{os.getuid()}_{os.getpid()}"  # the name others could plant
    assert _mode(folder) == 0o700 and folder.stat().st_uid == os.getuid()


def test_objects_step_around_a_planted_name_and_say_so_when_every_draw_is_taken(monkeypatch):
    planted = objects.lab_name("plant")  # planted as a semaphore and as shared memory
    posix_ipc.Semaphore(planted, posix_ipc.O_CREX, mode=0o600).close()
    posix_ipc.SharedMemory(planted, posix_ipc.O_CREX, mode=0o600, size=0).close_fd()
    try:
        draws = iter([planted])
        real = objects.lab_name
        monkeypatch.setattr(objects, "lab_name", lambda label: next(draws, None) or real(label))
        with scope() as objs:
            sem = objs.semaphore(1)  # the planted name is never opened: a fresh one is drawn
            assert sem.name != planted
        monkeypatch.setattr(objects, "lab_name", lambda label: planted)
        for make in (lambda o: o.semaphore(1), lambda o: o.shared_memory(4096)):
            with scope() as objs, pytest.raises(LabError, match="already taken"):
                make(objs)
    finally:
        posix_ipc.unlink_semaphore(planted)
        posix_ipc.unlink_shared_memory(planted)


FULL_SHM = """
import os, subprocess
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/dev/shm"], check=True)
fd = os.open("/dev/shm/filler", os.O_WRONLY | os.O_CREAT, 0o600)
try:                                        # fill it to the last byte
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.close(fd)
from labkit import objects
from labkit.errors import NoSpaceError
for make in (lambda: objects.semaphore(1), lambda: objects.shared_memory(4096)):
    try:
        make()
        print("created")
    except NoSpaceError as e:
        print("NoSpaceError", e)
"""


def test_a_full_dev_shm_is_a_clear_no_space_error_for_semaphores_and_segments():
    """A real full /dev/shm: a tiny tmpfs mounted in a private mount namespace."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to mount a private, tiny /dev/shm")
    env = {**os.environ, "PYTHONPATH": str(Path(objects.__file__).parents[1])}
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                          "-c", FULL_SHM], capture_output=True, text=True, timeout=60,
                         check=False, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("NoSpaceError") for line in lines), out.stdout
    assert "Errno" not in out.stdout and "/dev/shm" in lines[0] and "labkit clean" in lines[0]


@pytest.mark.parametrize("bad", ["", "has space", "slash/no", "x" * 13, 5])
def test_bad_labels_are_refused(bad):
    with pytest.raises(ValueError, match="label must be 1 to 12 letters or digits"):
        objects.lab_name(bad)


def test_removing_twice_or_a_foreign_object_is_refused():
    shm = objects.shared_memory(4096)
    objects.remove(shm)
    with pytest.raises(ValueError, match="not owned by this scope"):
        objects.remove(shm)


def _dead_pid() -> int:
    return run(os.getpid).value  # a process that has ended and been reaped


def test_clean_removes_only_objects_of_ended_sessions():
    dead = _dead_pid()
    stale_name = f"/labkit_{os.getuid()}_{dead}_shm_abcdef"
    stale = posix_ipc.SharedMemory(stale_name, posix_ipc.O_CREX, mode=0o600, size=4096)
    stale.close_fd()
    with scope() as objs:
        live = objs.shared_memory(4096)
        found = {o.name: o for o in list_objects()}
        assert not found[stale_name].alive and found[live.name].alive
        would = [o.name for o in objects.clean(dry_run=True)]
        assert stale_name in would and live.name not in would
        assert os.path.exists(f"/dev/shm{stale_name}")
        assert stale_name in [o.name for o in objects.clean()]
        assert not os.path.exists(f"/dev/shm{stale_name}")
        assert os.path.exists(f"/dev/shm{live.name}")


def test_the_session_folder_goes_under_xdg_runtime_dir_when_that_is_yours(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    code = "from labkit import objects; print(objects.fifo().parent.parent)"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime),
           "PYTHONPATH": str(Path(objects.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(runtime)
    assert list(runtime.iterdir()) == []  # and the janitor removed it at exit


JANITOR_FROZEN_AT_EXIT = """
import os, signal
from labkit._janitor import CLIENT, JanitorClient
from labkit.session import SESSION_DIR
JanitorClient.EXIT_WAIT = 0.2
CLIENT.start()
print(CLIENT.pid, SESSION_DIR.get(), flush=True)
os.kill(CLIENT.pid, signal.SIGSTOP)  # as on a machine too busy to run it in time
os.waitpid(CLIENT.pid, os.WUNTRACED)  # stopped now (it is our child)
"""


def test_a_janitor_slower_than_the_normal_exit_still_removes_the_session():
    """A normal exit waits a while for the janitor's last sweep, then leaves it to finish:
    a janitor killed at that point (as it was) left the whole session behind."""
    env = {**os.environ, "PYTHONPATH": str(Path(objects.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", JANITOR_FROZEN_AT_EXIT], capture_output=True,
                         text=True, timeout=60, check=False, env=env)
    assert out.returncode == 0, out.stderr
    pid, folder = out.stdout.split()
    janitor = psutil.Process(int(pid))
    assert Path(folder).is_dir() and janitor.status() == psutil.STATUS_STOPPED
    janitor.resume()
    janitor.wait(timeout=30)
    assert not Path(folder).exists()


PYTHON_GONE_THEN_KILLED = """
import os, signal, subprocess, sys, sysconfig
import labkit
from labkit import objects
from labkit._janitor import CLIENT
from labkit.waiting import wait_until
sem, shm, fifo = objects.semaphore(1), objects.shared_memory(4096), objects.fifo()
comm = f"/proc/{CLIENT.pid}/comm"  # the janitor names itself once it has started
wait_until(lambda: open(comm).read().strip() == "labkit-janitor", 30, "the janitor never started")
hidden = {sysconfig.get_path("stdlib"), sysconfig.get_path("purelib"),
          sysconfig.get_path("platlib"), os.path.dirname(labkit.__file__)}
subprocess.run(["sh", "-ec", 'for p; do mount -t tmpfs none "$p"; done', "sh", *hidden],
               check=True)
print(CLIENT.pid, sem.name, shm.name, fifo.parent, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_janitor_sweeps_after_its_python_has_gone():
    """The janitor needs no file once it runs: by the time the kernel dies, the Python
    installation it came from may have changed or gone (a venv replaced, packages
    upgraded, a hub's private mount of Python undone). Here the standard library, the
    packages and labkit are hidden under empty mounts, then the kernel is killed."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to hide the Python installation in a mount namespace")
    env = {**os.environ, "PYTHONPATH": str(Path(objects.__file__).parents[1])}
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable,
                          "-c", PYTHON_GONE_THEN_KILLED], capture_output=True, text=True,
                         timeout=60, check=False, env=env)
    assert out.returncode == -signal.SIGKILL, out.stderr
    pid, sem, shm, folder = out.stdout.split()
    left = {f"/dev/shm/sem.{sem[1:]}": lambda: posix_ipc.unlink_semaphore(sem),
            f"/dev/shm{shm}": lambda: posix_ipc.unlink_shared_memory(shm),
            folder: lambda: shutil.rmtree(folder)}
    try:
        wait_until(lambda: not any(os.path.exists(p) for p in left), 30,
                   lambda: f"the janitor left {[p for p in left if os.path.exists(p)]}")
    finally:
        for path, remove in left.items():
            if os.path.exists(path):
                remove()
        with contextlib.suppress(psutil.Error):
            psutil.Process(int(pid)).wait(timeout=30)
