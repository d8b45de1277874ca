"""labkit grade: exact scores for honest work, and a grader that survives hostile work.

The corpus is made here from the real exercise notebook: its answer cells are
replaced (solved, partly solved, plausibly wrong, hostile) and hostile cells
are appended. One grading run covers it; the tests then read the reports.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil

import nbformat
import pytest
from helpers import ROOT, load_answers, public_points, sandbox_level

from labkit.cli import main
from labkit.grade import (
    SUBMISSION_LIMIT,
    Limits,
    answers_of,
    find_submissions,
    grade,
)

USABLE, HOW = sandbox_level()
pytestmark = pytest.mark.skipif(not USABLE, reason=HOW)
CGROUP = "no cgroup" not in HOW

LAB = "00_processes"
SOLVED = nbformat.read(ROOT / "solutions" / f"{LAB}.ipynb", as_version=4)
FULL = public_points(LAB)

WRONG_DESCRIBE = '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"killed by {os.WTERMSIG(status)}"
'''

HOSTILE_CELLS = {
    "loops_forever": ["while True:\n    pass"],
    "fork_bomb": ["while True:\n    os.fork()"],
    "memory_hog": ["hog = bytearray(16 * 2**30)"],
    "kills_its_group": ["os.kill(0, signal.SIGKILL)"],
    "kills_everyone": ["os.kill(-1, signal.SIGKILL)"],
    "kills_the_grader": ["os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n"
                         "os.kill(os.getppid(), signal.SIGKILL)"],
    "setsid_escapee": ["if os.fork() == 0:\n    os.setsid()\n    import time\n"
                       "    time.sleep(3600)\n    os._exit(0)"],
    "huge_output": ["print('x' * 50_000_000)"],
    "leaks_objects": ["import posix_ipc\n"
                      "shm = posix_ipc.SharedMemory('/i_chose_this', posix_ipc.O_CREAT, size=1 << 20)\n"
                      "sem = posix_ipc.Semaphore('/held_forever', posix_ipc.O_CREAT, initial_value=1)\n"
                      "sem.acquire()"],
    "fills_dev_shm": ["import posix_ipc, mmap\n"
                      "big = posix_ipc.SharedMemory('/huge', posix_ipc.O_CREAT, size=1 << 30)\n"
                      "m = mmap.mmap(big.fd, big.size)\n"
                      "m[:] = b'x' * big.size"],
    "deletes_files": [f"import shutil\nshutil.rmtree({str(ROOT / 'labkit')!r}, ignore_errors=True)\n"
                      f"os.remove({str(ROOT / 'README.md')!r})"],
}

CHEAT_CELLS = [
    "import labkit, labkit.checking\n"
    "labkit.check = lambda *a, **k: print('PASSED 15/15')\n"
    "labkit.checking.run_checks = lambda *a, **k: []\n"
    "print('cheater,00_processes,15,15,ok')",
]


def _notebook(answers_from: str, replace: dict[str, str] | None = None,
              extra: list[str] | None = None) -> nbformat.NotebookNode:
    """The exercise (or solution) notebook with some answer cells replaced and cells added."""
    nb = nbformat.read(ROOT / answers_from / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        if "answer" in cell.metadata.get("tags", []):
            for name, code in (replace or {}).items():
                if f"def {name}(" in cell.source:
                    cell.source = code
    nb.cells += [nbformat.v4.new_code_cell(code) for code in extra or []]
    return nb


def _with_cell(nb: nbformat.NotebookNode, code: str, before: str | None = None):
    """``nb`` with an untagged code cell inserted before the answer cell defining ``before``
    (before the first code cell if None)."""
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (
        before is None or f"def {before}(" in c.source))
    nb.cells.insert(at, nbformat.v4.new_code_cell(code))
    return nb


# A notebook the student ran and the grader runs must score the same, however it is laid out.
SAME_SCORE = {
    "extra_cell_at_top": (lambda: _with_cell(_notebook("solutions"), "print('hello')"), FULL),
    "helper_in_untagged_cell": (lambda: _with_cell(
        _notebook("solutions", {"exit_code_of": "def exit_code_of(fn):\n"
                                                "    return child_code(fn)\n"}),
        _solution_of("exit_code_of").replace("def exit_code_of(", "def child_code("),
        before="exit_code_of"), FULL),
    "typo_in_last_answer": (lambda: _notebook("solutions", {"run_program": (
        "BUFFER = select.PIPE_BUFF\n" + _solution_of("run_program"))}), FULL - 4),
}


def _hostile_intake(subs, corpus) -> None:
    """Submissions that attack the grader's intake rather than the sandbox."""
    os.symlink(ROOT / "solutions" / f"{LAB}.ipynb", subs / "links_the_solution.ipynb")
    os.symlink("/etc/passwd", subs / "links_passwd.ipynb")
    copier = subs / "copies_a_classmate"
    copier.mkdir()
    nbformat.write(corpus["unsolved"], copier / f"{LAB}.ipynb")
    os.symlink(subs / "correct.ipynb", copier / "friend.ipynb")
    os.mkfifo(subs / "a_fifo.ipynb")
    with open(subs / "oversized.ipynb", "wb") as f:
        f.truncate(SUBMISSION_LIMIT + 1)
    nbformat.write(corpus["correct"], subs / "a b.ipynb")
    nbformat.write(corpus["unsolved"], subs / "a_b.ipynb")
    solved = nbformat.writes(corpus["correct"])
    nbformat.write(_notebook("exercises", extra=[
        f"open({LAB + '.ipynb'!r}, 'w').write({solved!r})\n"
        f"open('overwrites_itself.ipynb', 'w').write({solved!r})"]),
        subs / "overwrites_itself.ipynb")


