"""Checks for the exercises of lesson 00 (processes: fork, exec, wait).

Every status an answer decodes comes from a real process (an exit, a death by
a signal, a stop seen through ``WUNTRACED``), except a core dump: whether the
kernel writes one depends on the machine (``core_pattern``, the core-size
limit), so that status is built with the kernel's layout and checked against
``os.WCOREDUMP`` here. Answers that fork are watched from the inside: the
pids ``os.fork`` returned are recorded, so a dict keyed by anything else fails.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
from collections.abc import Callable

from ..checking import Attempt, CheckFailed, Exercise, answer_pid, call, expect, expect_clean
from ..processes import run

# --- helpers the student's children run -----------------------------------------------


def _seven() -> int:
    return 7


def _seven_slowly() -> int:
    time.sleep(0.3)  # long enough that a parent which does not really wait returns first
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


def _stopped_status(signum: int) -> int:
    """The status ``waitpid(pid, WUNTRACED)`` gives for a real program stopped by ``signum``.

    ``posix_spawn`` resets ``signum`` to its default action in the program, in case
    this process inherited it as ignored; the program is killed and reaped at the end.
    """
    pid = os.posix_spawnp("sleep", ["sleep", "30"], os.environ, setsigdef=(signum,))
    try:
        os.kill(pid, signum)
        return os.waitpid(pid, os.WUNTRACED)[1]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _core_dumped_status(signum: int) -> int:
    """The status of a process that ``signum`` killed and that dumped core (bit 7 set)."""
    status = signum | 0x80
    assert os.WIFSIGNALED(status) and os.WCOREDUMP(status) and os.WTERMSIG(status) == signum
    return status


def _with_forks_recorded(answer: Callable, *args: object) -> tuple[object, list[int]]:
    """Call the answer and return its value and the pids ``os.fork`` returned to it."""
    forked: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    os.fork = recording_fork
    try:
        return answer(*args), forked
    finally:
        os.fork = real_fork


def _in_order(values) -> list:
    """``values`` sorted, numbers numerically, whatever else the answer put there after them."""
    return sorted(values, key=lambda v: (type(v).__name__ != "int", v if type(v) is int else 0,
                                         repr(v)))


def _raw(got: object, want: int) -> str:
    """A note if ``got`` is the raw wait status of exit code ``want``, else ''."""
    if isinstance(got, int) and want and got == want << 8:
        return (f" ({got} is the raw wait status of exit code {want}: the code sits in its "
                "second byte and must be taken out)")
    return ""


def _leftover_note(attempt: Attempt) -> str:
    running = [p for p in attempt.problems if "still running when the function returned" in p]
    return (" Your function returned while its child was still running: the parent must "
            "block until the child has ended.") if running else ""


# --- 00.exit_code ---------------------------------------------------------------------

EXIT_CODE = Exercise("00.exit_code", "Return a value through the exit status")


@EXIT_CODE.check("a function returning 7 gives 7, even when it takes a while",
                 hint="The parent has to block until the child has ended, then decode the "
                      "status it gets back: the number is not the exit code itself.",
                 concept="A child's exit code reaches its parent only through wait: the "
                         "kernel keeps it, packed into a wait status, until the parent asks.")
def _(answer):
    attempt = call(answer, _seven_slowly)
    got = attempt.value
    expect(got == 7, f"for a function that returns 7 after 0.3 s you returned {got!r}, "
                     f"expected 7.{_raw(got, 7)}{_leftover_note(attempt)}")


@EXIT_CODE.check("0 and 255, the ends of the range, come back too",
                 hint="An exit status keeps only 8 bits: 0 to 255 fit exactly.",
                 concept="Only the low 8 bits of the value passed to _exit survive; the os.W... "
                         "functions give them back unchanged.")
def _(answer):
    for fn, want in ((_zero, 0), (_max, 255)):
        got = call(answer, fn).value
        expect(got == want, f"for a function returning {want} you returned {got!r}"
                            f"{_raw(got, want)}")


@EXIT_CODE.check("the function runs in a child, not in your process",
                 hint="fork returns twice; only one of the two processes may call fn.",
                 concept="After fork, the return value tells the child (0) from the parent "
                         "(the child's pid).")
def _(answer):
    got = call(answer, _where_am_i).value
    expect(got == 42, "fn ran in the process that called exit_code_of, not in a child")


@EXIT_CODE.check("a function that raises gives exit code 1, and its child still ends",
                 hint="Whatever fn does, even raising, the child's last act must be to "
                      "exit; a try with a finally guarantees that.",
                 concept="A forked child that lets an exception escape returns into the "
                         "parent's code and carries on as a second copy of the program.")
def _(answer):
    got = call(answer, _raises).value
    expect(got == 1, f"for a function that raises you returned {got!r}, expected 1")


@EXIT_CODE.check("no zombie and no open descriptor is left behind",
                 hint="Every fork needs its wait.",
                 concept="An ended child stays a zombie, holding its pid, until its parent "
                         "collects its status.")
def _(answer):
    attempt = call(answer, _seven)
    expect(attempt.value == 7, "the function must work before its cleanup counts: "
                               f"exit_code_of(lambda: 7) returned {attempt.value!r}")
    expect_clean(attempt)


# --- 00.describe_status ---------------------------------------------------------------

DESCRIBE = Exercise("00.describe_status", "Decode a wait status")


def _description(status: int) -> str:
    """What describe_status must return for ``status``."""
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    if os.WIFSTOPPED(status):
        return f"stopped by {signal.Signals(os.WSTOPSIG(status)).name}"
    core = " (core dumped)" if os.WCOREDUMP(status) else ""
    return f"killed by {signal.Signals(os.WTERMSIG(status)).name}{core}"


def _real_status(fn: Callable, *args: object) -> int:
    return run(fn, *args, show=False).wait_status


def _expect_descriptions(answer, cases: list[tuple[int, str]]) -> None:
    for status, what in cases:
        want = _description(status)
        where = f"for status {status} ({status:#06x}), {what},"
        try:
            got = call(answer, status).value
        except CheckFailed as e:
            raise CheckFailed(f"{where} {e}") from None
        expect(isinstance(got, str) and got.strip() == want,
               f"{where} expected {want!r}, got {got!r}")


@DESCRIBE.check("normal exits",
                hint="One os.W... function tells whether the process exited, another takes "
                     "the code out of the status.",
                concept="A wait status packs how a process ended into one integer; the "
                        "os.W... functions are the portable way to read it.")
def _(answer):
    _expect_descriptions(answer, [(_real_status(os._exit, code), f"from a child that called "
                                   f"os._exit({code})") for code in (0, 1, 3, 255)])


@DESCRIBE.check("deaths by a signal, with and without a core dump",
                hint="A process a signal killed has no exit code: ask the status which signal "
                     "it was (named by the signal module's Signals enum) and whether the "
                     "process dumped core.",
                concept="The low 7 bits of a wait status hold the number of the signal that "
                        "killed the process (0 if it exited), bit 7 (0x80) says whether a "
                        "core dump was written, and the exit code sits in the second byte.")
def _(answer):
    _expect_descriptions(answer, [
        (_real_status(_die_by, signal.SIGKILL), "from a child killed by SIGKILL"),
        (_real_status(_die_by, signal.SIGHUP), "from a child killed by SIGHUP (signal 1)"),
        (_real_status(_die_by, signal.SIGSEGV), "from a child that read address 0"),
        (_core_dumped_status(signal.SIGSEGV), "the status of a child killed by SIGSEGV "
                                              "that dumped core"),
        (_core_dumped_status(signal.SIGQUIT), "the status of a child killed by SIGQUIT "
                                              "that dumped core")])


@DESCRIBE.check("stopped processes",
                hint="A stopped child is neither exited nor killed: waitpid reports it only "
                     "when asked (WUNTRACED), and the status has its own os.W... test.",
                concept="A stop status has 0x7f in the low byte and the stopping signal in "
                        "the next one; it is not a death, and the process can be continued.")
def _(answer):
    _expect_descriptions(answer, [
        (run(_stopped_status, sig, show=False).value,
         f"from a program stopped by {sig.name} (seen with waitpid and WUNTRACED)")
        for sig in (signal.SIGSTOP, signal.SIGTSTP)])


# --- 00.reap_all ----------------------------------------------------------------------

REAP_ALL = Exercise("00.reap_all", "Start n children and reap every one")


def _reaped(answer, n: int) -> tuple[Attempt, dict]:
    """Call reap_all(n); check the dict's keys are the pids fork returned, and return it."""
    attempt = call(_with_forks_recorded, answer, n)
    got, forked = attempt.value
    expect(isinstance(got, dict), f"expected a dict {{pid: exit code}}, got {got!r}")
    keys = _in_order(got)
    if forked:
        expect(set(got) == set(forked),
               f"the keys must be the children's pids (what fork returned: {sorted(forked)}), "
               f"got {keys}")
    else:  # fork was called by another name: at least the keys must look like pids
        expect(all(isinstance(k, int) and k > 1 and k != answer_pid() for k in got),
               f"the keys must be the children's pids, got {keys}")
    return attempt, got


