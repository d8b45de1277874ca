"""Interleavings, step by step: a model of processes that share memory, and an explorer.

A real race happens in nanoseconds and never the same way twice, so it cannot
be stepped through. This model can: each process runs a tiny program of
``load``, ``add``, ``store`` (and ``acquire``/``release`` of named locks) on
its own register and the shared memory, and a *schedule* says which process
takes the next step ("0011 01": process 0, 0, 1, 1, 0, 1). The model is pure
(immutable states, no processes, no widgets), so it can enumerate every
interleaving, count the outcomes, find deadlocks, and be tested exactly.

:class:`Explorer` puts it behind ipywidgets buttons for the lessons; it only
calls the model, and its handlers run without a browser (``Button.click()``),
which is how the tests drive it. Its outer box carries the CSS class
``labkit-explorer`` (its first button, "Step P0", changes what is shown), and
every part has a stable label and class of its own ("Step P0" is
``labkit-step-0``, "Run schedule" is ``labkit-run-schedule``, ...), so a test
in a real browser can find and click them.
"""
from __future__ import annotations

import html
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import LabError

__all__ = [
    "Explorer",
    "Instr",
    "Outcomes",
    "ScheduleError",
    "State",
    "System",
    "Trace",
    "counter",
    "explore",
    "locked_counter",
    "outcomes",
    "parse_program",
    "parse_schedule",
    "philosophers",
    "plot_model_vs_real",
    "plot_outcomes",
    "run",
    "sample",
    "schedules",
    "two_locks",
]

OPS = ("load", "add", "store", "acquire", "release")
MAX_PROCESSES = 10
MAX_LISTED = 200_000          # schedules() refuses to list more than this
MAX_STATES = 200_000          # outcomes() refuses systems with more states than this


class ScheduleError(LabError, ValueError):
    """A schedule asked for a step that cannot happen (a finished or blocked process)."""


# --- programs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instr:
    """One instruction: ``load x``, ``add 1``, ``store x``, ``acquire A``, ``release A``."""

    op: str
    arg: str | int

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"an instruction is one of {', '.join(OPS)}, got {self.op!r}")
        if self.op == "add":
            if isinstance(self.arg, bool) or not isinstance(self.arg, int):
                raise ValueError(f"add takes a whole number, got {self.arg!r}")
        elif not (isinstance(self.arg, str) and re.fullmatch(r"[A-Za-z_]\w*", self.arg)):
            raise ValueError(f"{self.op} takes a name such as x or A, got {self.arg!r}")

    def __str__(self) -> str:
        return f"{self.op} {self.arg}"


def parse_program(text: str | Sequence[str | Instr]) -> tuple[Instr, ...]:
    """A program from text: instructions separated by ``;`` or new lines.

    >>> [str(i) for i in parse_program("load x; add 1; store x")]
    ['load x', 'add 1', 'store x']
    """
    if isinstance(text, str):
        parts = [p.strip() for p in re.split(r"[;\n]", text) if p.strip()]
    elif isinstance(text, Sequence):
        parts = list(text)
    else:
        raise TypeError(f"a program is text like 'load x; add 1; store x' or a list of "
                        f"instructions, got {text!r}")
    program = []
    for part in parts:
        if isinstance(part, Instr):
            program.append(part)
            continue
        words = str(part).split()
        if len(words) != 2:
            raise ValueError(f"an instruction is an operation and one argument, such as "
                             f"'load x' or 'add 1', got {part!r}")
        op, arg = words[0].lower(), words[1]
        program.append(Instr(op, int(arg) if op == "add" and re.fullmatch(r"-?\d+", arg)
                             else arg))
    return tuple(program)


