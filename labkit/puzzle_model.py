"""The puzzles' model: which printed lines must come before which, and what never happens.

A puzzle program is a handful of processes, each a straight line of events
(print, fork, close, read, wait, exit), tied by edges: a child starts after
its ``fork``, a ``waitpid`` returns after the child's exit, a read sees end
of file after every copy of the pipe's write end is closed. Lesson 04's
interleaving model steps shared-memory instructions; here nothing is shared
but the kernel's objects, so a happens-before graph says all there is:
an event happens iff everything before it happens (a cycle or a process that
waits for ever never does), and the possible outputs are the orders of the
printed lines that respect the edges. :class:`Puzzle` is the type the
generators (:mod:`labkit.puzzle_kinds`) return.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import TooManyOrders

__all__ = ["Graph", "Puzzle", "TooManyOrders", "same_answer", "untraced"]

MAX_ORDERS = 3000     # a puzzle with more possible outputs than this is not a puzzle


@dataclass(frozen=True)
class Puzzle:
    """One puzzle: what the student reads, the answer, and what the tests run.

    ``programs`` are the real programs (one, or the candidates of an inverse
    puzzle); ``outputs[i]`` is every output (a tuple of lines) the model allows
    for ``programs[i]``, and ``hangs[i]`` whether some process of it never ends.
    ``answer`` is the model's; :func:`labkit.puzzles.solve` gets it from real runs
    (``traced`` ones, for a puzzle about the process tree: see :func:`untraced`).
    """

    kind: str
    seed: int
    code: str                                  # what the student reads
    question: str
    answer: str                                # the short answer a reply is compared with
    solution: str                              # the answer, explained
    programs: tuple[str, ...]
    outputs: tuple[frozenset[tuple[str, ...]], ...]
    hangs: tuple[bool, ...]
    choices: tuple[str, ...]                   # the options offered (outputs, names)
    given: tuple[str, ...] = ()                # the output (or tree) an inverse puzzle starts from
    traced: bool = False                       # its runs must say which process printed what

    def __str__(self) -> str:
        return f"{self.kind} puzzle, seed {self.seed}\n\n{self.code}\n\n{self.question}"


def same_answer(reply: str, answer: str) -> bool:
    """Whether two answers have the same numbers, letters and names, in any order, case and
    punctuation ("none" for nothing).

    >>> same_answer("b, 5 d", "5 B D"), same_answer("none", ""), same_answer("5 B", "5 B D")
    (True, True, False)
    """
    def tokens(text: str) -> list[str]:
        return sorted(t for t in re.findall(r"[A-Za-z]+|\d+", text.upper()) if t != "NONE")

    return tokens(reply) == tokens(answer)


def untraced(lines: tuple[str, ...]) -> tuple[str, ...]:
    """What a traced run printed, as the untraced program prints it: the ``@fork`` lines
    dropped, the ``@PID`` in front of each line removed.

    >>> untraced(("@fork 7 8", "@8 a", "@7 b"))
    ('a', 'b')
    """
    return tuple(line.partition(" ")[2] for line in lines if not line.startswith("@fork "))


class Graph:
    """Events and their happens-before edges; the printed ones carry their line.

    >>> g = Graph()
    >>> a = g.event("a"); b = g.event("b"); c = g.event("c", after=[a])
    >>> sorted(g.orders())
    [('a', 'b', 'c'), ('a', 'c', 'b'), ('b', 'a', 'c')]
    """

    def __init__(self) -> None:
        self.lines: list[str | None] = []
        self.before: list[list[int]] = []
        self.never: set[int] = set()

    def event(self, line: str | None = None, after: Iterable[int] = ()) -> int:
        """A new event (printing ``line``, if given) after the events ``after``."""
        self.lines.append(line)
        self.before.append(list(after))
        return len(self.lines) - 1

    def also_after(self, event: int, others: Iterable[int]) -> None:
        """``event`` happens only after ``others`` too (they may be added later)."""
        self.before[event] += others

    def block(self, event: int) -> None:
        """``event`` never happens (a ``pause`` that nothing wakes)."""
        self.never.add(event)

    def happens(self) -> set[int]:
        """The events that happen: the least set closed under "all before it happened"."""
        done: set[int] = set()
        grew = True
        while grew:
            grew = False
            for e, before in enumerate(self.before):
                if e not in done and e not in self.never and all(b in done for b in before):
                    done.add(e)
                    grew = True
        return done

    def orders(self) -> frozenset[tuple[str, ...]]:
        """Every sequence of printed lines the edges allow (at most :data:`MAX_ORDERS`)."""
        happen = self.happens()
        prints = [e for e in sorted(happen) if self.lines[e] is not None]
        need: dict[int, frozenset[int]] = {}

        def printed_before(e: int) -> frozenset[int]:
            if e not in need:
                found: set[int] = set()
                for b in self.before[e]:
                    found |= printed_before(b)
                    if self.lines[b] is not None:
                        found.add(b)
                need[e] = frozenset(found)
            return need[e]

        ready_after = {p: printed_before(p) for p in prints}
        memo: dict[frozenset[int], set[tuple[str, ...]]] = {}

        def rest(done: frozenset[int]) -> set[tuple[str, ...]]:
            if len(done) == len(prints):
                return {()}
            if done not in memo:
                out: set[tuple[str, ...]] = set()
                for p in prints:
                    if p not in done and ready_after[p] <= done:
                        line = self.lines[p]
                        assert line is not None
                        out |= {(line, *tail) for tail in rest(done | {p})}
                        if len(out) > MAX_ORDERS:
                            raise TooManyOrders(f"more than {MAX_ORDERS} outputs")
                memo[done] = out
            return memo[done]

        return frozenset(rest(frozenset()))