@REAP_ALL.check("three children exit with codes 0, 1 and 2",
                hint="First start all the children, then collect each one's status; the "
                     "dict is keyed by what fork gave the parent.",
                concept="fork returns the child's pid to the parent: that pid is how the "
                        "parent names the child when it waits for it.")
def _(answer):
    _, got = _reaped(answer, 3)
    values = _in_order(got.values())
    expect(values == [0, 1, 2], f"expected exit codes 0, 1, 2 (one per child), got {values}"
                                f"{_raw(values[-1] if values else None, 2)}")
    expect(len(got) == 3, f"expected three different child pids, got {sorted(got)}")


@REAP_ALL.check("zero children give an empty dict",
                hint="Zero children means no fork at all.",
                concept="A loop over no children forks nothing and waits for nothing.")
def _(answer):
    got = call(answer, 0).value
    expect(got == {}, f"reap_all(0) returned {got!r}, expected {{}}")


@REAP_ALL.check("twelve children, all reaped: no zombie, no stray child",
                hint="Wait for every child you started, not only one of them; a child that "
                     "is never waited for stays a zombie.",
                concept="Each wait collects one child; n children need n waits.")
def _(answer):
    attempt, got = _reaped(answer, 12)
    values = _in_order(got.values())
    expect(values == list(range(12)), f"expected codes 0..11, got {values}")
    expect_clean(attempt)


