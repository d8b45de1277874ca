"""labkit doctor and labkit clean: honest verdicts, and fixes for what is wrong."""
from __future__ import annotations

import os
import resource
from types import SimpleNamespace

import posix_ipc

from labkit import doctor, run
from labkit.cli import main


def _topics(findings):
    return {f.topic: f for f in findings}


def test_doctor_reports_every_topic_with_a_verdict(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for topic in ("python:", "system:", "posix_ipc:", "cores:", "/dev/shm:", "message queues:",
                  "process limit:", "PID 1:", "leftovers:"):
        assert topic in out
    assert out.rstrip().splitlines()[-1].startswith("IPC Lab on this machine: ready")


def test_a_small_dev_shm_is_flagged_with_the_docker_and_kubernetes_fix(monkeypatch):
    small = SimpleNamespace(f_blocks=16384, f_bavail=16000, f_frsize=4096)  # 64 MiB
    monkeypatch.setattr(doctor.os, "statvfs", lambda path: small)
    shm = _topics(doctor.diagnose())["/dev/shm"]
    assert shm.verdict == doctor.Verdict.WARN and "64.0 MiB" in shm.detail
    assert "--shm-size" in shm.fix and "emptyDir" in shm.fix


def test_low_queue_limits_are_flagged_with_the_sysctl(monkeypatch):
    monkeypatch.setattr(doctor, "mqueue_limits", lambda: {
        "msg_max": 10, "msgsize_max": 8192, "queues_max": 256, "rlimit": 100_000})
    mq = _topics(doctor.diagnose())["message queues"]
    assert mq.verdict == doctor.Verdict.WARN and "ulimit -q" in mq.fix


def _doctor_with_few_processes():
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    return str(_topics(doctor.diagnose())["process limit"])


def test_a_low_process_limit_is_flagged():
    line = run(_doctor_with_few_processes).value
    assert "[warn] process limit: 64 processes" in line and "--pids-limit" in line


def test_clean_lists_what_it_removed_and_spares_live_sessions(capsys):
    dead = run(os.getpid).value
    name = f"/labkit_{os.getuid()}_{dead}_sem_123abc"
    posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600).close()
    assert main(["clean", "--dry-run"]) == 0
    assert f"would remove sem  {name}" in capsys.readouterr().out
    assert main(["clean"]) == 0
    out = capsys.readouterr().out
    assert f"removed sem  {name}" in out and "live sessions and other users'" in out
    assert not os.path.exists(f"/dev/shm/sem.{name[1:]}")


# A kernel that dies with a FIFO, a socket and two temporary folders in its session folder.
# Its janitor is frozen first, as one that was itself killed (an OOM kill, a container
# stop) would be, so what is left is for `labkit clean`.
DEAD_SESSION = """
import os, signal, socket
from labkit import objects
from labkit._janitor import CLIENT
with objects.temp_folder("strace"), objects.temp_folder("survey"):
    fifo = objects.fifo()
    os.kill(CLIENT.pid, signal.SIGSTOP)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(objects.socket_path()))
    print(fifo.parent, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_clean_removes_a_dead_sessions_folder_with_its_temp_folders_and_counts_each(capsys):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(doctor.__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", DEAD_SESSION], capture_output=True, text=True,
                         timeout=60, check=False, env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == -signal.SIGKILL, out.stderr
    folder = Path(out.stdout.strip())
    try:
        assert folder.is_dir() and len(list(folder.iterdir())) == 4
        assert main(["clean", "--dry-run"]) == 0
        assert "5 leftover lab object(s) would remove" in capsys.readouterr().out
        assert folder.is_dir()
        assert main(["clean"]) == 0
        assert "5 leftover lab object(s) removed" in capsys.readouterr().out
        assert not folder.exists()
    finally:
        for p in _janitors_of(folder):
            p.kill()
            p.wait(5)


def _janitors_of(folder):
    import psutil

    found = []  # a janitor's arguments hold its session's prefix, which names the folder
    for p in psutil.process_iter(["cmdline"]):
        if any(arg.startswith("labkit_") and folder.name.startswith(arg)
               for arg in p.info["cmdline"] or []):
            found.append(p)
    return found
