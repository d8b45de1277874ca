"""The puzzle generators: from a seed, a real program, its model, the question and answer.

Each generator draws a small program from ``random.Random("KIND:SEED")``
(the same seed, the same puzzle, on every machine and Python), renders it as
the Python a student reads and :func:`labkit.puzzles.run_real` runs, and
builds its happens-before :class:`~labkit.puzzle_model.Graph` from the same
drawn structure, so the text and the model cannot drift apart. A drawing
the model finds too big (too many outputs) is dropped and drawn again.
"""
from __future__ import annotations

import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace

from .puzzle_model import Graph, Puzzle, TooManyOrders

__all__ = ["KINDS"]

LETTERS = "ABCD"

# --- fork trees -------------------------------------------------------------------------
# A statement is ("print", line) (line None prints x), ("add", k) for x += k, or
# ("fork", body, exits, waits): body None is a bare os.fork(); with a body, the child runs
# it, then os._exit(0) if exits, else goes on. Each process has its own x.

Stmt = tuple   # nested tuples, see above
Block = tuple[Stmt, ...]


def _draw_block(rng: random.Random, letters: list[str], depth: int, size: int) -> Block:
    out: list[Stmt] = []
    for _ in range(size):
        r = rng.random()
        if depth >= 2 or r < 0.45:
            out.append(("print", None if rng.random() < 0.3 else letters.pop(0)))
        elif r < 0.55:
            out.append(("add", rng.randint(1, 3)))
        elif rng.random() < 0.5:
            bare_wait = rng.random() < 0.5
            out.append(("fork", None, False, bare_wait))
        else:
            body = _draw_block(rng, letters, depth + 1, rng.randint(1, 2))
            out.append(("fork", body, rng.random() < 0.5, rng.random() < 0.4))
    return tuple(out)


def _render_block(block: Block, depth: int = 0) -> list[str]:
    pad = "    " * depth
    lines: list[str] = []
    for s in block:
        if s[0] == "print":
            lines.append(f'{pad}print("{s[1]}")' if s[1] else f"{pad}print(x)")
            continue
        if s[0] == "add":
            lines.append(f"{pad}x += {s[1]}")
            continue
        _, body, exits, waits = s
        if body is None:
            lines += ([f"{pad}pid = os.fork()", f"{pad}if pid > 0:", f"{pad}    os.waitpid(pid, 0)"]
                      if waits else [f"{pad}os.fork()"])
            continue
        inner = _render_block(body, depth + 1) + ([f"{pad}    os._exit(0)"] if exits else [])
        if not waits:
            lines += [f"{pad}if os.fork() == 0:", *inner]
        elif exits:
            lines += [f"{pad}pid = os.fork()", f"{pad}if pid == 0:", *inner,
                      f"{pad}os.waitpid(pid, 0)"]
        else:
            lines += [f"{pad}pid = os.fork()", f"{pad}if pid == 0:", *inner, f"{pad}else:",
                      f"{pad}    os.waitpid(pid, 0)"]
    return lines


def _fork_source(block: Block) -> str:
    body = _render_block(block)
    uses_x = any(line.strip() == "print(x)" or "x +=" in line for line in body)
    return "\n".join(["import os", "", *(["x = 0"] if uses_x else []), *body])


@dataclass
class _Proc:
    name: str
    parent: str | None
    lines: list[str]


def _fork_model(block: Block) -> tuple[Graph, list[_Proc]]:
    """The graph of a fork program, and its processes in the order they are forked."""
    g = Graph()
    procs: list[_Proc] = []

    def run(stmts: Block, after: list[int], parent: str | None, x: int) -> int:
        me = _Proc(f"p{len(procs)}", parent, [])
        procs.append(me)
        last = after
        for i, s in enumerate(stmts):
            if s[0] == "print":
                line = s[1] or str(x)
                last = [g.event(line, last)]
                me.lines.append(line)
                continue
            if s[0] == "add":
                x += s[1]
                continue
            _, body, exits, waits = s
            fork = g.event(None, last)
            child = (body or ()) if exits else (body or ()) + stmts[i + 1:]
            child_exit = run(child, [fork], me.name, x)
            last = [g.event(None, [fork, child_exit])] if waits else [fork]
        return g.event(None, last)

    run(block, [], None, 0)
    return g, procs


