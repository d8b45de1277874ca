"""Wrong answers to lesson 01 (signals): handlers, coalescing, timers, SIGCHLD, masks."""
from mutants import Mutant

# A correct child body for the reaper mutants that break something else.
_FORK_TASKS = '''
        pids = []
        for task in tasks:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = task()
                finally:
                    os._exit(code)
            pids.append(pid)
'''

MUTANTS = [
    # --- 01.count_usr1 -------------------------------------------------------------------
    Mutant("01.count_usr1", "no_sigterm_handler", '''
def count_usr1():
    count = 0

    def on_usr1(signum, frame):
        nonlocal count
        count += 1

    signal.signal(signal.SIGUSR1, on_usr1)
    while True:
        signal.pause()
''', fault=r"no handler for SIGTERM|not installed a handler for SIGTERM"),
    Mutant("01.count_usr1", "returns_after_the_first_signal", '''
def count_usr1():
    count = 0

    def on_signal(signum, frame):
        nonlocal count
        count += signum == signal.SIGUSR1

    old_usr1 = signal.signal(signal.SIGUSR1, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        signal.pause()
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGTERM, old_term)
    return count
''', fault=r"stopped waiting before SIGTERM came"),
    Mutant("01.count_usr1", "handlers_not_restored", '''
def count_usr1():
    count, done = 0, False

    def on_usr1(signum, frame):
        nonlocal count
        count += 1

    def on_term(signum, frame):
        nonlocal done
        done = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    while not done:
        signal.pause()
    return count
''', fault=r"restore the handlers you replaced"),
    Mutant("01.count_usr1", "busy_wait", '''
def count_usr1():
    count, done = 0, False

    def on_usr1(signum, frame):
        nonlocal count
        count += 1

    def on_term(signum, frame):
        nonlocal done
        done = True

    old_usr1 = signal.signal(signal.SIGUSR1, on_usr1)
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        while not done:
            pass
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGTERM, old_term)
    return count
''', fault=r"busy wait"),
    Mutant("01.count_usr1", "sigterm_counted_too", '''
def count_usr1():
    count, done = 0, False

    def on_signal(signum, frame):
        nonlocal count, done
        count += 1
        done = signum == signal.SIGTERM

    old_usr1 = signal.signal(signal.SIGUSR1, on_signal)
    old_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not done:
            signal.pause()
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGTERM, old_term)
    return count
''', fault=r"SIGTERM was counted too"),
    Mutant("01.count_usr1", "sigterm_handler_exits", '''
import sys

def count_usr1():
    count = 0

    def on_usr1(signum, frame):
        nonlocal count
        count += 1

    def on_term(signum, frame):
        print(count)
        sys.exit(0)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    while True:
        signal.pause()
''', fault=r"never returned: its process exited with code 0"),

    # --- 01.graceful_jobs ----------------------------------------------------------------
    Mutant("01.graceful_jobs", "handler_exits_at_once", '''
import sys

def run_jobs(jobs, pidfile):
    def on_term(signum, frame):
        os.remove(pidfile)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    results = [job() for job in jobs]
    os.remove(pidfile)
    return results
''', fault=r"never returned: its process exited with code 0"),
    Mutant("01.graceful_jobs", "no_sigterm_handler", '''
def run_jobs(jobs, pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    try:
        return [job() for job in jobs]
    finally:
        os.remove(pidfile)
''', fault=r"killed by SIGTERM.*no handler for SIGTERM"),
    Mutant("01.graceful_jobs", "pid_file_kept_after_sigterm", '''
def run_jobs(jobs, pidfile):
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    old = signal.signal(signal.SIGTERM, on_term)
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    results = []
    for job in jobs:
        if stop:
            break
        results.append(job())
    else:
        os.remove(pidfile)
    signal.signal(signal.SIGTERM, old)
    return results
''', fault=r"pid file was not removed"),
    Mutant("01.graceful_jobs", "handler_raises_into_the_job", '''
class _Stop(Exception):
    pass


def run_jobs(jobs, pidfile):
    def on_term(signum, frame):
        raise _Stop()

    old = signal.signal(signal.SIGTERM, on_term)
    results = []
    try:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        for job in jobs:
            results.append(job())
    except _Stop:
        pass
    finally:
        os.remove(pidfile)
        signal.signal(signal.SIGTERM, old)
    return results
''', fault=r"interrupted by SIGTERM and never finished"),
    Mutant("01.graceful_jobs", "previous_handler_not_restored", '''
def run_jobs(jobs, pidfile):
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    results = []
    try:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
        for job in jobs:
            if stop:
                break
            results.append(job())
    finally:
        os.remove(pidfile)
    return results
''', fault=r"put the previous handler back"),
    Mutant("01.graceful_jobs", "parent_pid_in_the_file", '''
def run_jobs(jobs, pidfile):
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    old = signal.signal(signal.SIGTERM, on_term)
    results = []
    try:
        with open(pidfile, "w") as f:
            f.write(str(os.getppid()))
        for job in jobs:
            if stop:
                break
            results.append(job())
    finally:
        os.remove(pidfile)
        signal.signal(signal.SIGTERM, old)
    return results
''', fault=r"from the pid file, expected the pid of the process running your function"),
    Mutant("01.graceful_jobs", "pid_file_left_open", '''
def run_jobs(jobs, pidfile):
    stop = False

    def on_term(signum, frame):
        nonlocal stop
        stop = True

    old = signal.signal(signal.SIGTERM, on_term)
    results = []
    fd = os.open(pidfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(os.getpid()).encode())
        for job in jobs:
            if stop:
                break
            results.append(job())
    finally:
        os.remove(pidfile)
        signal.signal(signal.SIGTERM, old)
    return results
''', fault=r"file descriptor \d+ .*worker\.pid.* was left open"),

    # --- 01.call_with_timeout ------------------------------------------------------------
    Mutant("01.call_with_timeout", "whole_second_alarm", '''
def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(seconds))
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
''', fault=r"rounded down to 0 s cancels the alarm"),
    Mutant("01.call_with_timeout", "alarm_rounded_up", '''
import math

def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    old_delay = signal.alarm(math.ceil(seconds))
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        if old_delay:
            signal.alarm(old_delay)
''', fault=r"armed for longer than the limit"),
    Mutant("01.call_with_timeout", "timer_left_armed", '''
def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.signal(signal.SIGALRM, old)
''', fault=r"a timer was still armed"),
    Mutant("01.call_with_timeout", "running_timer_cancelled", '''
def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
''', fault=r"20 s timer was running before the call; afterwards it had 0.00 s left"),
    Mutant("01.call_with_timeout", "handler_not_restored", '''
def call_with_timeout(fn, seconds):
    def on_alarm(signum, frame):
        raise TimeoutError()

    signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, old_delay, old_interval)
''', fault=r"SIGALRM handler that was there before was not restored"),
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
    Mutant("01.reaper", "one_child_per_signal", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            codes[pid] = os.waitstatus_to_exitcode(status)

    old = signal.signal(signal.SIGCHLD, on_chld)
    try:''' + _FORK_TASKS + '''
        while len(codes) < len(pids):
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGCHLD, old)
    return codes
''', fault=r"a single SIGCHLD for all of them"),
    Mutant("01.reaper", "busy_spin", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = os.waitstatus_to_exitcode(status)

    old = signal.signal(signal.SIGCHLD, on_chld)
    try:''' + _FORK_TASKS + '''
        while len(codes) < len(pids):
            pass
    finally:
        signal.signal(signal.SIGCHLD, old)
    return codes
''', fault=r"busy loop|CPU time"),
    Mutant("01.reaper", "handler_installed_after_forking", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = os.waitstatus_to_exitcode(status)

    try:''' + _FORK_TASKS + '''
        old = signal.signal(signal.SIGCHLD, on_chld)
        on_chld(signal.SIGCHLD, None)          # reap those that ended before the handler
        while len(codes) < len(pids):
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGCHLD, old)
    return codes
