"""labkit.checking: checks run answers on real processes, safely, and report clearly."""
from __future__ import annotations

import os
import tempfile
import time

import pytest

from labkit import checking, objects
from labkit.checking import (
    ERROR,
    FAILED,
    NOT_DONE,
    NOT_RUN,
    PASSED,
    CheckReport,
    Exercise,
    call,
    check,
    expect,
    expect_clean,
    run_checks,
)


@pytest.fixture()
def toy(tmp_path_factory, monkeypatch):
    config = tmp_path_factory.mktemp("config") / "course.toml"  # points: from the config
    config.write_text('[exercises."99.toy".points]\n"doubles 2" = 2\n"is tidy" = 1\n')
    monkeypatch.setenv("LABKIT_COURSE", str(config))
    ex = Exercise("99.toy", "A toy exercise", timeout=5.0)

    @ex.check("doubles 2", hint="Multiply by two.")
    def _(answer):
        got = call(answer, 2).value
        expect(got == 4, f"double(2) returned {got!r}, expected 4")

    @ex.check("is tidy", hint="Close what you open.")
    def _(answer):
        expect_clean(call(answer, 1))

    yield ex
    del checking._REGISTRY["99.toy"]


def test_a_right_answer_passes_every_check(toy):
    report = check("99.toy", lambda x: 2 * x)
    assert [r.status for r in report.results] == [PASSED, PASSED]
    assert report.score == report.max_score == 3
    assert "99.toy A toy exercise: 3/3 points" in repr(report)


def test_a_wrong_answer_fails_with_its_message_and_hint(toy):
    report = check("99.toy", lambda x: x + 1)
    first = report.results[0]
    assert first.status == FAILED and first.points == 0 and first.max_points == 2
    assert first.message == "double(2) returned 3, expected 4"
    assert "hint: Multiply by two." in repr(report) and "Hint: Multiply by two." in report._repr_html_()


def test_an_unsolved_answer_is_not_done(toy):
    def double(x):
        raise NotImplementedError("exercise not done yet")

    assert {r.status for r in run_checks("99.toy", double)} == {NOT_DONE}


def test_an_answer_that_raises_is_reported_with_the_error(toy):
    results = run_checks("99.toy", lambda x: 1 / 0)
    assert results[0].status == FAILED and "ZeroDivisionError" in results[0].message
    # and it earns no hygiene point for the nothing it did
    assert results[1].status == FAILED and "ZeroDivisionError" in results[1].message


def test_something_that_is_not_a_function_fails_clearly(toy):
    assert run_checks("99.toy", None)[0].message == "expected a function, got None"


def test_a_hanging_answer_is_stopped_once_and_the_rest_is_not_run(toy, check_timeout):
    check_timeout(0.3)
    results = run_checks("99.toy", lambda x: time.sleep(30))
    assert results[0].status == FAILED and "did not finish in 0.3 s" in results[0].message
    assert results[1].status == NOT_RUN and "did not finish in 0.3 s" in results[1].message
    assert "[SKIP] is tidy" in repr(CheckReport("99.toy", "A toy exercise", results))


def test_checks_after_the_result_asked_for_are_not_run(toy):
    """``until`` (the mutants' test stops at the check naming a mutant's fault)."""
    results = run_checks("99.toy", lambda x: x + 1, until=lambda r: r.status == FAILED)
    assert [r.status for r in results] == [FAILED, NOT_RUN]
    assert results[1].message == "not run: the run was asked to stop after 'doubles 2'"
    kept_going = run_checks("99.toy", lambda x: x + 1, until=lambda r: r.status == PASSED)
    assert [r.status for r in kept_going] == [FAILED, PASSED]


def test_a_slow_check_reports_each_check_as_it_starts(toy, monkeypatch):
    seen = []
    results = run_checks("99.toy", lambda x: 2 * x, lambda i, name: seen.append((i, name)))
    assert [r.status for r in results] == [PASSED, PASSED]
    assert sorted(set(seen)) == [(0, "doubles 2"), (1, "is tidy")]


class _Forge:
    """Unpickling this runs code: a verdict forged in whatever process decodes it."""

    def __reduce__(self):
        return (exec, ("import labkit.checking as c; c.expect = lambda *a, **k: None",))


def test_a_returned_object_that_would_run_code_when_decoded_is_refused(toy):
    results = run_checks("99.toy", lambda x: _Forge())
    assert results[0].status == FAILED and "not plain data" in results[0].message


def test_a_record_forged_on_the_result_pipe_is_refused(toy):
    def forger(x):
        import pickle
        import struct

        from labkit._child import result_fd
        record = pickle.dumps({"kind": "ok", "payload": pickle.dumps(_Forge())})
        os.write(result_fd(), struct.pack("!I", len(record)) + record)
        os._exit(0)

    results = run_checks("99.toy", forger)
    assert results[0].status == FAILED and "not plain data" in results[0].message


def test_numpy_and_named_tuples_come_back_as_plain_data(toy):
    import collections

    import numpy as np
    pair = collections.namedtuple("pair", "a b")
    assert call(lambda: (np.int64(4), pair(1, np.float32(0.5)))).value == (4, (1, 0.5))
    assert "NumPy array or value is not plain data" in call(lambda: np.arange(2)).result.failure


def test_a_check_that_hangs_cannot_freeze_the_caller(monkeypatch):
    ex = Exercise("99.stuck", "Stuck", timeout=0.5)
    ex.check("waits forever")(lambda answer: time.sleep(30))
    try:
        results = run_checks("99.stuck", abs)
    finally:
        del checking._REGISTRY["99.stuck"]
    assert results[0].status == ERROR and "did not finish in 0.5 s" in results[0].message