def _tree(procs: list[_Proc]) -> str:
    kids: dict[str | None, list[_Proc]] = {}
    for p in procs:
        kids.setdefault(p.parent, []).append(p)
    out: list[str] = []

    def draw(p: _Proc, lead: str, tail: str) -> None:
        out.append(f"{lead}{p.name}: prints {' '.join(p.lines) or 'nothing'}")
        mine = kids.get(p.name, [])
        for i, k in enumerate(mine):
            last = i == len(mine) - 1
            draw(k, tail + ("└── " if last else "├── "), tail + ("    " if last else "│   "))

    draw(procs[0], "", "")
    return "\n".join(out)


def _draw_fork(rng: random.Random) -> tuple[Block, frozenset[tuple[str, ...]], list[_Proc]]:
    while True:
        block = _draw_block(rng, list("abcdefghijklmnopqrstuvwxyz"), 0, rng.randint(3, 6))
        if not any(s[0] == "fork" for s in block):
            continue
        g, procs = _fork_model(block)
        if len(procs) > 8:
            continue
        try:
            legal = g.orders()
        except TooManyOrders:
            continue
        if 3 <= len(next(iter(legal))) <= 12:
            return block, legal, procs


def _show(out: tuple[str, ...]) -> str:
    return " ".join(out) if out else "(nothing)"


def _fork(seed: int) -> Puzzle:
    rng = random.Random(f"fork:{seed}")
    block, legal, procs = _draw_fork(rng)
    ordered = sorted(legal)
    picks = rng.sample(ordered, rng.randint(1, min(2, len(ordered))))
    # Wrong outputs one swap of two neighbouring lines away from a possible one: each breaks
    # exactly one ordering the program enforces (a wait, a print before a fork), so telling
    # them apart takes the reasoning, not a glance at the first line.
    near = sorted({o[:i] + (o[i + 1], o[i]) + o[i + 2:]
                   for o in ordered[:50] for i in range(len(o) - 1)} - legal)
    picks += rng.sample(near, min(len(near), 4 - len(picks)))
    for _ in range(60):
        if len(picks) >= 4:
            break
        wrong = tuple(rng.sample(ordered[0], len(ordered[0])))
        if wrong not in legal and wrong not in picks:
            picks.append(wrong)
    picks += [o for o in ordered if o not in picks][:4 - len(picks)]
    rng.shuffle(picks)
    possible = [LETTERS[i] for i, o in enumerate(picks) if o in legal]
    n = len(ordered[0])
    listing = "\n".join(f"  {_show(o)}" for o in ordered[:12])
    more = f"\n  ... and {len(ordered) - 12} more" if len(ordered) > 12 else ""
    return Puzzle(
        "fork", seed, _fork_source(block),
        "How many lines does this program print (every process's lines count), and which "
        "of these outputs can it print? Its output goes to a terminal, so each print is "
        "written at once (into a pipe, Python would buffer it, and a fork would copy the "
        "unwritten lines).\n"
        + "\n".join(f"  {LETTERS[i]}: {_show(o)}" for i, o in enumerate(picks))
        + "\nAnswer with the number and the letters, e.g. `5 B D`.",
        f"{n} {' '.join(possible)}",
        f"{n} lines from {len(procs)} processes; possible: {', '.join(possible)}.\n\n"
        f"The process tree, each process with the lines it prints:\n{_tree(procs)}\n\n"
        f"{len(ordered)} output order(s) are possible:\n{listing}{more}",
        (_fork_source(block),), (legal,), (False,), tuple(_show(o) for o in picks))


# --- inverse: given an output, which programs can print it -------------------------------


def _mutations(block: Block) -> list[Block]:
    """Every program one small edit away: two neighbours swapped, a wait or exit toggled."""
    out: list[Block] = []
    for i, s in enumerate(block):
        if i + 1 < len(block) and block[i] != block[i + 1]:
            out.append(block[:i] + (block[i + 1], s) + block[i + 2:])
        if s[0] != "fork":
            continue
        _, body, exits, waits = s
        out.append(block[:i] + (("fork", body, exits, not waits),) + block[i + 1:])
        if body is not None:
            out.append(block[:i] + (("fork", body, not exits, waits),) + block[i + 1:])
            out += [block[:i] + (("fork", b, exits, waits),) + block[i + 1:]
                    for b in _mutations(body)]
    return out


