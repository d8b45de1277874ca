"""labkit.tty: a real pseudo-terminal, its session leader, control keys and who gets them."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from labkit.errors import LabError, LabTimeout
from labkit.tty import WITNESS, Terminal, TtyTimeline, plot_tty_timeline, show_session, witness

pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


def _job(mode: str = "idle", foreground: bool = True) -> int:
    """In the session leader: fork a witness job in a group of its own; give it the terminal."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            os.execv(sys.executable, [sys.executable, "-c", WITNESS, "job", mode])
        finally:
            os._exit(127)
    try:
        os.setpgid(pid, pid)
    except PermissionError:
        pass  # the child has already exec'd: it made its group itself
    if foreground:
        os.tcsetpgrp(0, pid)
    return pid


def _foreground_job() -> None:
    witness("leader")
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    pid = _job()
    print("started", flush=True)
    _, status = os.waitpid(pid, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())
    if os.WIFSTOPPED(status):
        print("stopped by", signal.Signals(os.WSTOPSIG(status)).name, flush=True)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    else:
        print("ended by", signal.Signals(os.WTERMSIG(status)).name, flush=True)


@pytest.mark.parametrize(("key", "signame", "ending"),
                         [("C-c", "SIGINT", "ended by SIGINT"),
                          ("C-\\", "SIGQUIT", "ended by SIGQUIT"),
                          ("C-z", "SIGTSTP", "stopped by SIGTSTP")])
def test_a_control_key_signals_the_foreground_group_and_not_the_leader(key, signame, ending):
    with Terminal() as term:
        leader = term.start(_foreground_job)
        term.read_until("started")
        term.await_witness("job")
        term.press(key)
        term.read_until(ending)
        assert term.wait()["code"] == 0
        timeline = term.timeline()
    assert timeline.received("job") == [signame]
    assert timeline.received("leader") == []
    assert [s.pgid for s in timeline.signals] == [s.pid for s in timeline.signals] != [leader]
    assert [k for _, k in timeline.keys] == [{"C-c": "Ctrl-C", "C-\\": "Ctrl-\\",
                                              "C-z": "Ctrl-Z"}[key]]


def _background_reader() -> None:
    witness("leader")
    pid = _job("read", foreground=False)
    _, status = os.waitpid(pid, os.WUNTRACED)
    print("stopped:", os.WIFSTOPPED(status), flush=True)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_a_background_read_of_the_terminal_gets_sigttin():
    with Terminal() as term:
        term.start(_background_reader)
        term.read_until("stopped: True")
        term.wait()
        assert term.timeline().received("job") == ["SIGTTIN"]


def _session_facts() -> None:
    print(f"sid={os.getsid(0) == os.getpid()} fg={os.tcgetpgrp(0) == os.getpgrp()} "
          f"tty={os.isatty(0) and os.isatty(1) and os.isatty(2)}", flush=True)


def test_the_function_leads_a_session_whose_controlling_terminal_is_the_pty():
    with Terminal() as term:
        term.start(_session_facts)
        term.read_until("sid=True fg=True tty=True")
        ended = term.wait()
    assert (ended["code"], ended["left"]) == (0, [])


def test_a_program_on_the_terminal_echoes_what_is_typed_and_ends_at_ctrl_d():
    with Terminal() as term:
        term.start_program(["cat"])
        term.type("hello\n")
        term.read_until("hello\r\nhello\r\n")
        term.press("C-d")
        assert term.wait()["code"] == 0


def _leaves_a_child() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # it has ended; it stays a zombie


def test_wait_reports_the_children_the_leader_did_not_reap():
    with Terminal() as term:
        term.start(_leaves_a_child)
        left = term.wait()["left"]
    assert len(left) == 1 and "zombie" in left[0], left


def _fork_and_check() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    ended, _ = os.waitpid(pid, os.WNOHANG)  # with held forks the child has ended by now
    print("ended at once:", ended == pid, flush=True)


def test_held_forks_return_only_after_the_child_has_ended():
    with Terminal() as term:
        term.start(_fork_and_check, hold_forks=True)
        term.read_until("ended at once: True")
        term.wait()