# --- 00.run_program -------------------------------------------------------------------

RUN_PROGRAM = Exercise("00.run_program", "fork, exec and wait: run a program")


def _ran(answer, argv: list[str], want: int, why: str = "") -> None:
    got = call(answer, argv).value
    note = _raw(got, want)
    if got == 127 and want != 127:
        note = (" (127 is the code of a program that could not be started: was the program "
                "looked for on the PATH?)")
    expect(got == want, f"run_program({argv}) returned {got!r}, expected {want}{why}{note}")


@RUN_PROGRAM.check("true gives 0 and false gives 1",
                   hint="The child replaces itself with the program (one of the exec "
                        "functions that searches the PATH); the parent waits for it.",
                   concept="exec keeps the process (its pid, its parent) and replaces the "
                           "program it runs, so the parent can wait for it as for any child.")
def _(answer):
    for argv, want in ((["true"], 0), (["false"], 1)):
        _ran(answer, argv, want)


@RUN_PROGRAM.check("the program's own exit code comes back, and it gets every argument",
                   hint="The program must get the whole argument list, its own name "
                        "included as the first item; decode its status as in the first "
                        "exercise.",
                   concept="argv[0] is the program's name as it sees it, the arguments follow "
                           "it in the same list; the exec'd program's exit code travels "
                           "through the same wait status as a Python child's.")
def _(answer):
    _ran(answer, ["sh", "-c", "exit $#", "sh", "a", "b", "c"], 3,
         " (sh -c 'exit $#' exits with the number of arguments it got after the script: "
         "did the program get all of argv?)")
    _ran(answer, ["sh", "-c", "exit 7"], 7)