def _inverse(seed: int) -> Puzzle:
    rng = random.Random(f"inverse:{seed}")
    block, legal, _ = _draw_fork(rng)
    seen = {_fork_source(block)}
    candidates = [(block, legal)]
    for m in rng.sample(_mutations(block), len(_mutations(block))):
        if len(candidates) == 4:
            break
        try:
            m_legal = _fork_model(m)[0].orders()
        except TooManyOrders:
            continue
        if _fork_source(m) not in seen:
            seen.add(_fork_source(m))
            candidates.append((m, m_legal))
    target = rng.choice(sorted(legal))
    rng.shuffle(candidates)
    sources = [_fork_source(b) for b, _ in candidates]
    letters = [LETTERS[i] for i, (_, lg) in enumerate(candidates) if target in lg]
    code = "\n\n".join(f"# Program {LETTERS[i]}\n{s}" for i, s in enumerate(sources))
    why = "\n".join(f"{LETTERS[i]}: {'can' if target in lg else 'cannot'} print it "
                    f"({len(lg)} possible output(s), {len(next(iter(lg)))} lines)"
                    for i, (_, lg) in enumerate(candidates))
    return Puzzle(
        "inverse", seed, code,
        f"Which of the programs {LETTERS[0]}-{LETTERS[len(sources) - 1]} can print exactly "
        f"this (one line each, in this order)?\n  {_show(target)}\n"
        "Answer with the letters of every program that can.",
        " ".join(letters), why, tuple(sources), tuple(lg for _, lg in candidates),
        tuple(False for _ in candidates), tuple(LETTERS[:len(sources)]), target)


# --- inverse from a tree: given a process tree, which programs make it --------------------


def _tree_kind(seed: int) -> Puzzle:
    rng = random.Random(f"tree:{seed}")
    while True:
        block, legal, procs = _draw_fork(rng)
        target = _tree(procs)
        seen = {_fork_source(block)}
        candidates = [(block, legal, target)]
        for m in rng.sample(_mutations(block), len(_mutations(block))):
            if len(candidates) == 4:
                break
            g, m_procs = _fork_model(m)
            twins = sum(t == target for _, _, t in candidates)
            if (_fork_source(m) in seen or len(m_procs) > 8
                    or (twins >= 2 and _tree(m_procs) == target)):
                continue
            try:
                candidates.append((m, g.orders(), _tree(m_procs)))
            except TooManyOrders:
                continue
            seen.add(_fork_source(m))
        # A wait toggled leaves the tree as it is: one such twin is a fair trap, but the
        # others must make other trees, or most answers are "all of them".
        if len(candidates) >= 3 and any(t != target for _, _, t in candidates):
            break
    rng.shuffle(candidates)
    sources = [_fork_source(b) for b, _, _ in candidates]
    letters = [LETTERS[i] for i, (_, _, t) in enumerate(candidates) if t == target]
    code = "\n\n".join(f"# Program {LETTERS[i]}\n{s}" for i, s in enumerate(sources))
    why = "\n\n".join(f"{LETTERS[i]} {'makes' if t == target else 'does not make'} it:\n{t}"
                       for i, (_, _, t) in enumerate(candidates))
    return Puzzle(
        "tree", seed, code,
        "Which of the programs "
        f"{LETTERS[0]}-{LETTERS[len(sources) - 1]} make exactly this process tree (each "
        "process with the lines it prints, its children in the order they are forked, "
        "p0 the first process)?\n\n" + target + "\n\n"
        "Answer with the letters of every program that makes it.",
        " ".join(letters), why, tuple(sources), tuple(lg for _, lg, _ in candidates),
        tuple(False for _ in candidates), tuple(LETTERS[:len(sources)]),
        tuple(target.splitlines()), traced=True)


def _real_tree(lines: tuple[str, ...]) -> str:
    """The process tree a traced run made (see ``labkit/programs/puzzle_runs.py``), drawn
    as :func:`_tree` draws the model's: processes named in the order the model forks them
    (each child, and all it forks, before its parent's next child)."""
    kids: dict[int, list[int]] = {}
    printed: dict[int, list[str]] = {}
    for line in lines:
        head, _, rest = line.partition(" ")
        if head == "@fork":
            parent, child = map(int, rest.split())
            kids.setdefault(parent, []).append(child)
        else:
            printed.setdefault(int(head[1:]), []).append(rest)
    forked = {k for ks in kids.values() for k in ks}
    (first,) = (set(kids) | set(printed)) - forked
    procs: list[_Proc] = []

    def walk(pid: int, parent: str | None) -> None:
        procs.append(_Proc(f"p{len(procs)}", parent, printed.get(pid, [])))
        me = procs[-1].name
        for k in kids.get(pid, []):
            walk(k, me)

    walk(first, None)
    return _tree(procs)


