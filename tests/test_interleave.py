"""labkit.interleave: the model exactly, and the explorer's widgets without a browser."""
from __future__ import annotations

from collections import Counter

import matplotlib
import pytest

from labkit import interleave as il
from labkit import interleave_model as il_model
from labkit.errors import LabError
from labkit.race import RaceResult, Trial

matplotlib.use("agg")


def _text(schedule) -> str:
    return "".join(map(str, schedule))


def _all_orders(lengths: list[int]) -> set[str]:
    """Every interleaving of processes with these step counts, as schedule strings."""
    if not any(lengths):
        return {""}
    return {str(p) + rest for p, n in enumerate(lengths) if n
            for rest in _all_orders([m - (q == p) for q, m in enumerate(lengths)])}


# --- the model ---------------------------------------------------------------------------


def test_two_three_step_processes_have_exactly_the_twenty_interleavings():
    traces = list(il.schedules(il.counter()))
    assert {_text(t.schedule) for t in traces} == _all_orders([3, 3])
    assert len(traces) == 20 and all(t.finished for t in traces)
    finals = Counter(t.value() for t in traces)
    assert finals == {1: 18, 2: 2}
    assert {_text(t.schedule) for t in traces if t.value() == 2} == {"000111", "111000"}


def test_a_lost_update_needs_both_loads_before_either_store():
    for t in il.schedules(il.counter()):
        s = _text(t.schedule)
        loads = (s.index("0"), s.index("1"))
        stores = (s.rindex("0"), s.rindex("1"))
        assert (t.value() == 1) == (max(loads) < min(stores)), s


@pytest.mark.parametrize("system, lengths", [
    (il.counter(3), [3, 3, 3]),
    (il.counter(2, 2), [6, 6]),
])
def test_every_interleaving_is_listed_once(system, lengths):
    listed = [_text(t.schedule) for t in il.schedules(system)]
    assert len(listed) == len(set(listed))
    assert set(listed) == _all_orders(lengths)


@pytest.mark.parametrize("system", [il.counter(3), il.counter(2, 2), il.locked_counter(2),
                                    il.locked_counter(3), il.two_locks(), il.two_locks(True)])
def test_counting_by_states_agrees_with_listing_every_schedule(system):
    traces = list(il.schedules(system))
    counted = il.outcomes(system)
    assert counted.counts == dict(Counter(t.value() for t in traces if t.finished))
    assert counted.deadlocks == sum(t.deadlocked for t in traces)
    assert counted.total == len(traces)


def test_three_processes_lose_updates_in_most_interleavings():
    o = il.outcomes(il.counter(3))
    assert o.total == 1680 and o.counts == {1: 1404, 2: 270, 3: 6}
    assert o.correct == 3 and o.lossy == 1674
    assert o.fraction(3) == pytest.approx(6 / 1680)


def test_two_processes_incrementing_three_times_can_end_at_two():
    o = il.outcomes(il.counter(2, 3))
    assert min(o.counts) == 2 and max(o.counts) == 6
    t = il.run(il.counter(2, 3), "0 111111 00 1 000000 11")
    assert t.finished and t.value() == 2 and t.lost_updates == 4


def test_the_locked_counter_never_loses_an_update():
    for processes, increments in ((2, 1), (3, 1), (2, 2)):
        o = il.outcomes(il.locked_counter(processes, increments))
        assert o.counts == {processes * increments: o.total} and o.deadlocks == 0


def test_locks_taken_in_opposite_orders_can_deadlock_and_in_the_same_order_cannot():
    opposite = list(il.schedules(il.two_locks()))
    stuck = {_text(t.schedule) for t in opposite if t.deadlocked}
    assert stuck == {"01", "10"}
    assert all(t.value() == 2 for t in opposite if t.finished)
    assert il.outcomes(il.two_locks(same_order=True)).deadlocks == 0


def test_a_deadlock_is_a_state_where_nobody_can_move():
    system = il.two_locks()
    t = il.run(system, "01")
    assert t.deadlocked and not t.finished and system.enabled(t.state) == []
    assert system.blocked_by(t.state, 0) == 1 and system.blocked_by(t.state, 1) == 0
    assert system.why_not(
        t.state, 0) == "process 0 is blocked at 'acquire B': process 1 holds lock B"