# --- states and the machine ------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """Everything at one moment: each process's next instruction and register, the
    shared memory, and who holds each lock (None: free)."""

    pcs: tuple[int, ...]
    registers: tuple[int, ...]
    memory: tuple[tuple[str, int], ...]
    holders: tuple[tuple[str, int | None], ...]

    def value(self, var: str = "x") -> int:
        """The shared variable ``var`` now."""
        return dict(self.memory)[var]

    def holder(self, lock: str) -> int | None:
        """The process holding ``lock`` now, or None."""
        return dict(self.holders)[lock]


@dataclass(frozen=True)
class System:
    """Processes and their programs, the shared variables' initial values, and the locks.

    Build one with :func:`counter`, :func:`locked_counter` or :func:`two_locks`,
    or from programs of your own: ``System.of(["load x; add 1; store x"] * 2)``.
    """

    programs: tuple[tuple[Instr, ...], ...]
    initial: tuple[tuple[str, int], ...]
    title: str = ""

    @classmethod
    def of(cls, programs: Sequence[str | Sequence[str | Instr]], memory: dict | None = None,
           title: str = "") -> System:
        """A system from one program per process; every variable starts at 0 unless
        ``memory`` says otherwise.

        >>> System.of(["load x; add 1; store x"] * 2).processes
        2
        """
        if isinstance(programs, str) or not isinstance(programs, Sequence) or not (
                1 <= len(programs) <= MAX_PROCESSES):
            raise ValueError(f"give a list of 1 to {MAX_PROCESSES} programs, one per process, "
                             f"got {programs!r}")
        parsed = tuple(parse_program(p) for p in programs)
        names = sorted({str(i.arg) for p in parsed for i in p if i.op in ("load", "store")})
        memory = dict(memory or {})
        for name in names:
            memory.setdefault(name, 0)
        return cls(parsed, tuple(sorted(memory.items())), title)

    @property
    def processes(self) -> int:
        return len(self.programs)

    @property
    def variables(self) -> list[str]:
        return [name for name, _ in self.initial]

    @property
    def locks(self) -> list[str]:
        """The locks the programs use, in name order."""
        return sorted({str(i.arg) for p in self.programs for i in p
                       if i.op in ("acquire", "release")})

    @property
    def steps(self) -> int:
        """How many steps a complete schedule has (every instruction of every process)."""
        return sum(len(p) for p in self.programs)

    def start(self) -> State:
        """The state before any step."""
        n = self.processes
        return State((0,) * n, (0,) * n, self.initial, tuple((k, None) for k in self.locks))

    # --- one step

    def done(self, state: State, p: int) -> bool:
        """Has process ``p`` run its whole program?"""
        return state.pcs[p] >= len(self.programs[p])

    def blocked_by(self, state: State, p: int) -> int | None:
        """The process whose lock ``p`` waits for, or None if ``p`` can move."""
        if self.done(state, p):
            return None
        ins = self.programs[p][state.pcs[p]]
        if ins.op == "acquire":
            owner = state.holder(str(ins.arg))
            if owner is not None:
                return owner
        return None

    def can_step(self, state: State, p: int) -> bool:
        return not self.done(state, p) and self.blocked_by(state, p) is None

    def enabled(self, state: State) -> list[int]:
        """The processes that can take the next step."""
        return [p for p in range(self.processes) if self.can_step(state, p)]

    def finished(self, state: State) -> bool:
        """Has every process run its whole program?"""
        return all(self.done(state, p) for p in range(self.processes))

    def deadlocked(self, state: State) -> bool:
        """No process can move, yet some have not finished: they wait for each other."""
        return not self.finished(state) and not self.enabled(state)

    def why_not(self, state: State, p: int) -> str:
        """Why process ``p`` cannot take a step now ("" if it can)."""
        if not isinstance(p, int) or not 0 <= p < self.processes:
            return (f"{p!r} is not a process here: the processes are "
                    f"{', '.join(map(str, range(self.processes)))}")
        if self.done(state, p):
            return f"process {p} has finished its {len(self.programs[p])} instructions"
        owner = self.blocked_by(state, p)
        if owner is not None:
            lock = self.programs[p][state.pcs[p]].arg
            return (f"process {p} is blocked at 'acquire {lock}': process {owner} holds "
                    f"lock {lock}")
        return ""

    def step(self, state: State, p: int) -> State:
        """The state after process ``p`` runs its next instruction.

        Raises ScheduleError if ``p`` has finished, is blocked, or does not exist.
        """
        reason = self.why_not(state, p)
        if reason:
            raise ScheduleError(reason)
        ins = self.programs[p][state.pcs[p]]
        regs, memory, holders = list(state.registers), dict(state.memory), dict(state.holders)
        if ins.op == "load":
            regs[p] = memory[str(ins.arg)]
        elif ins.op == "add":
            regs[p] += int(ins.arg)
        elif ins.op == "store":
            memory[str(ins.arg)] = regs[p]
        elif ins.op == "acquire":
            holders[str(ins.arg)] = p
        else:  # release
            if holders[str(ins.arg)] != p:
                raise ScheduleError(f"process {p} releases lock {ins.arg}, which it does not "
                                    "hold: the program is wrong")
            holders[str(ins.arg)] = None
        pcs = list(state.pcs)
        pcs[p] += 1
        return State(tuple(pcs), tuple(regs), tuple(sorted(memory.items())),
                     tuple(sorted(holders.items())))

    def describe(self, before: State, p: int, after: State) -> str:
        """One step in words: ``P0: load x -> r0 = 0``."""
        ins = self.programs[p][before.pcs[p]]
        if ins.op in ("load", "add"):
            what = f"r{p} = {after.registers[p]}"
        elif ins.op == "store":
            what = f"{ins.arg} = {after.value(str(ins.arg))}"
        elif ins.op == "acquire":
            what = f"P{p} holds {ins.arg}"
        else:
            what = f"{ins.arg} is free"
        return f"P{p}: {ins} -> {what}"


def counter(processes: int = 2, increments: int = 1) -> System:
    """Each process adds 1 to the shared ``x`` ``increments`` times, as ``x += 1`` does:
    ``load x; add 1; store x``.

    >>> run(counter(), "000111").value()
    2
    >>> run(counter(), "010101").value()
    1
    """
    _check_size(processes, increments)
    body = "; ".join(["load x; add 1; store x"] * increments)
    return System.of([body] * processes, title=f"{processes} processes, each x += 1 "
                     f"{_times(increments)}")


def locked_counter(processes: int = 2, increments: int = 1) -> System:
    """The counter with each increment inside ``acquire L`` ... ``release L``.

    >>> outcomes(locked_counter()).counts
    {2: 2}
    """
    _check_size(processes, increments)
    body = "; ".join(["acquire L; load x; add 1; store x; release L"] * increments)
    return System.of([body] * processes, title=f"{processes} processes, each x += 1 "
                     f"{_times(increments)} under lock L")


def two_locks(same_order: bool = False) -> System:
    """Two processes that each need locks A and B to add 1 to ``x``. Process 0 takes A
    then B; process 1 takes B then A (or A then B with ``same_order``).

    >>> outcomes(two_locks()).deadlocks > 0, outcomes(two_locks(same_order=True)).deadlocks
    (True, 0)
    """
    first, second = ("A", "B") if same_order else ("B", "A")
    body = "load x; add 1; store x"
    second_program = f"acquire {first}; acquire {second}; {body}; release {second}; release {first}"
    return System.of([f"acquire A; acquire B; {body}; release B; release A", second_program],
                     title="two locks, " + ("both taken in the same order" if same_order
                                            else "taken in opposite orders"))


def philosophers(processes: int = 3) -> System:
    """Processes around a table with a lock between each pair of neighbours: process ``i``
    takes lock ``L{i}`` (on its left), then ``L{i+1}`` (on its right, wrapping round),
    adds 1 to ``x`` and releases both: Dijkstra's dining philosophers, in miniature.

    >>> outcomes(philosophers(3)).deadlocks > 0
    True
    """
    _check_size(processes, 1)
    if processes < 2:
        raise ValueError(f"philosophers needs at least 2 processes, got {processes}")
    programs = []
    for i in range(processes):
        left, right = f"L{i}", f"L{(i + 1) % processes}"
        programs.append(f"acquire {left}; acquire {right}; load x; add 1; store x; "
                        f"release {right}; release {left}")
    return System.of(programs, title=f"{processes} philosophers, each taking the lock on its "
                                     "left, then the one on its right")


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _check_size(processes: int, increments: int) -> None:
    for name, v, top in (("processes", processes, MAX_PROCESSES),
                         ("increments", increments, 10_000)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
            raise ValueError(f"{name} must be a whole number from 1 to {top}, got {v!r}")


# --- schedules --------------------------------------------------------------------------------


def parse_schedule(schedule: str | Iterable[int], processes: int | None = None
                   ) -> tuple[int, ...]:
    """A schedule as a tuple of process numbers. In text, each digit is a step of that
    process; spaces, commas and underscores only make it easier to read.

    >>> parse_schedule("0011 01")
    (0, 0, 1, 1, 0, 1)
    >>> parse_schedule("012", processes=2)
    Traceback (most recent call last):
    ...
    labkit.interleave.ScheduleError: step 3 names process 2, but there are only processes 0 and 1
    """
    if isinstance(schedule, str):
        bad = sorted(set(re.sub(r"[\d\s,_]", "", schedule)))
        if bad:
            raise ScheduleError(f"a schedule is a string of process numbers such as '0011 01'; "
                                f"it may not contain {', '.join(map(repr, bad))}")
        steps = tuple(int(c) for c in schedule if c.isdigit())
    else:
        try:
            steps = tuple(schedule)
        except TypeError:
            raise ScheduleError(f"a schedule is a string such as '0011 01' or a list of "
                                f"process numbers, got {schedule!r}") from None
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ScheduleError(f"a schedule lists process numbers (0, 1, ...), got {s!r}")
    if processes is not None:
        for k, s in enumerate(steps, 1):
            if s >= processes:
                names = (" and ".join(map(str, range(processes))) if processes <= 2
                         else ", ".join(map(str, range(processes))))
                raise ScheduleError(f"step {k} names process {s}, but there are only "
                                    f"processes {names}")
    return steps


@dataclass(frozen=True)
class Trace:
    """What happened along a schedule: every state, from the start to the last step."""

    system: System
    schedule: tuple[int, ...]
    states: tuple[State, ...]
    events: tuple[str, ...]             # one line per step: "P0: load x -> r0 = 0"

    @property
    def state(self) -> State:
        """The state after the last step."""
        return self.states[-1]

    @property
    def finished(self) -> bool:
        """Every process has run its whole program."""
        return self.system.finished(self.state)

    @property
    def deadlocked(self) -> bool:
        """The schedule ended where no process can move, yet some have not finished."""
        return self.system.deadlocked(self.state)

    def value(self, var: str = "x") -> int:
        """A shared variable's value after the last step."""
        return self.state.value(var)

    @property
    def lost_updates(self) -> int:
        """For a finished counter: how many of its ``add``s are missing from ``x``."""
        adds = sum(int(i.arg) for p in self.system.programs for i in p if i.op == "add")
        return dict(self.system.initial).get("x", 0) + adds - self.value("x")

    def __str__(self) -> str:
        shown = "".join(map(str, self.schedule))
        end = ("finished" if self.finished else "deadlocked" if self.deadlocked
               else f"{self.system.steps - len(self.schedule)} steps still to go")
        memory = ", ".join(f"{k} = {v}" for k, v in self.state.memory)
        return f"schedule {shown or '(none)'}: {memory}; {end}"