# --- signals: handlers, masks, kill, pause ------------------------------------------------

_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGCHLD")
_QUIET = {"SIGCHLD"}      # default action: ignore


def _num(name: str) -> int:
    return int(signal.Signals[name])


@dataclass(frozen=True)
class _SignalSpec:
    action: tuple[tuple[str, str], ...]   # (signal, "handler" | "ignore" | "default")
    sends: tuple[str, ...]
    first: tuple[str, ...]                 # unblocked first
    change: tuple[str, str] | None         # (signal, new action) between the unblocks
    second: tuple[str, ...]                # unblocked second
    pause: bool


@dataclass(frozen=True)
class _Belief:
    """How delivery works (the truth), or a plausible mistake about it (a wrong choice)."""

    coalesce: bool = True        # a standard signal is pending at most once
    numeric: bool = True         # pending signals are handled lowest number first
    fatal_first: bool = True     # a pending fatal signal kills before any handler runs
    flush: bool = True           # setting SIG_IGN discards a pending signal
    mask: bool = True            # a blocked signal waits; it does not act when sent


def _deliver(spec: _SignalSpec, belief: _Belief) -> tuple[list[str], bool, list[str]]:
    """The child's and parent's lines, whether they hang, and the story (for the solution)."""
    action = dict(spec.action)
    pending = list(dict.fromkeys(spec.sends)) if belief.coalesce else list(spec.sends)
    lines: list[str] = []
    story = [f"While everything is blocked the parent sends {', '.join(spec.sends)}; "
             f"pending afterwards: {', '.join(sorted(set(pending), key=_num))}."]

    def unblock(which: tuple[str, ...]) -> str | None:
        due = [s for s in pending if s in which]
        pending[:] = [s for s in pending if s not in which]
        if belief.numeric:
            due.sort(key=_num)
        fatal = [s for s in due if action[s] == "default" and s not in _QUIET]
        story.append(f"Unblocking {', '.join(which)} delivers {', '.join(due) or 'nothing'}.")
        if fatal and belief.fatal_first:
            return min(fatal, key=_num)
        for s in due:
            if action[s] == "handler":
                lines.append(f"child: caught {s}")
            elif action[s] == "default" and s not in _QUIET:
                return s
        return None

    killed = None
    if not belief.mask:               # the mistake: each signal acts as it is sent
        pending[:] = []
        for s in spec.sends:
            pending.append(s)
            killed = killed or unblock((s,))
        pending[:] = []
    killed = killed or unblock(spec.first)
    if killed is None:
        lines.append("child: after the first unblock")
        if spec.change:
            sig, new = spec.change
            action[sig] = new
            if new == "ignore" and belief.flush:
                pending[:] = [s for s in pending if s != sig]
                story.append(f"Setting SIG_IGN for {sig} discards it if it is pending.")
        if spec.second:
            killed = unblock(spec.second)
            if killed is None:
                lines.append("child: after the second unblock")
    if killed is not None:
        story.append(f"{killed}'s default action ends the child before any Python handler "
                     "runs.")
        return [*lines, f"parent: child killed by {killed}"], False, story
    if spec.pause:
        story.append("pause() waits for a signal that arrives after it is called: none "
                     "will, so the child sleeps for ever, and the parent in waitpid.")
        return lines, True, story
    return [*lines, "child: done", "parent: child exited with 0"], False, story


