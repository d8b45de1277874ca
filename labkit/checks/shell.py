"""Checks of lesson 08: a trace driver that types into the student's shell on a real pty.

Modelled on CS:APP's ``sdriver``: each trace file in ``shell_traces/`` says
what is typed (``$ line`` waits for the next prompt, ``> line`` does not),
which control keys are pressed (``! C-z`` waits for the prompt, ``!- C-c``
does not), what must hold meanwhile (``@ foreground sleep 31``, ``@ stopped
...``, ``@ all-reaped``, ``@ holds-nothing``, ``@ ended``), and, on the other
lines, the output expected. The driver runs the shell as the session leader
of a :class:`labkit.tty.Terminal`, compares the whole transcript with the
trace's and shows a diff when they differ. When a step fails it also looks at
the processes themselves (groups, the terminal's foreground group, zombies,
stopped jobs, the shell's open pipes), so the message names the fault rather
than only the symptom. Each trace is one check: credit comes trace by trace.
"""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..checking import CheckFailed, Exercise, launch
from ..errors import LabError, LabTimeout
from ..tty import Terminal
from ..waiting import cpu_wait, overdue

__all__ = ["COMMANDS", "JOBS", "Trace", "parse_trace", "run_trace", "traces", "transcript"]

TRACES = Path(__file__).with_name("shell_traces")
PROMPT = "$ "
# A step's limits, each stretched by the time the shell waits for a CPU (waiting.overdue):
STEP_SECONDS = 4.0      # a step's output and prompt must come within this
STATE_SECONDS = 3.0     # a process state the trace waits for
SHELL_SECONDS = 40.0    # the whole shell session of one trace

COMMANDS = Exercise("08.commands", "A shell: commands, pipelines and redirection",
                    timeout=150.0)
JOBS = Exercise("08.jobs", "A shell: background jobs and job control", timeout=150.0)
_EXERCISES = {"commands": COMMANDS, "jobs": JOBS}


@dataclass(frozen=True)
class Trace:
    """One trace file: its header and its steps (kind, text)."""

    name: str
    exercise: str
    title: str
    about: str
    hint: str
    concept: str
    hold_forks: bool
    steps: list[tuple[str, str]]      # ("$", line), (">", line), ("!", key), ("!-", key),
    #                                   ("@", directive), ("out", expected line)

    @property
    def expected(self) -> list[str]:
        """The transcript the trace expects, normalised as :func:`transcript` does."""
        lines = []
        for kind, text in self.steps:
            if kind in ("$", ">"):
                lines.append(f"$ {text}".rstrip())
            elif kind == "out":
                lines.append(_normal_line(text))
        return [line for line in lines if line]


def parse_trace(name: str, text: str) -> Trace:
    """Read a trace file's text; a ValueError names the line that is wrong.

    >>> parse_trace("t", "# exercise: commands\\n# title: t\\n$ echo hi\\nhi\\n").expected
    ['$ echo hi', 'hi']
    """
    header: dict[str, str] = {}
    steps: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif line == "$" or line.startswith("$ "):
            steps.append(("$", line[2:]))
        elif line.startswith("> "):
            steps.append((">", line[2:]))
        elif line.startswith(("! ", "!- ")):
            kind, key = line.split(" ", 1)
            steps.append((kind, key.strip()))
        elif line.startswith("@ "):
            steps.append(("@", line[2:].strip()))
        elif line.strip():
            steps.append(("out", line))
        else:
            raise ValueError(f"trace {name}, line {number}: blank lines are not allowed")
    if header.get("exercise") not in _EXERCISES or not header.get("title"):
        raise ValueError(f"trace {name}: the header needs '# exercise: commands|jobs' and a "
                         "'# title:'")
    return Trace(name, header["exercise"], header["title"], header.get("about", ""),
                 header.get("hint", ""), header.get("concept", ""),
                 header.get("hold-forks") == "yes", steps)


def traces() -> list[Trace]:
    """Every trace in ``shell_traces/``, in file-name order."""
    return [parse_trace(p.stem, p.read_text()) for p in sorted(TRACES.glob("*.txt"))]


