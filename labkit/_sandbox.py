"""The grading sandbox: one submission in namespaces of its own, set up from an allowlist.

``labkit grade`` starts one zygote per batch (``python -m labkit._sandbox``,
see :mod:`labkit._zygote`); each submission's *supervisor* is a fork of it.
The grader writes the supervisor one framed message on stdin: the settings
and the submission's bytes, read once by the grader. stdin then stays open
as a lifeline; when it closes (the grader ended, was killed, or gave up
waiting) the supervisor kills the sandbox. The supervisor never runs student
code; it

* puts the sandbox in a cgroup of its own (memory and process limits for the
  whole submission, see :class:`labkit._isolation.Cgroup`), else reports the
  per-process fallback;
* forks the *first process*, which enters new user, mount, IPC, PID, network
  and UTS namespaces, and maps its root to ``nobody`` (or to the unprivileged
  grader's own uid);
* relays the one report that comes back, with the limit the sandbox hit, and
  removes the cgroup.

The first process forks the sandbox's *process 1*, which builds a new root
from an allowlist, checks ``/proc/self/mountinfo``, writes the submission into
the private work folder, closes every descriptor but its report pipe, drops
every capability and goes on into stage 2 (in the zygote's interpreter, whose
environment is the sandbox's allowlist; labkit's modules are imported afresh).
Each of them dies with its parent (``PR_SET_PDEATHSIG``), and process 1
also ends when the supervisor stops reading its report. When process 1 ends,
the kernel kills every process left in the namespace, including those that
left their session with ``setsid``.

Stage 2 runs the notebook's cells in a cell runner (:mod:`labkit._cells`: a
timeout per cell, output capped), kills whatever the notebook left, then
runs each exercise's checks. The notebook's code is never executed in this
process: each check call defines the answers afresh in a child of its own
(:class:`labkit.answers.NotebookAnswer`), so redefining ``labkit.check`` or
patching labkit in the notebook changes nothing here.

Each stage adds its time to the settings' profile (:func:`lap`), which the
report carries back for ``labkit grade --profile``.
"""
from __future__ import annotations

import base64
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labkit import _isolation as iso
from labkit._cells import OUTPUT_CAP, CellRunner, read_cells
from labkit._platform import libc
from labkit.errors import SetupError

PR_SET_DUMPABLE = 4
REPORT_CAP = 16 * 2**20  # bytes of report relayed from one sandbox
SETUP_FAILED = "sandbox failed"
ETC = {
    "passwd": f"root:x:0:0:sandbox:{iso.WORK}:/usr/sbin/nologin\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    "hostname": "sandbox\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}


def lap(config: dict, phase: str) -> None:
    """Add the seconds since the last lap to ``config["profile"]`` as ``phase``.

    The profile travels with the settings from the grader through every stage (the
    monotonic clock is the same in every process: there is no time namespace).

    >>> config = {"mark": time.monotonic(), "profile": []}
    >>> lap(config, "nothing"); config["profile"][0][0]
    'nothing'
    """
    now = time.monotonic()
    config.setdefault("profile", []).append([phase, round(now - config.get("mark", now), 4)])
    config["mark"] = now


# --- the supervisor (the grader's side: no student code runs here) -------------------------


def frame(message: dict) -> bytes:
    """The supervisor's input: a length-prefixed JSON message.

    >>> frame({"a": 1})
    b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x08{"a": 1}'
    """
    data = json.dumps(message).encode()
    return struct.pack(">Q", len(data)) + data


