"""labkit.bench: every mechanism of the harness moves the bytes it is given, the results
have the shape they claim, bad input is refused clearly, and nothing is left behind.
No test here depends on a timing being fast or slow."""
from __future__ import annotations

import csv
import math
import os
import shutil

import pytest

from labkit import bench, bench_harness
from labkit.cli import main
from labkit.errors import LabTimeout, NotSupportedHere

pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


# --- the channels ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", bench.MECHANISMS + bench.ZERO_COPY)
def test_every_mechanism_delivers_every_byte_of_every_message_in_order(mechanism):
    messages = [b"x", os.urandom(3000), bytes(range(256)) * 20, b"last"]
    if mechanism != "mqueue":  # bigger than a pipe, a socket buffer, a slot's neighbour
        messages.insert(2, os.urandom(200_000))
    assert bench.transfer(mechanism, messages) == messages


@pytest.mark.parametrize("mechanism", bench.ZERO_COPY)
def test_zero_copy_delivers_distinct_messages_that_share_no_pages(mechanism):
    # a sender that reused one staging page would change bytes still in the pipe
    messages = [bytes([k]) * 100_000 for k in range(6)]
    assert bench.transfer(mechanism, messages) == messages


def test_splice_is_measured_beside_the_pipe_in_one_sweep():
    s = bench.sweep(["pipe", *bench.ZERO_COPY], sizes=[65536], trials=1, round_trips=10,
                    baseline=False)
    for m in ("pipe", *bench.ZERO_COPY):
        assert s.rate(m, 65536) > 0 and s.round_trip(m) > 0


@pytest.mark.parametrize("pin", ["same", "split", None])
def test_placement_does_not_change_what_arrives(pin):
    if pin == "split" and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU only")
    assert bench.transfer("shm", [b"a", b"bb", b"ccc"], pin=pin) == [b"a", b"bb", b"ccc"]


def test_a_message_queue_refuses_messages_over_its_limit():
    limit = bench_harness.mq_size_limit()
    with pytest.raises(ValueError, match="msgsize_max"):
        bench.transfer("mqueue", [bytes(limit + 1)])


@pytest.mark.parametrize("messages", [[], b"abc", [b""], ["text"], [bytes(bench.MAX_SIZE + 1)]])
def test_bad_messages_are_refused(messages):
    with pytest.raises(ValueError, match="message"):
        bench.transfer("pipe", messages)


# --- a sweep --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep():
    return bench.sweep(bench.MECHANISMS, sizes=[1, 4096, 65536], trials=2, round_trips=40,
                       total=256 << 10, max_messages=64)


def test_a_sweep_measures_every_mechanism_at_every_size_it_can_carry(small_sweep):
    s = small_sweep
    for m in s.mechanisms:
        for j, size in enumerate(s.sizes):
            fits = not (m == "mqueue" and size > bench_harness.mq_size_limit())
            assert len(s.seconds[m][j]) == (2 if fits else 0), (m, size)
            assert len(s.switches[m][j]) == len(s.seconds[m][j])
            if fits:
                assert s.rate(m, size) > 0 and s.per_message(m, size) > 0
            else:
                assert math.isnan(s.rate(m, size))
    assert "msgsize_max" in s.skipped["mqueue"]
    assert all(len(times) == 2 for times in s.memcpy)


def test_counts_follow_the_total_within_their_bounds(small_sweep):
    assert small_sweep.counts == [64, 64, 4]
    assert all(1 <= w <= c for w, c in zip(small_sweep.warmups, small_sweep.counts, strict=True))


def test_round_trips_are_all_kept_and_their_percentiles_are_ordered(small_sweep):
    for m in small_sweep.mechanisms:
        assert len(small_sweep.round_trip_ns[m]) == 40
        qs = [small_sweep.round_trip(m, q) for q in (0.1, 0.5, 0.9, 0.99)]
        assert qs == sorted(qs) and qs[0] > 0


def test_the_dd_baseline_runs_at_64_kib_beside_the_pipe(small_sweep):
    assert small_sweep.dd_size == 65536 and len(small_sweep.dd) == 2
    assert small_sweep.dd_rate() > 0


def test_the_ranking_and_tables_cover_what_was_measured(small_sweep):
    s = small_sweep
    ranking = s.ranking(65536)
    assert {m for m, _ in ranking} == set(s.mechanisms) - {"mqueue"}
    assert [r for _, r in ranking] == sorted((r for _, r in ranking), reverse=True)
    table = s.table()
    assert len(table.rows) == len(s.mechanisms) + 2  # with the NumPy copy and dd
    assert "n/a" in table.rows[s.mechanisms.index("mqueue")]
    assert len(s.latency_table().rows) == len(s.mechanisms)
    assert "shuffled" in s.method and "warm-up" in s.method and "faulted" in s.method


