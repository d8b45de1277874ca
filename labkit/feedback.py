"""The page each student gets back, in Markdown and in HTML, from one view of their row.

Both pages are rendered by Jinja2 (which JupyterLab already installs) from the
same prepared view: the scores per exercise first, then per exercise its errors
and its checks. Every text that came from a check or a submission goes through the
format's own escaping (``|`` and ``*`` in Markdown, ``<`` and ``&`` in HTML), so a
check named ``a | b`` or a message quoting ``<script>`` cannot break the page.
"""
from __future__ import annotations

import re
from typing import Any

import jinja2

from .reports import GradeRow, exercise_scores

__all__ = ["escape_markdown", "feedback_html", "feedback_markdown", "locate_errors"]

_NUMBERED_ERROR = re.compile(r"error in code cell \d+: ")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")  # what is markup inline in GFM


def escape_markdown(text: object) -> str:
    """``text`` as literal Markdown on one line: safe inside a table cell or a heading.

    >>> escape_markdown("a | b_c *d*")
    'a \\\\| b\\\\_c \\\\*d\\\\*'
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


_MARKDOWN = """\
# {{ row.lab | e }}: feedback for {{ who | e }}

**Score: {{ row.score | n }} / {{ row.max_score | n }}** (run: {{ row.status | e }}, \
{{ "%.1f" | format(row.seconds) }} s{% if row.submitted %}; submitted {{ row.submitted }}\
{% endif %})
{% if row.penalty %}
Submitted {{ "%.2f" | format(row.late_days) }} day(s) late: {{ row.penalty | n }} point(s) \
taken by the late policy.
{% endif %}{% for m in comments %}
> **{{ m.item | e }}**{% if m.points is not none %} ({{ m.points | n }} points){% endif %}: \
{{ m.comment | e }}
{% endfor %}

| exercise | points |
|---|---|
{% for ex in exercises %}| {{ ex.id | e }} {{ ex.title | e }} | {{ ex.score | n }}/{{ ex.max | n }} |
{% endfor %}
{% for note in notes %}- {{ note | e }}
{% endfor %}{% for err in errors %}- **{{ err.ename | e }}** in {{ err.cell | e }}: {{ err.evalue | e }}
{% endfor %}
{% for ex in exercises %}
## {{ ex.id | e }} {{ ex.title | e }}: {{ ex.score | n }}/{{ ex.max | n }}
{% for err in ex.errors %}
- **{{ err.ename | e }}** in {{ err.cell | e }}: {{ err.evalue | e }}
{% endfor %}
| result | check | points | details |
|---|---|---|---|
{% for c in ex.checks %}| {{ c.result | e }} | {{ c.check | e }} | {{ c.points | n }}/\
{{ c.max_points | n }} | {{ c.detail | e }}{% for h in c.hints %} *Hint: {{ h | e }}*\
{% endfor %} |
{% endfor %}{% endfor %}{% for w in written %}
## Written answer: {{ w.question | e }}

