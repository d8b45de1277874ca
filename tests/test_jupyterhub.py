"""Three students on one JupyterHub, each a real Unix user, running lesson 03 at once.

This is the shared server of a course (The Littlest JupyterHub, a lab machine):
JupyterHub from PyPI with configurable-http-proxy from npm (``make`` installs it
into ``.hub/``), a shared-password login and ``LocalProcessSpawner``, so each
student's server and kernel run as that student. The test creates the users,
logs each in through the hub in Chromium, runs most of lesson 03 in the three
browsers at the same time, and then checks from outside what must hold on a
shared machine: each student's objects belong to them with mode 0600 and the
others cannot open them; ``labkit clean --dry-run``, ``clean`` and ``doctor``
work for each beside the others' live sessions; once the hub has stopped the
servers, nothing of theirs is left (processes, ``/dev/shm``, ``/dev/mqueue``,
temporary folders). The users are removed afterwards, also when the test fails.

Why a private mount namespace: the Python running the tests may live where other
users cannot reach it (pyenv under ``/root``, mode 0700). Rather than copying a
gigabyte or opening ``/root``, the hub runs under ``unshare --mount``, which
bind-mounts the interpreter, the installed packages and ``labkit`` read-only into
a fresh world-readable folder. Everything the users run lives in that namespace,
and the mounts vanish with it: nothing on the host changes but the users.

Needs root (to create users and switch to them), Chromium, the proxy and
JupyterHub; otherwise it is skipped with the reason. ``.ci/run`` provides all.
"""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from helpers import ROOT, stop_process
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNEL_IDLE,
    OUTPUTS,
    SETTINGS,
    _free_port,
    _problems_shown,
    sync_api,
)

from labkit.session import MQUEUE_DIR, SHM_DIR
from labkit.waiting import wait_until

ARTIFACTS = ROOT / "artifacts" / "jupyterhub"
PROXY = ROOT / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
LESSON = ROOT / "notebooks" / "03_shared_memory.ipynb"
STUDENTS = 3
TOOLS = ("unshare", "nsenter", "runuser", "useradd", "userdel", "mount")


def _why_not() -> str:
    """Why this machine cannot run the test ('' if it can)."""
    if os.geteuid() != 0:
        return "needs root: it creates Unix users and spawns a server as each"
    if CHROMIUM is None:
        return "Debian's chromium is not installed"
    if not os.access(PROXY, os.X_OK):
        return f"configurable-http-proxy is not installed in {PROXY.parent} (make does it with npm)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing system tools: {', '.join(missing)}"
    if subprocess.run(["unshare", "--mount", "true"], check=False).returncode != 0:
        return "cannot make a mount namespace here (unshare --mount needs CAP_SYS_ADMIN)"
    return ""


WHY_NOT = _why_not()
# In a parallel run, never beside the browser test: both drive Chromium and Jupyter servers.
pytestmark = [pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "runs"),
              pytest.mark.one_at_a_time("chromium")]
pytest.importorskip("jupyterhub", reason="jupyterhub is not installed (pip install -e '.[test]')")

# The last cell of each student's notebook: objects that stay open until the server
# stops, so the test can look at them from outside. socket_server is a separate
# program: it must end with the kernel too.
PROBE = """\
import contextlib, json, os
from labkit import mq, objects
held = contextlib.ExitStack()
server = held.enter_context(mq.socket_server("stream", lifetime=600))
kept = {"shm": objects.shared_memory(4096, "hub").name,
        "sem": objects.semaphore(0, "hub").name,
        "fifo": str(objects.fifo("hub")),
        "socket": str(server.address)}
if mq.supported():
    kept["mq"] = objects.message_queue(2, 64, "hub").name
print("PROBE " + json.dumps({"uid": os.getuid(), "kept": kept}))
"""