def _signal_source(spec: _SignalSpec) -> str:
    used = sorted({s for s, _ in spec.action}, key=_num)

    def sigset(names: tuple[str, ...] | list[str]) -> str:
        return "{" + ", ".join(f"signal.{s}" for s in sorted(names, key=_num)) + "}"

    what = {"handler": "handler", "ignore": "signal.SIG_IGN", "default": "signal.SIG_DFL"}
    child = [f"    signal.signal(signal.{s}, {what[a]})" for s, a in spec.action]
    child += [f"    signal.pthread_sigmask(signal.SIG_BLOCK, {sigset(used)})",
              '    os.write(ready_w, b"!")        # handlers and mask are in place',
              "    os.read(go_r, 1)               # wait until every signal is sent",
              f"    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sigset(spec.first)})",
              '    print("child: after the first unblock")']
    if spec.change:
        child.append(f"    signal.signal(signal.{spec.change[0]}, {what[spec.change[1]]})")
    if spec.second:
        child += [f"    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sigset(spec.second)})",
                  '    print("child: after the second unblock")']
    if spec.pause:
        child.append("    signal.pause()")
    child += ['    print("child: done")', "    os._exit(0)"]
    return "\n".join([
        "import os", "import signal", "", "",
        "def handler(signum, frame):",
        '    print("child: caught", signal.Signals(signum).name)', "", "",
        "ready_r, ready_w = os.pipe()", "go_r, go_w = os.pipe()", "pid = os.fork()",
        "if pid == 0:", *child,
        "os.read(ready_r, 1)",
        *[f"os.kill(pid, signal.{s})" for s in spec.sends],
        'os.write(go_w, b"!")', "_, status = os.waitpid(pid, 0)",
        "if os.WIFSIGNALED(status):",
        '    print("parent: child killed by", signal.Signals(os.WTERMSIG(status)).name)',
        "else:", '    print("parent: child exited with", os.WEXITSTATUS(status))'])


def _draw_signals(rng: random.Random) -> _SignalSpec:
    used = rng.sample(_SIGNALS, rng.randint(2, 4))
    action = tuple((s, rng.choice(["handler", "handler", "ignore", "default"])) for s in used)
    sends = tuple(rng.choice(used) for _ in range(rng.randint(2, 5)))
    first = tuple(sorted(rng.sample(used, rng.randint(1, len(used))), key=_num))
    rest = [s for s in used if s not in first]
    change = (rng.choice(rest), rng.choice(["handler", "ignore"])) if rest and rng.random() < 0.5 \
        else None
    second = tuple(sorted(rng.sample(rest, rng.randint(1, len(rest))), key=_num)) if rest \
        else ()
    return _SignalSpec(action, sends, first, change, second, rng.random() < 0.2)


def _printed(lines: list[str] | tuple[str, ...], hangs: bool) -> str:
    """An output as a choice shows it."""
    return ("\n".join(lines) or "(nothing)") + ("\n(and then both processes wait for ever)"
                                               if hangs else "")


def _signals(seed: int) -> Puzzle:
    rng = random.Random(f"signals:{seed}")
    spec = _draw_signals(rng)
    lines, hangs, story = _deliver(spec, _Belief())
    shown = _printed(lines, hangs)
    choices = [shown]
    mistakes = [_Belief(coalesce=False), _Belief(numeric=False), _Belief(fatal_first=False),
                _Belief(flush=False), _Belief(coalesce=False, numeric=False),
                _Belief(mask=False, coalesce=False)]
    wrong = [_deliver(spec, b)[:2] for b in mistakes]
    # Where few mistakes change anything: a pause that returns (or one that hangs), the
    # other ending, every signal caught, a line forgotten.
    wrong.append(_deliver(replace(spec, pause=not spec.pause), _Belief())[:2])
    ending = (["child: done", "parent: child exited with 0"] if lines[-1:] and "killed" in
              lines[-1] else ["parent: child killed by SIGTERM"])
    wrong.append(([x for x in lines if x.startswith("child: after")] + ending, False))
    quiet = [s for s, a in spec.action if a != "handler"]
    wrong.append(([f"child: caught {s}" for s in quiet[:1]] + lines, hangs))
    wrong.append((lines[1:], hangs))
    for other, other_hangs in wrong:
        text = _printed(other, other_hangs)
        if text not in choices and len(choices) < 4:
            choices.append(text)
    rng.shuffle(choices)
    right = LETTERS[choices.index(shown)]
    g = Graph()
    last: list[int] = []
    for line in lines:
        last = [g.event(line, last)]
    if hangs:
        g.block(g.event(None, last))
    source = _signal_source(spec)
    return Puzzle(
        "signals", seed, source,
        "What does this program print? The child blocks every signal it uses before the "
        "parent sends any.\n"
        + "\n".join(f"{LETTERS[i]}:\n" + "\n".join(f"    {x}" for x in c.splitlines())
                    for i, c in enumerate(choices))
        + "\nAnswer with one letter.",
        right, f"{right}:\n{shown}\n\n" + "\n".join(story),
        (source,), (g.orders(),), (hangs,), tuple(choices))


