"""labkit.signals: recorded timelines, coalescing, stop/continue, signal state, replays."""
from __future__ import annotations

import os
import signal
import time

import pytest

from labkit import signals
from labkit.errors import ChildError, LabError, LabTimeout
from labkit.signals import (
    Coalescing,
    Progress,
    Timeline,
    coalescing,
    plot_coalescing,
    plot_progress,
    plot_timeline,
    record_signals,
    replay,
    send_and_settle,
    signal_state,
    signal_table,
    start_ready,
    stop_and_continue,
    wait_for_state,
)

# --- the signal list -----------------------------------------------------------------


def test_the_table_lists_every_signal_with_its_default_action():
    table = {s.name: s for s in signal_table()}
    assert set(table) == {s.name for s in signal.Signals}
    assert (table["SIGKILL"].number, table["SIGKILL"].action) == (9, "terminate")
    assert table["SIGSTOP"].action == "stop" and table["SIGCONT"].action == "continue"
    assert table["SIGCHLD"].action == "ignore" and table["SIGSEGV"].action == "core"
    numbers = [s.number for s in signal_table()]
    assert numbers == sorted(numbers)


def test_the_table_says_ctrl_c_is_sigint_and_ctrl_z_is_sigtstp():
    table = {s.name: s for s in signal_table()}
    assert "Ctrl-C" in table["SIGINT"].sent_by and "Ctrl-Z" in table["SIGTSTP"].sent_by
    assert "Ctrl-Z" not in table["SIGINT"].sent_by


# --- signal names --------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["SIGUSR1", "USR1", "usr1", 10, signal.SIGUSR1])
def test_every_spelling_of_a_signal_is_accepted(spec):
    tl = record_signals([spec, "TERM"])
    assert [s for _, s in tl.handled] == ["SIGUSR1", "SIGTERM"]


@pytest.mark.parametrize("bad", ["SIGNOPE", "", 0, 999, 2.5, None, True])
def test_a_bad_signal_is_a_clear_error_listing_the_valid_ones(bad):
    with pytest.raises(ValueError, match=r"script step 0: .* valid signals: .*SIGUSR1 \(10\)"):
        record_signals([bad])


# --- the recorder --------------------------------------------------------------------


def test_each_send_is_followed_by_its_handler_run():
    tl = record_signals(["USR1", ("USR2", 0.03), "HUP", "TERM"])
    assert isinstance(tl, Timeline) and tl.status == "exited with code 0"
    assert [s for _, s in tl.sent] == ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGTERM"]
    assert [s for _, s in tl.handled] == ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGTERM"]
    for (sent, _), (handled, _) in zip(tl.sent, tl.handled, strict=False):
        assert handled >= sent     # one clock for both processes: effects follow causes
    assert tl.receiver_pid != tl.sender_pid == os.getpid()


def test_blocked_signals_wait_and_arrive_once_each_when_unblocked():
    tl = record_signals(["USR1", "USR1", "USR2", "USR1"], block=["USR1", "USR2"],
                        unblock_at=0.25, gap=0.02)
    unblocked = next(e.t for e in tl.events if e.what == "unblocked")
    assert {e.signal for e in tl.events if e.what == "pending"} == {"SIGUSR1", "SIGUSR2"}
    assert tl.count("handled", "USR1") == 1 and tl.count("handled", "USR2") == 1
    assert tl.count("sent", "USR1") == 3
    assert all(t >= unblocked for t, _ in tl.handled)
    assert [s for _, s in tl.handled] == ["SIGUSR1", "SIGUSR2"]   # lower number first


def test_a_stopped_receiver_runs_no_handler_until_it_is_continued():
    tl = record_signals(["USR1", "STOP", "USR1", "USR2", "USR1", ("CONT", 0.05)], gap=0.02)
    sent = {s: t for t, s in reversed(tl.sent)}   # first send of each
    continued = next(t for t, s in tl.sent if s == "SIGCONT")
    late = [t for t, s in tl.handled if t > sent["SIGSTOP"]]
    assert late and all(t >= continued for t in late)
    assert tl.count("handled", "USR1") <= 2     # the two sent while stopped merged into one
    assert tl.status == "exited with code 0"