def test_a_trace_shows_every_step():
    t = il.run(il.counter(), "0011 01")
    assert t.events == ("P0: load x -> r0 = 0", "P0: add 1 -> r0 = 1", "P1: load x -> r1 = 0",
                        "P1: add 1 -> r1 = 1", "P0: store x -> x = 1", "P1: store x -> x = 1")
    assert [s.value() for s in t.states] == [0, 0, 0, 0, 0, 1, 1]
    assert t.state.registers == (1, 1) and t.lost_updates == 1
    assert str(t) == "schedule 001101: x = 1; finished"


def test_a_partial_schedule_stops_where_it_is():
    t = il.run(il.counter(), "01")
    assert not t.finished and not t.deadlocked and t.state.pcs == (1, 1)
    assert "4 steps still to go" in str(t)
    assert il.run(il.counter(), "").state == il.counter().start()


def test_locks_show_their_holder():
    t = il.run(il.locked_counter(), "00")
    assert t.state.holder("L") == 0 and t.events[0] == "P0: acquire L -> P0 holds L"
    with pytest.raises(il.ScheduleError, match="process 1 is blocked at 'acquire L'"):
        il.run(il.locked_counter(), "001")


@pytest.mark.parametrize("schedule, message", [
    ("0000", "step 4: process 0 has finished its 3 instructions"),
    ("02", "step 2 names process 2, but there are only processes 0 and 1"),
    ("0a1", "it may not contain 'a'"),
    ([0, -1], "a schedule lists process numbers"),
    ([0, True], "a schedule lists process numbers"),
    (None, "a schedule is a string such as"),
])
def test_impossible_schedules_say_why(schedule, message):
    with pytest.raises(il.ScheduleError, match=message):
        il.run(il.counter(), schedule)


def test_schedules_may_be_spaced_or_listed():
    assert il.parse_schedule("0, 1_1 0") == (0, 1, 1, 0)
    assert il.parse_schedule([1, 0]) == (1, 0)
    assert il.run(il.counter(), [0, 0, 0, 1, 1, 1]).value() == 2


def test_programs_parse_and_refuse_nonsense():
    assert [str(i) for i in il.parse_program("load x\nadd -2; store y")] == [
        "load x", "add -2", "store y"]
    with pytest.raises(ValueError, match="an instruction is one of load, add"):
        il.parse_program("jump x")
    with pytest.raises(ValueError, match="add takes a whole number"):
        il.parse_program("add x")
    with pytest.raises(ValueError, match="an instruction is an operation and one argument"):
        il.parse_program("load")
    with pytest.raises(ValueError, match="give a list of 1 to"):
        il.System.of([])
    with pytest.raises(ValueError, match="workers must be a whole number from 1"):
        il.counter(0)


def test_a_release_of_a_lock_not_held_is_a_broken_program():
    system = il.System.of(["release L"])
    with pytest.raises(il.ScheduleError, match="releases lock L, which it does not hold"):
        il.run(system, "0")


def test_memory_can_start_elsewhere():
    system = il.System.of(["load x; add 5; store x"], memory={"x": 10})
    assert il.run(system, "000").value() == 15 and il.outcomes(system).correct == 15


def test_too_many_schedules_are_counted_not_listed(monkeypatch):
    monkeypatch.setattr(il_model, "MAX_LISTED", 100)
    with pytest.raises(ValueError, match="has 1,680 schedules, too many to list"):
        list(il.schedules(il.counter(3)))


def test_too_many_states_are_sampled_not_counted(monkeypatch):
    monkeypatch.setattr(il_model, "MAX_STATES", 50)
    with pytest.raises(ValueError, match=r"use sample|draw random schedules with sample"):
        il.outcomes(il.counter(3))


@pytest.mark.parametrize("system", [il.philosophers(6), il.counter(4, 3), il.locked_counter(5, 3),
                                    il.philosophers(10), il.counter(10), il.counter(3, 3)],
                         ids=lambda s: s.title)
