"""labkit: the helpers behind IPC Lab's notebooks.

Run functions in real child processes safely (:func:`run`, :func:`start`,
:func:`run_workers`), create private named kernel objects
(:mod:`labkit.objects`), and check exercises (:func:`check`). Lesson modules
(``labkit.signals``, ``labkit.pipes``, ...) build their experiments on these.

The names below are imported when first used (``labkit.run``, ``from labkit
import run``): a program under ``labkit/programs``, the janitor and the
grader's processes start a new interpreter that needs only a few modules.
Only the session (:mod:`labkit.session`) is imported at once, so a process
forked after ``import labkit`` still belongs to the session of its parent.
"""
from __future__ import annotations

import importlib as _importlib
import typing as _typing

from . import session as _session  # noqa: F401 - the session is the importing process

if _typing.TYPE_CHECKING:
    from . import objects
    from .checking import check
    from .errors import ChildError, LabError, LabTimeout, NoSpaceError, NotSupportedHere
    from .processes import (
        ChildResult,
        ExitStatus,
        run,
        run_workers,
        start,
        start_ready,
        start_workers,
        to_signal,
    )
    from .tree import plot_process_tree, process_tree

__version__ = "0.1.0"

__all__ = ["ChildError", "ChildResult", "ExitStatus", "LabError", "LabTimeout", "NoSpaceError",
           "NotSupportedHere", "check", "objects", "plot_process_tree", "process_tree", "run",
           "run_workers", "start", "start_ready", "start_workers", "to_signal"]

# Where the names of __all__ are defined, looked up in this order (objects is a module).
_HOMES = ("errors", "processes", "checking", "tree")


def __getattr__(name: str) -> _typing.Any:
    """Import a public name on its first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    if name == "objects":
        value = _importlib.import_module(".objects", __name__)
    else:
        homes = (_importlib.import_module(f".{home}", __name__) for home in _HOMES)
        value = next(getattr(module, name) for module in homes if hasattr(module, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