def test_rows_hold_medians_and_spread_for_the_csv(small_sweep):
    rows = small_sweep.rows()
    pipe = next(r for r in rows if r["mechanism"] == "pipe" and r["size"] == 65536)
    assert pipe["q1_Bps"] <= pipe["median_Bps"] <= pipe["q3_Bps"] and pipe["dd_Bps"] > 0
    mq = next(r for r in rows if r["mechanism"] == "mqueue" and r["size"] == 65536)
    assert "msgsize_max" in mq["note"]
    assert sum("rtt_p50_us" in r for r in rows) == len(small_sweep.mechanisms)


def test_every_plot_draws_from_the_data_alone(small_sweep):
    import matplotlib.pyplot as plt

    for ax in (bench.plot_throughput(small_sweep), bench.plot_time_per_message(small_sweep),
               bench.plot_round_trips(small_sweep, small_sweep)):
        assert ax.get_title() and ax.get_xlabel()
    plt.close("all")
    with pytest.raises(ValueError, match="at least one"):
        bench.plot_round_trips()


def test_round_trips_alone():
    s = bench.round_trips(["pipe", "mp_pipe"], n=31, trials=3)
    assert s.sizes == [] and {m: len(v) for m, v in s.round_trip_ns.items()} == {
        "pipe": 31, "mp_pipe": 31}


def test_cross_core_placement_is_named():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU only")
    s = bench.round_trips(["pipe"], n=10, pin="split")
    assert "sender on CPU" in s.placement and "receiver on CPU" in s.placement


def test_a_sweep_that_runs_out_of_time_is_stopped_and_leaves_nothing():
    with pytest.raises(LabTimeout):
        bench.sweep(["mp_queue"], sizes=[1], trials=1, round_trips=0, total=1 << 30,
                    max_messages=1_000_000, timeout=0.5, baseline=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"mechanisms": []}, "mechanisms"), ({"mechanisms": ["pigeon"]}, "unknown mechanism"),
    ({"mechanisms": ["pipe", "pipe"]}, "repeat"), ({"mechanisms": "pipe"}, "mechanisms"),
    ({"sizes": [0]}, "message size"), ({"sizes": [-4]}, "message size"),
    ({"sizes": [bench.MAX_SIZE + 1]}, "message size"), ({"sizes": [8, 8]}, "repeat"),
    ({"sizes": [1.5]}, "message size"), ({"trials": 0}, "trials"),
    ({"trials": -1}, "trials"), ({"round_trips": -1}, "round_trips"),
    ({"latency_size": 0}, "latency_size"), ({"latency_size": 5000}, "latency_size"),
    ({"total": 0}, "total"), ({"max_messages": 1}, "max_messages"),
    ({"timeout": 0}, "timeout"), ({"pin": "left"}, "pin"),
    ({"sizes": [], "round_trips": 0}, "nothing to measure")])
def test_bad_sweep_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.sweep(**kwargs)


# --- system calls ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_strace_counts_one_write_and_one_read_per_pipe_message_of_64_kib():
    try:
        calls = bench.count_syscalls("pipe", 65536, 50)
    except NotSupportedHere as e:
        pytest.skip(str(e))
    assert calls.per_message["write"] == pytest.approx(1.0)
    assert calls.per_message["readv"] >= 1.0
    assert calls.table().rows[0][1] >= 1.0


def test_count_syscalls_refuses_bad_input():
    with pytest.raises(ValueError, match="count"):
        bench.count_syscalls("pipe", 100, 0)
    with pytest.raises(ValueError, match="unknown mechanism"):
        bench.count_syscalls("pigeon")


def test_without_strace_the_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(NotSupportedHere, match="strace"):
        bench.count_syscalls("pipe", 100, 10)


# --- the full sweep and the command ----------------------------------------------------


def test_the_full_sweep_writes_a_csv_and_plots_and_states_the_headline_figures(tmp_path):
    report = bench.full(tmp_path, progress=False, sizes=[64, 65536, 1 << 20], trials=1,
                        round_trips=20)
    with open(report.csv) as f:
        rows = list(csv.DictReader(f))
    assert {r["mechanism"] for r in rows} == set(bench.MECHANISMS)
    assert all(p.exists() and p.stat().st_size > 0 for p in report.plots)
    summary = report.summary()
    assert "dd | dd" in summary and "at 1 MiB, same core: shared memory" in summary
    if report.split is not None:
        assert "cross core" in summary


def test_labkit_bench_full_runs_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "FULL_SIZES", (4096, 65536))
    real = bench.full
    monkeypatch.setattr(bench, "full", lambda out: real(out, progress=False, trials=1,
                                                        round_trips=10))
    assert main(["bench", "--full", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "pipe at 64 KiB, same core" in out and (tmp_path / "out" / "bench.csv").exists()