# Run as another student: which of these paths can I open? (Must be none.)
PEEK = """\
import json, os, socket, sys
reached = []
for path in json.loads(sys.argv[1]):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        elif path.endswith(".sock"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
        else:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        continue
    reached.append(path)
print(json.dumps(reached))
"""

# How far Run All got, from the notebook's model (an error stops Run All; the page may not
# have drawn it yet): [code cells run, code cells, the errors shown].
PROGRESS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const code = panel.content.widgets.filter(c => c.model.type === 'code');
    const errors = code.flatMap(c => c.model.toJSON().outputs)
                       .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
    const idle = panel.sessionContext.session.kernel.status === 'idle';
    return [code.filter(c => c.model.executionCount !== null).length, code.length, errors, idle];
}"""
FINISHED = f"() => {{ const [run, all, errors, idle] = ({PROGRESS})(); " \
           "return idle && (run === all || errors.length > 0); }"

# In the hub's mount namespace: bind each (source, target) pair read-only, then exec.
MOUNTS = 'while [ "$1" != -- ]; do mount --bind -o ro "$1" "$2"; shift 2; done; shift; exec "$@"'


@dataclass(frozen=True)
class Hub:
    """A running hub: its address, the namespace to enter, and the users' environment."""

    url: str
    pid: int
    python: str
    env: dict[str, str]
    log: Path


def _lesson_part() -> nbformat.NotebookNode:
    """Lesson 03 up to its benchmarks (timings, not behaviour), then the probe cell."""
    nb = nbformat.read(LESSON, as_version=4)
    stop = next(i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and "copy_benchmark" in c.source)
    nb.cells = nb.cells[:stop] + [nbformat.v4.new_code_cell(PROBE)]
    return nb


@contextlib.contextmanager
def unix_users(n: int) -> Iterator[list[pwd.struct_passwd]]:
    """``n`` new Unix users with homes; on the way out, their processes, files and selves go."""
    tag = secrets.token_hex(3)
    made: list[pwd.struct_passwd] = []
    try:
        for i in range(n):
            name = f"ipclab{tag}{i}"
            subprocess.run(["useradd", "--create-home", "--user-group", "--shell",
                            "/usr/sbin/nologin", "--comment", "IPC Lab JupyterHub test", name],
                           check=True, capture_output=True, text=True)
            made.append(pwd.getpwnam(name))
        yield made
    finally:
        uids = {u.pw_uid for u in made}
        for p in _processes_of(uids):
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(_processes_of(uids), timeout=10)
        for path in _files_of(uids):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        failed = []
        for user in made:
            done = subprocess.run(["userdel", "--remove", user.pw_name],
                                  check=False, capture_output=True, text=True)
            if done.returncode not in (0, 12):  # 12: no mail spool to remove
                failed.append(f"{user.pw_name}: {done.stderr.strip()}")
        assert not failed, f"could not remove the test users: {failed}"


def _processes_of(uids: set[int]) -> list[psutil.Process]:
    """These users' living processes. Their zombies that were orphaned to us (the test
    process is a subreaper) are dead, not leaks: they are reaped here."""
    found = []
    for p in psutil.process_iter(["uids", "status", "ppid"]):
        ids = p.info["uids"]
        if not ids or not uids & {ids.real, ids.effective}:
            continue
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            if p.info["ppid"] == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(p.pid, os.WNOHANG)
            continue
        found.append(p)
    return found


def _files_of(uids: set[int]) -> list[Path]:
    """What these users own in /dev/shm, /dev/mqueue and the temporary folders."""
    found = []
    for folder in {SHM_DIR, MQUEUE_DIR, Path(tempfile.gettempdir()), Path("/tmp")}:
        if folder.is_dir():
            for entry in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if entry.lstat().st_uid in uids:
                        found.append(entry)
    return found