def test_a_model_too_big_to_explore_is_refused_with_what_is_allowed(system):
    with pytest.raises(LabError, match=r"more than 10,000 states.*at most 10,000.*sample\(\)"):
        il.outcomes(system)
    with pytest.raises(LabError, match="too many"):
        next(il.schedules(system))


def test_outcomes_needs_a_variable_the_system_has():
    with pytest.raises(ValueError, match="no variable 'y'"):
        il.outcomes(il.counter(), "y")


def test_random_schedules_are_seeded_and_never_beat_the_correct_total():
    a = il.sample(il.counter(2, 30), schedules=300, seed=4)
    assert a.counts == il.sample(il.counter(2, 30), schedules=300, seed=4).counts
    assert a.sampled and a.total == 300 and max(a.counts) <= 60 and min(a.counts) >= 2
    assert il.sample(il.locked_counter(2, 10), 100, burst=3).counts == {20: 100}
    stuck = il.sample(il.two_locks(), 400, seed=1)
    assert stuck.deadlocks > 0 and set(stuck.counts) == {2}


@pytest.mark.parametrize("kwargs, message", [
    ({"schedules": 0}, "schedules must be a whole number"),
    ({"burst": 0.5}, "burst must be a number of steps >= 1"),
    ({"var": "z"}, "no variable 'z'"),
])
def test_sample_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        il.sample(il.counter(), **kwargs)


def test_the_outcome_plots_draw():
    ax = il.plot_outcomes(il.outcomes(il.two_locks()))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "deadlock"]
    real = RaceResult(2, 100, "none", "unpinned", (None, None),
                      (Trial(150, 200, 0.01), Trial(101, 200, 0.01), Trial(200, 200, 0.01)))
    ax = il.plot_model_vs_real([il.outcomes(il.counter()), il.sample(il.counter(2, 20), 50)],
                               real)
    assert ax.get_xlabel() == "final value / correct total (%)"


# --- the explorer ------------------------------------------------------------------------------


def _click(ex, *labels):
    for label in labels:
        ex.buttons[label].click()


def test_the_explorer_says_why_a_system_too_big_has_no_distribution():
    ex = il.explore(workers=6)
    _click(ex, "All interleavings")
    assert "too many to count every schedule" in ex.distribution.value
    assert "sample()" in ex.distribution.value


def test_the_explorer_has_stable_labels_and_css_classes():
    ex = il.Explorer(il.counter(3))
    assert list(ex.buttons) == ["Step P0", "Step P1", "Step P2", "Run schedule", "Undo",
                                "Reset", "All interleavings"]
    assert "labkit-explorer" in ex.widget._dom_classes
    for label, button in ex.buttons.items():          # one box per explorer carries the class
        assert "labkit-explorer" not in button._dom_classes, label
        assert any(c.startswith("labkit-") for c in button._dom_classes), label
    assert ex.widget.children[1].children[0].children[1] is ex.buttons["Step P0"]
    assert "labkit-step-2" in ex.buttons["Step P2"]._dom_classes
    assert "labkit-run-schedule" in ex.buttons["Run schedule"]._dom_classes
    assert "labkit-schedule" in ex.schedule_text._dom_classes


def test_clicking_a_step_button_changes_what_is_shown():
    ex = il.Explorer(il.counter())
    before = (ex._panels[0].value, ex.so_far.value, ex.message.value)
    _click(ex, "Step P0")
    after = (ex._panels[0].value, ex.so_far.value, ex.message.value)
    assert all(b != a for b, a in zip(before, after, strict=True))
    assert ex.trace.schedule == (0,) and "P0: load x -&gt; r0 = 0" in ex.message.value
    assert "▶ add 1" in ex._panels[0].value and "<code>0</code>" in ex.so_far.value
    _click(ex, "Step P0", "Step P1")
    assert "register r0 = <b>1</b>" in ex._panels[0].value


