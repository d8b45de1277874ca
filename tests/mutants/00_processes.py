"""Wrong answers to lesson 00 (processes): fork, exit statuses, wait, exec."""
from mutants import UNREAPED, Mutant


def _exit_code_of(first_code: int = 1, handle: str = "",
                  result: str = "return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])"
                  ) -> str:
    """The solution's exit_code_of with its child's error handling or its result replaced."""
    return f'''
def exit_code_of(fn):
    pid = os.fork()
    if pid == 0:
        code = {first_code}
        try:
            code = fn()
        {handle}
        finally:
            os._exit(code)
    {result}
'''


def _run_program(exec_call: str = "os.execvp(argv[0], argv)",
                 result: str = "os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])") -> str:
    """The solution's run_program with its exec call or its result replaced."""
    return f'''
def run_program(argv):
    pid = os.fork()
    if pid == 0:
        try:
            {exec_call}
        finally:
            os._exit(127)
    return {result}
'''


def _reap_all(first: int = 0, child_exit: str = "os._exit(i)",
              result: str = "{pid: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) "
                            "for pid in pids}") -> str:
    """A reap_all that forks every child first, with one of its parts replaced."""
    return f'''
import sys

def reap_all(n):
    pids = []
    for i in range({first}, n + {first}):
        pid = os.fork()
        if pid == 0:
            {child_exit}
        pids.append(pid)
    return {result}
'''


def _count_in_child(child: str) -> str:
    """The fixed word_counts program with the child's part of count_in_child replaced."""
    return f'''
import sys

def count_in_child(text):
    pid = os.fork()
    if pid == 0:
        {child}
    return pid
'''


