"""Student notebooks run top to bottom: every check says 'not done' (a debugging exercise's
broken program fails its checks instead), nothing else fails."""
from __future__ import annotations

import re

import nbformat
import pytest
from helpers import FORK_WARNING, ROOT
from nbclient import NotebookClient

from labkit.checking import exercises

EXERCISES = sorted(ROOT.glob("exercises/*.ipynb"))
DEBUG = {ex for ex, e in exercises().items() if e.kind == "debug"}


def _checked(source: str) -> str:
    """The exercise a check cell checks: the first argument of its labkit.check call."""
    found = re.search(r"""labkit\.check\(\s*["']([^"']+)["']""", source)
    return found.group(1) if found else ""


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_an_untouched_exercise_runs_and_reports_not_done(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3",  # in a folder of its own, as its
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # checks sweep it
    reports = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", f"{out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert not FORK_WARNING.sub("", out.text).strip(), out.text
        if "labkit.check(" in cell.source:
            text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            reports.append(text)
            if _checked(cell.source) in DEBUG:  # the broken program it ships fails, visibly
                assert "[FAIL]" in text and "[TODO]" not in text and "[ERR" not in text, text
            else:
                assert "[TODO]" in text and "[PASS]" not in text and "[FAIL]" not in text, text
    assert reports, "the exercise notebook has no check cells"