_JOB_STARTED = re.compile(r"^\[(\d+)\] \d+$")


def _normal_line(line: str) -> str:
    return _JOB_STARTED.sub(r"[\1] PID", line.rstrip())


def transcript(raw: str) -> list[str]:
    """What the terminal showed, as lines: no carriage returns, no echoed control keys
    (^C, ^Z, ^\\\\), no blank lines, trailing spaces and a last bare prompt dropped, and the
    process group printed for a background job replaced by ``PID``.

    >>> transcript("$ sleep 9 &\\r\\n[1] 4242\\r\\n$ sleep 8\\r\\n^C$ ")
    ['$ sleep 9 &', '[1] PID', '$ sleep 8']
    """
    text = raw.replace("\r", "")
    for echoed in ("^C", "^Z", "^\\"):
        text = text.replace(echoed, "")
    lines = [_normal_line(line) for line in text.split("\n")]
    lines = [line for line in lines if line]
    if lines and lines[-1] == "$":
        lines.pop()
    return lines


# --- running one trace -----------------------------------------------------------------


def _in_folder(folder: str, shell: Callable[[], Any]) -> None:
    os.chdir(folder)
    shell()


class _Run:
    """One trace being typed into one shell."""

    def __init__(self, trace: Trace, term: Terminal) -> None:
        self.trace = trace
        self.term = term
        self.step = "the start"
        self.fds: set[str] = set()  # what the shell holds at its first prompt
        self.key = ""               # the last control key pressed

    # what the shell is doing

    def shell(self) -> psutil.Process | None:
        try:
            p = psutil.Process(self.term.leader)
            return None if p.status() == psutil.STATUS_ZOMBIE else p
        except psutil.Error:
            return None

    def _pipes_and_files(self) -> set[str]:
        found = set()
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{self.term.leader}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{self.term.leader}/fd/{fd}")
                    if target.startswith("pipe:") or target.startswith("/"):
                        found.add(f"{fd} -> {target}")
        return found

    def _find(self, command: str) -> psutil.Process | None:
        """A live process of the session whose command line is ``command``."""
        shell = self.shell()
        if shell is None:
            return None
        with contextlib.suppress(psutil.Error):
            for p in shell.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if " ".join(p.cmdline()) == command and p.status() != psutil.STATUS_ZOMBIE:
                        return p
        return None

    def diagnosis(self) -> str:
        """What is wrong with the shell's processes now, in words; empty if nothing is seen."""
        shell = self.shell()
        if shell is None or self.term.hung_up:
            where = f"after `{self.key}`" if self.key else f"at `{self.step}`"
            why = (": a shell ignores SIGINT, SIGTSTP and SIGQUIT itself, so that only the "
                   "foreground job gets the keys." if self.key else ".")
            with contextlib.suppress(LabError, LabTimeout, CheckFailed):
                ended = self.term.wait(timeout=2.0)["ended"]
                return f" Your shell itself ended ({ended}) {where}{why}"
            return f" Your shell itself ended {where}{why}"
        notes = []
        with contextlib.suppress(psutil.Error):
            kids = shell.children()
            zombies = [k for k in kids if k.status() == psutil.STATUS_ZOMBIE]
            if zombies:
                notes.append(f"{len(zombies)} of your shell's children are zombies (ended, "
                             "never reaped): one SIGCHLD can stand for several children, so "
                             "reap in a loop until waitpid says none is left")
            stopped = [k for k in shell.children(recursive=True)
                       if k.status() == psutil.STATUS_STOPPED]
            if stopped and not self.term.output.endswith(PROMPT):
                notes.append("a job is stopped but your shell did not come back to its "
                             "prompt: wait for the foreground job with WUNTRACED, so a stop "
                             "is reported too")
        held = sorted(f for f in self._pipes_and_files() - self.fds if "pipe:" in f)
        if held:
            notes.append(f"your shell still holds {len(held)} pipe end(s) open "
                         f"({', '.join(held)}): close the pipe ends in the shell after "
                         "forking, or the reader never sees end of file")
        return "".join(f" {n[0].upper()}{n[1:]}." for n in notes)

    # the steps

    def _limit(self, seconds: float) -> Callable[[], bool]:
        """Whether ``seconds`` from now have passed, stretched by the time the shell and its
        children wait for a CPU meanwhile (a loaded machine is slow, not wrong; a shell that
        waits for the wrong thing sleeps, and gets nothing)."""
        def session() -> list[int]:
            shell = self.shell()
            return [] if shell is None else [shell.pid]

        started, before = time.monotonic(), cpu_wait(session())
        return lambda: overdue(started, seconds, lambda: cpu_wait(session()) - before)

    def _prompted(self, start: int, typed: bool) -> None:
        # After a typed line, the prompt must follow the echo of its newline.
        pattern = r"\n[\s\S]*\$ \Z" if typed else r"\$ \Z"
        too_late = self._limit(STEP_SECONDS)
        while True:
            try:
                self.term.read_until(pattern, timeout=STEP_SECONDS / 4, since=start)
                return
            except LabTimeout:
                gone = self.shell() is None or self.term.hung_up
                if gone or too_late():
                    break
        late = ("" if gone else f" the prompt {PROMPT!r} did not come back within "
                f"{STEP_SECONDS:g} s after `{self.step}`.")
        raise CheckFailed(f"{self._title()}:{late}{self.diagnosis()}{self._shown()}")

    def _echoed(self, start: int, text: str) -> None:
        # Read the echo of a typed line before going on: a Ctrl-C or Ctrl-Z pressed next
        # flushes the terminal's queues (isig), and an echo still queued would be lost. A
        # shell that never lets it be echoed is shown by the transcript's diff.
        with contextlib.suppress(LabTimeout):
            self.term.read_until(re.escape(text) + r"\r?\n", timeout=STEP_SECONDS, since=start)

    def _title(self) -> str:
        return f"trace {self.trace.name} ({self.trace.title})"

    def _shown(self) -> str:
        return " The terminal showed:\n" + "\n".join(transcript(self.term.output)[-12:])

    def _until(self, what: str, ok: Callable[[], bool], seconds: float = STATE_SECONDS) -> None:
        too_late = self._limit(seconds)
        while not ok():
            if too_late():
                raise CheckFailed(f"{self._title()}: {what}.{self.diagnosis()}")
            self.term.read(0.01)

    def _foreground(self, command: str) -> None:
        self._until(f"`{command}` did not start within {STATE_SECONDS:g} s",
                    lambda: self._find(command) is not None)
        p = self._find(command)
        shell_group = os.getpgid(self.term.leader)

        def own_group() -> bool:
            with contextlib.suppress(OSError):
                return p is not None and os.getpgid(p.pid) != shell_group
            return True

        self._until(f"`{command}` runs in your shell's own process group: give each job a "
                    "process group of its own (setpgid), or Ctrl-C reaches the shell and every "
                    "job at once", own_group, 1.0)

        def has_terminal() -> bool:
            with contextlib.suppress(OSError):
                return p is not None and self.term.foreground == os.getpgid(p.pid)
            return True

        self._until(f"`{command}` is the foreground job, but the terminal's foreground group "
                    "is not its group: give the job the terminal (tcsetpgrp) before it runs "
                    "or continues, or Ctrl-C and Ctrl-Z reach the shell instead of the job",
                    has_terminal, 1.0)

    def _state(self, command: str, wanted: str) -> None:
        def in_state() -> bool:
            p = self._find(command)
            with contextlib.suppress(psutil.Error):
                return p is not None and (p.status() == psutil.STATUS_STOPPED) == (
                    wanted == "stopped")
            return False

        why = ("SIGCONT must reach the job's whole group" if wanted == "running" else
               "a stop reaches the whole foreground group")
        self._until(f"`{command}` should be {wanted} after `{self.step}`, and is not ({why})",
                    in_state)

    def _directive(self, text: str) -> None:
        word, _, rest = text.partition(" ")
        if word == "foreground":
            self._foreground(rest)
        elif word in ("stopped", "running"):
            self._state(rest, word)
        elif word == "all-reaped":
            def none_left() -> bool:
                shell = self.shell()
                with contextlib.suppress(psutil.Error):
                    return shell is not None and not shell.children()
                return False

            self._until("a child of your shell was still there (every job of this trace has "
                        "ended, so each must have been reaped)", none_left)
        elif word == "holds-nothing":
            left = sorted(self._pipes_and_files() - self.fds)
            if left:
                raise CheckFailed(f"{self._title()}: after `{self.step}` your shell still holds "
                                  f"descriptors it opened for the command: {', '.join(left)}; "
                                  "close every pipe end and file in the shell once the "
                                  "children have them")
        elif word == "ended":
            self._ended(typed_exit=False)
        else:
            raise ValueError(f"trace {self.trace.name}: unknown directive @ {text}")

    def _ended(self, typed_exit: bool) -> None:
        how = "`exit`" if typed_exit else f"`{self.step}`"
        try:
            ended = self.term.wait(timeout=STEP_SECONDS)
        except LabTimeout:
            raise CheckFailed(f"{self._title()}: your shell did not end after {how}."
                              f"{self.diagnosis()}") from None
        if ended["code"] != 0:
            raise CheckFailed(f"{self._title()}: your shell ended with {ended['ended']} "
                              f"after {how}, not by returning.{self._shown()}")
        if ended["left"]:
            raise CheckFailed(f"{self._title()}: when your shell ended it left "
                              f"{'; '.join(ended['left'])}: end the jobs that are left and "
                              "reap every child before returning")

    def run(self) -> None:
        self._prompted(0, typed=False)
        self.fds = self._pipes_and_files()
        ended = False
        for kind, text in self.trace.steps:
            if kind == "out":
                continue
            self.step = f"{kind} {text}".strip() if kind != "$" else f"$ {text}"
            start = len(self.term.output)
            if kind in ("$", ">"):
                self.term.type(text + "\n")
                self._echoed(start, text)
                if kind == "$":
                    self._prompted(start, typed=True)
            elif kind in ("!", "!-"):
                self.key = self.step
                self.term.press(text)
                if kind == "!":
                    self._prompted(start, typed=False)
            else:
                self._directive(text)
                ended = ended or text == "ended"
        got = transcript(self.term.output)
        want = self.trace.expected
        if got != want:
            diff = difflib.unified_diff(want, got, "expected", "your shell", lineterm="", n=2)
            raise CheckFailed(f"{self._title()}: the terminal showed something else "
                              f"(- expected, + your shell):\n" + "\n".join(list(diff)[2:40])
                              + f"\nThis trace checks that {self.trace.about}.")
        if not ended:
            self.step = "exit"
            self.term.type("exit\n")
            self._ended(typed_exit=True)


