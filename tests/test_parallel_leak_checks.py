"""The leak check stays exact when the suite runs in parallel (pytest-xdist).

An inner run of two workers, with the real root ``conftest.py``: in worker A a
test leaks on purpose (a ``/dev/shm`` entry under a name no session owns, and a
sleeping child), and it does so while worker B's test runs; files in a shared
folder make the two tests overlap for certain, whatever the machine's speed, and
A keeps its leftovers until B's test and B's leak check are over. A's leak must
fail A, naming both leftovers, and never B.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from helpers import ROOT

pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[test]')")

ISOLATED = subprocess.run([sys.executable, str(ROOT / "tests" / "isolate.py"), "--probe"],
                          capture_output=True, check=False).returncode == 0
pytestmark = pytest.mark.skipif(not ISOLATED, reason="workers cannot have namespaces of their "
                                "own here, so the suite runs serially and this cannot happen")

SHARED = textwrap.dedent('''
    import os, time
    from pathlib import Path

    FOLDER = Path({shared!r})

    def wait_for(name):
        deadline = time.monotonic() + 120
        while not (FOLDER / name).exists():
            assert time.monotonic() < deadline, f"{{name}} never came"
            time.sleep(0.01)

    def say(name):
        (FOLDER / name).write_text(os.readlink("/proc/self/ns/mnt"))
''')
# Added to the inner conftest.py: a worker says when a test is over, leak check included.
SAY_WHEN_DONE = textwrap.dedent('''

    def pytest_runtest_logfinish(nodeid, location):
        if os.environ.get("PYTEST_XDIST_WORKER"):  # the worker, not the controller
            from shared import say
            say("done-" + nodeid.split("::")[-1])
''')
WORKER_A = textwrap.dedent('''
    import os, time
    from shared import say, wait_for

    def test_a_leaks_on_purpose():
        wait_for("b-started")
        fd = os.open("/dev/shm/nobodys_leak", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(fd)
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        say("a-leaked")
        wait_for("done-test_b_runs_beside_it")  # B and its leak check ran beside the leftovers
''')
WORKER_B = textwrap.dedent('''
    from shared import say, wait_for

    def test_b_runs_beside_it():
        say("b-started")
        wait_for("a-leaked")
''')


def test_a_leak_in_one_worker_fails_that_test_and_no_test_of_the_other(tmp_path):
    run = tmp_path / "run"
    (run / "tests").mkdir(parents=True)
    (run / "conftest.py").write_text((ROOT / "conftest.py").read_text() + SAY_WHEN_DONE)
    for name in ("isolate.py", "helpers.py"):
        shutil.copy(ROOT / "tests" / name, run / "tests" / name)
    shared = tmp_path / "shared"
    shared.mkdir()
    # Two tests, two workers: the first hand-out gives each worker one.
    (run / "shared.py").write_text(SHARED.format(shared=str(shared)))
    (run / "test_a.py").write_text(WORKER_A)
    (run / "test_b.py").write_text(WORKER_B)
    report = tmp_path / "report.xml"
    alone = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not a worker
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:randomly", "-p", "no:cacheprovider",
         "--rootdir", str(run), "-o", "addopts=", f"--junitxml={report}", "test_a.py",
         "test_b.py"], cwd=run, env=alone, capture_output=True, text=True, timeout=300,
        check=False)
    assert report.exists(), done.stdout + done.stderr
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        problems = case.findall("failure") + case.findall("error")
        outcomes[case.get("name", "")] = outcomes.get(case.get("name", ""), "") + " ".join(
            p.get("message", "") + (p.text or "") for p in problems)
    a = outcomes.pop("test_a_leaks_on_purpose")
    assert "/dev/shm/nobodys_leak was left behind" in a and "is still there" in a, a
    assert outcomes == {"test_b_runs_beside_it": ""}, outcomes
    # the two overlapping tests ran in different worlds, not one after another in one
    assert (shared / "a-leaked").read_text() != (shared / "b-started").read_text()
    assert (shared / "b-started").read_text() == (
        shared / "done-test_b_runs_beside_it").read_text()
