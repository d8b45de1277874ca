"""How a child process ended, and what it gave back: exit statuses and results.

:class:`ExitStatus` decodes a wait status as ``waitpid`` returns it (exit
code, or the signal that ended it, or a stop); :class:`ChildResult` is what
:func:`labkit.run` and friends return for one child: its value or exception,
its status and its output. They are plain data, kept apart from the code that
forks so a reader can learn the vocabulary without the machinery.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

from .errors import ChildError

__all__ = ["UNKNOWN_STATUS", "ChildResult", "ExitStatus", "WorkerResults", "to_signal"]

UNKNOWN_STATUS = -1     # wait status of a child that another waitpid reaped


# --- exit statuses -------------------------------------------------------------------


def to_signal(sig: int | str | signal.Signals) -> signal.Signals:
    """Turn ``"SIGUSR1"``, ``"usr1"``, ``10`` or ``signal.SIGUSR1`` into ``signal.SIGUSR1``.

    >>> to_signal("term")
    <Signals.SIGTERM: 15>
    """
    if isinstance(sig, signal.Signals):
        return sig
    try:
        if isinstance(sig, str):
            name = sig.strip().upper()
            return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
        if isinstance(sig, int) and not isinstance(sig, bool):
            return signal.Signals(sig)
    except (KeyError, ValueError):
        pass
    valid = ", ".join(f"{s.name} ({s.value})" for s in sorted(signal.Signals, key=int))
    raise ValueError(f"{sig!r} is not a signal on this system; valid signals: {valid}")


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, or the signal that killed it.

    >>> str(ExitStatus.from_wait_status(0x0300))
    'exited with code 3'
    >>> str(ExitStatus.from_wait_status(11))
    'killed by SIGSEGV (Segmentation fault)'
    """

    code: int | None
    signal: int | None = None
    core_dumped: bool = False

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        """Decode the raw status that ``os.waitpid`` returns."""
        if status == UNKNOWN_STATUS:
            return cls(None)
        if os.WIFEXITED(status):
            return cls(os.WEXITSTATUS(status))
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status), os.WCOREDUMP(status))
        raise ValueError(f"wait status {status:#x} is not that of an ended process "
                         "(a stopped one?)")

    @property
    def ok(self) -> bool:
        """True for exit code 0."""
        return self.code == 0

    @property
    def signal_name(self) -> str | None:
        """``"SIGSEGV"`` for a process killed by signal 11, else None."""
        if self.signal is None:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def __str__(self) -> str:
        if self.code is None and self.signal is None:
            return "ended, but its status went to another waitpid (an os.wait() in a cell?)"
        if self.signal is None:
            return f"exited with code {self.code}"
        text = f"killed by {self.signal_name}"
        description = signal.strsignal(self.signal)
        if description:
            text += f" ({description})"
        return text + (", core dumped" if self.core_dumped else "")


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildResult:
    """What one child process did: its value or exception, exit status and output.

    ``value`` gives the return value, or raises :class:`ChildError` with the
    child's traceback when the function raised or the child died.
    """

    name: str
    pid: int
    status: ExitStatus
    wait_status: int                   # the raw status os.waitpid gave, before decoding
    stdout: str
    stderr: str
    seconds: float
    returned: bool
    error_type: str | None = None      # the exception's class name, if the function raised
    error_message: str = ""
    traceback: str = ""
    leftovers: tuple[str, ...] = ()    # processes the function left behind (labkit ended them)
    escaped: tuple[int, ...] = ()      # pids of forks that returned out of the function
    _value: Any = field(default=None, repr=False)
    _exception: BaseException | None = field(default=None, repr=False)

    @property
    def value(self) -> Any:
        """The function's return value (raises :class:`ChildError` if there is none)."""
        self.raise_if_failed()
        return self._value

    def raise_if_failed(self) -> None:
        """Raise :class:`ChildError` if the function did not return (when its value is not
        needed)."""
        if not self.returned:
            raise ChildError(self.failure, self.traceback, self._exception)

    @property
    def exception(self) -> BaseException | None:
        """The exception the function raised, if it could be sent back."""
        return self._exception

    @property
    def failure(self) -> str:
        """Why there is no value, in one sentence ("" if the function returned)."""
        if self.returned:
            return ""
        if self.error_type == "labkit.unpicklable":
            return f"{self.name} (pid {self.pid}) returned {self.error_message}"
        if self.error_type:
            return f"{self.name} (pid {self.pid}) raised {self.error_type}: {self.error_message}"
        return f"{self.name} (pid {self.pid}) {self.status} without returning a value"

    def __repr__(self) -> str:
        outcome = f"returned {self._value!r}" if self.returned else self.failure
        extra = f"; left behind: {', '.join(self.leftovers)}" if self.leftovers else ""
        if self.escaped:
            extra += f"; forks that returned out of the function: {list(self.escaped)}"
        return (f"<ChildResult {self.name} pid={self.pid}: {outcome}; {self.status}; "
                f"{self.seconds * 1000:.1f} ms{extra}>")


class WorkerResults(list[ChildResult]):
    """The results of a group of workers, in worker order (a list of ChildResult)."""

    def raise_if_failed(self) -> None:
        """Raise :class:`ChildError` for the first worker whose function did not return."""
        for r in self:
            r.raise_if_failed()

    @property
    def values(self) -> list[Any]:
        """Every worker's return value; raises ChildError naming the first that failed."""
        return [r.value for r in self]

    def __repr__(self) -> str:
        return "\n".join(repr(r) for r in self)
