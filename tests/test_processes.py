"""labkit.processes: children that always end, report back, and leave nothing behind."""
from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest
from helpers import open_descriptors, read_bytes

import labkit
from labkit import ChildError, ExitStatus, LabTimeout, run, run_workers, start, start_workers
from labkit.errors import LabError
from labkit.waiting import wait_until


def test_run_returns_the_value_from_another_process():
    r = run(os.getpid)
    assert r.value == r.pid != os.getpid()
    assert r.status.ok and str(r.status) == "exited with code 0"


def test_child_output_reaches_the_cell_and_the_result(capsys):
    def chatty():
        print("to stdout")
        print("to stderr", file=sys.stderr)
        os.write(1, b"raw write\n")

    r = run(chatty)
    out, err = capsys.readouterr()
    assert "to stdout\n" in out and "raw write\n" in out and "to stderr\n" in err
    assert r.stdout == "to stdout\nraw write\n" and r.stderr == "to stderr\n"


def test_show_false_keeps_output_out_of_the_cell(capsys):
    r = run(print, "quiet", show=False)
    assert capsys.readouterr().out == "" and r.stdout == "quiet\n"


def test_exception_in_the_child_comes_back_with_its_traceback():
    def fails():
        raise ValueError("bad input")

    r = run(fails, show=False)
    assert not r.returned and r.error_type == "ValueError" and r.status.code == 1
    assert isinstance(r.exception, ValueError)
    with pytest.raises(ChildError, match="raised ValueError: bad input") as info:
        _ = r.value
    assert "in fails" in info.value.remote_traceback


def test_sys_exit_in_the_child_sets_the_exit_code():
    r = run(sys.exit, 3)
    assert r.status == ExitStatus(3) and not r.returned
    assert "exited with code 3 without returning" in r.failure


def test_a_child_killed_by_a_signal_is_reported_by_name():
    def segfault():
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        ctypes.string_at(0)

    r = run(segfault)
    assert r.status.signal == signal.SIGSEGV and r.status.signal_name == "SIGSEGV"
    assert str(r.status).startswith("killed by SIGSEGV")
    with pytest.raises(ChildError, match="killed by SIGSEGV"):
        _ = r.value


def test_an_unpicklable_return_value_is_a_clear_error():
    r = run(lambda: (lambda: None))
    with pytest.raises(ChildError, match="cannot be pickled"):
        _ = r.value


def test_child_starts_with_default_sigint_in_its_own_group():
    r = run(lambda: (signal.getsignal(signal.SIGINT) == signal.SIG_DFL,
                     os.getpgid(0) == os.getpid()))
    assert r.value == (True, True)


def test_a_hanging_child_is_killed_at_the_timeout():
    with pytest.raises(LabTimeout, match=r"child did not finish in 0\.3 s; it was killed"):
        run(time.sleep, 30, timeout=0.3)


def _family_with_escapee(w: int) -> None:
    pids = []
    ready_r, ready_w = os.pipe()
    for detach in (False, True):
        pid = os.fork()
        if pid == 0:
            if detach:
                os.setsid()  # leaves the process group: only the tree walk can find it
            if os.fork() == 0:
                os.write(ready_w, b"+")
                time.sleep(60)
                os._exit(0)
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
    read_bytes(ready_r, 2)  # both grandchildren are there
    kids = psutil.Process().children(recursive=True)
    os.write(w, " ".join(str(k.pid) for k in kids).encode())
    time.sleep(60)


def test_timeout_kills_every_descendant_even_one_that_left_the_group():
    r, w = os.pipe()
    with pytest.raises(LabTimeout):
        run(_family_with_escapee, w, timeout=3.0)
    os.close(w)
    pids = [int(p) for p in os.read(r, 1000).split()]
    os.close(r)
    assert len(pids) == 4
    wait_until(lambda: not [p for p in pids if psutil.pid_exists(p)
                            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE],
               timeout=10, message="a descendant outlived the timeout")


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_bad_timeouts_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        run(os.getpid, timeout=bad)


@pytest.mark.parametrize("bad", [0, -3, 1000, 2.5, True])
def test_bad_worker_counts_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="workers must be a whole number of workers"):
        run_workers(os.getpid, bad)


def test_something_that_is_not_a_function_is_refused():
    with pytest.raises(TypeError, match="expected a function"):
        run(42)


