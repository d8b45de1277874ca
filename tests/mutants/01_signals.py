"""Wrong answers to lesson 01 (signals): handlers, coalescing, timers, SIGCHLD, masks."""
from mutants import Mutant

_REAP_READY = """
        while True:                          # every child that has ended, none that runs
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = {store}"""

_CHILD = """
                code = 1
                try:
                    code = task()
                finally:
                    os._exit(code)"""


def _count_usr1(on_term: str = "done = True", install_term: str = "signal.signal("
                "signal.SIGTERM, on_term)", waiting: str = "while not done:\n            "
                "signal.pause()", restore: str = "signal.signal(signal.SIGUSR1, old_usr1)\n"
                "        signal.signal(signal.SIGTERM, old_term)") -> str:
    """The solution's count_usr1 with its SIGTERM handling, its wait or its restore replaced."""
    return f"""
import sys

def count_usr1():
    count, done = 0, False

    def on_usr1(signum, frame):
        nonlocal count
        count += 1

    def on_term(signum, frame):
        nonlocal count, done
        {on_term}

    old_usr1 = signal.signal(signal.SIGUSR1, on_usr1)
    old_term = {install_term}
    try:
        {waiting}
    finally:
        {restore}
    return count
"""


def _run_jobs(on_term: str = "stop = True", install: str = "signal.signal(signal.SIGTERM, "
              "on_term)", write_pid: str = 'with open(pidfile, "w") as f:\n            '
              "f.write(str(os.getpid()))", check: str = "if stop:\n                break",
              handle: str = "", cleanup: str = "os.remove(pidfile)\n        "
              "signal.signal(signal.SIGTERM, old)") -> str:
    """The solution's run_jobs with one of its parts replaced."""
    return f"""
import sys


class _Stop(Exception):
    pass


def run_jobs(jobs, pidfile):
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        {on_term}

    old = {install}
    results = []
    try:
        {write_pid}
        for job in jobs:
            {check}
            results.append(job())
    {handle}
    finally:
        {cleanup}
    return results
"""


def _with_timer(arm: str = "signal.setitimer(signal.ITIMER_REAL, seconds)",
                disarm: str = "signal.setitimer(signal.ITIMER_REAL, 0)",
                restore: str = "signal.signal(signal.SIGALRM, old)") -> str:
    """A call_with_timeout that forgets any timer already running, with its timer calls
    or its handler's restore replaced."""
    return f"""
import math

def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    {arm}
    try:
        return fn()
    finally:
        {disarm}
        {restore}
"""


def _choose(names: str) -> str:
    """A puzzle answer sending these signals ("HUP USR2" sends SIGHUP, then SIGUSR2)."""
    return f"def choose_signals():\n    return {['SIG' + n for n in names.split()]!r}\n"


def _reaper(handler: str = _REAP_READY, store: str = "os.waitstatus_to_exitcode(status)",
            child: str = _CHILD, wait: str = "time.sleep(0.01)", install: str = "first",
            restore: bool = True) -> str:
    """The solution's reap_children with one of its parts replaced.

    ``install`` is "first" (before any fork, the right place) or "after" (once every
    child is forked; the handler is then also called once, by hand).
    """
    install_line = "old = signal.signal(signal.SIGCHLD, on_chld)"
    return f"""
def reap_children(tasks):
    codes = {{}}

    def on_chld(signum, frame):{handler.format(store=store)}

    {install_line if install != "after" else "old = signal.getsignal(signal.SIGCHLD)"}
    try:
        pids = []
        for task in tasks:
            pid = os.fork()
            if pid == 0:{child}
            pids.append(pid)
        {install_line + "; on_chld(0, None)" if install == "after" else "pass"}
        while len(codes) < len(pids):
            {wait}
    finally:
        {"signal.signal(signal.SIGCHLD, old)" if restore else "pass"}
    return codes
"""


def _exit_codes(disposition: str = "", result: str = "p.wait()") -> str:
    """exit_codes as given, with SIGCHLD's disposition set first (or not) and what it returns
    for each command replaced."""
    return f'''
def exit_codes(commands):
    {disposition}
    running = [subprocess.Popen(argv) for argv in commands]
    return [{result} for p in running]
'''