def run(system: System, schedule: str | Iterable[int] = "") -> Trace:
    """Follow ``schedule`` from the start; each step must be possible.

    The schedule may stop early (the trace then shows where things stand).

    >>> t = run(counter(), "0011 01")
    >>> t.events[-1], t.value(), t.finished
    ('P1: store x -> x = 1', 1, True)
    >>> run(two_locks(), "01 0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.interleave.ScheduleError: step 3: process 0 is blocked at 'acquire B': ...
    """
    steps = parse_schedule(schedule, system.processes)
    states = [system.start()]
    events = []
    for k, p in enumerate(steps, 1):
        try:
            after = system.step(states[-1], p)
        except ScheduleError as e:
            raise ScheduleError(f"step {k}: {e}") from None
        events.append(system.describe(states[-1], p, after))
        states.append(after)
    return Trace(system, steps, tuple(states), tuple(events))


# --- every interleaving -----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """How every possible schedule of a system ends (see :func:`outcomes`)."""

    title: str
    var: str
    counts: dict[int, int]          # final value of var -> number of complete schedules
    deadlocks: int                  # schedules that end with no process able to move
    correct: int                    # the value with no update lost
    sampled: bool = False           # True when the counts come from random schedules

    @property
    def total(self) -> int:
        """All schedules counted: complete ones and deadlocked ones."""
        return sum(self.counts.values()) + self.deadlocks

    def fraction(self, value: int) -> float:
        """The share of all schedules that end with ``var == value``."""
        return self.counts.get(value, 0) / self.total if self.total else 0.0

    @property
    def lossy(self) -> int:
        """Complete schedules that end below the correct value."""
        return sum(n for v, n in self.counts.items() if v < self.correct)

    def __str__(self) -> str:
        kind = "random schedules" if self.sampled else "schedules"
        parts = [f"{self.var} = {v}: {n}" for v, n in sorted(self.counts.items())]
        if self.deadlocks:
            parts.append(f"deadlock: {self.deadlocks}")
        return f"{self.title}: {self.total:,} {kind}; " + ", ".join(parts)


