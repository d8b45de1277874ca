"""labkit.race: the invariants of the counter experiments, never a lucky timing.

An unsynchronized counter may lose any number of updates, but never ends above
the correct total; a locked or batched one always ends exactly on it; one
worker alone never loses anything. Torn reads are counted consistently.
"""
from __future__ import annotations

import os
import time

import matplotlib
import pytest

from labkit import race
from labkit.errors import ChildError

matplotlib.use("agg")


@pytest.mark.parametrize("workers, pin", [(2, "auto"), (3, "split"), (2, "same"), (4, None)])
def test_unlocked_counter_never_exceeds_expected(workers, pin):
    r = race.counter_race(workers=workers, iterations=20_000, trials=5, pin=pin)
    assert r.expected == workers * 20_000
    assert len(r.finals) == 5
    assert all(0 < f <= r.expected for f in r.finals), r.finals
    assert all(lost >= 0 for lost in r.lost)


@pytest.mark.parametrize("flavour", ["semaphore", "mp_lock", "batched"])
def test_locked_counter_is_exact_in_every_trial(flavour):
    r = race.counter_race(workers=3, iterations=5_000, trials=4, flavour=flavour)
    assert r.finals == [15_000] * 4
    assert r.lossy_trials == 0 and r.lost_fractions == [0.0] * 4


def test_one_worker_alone_never_loses_an_update():
    r = race.counter_race(workers=1, iterations=50_000, trials=3)
    assert r.finals == [50_000] * 3


def test_each_trial_is_plain_data():
    r = race.counter_race(workers=2, iterations=10_000, trials=3)
    for t in r.trials:
        assert t.expected == 20_000
        assert t.lost == t.expected - t.final
        assert t.lost_fraction == pytest.approx(t.lost / 20_000)
        assert t.seconds > 0
    assert r.seconds == [t.seconds for t in r.trials]
    assert r.ns_per_increment > 0 and "2 workers x 10,000 increments" in str(r)
    assert len(r.cpus) == 2


def test_the_workers_run_where_they_were_pinned():
    r = race.counter_race(workers=2, iterations=1_000, trials=1, pin="same")
    assert len(set(r.cpus)) == 1 and r.placement.startswith("all 2 workers on CPU")


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers must be a whole number of workers from 1"),
    ({"workers": 2.0}, "workers must be"),
    ({"iterations": 0}, "iterations must be a whole number of increments from 1"),
    ({"iterations": -5}, "iterations must be"),
    ({"trials": 0}, "trials must be"),
    ({"flavour": "spinlock"}, "flavour must be one of 'none', 'semaphore'"),
    ({"pin": "left"}, "pin must be 'same'"),
    ({"timeout": 0}, "timeout must be a number of seconds > 0"),
    ({"timeout": -1.0}, "timeout must be"),
])
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        race.counter_race(**kwargs)


def _fails(counter, n, lock):
    raise RuntimeError("this worker fails on purpose")


def test_a_worker_that_fails_is_reported_with_its_error(monkeypatch):
    monkeypatch.setitem(race._COUNT, "none", _fails)
    with pytest.raises(ChildError, match="fails on purpose"):
        race.counter_race(workers=2, iterations=10, trials=3, timeout=20)


def test_a_sweep_runs_one_experiment_per_value():
    s = race.sweep("iterations", [1_000, 4_000], trials=2, workers=2)
    assert s.values == [1_000, 4_000] and s.varied == "iterations"
    assert [r.expected for r in s.results] == [2_000, 8_000]
    w = race.sweep("workers", [1, 3], trials=2, iterations=2_000, flavour="semaphore")
    assert [r.finals for r in w.results] == [[2_000, 2_000], [6_000, 6_000]]


@pytest.mark.parametrize("args, kwargs, message", [
    (("threads", [1]), {}, "varied must be 'iterations' or 'workers'"),
    (("iterations", []), {}, "values must be a non-empty list"),
    (("workers", [1]), {"workers": 2}, "takes the values of the sweep"),
])
def test_a_sweep_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        race.sweep(*args, **kwargs)


def test_torn_reads_are_counted_consistently():
    r = race.torn_reads(reads=30_000)
    assert sum(r.differences.values()) == r.reads == 30_000
    assert r.torn == r.reads - r.differences.get(0, 0)
    assert all(x != y for x, y in r.examples) and len(r.examples) <= 6
    assert len({y - x for x, y in r.examples}) == len(r.examples)
    assert r.writes >= 1 and r.guard == "none" and r.retries == 0


def test_a_locked_record_is_never_torn():
    r = race.torn_reads(reads=20_000, locked=True)
    assert r.torn == 0 and r.differences == {0: 20_000} and r.examples == ()