def test_workers_get_their_index_and_report_in_order(capsys):
    results = run_workers(lambda i, base: print(f"hello {i}") or base + i, 3, 10)
    assert results.values == [10, 11, 12]
    assert len({r.pid for r in results}) == 3
    out = capsys.readouterr().out
    assert all(f"[worker {i}] hello {i}\n" in out for i in range(3))


def _count_siblings(i: int, counted_w: int, done_r: int, done_w: int) -> int:
    os.close(done_w)
    n = len(psutil.Process(os.getppid()).children())
    os.write(counted_w, b"x")
    os.read(done_r, 1)  # returns at EOF, once every worker has counted
    return n


def test_no_worker_starts_before_all_were_forked():
    counted_r, counted_w = os.pipe()
    done_r, done_w = os.pipe()
    with start_workers(_count_siblings, 6, counted_w, done_r, done_w, timeout=20) as workers:
        for _ in range(6):
            assert select.select([counted_r], [], [], 15)[0], "a worker never counted"
            os.read(counted_r, 1)
        os.close(done_w)
        counts = workers.wait().values
    for fd in (counted_r, counted_w, done_r):
        os.close(fd)
    assert min(counts) >= 6


def test_the_timeout_names_the_worker_that_hung_and_keeps_the_others():
    def maybe_hang(i):
        if i == 1:
            time.sleep(30)
        return i

    with pytest.raises(LabTimeout, match=r"^worker 1 did not finish in 1\.0 s; it was killed$") as info:
        run_workers(maybe_hang, 3, timeout=1.0)
    assert sorted(r.value for r in info.value.results) == [0, 2]


def test_values_names_the_worker_that_failed():
    def second_fails(i):
        if i == 1:
            raise RuntimeError("worker trouble")
        return i

    results = run_workers(second_fails, 2, show=False)
    with pytest.raises(ChildError, match=r"worker 1 .* raised RuntimeError: worker trouble"):
        _ = results.values


def test_an_interrupt_kills_the_children_and_propagates():
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_workers(lambda i: time.sleep(30), 3, timeout=20)
    finally:
        timer.cancel()
    # no_leaks checks that nothing is left


@pytest.mark.parametrize("kind", ["exit", "res"])
def test_an_interrupt_while_a_descriptor_is_put_away_is_still_a_keyboard_interrupt(
        monkeypatch, kind):
    """The interrupt lands inside the selector's unregister (Python code) of the child's
    pidfd ("exit") or of its result pipe: the cleanup must neither try the half-done step
    again (KeyError in place of the interrupt) nor forget to close the descriptor."""
    import selectors

    real = selectors.DefaultSelector.unregister
    sent = []

    def interrupted(self, fileobj):
        key = real(self, fileobj)
        if not sent and key.data[1] == kind:
            sent.append(fileobj)
            os.kill(os.getpid(), signal.SIGINT)  # arrives before unregister returns
        return key

    def pipes_and_pidfds() -> set[str]:  # what run() opens (another thread of the worker
        return {f"{fd} {target}" for fd, target in open_descriptors().items()  # may open
                if target.startswith(("pipe:", "anon_inode:[pidfd]"))}        # files meanwhile)

    run(os.getpid, show=False)  # the janitor's pipe is opened once, at the first start
    open_before = pipes_and_pidfds()
    monkeypatch.setattr(selectors.DefaultSelector, "unregister", interrupted)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(os.getpid, show=False)
    finally:
        signal.signal(signal.SIGINT, before)
    assert sent
    assert pipes_and_pidfds() <= open_before


def test_leftover_children_are_ended_and_reported():
    def careless():
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        zombie = os.fork()
        if zombie == 0:
            os._exit(0)
        while psutil.Process(zombie).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        return "done"

    r = run(careless)
    assert r.value == "done"
    assert len(r.leftovers) == 2
    assert any("a zombie, it exited with code 0" in note for note in r.leftovers)
    assert any("still running when the function returned" in note for note in r.leftovers)


def _fork_and_wait() -> str:
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the fork has returned out of the function (and been stopped)
        return "parent"
    return "child"


def test_a_fork_that_returns_out_of_the_function_is_stopped_and_reported():
    r = run(_fork_and_wait)
    assert r.value == "parent" and len(r.escaped) == 1 and not r.leftovers


def test_start_then_signal_then_wait():
    with start(time.sleep, 30, timeout=10) as child:
        assert child.running
        child.send_signal("TERM")
        r = child.wait()
    assert r.status.signal_name == "SIGTERM"
    with pytest.raises(LabError, match="has already ended"):
        child.send_signal(signal.SIGUSR1)


