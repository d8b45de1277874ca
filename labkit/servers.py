"""The lessons' server programs as the lab sees them: started, read, resumed, stopped.

A server of lesson 06 is a separate Python program in ``labkit/programs/``
(open one: they are short), started by :func:`labkit.runner.start_module`, so
that it shares nothing with its clients but a name. It writes its log as JSON lines on standard
output (see ``programs/serving.py``); :class:`ServerProgram` sends that into a
private file the lab reads while the server runs, lets a paused server go,
and stops it politely (SIGTERM, then its whole group) when the ``with`` block
ends. After that its log stays readable.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from .errors import LabError
from .runner import end_program, start_module
from .waiting import wait_until

__all__ = ["ServerProgram"]


class ServerProgram:
    """A server program of ``labkit/programs/``, running until its ``with`` block ends.

    >>> with ServerProgram("socket_server", ["tcp", ""], lifetime=10) as server:
    ...     ready = server.wait_for("ready", 10, "the echo server")
    >>> ready["ready"][0], server.running
    ('127.0.0.1', False)
    """

    def __init__(self, name: str, args: list[str], lifetime: float,
                 paused: bool = False) -> None:
        self._log = tempfile.TemporaryFile(prefix="labkit-log-")  # noqa: SIM115 - closed at exit
        self._paused = paused
        self._final: list[dict] | None = None
        try:
            self.proc = start_module(
                f"labkit.programs.{name}", *(["--paused"] if paused else []),
                "--lifetime", str(lifetime), *args, lifetime=lifetime,
                stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.DEVNULL, cwd="/")
        except BaseException:
            self._log.close()
            raise
        self.pid = self.proc.pid

    def __enter__(self) -> ServerProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True until the server has been stopped."""
        return self._final is None

    def lines(self) -> list[dict]:
        """Every whole line of its log so far, decoded (the same list once it has stopped)."""
        if self._final is not None:
            return self._final
        size = os.fstat(self._log.fileno()).st_size
        data = os.pread(self._log.fileno(), size, 0)
        return [json.loads(line) for line in data.decode("utf-8", "replace")
                .splitlines(keepends=True) if line.endswith("\n")]  # a half line waits

    def wait_for(self, key: str, timeout: float, what: str) -> dict[str, Any]:
        """The first log line that has ``key``, waiting up to ``timeout`` seconds for it."""

        def seen() -> dict[str, Any] | None:
            found = next((line for line in self.lines() if key in line), None)
            if found is None and self.proc.poll() is not None:
                raise LabError(f"{what} ended before it was ready (exit status "
                               f"{self.proc.returncode})")
            return found

        line = wait_until(seen, timeout, f"{what} was not ready", every=0.005)
        assert line is not None       # wait_until returns only a true value or raises
        return line

    def resume(self) -> None:
        """Let a server started paused begin its work (one line on its standard input)."""
        if self._final is not None:
            raise LabError("the server has stopped (its with block ended)")
        if self._paused:
            self._paused = False
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()

    def stop(self) -> None:
        """SIGTERM (it finishes the request in hand), then its whole group; keep its log."""
        if self._final is not None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # end_program kills it
        finally:
            end_program(self.proc)
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                self._final = self.lines()
            finally:
                self._log.close()