def _correct(system: System, var: str) -> int:
    return dict(system.initial).get(var, 0) + sum(
        int(i.arg) for p in system.programs for i in p if i.op == "add")


def outcomes(system: System, var: str = "x") -> Outcomes:
    """Count every schedule of ``system`` by how it ends: the final value of ``var``, or a
    deadlock. Counting goes state by state (each state once), so even systems with
    millions of schedules take moments; systems with more than :data:`MAX_STATES`
    states are refused (use :func:`sample`).

    >>> o = outcomes(counter(2))
    >>> o.total, o.counts
    (20, {1: 18, 2: 2})
    """
    if not isinstance(system, System):
        raise TypeError(f"outcomes() takes a System (from counter(), locked_counter(), "
                        f"two_locks(), philosophers() or System.of()), got {system!r}")
    if var not in system.variables:
        raise ValueError(f"the system has no variable {var!r}; it has "
                         f"{', '.join(system.variables)}")
    if _fewest_states(system) > MAX_STATES:
        raise _too_many_states(system)

    memo: dict[State, tuple[Counter[int], int]] = {}

    def count(state: State) -> tuple[Counter[int], int]:
        if state in memo:
            return memo[state]
        if len(memo) >= MAX_STATES:
            raise _too_many_states(system)
        moves = system.enabled(state)
        ends: Counter[int] = Counter()
        stuck = 0
        if not moves:
            if system.finished(state):
                ends[state.value(var)] = 1
            else:
                stuck = 1
        for p in moves:
            sub, dead = count(system.step(state, p))
            ends.update(sub)
            stuck += dead
        memo[state] = (ends, stuck)
        return ends, stuck

    ends, stuck = count(system.start())
    ends = Counter(dict(sorted(ends.items())))
    return Outcomes(system.title, var, dict(ends), stuck, _correct(system, var))