def test_stepping_to_a_lost_update_reaches_the_goal():
    ex = il.Explorer(il.counter(), goal="lose an update")
    _click(ex, "Step P0", "Step P1", "Step P0", "Step P1", "Step P0", "Step P1")
    assert ex.trace.finished and ex.trace.value() == 1
    assert "x = <b>1</b>" in ex.memory.value
    assert "1 update lost" in ex.message.value and "Goal reached" in ex.message.value
    assert ex.buttons["Step P0"].disabled and ex.buttons["Step P1"].disabled


def test_a_correct_schedule_does_not_reach_the_goal():
    ex = il.Explorer(il.counter(), goal="lose an update")
    assert ex.run("000 111")
    assert "correct" in ex.message.value and "Goal reached" not in ex.message.value


def test_a_finished_process_cannot_step():
    ex = il.Explorer(il.counter())
    _click(ex, "Step P0", "Step P0", "Step P0")
    assert ex.buttons["Step P0"].disabled
    assert not ex.step(0)
    assert "process 0 has finished" in ex.message.value and len(ex.trace.schedule) == 3


def test_a_blocked_process_says_who_holds_its_lock():
    ex = il.Explorer(il.two_locks(), goal="deadlock")
    _click(ex, "Step P0", "Step P1")
    assert "Deadlock" in ex.message.value and "Goal reached" in ex.message.value
    assert ex.buttons["Step P0"].button_style == "warning"
    assert "blocked (waits for P1)" in ex._panels[0].value
    assert "lock A: held by P0" in ex.memory.value
    _click(ex, "Step P0")
    assert "process 0 is blocked at &#x27;acquire B&#x27;" in ex.message.value
    assert ex.trace.schedule == (0, 1)


def test_a_typed_schedule_runs_from_the_start():
    ex = il.Explorer(il.counter())
    _click(ex, "Step P1")
    ex.schedule_text.value = "0011 01"
    _click(ex, "Run schedule")
    assert ex.trace.schedule == (0, 0, 1, 1, 0, 1) and ex.trace.value() == 1
    assert "ran 6 steps" in ex.message.value


def test_a_typed_schedule_that_cannot_happen_stops_with_a_reason():
    ex = il.Explorer(il.locked_counter())
    ex.schedule_text.value = "0 1"
    _click(ex, "Run schedule")
    assert "step 2 of the schedule cannot happen" in ex.message.value
    assert ex.trace.schedule == (0,)
    ex.schedule_text.value = "0z"
    _click(ex, "Run schedule")
    assert "may not contain" in ex.message.value


def test_undo_and_reset():
    ex = il.Explorer(il.counter())
    _click(ex, "Step P0", "Step P1", "Undo")
    assert ex.trace.schedule == (0,) and "took back one step" in ex.message.value
    _click(ex, "Reset")
    assert ex.trace.schedule == () and ex.state == il.counter().start()
    _click(ex, "Undo")
    assert "nothing to undo" in ex.message.value


def test_all_interleavings_shows_the_distribution():
    ex = il.Explorer(il.counter())
    assert ex.distribution.value == ""
    _click(ex, "All interleavings")
    assert "All 20 schedules" in ex.distribution.value
    assert "18 of 20 (90%)" in ex.distribution.value and "2 of 20 (10%)" in ex.distribution.value
    stuck = il.Explorer(il.two_locks())
    stuck.show_outcomes()
    assert "deadlock" in stuck.distribution.value


def test_the_explorer_refuses_an_unknown_goal():
    with pytest.raises(ValueError, match="goal must be one of 'lose an update', 'deadlock'"):
        il.Explorer(goal="win")
    assert il.explore(3, locked=True).system.workers == 3


def test_philosophers_deadlock_only_when_each_holds_its_left_lock():
    system = il.philosophers(3)
    o = il.outcomes(system)
    assert o.deadlocks == 6 and o.counts == {3: o.total - 6}
    stuck = [t for t in il.schedules(system) if t.deadlocked]
    for t in stuck:
        assert sorted(t.state.holder(f"L{i}") for i in range(3)) == [0, 1, 2]
    assert il.run(system, "012").deadlocked
    with pytest.raises(ValueError, match="at least 2 workers"):
        il.philosophers(1)
