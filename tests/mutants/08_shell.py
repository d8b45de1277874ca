"""Wrong answers to lesson 08 (the shell): pipes, redirection, groups, the terminal, SIGCHLD.

Each mutant is the solution's ``run_child`` or ``shell`` with one mistake students make,
made by replacing one snippet of the solution's own source (a snippet that is no longer
there fails loudly, so the mutants follow the solution when it changes).
"""
from pathlib import Path

import nbformat

from mutants import Mutant

_NOTEBOOK = Path(__file__).resolve().parents[2] / "solutions" / "08_shell.ipynb"


def _solution(name: str) -> str:
    """The solution's ``def name(...)`` cell, without the solution markers."""
    for cell in nbformat.read(_NOTEBOOK, as_version=4).cells:
        if cell.cell_type == "code" and cell.source.startswith(f"def {name}("):
            return "\n".join(line for line in cell.source.splitlines()
                             if "### BEGIN SOLUTION" not in line
                             and "### END SOLUTION" not in line) + "\n"
    raise LookupError(f"no answer cell defines {name}() in {_NOTEBOOK.name}")


def _changed(name: str, *edits: tuple[str, str]) -> str:
    source = _solution(name)
    for old, new in edits:
        if old not in source:
            raise LookupError(f"the solution's {name}() no longer contains {old!r}")
        source = source.replace(old, new)
    return source


_PARENT_SETPGID = """            try:
                os.setpgid(pid, pgid)
            except OSError:
                pass             # the child has already exec'd: it did it itself"""

_REAP_LOOP = """        while True:              # one SIGCHLD may stand for many children
            try:
                pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
            except ChildProcessError:
                return
            if pid == 0:
                return
            update(pid, status)"""

_REAP_ONE = """        try:
            pid, status = os.waitpid(-1, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
        except ChildProcessError:
            return
        if pid:
            update(pid, status)"""

_RECORD = '        jobs[number] = {"pgid": pgid, "pids": pids, "state": "Running", "line": line}\n'
_BLOCK = "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})"

MUTANTS = [
    Mutant("08.commands", "parent_keeps_write_end",
           _changed("shell", ("            if not last:\n                os.close(write_end)\n",
                              "")),
           r"pipe end"),
    Mutant("08.commands", "parent_keeps_read_end",
           _changed("shell", ("            if stdin != 0:\n                os.close(stdin)\n", "")),
           r"still holds"),
    Mutant("08.commands", "appends_instead_of_truncating",
           _changed("run_child", ('(">", 1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)',
                                  '(">", 1, os.O_WRONLY | os.O_CREAT | os.O_APPEND)')),
           r"truncates"),
    Mutant("08.commands", "error_redirection_onto_stdout",
           _changed("run_child", ('("2>", 2, os.O_WRONLY', '("2>", 1, os.O_WRONLY')),
           r"standard error \(descriptor 2\)"),
    Mutant("08.jobs", "no_setpgid",
           _changed("run_child", ("        os.setpgid(0, pgid)\n", ""),
                    ("            os.tcsetpgrp(0, pgid if pgid else os.getpid())\n",
                     "            pass\n"))
           + _changed("shell", (_PARENT_SETPGID + "\n", ""),
                      ("            os.tcsetpgrp(0, pgid)\n", "")),
           r"process group of its own \(setpgid\)"),
    Mutant("08.jobs", "no_sigchld_mask_around_fork",
           _changed("shell", (f"            {_BLOCK}\n            try:\n",
                              "            try:\n"),
                    (_RECORD, _RECORD + f"        {_BLOCK}\n"),
                    ("                    builtin(commands",
                     f"                    {_BLOCK}\n                    builtin(commands")),
           r"block SIGCHLD from before fork"),
    Mutant("08.jobs", "reaps_one_child_per_sigchld",
           _changed("shell", (_REAP_LOOP, _REAP_ONE)),
           r"zombies.*reap in a loop"),
    Mutant("08.jobs", "shell_takes_ctrl_c_itself",
           _changed("shell", ("    for signum in JOB_SIGNALS:\n        signal.signal(signum, "
                              "signal.SIG_IGN)",
                              "    for signum in JOB_SIGNALS[1:]:\n        signal.signal("
                              "signum, signal.SIG_IGN)")),
           r"shell itself ended.*ignores SIGINT"),
    Mutant("08.jobs", "fg_does_not_give_the_terminal",
           _changed("shell", ('                os.tcsetpgrp(0, job["pgid"])', "                pass")),
           r"give the job the terminal \(tcsetpgrp\)"),
    Mutant("08.jobs", "job_never_gets_the_terminal",
           _changed("run_child", ("            os.tcsetpgrp(0, pgid if pgid else os.getpid())\n",
                                  "            pass\n"))
           + _changed("shell", ("            os.tcsetpgrp(0, pgid)\n", ""),
                      ('                os.tcsetpgrp(0, job["pgid"])', "                pass")),
           r"tcsetpgrp"),
    Mutant("08.jobs", "stops_go_unnoticed",
           _changed("shell", ("os.WNOHANG | os.WUNTRACED | os.WCONTINUED",
                              "os.WNOHANG | os.WCONTINUED")),
           r"WUNTRACED"),
]