# A caught signal followed by a fatal one: the handler runs only when the receiver gets a CPU,
# so the fatal signal goes after a gap that a loaded machine does not outlast (with 0.02 s,
# six test workers on two CPUs once had SIGTERM kill the receiver before the handler ran).
FATAL_GAP = 0.25


def test_default_and_ignored_signals_are_not_recorded():
    tl = record_signals(["USR1", "TERM", "USR1"], default=["TERM"], gap=FATAL_GAP)
    assert tl.status.startswith("killed by SIGTERM")
    assert [s for _, s in tl.handled] == ["SIGUSR1"]
    tl = record_signals(["USR2", "TERM"], ignore=["TERM"], gap=0.02)
    assert tl.status == "exited with code 0" and [s for _, s in tl.handled] == ["SIGUSR2"]


def test_a_receiver_that_ignores_sigterm_and_never_ends_is_still_cleaned_up():
    tl = record_signals(["TERM"], ignore=["TERM"], work=lambda: time.sleep(60), timeout=10)
    assert tl.status.startswith("killed by SIGKILL") and "labkit killed it" in tl.status
    assert tl.handled == []
    # no_leaks (conftest) fails this test if the receiver were still there


def test_sigkill_ends_the_receiver_and_no_handler_sees_it():
    tl = record_signals(["USR1", "KILL", "USR1"], gap=FATAL_GAP)
    assert tl.status.startswith("killed by SIGKILL")
    assert [s for _, s in tl.handled] == ["SIGUSR1"]


def test_work_in_the_receiver_is_recorded_as_a_span():
    tl = record_signals(["USR1"], work=lambda: time.sleep(0.1), gap=0.02)
    marks = [e.what for e in tl.events if e.who == "receiver" and e.what.startswith("work")]
    assert marks == ["work started", "work ended"]
    assert tl.count("handled", "USR1") == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"script": [("USR1", -1)]}, "delay must be a number of seconds >= 0"),
    ({"script": [("USR1", 0.1, 3)]}, "must be a signal or a pair"),
    ({"script": ["USR1"], "gap": float("nan")}, "gap must be"),
    ({"script": [("USR1", 5.0)]}, "keep it under"),
    ({"script": ["USR1"] * 2001, "gap": 0}, "at most 2000 steps"),
    ({"script": ["USR1"], "catch": ["KILL"]}, "SIGKILL cannot be caught"),
    ({"script": ["USR1"], "ignore": ["STOP"]}, "SIGSTOP cannot be ignored"),
    ({"script": ["USR1"], "unblock_at": 0.1}, "unblock_at needs signals to unblock"),
    ({"script": ["USR1"], "timeout": 0}, "timeout must be"),
    ({"script": ["USR1"], "block": ["NOPE"]}, "block: 'NOPE' is not a signal"),
])
def test_bad_recorder_input_is_refused_before_any_process_starts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        record_signals(**kwargs)


def test_work_must_be_a_function():
    with pytest.raises(TypeError, match="work must be a function"):
        record_signals(["USR1"], work=3)


def test_work_that_raises_still_gives_a_timeline():
    def boom():
        raise RuntimeError("work failed")

    tl = record_signals(["USR1"], work=boom, gap=0.02)
    # A signal sent before the work raised is handled and on the timeline (a busy machine).
    assert tl.status == "exited with code 1"
    assert all(name == "SIGUSR1" for _, name in tl.handled)


# --- coalescing ----------------------------------------------------------------------


def test_standard_signals_merge_but_never_multiply():
    c = coalescing(300, trials=3)
    assert isinstance(c, Coalescing) and c.trials == 3 and c.sent == 300
    for delivered, handled in zip(c.delivered, c.handled, strict=True):
        assert 1 <= handled <= delivered <= 300