def test_stop_and_the_with_block_end_a_running_child():
    with start(time.sleep, 30) as child:
        pass
    assert not child.running
    other = start(time.sleep, 30)
    assert other.stop().status.signal_name == "SIGKILL"


def test_a_child_nobody_waits_for_is_killed_after_its_deadline():
    child = start(time.sleep, 60, timeout=0.2)
    deadline = time.monotonic() + 10  # the janitor steps in 2 s after the deadline
    while child.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert child.wait().status.signal_name == "SIGKILL"


def test_the_janitor_kills_its_groups_but_never_one_whose_number_went_to_another_process():
    """pids wrap around (at 32768 by default): once a registered group's leader is reaped and
    its group is empty, a later process may get the same number and lead a group of its own.
    The janitor knows each group by its number and its leader's start time, and kills only
    that group, at its deadline or when the kernel ends; lines it cannot read change nothing."""
    from labkit.session import start_ticks

    sleepers = [subprocess.Popen(["sleep", "60"], start_new_session=True) for _ in range(4)]
    due, reused, due_at_end, reused_at_end = sleepers
    janitor = subprocess.Popen([sys.executable, "-m", "labkit._janitor", str(os.getpid()),
                                "not_a_lab_prefix", "/nonexistent"], stdin=subprocess.PIPE)
    try:
        def register(p: subprocess.Popen, deadline: float, earlier: bool) -> bytes:
            born = start_ticks(p.pid) - earlier  # an earlier process had this number
            return f"+ pg {p.pid} {deadline} {born}\n".encode()

        past, later = time.monotonic() - 10, time.monotonic() + 600
        junk = b"\xff\n+ pg 12 x\n+ pg\n- pg one\n"  # what a child holding the pipe may write
        janitor.stdin.write(junk + register(reused, past, True) + register(due, past, False) +
                            register(reused_at_end, later, True) +
                            register(due_at_end, later, False))
        janitor.stdin.flush()
        assert due.wait(timeout=30) == -signal.SIGKILL  # its deadline has passed
        assert reused.poll() is None                    # handled in the same round, spared
        janitor.stdin.write(b"bye\n")                   # the kernel ends: the rest is killed
        janitor.stdin.close()
        assert janitor.wait(timeout=30) == 0
        assert due_at_end.wait(timeout=10) == -signal.SIGKILL
        assert reused.poll() is None and reused_at_end.poll() is None
    finally:
        for p in (*sleepers, janitor):
            p.kill()
            p.wait()


FAKE_KERNEL = textwrap.dedent("""
    import os, sys, time
    import labkit

    def family():
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        time.sleep(60)

    child = labkit.start(family, timeout=60)
    shm = labkit.objects.shared_memory(4096)
    sem = labkit.objects.semaphore(1)
    import psutil
    deadline = time.monotonic() + 30
    while not psutil.Process(child.pid).children() and time.monotonic() < deadline:
        time.sleep(0.01)  # polling for the grandchild, with a deadline
    pids = [child.pid] + [p.pid for p in psutil.Process(child.pid).children()]
    print(" ".join(map(str, pids)), shm.name, sem.name, flush=True)
    time.sleep(60)
""")


def test_when_the_kernel_dies_its_children_and_objects_go_too():
    kernel = subprocess.Popen([sys.executable, "-c", FAKE_KERNEL], stdout=subprocess.PIPE,
                              text=True)
    *pids, shm, sem = kernel.stdout.readline().split()
    assert os.path.exists(f"/dev/shm{shm}") and os.path.exists(f"/dev/shm/sem.{sem[1:]}")
    kernel.kill()
    kernel.wait()
    deadline = time.monotonic() + 10

    def gone(pid):
        return (not psutil.pid_exists(int(pid))
                or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE)
    while time.monotonic() < deadline and not (
            all(gone(p) for p in pids) and not os.path.exists(f"/dev/shm{shm}")
            and not os.path.exists(f"/dev/shm/sem.{sem[1:]}")):
        time.sleep(0.1)
    assert all(gone(p) for p in pids)
    assert not os.path.exists(f"/dev/shm{shm}")
    assert not os.path.exists(f"/dev/shm/sem.{sem[1:]}")
    kernel.stdout.close()


@pytest.mark.parametrize("spelling", ["SIGUSR1", "USR1", "usr1", " sigusr1 ",
                                      int(signal.SIGUSR1), signal.SIGUSR1])
def test_signals_can_be_named_in_every_usual_way(spelling):
    assert labkit.to_signal(spelling) is signal.SIGUSR1


