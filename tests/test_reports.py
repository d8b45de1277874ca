"""Reports: grades.csv per exercise, feedback that no check name or message can break, a
class summary with its histogram, and the CSV files Canvas, Moodle and Gradescope import."""
from __future__ import annotations

import csv
import json

import nbformat
import pytest

from labkit.cli import main
from labkit.feedback import escape_markdown, feedback_html, feedback_markdown, locate_errors
from labkit.reports import (
    GradeRow,
    class_summary,
    export,
    load_rows,
    write_summary,
    write_tables,
)


def _check(exercise, name, passed, points=1, message="wrong", title="An exercise"):
    return {"exercise": exercise, "title": title, "check": name, "passed": passed,
            "status": "passed" if passed else "failed", "points": points if passed else 0,
            "max_points": points, "message": "" if passed else message,
            "hint": "Look again.", "concept": ""}


def _row(student, passed, **extra):
    checks = [_check("02.pipeline", "ls | wc -l gives the shell's answer", passed[0], 2),
              _check("02.pipeline", "cat sees end of file", passed[1], 2),
              _check("02.ask", "one question, one answer", passed[2], 3)]
    score = sum(c["points"] for c in checks)
    return GradeRow(student, "02_pipes", score, 7, "ok", 3.0, checks, **extra)


ROWS = [_row("ada", (True, True, True), student_id="s1", name="Ada Lovelace",
             email="ada@uni.example"),
        _row("zoë_brandt", (False, True, False), student_id="s2", name="Zoë Brandt",
             email="zoe@uni.example"),
        _row("möller_jan", (False, False, False), student_id="s3", name="Jan Möller",
             email="jan@uni.example")]


@pytest.fixture
def graded(tmp_path):
    write_tables(tmp_path, ROWS, ["02.pipeline", "02.ask"])
    return tmp_path


def test_grades_csv_has_a_column_per_exercise_and_keeps_names(tmp_path):
    write_tables(tmp_path, ROWS, ["02.pipeline", "02.ask"])
    with open(tmp_path / "grades.csv", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [(t["student"], t["name"], t["02.pipeline"], t["02.ask"], t["score"]) for t in table] \
        == [("ada", "Ada Lovelace", "4", "3", "7"), ("zoë_brandt", "Zoë Brandt", "2", "0", "2"),
            ("möller_jan", "Jan Möller", "0", "0", "0")]
    assert json.loads((tmp_path / "grades.json").read_text())[1]["name"] == "Zoë Brandt"


def test_markdown_feedback_escapes_a_pipe_in_a_check_name_and_scores_exercises_first():
    md = feedback_markdown(ROWS[1])
    head, _, body = md.partition("## ")
    assert "| 02.pipeline An exercise | 2/4 |" in head and "| 02.ask An exercise | 0/3 |" in head
    row = next(line for line in body.splitlines() if "wc" in line)
    assert row.startswith("| failed | ls \\| wc -l gives the shell's answer | 0/2 |")
    assert row.count("|") - row.count("\\|") == 5  # four cells, whatever the name holds
    assert "*Hint: Look again.*" in row


def test_hostile_text_cannot_break_either_page():
    row = _row("eve", (False, True, True))
    row.checks[0]["message"] = "<script>alert(1)</script> | *bold* \n## heading"
    md, page = feedback_markdown(row), feedback_html(row)
    assert "<script>" not in md and "\n## heading" not in md
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_escape_markdown_keeps_text_on_one_line():
    assert escape_markdown("a|b\n*c*") == "a\\|b \\*c\\*"


NOTEBOOK = nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_markdown_cell("# Lab 02\n\nIntro."),
    nbformat.v4.new_code_cell("import os"),
    nbformat.v4.new_markdown_cell("## Exercise 1: a pipeline"),
    nbformat.v4.new_code_cell("def pipeline(a, b):\n    return 1 / 0"),
    nbformat.v4.new_code_cell('labkit.check("02.pipeline", pipeline)'),
    nbformat.v4.new_markdown_cell("## Exercise 2: ask"),
    nbformat.v4.new_code_cell("\n\nask = undefined_name"),
    nbformat.v4.new_code_cell('labkit.check("02.ask", ask)'),
])