def test_a_broken_check_is_an_error_not_a_failure():
    ex = Exercise("99.broken", "Broken")
    ex.check("raises")(lambda answer: {}["missing"])
    try:
        result = run_checks("99.broken", abs)[0]
    finally:
        del checking._REGISTRY["99.broken"]
    assert result.status == ERROR and "KeyError" in result.message


def test_hygiene_sees_a_leaked_descriptor(toy):
    def leaky(x):
        os.pipe()
        return 2 * x

    result = run_checks("99.toy", leaky)[1]
    assert result.status == FAILED and "was left open" in result.message and "pipe:" in result.message


def test_hygiene_sees_and_removes_a_leftover_object(toy):
    def leaves_shm(x):
        import posix_ipc
        posix_ipc.SharedMemory(objects.lab_name("left"), posix_ipc.O_CREX, size=4096).close_fd()
        return 2 * x

    result = run_checks("99.toy", leaves_shm)[1]
    assert result.status == FAILED and "was left behind" in result.message
    # no_leaks confirms the object is gone


def test_hygiene_leaves_alone_what_another_session_makes_meanwhile(toy, tmp_path):
    """A kernel checking beside this one (same user) may make its FIFOs in the same folder
    while this answer runs: they are neither this answer's leak nor this checker's to remove."""
    other = os.path.join(tempfile.gettempdir(),
                         f"labkit_{os.getuid()}_{os.getppid()}_reply_{tmp_path.name[-6:]}")

    def meanwhile_another_kernel_asks(x):
        os.mkfifo(other, 0o600)
        return 2 * x

    try:
        assert [r.status for r in run_checks("99.toy", meanwhile_another_kernel_asks)] == \
            [PASSED, FAILED]  # the second call finds the name taken: FileExistsError
        assert os.path.exists(other)
    finally:
        os.unlink(other)


def test_patching_the_checker_inside_the_answer_changes_nothing(toy):
    def cheat(x):
        checking.expect = lambda *a: None  # dies with the answer's own process
        return 0

    assert run_checks("99.toy", cheat)[0].status == FAILED


def test_an_unknown_exercise_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"no exercise '00\.nope'; exercises are: 00\."):
        check("00.nope", abs)


def test_exercises_are_found_by_lesson():
    assert set(checking.exercises("00_processes")) >= {
        "00.exit_code", "00.describe_status", "00.reap_all", "00.run_program"}
    assert {ex.split(".")[0] for ex in checking.exercises("00")} == {"00"}


def test_report_html_escapes_student_text():
    report = CheckReport("99.x", "X", [checking.CheckResult("99.x", "c", FAILED, 0, 1,
                                                            "<script>", "")])
    assert "<script>" not in report._repr_html_() and "&lt;script&gt;" in report._repr_html_()


def test_launch_lets_a_check_act_on_the_running_answer():
    def answer(ready_w):
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        os.write(ready_w, b"!")  # blocked now: a SIGUSR1 stays pending until sigwait takes it
        return signal.sigwait({signal.SIGUSR1}).name

    ready_r, ready_w = os.pipe()
    with checking.launch(answer, ready_w) as running:
        os.read(ready_r, 1)
        running.send_signal("SIGUSR1")
        assert running.finish().value == "SIGUSR1"
    os.close(ready_r)
    os.close(ready_w)


def test_hygiene_leaves_other_sessions_objects_alone(toy):
    import posix_ipc

    neighbour = os.getppid()  # a live process, standing for another kernel's labkit session
    name = f"/labkit_{os.getuid()}_{neighbour}_shm_cafe01"

    def busy_neighbour(x):  # the other session happens to create its object meanwhile
        posix_ipc.SharedMemory(name, posix_ipc.O_CREAT, size=4096).close_fd()
        return 2 * x

    try:
        result = run_checks("99.toy", busy_neighbour)[1]
        assert result.status == PASSED, result.message
        assert os.path.exists(f"/dev/shm{name}")
    finally:
        posix_ipc.unlink_shared_memory(name)


def test_hygiene_sees_and_removes_fifos_and_sockets_of_any_name(toy, tmp_path, monkeypatch):
    import socket
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "mine").mkdir()

    def leaves_fifo_and_socket(x):
        os.mkfifo(tmp_path / "my_fifo")
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / "mine" / "my_socket"))
        s.close()
        return 2 * x

    result = run_checks("99.toy", leaves_fifo_and_socket)[1]
    assert result.status == FAILED
    assert f"fifo {tmp_path}/my_fifo was left behind" in result.message
    assert f"socket {tmp_path}/mine/my_socket was left behind" in result.message
    assert run_checks("99.toy", leaves_fifo_and_socket)[0].status == PASSED  # one point lost
    assert sorted(os.listdir(tmp_path)) == ["mine"] and os.listdir(tmp_path / "mine") == []


def test_an_answer_that_raises_leaves_nothing_behind(toy, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def leaks_then_raises(x):
        os.mkfifo(tmp_path / "orphan")
        raise RuntimeError("the error path")

    assert run_checks("99.toy", leaks_then_raises)[0].status == FAILED
    assert os.listdir(tmp_path) == []


def test_a_hanging_check_shows_a_progress_bar_after_two_seconds(toy, monkeypatch, capsys,
                                                               check_timeout):
    check_timeout(3.0)
    monkeypatch.setattr(checking, "PROGRESS_AFTER", 0.5)
    report = check("99.toy", lambda x: time.sleep(30))
    assert report.results[0].status == FAILED and report.results[1].status == NOT_RUN
    assert "checking 99.toy" in capsys.readouterr().err  # tqdm's bar, on stderr off a notebook
