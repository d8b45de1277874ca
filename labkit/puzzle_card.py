"""The puzzle card: one seeded puzzle in a notebook, answered before it is revealed.

The card shows the puzzle's program and question, takes an answer, says
whether it is right, and shows the answer only when the student asks for it.
The answer comes from running the program (:func:`labkit.puzzles.solve`,
once per puzzle, on the first click that needs it); "Run it" runs it again,
and another run may print another order. Its
handlers run without a browser (``Button.click()``), which is how the tests
drive it; the outer box carries the CSS class ``labkit-puzzle`` and each
button a class of its own (``labkit-check``, ``labkit-show-answer``, ...).
"""
from __future__ import annotations

import html
from typing import Any

from .puzzles import MAX_SEED, Puzzle, Solution, kinds, puzzle, solve

__all__ = ["PuzzleCard"]


class PuzzleCard:
    """A card for puzzles of one kind, starting at ``seed``; "New puzzle" takes the next.

    >>> card = PuzzleCard("fork", seed=3)
    >>> card.answer_box.value = card.puzzle.answer   # the model's answer; the card runs it
    >>> card.buttons["Check"].click()
    >>> "Right" in card.message.value, card.solution.value
    (True, '')
    >>> card.buttons["Show the answer"].click()
    >>> card.puzzle.answer in card.solution.value
    True
    """

    CSS_CLASS = "labkit-puzzle"

    def __init__(self, kind: str, seed: int = 0) -> None:
        import ipywidgets as w

        self.kind = kind
        self.puzzle: Puzzle = puzzle(kind, seed)
        self._solution: Solution | None = None
        self.title = w.HTML()
        self.code = w.HTML()
        self.code.add_class("labkit-puzzle-code")
        self.answer_box = w.Text(placeholder="your answer", description="Answer:",
                                 layout=w.Layout(width="320px"))
        self.answer_box.add_class("labkit-answer")
        self.message = w.HTML()
        self.message.add_class("labkit-message")
        self.solution = w.HTML()
        self.solution.add_class("labkit-solution")
        self.buttons: dict[str, Any] = {}
        for label, handler, tip in (
                ("Check", self.check, "compare your answer with the puzzle's"),
                ("Show the answer", self.reveal, "give up and read the answer, explained"),
                ("Run it", self.run, "run the program once on real processes"),
                ("New puzzle", self.next, "another puzzle of the same kind")):
            b = w.Button(description=label, tooltip=tip, layout=w.Layout(width="auto"))
            b.add_class("labkit-" + label.lower().replace(" ", "-"))
            b.on_click(lambda _b, handler=handler: handler())
            self.buttons[label] = b
        self.widget = w.VBox([self.title, self.code,
                              w.HBox([self.answer_box, *self.buttons.values()]),
                              self.message, self.solution])
        self.widget.add_class(self.CSS_CLASS)
        self._show()

    def _show(self) -> None:
        p = self.puzzle
        self.title.value = (f"<b>Puzzle: {html.escape(kinds()[p.kind])}</b> "
                            f"&nbsp; <i>seed {p.seed}</i>")
        self.code.value = (f"<pre style='font-size:13px'>{html.escape(p.code)}</pre>"
                           f"<pre style='white-space:pre-wrap'>{html.escape(p.question)}</pre>")
        self.answer_box.value = ""
        self.message.value = ""
        self.solution.value = ""
        self._solution = None

    def _solved(self) -> Solution:
        if self._solution is None:
            self._solution = solve([self.puzzle])[0]
        return self._solution

    def check(self) -> None:
        """Say whether the typed answer is right (without giving the answer away)."""
        if not self.answer_box.value.strip():
            self.message.value = "Type an answer first."
        elif self._solved().check(self.answer_box.value):
            self.message.value = "<span style='color:#080'><b>Right.</b></span>"
        else:
            self.message.value = ("<span style='color:#b00'>Not quite: look again, or run "
                                  "it, or ask for the answer.</span>")

    def reveal(self) -> None:
        """Show the answer, explained."""
        self.solution.value = (f"<pre style='white-space:pre-wrap'>"
                               f"{html.escape(str(self._solved()))}</pre>")

    def run(self) -> None:
        """Run the program (each candidate, for an inverse puzzle) once; show what it printed.

        A run shows one possible output; another run may show another.
        """
        printed = solve([self.puzzle])[0].printed()
        self.message.value = f"One real run printed:<pre>{html.escape(printed)}</pre>"

    def next(self) -> None:
        """The next puzzle of this kind."""
        self.puzzle = puzzle(self.kind, (self.puzzle.seed + 1) % (MAX_SEED + 1))
        self._show()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