def test_real_time_signals_queue_every_one():
    c = coalescing(300, trials=2, sig="SIGRTMIN")
    assert c.delivered == [300, 300]
    assert all(1 <= h <= 300 for h in c.handled)   # Python may still merge handler runs


@pytest.mark.parametrize("kwargs, message", [
    ({"sent": 0}, "sent must be"), ({"sent": 10**6}, "sent must be"),
    ({"trials": 0}, "trials must be"),
    ({"sig": "KILL"}, "cannot be caught"), ({"sig": "NOPE"}, "valid signals"),
])
def test_bad_coalescing_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        coalescing(**kwargs)


# --- stop and continue ---------------------------------------------------------------


def test_a_stopped_child_makes_no_progress():
    p = stop_and_continue(0.1, 0.3, 0.45, interval=0.01)
    assert isinstance(p, Progress) and p.counts == sorted(p.counts)
    stopped = [c for c, s in zip(p.counts, p.states, strict=True) if s in "tT"]
    assert stopped, "the child was never seen stopped"
    assert len(set(stopped[1:])) <= 1    # frozen from the first stopped sample on
    assert p.stopped_at <= p.continued_at


def test_the_count_is_never_seen_going_back_even_counting_flat_out(monkeypatch):
    """The doctest's flake: the count was copied byte by byte, so a read in the middle of
    a copy could see it go back. Counting and sampling without pauses, as here, showed it
    hundreds of times a second; one aligned word never does."""
    monkeypatch.setattr(signals.time, "sleep", lambda seconds: None)  # the child inherits it
    p = stop_and_continue(0.0, 0.0, 0.5, interval=0.001)
    assert len(p.counts) > 100 and p.counts == sorted(p.counts)


def test_stop_and_continue_checks_its_times():
    with pytest.raises(ValueError, match="stop_at <= continue_at"):
        stop_and_continue(0.5, 0.2, 1.0)
    with pytest.raises(ValueError, match="interval must be"):
        stop_and_continue(interval=0)


# --- signal state, readiness and settling --------------------------------------------