def _solution_of(name: str) -> str:
    return next(c.source for c in SOLVED.cells if f"def {name}(" in c.source
                and "answer" in c.metadata.get("tags", []))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    corpus = {
        "correct": _notebook("solutions"),
        "unsolved": _notebook("exercises"),
        "partial": _notebook("exercises", {"exit_code_of": _solution_of("exit_code_of"),
                                           "reap_all": _solution_of("reap_all")}),
        "wrong_describe": _notebook("solutions", {"describe_status": WRONG_DESCRIBE}),
        "cheater": _notebook("exercises", extra=CHEAT_CELLS),
        "cheat_in_answer": _notebook("exercises", {"exit_code_of": (
            "import labkit.checking\nlabkit.checking.expect = lambda *a: None\n"
            "def exit_code_of(fn):\n    labkit.checking.expect = lambda *a: None\n"
            "    return -1\n")}),
        "kills_its_judge": _notebook("solutions", {"exit_code_of": (
            "def exit_code_of(fn):\n    os.kill(os.getppid(), signal.SIGKILL)\n")}),
        "bomb_in_answer": _notebook("solutions", {"reap_all": (
            "def reap_all(n):\n    while True:\n        os.fork()\n")}),
    }
    corpus.update({name: _notebook("solutions", extra=cells)
                   for name, cells in HOSTILE_CELLS.items()})
    corpus.update({name: make() for name, (make, _) in SAME_SCORE.items()})
    for name, nb in corpus.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    (subs / "broken.ipynb").write_text("{ this is not json")
    folder = subs / "in_a_folder"
    folder.mkdir()
    nbformat.write(corpus["correct"], folder / f"{LAB}.ipynb")
    (folder / "notes.txt").write_text("my notes")
    (subs / "empty_folder").mkdir()
    _hostile_intake(subs, corpus)
    shm_before = set(os.listdir("/dev/shm"))
    rows = grade(LAB, subs, out, jobs=2, cell_timeout=3, timeout=120)
    # Nothing a submission made reaches the host (other sessions' lab objects may come and go).
    appeared = {e for e in set(os.listdir("/dev/shm")) - shm_before
                if not re.match(r"(sem\.)?labkit_\d+_\d+_", e)}
    assert appeared == set()
    return {r.student: r for r in rows}, out, subs


def test_honest_work_gets_exact_scores(graded):
    rows, _, _ = graded
    expected = {"correct": (FULL, "ok"), "unsolved": (0, "ok"), "partial": (8, "ok"),
                "wrong_describe": (FULL - 2, "ok"), "in_a_folder": (FULL, "ok")}
    assert {k: (rows[k].score, rows[k].status) for k in expected} == expected
    assert all(rows[k].max_score == FULL for k in rows)


