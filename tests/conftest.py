"""Fixtures of tests/ only; what every part of the suite shares is in the root conftest.py.

* ``no_descriptor_leaks`` (opt-in with ``pytestmark``) fails a test that leaves
  a descriptor of this process open.
* ``check_timeout(seconds)`` is the one way a test shortens how long a check
  waits for a hanging answer.
* After the run, the mutation score per exercise, when the mutants ran.
"""
from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable

import pytest
from helpers import open_descriptors

from labkit._janitor import CLIENT


@pytest.fixture()
def no_descriptor_leaks():
    """Fail a test that leaves a descriptor of this process open (``pytestmark`` opts in)."""
    def open_fds() -> set[int]:  # matplotlib keeps the fonts it loaded open: not a leak
        return {fd for fd, target in open_descriptors().items() if "mpl-data/fonts" not in target}

    CLIENT.start()  # the session janitor's pipe opens on first use and stays: not a leak
    before = open_fds()
    yield
    left = open_fds() - before
    assert not left, f"descriptors left open: {sorted(left)}"


@pytest.fixture()
def check_timeout(monkeypatch) -> Callable[[float], None]:
    """``check_timeout(1.0)``: a call of an answer is stopped after that many seconds
    instead of ``checking.CALL_TIMEOUT`` (5 s); the checker's child inherits it."""
    from labkit import checking

    def set_to(seconds: float) -> None:
        monkeypatch.setattr(checking, "CALL_TIMEOUT", seconds)

    return set_to


# --- the mutation score: counted where the mutants ran, added up in the controller ---

_SCORE: dict[str, Counter[str]] = {"killed": Counter(), "tried": Counter()}


def pytest_sessionfinish(session: pytest.Session) -> None:
    module = sys.modules.get("test_mutants")
    if module is not None and hasattr(session.config, "workeroutput"):  # an xdist worker
        session.config.workeroutput["mutants"] = {"killed": dict(module.KILLED),
                                                  "tried": dict(module.TRIED)}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """(xdist, in the controller) a worker has finished: add up its mutants."""
    for key, counts in getattr(node, "workeroutput", {}).get("mutants", {}).items():
        _SCORE[key].update(counts)


def pytest_terminal_summary(terminalreporter):
    """The mutation score per exercise, when the mutants ran."""
    module = sys.modules.get("test_mutants")
    if module is not None:  # they ran in this process
        _SCORE["killed"].update(module.KILLED)
        _SCORE["tried"].update(module.TRIED)
    lines = [f"{ex:28} {_SCORE['killed'][ex]:3d} / {_SCORE['tried'][ex]:<3d} killed"
             for ex in sorted(_SCORE["tried"])]
    if lines:
        terminalreporter.section("mutation score (mutants killed / tried)")
        for line in lines:
            terminalreporter.write_line(line)
