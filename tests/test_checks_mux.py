"""Lesson 09's check machinery (its wrong answers are tests/mutants/09_multiplexing.py;
tests/test_checks.py runs the solutions): what an answer hands the checker is judged from the
kernel's side and never left open, and a server that never listens is told so in time."""
from __future__ import annotations

import os
import socket

import pytest

from labkit.checking import CheckFailed, run_checks
from labkit.checks import mux as checks

pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


def _sends(fds_of):
    """An answer that connects and sends the descriptors ``fds_of()`` makes."""
    def answer(address, *_):
        made = fds_of()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(address)
                socket.send_fds(s, [b"x"], made)
        finally:
            for fd in made:
                os.close(fd)
    return answer


def test_several_descriptors_are_refused_and_all_are_closed_in_the_checker():
    three = _sends(lambda: [os.dup(0), os.dup(1), os.dup(2)])
    with pytest.raises(CheckFailed, match="got 3 descriptors, expected one"), \
            checks._receive(three, "unused") as got:
        checks._one_fd(got)
    assert got.fds == []


def test_a_pipe_handed_over_is_not_read():
    def pipe_ends():
        r, w = os.pipe()
        os.close(w)
        return [r]

    with pytest.raises(CheckFailed, match="not a file"), \
            checks._receive(_sends(pipe_ends), "unused") as got:
        checks._one_fd(got)


def test_an_answer_that_never_connects_is_told_so():
    with pytest.raises(CheckFailed, match="never connected"), \
            checks._receive(lambda address, path: None, "unused"):
        pass


def test_a_server_that_never_binds_fails_every_check_in_time():
    results = run_checks("09.echo_server", lambda path, clients: None)
    assert results and all(r.status != "passed" for r in results)
    assert "the server ended while it should have been listening" in results[0].message