@pytest.mark.parametrize("bad", ["SIGFOO", "", 0, 999, 1.5, None])
def test_a_bad_signal_name_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match=r"is not a signal on this system; valid signals: "
                                         r"SIGHUP \(1\), SIGINT \(2\)"):
        labkit.to_signal(bad)


def test_exit_status_decodes_codes_and_signals():
    assert str(ExitStatus.from_wait_status(0)) == "exited with code 0"
    assert ExitStatus.from_wait_status(0x0300) == ExitStatus(3)
    killed = ExitStatus.from_wait_status(signal.SIGKILL)
    assert killed.signal == 9 and killed.code is None and not killed.ok
    with pytest.raises(ValueError, match="not that of an ended process"):
        ExitStatus.from_wait_status(0x137f)  # stopped by SIGSTOP


def _tree_builder(w: int) -> None:
    for _ in range(2):
        if os.fork() == 0:
            if os.fork() == 0:
                os.write(w, b"+")  # a grandchild is there
                time.sleep(30)
                os._exit(0)
            time.sleep(30)
            os._exit(0)
    os.write(w, b"ready")
    time.sleep(30)


def test_process_tree_sees_the_live_family_and_draws_it():
    import matplotlib

    matplotlib.use("Agg")
    r, w = os.pipe()
    with start(_tree_builder, w, timeout=10) as head:
        read_bytes(r, 7)  # "ready" and a "+" from each grandchild
        tree = labkit.process_tree()
        node = next(n for n in tree.walk() if n.pid == head.pid)
        assert len(node.children) == 2
        assert all(len(c.children) == 1 for c in node.children)
        ax = labkit.plot_process_tree(tree, labels={head.pid: "head"})
        texts = [t.get_text() for t in ax.texts]
        assert any(t.startswith(f"{head.pid}\nhead\n") for t in texts)
        assert len(texts) == sum(1 for _ in tree.walk())
    os.close(r)
    os.close(w)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_a_flood_of_output_is_capped_not_kept(capsys):
    from labkit.processes import MAX_OUTPUT

    def flood():
        chunk = b"x" * 65536
        for _ in range(64):  # 4 MiB
            os.write(1, chunk)

    r = run(flood)
    shown = capsys.readouterr().out
    assert len(r.stdout) < MAX_OUTPUT + 1000 and "more bytes were dropped" in r.stdout
    assert len(shown) < MAX_OUTPUT + 1000 and "output beyond 1 MiB is dropped" in shown


def test_a_grandchild_cannot_reach_its_parents_result_pipe():
    def open_files():
        return [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                if os.path.exists(f"/proc/self/fd/{fd}")]

    def parent_side():
        from labkit._child import result_fd
        mine = os.readlink(f"/proc/self/fd/{result_fd()}")
        return mine, run(open_files, show=False).value

    mine, grandchild_files = run(parent_side).value
    assert mine.startswith("pipe:") and mine not in grandchild_files


# --- a killed kernel leaves nothing; interrupts are never lost; children start clean ---

KERNEL = textwrap.dedent("""
    import contextlib, json, os, threading, time
    import psutil
    from labkit import mq, objects, pipes, shm, start
    from labkit._janitor import CLIENT

    def parent_of_one():                    # lesson 00: a child with a child of its own
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        time.sleep(600)

    stack = contextlib.ExitStack()
    folder = stack.enter_context(objects.temp_folder("strace"))
    objects.fifo()
    stack.enter_context(pipes.fifo_server(lifetime=600))
    stack.enter_context(mq.socket_server("stream", lifetime=600))
    stack.enter_context(start(parent_of_one, timeout=600))
    threading.Thread(target=shm.run_unrelated, args=("import time; time.sleep(600)",),
                     kwargs={"timeout": 600}, daemon=True).start()
    me = psutil.Process()
    while len(me.children(recursive=True)) < 6:   # janitor, 2 servers, child, grandchild, stranger
        time.sleep(0.01)
    print(json.dumps({"pids": [p.pid for p in me.children(recursive=True)],
                      "janitor": CLIENT.pid, "folder": str(folder.parent)}), flush=True)
    time.sleep(600)
""")