def run_trace(trace: Trace, shell: Any) -> None:
    """Type ``trace`` into ``shell`` (the student's function) on a fresh terminal.

    Raises CheckFailed with a diff and the fault seen, NotDone if the shell is
    not written yet.
    """
    if not callable(shell):
        raise CheckFailed(f"expected your shell function, got {shell!r}")
    folder = tempfile.mkdtemp(prefix="labkit-shell-")
    try:
        with Terminal(timeout=SHELL_SECONDS) as term:
            try:
                term.start(_in_folder, folder, shell, hold_forks=trace.hold_forks,
                           witnessed=False, via=launch)
            except LabError as e:
                # It ended at once: NotDone if it is not written, else say how it ended.
                ended = term.wait(timeout=STEP_SECONDS).get("ended", str(e))
                raise CheckFailed(f"trace {trace.name} ({trace.title}): your shell itself "
                                  f"ended ({ended}) before its first prompt") from None
            run = _Run(trace, term)
            try:
                run.run()
            except CheckFailed:
                if term.hung_up or run.shell() is None:  # NotDone wins over what it caused
                    with contextlib.suppress(LabTimeout):
                        term.wait(timeout=STEP_SECONDS)
                raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _register(trace: Trace) -> None:
    exercise = _EXERCISES[trace.exercise]

    @exercise.check(trace.title, hint=trace.hint, concept=trace.concept)
    def _(answer: Any) -> None:
        run_trace(trace, answer)


for _trace in traces():
    _register(_trace)
