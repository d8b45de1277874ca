"""Lesson 04's check helpers. Wrong answers are in tests/mutants/04_data_races.py, the
solutions and untouched exercises in tests/test_checks.py; here is what the checks rely on:
the watched counter (a race made certain, stores counted per worker), and answers' values
crossing back to the checker as plain data."""
from __future__ import annotations

from helpers import failures as _failures
from helpers import load_answers
from mutants import all_mutants

from labkit.checking import call
from labkit.checks._shared import observed
from labkit.processes import run

SOLVED = load_answers("solutions/04_data_races.ipynb")


def _observe(answer, workers, iterations):
    return run(observed, answer, workers, iterations, timeout=30, show=False).value


def test_the_watch_makes_every_unlocked_run_lose_at_least_one_update_per_extra_worker():
    for _ in range(3):
        seen = _observe(SOLVED["racy_count"], 3, 2_000)
        assert seen.value is not None and 0 < seen.value <= 6_000 - 2
        assert seen.stores == (2_000, 2_000, 2_000) and seen.forks == 3
        assert seen.dropped == ()


def test_one_worker_is_never_held_and_counts_exactly():
    seen = _observe(SOLVED["racy_count"], 1, 5_000)
    assert (seen.value, seen.stores) == (5_000, (5_000,))


def test_a_segment_left_to_the_garbage_collector_is_noted():
    mutant = next(m for m in all_mutants() if m.name == "segment_never_unlinked"
                  and m.exercise == "04.racy_counter")
    namespace = dict(SOLVED)
    exec(mutant.source, namespace)
    seen = _observe(namespace["racy_count"], 2, 100)
    assert len(seen.dropped) == 1 and seen.dropped[0].startswith("/labkit_")


def test_what_the_answer_returns_comes_back_as_plain_data():
    class Hostile:
        def __reduce__(self):                     # would run in the checker if unpickled
            return (exit, (3,))

    seen = _observe(lambda workers, iterations: Hostile(), 1, 1)
    assert seen.value is None and seen.shown == "an object of type Hostile"
    failed = _failures("04.lost_update", (Hostile, SOLVED["lose_two"]))
    assert "lose_one() returned an object of type Hostile; expected a schedule" in next(
        iter(failed.values()))


def test_something_else_than_a_pair_is_refused_clearly():
    failed = _failures("04.lost_update", SOLVED["lose_one"])
    assert all("pass both functions as a pair" in m for m in failed.values()) and failed


def test_a_schedule_given_as_a_list_of_numbers_is_accepted():
    assert _failures("04.lost_update", (lambda: [0, 1, 0, 1, 0, 1], SOLVED["lose_two"])) == {}


def test_the_ticket_sale_given_oversells_in_every_watched_run_and_the_fix_never_does():
    given = next(m for m in all_mutants() if m.name == "given_lock_around_the_sale_only")
    namespace = dict(SOLVED)
    exec(given.source, namespace)
    for _ in range(2):
        assert _observe(namespace["sell_tickets"], 3, 1).value == 3
        assert _observe(SOLVED["sell_tickets"], 3, 1).value == 1


def test_raw_race_children_report_an_inherited_anonymous_mapping_and_meet_their_siblings():
    from labkit.checks.race import _ANON, _MET, _raced

    (lost, _), forks, bits, left = call(_raced, SOLVED["lost_updates"], 3, 2_000,
                                        timeout=30).value
    assert forks == 3 and bits == [_ANON | _MET] * 3 and left == []
    assert lost is not None and 0 <= lost < 6_000


def test_raw_race_children_forked_in_turn_never_meet_their_siblings():
    from labkit.checks.race import _MET, _raced

    turns = next(m for m in all_mutants() if m.name == "children_one_after_the_other")
    namespace = dict(SOLVED)
    exec(turns.source, namespace)
    _, forks, bits, _ = call(_raced, namespace["lost_updates"], 2, 10, timeout=30).value
    assert forks == 2 and not bits[0] & _MET