# --- descriptors and pipes: which read reaches end of file, which process hangs ------------

_WORDS = ("hi", "ping", "hello", "bytes", "data", "ok", "pipe", "stream", "abc", "xyzzy",
          "kernel", "fork", "exec", "reader", "writer", "buffer")


@dataclass(frozen=True)
class _PipeSpec:
    procs: tuple[str, ...]                       # "parent", "A", maybe "B"
    reader: tuple[str, ...]                      # per pipe
    words: tuple[tuple[tuple[str, str], ...], ...]   # per pipe: (writer, word)
    early: tuple[tuple[str, str], ...]           # (process, "r1" | "w2" ...) closed first
    after: tuple[tuple[str, int], ...]           # (writer, pipe) closes w after writing


def _draw_pipes(rng: random.Random) -> _PipeSpec:
    procs = ("parent", "A", "B")[:rng.randint(2, 3)]
    pipes = rng.randint(1, 2)
    reader = tuple(rng.sample(procs, pipes))
    words, early, after = [], [], []
    for i in range(pipes):
        others = [p for p in procs if p != reader[i]]
        writers = [p for p in others if rng.random() < 0.6] or [rng.choice(others)]
        words.append(tuple((w, rng.choice(_WORDS)) for w in writers
                           for _ in range(rng.choice((1, 1, 2)))))
        for p in procs:
            if p == reader[i]:
                if rng.random() < 0.55:
                    early.append((p, f"w{i + 1}"))
                continue
            if rng.random() < (0.7 if p in writers else 0.5):
                early.append((p, f"r{i + 1}"))
            if p in writers:
                if rng.random() < 0.6:
                    after.append((p, i))
            elif rng.random() < 0.5:
                early.append((p, f"w{i + 1}"))
    return _PipeSpec(procs, reader, tuple(words), tuple(early), tuple(after))


def _pipe_steps(spec: _PipeSpec, p: str) -> list[str]:
    """The code process ``p`` runs (unindented), from its first close to its last line."""
    out = [f"os.close({end})" for q, end in spec.early if q == p]
    for i, words in enumerate(spec.words):
        out += [f'os.write(w{i + 1}, b"{word}")' for q, word in words if q == p]
        if (p, i) in spec.after:
            out.append(f"os.close(w{i + 1})")
    for i, r in enumerate(spec.reader):
        if r == p:
            out += ['data = b""', f"while chunk := os.read(r{i + 1}, 100):",
                    "    data += chunk",
                    f'print("{p}: read", len(data), "bytes, then end of file")']
    return out


def _pipe_source(spec: _PipeSpec) -> str:
    children = [p for p in spec.procs if p != "parent"]
    lines = ["import os", ""]
    lines += [f"r{i + 1}, w{i + 1} = os.pipe()" for i in range(len(spec.reader))]
    for c in children:
        lines += [f"{c.lower()} = os.fork()", f"if {c.lower()} == 0:",
                  *[f"    {s}" for s in _pipe_steps(spec, c)],
                  f'    print("{c}: done")', "    os._exit(0)"]
    lines += _pipe_steps(spec, "parent")
    lines += [f"os.waitpid({c.lower()}, 0)" for c in children]
    lines.append('print("parent: done")')
    return "\n".join(lines)


def _pipe_model(spec: _PipeSpec) -> tuple[Graph, dict[str, int], dict[int, list[str]]]:
    """The graph, each process's "done" event, and per pipe who holds its write end open."""
    g = Graph()
    children = [p for p in spec.procs if p != "parent"]
    forks: dict[str, int] = {}
    last: list[int] = []
    for c in children:
        last = [g.event(None, last)]
        forks[c] = last[0]
    forked = last
    release: dict[tuple[str, int], int] = {}
    reads: dict[int, int] = {}
    ends: dict[str, int] = {}
    done: dict[str, int] = {}
    for p in [*children, "parent"]:
        last = [forks[p]] if p in forks else forked
        for i, words in enumerate(spec.words):
            if any(q == p for q, _ in words) and (p, i) in spec.after:
                last = [g.event(None, last)]
                release[(p, i)] = last[0]
        for i, r in enumerate(spec.reader):
            if r == p:
                reads[i] = g.event(None, last)
                last = [g.event(f"{p}: read {_length(spec, i)} bytes, then end of file",
                                [reads[i]])]
        if p == "parent":
            for c in children:
                last = [g.event(None, [*last, ends[c]])]
        done[p] = g.event(f"{p}: done", last)
        ends[p] = g.event(None, [done[p]])
    holders: dict[int, list[str]] = {}
    for i in range(len(spec.reader)):
        holders[i] = [p for p in spec.procs if (p, f"w{i + 1}") not in spec.early]
        g.also_after(reads[i], [release.get((p, i), ends[p]) for p in holders[i]])
    return g, done, holders