def test_read_until_says_what_the_terminal_showed_when_the_pattern_never_comes():
    with Terminal() as term:
        term.start_program(["cat"])
        term.type("abc\n")
        with pytest.raises(LabTimeout, match=r"did not show 'xyz'.*abc"):
            term.read_until("xyz", timeout=0.5)


def test_bad_keys_a_second_leader_and_a_closed_terminal_are_refused():
    term = Terminal()
    try:
        with pytest.raises(ValueError, match="press one of C-c"):
            term.press("C-x")
        with pytest.raises(TypeError, match="a str"):
            term.type(b"bytes")
        term.start_program(["cat"])
        with pytest.raises(LabError, match="already has a session leader"):
            term.start(print)
    finally:
        term.close()
    closed = Terminal()
    closed.close()
    with pytest.raises(LabError, match="closed"):
        closed.start(print)


def test_witness_refuses_to_run_in_the_notebook_process():
    with pytest.raises(LabError, match="not in the notebook's kernel"):
        witness("kernel")


def test_the_timeline_plot_has_a_row_per_witness(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from labkit.tty import SignalSeen

    timeline = TtyTimeline([(0.1, "Ctrl-C")], [SignalSeen(0.11, 5, 5, "SIGINT", "job"),
                                               SignalSeen(0.2, 6, 6, "SIGHUP", "other")])
    ax = plot_tty_timeline(timeline)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["job (pid 5, group 5)",
                                                            "other (pid 6, group 6)"]


def _two_groups() -> None:
    witness("leader")
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    pid = _job()
    os.waitpid(pid, os.WUNTRACED)
    os.tcsetpgrp(0, os.getpgrp())


def test_the_session_table_marks_the_foreground_group_and_lists_every_member():
    with Terminal() as term:
        leader = term.start(_two_groups)
        [job] = term.await_witness("job")
        term.await_foreground(job)  # the job can be ready before the leader's tcsetpgrp
        rows = {p["pid"]: p for p in term.session()}
        assert set(rows) == {leader, job}
        assert rows[job]["foreground"] and not rows[leader]["foreground"]
        assert rows[job]["pgid"] == job and rows[leader]["pgid"] == leader
        assert rows[job]["command"] == "python -c … job idle"
        table = repr(term.session_table())  # read once: the job may run or sleep
        assert "S+" in table or "R+" in table, table
        term.press("C-c")
        term.wait()
        assert {w[0] for w in term.timeline().witnesses} == {"leader", "job"}


def test_a_program_leader_reports_how_it_ended():
    with Terminal() as term:
        leader = term.start_program(["sh", "-c", "exit 3"])
        assert term.wait() == {"pid": leader, "ended": "exited with code 3", "code": 3,
                               "signal": None, "left": []}


def _upper_shell() -> None:
    while True:
        sys.stdout.write("$ ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line or line.strip() == "exit":
            return
        print(line.strip().upper(), flush=True)


def _unwritten_shell() -> None:
    raise NotImplementedError("exercise not done yet")


def test_show_session_types_each_line_at_its_prompt_and_returns_the_screen():
    assert show_session(_upper_shell, ["abc", "exit"]) == "$ abc\nABC\n$ exit\n"


def test_show_session_says_when_the_shell_is_not_written_and_refuses_bytes():
    assert "not written yet" in show_session(_unwritten_shell, ["ls"])
    with pytest.raises(TypeError, match="lines"):
        show_session(_upper_shell, [b"ls"])


def _background_job() -> None:
    witness("leader")
    pid = _job(foreground=False)
    os.waitpid(pid, 0)


def test_await_foreground_says_which_group_holds_the_terminal_instead():
    with Terminal() as term:
        leader = term.start(_background_job)
        [job] = term.await_witness("job")
        with pytest.raises(LabTimeout, match=f"process group {job} was not the terminal's "
                                             f"foreground group within 0.2 s \\(it is {leader}\\)"):
            term.await_foreground(job, timeout=0.2)
        term.await_foreground(leader)
        os.kill(job, signal.SIGKILL)
        term.wait()
