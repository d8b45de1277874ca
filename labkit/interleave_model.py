"""Interleavings, step by step: a model of processes that share memory (lesson 04).

A real race happens in nanoseconds and never the same way twice, so it cannot
be stepped through. This model can: each process runs a tiny program of
``load``, ``add``, ``store`` (and ``acquire``/``release`` of named locks) on
its own register and the shared memory, and a *schedule* says which process
takes the next step ("0011 01": process 0, 0, 1, 1, 0, 1). The model is pure
(immutable states, no processes, no widgets), so it can enumerate every
interleaving, count the outcomes, find deadlocks, and be tested exactly.

The explorer (ipywidgets buttons over the model) is in
:mod:`labkit.interleave_widget`, the plots in :mod:`labkit.interleave_plots`;
:mod:`labkit.interleave` gathers the names the lessons use.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ._validate import whole as _whole
from .errors import ScheduleError, TooManyStates

__all__ = [
    "Instr",
    "Outcomes",
    "State",
    "System",
    "Trace",
    "counter",
    "locked_counter",
    "outcomes",
    "parse_program",
    "parse_schedule",
    "philosophers",
    "run",
    "sample",
    "schedules",
    "two_locks",
]

OPS = ("load", "add", "store", "acquire", "release")
MAX_WORKERS = 10
MAX_LISTED = 200_000          # schedules() refuses to list more than this
MAX_STATES = 10_000           # outcomes() refuses systems with more states than this


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

        >>> System.of(["load x; add 1; store x"] * 2).workers
        2
        """
        if isinstance(programs, str) or not isinstance(programs, Sequence) or not (
                1 <= len(programs) <= MAX_WORKERS):
            raise ValueError(f"give a list of 1 to {MAX_WORKERS} programs, one per process, "
                             f"got {programs!r}")
        parsed = tuple(parse_program(p) for p in programs)
        names = sorted({str(i.arg) for p in parsed for i in p if i.op in ("load", "store")})
        memory = dict(memory or {})
        for name in names:
            memory.setdefault(name, 0)
        return cls(parsed, tuple(sorted(memory.items())), title)

    @property
    def workers(self) -> int:
        """How many processes the system has (P0, P1, ...)."""
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
        n = self.workers
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
        return [p for p in range(self.workers) if self.can_step(state, p)]

    def finished(self, state: State) -> bool:
        """Has every process run its whole program?"""
        return all(self.done(state, p) for p in range(self.workers))

    def deadlocked(self, state: State) -> bool:
        """No process can move, yet some have not finished: they wait for each other."""
        return not self.finished(state) and not self.enabled(state)

    def why_not(self, state: State, p: int) -> str:
        """Why process ``p`` cannot take a step now ("" if it can)."""
        if not isinstance(p, int) or not 0 <= p < self.workers:
            return (f"{p!r} is not a process here: the processes are "
                    f"{', '.join(map(str, range(self.workers)))}")
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


def counter(workers: int = 2, increments: int = 1) -> System:
    """Each process adds 1 to the shared ``x`` ``increments`` times, as ``x += 1`` does:
    ``load x; add 1; store x``.

    >>> run(counter(), "000111").value()
    2
    >>> run(counter(), "010101").value()
    1
    """
    _check_size(workers, increments)
    body = "; ".join(["load x; add 1; store x"] * increments)
    return System.of([body] * workers, title=f"{workers} processes, each x += 1 "
                     f"{_times(increments)}")