def _too_many_states(system: System) -> ValueError:
    return ValueError(f"{system.title or 'this system'} has more than {MAX_STATES:,} states, "
                      "too many to count every schedule; draw random schedules with "
                      "sample() instead, or use fewer processes or steps")


def _fewest_states(system: System) -> int:
    """A lower bound on the reachable states, known before counting any.

    A process that holds no lock at some point of its program can get there
    by running alone; so every combination of such points is reachable, and
    the product of their numbers bounds the states from below. It refuses a
    system far too big at once, instead of after seconds of counting.
    """
    bound = 1
    for program in system.programs:
        held, free = 0, 1  # the start holds no lock
        for ins in program:
            held += {"acquire": 1, "release": -1}.get(ins.op, 0)
            free += held <= 0
        bound *= free
        if bound > MAX_STATES:
            break
    return bound


def schedules(system: System) -> Iterator[Trace]:
    """Every schedule of ``system``, each run to its end (finished or deadlocked), in
    order (process 0's step first). Refuses systems with more than
    :data:`MAX_LISTED` schedules: count those with :func:`outcomes`.

    >>> ["".join(map(str, t.schedule)) for t in schedules(counter())][:3]
    ['000111', '001011', '001101']
    """
    total = outcomes(system, system.variables[0]).total if system.variables else 1
    if total > MAX_LISTED:
        raise ValueError(f"{system.title or 'this system'} has {total:,} schedules, too many to "
                         f"list (at most {MAX_LISTED:,}); count them with outcomes()")

    def walk(states: list[State], steps: list[int], events: list[str]) -> Iterator[Trace]:
        moves = system.enabled(states[-1])
        if not moves:
            yield Trace(system, tuple(steps), tuple(states), tuple(events))
            return
        for p in moves:
            after = system.step(states[-1], p)
            yield from walk(states + [after], steps + [p],
                            events + [system.describe(states[-1], p, after)])

    yield from walk([system.start()], [], [])


def sample(system: System, schedules: int = 1000, burst: float = 1.0, seed: int = 0,
           var: str = "x") -> Outcomes:
    """Run ``schedules`` random schedules and count their outcomes.

    At each turn a random process that can move runs a random number of steps in
    a row, ``burst`` on average (geometric): 1 mimics two processes on two cores
    cutting in at any instruction, a large ``burst`` mimics time slices on one
    core. Seeded: the same ``seed`` gives the same counts.

    >>> a, b = sample(counter(2, 50), 200, seed=1), sample(counter(2, 50), 200, seed=1)
    >>> a.counts == b.counts, max(a.counts) <= a.correct
    (True, True)
    """
    if isinstance(schedules, bool) or not isinstance(schedules, int) or not 1 <= schedules <= 10**6:
        raise ValueError(f"schedules must be a whole number from 1 to 1000000, got {schedules!r}")
    if not isinstance(burst, (int, float)) or isinstance(burst, bool) or not burst >= 1:
        raise ValueError(f"burst must be a number of steps >= 1, got {burst!r}")
    if var not in system.variables:
        raise ValueError(f"the system has no variable {var!r}")
    rng = random.Random(seed)
    programs = [[(i.op, i.arg) for i in p] for p in system.programs]
    ends: Counter[int] = Counter()
    stuck = 0
    keep = 1 - 1 / burst                          # chance to take one more step in a row
    for _ in range(schedules):
        pcs = [0] * len(programs)
        regs = [0] * len(programs)
        memory = dict(system.initial)
        holders: dict[str, int | None] = dict.fromkeys(system.locks)
        current = None
        while True:
            ready = [p for p, prog in enumerate(programs) if pcs[p] < len(prog) and not (
                prog[pcs[p]][0] == "acquire" and holders[prog[pcs[p]][1]] is not None)]
            if not ready:
                break
            if current not in ready or rng.random() >= keep:
                current = rng.choice(ready)
            op, arg = programs[current][pcs[current]]
            if op == "load":
                regs[current] = memory[arg]
            elif op == "add":
                regs[current] += arg
            elif op == "store":
                memory[arg] = regs[current]
            elif op == "acquire":
                holders[arg] = current
            else:
                holders[arg] = None
            pcs[current] += 1
        if all(pc >= len(prog) for pc, prog in zip(pcs, programs)):
            ends[memory[var]] += 1
        else:
            stuck += 1
    return Outcomes(system.title, var, dict(sorted(ends.items())), stuck,
                    _correct(system, var), sampled=True)


