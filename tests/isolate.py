"""Start a program in mount and IPC namespaces of its own: private /dev/shm, /dev/mqueue, /tmp.

The leak check (``no_leaks`` in the root ``conftest.py``) compares the entries of
``/dev/shm`` and ``/dev/mqueue`` before and after each test. With two pytest-xdist
workers sharing those folders, an entry made by worker A's test while worker B's
test runs would be blamed on B, and B's cleanup would unlink it under A. So each
worker starts through this launcher: new mount and IPC namespaces, a fresh tmpfs
on ``/dev/shm`` (the host's size, so a full /dev/shm behaves the same) and a fresh
mqueue filesystem on ``/dev/mqueue``. Then every entry a worker sees is its own,
and whatever its tests and their children (kernels, JupyterLab, the grader's
sandbox) create stays inside. Processes are judged per worker already: each worker
is a subreaper, and a test's orphans are adopted by its own worker.

``/tmp`` is private too, a fresh tmpfs: a check removes the FIFOs and sockets that
appeared in the temporary folder while it ran, and an answer may choose a fixed name
there, so with a shared ``/tmp`` one worker's check could remove (or take) another
worker's. Entries of the host's ``/tmp`` that the run itself lives in (the clone, the
virtual environment, pytest's temporary root, the workers' lock folder: the paths
given with ``--keep`` and this interpreter's own) are bound back in under their names;
the rest of the host's ``/tmp`` (other runs, other users) is out of sight.

``unshare`` needs a single-threaded process (an xdist worker has threads by the
time it imports anything) and CAP_SYS_ADMIN, hence a launcher that sets the
namespaces up and then ``exec``s the worker. Without the privilege it exits with
status 3 and the suite runs serially (see ``pytest_configure`` in ``conftest.py``).

    python tests/isolate.py [--keep PATH]... PROGRAM [ARG...]
    python tests/isolate.py --probe       # exit 0 if isolation works here
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile

NOT_POSSIBLE = 3
TMP = "/tmp"


def _kept_entries(keep: list[str]) -> set[str]:
    """The names in the host's /tmp that ``keep``, this interpreter, its packages, the
    working folder and the home folder live in."""
    paths = [*keep, os.getcwd(), sys.prefix, sys.base_prefix, sys.executable,
             os.path.expanduser("~"), tempfile.gettempdir(), *sys.path]
    names = set()
    for path in paths:
        for p in {os.path.abspath(path), os.path.realpath(path)}:
            if os.path.dirname(p) != "/" and p.startswith(TMP + "/"):
                names.add(p[len(TMP) + 1:].split("/", 1)[0])
    return names


def isolate(keep: list[str]) -> None:
    """Enter new mount and IPC namespaces and mount private /dev/shm, /dev/mqueue and /tmp."""
    from labkit import _isolation as ns  # the grader's sandbox steps, each checked
    from labkit._platform import libc

    shm = os.statvfs("/dev/shm")
    ns._call("unshare", libc().unshare(ns.CLONE_NEWNS | ns.CLONE_NEWIPC))
    ns._mount("none", "/", None, ns.MS_REC | ns.MS_PRIVATE)  # nothing here reaches the host
    ns._mount("tmpfs", "/dev/shm", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV,
              f"mode=1777,size={shm.f_blocks * shm.f_frsize}")
    if os.path.ismount("/dev/mqueue"):
        ns._mount("mqueue", "/dev/mqueue", "mqueue", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    if os.listdir("/dev/shm") or (os.path.isdir("/dev/mqueue") and os.listdir("/dev/mqueue")):
        raise OSError("the new /dev/shm or /dev/mqueue is not empty")
    names = _kept_entries(keep)
    host = os.open(TMP, os.O_PATH | os.O_DIRECTORY)  # the host's /tmp, once covered
    try:
        ns._mount("tmpfs", TMP, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, "mode=1777")
        for name in sorted(names):
            source, target = f"/proc/self/fd/{host}/{name}", f"{TMP}/{name}"
            try:
                st = os.lstat(source)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), target)
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
            ns._mount(source, target, None, ns.MS_BIND | ns.MS_REC)
    finally:
        os.close(host)


def main(argv: list[str]) -> int:
    keep = []
    while argv[:1] == ["--keep"] and len(argv) > 1:
        keep.append(argv[1])
        argv = argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    from labkit.errors import SetupError

    try:
        isolate(keep)
    except (OSError, SetupError) as e:
        print(f"isolate: not possible here: {e}", file=sys.stderr)
        return NOT_POSSIBLE
    if argv == ["--probe"]:
        return 0
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
