"""Every exception labkit raises, in one place, named after the situation.

First the errors a student meets (each a :class:`LabError`); then what a check
says of an answer; then the instructor's tools' own, which never reach a
student's code. Every error says what happened and what to do about it; an
``OSError`` from the kernel is kept as ``__cause__`` so the errno is still
there for those who want it.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDenied",
    "CheckFailed",
    "CheckTimedOut",
    "ChildError",
    "Deadlock",
    "LabError",
    "LabTimeout",
    "ModelMismatch",
    "NoSpaceError",
    "NoSuchSegment",
    "NotDone",
    "NotSupportedHere",
    "ScheduleError",
    "SelfDeadlock",
    "SetupError",
    "SubmissionRefused",
    "TooManyOrders",
    "TooManyStates",
    "Unguarded",
    "ZygoteError",
]


class LabError(Exception):
    """Base class of every labkit error."""


class LabTimeout(LabError, TimeoutError):
    """A child or worker did not finish in time and was killed.

    ``results`` holds what the processes that did finish returned.
    """

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


class ChildError(LabError):
    """The function run in a child raised, or the child died, so there is no value.

    ``remote_traceback`` is the child's traceback as text (empty if it died
    from a signal), ``exception`` the original exception when it could be
    sent back.
    """

    def __init__(self, message: str, remote_traceback: str = "",
                 exception: BaseException | None = None) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback
        self.exception = exception

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text += "\n\nTraceback in the child:\n" + self.remote_traceback.rstrip()
        return text


class NoSpaceError(LabError, OSError):
    """There is not enough room for a kernel object (``/dev/shm`` full, queue limits)."""


class NotSupportedHere(LabError, NotImplementedError):
    """The feature needs Linux (or a newer kernel) and this machine lacks it."""


class NoSuchSegment(LabError, FileNotFoundError):
    """No shared memory object has that name (never created, or already unlinked)."""


class AccessDenied(LabError, PermissionError):
    """The object exists but its mode does not let this user open it that way."""


class Deadlock(LabError, RuntimeError):
    """A lock was waited for too long: the workers holding locks wait for each other."""


class SelfDeadlock(Deadlock):
    """A worker asked for a lock it already held: it would wait for itself forever (a
    release forgotten earlier, which explains the others' waits too)."""


class Unguarded(LabError, RuntimeError):
    """Shared data was touched by a worker that did not hold the lock guarding it."""


class ScheduleError(LabError, ValueError):
    """A schedule asked for a step that cannot happen (a finished or blocked process)."""


class TooManyStates(LabError, ValueError):
    """A system too big to explore every interleaving of; the message says what is allowed."""


class ModelMismatch(LabError, RuntimeError):
    """A puzzle's real run did what its model says cannot happen (a bug in the puzzle)."""


# --- What a check says of an answer (labkit.checking) --------------------------------------


class CheckFailed(AssertionError):
    """Raised by a check when the answer is wrong; the message tells the student why."""


class CheckTimedOut(CheckFailed):
    """The answer did not finish in time: the exercise's later checks are not run."""


class NotDone(Exception):
    """The answer still raises NotImplementedError: the exercise has not been attempted."""


# --- Inside the instructor's tools, never raised into a student's code ---------------------


class TooManyOrders(Exception):
    """A puzzle's program has more possible outputs than ``puzzle_model.MAX_ORDERS`` (the
    generator tries another)."""


class SubmissionRefused(Exception):
    """The grader's intake found something it does not read (a link, a special file, too
    many bytes): the submission is refused with this note."""


class SetupError(Exception):
    """A sandbox setup step failed; the submission must not run."""


class ZygoteError(Exception):
    """The grader's zygote could not start, or ended: no sandbox can be made through it."""