def _prepare_home(user: pwd.struct_passwd, notebook: nbformat.NotebookNode) -> None:
    """The lesson, and JupyterLab settings that render every cell and never save."""
    home = Path(user.pw_dir)
    nbformat.write(notebook, home / LESSON.name)
    for name, values in SETTINGS.items():
        path = home / ".jupyter" / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for path in [home, *home.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)


def _reachable_python(top: Path) -> tuple[list[str], str]:
    """Mount pairs that show this Python and its packages under ``top``; the python to run.

    ``top/venv`` is a virtual environment of its own whose base is ``top/python``
    (the interpreter's prefix) and whose lib, share and etc are this one's.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    pairs = [sys.base_prefix, str(top / "python")]
    (top / "python").mkdir()
    venv = top / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(top / "python" / "bin" / version)
    (venv / "pyvenv.cfg").write_text(f"home = {top / 'python' / 'bin'}\n"
                                     "include-system-site-packages = false\n")
    for part in ("lib", "share", "etc"):
        source = Path(sys.prefix) / part
        if source.is_dir():
            (venv / part).mkdir()
            pairs += [str(source.resolve()), str(venv / part)]
    (top / "course" / "labkit").mkdir(parents=True)
    pairs += [str(ROOT / "labkit"), str(top / "course" / "labkit")]
    return pairs, str(venv / "bin" / "python")


@contextlib.contextmanager
def jupyterhub(users: list[pwd.struct_passwd], password: str) -> Iterator[Hub]:
    """JupyterHub on 127.0.0.1, in a mount namespace of its own; stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="ipclab-hub-") as folder:
        top = Path(folder)
        os.chmod(top, 0o755)  # the users must reach the Python mounted in here
        private = top / "hub"
        private.mkdir(mode=0o700)
        pairs, python = _reachable_python(top)
        env = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
               "PYTHONPATH": str(top / "course"),
               # a shared-library Python finds libpython through an absolute run path
               "LD_LIBRARY_PATH": str(top / "python" / "lib"),
               "LANG": "C.UTF-8"}
        port = _free_port()
        config = {
            "JupyterHub": {"ip": "127.0.0.1", "port": port, "hub_ip": "127.0.0.1",
                           "hub_port": _free_port(), "cleanup_servers": True,
                           "db_url": f"sqlite:///{private}/jupyterhub.sqlite",
                           "cookie_secret_file": str(private / "cookie_secret"),
                           "authenticator_class": "shared-password",
                           "spawner_class": "localprocess"},
            "ConfigurableHTTPProxy": {"command": [str(PROXY)],
                                      "api_url": f"http://127.0.0.1:{_free_port()}"},
            "SharedPasswordAuthenticator": {"user_password": password},
            "Authenticator": {"allowed_users": [u.pw_name for u in users]},
            "Spawner": {"cmd": [python, "-m", "jupyterhub.singleuser"],
                        "args": ["--LabApp.expose_app_in_browser=True",
                                 "--LabApp.news_url=None",
                                 ("--LabApp.check_for_updates_class="
                                  "jupyterlab.NeverCheckForUpdate")],
                        "environment": env, "env_keep": [], "notebook_dir": "~",
                        "start_timeout": 120, "http_timeout": 120},
        }
        (private / "jupyterhub_config.json").write_text(json.dumps(config))
        log = open(private / "hub.log", "w+")  # noqa: SIM115 - closed below
        hub = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", MOUNTS,
             "sh", *pairs, "--", sys.executable, "-m", "jupyterhub",
             "-f", str(private / "jupyterhub_config.json")],
            stdout=log, stderr=subprocess.STDOUT, cwd=private)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(f"{url}/hub/health", hub, log)
            yield Hub(url, hub.pid, python, env, private / "hub.log")
        finally:
            stop_process(hub, grace=60)  # the hub stops the users' servers first
            log.close()
            # Their last processes (janitors sweeping) still run from the Python mounted in
            # here: wait for them before the mounts go with the folder, as a real server's
            # Python stays (the janitor's own test covers a Python that goes).
            uids = {u.pw_uid for u in users}
            wait_until(lambda: not _processes_of(uids), 15, None)