def _length(spec: _PipeSpec, pipe: int) -> int:
    return sum(len(word) for _, word in spec.words[pipe])


def _pipes(seed: int) -> Puzzle:
    rng = random.Random(f"pipes:{seed}")
    spec = _draw_pipes(rng)
    g, done, holders = _pipe_model(spec)
    happen = g.happens()
    stuck = [p for p in spec.procs if done[p] not in happen]
    story = []
    for i, r in enumerate(spec.reader):
        open_ = [p for p in holders[i] if (p, i) not in spec.after and done[p] not in happen]
        story.append(
            f"{r}'s read of pipe {i + 1} reaches end of file: every copy of w{i + 1} is closed "
            "by then (closed, or its process ended)." if not open_ else
            f"{r}'s read of pipe {i + 1} never sees end of file: w{i + 1} stays open in "
            f"{' and '.join(open_)}, which never end{'s' if len(open_) == 1 else ''}.")
    if "parent" in stuck and len(spec.procs) > 1:
        story.append("The parent waits for every child with waitpid, so it hangs if one "
                     "does.")
    source = _pipe_source(spec)
    return Puzzle(
        "pipes", seed, source,
        "Which reads reach end of file, and which processes never finish? Answer with the "
        f"names of the processes that hang ({', '.join(spec.procs)}), or none.",
        " ".join(stuck) or "none",
        f"Never finish: {', '.join(stuck) or 'none'}.\n" + "\n".join(story),
        (source,), (g.orders(),), (bool(stuck),), spec.procs)


# --- answers from real runs ----------------------------------------------------------------
# Each takes a puzzle and, per program, what one real run printed and whether it hung (runs
# the model allows: labkit.puzzles.solve checks that first). Where orders vary, which orders
# are possible is the model's to say; everything else is read from the runs.

Runs = list[tuple[tuple[str, ...], bool]]


def _fork_answer(p: Puzzle, runs: Runs) -> str:
    ((lines, _),) = runs
    possible = [LETTERS[i] for i, c in enumerate(p.choices) if tuple(c.split()) in p.outputs[0]]
    return f"{len(lines)} {' '.join(possible)}"


def _signals_answer(p: Puzzle, runs: Runs) -> str:
    ((lines, hung),) = runs
    return LETTERS[p.choices.index(_printed(lines, hung))]


def _pipes_answer(p: Puzzle, runs: Runs) -> str:
    ((lines, _),) = runs
    finished = {line.split(":")[0] for line in lines if line.endswith(": done")}
    return " ".join(name for name in p.choices if name not in finished) or "none"


def _inverse_answer(p: Puzzle, runs: Runs) -> str:
    return " ".join(LETTERS[j] for j, (lines, _) in enumerate(runs)
                    if lines == p.given or p.given in p.outputs[j])


def _tree_answer(p: Puzzle, runs: Runs) -> str:
    return " ".join(LETTERS[j] for j, (lines, _) in enumerate(runs)
                    if tuple(_real_tree(lines).splitlines()) == p.given)


KINDS: dict[str, tuple[str, Callable[[int], Puzzle], Callable[[Puzzle, Runs], str]]] = {
    "fork": ("fork trees: count the lines, pick the possible orders, draw the tree", _fork,
             _fork_answer),
    "signals": ("signal programs: handlers, masks, kill and pause; predict the output",
                _signals, _signals_answer),
    "pipes": ("descriptors and pipes: which read gets end of file, which process hangs",
              _pipes, _pipes_answer),
    "inverse": ("inverse puzzles: given an output, pick the programs that can print it",
                _inverse, _inverse_answer),
    "tree": ("inverse puzzles from a tree: given a process tree, pick the programs that make "
             "it", _tree_kind, _tree_answer),
}
