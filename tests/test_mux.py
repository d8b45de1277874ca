"""labkit.mux: the select/poll/epoll measurement, descriptors described, seals read, and a
clear error for what this machine lacks."""
from __future__ import annotations

import fcntl
import os
import socket

import pytest

from labkit import mux
from labkit.errors import NotSupportedHere

pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


def test_every_mechanism_gets_a_time_for_every_count_it_can_take():
    r = mux.poll_cost(idle=(1, 8, 32), trials=2, calls=10)
    assert r.idle == [1, 8, 32] and r.trials == 2
    for m in mux.MECHANISMS:
        assert len(r.micros[m]) == 3
        assert all(t is not None and t > 0 for t in r.micros[m])


def test_select_is_left_out_where_descriptors_pass_fd_setsize():
    r = mux.poll_cost(idle=(mux.FD_SETSIZE + 10,), trials=1, calls=2)
    assert r.micros["select"] == [None]
    assert r.micros["poll"][0] is not None and r.micros["epoll"][0] is not None


@pytest.mark.parametrize("bad", [(0,), (), ("8",), (True,)])
def test_bad_counts_of_idle_descriptors_are_refused(bad):
    with pytest.raises(ValueError, match=r"idle descriptors|count"):
        mux.poll_cost(idle=bad)


def test_an_unknown_feature_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown feature 'teleport'; choose from epoll"):
        mux.needs("teleport")


def test_a_missing_feature_says_what_it_needs(monkeypatch):
    monkeypatch.delattr(os, "eventfd")
    with pytest.raises(NotSupportedHere, match=r"eventfd needs .*Python 3\.10"):
        mux.needs("eventfd")


def test_a_socket_and_a_memfd_are_described_as_the_kernel_names_them():
    with socket.socket(socket.AF_UNIX) as s:
        assert mux.describe_fd(s.fileno()).startswith("socket:")
    fd = os.memfd_create("named-nowhere")
    try:
        assert mux.describe_fd(fd).startswith("/memfd:named-nowhere")
    finally:
        os.close(fd)


def test_describing_a_closed_descriptor_says_it_is_not_open():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(ValueError, match=f"descriptor {r} is not open"):
        mux.describe_fd(r)


def test_seals_are_listed_by_name_and_a_pipe_has_none():
    fd = os.memfd_create("sealed", os.MFD_ALLOW_SEALING)
    try:
        assert mux.seals(fd) == []
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
        assert mux.seals(fd) == ["F_SEAL_SEAL", "F_SEAL_WRITE"]
    finally:
        os.close(fd)
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError, match="carries no seals"):
            mux.seals(r)
    finally:
        os.close(r)
        os.close(w)