def _wait_until_up(url: str, hub: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if hub.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError("JupyterHub did not start:\n" + log.read()[-4000:]) from None
            time.sleep(0.2)


def _log_tail(hub: Hub) -> str:
    return "\nthe hub's log ends:\n" + hub.log.read_text()[-3000:]


def as_user(hub: Hub, user: pwd.struct_passwd, *argv: str) -> subprocess.Popen:
    """Start ``argv`` (run by the users' Python) as ``user``, in the hub's mount namespace."""
    env = {**hub.env, "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}
    return subprocess.Popen(
        ["nsenter", f"--target={hub.pid}", "--mount", "--", "runuser", "-u", user.pw_name,
         "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), hub.python, *argv],
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _all_at_once(hub: Hub, runs: dict[str, tuple[pwd.struct_passwd, list[str]]]
                 ) -> dict[str, tuple[int, str]]:
    """Start every run (key -> (user, argv)) at the same time; key -> (exit code, output)."""
    started = {key: as_user(hub, user, *argv) for key, (user, argv) in runs.items()}
    finished = {}
    for key, p in started.items():
        out, _ = p.communicate(timeout=120)
        finished[key] = (p.returncode, out)
    return finished


def _log_in_and_open(browser, hub: Hub, user: pwd.struct_passwd, password: str):
    """A browser context of the user's own, logged in; its server is being spawned."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    lab = f"/user/{user.pw_name}/lab/workspaces/hub/tree/{LESSON.name}"
    spawn = f"/hub/spawn/{user.pw_name}?next={urllib.parse.quote(lab)}"
    page.goto(f"{hub.url}/hub/login?next={urllib.parse.quote(spawn)}")
    page.fill("#username_input", user.pw_name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return page


def _kernel_report(page) -> dict:
    """What the probe cell printed (the objects its kernel keeps open)."""
    text = "".join("".join(out.get("text", "")) for out in page.evaluate(OUTPUTS)[-1]
                   if out["output_type"] == "stream")
    match = re.search(r"^PROBE (.*)$", text, re.MULTILINE)
    assert match, f"the probe cell printed no report: {text[-500:]!r}"
    return json.loads(match.group(1))


def _object_paths(kept: dict[str, str]) -> dict[str, Path]:
    """Where each kept object shows in the file system, and the session folder holding the FIFO."""
    paths = {"shm": SHM_DIR / kept["shm"].lstrip("/"),
             "sem": SHM_DIR / ("sem." + kept["sem"].lstrip("/")),
             "fifo": Path(kept["fifo"]), "socket": Path(kept["socket"]),
             "session folder": Path(kept["fifo"]).parent}
    if "mq" in kept and MQUEUE_DIR.is_dir():
        paths["mq"] = MQUEUE_DIR / kept["mq"].lstrip("/")
    return paths


def _ownership_problems(user: pwd.struct_passwd, paths: dict[str, Path]) -> list[str]:
    problems = []
    for what, path in paths.items():
        try:
            st = path.lstat()
        except FileNotFoundError:
            problems.append(f"{user.pw_name}'s {what} {path} does not exist")
            continue
        want = 0o700 if what == "session folder" else 0o600
        if st.st_uid != user.pw_uid or stat.S_IMODE(st.st_mode) != want:
            problems.append(f"{user.pw_name}'s {what} {path} has uid {st.st_uid}, mode "
                            f"{stat.S_IMODE(st.st_mode):o}; wanted uid {user.pw_uid}, mode "
                            f"{want:o}")
    return problems


@pytest.mark.timeout(600)
def test_students_on_jupyterhub_keep_their_objects_private_and_leave_nothing(capsys):
    started = time.monotonic()
    password = secrets.token_urlsafe(12)
    notebook = _lesson_part()
    problems: list[str] = []
    with unix_users(STUDENTS) as users:
        uids = {u.pw_uid for u in users}
        for user in users:
            _prepare_home(user, notebook)
        with jupyterhub(users, password) as hub, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            try:
                pages = [_log_in_and_open(browser, hub, u, password) for u in users]
                for user, page in zip(users, pages, strict=True):  # the hub spawns all three meanwhile
                    page.wait_for_url(f"**/user/{user.pw_name}/lab/**", timeout=150_000)
                    page.wait_for_function(KERNEL_IDLE, arg=LESSON.name, timeout=90_000,
                                           polling=100)
                for page in pages:                     # Run All in the three at once
                    page.evaluate("() => { window.jupyterapp.commands.execute("
                                  "'notebook:run-all-cells'); }")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                for n, page in enumerate(pages):
                    try:
                        page.wait_for_function(FINISHED, timeout=120_000, polling=500)
                    except sync_api.TimeoutError:
                        run, code, *_ = page.evaluate(PROGRESS)
                        problems.append(f"student {n}: Run All did not finish in 120 s ({run} "
                                        f"of {code} code cells ran; see "
                                        f"{ARTIFACTS}/student{n}.png)")
                    else:
                        problems += [f"student {n}: {p}" for p in _problems_shown(page)]
                    page.screenshot(path=str(ARTIFACTS / f"student{n}.png"))
                assert not problems, "\n".join(problems) + _log_tail(hub)
                reports = {u.pw_name: _kernel_report(p)
                           for u, p in zip(users, pages, strict=True)}
            finally:
                browser.close()
            ran_lessons = time.monotonic() - started

            kept = {}
            for user in users:
                assert reports[user.pw_name]["uid"] == user.pw_uid, "a kernel ran as another user"
                kept[user.pw_name] = _object_paths(reports[user.pw_name]["kept"])
                problems += _ownership_problems(user, kept[user.pw_name])
            peeks = {u.pw_name: (u, ["-c", PEEK, json.dumps(
                [str(p) for other in users if other != u for p in kept[other.pw_name].values()])])
                for u in users}  # each student tries to open every other student's objects
            for name, (code, out) in _all_at_once(hub, peeks).items():
                if code != 0 or json.loads(out.strip().splitlines()[-1]):
                    problems.append(f"{name} could open others' objects: {out.strip()[-500:]}")
            for command in (["clean", "--dry-run"], ["clean"], ["doctor"]):
                runs = {u.pw_name: (u, ["-m", "labkit.cli", *command]) for u in users}
                for name, (code, out) in _all_at_once(hub, runs).items():
                    if code != 0:
                        problems.append(f"labkit {' '.join(command)} as {name} exited {code}:"
                                        f"\n{out[-1500:]}")
            for user in users:  # clean left the live sessions alone
                problems += [f"labkit clean removed {user.pw_name}'s live {what} {path}"
                             for what, path in kept[user.pw_name].items() if not path.exists()]
            assert not problems, "\n".join(problems)
        # The hub has stopped every server (and so every kernel): nothing of theirs is left.
        wait_until(lambda: not (_processes_of(uids) or _files_of(uids)), 15, None)
        left = []
        for p in _processes_of(uids):
            with contextlib.suppress(psutil.Error):
                left.append(f"process {p.pid} of uid {p.info['uids'].real}: "
                            f"{' '.join(p.cmdline())[:200]}")
        left += [f"{path} (uid {path.lstat().st_uid})" for path in _files_of(uids)]
        assert not left, "left behind after the servers stopped:\n" + "\n".join(left)
    for user in users:
        with pytest.raises(KeyError):
            pwd.getpwnam(user.pw_name)
    with capsys.disabled():
        print(f"\nJupyterHub test: {STUDENTS} students logged in and ran lesson 03 in "
              f"{ran_lessons:.0f} s; {time.monotonic() - started:.0f} s in all")
