"""The instructor's workflow end to end, as README.md and CONTRIBUTING.md tell it.

Points are changed in a copy of the course config, six students are graded against a
roster (two whose names differ only in an accent), one score is overridden with a
comment and a written answer is marked, one student is regraded, the gradebook is
printed and a Canvas CSV exported. One grading run (six sandboxes) covers the module.
"""
from __future__ import annotations

import csv
import json
import os

import nbformat
import pytest
from helpers import ROOT, public_points, sandbox_level

from labkit import course
from labkit.cli import main
from labkit.grade import answers_of

USABLE, HOW = sandbox_level()
pytestmark = pytest.mark.skipif(not USABLE, reason=HOW)

LAB = "00_processes"
DEADLINE = 1_800_000_000                     # 2027-01-15T08:00:00Z
ON_TIME, LATE = DEADLINE - 3600, DEADLINE + 36 * 3600  # 1.5 days late: 2 started days
FULL = public_points(LAB) + 2                # the first check made worth 3


def _most() -> str:
    """The most a student can get: every check and the written answer, as the edited config
    prices them (also the exercises these notebooks leave unanswered, like 00.fork_puzzle)."""
    return f"{sum(line.points for line in course.catalogue('00')):g}"


def _solved(*names: str) -> nbformat.NotebookNode:
    """The exercise notebook with the answer cells of ``names`` taken from the solution."""
    solved = nbformat.read(ROOT / "solutions" / f"{LAB}.ipynb", as_version=4)
    nb = nbformat.read(ROOT / "exercises" / f"{LAB}.ipynb", as_version=4)
    for cell, solution in zip(nb.cells, solved.cells, strict=True):
        if "answer" in cell.metadata.get("tags", []) and any(
                f"def {n}(" in cell.source for n in names):
            cell.source = solution.source
    return nb


ALL = tuple(n for names in answers_of(ROOT / "exercises" / f"{LAB}.ipynb").values()
            for n in ([names] if isinstance(names, str) else names))
ROSTER = """id,name,email
s1,Jan Müller,müller_jan@uni.example
s2,Jan Möller,möller_jan@uni.example
s3,Zoë Brandt,zoë_brandt@uni.example
s4,Ada Lovelace,ada@uni.example
s5,Bob Kernighan,bob@uni.example
s6,Łukasz Żak,łukasz@uni.example
s7,Grace Hopper,grace@uni.example
"""


@pytest.fixture(scope="module")
def course_config(tmp_path_factory):
    """A copy of the course config: 00.exit_code's first check worth 3, the written answer
    worth 2, a deadline and a late policy of 10 % per started day."""
    config = tmp_path_factory.mktemp("config") / "course.toml"
    text = course._PACKAGE_CONFIG.read_text()
    first = '"a function returning 7 gives 7, even when it takes a while" = 1\n'
    assert first in text
    text = text.replace(first, first.replace("= 1", "= 3"))
    text = text.replace('[lessons."00_processes"]\n', '[lessons."00_processes"]\n'
                        "deadline = 2027-01-15T08:00:00Z\nwritten = { c015 = 2 }\n")
    config.write_text(text)
    saved = os.environ.get("LABKIT_COURSE")
    os.environ["LABKIT_COURSE"] = str(config)
    yield config
    if saved is None:
        del os.environ["LABKIT_COURSE"]
    else:
        os.environ["LABKIT_COURSE"] = saved


@pytest.fixture(scope="module")
def batch(course_config, tmp_path_factory):
    base = tmp_path_factory.mktemp("course")
    subs, out, book = base / "submitted", base / "graded", base / "gradebook.sqlite"
    subs.mkdir()
    answered = _solved()
    written = next(c for c in answered.cells if c.id == "c015")
    written.source = "The child stays a zombie until its parent waits for it."
    work = {"müller_jan": _solved(*ALL), "möller_jan": answered,
            "zoë_brandt": _solved("exit_code_of"), "ada": _solved(*ALL)}
    broken = _solved(*ALL)
    broken.cells.insert(5, nbformat.v4.new_code_cell("describe_status = undefined_helper"))
    work["bob"] = broken
    for name, nb in work.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    (subs / "łukasz").mkdir()
    nbformat.write(_solved("reap_all"), subs / "łukasz" / f"{LAB}.ipynb")
    for path in [*subs.iterdir(), subs / "łukasz" / f"{LAB}.ipynb"]:
        os.utime(path, (ON_TIME, ON_TIME))
    os.utime(subs / "ada.ipynb", (LATE, LATE))
    (base / "roster.csv").write_text(ROSTER, encoding="utf-8")
    assert main(["grade", "00", str(subs), "--out", str(out), "--roster",
                 str(base / "roster.csv"), "--jobs", "2", "--cell-timeout", "10"]) == 0
    assert book.exists()  # beside graded/, the default
    return base, subs, out, book


def _table(path):
    with open(path, encoding="utf-8", newline="") as f:
        return {r["student"]: r for r in csv.DictReader(f)}


