"""The grader's sandbox against hostile submissions, run by root and by an unprivileged user.

One probe notebook (the real solutions, plus a cell of attacks) is graded in
one batch per identity; the probe cell ends by raising an error that lists
every attack that worked (``breaches=[...]``) and every thing a lab needs
that did work (``sane=[...]``). Its answers are the correct ones, so a
contained probe still scores full marks. Other cases (memory, a killed
grader) get small batches of their own.
"""
from __future__ import annotations

import ast
import grp
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from helpers import ROOT, public_points, sandbox_level

from labkit.grade import Limits, grade

USABLE, HOW = sandbox_level()
pytestmark = pytest.mark.skipif(not USABLE, reason=HOW)

LAB = "00_processes"
FULL = public_points(LAB)
TOKEN = f"labkit-secret-{secrets.token_hex(8)}"
ALLOWED_RW = {"/submission", "/dev/shm", "/dev/mqueue", "/dev/pts"}
SANE = {"submission", "shm", "mqueue", "lo"}

PROBE = r'''
import os, socket, subprocess, sys
B, S = [], []
TOKEN, HOST_UID, PORT = {token!r}, {host_uid!r}, {port!r}
SECRETS = {secrets!r}
def readable(p):
    try:
        with open(p, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
def writable(d):
    p = os.path.join(d, ".probe")
    try:
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        return False
    os.unlink(p)
    return True
if readable("/etc/shadow"): B.append("shadow")
try:
    if set(os.listdir("/root")) - {{".pyenv"}}: B.append("root")
except OSError:
    pass
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for part in ("environ", "cmdline"):
        try:
            data = open(f"/proc/{{pid}}/{{part}}", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if TOKEN in data or any(s in data for s in SECRETS): B.append(f"{{part}}{{pid}}")
if any(TOKEN in v for v in os.environ.values()): B.append("env")
for s in SECRETS:
    if os.path.exists(s): B.append("sees:" + s.rsplit("/", 1)[-1])
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for f in files:
        if f.endswith(".ipynb") and not top.startswith("/submission"):
            try:
                if "BEGIN SOLUTION" in open(os.path.join(top, f), errors="replace").read():
                    B.append("solution:" + f)
            except OSError:
                pass
for d in ("/", "/tmp", "/etc", "/usr", "/root", "/var/tmp", "/dev", "/proc", sys.prefix,
          os.path.dirname(os.path.dirname(__import__("labkit").__file__))):
    if os.path.isdir(d) and writable(d): B.append("write:" + d)
try:
    open("/proc/sys/kernel/hostname", "w").write("pwned")
    B.append("write:sysctl")
except OSError:
    pass
for d in ("/submission", "/dev/shm", "/dev/mqueue"):
    if writable(d): S.append(d.rsplit("/", 1)[-1])
rw = {{l.split()[4] for l in open("/proc/self/mountinfo") if "rw" in l.split()[5].split(",")}}
if rw - {allowed_rw!r}: B.append("rw:" + ",".join(sorted(rw - {allowed_rw!r})))
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    B.append("net")
except OSError:
    pass
if [n for _, n in socket.if_nameindex()] != ["lo"]: B.append("interfaces")
with socket.socket() as srv:
    srv.bind(("127.0.0.1", 0)); srv.listen()
    socket.create_connection(srv.getsockname(), timeout=2).close()
    S.append("lo")
inside, outside, _ = open("/proc/self/uid_map").read().split()
if outside != str(HOST_UID): B.append("uid:" + outside)
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines())
if any(int(status[k], 16) for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb", "CapInh")):
    B.append("caps")
if status["NoNewPrivs"].strip() != "1": B.append("privs")
nested = subprocess.run(["unshare", "-U", "-r", "-m", "sh", "-c",
                         "mount -o remount,rw,bind /usr && touch /usr/.probe"],
                        capture_output=True)
if nested.returncode == 0: B.append("nested")
raise RuntimeError(f"breaches={{B}} sane={{S}}")
'''

MEMORY_HOG_PAIR = r'''
import os
ready_r, ready_w = os.pipe()
hold_r, hold_w = os.pipe()
kids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        try:
            block = b"x" * (300 * 2**20)
            os.write(ready_w, b"r")
            os.close(ready_w)
            os.read(hold_r, 1)
        finally:
            os._exit(0)
    kids.append(pid)
os.close(ready_w)
ready = b""
while len(ready) < 2:  # one read may return one child's byte: wait for both (or their end)
    got = os.read(ready_r, 2 - len(ready))
    if not got:
        break
    ready += got
'''


def _notebook(extra: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / "solutions" / f"{LAB}.ipynb", as_version=4)
    nb.cells += [nbformat.v4.new_code_cell(code) for code in extra]
    return nb


@pytest.fixture(scope="module")
def host_service():
    """A TCP service on the host's loopback that no sandbox may reach."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


@pytest.fixture(scope="module")
def secrets_on_host(tmp_path_factory):
    """Another batch's output folder and a secret file, both outside the allowlist."""
    other = Path(tempfile.mkdtemp(prefix="labkit-other-batch-"))
    (other / "grades.csv").write_text("classmate,00_processes,15,15,ok\n")
    secret = Path(tempfile.mkdtemp(prefix="labkit-secret-")) / "secret.txt"
    secret.write_text(TOKEN)
    yield [str(other), str(secret), str(ROOT / ".git"), str(ROOT / "solutions"),
           str(ROOT / "tests")]
    shutil.rmtree(other)
    shutil.rmtree(secret.parent)