{{ w.answer | e }}
{% for m in w.manual %}
> {% if m.points is not none %}**{{ m.points | n }} points** {% endif %}{{ m.comment | e }}
{% endfor %}{% endfor %}"""

_HTML = """\
<!doctype html><meta charset="utf-8"><title>{{ row.lab }}: {{ who }}</title>
<style>body{font-family:sans-serif;max-width:60em}td,th{padding:.3em;\
border-bottom:1px solid #ddd;text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}</style>
<h1>{{ row.lab }}: feedback for {{ who }}</h1>
<p><b>Score: {{ row.score | n }} / {{ row.max_score | n }}</b> (run: {{ row.status }}, \
{{ "%.1f" | format(row.seconds) }} s{% if row.submitted %}; submitted {{ row.submitted }}\
{% endif %})</p>
{% if row.penalty %}<p>Submitted {{ "%.2f" | format(row.late_days) }} day(s) late: \
{{ row.penalty | n }} point(s) taken by the late policy.</p>{% endif %}
{% for m in comments %}<blockquote><b>{{ m.item }}</b>{% if m.points is not none %} \
({{ m.points | n }} points){% endif %}: {{ m.comment }}</blockquote>
{% endfor %}<table><tr><th>exercise</th><th>points</th></tr>
{% for ex in exercises %}<tr><td>{{ ex.id }} {{ ex.title }}</td>\
<td>{{ ex.score | n }}/{{ ex.max | n }}</td></tr>
{% endfor %}</table>
{% if notes or errors %}<ul>{% for note in notes %}<li>{{ note }}</li>{% endfor %}{% for err in errors %}<li><b>{{ err.ename }}</b> in {{ err.cell }}: {{ err.evalue }}</li>{% endfor %}</ul>{% endif %}
{% for ex in exercises %}
<h2>{{ ex.id }} {{ ex.title }}</h2><p>{{ ex.score | n }}/{{ ex.max | n }} points</p>
{% for err in ex.errors %}<p><b>{{ err.ename }}</b> in {{ err.cell }}: {{ err.evalue }}</p>
{% endfor %}<table><tr><th>result</th><th>check</th><th>points</th><th>details</th></tr>
{% for c in ex.checks %}<tr><td class="{{ 'pass' if c.passed else 'fail' }}">{{ c.result }}\
</td><td>{{ c.check }}</td><td>{{ c.points | n }}/{{ c.max_points | n }}</td>\
<td>{{ c.detail }}{% for h in c.hints %}<br><i>Hint: {{ h }}</i>{% endfor %}</td></tr>
{% endfor %}</table>
{% endfor %}{% for w in written %}<h2>Written answer: {{ w.question }}</h2>
<blockquote style="white-space:pre-wrap">{{ w.answer }}</blockquote>
{% for m in w.manual %}<p>{% if m.points is not none %}<b>{{ m.points | n }} points</b> \
{% endif %}{{ m.comment }}</p>{% endfor %}
{% endfor %}"""


def _environment(markdown: bool) -> jinja2.Environment:
    env = jinja2.Environment(autoescape=not markdown, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["n"] = lambda x: f"{x:g}"
    if markdown:
        env.filters["e"] = escape_markdown
    return env


_TEMPLATES = {markdown: _environment(markdown).from_string(_MARKDOWN if markdown else _HTML)
              for markdown in (True, False)}


def _view(row: GradeRow) -> dict[str, Any]:
    """What both pages show, grouped by exercise, in the order the checks ran."""
    scores = exercise_scores(row)
    exercises: dict[str, dict[str, Any]] = {}
    for c in row.checks:
        got, possible = scores[c["exercise"]]
        ex = exercises.setdefault(c["exercise"], {
            "id": c["exercise"], "title": c.get("title", ""), "score": got, "max": possible,
            "checks": [], "errors": []})
        passed = bool(c.get("passed"))
        ex["checks"].append({
            "result": "pass" if passed else c.get("status", "failed"), "passed": passed,
            "check": c["check"], "points": c["points"], "max_points": c["max_points"],
            "detail": "" if passed else c.get("message", ""),
            "hints": [] if passed else [h for h in (c.get("hint"), c.get("concept")) if h]})
    elsewhere: list[dict] = []
    for err in row.errors:
        placed = exercises.get(str(err.get("exercise", "")))
        (placed["errors"] if placed is not None else elsewhere).append(err)
    # The run's notes number cells as JupyterLab does not; the placed errors replace them.
    notes = [n for n in row.notes if not (row.errors and _NUMBERED_ERROR.match(n))]
    comments = [dict(m, item=m.get("item") or "overall") for m in row.manual
                if not str(m.get("item", "")).startswith("written:")]
    written = [dict(w, question=_heading(w["question"]) or " ".join(w["question"].split())
                    or w["item"],
                    manual=[m for m in row.manual if m.get("item") == w["item"]])
               for w in row.written]
    return {"row": row, "who": row.name or row.student, "notes": notes, "errors": elsewhere,
            "exercises": list(exercises.values()), "comments": comments, "written": written}


def feedback_markdown(row: GradeRow) -> str:
    """The student's feedback page in Markdown.

    >>> print(feedback_markdown(GradeRow("ada", "00_processes", 0, 1, "ok", 2.0, checks=[
    ...     {"exercise": "00.x", "title": "T", "check": "a | b", "passed": False,
    ...      "status": "failed", "points": 0, "max_points": 1, "message": "m"}])))
    ... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    # 00\\_processes: feedback for ada
    ...| failed | a \\| b | 0/1 | m |
    """
    return _TEMPLATES[True].render(_view(row))


def feedback_html(row: GradeRow) -> str:
    """The student's feedback page as a standalone HTML document."""
    return _TEMPLATES[False].render(_view(row))


def _heading(source: str) -> str:
    for line in source.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def locate_errors(notebook: bytes, errors: list[dict]) -> list[dict]:
    """Place each error of the run (``{"cell": n, "ename", "evalue"}``, n counting code
    cells from 1) under the exercise it broke, with a label a student can find in
    JupyterLab (which numbers no cells): the cell's first line and the heading above it.

    The exercise is that of the next check cell, the one that would have shown the error;
    an error after the last check cell counts for the last exercise.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("## Exercise 1"),
    ...     nbformat.v4.new_code_cell("def f():\\n    return 1 / 0\\nf()"),
    ...     nbformat.v4.new_code_cell('labkit.check("00.f", f)')])
    >>> locate_errors(nbformat.writes(nb).encode(), [{"cell": 1, "ename": "ZeroDivisionError",
    ...                                                "evalue": "division by zero"}])[0]["cell"]
    'the code cell starting `def f():` under "Exercise 1"'
    """
    import nbformat

    from .answers import is_check_cell

    try:
        cells = nbformat.reads(notebook.decode(), as_version=4).cells
    except Exception:  # an unreadable notebook has no cells to point at; its note says so
        cells = []
    labels: dict[int, str] = {}
    owners: dict[int, str] = {}
    heading, last_exercise, waiting = "", "", []
    for cell in cells:
        if cell.cell_type == "markdown":
            heading = _heading(cell.source) or heading
            continue
        if cell.cell_type != "code":
            continue
        number = len(labels) + 1
        first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
        labels[number] = (f"the code cell starting `{first[:60]}`" if first else
                          "an empty code cell") + (f' under "{heading}"' if heading else "")
        waiting.append(number)
        found = re.search(r"""check\(\s*["']([^"']+)["']""", cell.source)
        if is_check_cell(cell.source) and found:
            last_exercise = found.group(1)
            owners.update(dict.fromkeys(waiting, last_exercise))
            waiting = []
    owners.update(dict.fromkeys(waiting, last_exercise))
    placed = []
    for err in errors:
        at = err.get("cell")
        number = at if isinstance(at, int) else 0
        placed.append({"exercise": owners.get(number, ""),
                       "cell": labels.get(number, f"code cell {at}"),
                       "ename": str(err.get("ename", "")), "evalue": str(err.get("evalue", ""))})
    return placed