def test_errors_are_placed_under_the_exercise_they_broke_with_a_findable_label():
    errors = [{"cell": 4, "ename": "NameError", "evalue": "name 'undefined_name' is not defined"},
              {"cell": 1, "ename": "ImportError", "evalue": "no os"}]
    placed = locate_errors(nbformat.writes(NOTEBOOK).encode(), errors)
    assert placed[0] == {"exercise": "02.ask", "ename": "NameError",
                         "cell": 'the code cell starting `ask = undefined_name` under '
                                 '"Exercise 2: ask"',
                         "evalue": "name 'undefined_name' is not defined"}
    assert placed[1]["exercise"] == "02.pipeline" and 'under "Lab 02"' in placed[1]["cell"]
    row = _row("ada", (True, True, False), errors=placed,
               notes=["error in code cell 4: NameError: name 'undefined_name' is not defined"])
    md = feedback_markdown(row)
    section = md[md.index("## 02.ask"):]
    assert "**NameError** in the code cell starting \\`ask = undefined\\_name\\`" in section
    assert "error in code cell 4" not in md  # numbering JupyterLab does not show is gone
    assert "<b>NameError</b> in the code cell starting `ask = undefined_name`" in \
        feedback_html(row)


def test_an_unreadable_notebook_still_gets_its_errors_listed():
    placed = locate_errors(b"{ not json", [{"cell": 2, "ename": "E", "evalue": "v"}])
    assert placed == [{"exercise": "", "cell": "code cell 2", "ename": "E", "evalue": "v"}]
    assert "**E** in code cell 2: v" in feedback_markdown(_row("x", (1, 1, 1), errors=placed))


def test_the_class_summary_gives_means_most_failed_checks_and_a_histogram(tmp_path):
    missing = GradeRow("s9", "02_pipes", 0, 7, "missing", 0.0)
    summary = write_summary(tmp_path, [*ROWS, missing])
    assert summary.students == 3 and summary.scores == [7, 2, 0]
    assert summary.exercise_means == {"02.pipeline": (2.0, 4), "02.ask": (1.0, 3)}
    assert summary.most_failed[:2] == [("02.ask", "one question, one answer", 2),
                                       ("02.pipeline", "ls | wc -l gives the shell's answer", 2)]
    text = (tmp_path / "summary.md").read_text()
    assert "| 02.ask | one question, one answer | 2 of 3 |" in text
    assert "ls \\| wc -l" in text
    assert (tmp_path / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert class_summary([]).students == 0


@pytest.mark.parametrize("kind, header, first", [
    ("canvas", ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "02_pipes"],
     ["Points Possible", "", "", "", "", "7"]),
    ("moodle", ["Email address", "ID number", "Full name", "02_pipes"],
     ["ada@uni.example", "s1", "Ada Lovelace", "7"]),
    ("gradescope", ["Name", "SID", "Email", "Score"],
     ["Ada Lovelace", "s1", "ada@uni.example", "7"]),
])
def test_exports_have_the_columns_each_system_imports(graded, kind, header, first, capsys):
    assert main(["export", str(graded), kind]) == 0
    with open(graded / f"{kind}.csv", encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == header and table[1] == first
    assert any("Zoë Brandt" in line for line in table)
    assert f"{kind}.csv: 3 student(s) of 02_pipes" in capsys.readouterr().out


def test_export_refuses_an_unknown_system_and_a_folder_without_results(tmp_path, capsys):
    with pytest.raises(ValueError, match="exports are: canvas, moodle, gradescope"):
        export(ROWS, "blackboard", tmp_path / "x.csv")
    assert main(["export", str(tmp_path), "canvas"]) == 2
    assert "holds no graded results" in capsys.readouterr().err
    with pytest.raises(Exception, match="no graded results"):
        load_rows(tmp_path)
