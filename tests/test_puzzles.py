"""labkit.puzzles: seeds, answers, the model against real runs, the card and the command.

The agreement test runs 200 seeds of every kind on real processes, batched:
one runner program per kind, eight puzzles at a time under their keepers (the
tree kind's runs traced, so the tree each run made is compared with the model's).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from labkit import cli
from labkit.errors import LabTimeout, ModelMismatch
from labkit.puzzle_card import PuzzleCard
from labkit.puzzle_model import Graph, same_answer, untraced
from labkit.puzzles import kinds, puzzle, run_real, solve

KINDS = list(kinds())


# --- seeds and answers ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_at_least_1000_distinct_puzzles(kind):
    assert len({puzzle(kind, seed).code for seed in range(1100)}) >= 1000


@pytest.mark.parametrize("kind", KINDS)
def test_a_seed_determines_the_puzzle(kind):
    for seed in (0, 1, 999, 10**9):
        assert puzzle(kind, seed) == puzzle(kind, seed)
    assert puzzle(kind, 1) != puzzle(kind, 2)


def test_a_reply_matches_in_any_order_and_case_but_not_with_extras():
    assert same_answer("c a 3", "3 A C") and same_answer("None", "none")
    assert not same_answer("3 A C D", "3 A C") and not same_answer("parent", "none")


@pytest.mark.parametrize("bad", [-1, 10**9 + 1, 1.5, True, "3"])
def test_a_bad_seed_says_what_is_allowed(bad):
    with pytest.raises(ValueError, match="seed must be a whole number from 0"):
        puzzle("fork", bad)


def test_an_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="fork, signals, pipes, inverse, tree"):
        puzzle("threads", 0)


def test_fork_answer_counts_every_process_line_and_marks_only_possible_outputs():
    for seed in range(100):
        p = puzzle("fork", seed)
        (legal,) = p.outputs
        count = p.answer.split()[0]
        assert {len(o) for o in legal} == {int(count)}
        shown = [line.split(": ", 1)[1].split() for line in p.question.splitlines()
                 if line[:4].strip() in ("A:", "B:", "C:", "D:")]
        right = {"ABCD"[i] for i, o in enumerate(shown) if tuple(o) in legal}
        assert set(p.answer.split()[1:]) == right


def test_signal_puzzles_offer_several_outputs_and_one_is_right():
    for seed in range(100):
        p = puzzle("signals", seed)
        assert p.question.count(":\n") >= 2
        assert len(p.answer) == 1 and len(p.outputs[0]) == 1


def test_the_model_orders_respect_edges_and_never_runs_a_blocked_event():
    g = Graph()
    a = g.event("a")
    b = g.event("b", after=[a])
    stuck = g.event(None, after=[b])
    g.block(stuck)
    g.event("c", after=[stuck])
    g.event("d")
    assert g.orders() == {("a", "b", "d"), ("a", "d", "b"), ("d", "a", "b")}


def test_a_cycle_of_waits_never_happens():
    g = Graph()
    x = g.event("x")
    y = g.event("y", after=[x])
    g.also_after(x, [y])
    assert g.orders() == {()}


# --- the model against real processes --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_answers_read_from_real_runs_agree_with_the_model_over_200_seeds(kind):
    # solve() raises ModelMismatch on any real output the model does not allow (another
    # order, a hang it does not predict, stderr); then each answer read from the runs (line
    # counts, who hangs, what was printed) must be the model's.
    solved = solve([puzzle(kind, seed) for seed in range(200)])
    wrong = [f"seed {s.puzzle.seed}: runs say {s.answer!r}, the model {s.puzzle.answer!r}"
             for s in solved if s.answer != s.puzzle.answer]
    assert not wrong, "\n".join(wrong[:5])
    if kind == "pipes":      # some hang and some do not, so both verdicts were checked
        assert {s.answer == "none" for s in solved} == {True, False}


def test_a_real_run_the_model_does_not_allow_is_an_error_not_an_answer():
    p = puzzle("fork", 4)
    lying = replace(p, outputs=(frozenset({("z",)}),))
    with pytest.raises(ModelMismatch, match="fork seed 4 program 0: printed"):
        solve([lying])


def test_a_traced_run_names_each_line_s_process_and_each_fork_s_child():
    program = 'import os\nprint("a")\nif os.fork() == 0:\n    print("b")\n    os._exit(0)'
    (real,) = run_real([program], trace=True)
    first = real.lines[0].split()[0]
    assert real.lines[0] == f"{first} a" and untraced(real.lines) in {("a", "b")}
    fork = next(line.split() for line in real.lines if line.startswith("@fork "))
    assert f"@{fork[1]}" == first and f"@{fork[2]} b" in real.lines


def test_tree_answers_compare_the_tree_each_run_really_made():
    p = puzzle("tree", 5)
    drawn, other = solve([p, replace(p, given=("p0: prints nothing",))])
    assert drawn.answer == p.answer != "" and other.answer == ""
    assert all(not line.startswith("@") for run in drawn.runs for line in run.lines)


def test_a_hanging_program_is_killed_and_reported():
    hang = 'import os\nr, w = os.pipe()\nprint("before")\nos.read(r, 1)\nprint("never")'
    (real,) = run_real([hang])
    assert real.hung and real.lines == ("before",) and real.first == "killed by SIGKILL"


def test_a_program_that_keeps_running_is_killed_at_its_timeout():
    with pytest.raises(LabTimeout, match="still running after 1 s; it was killed"):
        run_real(["while True:\n    pass"], timeout=1.0)


def test_an_orphan_is_still_waited_for():
    orphan = ('import os\nr, w = os.pipe()\nif os.fork() == 0:\n    os.close(w)\n'
              '    os.read(r, 1)\n    print("orphan")\n    os._exit(0)\nos._exit(0)')
    (real,) = run_real([orphan])
    assert real.lines == ("orphan",) and not real.hung and real.first == "exit code 0"


# --- the card and the command ----------------------------------------------------------------


def test_the_card_hides_the_answer_until_asked_and_checks_a_reply():
    card = PuzzleCard("pipes", seed=5)
    assert "Never finish" not in card.code.value
    assert "os.pipe()" in card.code.value and card.solution.value == ""
    card.buttons["Check"].click()
    assert "Type an answer" in card.message.value
    card.answer_box.value = "B 12"
    card.buttons["Check"].click()
    assert "Not quite" in card.message.value and card.solution.value == ""
    card.answer_box.value = card.puzzle.answer
    card.buttons["Check"].click()
    assert "Right" in card.message.value and card.solution.value == ""
    card.buttons["Show the answer"].click()
    assert f"Answer: {card.puzzle.answer}" in card.solution.value
    card.buttons["New puzzle"].click()
    assert card.puzzle.seed == 6 and card.solution.value == ""


def test_the_card_runs_the_program_for_real():
    card = PuzzleCard("signals", seed=2)
    card.buttons["Run it"].click()
    assert "One real run printed" in card.message.value


def test_cli_lists_one_kind_per_line_name_first(capsys):
    assert cli.main(["puzzle", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == KINDS


def test_cli_prints_a_puzzle_and_its_answer_only_when_asked(capsys):
    p = puzzle("inverse", 12)
    assert cli.main(["puzzle", "inverse", "--seed", "12"]) == 0
    out = capsys.readouterr().out
    assert p.code in out and "Answer:" not in out
    assert cli.main(["puzzle", "inverse", "--seed", "12", "--answer"]) == 0
    out = capsys.readouterr().out
    assert f"Answer: {p.answer}" in out and "One real run printed" in out


def test_cli_says_what_is_wrong_with_a_bad_kind_or_seed(capsys):
    assert cli.main(["puzzle", "threads"]) == 2
    assert cli.main(["puzzle", "fork", "--seed", "-4"]) == 2
    assert cli.main(["puzzle"]) == 2
    err = capsys.readouterr().err
    assert "kind must be one of" in err and "seed must be" in err and "--list" in err
