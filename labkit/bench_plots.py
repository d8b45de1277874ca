"""Plots of lesson 07's bench results: throughput, time per message, round trips.

They take a :class:`~labkit.bench_harness.Sweep` (plain data, measured
elsewhere) and return the Axes, so a test checks the data without drawing.
"""
from __future__ import annotations

import statistics
from typing import Any

from .bench_channels import LABELS
from .bench_harness import Sweep, size_name

__all__ = ["plot_round_trips", "plot_throughput", "plot_time_per_message"]

STYLES = {"pipe": "o-", "fifo": "v--", "unix": "s-", "tcp": "D-", "mqueue": "^-",
          "mp_queue": "x-", "mp_pipe": "+-", "shm": "*-", "splice": "o:",
          "vmsplice": "s:"}


def _bandwidth_line(ax: Any, result: Sweep, per_message: bool) -> None:
    xs = result.sizes
    if per_message:
        ys = [statistics.median(result.memcpy[j]) / result.counts[j] * 1e6
              for j in range(len(xs))]
    else:
        ys = [result.memcpy_rate(s) / 1e6 for s in xs]
    ax.plot(xs, ys, "k--", lw=1.5, label="NumPy copy of the same size (memory bandwidth)")


def _size_axis(ax: Any, sizes: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ticks = [s for s in sizes if s in (1, 16, 256, 4096, 65536, 1 << 20, 16 << 20)] or sizes
    ax.set_xticks(ticks, [size_name(s) for s in ticks])
    ax.minorticks_off()


def plot_throughput(result: Sweep, ax: Any = None) -> Any:
    """Median throughput against message size (log-log), quartiles as error bars,
    with the memory-bandwidth line and the ``dd`` baseline. Returns the Axes.

    >>> plot_throughput(quick())       # doctest: +SKIP
    """
    from .display import axes

    ax = axes(f"Throughput against message size ({result.placement})",
              "message size (log scale)", "throughput (MB/s, log scale)", ax=ax,
              figsize=(8.0, 5.0))
    for m in result.mechanisms:
        xs = [s for j, s in enumerate(result.sizes) if result.seconds[m][j]]
        if not xs:
            continue
        qs = [result.quartiles(m, s) for s in xs]
        ax.errorbar(xs, [q[1] / 1e6 for q in qs],
                    yerr=[[(q[1] - q[0]) / 1e6 for q in qs], [(q[2] - q[1]) / 1e6 for q in qs]],
                    fmt=STYLES[m], capsize=2, ms=5, lw=1.2, label=LABELS[m])
    _bandwidth_line(ax, result, per_message=False)
    if result.dd and result.dd_size is not None:
        ax.plot([result.dd_size], [result.dd_rate() / 1e6], "k*", ms=12,
                label="dd | dd through a pipe (C)")
    _size_axis(ax, result.sizes)
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_time_per_message(result: Sweep, ax: Any = None) -> Any:
    """Median time per message against message size (log-log), with a NumPy copy's time.

    >>> plot_time_per_message(quick())     # doctest: +SKIP
    """
    from .display import axes

    ax = axes(f"Time per message in a stream ({result.placement})",
              "message size (log scale)", "time per message (µs, log scale)", ax=ax,
              figsize=(8.0, 5.0))
    for m in result.mechanisms:
        xs = [s for j, s in enumerate(result.sizes) if result.seconds[m][j]]
        if xs:
            ax.plot(xs, [result.per_message(m, s) * 1e6 for s in xs], STYLES[m], ms=5,
                    lw=1.2, label=LABELS[m])
    _bandwidth_line(ax, result, per_message=True)
    _size_axis(ax, result.sizes)
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left")
    return ax


def plot_round_trips(*results: Sweep, ax: Any = None) -> Any:
    """Round-trip times per mechanism: median bars, whiskers from the 10th to the 99th
    percentile, on a log scale; one bar per sweep given (say same core and cross core).

    >>> plot_round_trips(round_trips(pin="same"), round_trips(pin="split"))  # doctest: +SKIP
    """
    from .display import axes

    if not results:
        raise ValueError("give at least one Sweep (from sweep() or round_trips()) with "
                         "round trips")
    mechanisms = [m for m in results[0].round_trip_ns if all(m in r.round_trip_ns
                                                             for r in results)]
    mechanisms.sort(key=results[0].round_trip)
    ax = axes(f"Round trip of a {results[0].latency_size}-byte message",
              "round-trip time (µs, log scale): bars at the median, whiskers from the 10th "
              "to the 99th percentile", "", ax=ax,
              figsize=(8.0, 0.45 * len(mechanisms) * len(results) + 1.5))
    height = 0.8 / len(results)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for k, r in enumerate(results):
        ys = [i + k * height for i in range(len(mechanisms))]
        med = [r.round_trip(m) * 1e6 for m in mechanisms]
        lo = [med[i] - r.round_trip(m, 0.1) * 1e6 for i, m in enumerate(mechanisms)]
        hi = [r.round_trip(m, 0.99) * 1e6 - med[i] for i, m in enumerate(mechanisms)]
        ax.barh(ys, med, height=height, color=colours[k % 4], alpha=0.8,
                xerr=[lo, hi], capsize=2, label=r.placement)
    ax.set_yticks([i + height * (len(results) - 1) / 2 for i in range(len(mechanisms))],
                  [LABELS[m] for m in mechanisms])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    return ax

