"""Checks for the exercises of lesson 00 (processes: fork, exec, wait)."""
from __future__ import annotations

import ctypes
import os
import resource
import signal

from ..checking import Exercise, answer_pid, call, expect, expect_clean
from ..processes import run

# --- helpers the student's children run -----------------------------------------------


def _seven() -> int:
    return 7


def _zero() -> int:
    return 0


def _max() -> int:
    return 255


def _where_am_i() -> int:
    """42 in a child of the answer's process, 0 in that process itself."""
    return 42 if os.getpid() != answer_pid() else 0


def _raises() -> int:
    raise ValueError("this function fails on purpose")


def _die_by(signum: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfault should not write a core file
    if signum == signal.SIGSEGV:
        ctypes.string_at(0)  # a real invalid read, not a sent signal
    os.kill(os.getpid(), signum)


# --- 00.exit_code ---------------------------------------------------------------------

EXIT_CODE = Exercise("00.exit_code", "Return a value through the exit status")


@EXIT_CODE.check("a function returning 7 gives 7",
                 hint="In the child: os._exit(fn()). In the parent: os.waitpid(pid, 0), then "
                      "os.waitstatus_to_exitcode(status).")
def _(answer):
    got = call(answer, _seven).value
    expect(got == 7, f"exit_code_of(lambda: 7) returned {got!r}, expected 7")


@EXIT_CODE.check("0 and 255, the ends of the range, come back too",
                 hint="An exit status keeps only 8 bits: 0 to 255 fit exactly.")
def _(answer):
    for fn, want in ((_zero, 0), (_max, 255)):
        got = call(answer, fn).value
        expect(got == want, f"for a function returning {want} you returned {got!r}")


@EXIT_CODE.check("the function runs in a child, not in your process",
                 hint="Call fn() only in the branch where os.fork() returned 0.")
def _(answer):
    got = call(answer, _where_am_i).value
    expect(got == 42, "fn ran in the process that called exit_code_of, not in a child")


@EXIT_CODE.check("a function that raises gives exit code 1, and its child still ends",
                 hint="Wrap the child's work: try: code = fn() except Exception: code = 1 "
                      "finally: os._exit(code).")
def _(answer):
    got = call(answer, _raises).value
    expect(got == 1, f"for a function that raises you returned {got!r}, expected 1")


@EXIT_CODE.check("no zombie and no open descriptor is left behind",
                 hint="Every fork needs its waitpid.")
def _(answer):
    attempt = call(answer, _seven)
    expect(attempt.value == 7, "the function must work before its cleanup counts: "
                               f"exit_code_of(lambda: 7) returned {attempt.value!r}")
    expect_clean(attempt)


# --- 00.describe_status ---------------------------------------------------------------

DESCRIBE = Exercise("00.describe_status", "Decode a wait status")


def _expect_descriptions(answer, cases) -> None:
    for fn, args, what in cases:
        status = run(fn, *args, show=False).wait_status
        want = (f"exited with code {os.waitstatus_to_exitcode(status)}"
                if os.WIFEXITED(status) else f"killed by {signal.Signals(os.WTERMSIG(status)).name}")
        got = call(answer, status).value
        expect(isinstance(got, str) and got.strip() == want,
               f"for status {status} ({status:#06x}), from {what}, expected {want!r}, "
               f"got {got!r}")


@DESCRIBE.check("normal exits", hint="os.WIFEXITED(status) tells; os.WEXITSTATUS(status) "
                                     "gives the code.")
def _(answer):
    _expect_descriptions(answer, [(os._exit, (0,), "a child that called os._exit(0)"),
                                  (os._exit, (3,), "a child that called os._exit(3)"),
                                  (os._exit, (255,), "a child that called os._exit(255)")])


@DESCRIBE.check("deaths by a signal", hint="os.WIFSIGNALED(status) tells; os.WTERMSIG(status) "
                                           "gives the number, signal.Signals(n).name its name.")
def _(answer):
    _expect_descriptions(answer, [(_die_by, (signal.SIGKILL,), "a child killed by SIGKILL"),
                                  (_die_by, (signal.SIGTERM,), "a child killed by SIGTERM"),
                                  (_die_by, (signal.SIGSEGV,), "a child that read address 0")])


@DESCRIBE.check("exit code 1 and signal 1 are told apart",
                hint="Both contain a 1 somewhere: look at which byte of the status holds it.")
def _(answer):
    _expect_descriptions(answer, [(os._exit, (1,), "a child that called os._exit(1)"),
                                  (_die_by, (signal.SIGHUP,), "a child killed by SIGHUP")])


# --- 00.reap_all ----------------------------------------------------------------------

REAP_ALL = Exercise("00.reap_all", "Start n children and reap every one")


@REAP_ALL.check("three children exit with codes 0, 1 and 2",
                hint="Fork in a loop; child i calls os._exit(i); then os.waitpid each pid.")
def _(answer):
    got = call(answer, 3).value
    expect(isinstance(got, dict), f"expected a dict {{pid: exit code}}, got {got!r}")
    expect(sorted(got.values()) == [0, 1, 2],
           f"expected exit codes 0, 1, 2 (one per child), got {sorted(got.values())}")
    expect(len(set(got)) == 3 and answer_pid() not in got,
           f"expected three different child pids, got {sorted(got)}")


@REAP_ALL.check("zero children give an empty dict", hint="range(0) is empty: no fork at all.")
def _(answer):
    got = call(answer, 0).value
    expect(got == {}, f"reap_all(0) returned {got!r}, expected {{}}")


@REAP_ALL.check("twelve children, all reaped: no zombie, no stray child",
                hint="Wait for every pid you forked; a child that is never waited for "
                     "stays a zombie.")
def _(answer):
    attempt = call(answer, 12)
    got = attempt.value
    expect(sorted(got.values()) == list(range(12)), f"expected codes 0..11, got {got!r}")
    expect_clean(attempt)


# --- 00.run_program -------------------------------------------------------------------

RUN_PROGRAM = Exercise("00.run_program", "fork, exec and wait: run a program")


@RUN_PROGRAM.check("true gives 0 and false gives 1",
                   hint="In the child: os.execvp(argv[0], argv). In the parent: waitpid.")
def _(answer):
    for argv, want in ((["true"], 0), (["false"], 1)):
        got = call(answer, argv).value
        expect(got == want, f"run_program({argv}) returned {got!r}, expected {want}")


@RUN_PROGRAM.check("the program's own exit code comes back",
                   hint="Return os.waitstatus_to_exitcode(status).")
def _(answer):
    got = call(answer, ["sh", "-c", "exit 7"]).value
    expect(got == 7, f"run_program(['sh', '-c', 'exit 7']) returned {got!r}, expected 7")


@RUN_PROGRAM.check("a missing program gives 127 and its child still ends",
                   hint="exec raises FileNotFoundError in the child: catch it and "
                        "os._exit(127), as a shell does.")
def _(answer):
    got = call(answer, ["labkit-no-such-program"]).value
    expect(got == 127, f"for a program that does not exist you returned {got!r}, "
                       "expected 127")


@RUN_PROGRAM.check("no zombie and no open descriptor is left behind",
                   hint="Every fork needs its waitpid.")
def _(answer):
    attempt = call(answer, ["false"])
    expect(attempt.value == 1, "the function must work before its cleanup counts: "
                               f"run_program(['false']) returned {attempt.value!r}")
    expect_clean(attempt)