def _blocks_usr1(ready):
    signal.signal(signal.SIGUSR2, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ready()
    time.sleep(30)


def test_the_state_shows_blocked_pending_and_caught_signals():
    with start_ready(_blocks_usr1, timeout=10) as child:
        os.kill(child.pid, signal.SIGUSR1)
        st = wait_for_state(child.pid, blocked=["USR1"], caught=["USR2"], sleeping=True)
        deadline = time.monotonic() + 2
        while "SIGUSR1" not in st.pending and time.monotonic() < deadline:
            st = signal_state(child.pid)
        assert "SIGUSR1" in st.pending and "SIGUSR1" in st.blocked
        assert "SIGUSR2" in st.caught and "SIGPIPE" in st.ignored
        assert "pending {SIGUSR1}" in str(st)
        child.stop()


def test_waiting_for_a_state_that_never_comes_times_out_and_says_what_is_missing():
    with start_ready(_blocks_usr1, timeout=10) as child:
        with pytest.raises(LabTimeout, match="catches no SIGHUP"):
            wait_for_state(child.pid, caught=["HUP"], timeout=0.2)
        child.stop()


def test_the_state_of_a_reaped_process_is_a_clear_error():
    with start_ready(lambda ready: ready(), timeout=5) as child:
        child.wait()
    with pytest.raises(LabError, match="there is no process"):
        signal_state(child.pid)


def _settler(ready):
    signal.signal(signal.SIGUSR2, lambda *_: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ready()
    while True:
        time.sleep(30)


def test_send_and_settle_says_what_became_of_each_signal():
    with start_ready(_settler, timeout=10) as child:
        wait_for_state(child.pid, sleeping=True)
        assert send_and_settle(child.pid, "USR2") == "handled"
        assert send_and_settle(child.pid, "USR1") == "pending"
        assert send_and_settle(child.pid, "HUP") == "ignored"
        assert send_and_settle(child.pid, "URG") == "ignored"     # ignored by default
        assert send_and_settle(child.pid, "STOP") == "stopped"
        assert send_and_settle(child.pid, "USR2") == "pending"
        assert send_and_settle(child.pid, "CONT") in ("continued", "handled")
        assert send_and_settle(child.pid, "TERM") == "ended"
        assert str(child.wait().status).startswith("killed by SIGTERM")


def test_a_child_that_fails_before_it_is_ready_raises_with_its_traceback():
    def fails(ready):
        raise RuntimeError("no handler today")

    with pytest.raises(ChildError, match="raised RuntimeError: no handler today"):
        start_ready(fails, timeout=5, show=False)


def test_a_child_that_never_says_ready_is_killed():
    with pytest.raises(LabTimeout, match="did not call ready"):
        start_ready(lambda ready: time.sleep(30), timeout=0.3)


def test_a_child_that_returns_without_ready_is_an_error():
    with pytest.raises(ChildError, match="returned without calling ready"):
        start_ready(lambda ready: None, timeout=5)


# --- replay --------------------------------------------------------------------------


def _echo(ready):
    def say(signum, frame):
        print(signal.Signals(signum).name)
        if signum == signal.SIGTERM:
            raise SystemExit(0)

    for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
        signal.signal(s, say)
    ready()
    while True:
        signal.pause()


def test_replay_sends_one_signal_at_a_time_and_keeps_them_all():
    r = replay(_echo, ["USR1"] * 5 + ["USR2", "TERM"])
    assert r.output == ["SIGUSR1"] * 5 + ["SIGUSR2", "SIGTERM"]
    assert r.status == "exited with code 0" and r.ended_by_itself
    assert r.outcomes[:6] == ["handled"] * 6 and r.outcomes[6] == "ended"


def test_replay_ends_a_program_that_outlives_its_signals():
    r = replay(_echo, ["USR1"])
    assert r.output == ["SIGUSR1"] and not r.ended_by_itself
    assert "still running" in r.status


def test_replay_refuses_bad_names():
    with pytest.raises(ValueError, match="signals: 'BOGUS' is not a signal"):
        replay(_echo, ["USR1", "BOGUS"])


# --- plots ---------------------------------------------------------------------------


def test_the_plots_draw_real_data_and_return_their_axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = record_signals(["USR1", "STOP", "USR2", "CONT"], block=["USR1"], unblock_at=0.05,
                        work=lambda: None, gap=0.02)
    ax = plot_timeline(tl)
    assert ax.get_title() and ax.get_xlabel().endswith("(ms)")
    ax = plot_coalescing(Coalescing("SIGUSR1", 100, [10, 3], [2, 1]))
    assert ax.get_yscale() == "log"
    ax = plot_progress(Progress([0.0, 0.1, 0.2], [0, 5, 5], ["S", "T", "S"], 0.05, 0.15, 1))
    assert ax.get_legend() is not None
    plt.close("all")


def _sigwaiter(ready):
    wanted = {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    ready()
    got = []
    while not got or got[-1] != "SIGTERM":
        got.append(signal.Signals(signal.sigwait(wanted)).name)
    return got


def test_signals_taken_by_sigwait_settle_one_by_one_in_send_order():
    with start_ready(_sigwaiter, timeout=10) as child:
        wait_for_state(child.pid, blocked=["USR1", "USR2", "TERM"], sleeping=True)
        outcomes = [send_and_settle(child.pid, s) for s in ("USR2", "USR1", "USR2", "TERM")]
        assert outcomes == ["handled", "handled", "handled", "ended"]
        assert child.wait().value == ["SIGUSR2", "SIGUSR1", "SIGUSR2", "SIGTERM"]