@RUN_PROGRAM.check("a missing program gives 127 and its child still ends",
                   hint="When exec fails it raises in the child, which must then exit "
                        "with 127, as a shell does, instead of going on.",
                   concept="exec only returns when it failed; the child is then still "
                           "running your Python code.")
def _(answer):
    got = call(answer, ["labkit-no-such-program"]).value
    expect(got == 127, f"for a program that does not exist you returned {got!r}, expected "
                       "127, the code a shell uses for a program it could not start")


@RUN_PROGRAM.check("no zombie and no open descriptor is left behind",
                   hint="Every fork needs its wait.",
                   concept="An ended child stays a zombie, holding its pid, until its parent "
                           "collects its status.")
def _(answer):
    attempt = call(answer, ["false"])
    expect(attempt.value == 1, "the function must work before its cleanup counts: "
                               f"run_program(['false']) returned {attempt.value!r}")
    expect_clean(attempt)


# --- 00.fix_word_counts (debug) --------------------------------------------------------

WORD_COUNTS = Exercise("00.fix_word_counts", "The children that came back",
                       kind="debug")


class _CountedWhere(str):
    """A text whose words number 7 when counted in a child of the answer's process, and 0
    when counted in that process itself: tells where the counting happened."""

    def split(self, *args: object, **kwargs: object) -> list[str]:
        return ["word"] * (7 if os.getpid() != answer_pid() else 0)


def _counts(answer, texts: list) -> tuple[Attempt, list, list[int]]:
    """Call word_counts(texts) with its forks recorded: the attempt, the counts, the pids."""
    attempt = call(_with_forks_recorded, answer, texts)
    got, forked = attempt.value
    expect(isinstance(got, list), f"word_counts({texts!r}) returned {got!r}, expected a list "
                                  "of counts")
    return attempt, got, forked


@WORD_COUNTS.check("three texts give their word counts, in order",
                   hint="Follow one child from its fork to its end: which lines does it run, "
                        "and where does its count go?",
                   concept="fork returns in both processes: whatever the child does not stop "
                           "doing, it does as a second copy of the parent, loops and all.")
def _(answer):
    texts = ["one two three", "four", "", "five six"]
    _, got, _ = _counts(answer, texts)
    want = [3, 1, 0, 2]
    expect(got == want, f"word_counts({texts!r}) returned {got!r}, expected {want}"
                        f"{_raw(got[0] if got else None, 3)}")


@WORD_COUNTS.check("a text that cannot be counted: its child exits with 255, and still ends",
                   hint="What happens to a child whose counting raises? Make its last act "
                        "an exit, whatever happened before.",
                   concept="A child that lets an exception escape returns into the parent's "
                           "code; only an exit in a finally stops every way out.")
def _(answer):
    texts = ["a b", None, "c"]
    _, got, _ = _counts(answer, texts)
    expect(got == [2, 255, 1], f"word_counts(['a b', None, 'c']) returned {got!r}, expected "
                               "[2, 255, 1]: None has no words to count, so its child exits "
                               "with 255")


@WORD_COUNTS.check("one child per text does the counting, not your process",
                   hint="Count the processes the program starts, and ask where each count is "
                        "computed.",
                   concept="Each child does its own share of the work and hands back only its "
                           "result, through its exit status.")
def _(answer):
    texts = [_CountedWhere("x"), _CountedWhere("y"), _CountedWhere("z")]
    _, got, forked = _counts(answer, texts)
    expect(len(forked) == 3, f"for three texts your process forked {len(forked)} children, "
                             "expected three, one per text")
    expect(got == [7, 7, 7], f"got counts {got!r} for texts made to count 7 words in a child "
                             "and 0 in your own process: the counting did not happen in the "
                             "children")


@WORD_COUNTS.check("no zombie, no stray child and nothing left open",
                   hint="Every child that was started is waited for, once.",
                   concept="An ended child stays a zombie until its parent collects its "
                           "status.")
def _(answer):
    attempt, got, _ = _counts(answer, ["a", "b c", "d e f", "", "g"])
    expect(got == [1, 2, 3, 0, 1], "the function must work before its cleanup counts: "
                                   f"it returned {got!r}, expected [1, 2, 3, 0, 1]")
    expect_clean(attempt)
