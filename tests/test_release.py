"""labkit.release: exercises/ is made from solutions/, solution code replaced."""
from __future__ import annotations

import shutil

import nbformat
import pytest

from labkit.errors import LabError
from labkit.release import find_root, release, strip_solutions


def test_a_solution_block_becomes_an_indented_placeholder():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION\n"
    assert strip_solutions(source) == (
        "def f(x):\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("exercise not done yet")\n')


def test_code_outside_the_blocks_is_kept_and_several_blocks_work():
    source = ("a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n"
              "  ### BEGIN SOLUTION\n  d = 4\n  ### END SOLUTION")
    out = strip_solutions(source)
    assert out.startswith("a = 1\n# YOUR CODE HERE\n") and "\nc = 3\n  # YOUR CODE HERE\n" in out
    assert "b = 2" not in out and "d = 4" not in out


def test_markdown_answers_become_a_prompt():
    assert strip_solutions("Q?\n### BEGIN SOLUTION\nA.\n### END SOLUTION", code=False) == \
        "Q?\n*Your answer here.*"


def test_a_debugging_exercise_ships_its_broken_code_where_the_solution_was():
    source = ("def reap(pids):\n"
              "    ### BEGIN SOLUTION\n    for pid in pids:\n        os.waitpid(pid, 0)\n"
              "    ### END SOLUTION\n"
              "    ### BEGIN GIVEN\n    # os.waitpid(pids[0], 0)\n    #\n"
              "    #   # one is enough?\n    ### END GIVEN\n"
              "    return len(pids)")
    assert strip_solutions(source) == ("def reap(pids):\n    os.waitpid(pids[0], 0)\n    \n"
                                       "      # one is enough?\n    return len(pids)")


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx", "never closed"),
    ("x\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ("x\n### BEGIN GIVEN\n# y\n### END GIVEN", "must follow a solution"),
    ("### BEGIN SOLUTION\nx\n### END SOLUTION\n### BEGIN GIVEN\n# y", "never closed"),
    ("### BEGIN SOLUTION\nx\n### END SOLUTION\n### BEGIN GIVEN\ny = 2\n### END GIVEN",
     "line 5: a GIVEN block holds the broken code as comments"),
])
def test_unbalanced_markers_are_refused_with_the_place(source, problem):
    with pytest.raises(ValueError, match=problem):
        strip_solutions(source, where="nb.ipynb, cell 3")


def test_release_writes_check_detects_and_outputs_are_cleared(tmp_path):
    for folder in ("solutions", "exercises"):
        (tmp_path / folder).mkdir()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"
                                     "    ### END SOLUTION")
    cell.outputs = [nbformat.v4.new_output("stream", text="secret output")]
    cell.execution_count = 3
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "solutions" / "01_x.ipynb")

    assert [r.changed for r in release(tmp_path, check=True)] == [True]
    assert not (tmp_path / "exercises" / "01_x.ipynb").exists()
    assert [r.changed for r in release(tmp_path)] == [True]
    assert [r.changed for r in release(tmp_path, check=True)] == [False]
    out = nbformat.read(tmp_path / "exercises" / "01_x.ipynb", as_version=4).cells[0]
    assert out.outputs == [] and out.execution_count is None and "return 1" not in out.source


def test_find_root_walks_up_and_explains_when_lost(tmp_path):
    root = find_root()
    assert (root / "solutions").is_dir()
    assert find_root(root / "solutions") == root
    with pytest.raises(FileNotFoundError, match="run this from the IPC Lab checkout"):
        find_root(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_release_can_be_limited_to_one_lesson_and_refuses_unknown_ones():
    root = find_root()
    assert [r.solution.stem for r in release(root, check=True, lessons=["00"])] == ["00_processes"]
    with pytest.raises(LabError, match="no solution notebook for \\['99'\\]; lessons are: 00_processes"):
        release(root, check=True, lessons=["99"])
