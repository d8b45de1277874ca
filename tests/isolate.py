"""Start a program in mount and IPC namespaces of its own, with a private /dev/shm and /dev/mqueue.

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

``unshare`` needs a single-threaded process (an xdist worker has threads by the
time it imports anything) and CAP_SYS_ADMIN, hence a launcher that sets the
namespaces up and then ``exec``s the worker. Without the privilege it exits with
status 3 and the suite runs serially (see ``pytest_configure`` in ``conftest.py``).

    python tests/isolate.py PROGRAM [ARG...]
    python tests/isolate.py --probe       # exit 0 if isolation works here
"""
from __future__ import annotations

import os
import sys

NOT_POSSIBLE = 3


def isolate() -> None:
    """Enter new mount and IPC namespaces and mount private /dev/shm and /dev/mqueue."""
    from labkit import _isolation as ns  # the grader's sandbox steps, each checked

    shm = os.statvfs("/dev/shm")
    ns._call("unshare", ns._libc().unshare(ns.CLONE_NEWNS | ns.CLONE_NEWIPC))
    ns._mount("none", "/", None, ns.MS_REC | ns.MS_PRIVATE)  # nothing here reaches the host
    ns._mount("tmpfs", "/dev/shm", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV,
              f"mode=1777,size={shm.f_blocks * shm.f_frsize}")
    if os.path.ismount("/dev/mqueue"):
        ns._mount("mqueue", "/dev/mqueue", "mqueue", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    if os.listdir("/dev/shm") or (os.path.isdir("/dev/mqueue") and os.listdir("/dev/mqueue")):
        raise OSError("the new /dev/shm or /dev/mqueue is not empty")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    from labkit._isolation import SetupError

    try:
        isolate()
    except (OSError, SetupError) as e:
        print(f"isolate: not possible here: {e}", file=sys.stderr)
        return NOT_POSSIBLE
    if argv == ["--probe"]:
        return 0
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