@pytest.mark.parametrize("student", sorted(SAME_SCORE))
def test_the_grader_scores_what_the_notebook_shows(graded, student, tmp_path):
    """Every code cell counts, in order, and one that raises costs only what it defines:
    the scores the check cells print in the notebook are the grader's, exercise by exercise."""
    from nbclient import NotebookClient

    rows, _, subs = graded
    row = rows[student]
    assert row.score == SAME_SCORE[student][1], row.checks
    nb = nbformat.read(subs / f"{student}.ipynb", as_version=4)
    NotebookClient(nb, timeout=60, allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/plain", "")
            m = re.match(r"(\d\d\.\w+) .*?: ([\d.]+)/([\d.]+) points", text)
            if m:
                shown[m.group(1)] = float(m.group(2))
    graded_ = {}
    for c in row.checks:
        graded_[c["exercise"]] = graded_.get(c["exercise"], 0) + c["points"]
    # a check cell whose answer is not defined shows a NameError: nothing earned there
    assert {ex: shown.get(ex, 0) for ex in graded_} == graded_


def test_every_submission_has_a_row_whatever_happened(graded):
    rows, out, subs = graded
    students = {s.student for s in find_submissions(subs, LAB)}
    assert set(rows) == students
    with open(out / "grades.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["student"] for r in table] == sorted(students)
    assert rows["broken"].status == "error" and rows["broken"].score == 0
    assert rows["empty_folder"].status == "missing"
    assert "no notebook" in rows["empty_folder"].notes[0]


@pytest.mark.parametrize("student, status", [
    ("loops_forever", "timeout"), ("memory_hog", "error"),
    ("kills_its_group", "kernel died"), ("kills_everyone", "error"),
    ("setsid_escapee", "ok"), ("huge_output", "ok"), ("leaks_objects", "ok"),
    ("kills_the_grader", "kernel died"), ("deletes_files", "error"),
])
def test_hostile_notebooks_are_contained_and_graded_on_their_answers(graded, student, status):
    row = graded[0][student]
    assert row.status == status, row.notes
    assert row.score == FULL, row.checks  # the answers themselves are the correct ones


def test_a_fork_bomb_is_contained_and_graded_on_its_answers(graded):
    """How far the bomb gets in the 3 s cell timeout depends on the machine's load: it
    ends at the process limit (the cgroup's, or the watchdog's) or at the timeout."""
    row = graded[0]["fork_bomb"]
    assert row.status in ("process limit" if CGROUP else "fork bomb", "timeout"), row.notes
    assert row.score == FULL, row.checks


def test_filling_dev_shm_stays_inside_the_sandbox(graded):
    row = graded[0]["fills_dev_shm"]
    assert row.score == FULL and row.status in ("error", "kernel died"), row.notes


def test_the_course_files_survive_a_submission_that_deletes_them(graded):
    assert (ROOT / "README.md").exists() and (ROOT / "labkit" / "grade.py").exists()


def test_cheating_earns_nothing(graded):
    rows = graded[0]
    assert rows["cheater"].score == 0
    assert rows["cheat_in_answer"].score == 0


def test_an_answer_that_kills_its_checker_loses_only_that_exercise(graded):
    row = graded[0]["kills_its_judge"]
    lost = {c["exercise"] for c in row.checks if not c["passed"]}
    assert lost == {"00.exit_code"} and row.score == FULL - 5


def test_a_fork_bomb_in_an_answer_fails_its_checks_and_nothing_else(graded):
    row = graded[0]["bomb_in_answer"]
    assert {c["exercise"] for c in row.checks if not c["passed"]} == {"00.reap_all"}
    assert row.score == FULL - 3


def test_feedback_lists_each_check_with_points_and_hints(graded):
    _, out, _ = graded
    md = (out / "feedback" / "wrong_describe.md").read_text()
    assert f"**Score: {FULL - 2} / {FULL}**" in md and "| pass | normal exits | 1/1 |" in md
    assert "expected 'killed by SIGKILL', got 'killed by 9'" in md and "*Hint:" in md
    page = (out / "feedback" / "wrong_describe.html").read_text()
    assert "<h2>00.describe_status Decode a wait status</h2>" in page
    data = json.loads((out / "grades.json").read_text())
    assert {d["student"] for d in data} == set(graded[0])


def test_resume_skips_what_is_graded(graded, tmp_path):
    rows, out, subs = graded
    before = (out / "results" / "correct.json").stat().st_mtime_ns
    again = grade(LAB, subs, out, jobs=2, resume=True, cell_timeout=3)
    assert (out / "results" / "correct.json").stat().st_mtime_ns == before
    assert {r.student: r.score for r in again} == {k: r.score for k, r in rows.items()}


def test_the_command_line_grades_and_says_where_the_reports_are(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "solutions" / f"{LAB}.ipynb", subs / "ada.ipynb")
    assert main(["grade", LAB, str(subs), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("isolation: namespaces") and "allowlisted" in out
    assert "ada" in out and f"{FULL} / {FULL}" in out and "grades.csv" in out


@pytest.mark.parametrize("student, why", [
    ("links_the_solution", "links_the_solution.ipynb is a symbolic link"),
    ("links_passwd", "links_passwd.ipynb is a symbolic link"),
    ("copies_a_classmate", "copies_a_classmate/friend.ipynb is a symbolic link"),
    ("a_fifo", "a_fifo.ipynb is a special file"),
    ("oversized", "more than the 20 MiB allowed"),
])
def test_links_special_files_and_oversized_files_are_refused_unread(graded, student, why):
    rows, out, _ = graded
    row = rows[student]
    assert (row.status, row.score) == ("refused", 0) and why in row.notes[0], row.notes
    feedback = (out / "feedback" / f"{student}.md").read_text()
    assert "BEGIN SOLUTION" not in feedback and '"cell_type"' not in feedback
    assert "root:x:0" not in feedback and "nobody:x:" not in feedback


def test_names_keep_their_characters_so_similar_names_get_a_row_each(graded):
    rows = graded[0]
    assert rows["a b"].score == FULL and rows["a_b"].score == 0


def test_a_notebook_that_overwrites_itself_is_graded_on_what_was_submitted(graded):
    assert graded[0]["overwrites_itself"].score == 0


def test_resume_regrades_a_torn_result(graded):
    rows, out, subs = graded
    torn = out / "results" / "unsolved.json"
    torn.write_text(torn.read_text()[:40])
    again = {r.student: r for r in grade(LAB, subs, out, jobs=2, resume=True, cell_timeout=3)}
    assert again["unsolved"].score == 0 and json.loads(torn.read_text())["student"] == "unsolved"
    assert set(again) == set(rows)


def test_an_unknown_lab_lists_the_labs(tmp_path):
    with pytest.raises(Exception, match="no lab '99_nothing'; labs are: 00_processes"):
        grade("99_nothing", tmp_path, tmp_path / "out")


def test_the_solutions_used_here_are_the_real_ones():
    assert callable(load_answers(f"solutions/{LAB}.ipynb")["exit_code_of"])


def test_a_notebook_whose_every_answer_hangs_costs_one_timeout_per_exercise(tmp_path):
    lab = "02_pipes"
    nb = nbformat.read(ROOT / "solutions" / f"{lab}.ipynb", as_version=4)
    names = {n for v in answers_of(ROOT / "exercises" / f"{lab}.ipynb").values()
             for n in ([v] if isinstance(v, str) else v)}
    nb.cells += [nbformat.v4.new_code_cell(
        f"def {n}(*args, **kwargs):\n    import time\n    time.sleep(3600)") for n in names]
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(nb, subs / "hangs.ipynb")
    # The answers sleep for an hour: a 1 s call timeout (the grader's setting, sent into the
    # sandbox) proves the same as the default 5 s, four exercises sooner.
    row = grade(lab, subs, tmp_path / "out", jobs=1, limits=Limits(call_seconds=1.0))[0]
    print(f"every answer hangs: graded in {row.seconds:.1f} s")
    assert row.score == 0
    assert any("did not finish in 1 s" in c["message"] for c in row.checks), row.checks
    by_exercise: dict[str, list[str]] = {}
    for c in row.checks:
        by_exercise.setdefault(c["exercise"], []).append(c["status"])
    for statuses in by_exercise.values():  # one timeout each, then "not run": bounded time
        first = statuses.index("failed")
        assert set(statuses[first + 1:]) <= {"not run"}, statuses
