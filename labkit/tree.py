"""Lesson 00's process tree: a snapshot of the processes below one, and a picture of it.

After a few ``fork`` calls the notebook asks "who is whose child now?";
:func:`process_tree` answers from the live system (through psutil) and
:func:`plot_process_tree` draws the answer, zombies in red and stopped
processes in orange. ``labkit.process_tree`` and ``labkit.plot_process_tree``
are these.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from ._validate import pid as valid_pid
from ._validate import whole
from .errors import LabError

__all__ = ["ProcessNode", "plot_process_tree", "process_tree"]


@dataclass
class ProcessNode:
    """One process in a tree snapshot taken from the live system."""

    pid: int
    ppid: int
    name: str
    status: str
    children: list[ProcessNode] = field(default_factory=list)

    def walk(self) -> Iterable[ProcessNode]:
        """This node and all below it, parents first."""
        yield self
        for child in self.children:
            yield from child.walk()


def process_tree(pid: int | None = None, max_depth: int = 6) -> ProcessNode:
    """Snapshot the tree of processes below ``pid`` (default: this process).

    >>> tree = process_tree()
    >>> tree.pid == os.getpid()
    True
    """
    if pid is not None:
        valid_pid(pid)
    whole("max_depth", max_depth, 0, 64, "generations")
    try:
        root = psutil.Process(pid if pid is not None else os.getpid())
    except psutil.NoSuchProcess as e:
        raise LabError(f"there is no process {pid} (it never existed, or it has ended and "
                       "been reaped)") from e

    def node(p: psutil.Process, depth: int) -> ProcessNode:
        with p.oneshot():
            try:
                name, status, ppid = p.name(), p.status(), p.ppid()
            except psutil.ZombieProcess:
                name, status, ppid = "?", psutil.STATUS_ZOMBIE, p.ppid()
        kids = []
        if depth < max_depth:
            try:
                kids = [node(c, depth + 1) for c in sorted(p.children(), key=lambda c: c.pid)]
            except psutil.Error:
                pass  # it ended while we looked
        return ProcessNode(p.pid, ppid, name, status, kids)

    return node(root, 0)


def plot_process_tree(tree: ProcessNode, title: str = "Process tree",
                      labels: dict[int, str] | None = None, ax: Any = None) -> Any:
    """Draw a tree snapshot: one box per process (pid, name, state), parents above children.

    ``labels`` replaces the name of some pids (``{os.getpid(): "this kernel"}``).
    Zombies are drawn in red, stopped processes in orange. Returns the axes.
    """
    labels = labels or {}
    import matplotlib.pyplot as plt

    positions: dict[int, tuple[float, float]] = {}
    next_leaf = [0.0]

    def place(n: ProcessNode, depth: int) -> float:
        if n.children:
            xs = [place(c, depth + 1) for c in n.children]
            x = sum(xs) / len(xs)
        else:
            x = next_leaf[0]
            next_leaf[0] += 1
        positions[n.pid] = (x, -depth)
        return x

    place(tree, 0)
    width = max(next_leaf[0], 1)
    depth = 1 - int(min(y for _, y in positions.values()))
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2.2 * width + 1, 14), 1.4 * depth + 0.8))
    colours = {psutil.STATUS_ZOMBIE: "#f4a6a6", psutil.STATUS_STOPPED: "#f7c97f"}
    for n in tree.walk():
        x, y = positions[n.pid]
        for c in n.children:
            cx, cy = positions[c.pid]
            ax.plot([x, cx], [y - 0.18, cy + 0.18], color="grey", lw=1, zorder=1)
        ax.text(x, y, f"{n.pid}\n{labels.get(n.pid, n.name)[:16]}\n{n.status}",
                ha="center", va="center",
                fontsize=8, zorder=2,
                bbox={"boxstyle": "round", "fc": colours.get(n.status, "#cfe3f7"), "ec": "grey"})
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-depth + 0.5, 0.5)
    ax.set_yticks([-d for d in range(depth)], [f"depth {d}" for d in range(depth)])
    ax.set_xticks([])
    ax.set_title(title)
    ax.set_ylabel("generation below the root")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return ax
