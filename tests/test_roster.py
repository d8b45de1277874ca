"""Identities: no grade is ever lost to a name, and the command line says what it wants.

Intake (find_submissions) runs no student code, so these tests need no sandbox.
"""
from __future__ import annotations

import os
import unicodedata

import nbformat
import pytest
from helpers import ROOT

from labkit.cli import main
from labkit.errors import LabError
from labkit.grade import _on_roster, find_submissions
from labkit.roster import Roster, check_unique, student_name, timestamp

LAB = "00_processes"


def _submit(folder, *names, as_folder=()):
    nb = nbformat.writes(nbformat.v4.new_notebook())
    for name in names:
        (folder / f"{name}.ipynb").write_text(nb)
    for name in as_folder:
        (folder / name).mkdir()
        (folder / name / f"{LAB}.ipynb").write_text(nb)


def test_unicode_names_are_kept_in_nfc():
    decomposed = unicodedata.normalize("NFD", "zoë_brandt")
    assert student_name(decomposed + ".ipynb") == "zoë_brandt"
    assert student_name("Łukasz Żółw") == "Łukasz Żółw"


@pytest.mark.parametrize("entry", ["tab\there.ipynb", " .ipynb", "bell\x07"])
def test_names_with_control_characters_or_nothing_are_refused(entry):
    with pytest.raises(LabError, match="no usable student name"):
        student_name(entry)


def test_names_differing_only_in_an_accent_are_two_students(tmp_path):
    _submit(tmp_path, "müller_jan", "möller_jan", "zoë_brandt")
    subs = find_submissions(tmp_path, LAB)
    assert [s.student for s in subs] == ["möller_jan", "müller_jan", "zoë_brandt"]


@pytest.mark.parametrize("first, second", [
    ("Ada", "ada"),                                         # letter case
    ("zoë", unicodedata.normalize("NFD", "zoë")),           # the same letters, typed twice
])
def test_colliding_names_stop_the_batch_naming_both(tmp_path, first, second):
    _submit(tmp_path, first)
    _submit(tmp_path, as_folder=[second])
    with pytest.raises(LabError, match=r"would be graded as one student.*rename one"):
        find_submissions(tmp_path, LAB)


def test_check_unique_names_every_clash():
    with pytest.raises(LabError) as e:
        check_unique({"a.ipynb": "a", "A": "A", "b.ipynb": "b", "B": "B"})
    assert "'a.ipynb' and 'A'" in str(e.value) and "'b.ipynb' and 'B'" in str(e.value)


def test_submission_time_is_recorded_for_files_and_folders(tmp_path):
    _submit(tmp_path, "ada", as_folder=["bob"])
    os.utime(tmp_path / "ada.ipynb", (1_800_000_000, 1_800_000_000))
    os.utime(tmp_path / "bob", (1_700_000_000, 1_700_000_000))
    os.utime(tmp_path / "bob" / f"{LAB}.ipynb", (1_800_000_100, 1_800_000_100))
    times = {s.student: s.submitted for s in find_submissions(tmp_path, LAB)}
    assert times == {"ada": timestamp(1_800_000_000), "bob": "2027-01-15T08:01:40Z"}


ROSTER = """\ufeffID,Name,Email,Section
s1,Jan Müller,jan.mueller@uni.example,A
s2,Jan Möller,jan.moeller@uni.example,A
s3,Zoë Brandt,zoe@uni.example,B
"""


def test_the_roster_maps_submissions_by_id_email_or_name():
    roster = Roster.parse(ROSTER)
    assert roster.find("S1").name == "Jan Müller"
    assert roster.find("jan.moeller").id == "s2"
    assert roster.find("zoe@uni.example").id == "s3"
    assert roster.find(unicodedata.normalize("NFD", "Zoë Brandt")).id == "s3"
    assert roster.find("nobody") is None


@pytest.mark.parametrize("text, problem", [
    ("id,name\ns1,Ada\n", "lacks email"),
    ("id,name,email\n,Ada,a@x\n", "line 2: the id is empty"),
    ("id,name,email\ns1,Ada,a@x\ns1,Bob,b@x\n", "the id 's1' appears twice"),
    ("id,name,email\ns1,Ada,a@x\ns2,Ada,b@x\n", "'ada' would match both s1"),
])
def test_a_broken_roster_is_refused_with_the_place(text, problem):
    with pytest.raises(LabError, match=problem):
        Roster.parse(text)


def test_on_the_roster_rows_carry_ids_and_absent_students_get_a_row(tmp_path):
    _submit(tmp_path, "s1", "jan.moeller", "stranger")
    placed = {s.student: s for s in _on_roster(find_submissions(tmp_path, LAB),
                                                Roster.parse(ROSTER))}
    assert set(placed) == {"s1", "s2", "s3", "stranger"}
    assert (placed["s2"].name, placed["s2"].email) == ("Jan Möller", "jan.moeller@uni.example")
    assert placed["s3"].status == "missing" and placed["s3"].problem == "no submission"
    assert "not on the roster" in placed["stranger"].notes[0]


def test_two_submissions_of_one_rostered_student_are_refused(tmp_path):
    _submit(tmp_path, "s3", "zoe")
    with pytest.raises(LabError, match="graded as one student"):
        _on_roster(find_submissions(tmp_path, LAB), Roster.parse(ROSTER))


@pytest.mark.parametrize("option, value", [("--jobs", "0"), ("--jobs", "two"),
                                           ("--timeout", "-1"), ("--cell-timeout", "0")])
def test_the_command_line_refuses_numbers_that_make_no_sense(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as e:
        main(["grade", LAB, str(tmp_path), "--out", str(tmp_path / "out"), option, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{option} must be a" in err and f"above 0, got '{value}'" in err


def test_grade_takes_a_lab_number_like_release(tmp_path, capsys):
    missing = tmp_path / "nothing_here"
    assert main(["grade", "02", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder of submissions" in err and "Traceback" not in err


def test_an_unknown_lab_is_one_line_listing_the_labs(tmp_path, capsys):
    assert main(["grade", "99", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labkit grade: error: no lab '99'; labs are: 00_processes")
    assert main(["release", "99", "--check", "--root", str(ROOT)]) == 2