def test_seqlock_reads_are_never_torn_and_the_plain_reads_of_the_same_run_are_counted():
    r = race.seqlock_reads(reads=20_000)
    assert r.seqlock.torn == 0 and r.seqlock.differences == {0: 20_000}
    assert r.seqlock.examples == () and r.seqlock.guard == "seqlock"
    assert r.plain.guard == "none" and sum(r.plain.differences.values()) == 20_000
    assert r.plain.writes == r.seqlock.writes >= 1 and r.plain.retries == 0
    assert "seqlock" in str(r) and "retries" in str(r.seqlock)


def test_the_seqlock_writer_leaves_an_even_count_and_a_whole_record():
    record = race.Record()
    for k in (1, 2, 3):
        race.seqlock_write(record, k)
    assert (record.x, record.y, record.seq) == (3, 3, 6)
    assert race.seqlock_read(record) == (3, 3, 0)


def test_a_seqlock_reader_retries_while_a_write_is_under_way():
    calls = []

    class Finishing(race.Record):                # odd (a write under way), then even, done
        @property
        def seq(self):
            calls.append(1)
            return 1 if len(calls) < 3 else 2

    finishing = Finishing()
    finishing.x = finishing.y = 5
    assert race.seqlock_read(finishing) == (5, 5, 2)   # two looks at an odd count


def test_torn_reads_refuses_zero_reads():
    with pytest.raises(ValueError, match="reads must be a whole number of reads from 1"):
        race.torn_reads(reads=0)


def test_the_plots_draw_the_data():
    unlocked = race.counter_race(workers=2, iterations=5_000, trials=4)
    locked = race.counter_race(workers=2, iterations=5_000, trials=4, flavour="semaphore")
    ax = race.plot_finals([unlocked, locked])
    assert "correct total 10,000" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert race.plot_finals(locked).get_xlabel() == "final value of the counter"
    assert race.plot_times([unlocked, locked]).get_yscale() == "log"
    sweep = race.sweep("workers", [1, 2], trials=2, iterations=1_000)
    assert "worker processes" in race.plot_lost_fraction(sweep).get_xlabel()
    assert race.plot_torn_reads(race.torn_reads(reads=2_000)).get_yscale() == "log"
    table = repr(race.times_table([unlocked, locked]))
    assert "posix_ipc semaphore" in table and "1.0x" in table


def test_experiments_with_different_totals_are_not_drawn_on_one_histogram():
    a = race.counter_race(workers=1, iterations=1_000, trials=1)
    b = race.counter_race(workers=1, iterations=2_000, trials=1)
    with pytest.raises(ValueError, match="different correct totals"):
        race.plot_finals([a, b])


def test_a_worker_that_finished_its_trials_is_not_taken_for_a_dead_one():
    # Under load one worker can finish all its trials while the parent still waits for a
    # slower one; only a worker that died or raised is an early end.
    from labkit.processes import start_workers
    from labkit.race import _ended_early

    def finish_or_fail(i):
        if i == 1:
            raise RuntimeError("worker 1 fails")
        return i

    def fast_and_slow(i):
        if i == 1:
            time.sleep(30)
        return i

    with start_workers(fast_and_slow, 2, show=False, timeout=20) as workers:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitid(
                os.P_PID, workers.pids[0], os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            time.sleep(0.01)
        assert _ended_early(workers) is None
        workers.stop()
    with start_workers(finish_or_fail, 2, show=False, timeout=20) as workers:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _ended_early(workers) is None:
            time.sleep(0.01)
        assert _ended_early(workers) == 1
        workers.wait()


def test_a_trial_records_how_long_all_workers_counted_together():
    apart = race._trial(10, 20, [(0.0, 1.0), (1.0, 2.0)])       # one after the other
    half = race._trial(10, 20, [(0.0, 2.0), (1.0, 3.0)])
    alone = race._trial(10, 10, [(5.0, 6.0)])
    assert (apart.seconds, apart.overlap) == (2.0, 0.0)
    assert (half.seconds, half.overlap) == (3.0, pytest.approx(1 / 3))
    assert alone.overlap == 1.0
    r = race.counter_race(workers=2, iterations=10_000, trials=3)
    assert all(0.0 <= t.overlap <= 1.0 for t in r.trials)
    assert 0.0 <= r.median_overlap <= 1.0


def test_the_model_histogram_draws_nothing_past_the_correct_total():
    from labkit import interleave

    real = race.RaceResult(2, 100, "none", "unpinned", (None, None),
                           (race.Trial(200, 200, 0.01), race.Trial(150, 200, 0.01)))
    ax = interleave.plot_model_vs_real([interleave.outcomes(interleave.counter())], real)
    right = max(max(p.get_path().vertices[:, 0]) for p in ax.patches)
    assert right <= 100
