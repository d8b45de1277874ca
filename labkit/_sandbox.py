"""The grading sandbox: runs inside fresh Linux namespaces, one per submission.

``labkit grade`` starts this module through ``unshare --user --map-root-user
--mount --ipc --pid --fork --kill-child``, so it begins as process 1 of a new
PID namespace, with a mount and an IPC namespace of its own. Stage 1 uses
its (namespace-local) root powers once:

* every mount is remounted read-only, and a private tmpfs becomes the
  submission's working directory (``HOME`` and ``TMPDIR`` point into it);
* ``/dev/shm`` and ``/dev/mqueue`` are fresh and private: objects the student
  creates, under any name, vanish with the namespace;
* the submissions folder and the grader's output folder are hidden;

then it drops every capability and re-executes itself (stage 2). As process
1 it cannot be killed from inside the namespace, it is not ptrace-able
(non-dumpable), and when it ends the kernel kills every process left in the
namespace, including those that left their session with ``setsid``.

Stage 2 executes the notebook with nbclient (a fresh kernel, a timeout per
cell, outputs capped), kills whatever the notebook left, then runs each
exercise's checks. The notebook's code is never executed in this process:
each check call defines the answers afresh in a child of its own
(:class:`labkit.answers.NotebookAnswer`), so redefining ``labkit.check`` or
patching labkit in the notebook changes nothing here. The verdicts go to the grader over a pipe
that no process started here inherits.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 32, 4096, 16384, 1 << 18)
PR_CAPBSET_DROP, PR_SET_DUMPABLE = 24, 4
OUTPUT_CAP = 256 * 1024  # characters of output kept per cell


# --- stage 1: namespaces -----------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    if _libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                     flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _lock_down(config: dict) -> None:
    """Make the filesystem read-only except a private work dir, /dev/shm and /dev/mqueue."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        try:
            _mount(point, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        except OSError:
            pass  # pseudo filesystems that refuse a read-only bind remount (and need none)
    work = config["work"]
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={config['work_size']},mode=0700")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={config['shm_size']},mode=1777")
    if os.path.isdir("/dev/mqueue"):
        _mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV)
    for hidden in config["hide"]:
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")


def _drop_capabilities() -> None:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        _libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # with an empty bounding set, exec drops all


def _stage1(config: dict) -> None:
    files = {name: Path(path).read_bytes() for name, path in config["files"].items()}
    _lock_down(config)
    work = Path(config["work"])
    for name, data in files.items():
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for sub in ("tmp", ".runtime", ".ipython", ".cache", ".mpl"):
        (work / sub).mkdir(exist_ok=True)
    os.environ.update(HOME=str(work), TMPDIR=str(work / "tmp"),
                      JUPYTER_RUNTIME_DIR=str(work / ".runtime"),
                      IPYTHONDIR=str(work / ".ipython"), XDG_CACHE_HOME=str(work / ".cache"),
                      MPLCONFIGDIR=str(work / ".mpl"), PYTHONDONTWRITEBYTECODE="1")
    _drop_capabilities()
    os.execv(sys.executable, [sys.executable, "-m", "labkit._sandbox", "--stage2",
                              json.dumps(config)])


# --- stage 2: the notebook, then the checks ---------------------------------------------


def _count_processes() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


class _Watchdog(threading.Thread):
    """Process 1's guard: if the namespace holds too many processes, kill them all."""

    def __init__(self, limit: int) -> None:
        super().__init__(daemon=True)
        self.limit = limit
        self.fired = False

    def run(self) -> None:
        while True:
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


def _execute(path: Path, config: dict) -> tuple[str, list[str], list[dict]]:
    """Run the notebook in a fresh kernel; return a status, notes and the cells' errors."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    class CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
            kept = sum(len(str(o.get("text", ""))) + len(str(o.get("data", ""))) for o in outs)
            if kept > OUTPUT_CAP:
                self.truncated = True
                return None
            return super().output(outs, msg, display_id, cell_index)

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # noqa: BLE001 - any malformed file is the student's, not ours
        return "error", [f"the notebook could not be read: {type(e).__name__}: {e}"], []
    from labkit.answers import is_check_cell

    for cell in nb.cells:  # the checks are the grader's to run, after the notebook
        if cell.cell_type == "code" and is_check_cell(cell.source):
            cell.source = ""
    client = CappedClient(nb, timeout=config["cell_timeout"], kernel_name="python3",
                          allow_errors=True, resources={"metadata": {"path": str(path.parent)}})
    client.truncated = False
    notes: list[str] = []
    status = "ok"
    import subprocess

    try:
        client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
    except CellTimeoutError:
        status = "timeout"
        notes.append(f"a cell did not finish in {config['cell_timeout']:g} s; the notebook "
                     "was stopped there (the checks still ran)")
    except DeadKernelError:
        status = "kernel died"
        notes.append("the notebook's kernel died while running it (the checks still ran)")
    except Exception as e:  # noqa: BLE001 - report, then grade what can be graded
        status = "error"
        notes.append(f"the notebook could not be run: {type(e).__name__}: {e}")
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [{"cell": i, "ename": o.get("ename"), "evalue": str(o.get("evalue"))[:1000]}
              for i, c in enumerate(code_cells, start=1)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors and status == "ok":
        status = "error"
    notes += [f"error in code cell {e['cell']}: {e['ename']}: {e['evalue'][:200]}"
              for e in errors[:5]]
    if client.truncated:
        notes.append(f"output beyond {OUTPUT_CAP // 1024} KiB per cell was dropped")
    return status, notes, errors


def _stage2(config: dict) -> None:
    result_fd = config["result_fd"]
    os.set_inheritable(result_fd, False)
    pipe = os.fstat(result_fd).st_ino

    def close_in_child() -> None:
        # Only the original pipe: in later forks that number may hold another descriptor.
        try:
            if os.fstat(result_fd).st_ino == pipe:
                os.close(result_fd)
        except OSError:
            pass  # already closed in this process

    os.register_at_fork(after_in_child=close_in_child)
    _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    work = Path(config["work"])
    os.chdir(work)
    _limits(config)
    watchdog = _Watchdog(config["max_processes"])
    watchdog.start()
    report: dict[str, Any] = {"status": "ok", "notes": [], "checks": [], "errors": []}
    try:
        notebook = work / config["notebook"]
        report["status"], report["notes"], report["errors"] = _execute(notebook, config)
        _sweep()
        import nbformat

        from labkit.answers import answers
        from labkit.checking import run_checks

        try:
            cells = nbformat.read(notebook, as_version=4).cells
        except Exception:  # noqa: BLE001 - already reported by _execute
            cells = []
        for exercise, given in answers(cells, config["answers"]).items():
            results = run_checks(exercise, given)
            report["checks"] += [r.__dict__ for r in results]
            _sweep()
        if watchdog.fired:
            report["status"] = "fork bomb"
            report["notes"].append(f"more than {config['max_processes']} processes at once: "
                                   "all of them were killed")
    except BaseException as e:  # noqa: BLE001 - whatever happens, the grader gets a report
        report["status"] = "error"
        report["notes"].append(f"grading failed: {type(e).__name__}: {e}")
    data = json.dumps(report).encode()
    while data:
        data = data[os.write(result_fd, data):]
    os.close(result_fd)
    os._exit(0)


def main(argv: list[str]) -> None:
    if argv[0] == "--stage2":
        _stage2(json.loads(argv[1]))
    else:
        _stage1(json.loads(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
