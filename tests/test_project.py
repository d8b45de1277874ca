"""The course as a whole: one dependency list, clean notebooks, exercises that run."""
from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest
import yaml
from helpers import ROOT

from labkit.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NOTEBOOKS = sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb")) \
    + sorted(ROOT.glob("exercises/*.ipynb"))


def _normal(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_pyproject_and_environment_yml_list_the_same_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normal(r) for r in project["dependencies"]}
    wanted |= {_normal(r) for r in project["optional-dependencies"]["test"]
               if ";" not in r}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    listed = {_normal(d) for d in env if isinstance(d, str) and not d.startswith(("python", "pip"))}
    listed |= {_normal(d) for d in next(d["pip"] for d in env if isinstance(d, dict))
               if not d.startswith("-e")}
    assert listed == wanted


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} have outputs; clear them before committing"


def test_every_lesson_has_a_solution_and_an_exercise():
    lessons = {p.name for p in ROOT.glob("notebooks/*.ipynb")}
    assert lessons == {p.name for p in ROOT.glob("solutions/*.ipynb")}
    assert lessons == {p.name for p in ROOT.glob("exercises/*.ipynb")}


def test_exercises_are_up_to_date_with_the_solutions(capsys):
    assert main(["release", "--check", "--root", str(ROOT)]) == 0, capsys.readouterr()


def test_the_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


SILENCE_FORK_WARNING = ('warnings.filterwarnings("ignore", message=r".*use of fork\\(\\) may lead to '
                        'deadlocks", category=DeprecationWarning)  # explained in lesson 00')
LESSONS_AFTER_00 = [p for p in sorted(ROOT.glob("notebooks/*.ipynb")) if not p.name.startswith("00")]


@pytest.mark.parametrize("path", LESSONS_AFTER_00, ids=lambda p: p.name)
def test_every_lesson_after_00_silences_the_fork_warning_in_its_setup_cell(path):
    setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    lines = setup.source.splitlines()
    assert "import warnings" in lines and SILENCE_FORK_WARNING in lines, (
        f"{path.name}: its first code cell must import warnings and contain, visibly:\n"
        f"{SILENCE_FORK_WARNING}")


def _warn_after_setup_line(message: str) -> str:
    """stderr of a fresh Python that shows every warning, runs the setup line, then warns."""
    program = "\n".join(["import warnings", SILENCE_FORK_WARNING,
                          f"warnings.warn({message!r}, DeprecationWarning)"])
    return subprocess.run([sys.executable, "-W", "default", "-c", program], capture_output=True,
                          text=True, timeout=60, check=True).stderr


def test_the_setup_line_silences_python_3_12s_fork_warning_and_only_it():
    fork = ("This process (pid=1) is multi-threaded, use of fork() may lead to deadlocks in "
            "the child.")
    assert _warn_after_setup_line(fork) == ""
    assert "some other deprecation" in _warn_after_setup_line("some other deprecation")


def test_the_interrupt_tests_pass_when_the_suite_is_started_with_sigint_ignored():
    """A script's `make test &` (no job control) starts every test process with SIGINT and
    SIGQUIT ignored, and ignored they stay through fork and exec; the tests stand in for a
    kernel, where Ctrl-C is KeyboardInterrupt (conftest.py restores it)."""
    test = "tests/test_processes.py::test_an_interrupt_kills_the_children_and_propagates"
    ran = subprocess.run(["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "-m",
                          "pytest", "-p", "no:xdist", "-q", test],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout[-2000:]


def test_every_exception_labkit_defines_is_in_errors_py():
    """One vocabulary: a class derived from an exception anywhere in labkit but errors.py is
    an error that the docs, the notebooks and `except` clauses cannot find in one place."""
    import ast
    import builtins

    from labkit import errors

    exceptions = set(errors.__all__) | {name for name, value in vars(builtins).items()
                                        if isinstance(value, type)
                                        and issubclass(value, BaseException)}
    elsewhere = []
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "labkit":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                     for b in getattr(node, "bases", [])}
            if isinstance(node, ast.ClassDef) and bases & exceptions:
                elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not elsewhere, "define these in labkit/errors.py: " + ", ".join(elsewhere)