MUTANTS = [
    # --- 01.count_usr1 -------------------------------------------------------------------
    Mutant("01.count_usr1", "no_sigterm_handler",
           _count_usr1(install_term="signal.getsignal(signal.SIGTERM)",
                       waiting="while True:\n            signal.pause()"),
           fault=r"no handler for SIGTERM|not installed a handler for SIGTERM"),
    Mutant("01.count_usr1", "returns_after_the_first_signal",
           _count_usr1(waiting="signal.pause()"),
           fault=r"stopped waiting before SIGTERM came"),
    Mutant("01.count_usr1", "handlers_not_restored", _count_usr1(restore="pass"),
           fault=r"restore the handlers you replaced"),
    Mutant("01.count_usr1", "busy_wait", _count_usr1(waiting="while not done:\n            pass"),
           fault=r"busy wait"),
    Mutant("01.count_usr1", "sigterm_counted_too",
           _count_usr1(on_term="count += 1\n        done = True"),
           fault=r"SIGTERM was counted too"),
    Mutant("01.count_usr1", "sigterm_handler_exits", _count_usr1(on_term="sys.exit(0)"),
           fault=r"never returned: its process exited with code 0"),

    # --- 01.graceful_jobs ----------------------------------------------------------------
    Mutant("01.graceful_jobs", "handler_exits_at_once",
           _run_jobs(on_term="sys.exit(0)", check="pass"),
           fault=r"never returned: its process exited with code 0"),
    Mutant("01.graceful_jobs", "no_sigterm_handler",
           _run_jobs(install="signal.getsignal(signal.SIGTERM)", check="pass"),
           fault=r"killed by SIGTERM.*no handler for SIGTERM"),
    Mutant("01.graceful_jobs", "pid_file_kept_after_sigterm", _run_jobs(
        cleanup="signal.signal(signal.SIGTERM, old)\n        if not stop:\n"
                "            os.remove(pidfile)"),
        fault=r"pid file was not removed"),
    Mutant("01.graceful_jobs", "handler_raises_into_the_job",
           _run_jobs(on_term="raise _Stop()", check="pass",
                     handle="except _Stop:\n        pass"),
           fault=r"interrupted by SIGTERM and never finished"),
    Mutant("01.graceful_jobs", "previous_handler_not_restored",
           _run_jobs(cleanup="os.remove(pidfile)"), fault=r"put the previous handler back"),
    Mutant("01.graceful_jobs", "parent_pid_in_the_file", _run_jobs(
        write_pid='with open(pidfile, "w") as f:\n            f.write(str(os.getppid()))'),
        fault=r"from the pid file, expected the pid of the process running your function"),
    Mutant("01.graceful_jobs", "pid_file_left_open", _run_jobs(
        write_pid="fd = os.open(pidfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
                  "        os.write(fd, str(os.getpid()).encode())"),
        fault=r"file descriptor \d+ .*worker\.pid.* was left open"),

    # --- 01.call_with_timeout ------------------------------------------------------------
    Mutant("01.call_with_timeout", "whole_second_alarm", _with_timer(
        arm="signal.alarm(int(seconds))", disarm="signal.alarm(0)"),
        fault=r"rounded down to 0 s cancels the alarm"),
    Mutant("01.call_with_timeout", "alarm_rounded_up", _with_timer(
        arm="signal.alarm(math.ceil(seconds))", disarm="signal.alarm(0)"),
        fault=r"armed for longer than the limit"),
    Mutant("01.call_with_timeout", "timer_left_armed", _with_timer(disarm="pass"),
           fault=r"a timer was still armed"),
    Mutant("01.call_with_timeout", "running_timer_cancelled", _with_timer(),
           fault=r"20 s timer was running before the call; afterwards it had 0.00 s left"),
    Mutant("01.call_with_timeout", "handler_not_restored", _with_timer(
        arm="old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)",
        disarm="signal.setitimer(signal.ITIMER_REAL, old_delay, old_interval)",
        restore="pass"),
        fault=r"SIGALRM handler that was there before was not restored"),
    Mutant("01.call_with_timeout", "handler_only_notes_the_alarm", '''
def call_with_timeout(fn, seconds):
    fired = False

    def on_alarm(signum, frame):
        nonlocal fired
        fired = True

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        value = fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if fired:
        raise TimeoutError()
    return value
''', fault=r"fn was still running after 3 s: nothing interrupted it"),
    Mutant("01.call_with_timeout", "errors_of_fn_become_timeouts", '''
def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    except Exception:
        raise TimeoutError(f"fn failed or took more than {seconds} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            signal.setitimer(signal.ITIMER_REAL,
                             max(old_delay - (time.monotonic() - started), 0.001), old_interval)
''', fault=r"fn raised ValueError.*your function gave TimeoutError"),

    # --- 01.reaper -----------------------------------------------------------------------
    Mutant("01.reaper", "one_child_per_signal", _reaper(handler="""
        pid, status = os.waitpid(-1, os.WNOHANG)     # one child, though many may have ended
        if pid:
            codes[pid] = {store}"""), fault=r"a single SIGCHLD for all of them"),
    Mutant("01.reaper", "busy_spin", _reaper(wait="pass"), fault=r"busy loop|CPU time"),
    Mutant("01.reaper", "handler_installed_after_forking", _reaper(install="after"),
           fault=r"no SIGCHLD handler yet"),
    Mutant("01.reaper", "previous_handler_not_restored", _reaper(restore=False),
           fault=r"SIGCHLD handler that was there before your function ran was not put back"),
    Mutant("01.reaper", "main_code_reaps", _reaper(handler="""
        pass                                         # the main code reaps instead""",
        wait="codes.update((pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])) "
             "for pid in pids)"),
        fault=r"outside the SIGCHLD handler"),
    Mutant("01.reaper", "raw_statuses", _reaper(store="status"), fault=r"raw wait statuses"),
    Mutant("01.reaper", "child_escapes_when_its_task_raises",
           _reaper(child="\n                os._exit(task())"),
           fault=r"returned from your function instead of ending"),

    # --- 01.signal_puzzle ----------------------------------------------------------------
    Mutant("01.signal_puzzle", "signals_in_the_order_printed",
           _choose("HUP USR2 TERM USR1 TERM USR1 USR2 INT"),
           fault=r"line 6 is 'bye', expected 'usr1'"),
    Mutant("01.signal_puzzle", "ends_with_sigkill",
           _choose("HUP USR2 TERM USR1 TERM USR1 USR2 TERM KILL"),
           fault=r"it stopped after 8 lines; line 9 should be 'bye'"),
    Mutant("01.signal_puzzle", "gate_opened_first",
           _choose("TERM HUP USR2 USR1 TERM USR1 USR2 TERM INT"),
           fault=r"line 1 is 'open', expected 'hup'"),
    Mutant("01.signal_puzzle", "a_name_that_is_no_signal",
           _choose("HUP USR2 TERM USR1 TERM USR1 USR2 TERM BYE"),
           fault=r"'SIGBYE' is not a signal on this system$"),
    Mutant("01.signal_puzzle", "one_string_not_a_list", '''
def choose_signals():
    return "SIGUSR2 SIGHUP SIGTERM SIGUSR1 SIGTERM SIGUSR2 SIGUSR1 SIGTERM SIGINT"
''', fault=r"expected a list of signals"),
    # --- 01.fix_exit_codes (debug) ---------------------------------------------------------
    Mutant("01.fix_exit_codes", "given_sigchld_ignored",
           _exit_codes("signal.signal(signal.SIGCHLD, signal.SIG_IGN)"),
           fault=r"SIGCHLD was set to SIG_IGN"),
    Mutant("01.fix_exit_codes", "ignored_then_restored", '''
def exit_codes(commands):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        running = [subprocess.Popen(argv) for argv in commands]
        return [p.wait() for p in running]
    finally:
        signal.signal(signal.SIGCHLD, old)
''', fault=r"SIGCHLD was set to SIG_IGN"),
    Mutant("01.fix_exit_codes", "default_set_for_good",
           _exit_codes("signal.signal(signal.SIGCHLD, signal.SIG_DFL)"),
           fault=r"SIGCHLD was set to SIG_DFL instead"),
    Mutant("01.fix_exit_codes", "raw_statuses", _exit_codes(result="os.waitpid(p.pid, 0)[1]"),
           fault=r"raw wait status"),
    Mutant("01.fix_exit_codes", "returncode_without_wait", _exit_codes(result="p.returncode"),
           fault=r"returned \[None"),
]