def _probe_result(notes: list[str]) -> tuple[list, set]:
    """(attacks that worked, things a lab needs that worked), from the probe's last error."""
    note = next((n for n in notes if "breaches=" in n), "")
    found = re.search(r"breaches=(\[.*?\]) sane=(\[.*?\])", note)
    assert found, notes
    return ast.literal_eval(found.group(1)), set(ast.literal_eval(found.group(2)))


def _corpus(folder: Path, host_uid: int, port: int, secret_paths: list[str]) -> None:
    probe = PROBE.format(token=TOKEN, host_uid=host_uid, port=port, allowed_rw=ALLOWED_RW,
                         secrets=secret_paths + [str(folder)])
    nbformat.write(_notebook([probe]), folder / "probe.ipynb")
    nbformat.write(_notebook([]), folder / "correct.ipynb")


# --- as root ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def as_root(tmp_path_factory, host_service, secrets_on_host, monkeypatch_module):
    if os.geteuid() != 0:
        pytest.skip("the grader runs as root only when the tests do")
    subs = tmp_path_factory.mktemp("subs")
    out = tmp_path_factory.mktemp("out")
    _corpus(subs, 65534, host_service, secrets_on_host + [str(out)])
    monkeypatch_module.setenv("LABKIT_PLANTED_TOKEN", TOKEN)
    rows = {r.student: r for r in grade(LAB, subs, out, jobs=2, cell_timeout=20, timeout=120)}
    return rows, out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _points_lost(rows: dict) -> str:
    """Each check the probe and the correct answer did not pass, with its message."""
    lost = []
    for who in ("probe", "correct"):
        row = rows[who] if isinstance(rows[who], dict) else vars(rows[who])
        lost += [f"{who}: {c['exercise']}: {c['check']}: {c['message']}"
                 for c in row["checks"] if c["points"] < c["max_points"]]
    return "\n".join(lost)


def test_as_root_no_attack_from_inside_works(as_root):
    assert _probe_result(as_root[0]["probe"].notes) == ([], SANE)


def test_as_root_a_contained_probe_is_still_graded_on_its_answers(as_root):
    rows = as_root[0]
    assert rows["probe"].score == FULL and rows["correct"].score == FULL, _points_lost(rows)
    assert rows["correct"].status == "ok", rows["correct"].notes


def test_the_reports_of_a_batch_are_private_to_its_grader(as_root):
    out = as_root[1]
    for folder in (out, out / "results", out / "feedback"):
        assert folder.stat().st_mode & 0o077 == 0


# --- limits, lifetime ---------------------------------------------------------------------


