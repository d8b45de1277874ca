"""The interleaving explorer: lesson 04's model behind ipywidgets buttons.

:class:`Explorer` only calls the model (:mod:`labkit.interleave`), and its
handlers run without a browser (``Button.click()``), which is how the tests
drive it. Its outer box carries the CSS class ``labkit-explorer`` (its first
button, "Step P0", changes what is shown), and every part has a stable label
and class of its own ("Step P0" is ``labkit-step-0``, "Run schedule" is
``labkit-run-schedule``, ...), so a test in a real browser can find and click
them.
"""
from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .interleave_model import (
    Outcomes,
    ScheduleError,
    State,
    System,
    TooManyStates,
    Trace,
    counter,
    locked_counter,
    outcomes,
    parse_schedule,
)

__all__ = ["Explorer", "explore"]


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
        n = self.system.workers
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
                ("All interleavings", lambda _b: self._outcomes_clicked(),
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
        columns = [w.VBox([panel, button])
                   for panel, button in zip(self._panels, step_buttons, strict=True)]
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
            steps = parse_schedule(schedule, self.system.workers)
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

    def _outcomes_clicked(self) -> None:
        """The button: the distribution, or (for a system too big) why there is none."""
        try:
            self.show_outcomes()
        except TooManyStates as e:
            self.distribution.value = f"<div class='lk-box'>{html.escape(str(e))}</div>"

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


def explore(workers: int = 2, increments: int = 1, locked: bool = False,
            goal: str | None = None) -> Explorer:
    """An explorer for the counter (``locked`` puts each increment under lock L).

    >>> explore().system.title
    '2 processes, each x += 1 once'
    """
    system = (locked_counter if locked else counter)(workers, increments)
    return Explorer(system, goal=goal)