# --- 01.signal_output: wrong answers to each student's own puzzle -------------------------
# Each reads the right letter from the bank and spoils it as a student would (the puzzle
# differs from one user to the next, so no fixed letter is wrong for every one of them).


def _signal_output(letter: str) -> str:
    return f'''
from labkit.puzzle_student import my_puzzle, puzzle_of

def signal_output_answer():
    mine = my_puzzle("01.signal_output").puzzle
    return {letter}
'''


MUTANTS += [
    Mutant("01.signal_output", "another_output",
           _signal_output('next(x for x in "ABCD" if x != mine.answer)'),
           fault=r"is not what a real run of your own puzzle's program printed"),
    Mutant("01.signal_output", "another_students_answer", _signal_output(
        'next(theirs for theirs in (puzzle_of("01.signal_output", f"neighbour{i}").puzzle'
        '.answer for i in range(50)) if theirs != mine.answer)'),
           fault=r"your own puzzle's program"),
    Mutant("01.signal_output", "the_output_instead_of_its_letter",
           _signal_output('mine.choices["ABCD".index(mine.answer)]'),
           fault=r"expected one letter"),
    Mutant("01.signal_output", "every_letter_that_looks_possible",
           _signal_output('"A, " + mine.answer'), fault=r"expected one letter"),
    Mutant("01.signal_output", "a_letter_not_offered", _signal_output('"Z"'),
           fault=r"must be among A, B"),
]
