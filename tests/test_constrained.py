"""The lessons in small containers: they pass, or stop with labkit's own clear error.

Docker and Kubernetes give a container 64 MB of /dev/shm; JupyterHub deployments
often cap processes; message queues are limited per user. Each lesson runs here
in the grader's sandbox (its own namespaces and a private tmpfs /dev/shm of the
given size) under such limits.
"""
from __future__ import annotations

import os

import psutil
import pytest
from helpers import ROOT, sandbox_level

from labkit import errors
from labkit.grade import RLIMITS, Limits, Submission, run_sandboxed

USABLE, HOW = sandbox_level()
pytestmark = pytest.mark.skipif(not USABLE, reason=HOW)

LESSONS = sorted(ROOT.glob("notebooks/*.ipynb"))
LABKIT_ERRORS = set(errors.__all__)


def _processes_of_this_user() -> int:
    uid = os.getuid()
    return sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid)


# The default container has every limit of the tight one or more (and no process cap of
# its own), so a lesson that runs clean in the tight one fits the default one too.
DEFAULT = {"shm": 64, "RLIMIT_MSGQUEUE": 819_200}  # MB; Docker's default, the default allowance
TIGHT = {"shm": 16, "RLIMIT_MSGQUEUE": 100_000}    # room for about one queue


def _run(lesson, container: dict[str, int], **more: int) -> tuple[str, dict]:
    sub = Submission(lesson.stem, {lesson.name: lesson.read_bytes()}, lesson.name)
    rlimits = {**RLIMITS, "RLIMIT_MSGQUEUE": container["RLIMIT_MSGQUEUE"], **more}
    return run_sandboxed(sub, {}, cell_timeout=60, timeout=240,
                         limits=Limits(shm=f"{container['shm']}m", rlimits=rlimits))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_stops_clearly_in_a_tight_container_and_fits_a_default_one(lesson):
    """Tight: 16 MB of /dev/shm, room for one queue, few processes to spare: the lesson runs,
    or its first error is labkit's own. Default: 64 MB of /dev/shm and the default queue
    allowance (800 KiB per user): all of it runs. That second run is needed only when the
    first did not run clean (see DEFAULT)."""
    status, report = _run(lesson, TIGHT, RLIMIT_NPROC=_processes_of_this_user() + 96)
    first = report["errors"][:1]
    assert status in ("ok", "error"), report["notes"]
    assert all(e["ename"] in LABKIT_ERRORS for e in first), first
    if (status, report["errors"]) != ("ok", []):
        status, report = _run(lesson, DEFAULT)
        assert (status, report["errors"]) == ("ok", []), report["notes"]


def test_the_default_container_has_every_limit_of_the_tight_one_or_more():
    assert all(DEFAULT[limit] >= TIGHT[limit] for limit in TIGHT)
    assert "RLIMIT_NPROC" not in RLIMITS
