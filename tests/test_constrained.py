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
from helpers import ROOT

from labkit import errors
from labkit.grade import RLIMITS, Limits, Submission, run_sandboxed, sandbox_available

pytestmark = pytest.mark.skipif(bool(sandbox_available()), reason=sandbox_available() or "")

LESSONS = sorted(ROOT.glob("notebooks/*.ipynb"))
LABKIT_ERRORS = set(errors.__all__)


def _processes_of_this_user() -> int:
    uid = os.getuid()
    return sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid)


def _run(lesson, shm_size: str, **limits: int) -> tuple[str, dict]:
    sub = Submission(lesson.stem, {lesson.name: lesson.read_bytes()}, lesson.name)
    return run_sandboxed(sub, {}, cell_timeout=60, timeout=240,
                         limits=Limits(shm=shm_size, rlimits={**RLIMITS, **limits}))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_fits_a_default_container(lesson):
    """64 MB of /dev/shm and the default queue allowance (800 KiB per user): all of it runs."""
    status, report = _run(lesson, "64m", RLIMIT_MSGQUEUE=819_200)
    assert (status, report["errors"]) == ("ok", []), report["notes"]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_in_a_tight_container_runs_or_stops_with_a_clear_error(lesson):
    """16 MB of /dev/shm, room for about one queue, and few processes to spare."""
    status, report = _run(lesson, "16m", RLIMIT_MSGQUEUE=100_000,
                          RLIMIT_NPROC=_processes_of_this_user() + 96)
    first = report["errors"][:1]
    assert status in ("ok", "error"), report["notes"]
    assert all(e["ename"] in LABKIT_ERRORS for e in first), first