def _wait_all_ended(pids, seconds):
    """The pids still alive after ``seconds`` (each watched through a pidfd, no polling)."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass  # already gone
    deadline = time.monotonic() + seconds
    try:
        while fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(fds), [], [], deadline - time.monotonic())
            for fd in ready:
                os.close(fd)
                del fds[fd]
    finally:
        for fd in fds:
            os.close(fd)
    return sorted(fds.values())


def _session_leftovers(kernel_pid: int) -> list[str]:
    import glob
    import tempfile

    prefix = f"labkit_{os.getuid()}_{kernel_pid}_"
    return (glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*"))
            + glob.glob(f"/dev/shm/*{prefix}*") + glob.glob(f"/dev/mqueue/{prefix}*"))


@pytest.mark.parametrize("moment", [None, *range(29)])  # 30 kills
def test_everything_a_killed_kernel_started_ends_and_its_folder_goes(moment):
    """Kill a kernel once all is running, or at a random moment (seeded) while it starts."""
    import json
    import random
    from pathlib import Path

    root = str(Path(labkit.__file__).parents[1])
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": root})
    try:
        if moment is None:
            line = kernel.stdout.readline()
            assert line, kernel.stderr.read()
            assert len(json.loads(line)["pids"]) >= 6
        else:
            time.sleep(random.Random(moment).uniform(0.1, 1.5))  # when to kill, not a wait
    finally:
        kernel.kill()
        kernel.wait()
    ours = {p.pid for p in psutil.Process().children(recursive=True)}  # orphans come to us
    left = _wait_all_ended(ours - {labkit._janitor.CLIENT.pid}, 5.0)
    assert not left, [(p, psutil.Process(p).cmdline()[-2:]) for p in left if psutil.pid_exists(p)]
    assert not _session_leftovers(kernel.pid)


def test_interrupts_during_forks_are_never_lost(capfd):
    """30 interrupts at random moments of forking: each one is a KeyboardInterrupt here."""
    import random

    rounds, caught = 30, []
    armed, handled, stop = threading.Event(), threading.Event(), threading.Event()
    rng = random.Random(15)

    def interrupter():
        for _ in range(rounds):
            if not armed.wait(10):
                return
            armed.clear()
            time.sleep(rng.uniform(0, 0.004))  # a random moment of the fork loop below
            handled.clear()
            os.kill(os.getpid(), signal.SIGINT)
            if not handled.wait(60):
                return  # lost (or a minute late): the count below says so
        stop.set()

    sender = threading.Thread(target=interrupter, daemon=True)
    sender.start()
    while not stop.is_set() and len(caught) < rounds:
        try:
            armed.set()
            while sender.is_alive():  # once it has given up, the assertion below says why
                run(os.getpid, show=False)
        except KeyboardInterrupt:
            caught.append(1)
            handled.set()
        if not sender.is_alive():
            break
    sender.join(10)
    assert len(caught) == rounds, f"{rounds - len(caught)} of {rounds} interrupts were lost"
    assert "Exception ignored" not in capfd.readouterr().err


def test_children_and_programs_start_with_inherited_ignores_reset():
    from labkit.runner import end_program, start_program

    before = signal.signal(signal.SIGQUIT, signal.SIG_IGN)  # as if started under nohup & co
    try:
        in_child = run(lambda: (int(signal.getsignal(signal.SIGQUIT)),
                                int(signal.getsignal(signal.SIGPIPE)))).value
        program = start_program([sys.executable, "-c", ("import signal; print(int("
                                 "signal.getsignal(signal.SIGQUIT)))")], 30,
                                stdout=subprocess.PIPE, text=True)
        try:
            in_program = program.communicate(timeout=30)[0]
        finally:
            end_program(program)
        shell = start_program(["sh", "-c", "grep SigIgn /proc/self/status"], 30,
                              stdout=subprocess.PIPE, text=True)
        try:
            ignored = int(shell.communicate(timeout=30)[0].split()[1], 16)
        finally:
            end_program(shell)
    finally:
        signal.signal(signal.SIGQUIT, before)
    assert in_child == (int(signal.SIG_DFL), int(signal.SIG_IGN))  # Python's own SIGPIPE stays
    assert in_program.strip() == str(int(signal.SIG_DFL))
    assert not ignored & (1 << (signal.SIGQUIT - 1)) and not ignored & (1 << (signal.SIGPIPE - 1))


def test_a_child_never_walks_its_parents_objects_with_the_garbage_collector():
    """The child freezes what it inherited: its collections leave those objects (and the
    pages they live in) alone."""
    import gc

    held = [[k] for k in range(50_000)]  # tracked by the parent's collector

    def tracked_here() -> int:
        return len(gc.get_objects())

    assert len(gc.get_objects()) > len(held)
    assert run(tracked_here).value < len(held) // 10