# --- plots ----------------------------------------------------------------------------------


def _share(n: int, total: int) -> str:
    share = n / total if total else 0.0
    return f"{share:.0%}" if share >= 0.01 or share == 0 else f"{share:.2%}"


def plot_outcomes(result: Outcomes, ax: Any = None) -> Any:
    """Bars: how many schedules end with each final value (and in deadlock). Returns Axes.

    >>> plot_outcomes(outcomes(counter(3)))  # doctest: +SKIP
    """
    from .display import axes

    kind = "random schedules" if result.sampled else "schedules"
    ax = axes(f"{result.title}: all {result.total:,} {kind}" if not result.sampled
              else f"{result.title}: {result.total:,} {kind}",
              f"final value of {result.var}", kind, ax=ax)
    values = sorted(result.counts)
    colours = ["tab:green" if v == result.correct else "tab:red" for v in values]
    bars = ax.bar([str(v) for v in values], [result.counts[v] for v in values], color=colours)
    ax.bar_label(bars, [f"{result.counts[v]:,}\n({_share(result.counts[v], result.total)})"
                        for v in values], fontsize=8)
    if result.deadlocks:
        stuck = ax.bar(["deadlock"], [result.deadlocks], color="black")
        ax.bar_label(stuck, [f"{result.deadlocks:,}\n({_share(result.deadlocks, result.total)})"],
                     fontsize=8)
    ax.set_ylim(0, max([*result.counts.values(), result.deadlocks, 1]) * 1.3)
    from matplotlib.patches import Patch

    handles = [Patch(color="tab:green", label=f"correct ({result.var} = {result.correct})"),
               Patch(color="tab:red", label="an update lost")]
    if result.deadlocks:
        handles.append(Patch(color="black", label="deadlock: no process can move"))
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    return ax


def plot_model_vs_real(models: Sequence[Outcomes], real: Any, ax: Any = None) -> Any:
    """The model's outcomes next to a real experiment (a ``race.RaceResult``), both as
    "final value as a share of the correct total", so that different sizes compare.

    >>> plot_model_vs_real([outcomes(counter(2))], counter_race())  # doctest: +SKIP
    """
    import numpy as np

    from .display import axes

    ax = axes("Final value as a share of the correct total: model and real processes",
              "final value / correct total (%)", "share of schedules or trials (%)", ax=ax,
              figsize=(8.0, 4.2))
    # Bins of 2.5 % that end exactly at 100 %: a correct total falls in the last one
    # (NumPy closes the last bin on the right), and no bar is drawn past the line.
    edges = np.linspace(0, 100, 41)
    for k, m in enumerate(models):
        values = [100 * v / m.correct for v, n in m.counts.items() for _ in range(n)]
        weights = [100 / len(values)] * len(values) if values else []
        kind = "random schedules" if m.sampled else "every schedule"
        ax.hist(values, bins=edges, weights=weights, histtype="step", lw=2,
                color=["tab:blue", "tab:purple", "tab:cyan", "tab:olive"][k % 4],
                label=f"model: {m.title} ({kind})")
    shares = [100 * f / real.expected for f in real.finals]
    ax.hist(shares, bins=edges, weights=[100 / len(shares)] * len(shares), color="tab:red",
            alpha=0.5, label=f"real: {real.workers} processes x {real.iterations:,} increments, "
                             f"{len(real.trials)} trials")
    ax.axvline(100, color="black", ls="--", lw=1.5, label="correct total")
    ax.set_xlim(0, 105)
    ax.legend(fontsize=7, loc="upper left")
    return ax


# --- the explorer widget -------------------------------------------------------------------

_CSS = """<style>
.labkit-explorer .lk-prog {font-family: monospace; font-size: 13px; line-height: 1.5}
.labkit-explorer .lk-next {background: #fff3c4; font-weight: bold}
.labkit-explorer .lk-done {color: #999}
.labkit-explorer .lk-box {border: 1px solid #ccc; border-radius: 6px; padding: 6px 10px}
.labkit-explorer .lk-bar {background: #d9534f; display: inline-block; height: 12px}
.labkit-explorer .lk-ok {background: #5cb85c}
</style>"""


@dataclass
class _History:
    """The explorer's steps so far (a trace that grows and shrinks with undo)."""

    system: System
    states: list[State] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.states:
            self.states = [self.system.start()]

    def trace(self) -> Trace:
        return Trace(self.system, tuple(self.steps), tuple(self.states), tuple(self.events))