def _read_exactly(fd: int, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the sandbox's input early")
        data += chunk
    return bytes(data)


def _supervise() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader decides; stdin is the lifeline
    config = json.loads(_read_exactly(0, struct.unpack(">Q", _read_exactly(0, 8))[0]))
    lap(config, "supervisor start")
    group: iso.Cgroup | None = None
    try:
        group = iso.Cgroup.create(config["memory"], config["processes"])
        limits = f"cgroup v{group.version}: {config['memory'] >> 20} MiB and " \
                 f"{config['processes']} processes for the whole submission"
    except SetupError as e:
        group, limits = None, f"no cgroup ({e}): limits per process and a watchdog"
    lap(config, "cgroup")

    def deliver(report: str) -> None:
        # The limit counters are final once process 1 has reported (or died), so the grader
        # gets the outcome now, while the namespace and the cgroup are still being removed.
        outcome = {"limits": limits, "limit": group.stopped_by() if group else "",
                   "report": report}
        with open(1, "wb") as out:
            out.write(json.dumps(outcome).encode())

    try:
        _run_first(config, group, deliver)
    finally:
        if group:
            group.remove()


def _run_first(config: dict, group: iso.Cgroup | None, deliver: Callable[[str], None]) -> None:
    """Start the sandbox's first process, map its ids, collect its report and ``deliver`` it
    (unless the grader went away first), then end the sandbox."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    result_r, result_w = os.pipe()
    supervisor = os.getpid()
    first = os.fork()
    if first == 0:
        try:
            os.close(ready_r)
            os.close(go_w)
            os.close(result_r)
            _first(config, supervisor, ready_w, go_r, result_w)
        finally:
            os._exit(1)
    for fd in (ready_w, go_r, result_w):
        os.close(fd)
    report = bytearray()
    try:
        if os.read(ready_r, 1) == b"u":
            try:
                iso.map_ids(first)
                if group:
                    group.add(first)
            except (SetupError, OSError) as e:
                deliver(json.dumps({"status": SETUP_FAILED, "notes": [
                    f"the sandbox could not be set up, so nothing was run: {e}"]}))
                return
            os.write(go_w, b"g")
        os.close(go_w)
        lifeline = select.poll()
        lifeline.register(0, select.POLLIN | select.POLLHUP)
        lifeline.register(result_r, select.POLLIN | select.POLLHUP)
        while True:
            events = dict(lifeline.poll())
            if 0 in events:
                break  # the grader is gone or gave up: whatever is running must end now
            chunk = os.read(result_r, 65536)
            if not chunk:
                deliver(report.decode(errors="replace"))
                break
            if len(report) < REPORT_CAP:
                report += chunk
    finally:
        os.kill(first, signal.SIGKILL)  # its process 1, then the whole namespace, follow it
        os.waitpid(first, 0)
        for fd in (ready_r, result_r):
            os.close(fd)


# --- the first process and process 1 (inside the new namespaces) ---------------------------


def _first(config: dict, supervisor: int, ready_w: int, go_r: int, result_w: int) -> None:
    """Enter the namespaces, wait for the id maps, start process 1 and wait for it."""
    iso.die_with_parent(supervisor)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    try:
        if os.geteuid() == 0:
            os.setgroups([])  # the host root's groups must not come along
        iso.unshare_all()
        config["binds"] = iso.open_sources(config["binds"])
        os.write(ready_w, b"u")
        if os.read(go_r, 1) != b"g":
            os._exit(1)
        # Become root of the new namespace: the ids the supervisor mapped (nobody outside).
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        iso.die_with_parent(supervisor)  # a change of ids disarmed it
    except (SetupError, OSError) as e:
        _fail(result_w, e)
    alive_r, alive_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(alive_w)
        _init(config, alive_r, result_w)
    os.close(result_w)
    os.waitpid(init, 0)
    os._exit(0)


def _fail(result_w: int, error: BaseException) -> None:
    _send(result_w, {"status": SETUP_FAILED, "notes": [
        f"the sandbox could not be set up, so nothing was run: {error}"]})
    os._exit(1)


def _send(fd: int, report: dict) -> None:
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)


def allowlist_env(pythonpath: str) -> dict[str, str]:
    """The whole environment of the zygote and so of every sandbox: what a lab needs, no more.

    >>> sorted(allowlist_env("/course"))[:3]
    ['HOME', 'IPYTHONDIR', 'JUPYTER_RUNTIME_DIR']
    """
    work = iso.WORK
    return {"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": work,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TMPDIR": f"{work}/tmp",
            "JUPYTER_RUNTIME_DIR": f"{work}/.runtime", "IPYTHONDIR": f"{work}/.ipython",
            "XDG_CACHE_HOME": f"{work}/.cache", "MPLCONFIGDIR": f"{work}/.mpl",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "PYTHONPATH": pythonpath}


def fresh_labkit() -> None:
    """Forget every labkit module this process inherited from the zygote, imported outside
    the sandbox (with the zygote's pid and the grader's uid in the session's names), and
    the temporary folder found there: the next imports run afresh, inside (from the code
    the zygote compiled)."""
    from labkit._zygote import use_precompiled

    use_precompiled()
    for name in [m for m in sys.modules if m == "labkit" or m.startswith("labkit.")]:
        del sys.modules[name]
    tempfile.tempdir = None


def _init(config: dict, alive_r: int, result_w: int) -> None:
    """Process 1: build the allowlisted root, verify it, drop privileges, run stage 2."""
    try:
        iso.die_with_parent(0)  # our parent is outside this PID namespace: it shows as 0
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(1)  # the first process died before the parent-death signal was armed
        os.close(alive_r)
        if libc().sethostname(b"sandbox", 7) != 0:
            raise SetupError("sethostname failed")
        iso.loopback_up()
        iso.build_root(config["binds"], ETC, config["work_size"], config["shm_size"])
        wrong = iso.unexpected_writable()
        if wrong:
            raise SetupError(f"refusing to run: writable beyond {iso.WORK}, /dev/shm and "
                             f"/dev/mqueue: {', '.join(wrong)}")
        work = Path(iso.WORK)
        for name, data in config.pop("files").items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data))
        for sub in ("tmp", ".runtime", ".ipython", ".cache", ".mpl"):
            (work / sub).mkdir(exist_ok=True)
        os.chdir(work)
        lap(config, "namespaces, root, files")
        os.closerange(3, result_w)  # nothing of the supervisor's or the zygote's is kept
        os.closerange(result_w + 1, 1 << 16)
        iso.drop_privileges()
    except BaseException as e:
        _fail(result_w, e)
    try:
        _stage2(config, result_w)
    finally:
        os._exit(1)


# --- stage 2: the notebook, then the checks ---------------------------------------------


def _count_processes() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


class _Watchdog(threading.Thread):
    """Process 1's guard: if the namespace holds too many processes, kill them all; if
    nobody reads the report any more (the supervisor is gone), end the sandbox."""

    def __init__(self, limit: int, result_fd: int) -> None:
        super().__init__(daemon=True)
        self.limit = limit
        self.fired = False
        self.reader = select.poll()
        self.reader.register(result_fd, select.POLLERR)

    def run(self) -> None:
        while True:
            if self.reader.poll(0):
                os._exit(1)  # as process 1: the kernel kills everything in the namespace
            if _count_processes() > self.limit:
                self.fired = True
                _kill_all_others()
            time.sleep(0.05)


def _kill_all_others() -> None:
    try:
        os.kill(-1, signal.SIGKILL)  # from process 1: every other process in the namespace
    except ProcessLookupError:
        pass  # there is none


def _sweep() -> None:
    """Kill every process in the namespace but this one, reap them, empty /dev/shm and queues."""
    _kill_all_others()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
    for folder in ("/dev/shm", "/dev/mqueue"):
        if os.path.isdir(folder):
            for entry in os.listdir(folder):
                path = os.path.join(folder, entry)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass


def _limits(config: dict) -> None:
    for name, value in config["rlimits"].items():
        which = getattr(resource, name)
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _notebook_outcome(runner: CellRunner, config: dict) -> tuple[str, list[str], list[dict]]:
    """Wait for the notebook's cells; return a status, notes and the cells' errors."""
    run = runner.wait(config["cell_timeout"])
    lap(config, "notebook cells, the rest")
    if run.errors and run.status == "ok":
        run.status = "error"
    run.notes += [f"error in code cell {e['cell']}: {e['ename']}: {e['evalue'][:200]}"
                  for e in run.errors[:5]]
    if run.truncated:
        run.notes.append(f"output beyond {OUTPUT_CAP // 1024} KiB per cell was dropped")
    return run.status, run.notes, run.errors


def _stage2(config: dict, result_fd: int) -> None:
    """Process 1 after setup, in the interpreter the zygote started: the notebook, then the
    checks; the report goes to ``result_fd``."""
    fresh_labkit()
    from labkit._janitor import CLIENT

    # This process is the janitor of everything the notebook and the checks start: _sweep
    # after each part, and the namespaces end with it. One janitor per check's process
    # (each a new interpreter) cost a fifth of a submission's CPU.
    CLIENT.not_needed()
    pipe = os.fstat(result_fd).st_ino

    def close_in_child() -> None:
        # Only the original pipe: in later forks that number may hold another descriptor.
        try:
            if os.fstat(result_fd).st_ino == pipe:
                os.close(result_fd)
        except OSError:
            pass  # already closed in this process

    os.register_at_fork(after_in_child=close_in_child)
    libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    lap(config, "stage 2 start")
    unsafe = iso.privileges_dropped()
    if unsafe or config.get("probe"):
        status = f"{SETUP_FAILED}: {unsafe}" if unsafe else "ok"
        _send(result_fd, {"status": SETUP_FAILED if unsafe else "ok", "notes": [status]})
        os._exit(0)
    from labkit import checking
    from labkit.answers import answers, is_check_cell
    from labkit.checking import exercises, load_hidden, run_checks
    from labkit.puzzle_student import grade_as

    # Whose puzzles the checks grade: the grader's word, never the notebook's (its cells
    # and answers run in other processes, which cannot change this one's).
    grade_as(str(config.get("student", "")))
    if config.get("call_seconds"):  # the grader's Limits.call_seconds, never the submission's
        checking.CALL_TIMEOUT = float(config["call_seconds"])

    lap(config, "labkit import")
    _limits(config)
    report: dict[str, Any] = {"status": "ok", "notes": [], "checks": [], "errors": []}
    submitted = (Path(iso.WORK) / config["notebook"]).read_bytes()  # before a cell rewrites it
    runner = None
    try:
        cells = read_cells(submitted)
    except (ValueError, UnicodeDecodeError) as e:
        cells = []
        report["status"] = "error"
        report["notes"].append(f"the notebook could not be read: {type(e).__name__}: {e}")
    else:  # started before the watchdog's thread: a fork copies only the calling thread
        runner = CellRunner(["" if is_check_cell(c["source"]) else c["source"]
                             for c in cells if c["cell_type"] == "code"])
    watchdog = _Watchdog(config["max_processes"], result_fd)
    watchdog.start()
    try:
        exercises()  # every lesson's checks, imported while the cells run
        lap(config, "checks import, cells running")
        if runner:
            report["status"], report["notes"], report["errors"] = _notebook_outcome(runner,
                                                                                    config)
        _sweep()
        lap(config, "sweep")
        load_hidden(config.get("hidden", {}))  # after the notebook's cells: they never saw them
        given_answers = answers(cells, config["answers"])
        lap(config, "answers defined")
        for exercise, given in given_answers.items():
            results = run_checks(exercise, given)
            report["checks"] += [r.__dict__ for r in results]
            _sweep()
            lap(config, f"checks {exercise}")
        if watchdog.fired:
            report["status"] = "fork bomb"
            report["notes"].append(f"more than {config['max_processes']} processes at once: "
                                   "all of them were killed")
    except BaseException as e:
        report["status"] = "error"
        report["notes"].append(f"grading failed: {type(e).__name__}: {e}")
    report["profile"], report["sent"] = config["profile"], time.monotonic()
    _send(result_fd, report)
    os._exit(0)


def main() -> None:
    """The zygote (see :mod:`labkit._zygote`); each of its forks is a supervisor."""
    from labkit._zygote import serve

    # `-m` put the working folder first on sys.path: nothing may be imported from there,
    # least of all in the sandbox, where a student's json.py would be found (the answer's
    # own process puts its folder back, as a kernel has it).
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]
    serve(frozenset(allowlist_env("")), _supervise)


if __name__ == "__main__":
    main()