def test_two_children_together_beyond_the_memory_limit_are_stopped_by_it(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(_notebook([MEMORY_HOG_PAIR]), subs / "hogs.ipynb")
    # The kernel ends the pair within a second or two when it is alone or beside busy loops;
    # once, in a full parallel run, the cell was still at the limit after 10 s (no OOM kill
    # yet): the cell's time is only a backstop, so it is generous.
    rows = grade(LAB, subs, tmp_path / "out", jobs=1, cell_timeout=60, timeout=180,
                 limits=Limits(memory=512 * 2**20))
    if "no cgroup" in HOW:
        pytest.skip(f"no cgroup here: {HOW}")
    assert rows[0].status == "memory limit", rows[0].notes
    assert "512 MiB" in rows[0].notes[0]


FORKS_PAST_THE_LIMIT = r'''
import os
hold_r, hold_w = os.pipe()
try:
    for _ in range(150):
        if os.fork() == 0:
            os.close(hold_w)
            os.read(hold_r, 1)
            os._exit(0)
finally:
    os.close(hold_w)
'''


def test_more_processes_than_the_limit_are_refused_and_named(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(_notebook([FORKS_PAST_THE_LIMIT]), subs / "many.ipynb")
    rows = grade(LAB, subs, tmp_path / "out", jobs=1, cell_timeout=20, timeout=120,
                 limits=Limits(processes=100))
    if "no cgroup" in HOW:
        pytest.skip(f"no cgroup here: {HOW}")
    assert rows[0].status == "process limit", rows[0].notes
    assert "100 processes" in rows[0].notes[0]


def _labkit_cgroups(supervisors: set[int]) -> list[str]:
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs
                  if any(d.startswith(f"labkit-sandbox-{pid}-") for pid in supervisors)]
    return found


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""  # ended, or a zombie


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_sigkilled_grader_leaves_no_process_and_no_cgroup(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(_notebook(["import time\ntime.sleep(600)"]), subs / "sleeper.ipynb")
    grader = subprocess.Popen(
        [sys.executable, "-m", "labkit.cli", "grade", LAB, str(subs), "--out",
         str(tmp_path / "out"), "--jobs", "1", "--cell-timeout", "600"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        sandbox: dict[psutil.Process, str] = {}
        # The notebook runs once there are the zygote, the supervisor, the first process,
        # process 1 and its cell runner (all forks of the zygote: the same command line).
        while time.monotonic() < deadline and sum(
                c.endswith("-m labkit._sandbox") for c in sandbox.values()) < 5:
            time.sleep(0.1)  # polling for a state, with a deadline; not a timing assumption
            sandbox = {p: _cmdline(p) for p in _descendants(grader.pid)}
        assert sandbox, "the sandbox never started"
        supervisors = {p.pid for p, c in sandbox.items()
                       if c.endswith("-m labkit._sandbox")}
        assert supervisors, sandbox
    finally:
        grader.kill()
        grader.wait()
    gone_by = time.monotonic() + 5
    while time.monotonic() < gone_by and ([p for p in sandbox if _alive(p)]
                                          or _labkit_cgroups(supervisors)):
        time.sleep(0.05)
    assert [p for p in sandbox if _alive(p)] == []
    assert _labkit_cgroups(supervisors) == []
    for p in sandbox:  # reparented to us if we are a subreaper; reap what is ours
        try:
            os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child


# --- as an unprivileged user --------------------------------------------------------------


@pytest.fixture(scope="module")
def student_user():
    """A throwaway Unix user, removed afterwards whatever happens."""
    if os.geteuid() != 0:
        yield pwd.getpwuid(os.geteuid())
        return
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed: cannot make an unprivileged user")
    name = f"lkprobe{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        try:
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True, check=False)
        except KeyError:
            pass  # userdel removed the group


def _blocked_folder(path: str) -> str | None:
    """The outermost folder above ``path`` that other users cannot pass through, if any."""
    parts = Path(path).parts
    for i in range(2, len(parts)):
        folder = os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _reach(paths: list[str], work: Path) -> str:
    """Shell steps that make ``paths`` reachable for any user in a private mount namespace:
    each folder above them that others cannot pass through (a pyenv under /root, a clone
    under a 0700 temporary folder) is covered with an empty 0755 tmpfs, and the paths are
    bound back into it. The host's folders stay as they are."""
    paths = [p for p in paths if not any(p != q and p.startswith(q + os.sep) for q in paths)]
    keeps, covers = [], []
    for i, path in enumerate(dict.fromkeys(paths)):
        blocked = _blocked_folder(path)
        if blocked is None:
            continue
        keep = work / f"reach{i}"
        keep.mkdir()
        keeps.append((shlex.quote(path), shlex.quote(str(keep))))
        covers += [] if blocked in covers else [blocked]
    steps = [f"mount --bind {path} {keep}" for path, keep in keeps]
    steps += [f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(c)}" for c in covers]
    steps += [f"mkdir -p {path} && mount --bind {keep} {path}" for path, keep in keeps]
    return "".join(f"{step} && " for step in steps)


def _as_user(user: pwd.struct_passwd, argv: list[str], work: Path) -> subprocess.CompletedProcess:
    """Run ``argv`` as ``user``. When we are root, in a private mount namespace where the
    interpreter and the course are reachable (see :func:`_reach`), then with the user's ids,
    no groups and no capabilities."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
           "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "LABKIT_PLANTED_TOKEN": TOKEN}
    if os.geteuid() != 0:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
    reach = _reach([os.path.realpath(sys.base_prefix), str(ROOT), sys.prefix], work)
    script = (f"{reach}exec setpriv --reuid {user.pw_uid} --regid {user.pw_gid} "
              "--clear-groups --inh-caps=-all --bounding-set=-all -- \"$@\"")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           "sh", *argv], env=env, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def as_user(student_user, host_service, secrets_on_host):
    work = Path(tempfile.mkdtemp(prefix="labkit-user-grade-"))
    try:
        os.chmod(work, 0o755)
        subs, out = work / "subs", work / "out"
        subs.mkdir()
        _corpus(subs, student_user.pw_uid, host_service, secrets_on_host + [str(out)])
        for p in [work, subs, *subs.iterdir()]:
            os.chown(p, student_user.pw_uid, student_user.pw_gid)
        done = _as_user(student_user, [sys.executable, "-m", "labkit.cli", "grade", LAB,
                                       str(subs), "--out", str(out), "--jobs", "2",
                                       "--cell-timeout", "20", "--root", str(ROOT)], work)
        if "cannot isolate submissions here" in done.stderr + done.stdout:
            pytest.skip(f"no sandbox for an unprivileged user here: {done.stderr[-300:]}")
        assert done.returncode == 0, done.stderr[-2000:]
        rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
        yield rows, done.stdout
    finally:
        shutil.rmtree(work)


def test_unprivileged_grader_states_its_isolation(as_user):
    first = as_user[1].splitlines()[0]
    assert first.startswith("isolation: ") and "your own uid" in first


def test_unprivileged_no_attack_from_inside_works(as_user):
    rows = as_user[0]
    assert _probe_result(rows["probe"]["notes"]) == ([], SANE)
    assert rows["probe"]["score"] == FULL and rows["correct"]["score"] == FULL, \
        _points_lost(rows)