MUTANTS = [
    # --- 00.exit_code --------------------------------------------------------------------
    Mutant("00.exit_code", "runs_fn_in_the_parent", '''
def exit_code_of(fn):
    return fn()
''', fault=r"ran in the process that called exit_code_of, not in a child"),
    Mutant("00.exit_code", "child_escapes_when_fn_raises", '''
def exit_code_of(fn):
    pid = os.fork()
    if pid == 0:
        os._exit(fn())
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
''', fault=r"returned from your function instead of ending"),
    Mutant("00.exit_code", "result_through_a_pipe_and_no_wait", '''
def exit_code_of(fn):
    r, w = os.pipe()
    if os.fork() == 0:
        try:
            os.write(w, bytes([fn()]))
        finally:
            os._exit(0)
    code = os.read(r, 1)
    os.close(r)
    os.close(w)
    return code[0] if code else 1
''', hangs=True, fault=r"nobody waited for it|a pipe end still open"),
    Mutant("00.exit_code", "raw_status_returned",
           _exit_code_of(result="return os.waitpid(pid, 0)[1]"), fault=r"raw wait status"),
    Mutant("00.exit_code", "waitpid_that_does_not_wait", _exit_code_of(
        result="return os.waitstatus_to_exitcode(os.waitpid(pid, os.WNOHANG)[1])"),
        fault=r"returned while its child was still running"),
    Mutant("00.exit_code", "exception_gives_exit_code_0",
           _exit_code_of(first_code=0, handle="except Exception:\n            pass"),
           fault=r"function that raises you returned 0, expected 1"),

    # --- 00.describe_status --------------------------------------------------------------
    Mutant("00.describe_status", "signal_number_not_name", '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"killed by {os.WTERMSIG(status)}"
''', fault=r"got 'killed by 9'"),
    Mutant("00.describe_status", "bit_arithmetic", '''
def describe_status(status):
    if status & 0xff == 0:
        return f"exited with code {status >> 8}"
    return f"killed by {signal.Signals(status & 0xff).name}"
''', fault=r"dumped core.*raised ValueError"),
    Mutant("00.describe_status", "careful_bit_arithmetic", '''
def describe_status(status):
    if status & 0x7f == 0:
        return f"exited with code {(status >> 8) & 0xff}"
    return f"killed by {signal.Signals(status & 0x7f).name}"
''', fault=r"stopped by SIGSTOP"),
    Mutant("00.describe_status", "core_dump_ignored", '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    if os.WIFSTOPPED(status):
        return f"stopped by {signal.Signals(os.WSTOPSIG(status)).name}"
    return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
''', fault=r"dumped core, expected 'killed by SIGSEGV \(core dumped\)'"),
    Mutant("00.describe_status", "stop_taken_for_a_death", '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    name = signal.Signals(os.WTERMSIG(status)).name
    return f"killed by {name}" + (" (core dumped)" if os.WCOREDUMP(status) else "")
''', fault=r"program stopped by SIGSTOP.*raised ValueError"),
    Mutant("00.describe_status", "folded_exit_code", '''
def describe_status(status):
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with code {code}"
    return f"killed by {signal.Signals(-code).name}"
''', fault=r"stopped by SIGSTOP.*raised ValueError|dumped core"),
    Mutant("00.describe_status", "shift_only", '''
def describe_status(status):
    return f"exited with code {status >> 8}"
''', fault=r"killed by SIGKILL', got 'exited with code 0'"),
    Mutant("00.describe_status", "sign_of_the_exit_code_dropped", '''
def describe_status(status):
    return f"exited with code {abs(os.waitstatus_to_exitcode(status))}"
''', fault=r"expected 'killed by SIGKILL', got 'exited with code 9'"),
    Mutant("00.describe_status", "stop_signal_read_as_a_death", '''
def describe_status(status):
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    if os.WIFSTOPPED(status):
        return "stopped by SIGSTOP"
    name = signal.Signals(os.WTERMSIG(status)).name
    return f"killed by {name}" + (" (core dumped)" if os.WCOREDUMP(status) else "")
''', fault=r"expected 'stopped by SIGTSTP', got 'stopped by SIGSTOP'"),

    # --- 00.reap_all ---------------------------------------------------------------------
    Mutant("00.reap_all", "waits_only_for_the_last_child", '''
def reap_all(n):
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(i)
        pids.append(pid)
    codes = {pid: i for i, pid in enumerate(pids)}
    if pids:
        os.waitpid(pids[-1], 0)
    return codes
''', fault=UNREAPED),
    Mutant("00.reap_all", "keyed_by_child_number", _reap_all(
        result="{i: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) "
               "for i, pid in enumerate(pids)}"),
        fault=r"keys must be the children's pids"),
    Mutant("00.reap_all", "raw_statuses", _reap_all(result="{pid: os.waitpid(pid, 0)[1] "
                                                           "for pid in pids}"),
           fault=r"raw wait status"),
    Mutant("00.reap_all", "sys_exit_in_the_child", _reap_all(child_exit="sys.exit(i)"),
           fault=r"returned from your function instead of ending.*os._exit"),
    Mutant("00.reap_all", "codes_counted_from_one", _reap_all(first=1),
           fault=r"expected exit codes 0, 1, 2 \(one per child\), got \[1, 2, 3\]"),

    # --- 00.run_program ------------------------------------------------------------------
    Mutant("00.run_program", "exec_without_fork", '''
def run_program(argv):
    os.execvp(argv[0], argv)
''', fault=r"before your function returned"),
    Mutant("00.run_program", "failed_exec_escapes", '''
def run_program(argv):
    pid = os.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
''', fault=r"returned from your function instead of ending"),
    Mutant("00.run_program", "no_path_search", _run_program(exec_call="os.execv(argv[0], argv)"),
           fault=r"returned 127, expected 0.*PATH"),
    Mutant("00.run_program", "arguments_dropped",
           _run_program(exec_call="os.execvp(argv[0], argv[:1])"),
           fault=r"did the program get all of argv"),
    Mutant("00.run_program", "missing_program_exits_1", '''
def run_program(argv):
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
''', fault=r"does not exist you returned 1, expected 127"),
    Mutant("00.run_program", "raw_status_returned", _run_program(result="os.waitpid(pid, 0)[1]"),
           fault=r"raw wait status"),
    # --- 00.fix_word_counts (debug) --------------------------------------------------------
    Mutant("00.fix_word_counts", "given_child_returns_its_count",
           _count_in_child("return len(text.split())"),
           fault=r"returned from your function instead of ending"),
    Mutant("00.fix_word_counts", "child_calls_sys_exit",
           _count_in_child("sys.exit(len(text.split()))"),
           fault=r"returned from your function instead of ending"),
    Mutant("00.fix_word_counts", "exit_without_finally",
           _count_in_child("os._exit(len(text.split()))"),
           fault=r"returned from your function instead of ending"),
    Mutant("00.fix_word_counts", "parent_counts_itself", _count_in_child("os._exit(0)") + '''
def word_counts(texts):
    for pid in [count_in_child(text) for text in texts]:
        os.waitpid(pid, 0)
    return [len(text.split()) if isinstance(text, str) else 255 for text in texts]
''', fault=r"counting did not happen in the children"),
    Mutant("00.fix_word_counts", "raw_status_kept", '''
def word_counts(texts):
    return [os.waitpid(pid, 0)[1] for pid in [count_in_child(text) for text in texts]]
''', fault=r"raw wait status"),
]


# --- 00.fork_puzzle: wrong answers to each student's own puzzle --------------------------
# Each reads the right answer from the bank and spoils it as a student would: the puzzle
# differs from one user to the next, so no fixed answer can be wrong for every one of them.


def _fork_puzzle(count: str = "int(count)", letters: str = "letters",
                 answer: str = 'my_puzzle("00.fork_puzzle").puzzle.answer') -> str:
    return f'''
from labkit.puzzle_student import my_puzzle, puzzle_of

def fork_puzzle_answer():
    count, *letters = {answer}.split()
    return {count}, {letters}
'''


_NEIGHBOURS = ('next(theirs for theirs in (puzzle_of("00.fork_puzzle", f"neighbour{i}")'
               '.puzzle.answer for i in range(50)) '
               'if theirs != my_puzzle("00.fork_puzzle").puzzle.answer)')

MUTANTS += [
    Mutant("00.fork_puzzle", "one_line_too_many", _fork_puzzle(count="int(count) + 1"),
           fault=r"your line count \(\d+\) is not what a real run of your own puzzle"),
    Mutant("00.fork_puzzle", "an_impossible_output_chosen",
           _fork_puzzle(letters='letters + [x for x in "ABCD" if x not in letters][:1]'),
           fault=r"you chose an output that your own puzzle's program can never print"),
    Mutant("00.fork_puzzle", "a_possible_output_left_out", _fork_puzzle(letters="letters[1:]"),
           fault=r"you left out an output that your own puzzle's program can print"),
    Mutant("00.fork_puzzle", "another_students_answer", _fork_puzzle(answer=_NEIGHBOURS),
           fault=r"of your own puzzle|your own puzzle's program"),
    Mutant("00.fork_puzzle", "count_as_text", _fork_puzzle(count="count"),
           fault=r"the line count must be a whole number"),
]
