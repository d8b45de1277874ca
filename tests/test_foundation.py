"""The foundation every lesson composes: naming, placement, waiting, framing, numbers."""
import os
import pickle
import signal
import time

import posix_ipc
import pytest

from labkit import cpus, framing, objects, runner, session, waiting
from labkit._validate import seconds
from labkit.errors import LabError, LabTimeout, NotSupportedHere
from labkit.processes import start, start_workers


def test_a_lab_name_says_whose_it_is_and_other_names_are_nobodys():
    assert session.parse_lab_name("/" + session.PREFIX + "x_1") == (session.UID,
                                                                     session.SESSION_PID)
    assert session.parse_lab_name("sem.mp-abc") is None
    assert session.parse_lab_name("labkit_x_1_") is None


def test_the_scanner_finds_this_sessions_objects_and_only_what_the_session_asks_for():
    sem = posix_ipc.Semaphore("/" + session.PREFIX + "scan_1", posix_ipc.O_CREX, 0o600)
    try:
        mine = [e for e in session.lab_entries(session.SESSION_PID) if e.name == sem.name]
        assert [(e.kind, e.uid) for e in mine] == [("sem", session.UID)]
        assert not [e for e in session.lab_entries(session.SESSION_PID + 1)
                    if e.name == sem.name]
    finally:
        sem.unlink()


def test_the_scanner_never_lists_a_planted_link_as_a_session_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"{session.PREFIX}planted").symlink_to(tmp_path / "elsewhere")
    assert not [e for e in session.lab_entries(roots=[tmp_path]) if e.path.parent == tmp_path]


def test_split_puts_each_role_on_its_own_cpu_and_same_puts_all_on_one():
    allowed = sorted(os.sched_getaffinity(0))
    same = cpus.place("same", ("writer", "reader"))
    assert len(set(same.cpus)) == 1 and same.text.startswith("writer and reader on CPU")
    if len(allowed) > 1:
        split = cpus.place("split", ("sender", "receiver"))
        assert split.cpus[0] != split.cpus[1] and set(split.cpus) <= set(allowed)
        assert split.text.startswith("sender on CPU")
    assert cpus.place(None, 2) == cpus.Placement((None, None), "unpinned")


def test_pinning_where_the_system_cannot_pin_is_refused_clearly(monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity")
    with pytest.raises(NotSupportedHere, match="sched_setaffinity"):
        cpus.place("split", 2)
    assert cpus.place("auto", 2) == cpus.Placement((None, None), "unpinned")


def test_an_unknown_placement_is_refused_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"pin must be 'same'.*'split'"):
        cpus.place("cross", 2)


def test_wait_until_returns_the_first_true_answer():
    answers = iter([None, 0, "here"])
    assert waiting.wait_until(lambda: next(answers), 5, "never") == "here"


def test_wait_until_names_what_did_not_happen_at_the_deadline():
    with pytest.raises(LabTimeout, match="the flag never rose"):
        waiting.wait_until(lambda: False, 0.02, lambda: "the flag never rose")


def test_frames_survive_being_split_anywhere():
    data = framing.frame(b"one") + framing.frame(b"") + framing.frame(b"three")
    for cut in range(len(data) + 1):
        whole, rest = framing.split_frames(data[:cut])
        again, tail = framing.split_frames(rest + data[cut:])
        assert whole + again == [b"one", b"", b"three"] and tail == b""


def test_the_plain_unpickler_runs_no_code_of_the_senders():
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system is not plain data"):
        framing.plain_loads(pickle.dumps(Evil()))


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "1", 86401])
def test_a_timeout_must_be_a_positive_number_of_seconds_up_to_a_day(value):
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        seconds("timeout", value, above=True)


def test_closing_a_child_ends_it_keeps_its_result_and_can_be_repeated():
    child = start(time.sleep, 30, show=False)
    child.close()
    assert not child.running
    assert child.wait().status.signal == signal.SIGKILL
    child.close()  # a second close does nothing


def test_closing_workers_ends_every_one():
    workers = start_workers(lambda i: time.sleep(30), 3, show=False)
    workers.close()
    assert not workers.running and len(workers.stop()) == 3


def test_the_runner_logs_each_program_and_how_it_ended():
    ran = runner.run_module("labkit.programs.run_code", "raise SystemExit(3)", timeout=10)
    record = next(r for r in reversed(runner.programs()) if r.pid == ran.pid)
    assert ran.returncode == record.returncode == 3 and record.ended is not None


def test_the_runner_starts_only_labkits_own_programs():
    with pytest.raises(ValueError, match=r"labkit\.programs\.NAME"):
        runner.start_module("os", lifetime=5)


def test_acquire_gives_up_after_its_timeout_even_without_sem_timedwait(monkeypatch):
    monkeypatch.setattr(posix_ipc, "SEMAPHORE_TIMEOUT_SUPPORTED", False)
    with objects.scope() as objs:
        sem = objs.semaphore(0)
        with pytest.raises(posix_ipc.BusyError):
            objects.acquire(sem, 0.05)
        sem.release()
        objects.acquire(sem, 0.05)


def test_show_code_folds_the_source_and_says_which_file_it_is_in(tmp_path):
    from labkit import signals
    from labkit.display import show_code

    program = tmp_path / "tiny.py"
    program.write_text("import os\nprint(os.getpid())\n")
    code = show_code(signals.record_signals, program)
    text = repr(code)
    assert text.startswith("# labkit/signals.py, lines ")
    assert "def record_signals(" in text and "print(os.getpid())" in text
    page = code._repr_html_()
    assert page.startswith("<details><summary>Show the code: record_signals, tiny.py</summary>")
    assert page.endswith("</details>") and "<pre" in page
    with pytest.raises(LabError, match="has no Python source to show"):
        show_code(len)