''', fault=r"no SIGCHLD handler yet"),
    Mutant("01.reaper", "previous_handler_not_restored", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = os.waitstatus_to_exitcode(status)

    signal.signal(signal.SIGCHLD, on_chld)
    if True:''' + _FORK_TASKS + '''
        while len(codes) < len(pids):
            time.sleep(0.01)
    return codes
''', fault=r"SIGCHLD handler that was there before your function ran was not put back"),
    Mutant("01.reaper", "raw_statuses", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = status

    old = signal.signal(signal.SIGCHLD, on_chld)
    try:''' + _FORK_TASKS + '''
        while len(codes) < len(pids):
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGCHLD, old)
    return codes
''', fault=r"raw wait statuses"),
    Mutant("01.reaper", "child_escapes_when_its_task_raises", '''
def reap_children(tasks):
    codes = {}

    def on_chld(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            codes[pid] = os.waitstatus_to_exitcode(status)

    old = signal.signal(signal.SIGCHLD, on_chld)
    try:
        pids = []
        for task in tasks:
            pid = os.fork()
            if pid == 0:
                os._exit(task())
            pids.append(pid)
        while len(codes) < len(pids):
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGCHLD, old)
    return codes
''', fault=r"returned from your function instead of ending"),

    # --- 01.signal_puzzle ----------------------------------------------------------------
    Mutant("01.signal_puzzle", "signals_in_the_order_printed", '''
def choose_signals():
    return ["SIGHUP", "SIGUSR2", "SIGTERM", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
            "SIGINT"]
''', fault=r"line 6 is 'bye', expected 'usr1'"),
    Mutant("01.signal_puzzle", "ends_with_sigkill", '''
def choose_signals():
    return ["SIGHUP", "SIGUSR2", "SIGTERM", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
            "SIGTERM", "SIGKILL"]
''', fault=r"it stopped after 8 lines; line 9 should be 'bye'"),
    Mutant("01.signal_puzzle", "gate_opened_first", '''
def choose_signals():
    return ["SIGTERM", "SIGHUP", "SIGUSR2", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
            "SIGTERM", "SIGINT"]
''', fault=r"line 1 is 'open', expected 'hup'"),
    Mutant("01.signal_puzzle", "a_name_that_is_no_signal", '''
def choose_signals():
    return ["SIGHUP", "SIGUSR2", "SIGTERM", "SIGUSR1", "SIGTERM", "SIGUSR1", "SIGUSR2",
            "SIGTERM", "SIGBYE"]
''', fault=r"'SIGBYE' is not a signal on this system$"),
    Mutant("01.signal_puzzle", "one_string_not_a_list", '''
def choose_signals():
    return "SIGUSR2 SIGHUP SIGTERM SIGUSR1 SIGTERM SIGUSR2 SIGUSR1 SIGTERM SIGINT"
''', fault=r"expected a list of signals"),
]