class Explorer:
    """Step through an interleaving by clicking, or type a schedule, and see every outcome.

    One panel per process shows its program (the next instruction marked), its
    register and whether it can move; a panel shows the shared memory and the
    locks. Buttons: "Step P0", "Step P1", ... run one instruction of that
    process; "Run schedule" follows the typed schedule from the start; "Undo"
    takes back the last step; "Reset" starts again; "All interleavings" counts
    the outcomes of every schedule. ``goal`` ("lose an update" or "deadlock")
    turns it into a puzzle: the message says when the goal is reached.

    The same actions are methods (:meth:`step`, :meth:`run`, :meth:`undo`,
    :meth:`reset`, :meth:`show_outcomes`), and the widgets' handlers call them.

    >>> ex = Explorer(counter())
    >>> ex.buttons["Step P0"].click()
    >>> ex.trace.events
    ('P0: load x -> r0 = 0',)
    """

    GOALS = ("lose an update", "deadlock")
    CSS_CLASS = "labkit-explorer"

    def __init__(self, system: System | None = None, goal: str | None = None,
                 var: str = "x") -> None:
        import ipywidgets as w

        self.system = system if system is not None else counter()
        if goal is not None and goal not in self.GOALS:
            raise ValueError(f"goal must be one of {', '.join(map(repr, self.GOALS))} or None, "
                             f"got {goal!r}")
        if var not in self.system.variables:
            raise ValueError(f"the system has no variable {var!r}")
        self.goal = goal
        self.var = var
        self._history = _History(self.system)
        n = self.system.processes
        self.buttons: dict[str, Any] = {}
        self._panels = [w.HTML() for _ in range(n)]
        for p, panel in enumerate(self._panels):
            panel.add_class(f"labkit-process-{p}")
        step_buttons = []
        for p in range(n):
            b = w.Button(description=f"Step P{p}", tooltip=f"run process {p}'s next instruction",
                         layout=w.Layout(width="auto"))
            b.add_class("labkit-step")
            b.add_class(f"labkit-step-{p}")
            b.on_click(lambda _b, p=p: self.step(p))
            self.buttons[b.description] = b
            step_buttons.append(b)
        self.memory = w.HTML()
        self.memory.add_class("labkit-memory")
        self.schedule_text = w.Text(value="", placeholder="a schedule, e.g. 0011 01",
                                    description="Schedule:", layout=w.Layout(width="320px"))
        self.schedule_text.add_class("labkit-schedule")
        actions = []
        for label, handler, tip in (
                ("Run schedule", lambda _b: self.run(self.schedule_text.value),
                 "start again and follow the typed schedule"),
                ("Undo", lambda _b: self.undo(), "take back the last step"),
                ("Reset", lambda _b: self.reset(), "back to the start"),
                ("All interleavings", lambda _b: self.show_outcomes(),
                 "count the outcomes of every possible schedule")):
            b = w.Button(description=label, tooltip=tip, layout=w.Layout(width="auto"))
            b.add_class("labkit-" + label.lower().replace(" ", "-"))
            b.on_click(handler)
            self.buttons[label] = b
            actions.append(b)
        self.so_far = w.HTML()
        self.so_far.add_class("labkit-so-far")
        self.message = w.HTML()
        self.message.add_class("labkit-message")
        self.distribution = w.HTML()
        self.distribution.add_class("labkit-distribution")
        columns = [w.VBox([panel, button]) for panel, button in zip(self._panels, step_buttons)]
        title = w.HTML(f"{_CSS}<b>{html.escape(self.system.title or 'Interleaving explorer')}"
                       "</b>" + (f" &nbsp; <i>goal: {html.escape(goal)}</i>" if goal else ""))
        self.widget = w.VBox([title, w.HBox([*columns, self.memory]), self.so_far,
                              w.HBox([self.schedule_text, *actions]), self.message,
                              self.distribution])
        self.widget.add_class(self.CSS_CLASS)
        self._render("")

    # --- what the buttons do

    @property
    def trace(self) -> Trace:
        """The steps taken so far, as a :class:`Trace`."""
        return self._history.trace()

    @property
    def state(self) -> State:
        return self._history.states[-1]

    def step(self, p: int) -> bool:
        """Run process ``p``'s next instruction; False (with a message) if it cannot move."""
        h = self._history
        reason = self.system.why_not(h.states[-1], p)
        if reason:
            self._render(f"⛔ {reason}.", error=True)
            return False
        after = self.system.step(h.states[-1], p)
        h.events.append(self.system.describe(h.states[-1], p, after))
        h.states.append(after)
        h.steps.append(p)
        self._render(h.events[-1])
        return True

    def run(self, schedule: str | Iterable[int]) -> bool:
        """Start again and follow ``schedule``; stop at the first impossible step."""
        try:
            steps = parse_schedule(schedule, self.system.processes)
        except ScheduleError as e:
            self._render(f"⛔ {e}", error=True)
            return False
        self._history = _History(self.system)
        for k, p in enumerate(steps, 1):
            reason = self.system.why_not(self.state, p)
            if reason:
                self._render(f"⛔ step {k} of the schedule cannot happen: {reason}. "
                             f"Stopped after {k - 1} steps.", error=True)
                return False
            h = self._history
            after = self.system.step(h.states[-1], p)
            h.events.append(self.system.describe(h.states[-1], p, after))
            h.states.append(after)
            h.steps.append(p)
        self._render(f"ran {len(steps)} steps")
        return True

    def undo(self) -> None:
        """Take back the last step (nothing happens at the start)."""
        h = self._history
        if h.steps:
            h.steps.pop()
            h.states.pop()
            h.events.pop()
            self._render("took back one step")
        else:
            self._render("nothing to undo: this is the start")

    def reset(self) -> None:
        """Back to the start."""
        self._history = _History(self.system)
        self._render("back to the start")

    def show_outcomes(self) -> Outcomes:
        """Count every schedule's outcome and show the distribution as bars."""
        result = outcomes(self.system, self.var)
        rows = []
        top = max([*result.counts.values(), result.deadlocks, 1])
        for v, n in sorted(result.counts.items()):
            ok = " lk-ok" if v == result.correct else ""
            rows.append((f"{self.var} = {v}", n, ok))
        if result.deadlocks:
            rows.append(("deadlock", result.deadlocks, ""))
        body = "".join(
            f"<tr><td>{label}</td><td><span class='lk-bar{ok}' style='width:"
            f"{max(2, int(200 * n / top))}px'></span></td><td>{n} of {result.total} "
            f"({n / result.total:.0%})</td></tr>" for label, n, ok in rows)
        self.distribution.value = (f"<div class='lk-box'><b>All {result.total} schedules</b>"
                                   f"<table>{body}</table></div>")
        return result

    # --- drawing

    def _render(self, note: str, error: bool = False) -> None:
        h = self._history
        state = h.states[-1]
        for p, panel in enumerate(self._panels):
            lines = []
            for k, ins in enumerate(self.system.programs[p]):
                cls = "lk-next" if k == state.pcs[p] else "lk-done" if k < state.pcs[p] else ""
                mark = "▶ " if k == state.pcs[p] else "&nbsp;&nbsp;"
                lines.append(f"<div class='{cls}'>{mark}{html.escape(str(ins))}</div>")
            if self.system.done(state, p):
                status = "finished"
            elif self.system.blocked_by(state, p) is not None:
                status = f"blocked (waits for P{self.system.blocked_by(state, p)})"
            else:
                status = "ready"
            panel.value = (f"<div class='lk-box'><b>Process P{p}</b> <i>{status}</i>"
                           f"<div class='lk-prog'>{''.join(lines)}</div>"
                           f"register r{p} = <b>{state.registers[p]}</b></div>")
            button = self.buttons[f"Step P{p}"]
            button.disabled = self.system.done(state, p)
            button.button_style = ("warning" if self.system.blocked_by(state, p) is not None
                                   else "")
        cells = "".join(f"<div>{html.escape(k)} = <b>{v}</b></div>" for k, v in state.memory)
        cells += "".join(f"<div>lock {k}: {'free' if o is None else f'held by P{o}'}</div>"
                         for k, o in state.holders)
        self.memory.value = f"<div class='lk-box'><b>Shared memory</b>{cells}</div>"
        shown = "".join(map(str, h.steps))
        self.so_far.value = (f"Schedule so far: <code>{shown or '(none)'}</code> "
                             f"({len(h.steps)} of {self.system.steps} steps)")
        self.message.value = self._verdict(note, error)

    def _verdict(self, note: str, error: bool) -> str:
        trace = self.trace
        text = html.escape(note)
        if error:
            return f"<span style='color:#b00'>{text}</span>"
        if trace.finished:
            lost = trace.lost_updates if self.var == "x" else 0
            value = trace.value(self.var)
            end = (f"Finished: {self.var} = {value}" + (
                f", {lost} update{'s' if lost != 1 else ''} lost." if lost > 0 else ", correct."))
            text += f"<br><b>{end}</b>"
            if self.goal == "lose an update" and lost > 0:
                text += " 🎯 Goal reached: this schedule loses an update."
        elif trace.deadlocked:
            text += "<br><b>Deadlock: no process can move, and none has finished.</b>"
            if self.goal == "deadlock":
                text += " 🎯 Goal reached: this schedule deadlocks."
        return text

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def explore(processes: int = 2, increments: int = 1, locked: bool = False,
            goal: str | None = None) -> Explorer:
    """An explorer for the counter (``locked`` puts each increment under lock L).

    >>> explore().system.title
    '2 processes, each x += 1 once'
    """
    system = (locked_counter if locked else counter)(processes, increments)
    return Explorer(system, goal=goal)