def locked_counter(workers: int = 2, increments: int = 1) -> System:
    """The counter with each increment inside ``acquire L`` ... ``release L``.

    >>> outcomes(locked_counter()).counts
    {2: 2}
    """
    _check_size(workers, increments)
    body = "; ".join(["acquire L; load x; add 1; store x; release L"] * increments)
    return System.of([body] * workers, title=f"{workers} processes, each x += 1 "
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


def philosophers(workers: int = 3) -> System:
    """Processes around a table with a lock between each pair of neighbours: process ``i``
    takes lock ``L{i}`` (on its left), then ``L{i+1}`` (on its right, wrapping round),
    adds 1 to ``x`` and releases both: Dijkstra's dining philosophers, in miniature.

    >>> outcomes(philosophers(3)).deadlocks > 0
    True
    """
    _check_size(workers, 1)
    if workers < 2:
        raise ValueError(f"philosophers needs at least 2 workers (processes), got {workers}")
    programs = []
    for i in range(workers):
        left, right = f"L{i}", f"L{(i + 1) % workers}"
        programs.append(f"acquire {left}; acquire {right}; load x; add 1; store x; "
                        f"release {right}; release {left}")
    return System.of(programs, title=f"{workers} philosophers, each taking the lock on its "
                                     "left, then the one on its right")


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _check_size(workers: int, increments: int) -> None:
    _whole("workers", workers, 1, MAX_WORKERS)
    _whole("increments", increments, 1, 10_000)


# --- schedules --------------------------------------------------------------------------------


def parse_schedule(schedule: str | Iterable[int], workers: int | None = None
                   ) -> tuple[int, ...]:
    """A schedule as a tuple of process numbers. In text, each digit is a step of that
    process; spaces, commas and underscores only make it easier to read.

    >>> parse_schedule("0011 01")
    (0, 0, 1, 1, 0, 1)
    >>> parse_schedule("012", workers=2)
    Traceback (most recent call last):
    ...
    labkit.errors.ScheduleError: step 3 names process 2, but there are only processes 0 and 1
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
    if workers is not None:
        for k, s in enumerate(steps, 1):
            if s >= workers:
                names = (" and ".join(map(str, range(workers))) if workers <= 2
                         else ", ".join(map(str, range(workers))))
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
    labkit.errors.ScheduleError: step 3: process 0 is blocked at 'acquire B': ...
    """
    steps = parse_schedule(schedule, system.workers)
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
    millions of schedules take moments. Systems with more than :data:`MAX_STATES`
    states are refused at once, with a :class:`TooManyStates` error (use
    :func:`sample` for those).

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
    machine = _Machine(system)
    levels = machine.levels(MAX_STATES)
    if levels is None:
        raise _too_many_states(system)
    # Every step moves one program counter on, so a state's successors are all on the next
    # level: count from the last level back to the start, each state once.
    at = system.variables.index(var) + 2 * system.workers
    ends: dict[tuple[int, ...], tuple[Counter[int], int]] = {}
    for level in reversed(levels):
        for state, after in level.items():
            if not after:
                done = machine.finished(state)
                ends[state] = (Counter({state[at]: 1}) if done else Counter(), 0 if done else 1)
                continue
            total: Counter[int] = Counter()
            stuck = 0
            for nxt in after:
                sub, dead = ends[nxt]
                total.update(sub)
                stuck += dead
            ends[state] = (total, stuck)
    counts, stuck = ends[machine.start]
    return Outcomes(system.title, var, dict(sorted(counts.items())), stuck,
                    _correct(system, var))


def _too_many_states(system: System) -> TooManyStates:
    return TooManyStates(
        f"{system.title or 'this system'} has more than {MAX_STATES:,} states, too many to "
        f"count every schedule (outcomes() explores at most {MAX_STATES:,}: two or three "
        "processes of a few instructions each); draw random schedules with sample() "
        "instead, or use fewer processes or steps")


def _fewest_states(system: System) -> int:
    """A lower bound on the reachable states, known before counting any.

    A process that holds no lock at some point of its program can get there
    by running alone; so every combination of such points is reachable, and
    the product of their numbers bounds the states from below. It refuses a
    system far too big at once, before any state is explored.
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


_LOAD, _ADD, _STORE, _ACQUIRE, _RELEASE = range(5)


class _Machine:
    """The model compiled for speed: a state is one flat tuple of ints (program counters,
    registers, memory, lock holders with -1 for free), an instruction a pair of ints.

    :class:`System` is the readable version (and the one the traces use); this one
    explores every state or draws random schedules, and never builds a
    :class:`State`.
    """

    def __init__(self, system: System) -> None:
        names = system.variables
        locks = system.locks
        self.n = n = system.workers
        self.programs = [[(OPS.index(i.op), int(i.arg) if i.op == "add" else
                           names.index(str(i.arg)) if i.op in ("load", "store") else
                           locks.index(str(i.arg))) for i in p] for p in system.programs]
        self.mem = 2 * n                      # where memory starts in a state
        self.locks = 2 * n + len(names)       # where the lock holders start
        self.start = ((0,) * n + (0,) * n + tuple(v for _, v in system.initial)
                      + (-1,) * len(locks))

    def moves(self, state: tuple[int, ...], p: int) -> tuple[int, ...] | None:
        """The state after process ``p``'s next step, or None if it cannot move."""
        program = self.programs[p]
        pc = state[p]
        if pc >= len(program):
            return None
        op, arg = program[pc]
        if op == _ACQUIRE and state[self.locks + arg] >= 0:
            return None                       # blocked: someone holds the lock
        after = list(state)
        after[p] = pc + 1
        reg = self.n + p
        if op == _LOAD:
            after[reg] = state[self.mem + arg]
        elif op == _ADD:
            after[reg] += arg
        elif op == _STORE:
            after[self.mem + arg] = state[reg]
        elif op == _ACQUIRE:
            after[self.locks + arg] = p
        else:
            if state[self.locks + arg] != p:
                raise ScheduleError(f"process {p} releases a lock it does not hold: the "
                                    "program is wrong")
            after[self.locks + arg] = -1
        return tuple(after)

    def can_move(self, state: tuple[int, ...], p: int) -> bool:
        """Can process ``p`` take its next step (it has one, and it is not a taken lock)?"""
        program = self.programs[p]
        pc = state[p]
        return pc < len(program) and not (program[pc][0] == _ACQUIRE
                                          and state[self.locks + program[pc][1]] >= 0)

    def finished(self, state: tuple[int, ...]) -> bool:
        return all(state[p] >= len(prog) for p, prog in enumerate(self.programs))

    def levels(self, budget: int) -> list[dict[tuple[int, ...], list[tuple[int, ...]]]] | None:
        """Every reachable state with its successors, level by level (steps taken), or
        None as soon as there are more than ``budget`` states."""
        levels: list[dict[tuple[int, ...], list[tuple[int, ...]]]] = [{self.start: []}]
        seen = 1
        while levels[-1]:
            nxt: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
            for state, after in levels[-1].items():
                for p in range(self.n):
                    moved = self.moves(state, p)
                    if moved is None:
                        continue
                    after.append(moved)
                    if moved not in nxt:
                        nxt[moved] = []
                        seen += 1
                        if seen > budget:
                            return None
            levels.append(nxt)
        return levels[:-1]


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
    _whole("schedules", schedules, 1, 10**6)
    if not isinstance(burst, (int, float)) or isinstance(burst, bool) or not burst >= 1:
        raise ValueError(f"burst must be a number of steps >= 1, got {burst!r}")
    if var not in system.variables:
        raise ValueError(f"the system has no variable {var!r}")
    rng = random.Random(seed)
    machine = _Machine(system)
    at = system.variables.index(var) + 2 * system.workers
    ends: Counter[int] = Counter()
    stuck = 0
    keep = 1 - 1 / burst                          # chance to take one more step in a row
    for _ in range(schedules):
        state = machine.start
        current: int | None = None
        while True:
            ready = [p for p in range(machine.n) if machine.can_move(state, p)]
            if not ready:
                break
            if current not in ready or rng.random() >= keep:
                current = rng.choice(ready)
            state = machine.moves(state, current) or state
        if machine.finished(state):
            ends[state[at]] += 1
        else:
            stuck += 1
    return Outcomes(system.title, var, dict(sorted(ends.items())), stuck,
                    _correct(system, var), sampled=True)