def test_points_come_from_the_edited_config_and_every_student_has_a_row(batch):
    _, _, out, _ = batch
    rows = _table(out / "grades.csv")
    assert set(rows) == {f"s{i}" for i in range(1, 8)}
    assert (rows["s1"]["name"], rows["s1"]["score"], rows["s1"]["max_score"]) == \
        ("Jan Müller", str(FULL), _most())
    assert (rows["s2"]["name"], rows["s2"]["score"]) == ("Jan Möller", "0")
    assert rows["s3"]["00.exit_code"] == "7" and rows["s3"]["score"] == "7"
    assert rows["s7"]["status"] == "missing" and rows["s7"]["score"] == "0"
    assert rows["s1"]["submitted"] == "2027-01-15T07:00:00Z"


def test_a_late_submission_loses_what_the_policy_says(batch):
    rows = _table(batch[2] / "grades.csv")
    assert (rows["s4"]["late_days"], rows["s4"]["penalty"], rows["s4"]["score"]) == \
        ("1.49", f"{FULL * 0.2:g}", f"{FULL * 0.8:g}")  # 36 h less the 15 min of grace
    assert f"1.49 day(s) late: {FULL * 0.2:g} point(s) taken" in \
        (batch[2] / "feedback" / "s4.md").read_text()


def test_an_error_is_reported_under_the_exercise_it_broke(batch):
    md = (batch[2] / "feedback" / "s5.md").read_text()
    section = md[md.index("## 00.describe\\_status"):md.index("## 00.reap\\_all")]
    assert "**NameError** in the code cell starting \\`describe\\_status = undefined\\_helper\\`" \
           in section


def test_written_answers_reach_the_grading_sheet_and_the_feedback(batch):
    out = batch[2]
    sheet = (out / "grading_sheet.md").read_text()
    assert "The child stays a zombie until its parent waits for it." in sheet
    assert "### Jan Möller (s2)" in sheet
    with open(out / "manual.csv", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert {(r["student"], r["item"]) for r in lines} >= {("s2", "written:c015")}
    assert "## Written answer: Question: why must every fork have its wait?" in \
        (out / "feedback" / "s2.md").read_text()


@pytest.fixture(scope="module")
def marked(batch):
    """The instructor overrides Zoë's exercise 1 with a comment and marks Jan Möller's
    written answer, then publishes."""
    _, _, out, book = batch
    path = out / "manual.csv"
    with open(path, encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    for line in lines:
        if (line["student"], line["item"]) == ("s2", "written:c015"):
            line.update(points="2", comment="Right: the zombie holds its pid.")
    lines.append({"student": "s3", "item": "00.exit_code", "points": "4",
                  "comment": "Checked by hand: the status decoding is right, 4 of 7."})
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["student", "item", "points", "comment"])
        writer.writeheader()
        writer.writerows(lines)
    assert main(["publish", str(out), "--gradebook", str(book)]) == 0
    return batch


def test_an_override_and_a_comment_reach_csv_json_and_feedback(marked):
    _, _, out, _ = marked
    rows = _table(out / "grades.csv")
    assert rows["s3"]["score"] == "4" and "Checked by hand" in rows["s3"]["manual"]
    assert rows["s2"]["score"] == "2"
    data = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    override = next(m for m in data["s3"]["manual"] if m["item"] == "00.exit_code")
    assert data["s3"]["score"] == 4 and override["points"] == 4
    md = (out / "feedback" / "s3.md").read_text()
    assert f"**Score: 4 / {FULL + 2}**" in md and "Checked by hand: the status decoding is right" in md
    assert "Right: the zombie holds its pid." in (out / "feedback" / "s2.html").read_text()


def test_regrading_one_student_keeps_the_others_and_the_override(marked):
    base, subs, out, book = marked
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    nbformat.write(_solved("exit_code_of", "describe_status"), subs / "zoë_brandt.ipynb")
    os.utime(subs / "zoë_brandt.ipynb", (ON_TIME, ON_TIME))
    assert main(["grade", LAB, str(subs), "--out", str(out), "--roster",
                 str(base / "roster.csv"), "--gradebook", str(book), "--student", "Zoë Brandt"
                 ]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert {n for n in after if after[n] != before.get(n)} == {"s3.json"}
    rows = _table(out / "grades.csv")
    assert rows["s3"]["00.describe_status"] == "3"
    assert rows["s3"]["score"] == "7"  # the override of 00.exit_code (4) still holds, plus 3
    assert rows["s2"]["score"] == "2"


def test_the_gradebook_prints_the_class_and_flags_stale_results(marked, capsys,
                                                               course_config):
    _, _, _, book = marked
    assert main(["gradebook", str(book)]) == 0
    table = capsys.readouterr().out
    assert "Jan Möller" in table and "Jan Müller" in table and "*" not in table
    text = course_config.read_text()
    course_config.write_text(text.replace('"normal exits" = 1', '"normal exits" = 2'))
    try:
        assert main(["gradebook", str(book)]) == 0
        table = capsys.readouterr().out
        assert f"{FULL}/{FULL + 2}*" in table and "graded by an older version of the checks" in table
    finally:
        course_config.write_text(text)


def test_a_canvas_csv_is_exported(marked):
    _, _, out, _ = marked
    assert main(["export", str(out), "canvas"]) == 0
    with open(out / "canvas.csv", encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][-1] == LAB and table[1][-1] == str(FULL + 2)
    assert ["Jan Möller", "", "s2", "möller_jan@uni.example", "", "2"] in table
    assert len(table) == 2 + 7
