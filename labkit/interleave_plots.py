"""Plots of lesson 04's interleaving model: outcomes, and the model next to real processes.

They take the model's :class:`~labkit.interleave.Outcomes` (plain data) and
return the Axes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .interleave_model import Outcomes

__all__ = ["plot_model_vs_real", "plot_outcomes"]


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
