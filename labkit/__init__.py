"""labkit: the helpers behind IPC Lab's notebooks.

Run functions in real child processes safely (:func:`run`, :func:`start`,
:func:`run_workers`), create private named kernel objects
(:mod:`labkit.objects`), and check exercises (:func:`check`). Lesson modules
(``labkit.signals``, ``labkit.pipes``, ...) build their experiments on these.
"""
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

__all__ = [
                        "ChildError",
                        "ChildResult",
                        "ExitStatus",
                        "LabError",
                        "LabTimeout",
                        "NoSpaceError",
                        "NotSupportedHere",
                        "check",
                        "objects",
                        "plot_process_tree",
                        "process_tree",
                        "run",
                        "run_workers",
                        "start",
                        "start_ready",
                        "start_workers",
                        "to_signal",
]
