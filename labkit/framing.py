"""Length-prefixed records over pipes and sockets, and the one safe way to decode them.

A pipe or a stream socket carries bytes, not messages: a reader may get half
a record, or two at once. Every record labkit sends between processes is
therefore framed the same way, a 4-byte big-endian length and then that many
bytes (as ``multiprocessing.connection`` does), and every reader splits or
reads frames here.

What a frame holds is usually a pickle. Writing one is harmless; *reading*
one runs whatever the sender put in it (an object's ``__reduce__``), so a
pickle that student code produced is only ever decoded with
:func:`plain_loads`, which accepts built-in data and the dataclasses marked
:func:`plain_data`, and looks up no other class or function.
"""
from __future__ import annotations

import builtins
import dataclasses
import io
import os
import pickle
import struct
from typing import Any, TypeVar

__all__ = ["HEADER", "frame", "plain_data", "plain_loads", "read_frame", "split_frames",
           "write_frame"]

HEADER = struct.Struct("!I")   # the length of the payload that follows


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front.

    >>> frame(b"hi")
    b'\\x00\\x00\\x00\\x02hi'
    """
    return HEADER.pack(len(payload)) + payload


def write_frame(fd: int, payload: bytes) -> None:
    """Write one whole frame to ``fd`` (a pipe or socket descriptor), however long it is.

    >>> r, w = os.pipe()
    >>> write_frame(w, b"hello"); os.close(w)
    >>> read_frame(r)
    b'hello'
    >>> os.close(r)
    """
    data = memoryview(frame(payload))
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError(f"the other side closed its end {len(data)} bytes into a "
                           f"{n}-byte read")
        data += chunk
    return bytes(data)


def read_frame(fd: int) -> bytes:
    """Read one frame's payload from ``fd``; ``EOFError`` if the writer closed its end first.

    >>> r, w = os.pipe(); os.close(w)
    >>> read_frame(r)
    Traceback (most recent call last):
    ...
    EOFError: the other side closed its end 0 bytes into a 4-byte read
    >>> os.close(r)
    """
    (n,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
    return _read_exactly(fd, n)


def split_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole frames at the start of ``data``, and the bytes after them (a frame cut
    short, when the writer was killed mid-record or more is still to come).

    >>> split_frames(frame(b"a") + frame(b"bc") + b"\\x00\\x00")
    ([b'a', b'bc'], b'\\x00\\x00')
    """
    frames, pos = [], 0
    while pos + HEADER.size <= len(data):
        (n,) = HEADER.unpack_from(data, pos)
        if pos + HEADER.size + n > len(data):
            break
        frames.append(data[pos + HEADER.size:pos + HEADER.size + n])
        pos += HEADER.size + n
    return frames, data[pos:]


# --- decoding what another process sent -------------------------------------------------

_PLAIN_CLASSES = frozenset({"bytearray", "complex", "set", "frozenset", "range", "slice"})
_PLAIN_TYPES: dict[tuple[str, str], type] = {}

T = TypeVar("T", bound=type)


def plain_data(cls: T) -> T:
    """Mark a labkit dataclass of plain fields as safe to decode with :func:`plain_loads`.

    Decoding one sets its fields and runs no code of the sender's; a class
    with ``__post_init__`` or ``__setstate__`` could, so it is refused::

        @plain_data
        @dataclass(frozen=True)
        class Delivery: ...
    """
    if not dataclasses.is_dataclass(cls) or any(
            hasattr(cls, hook) and getattr(cls, hook) is not getattr(object, hook, None)
            for hook in ("__post_init__", "__setstate__", "__reduce__", "__reduce_ex__")):
        raise TypeError(f"{cls.__name__} is not a plain dataclass")
    _PLAIN_TYPES[(cls.__module__, cls.__qualname__)] = cls
    return cls


class _PlainUnpickler(pickle.Unpickler):
    """Decodes built-in data and labkit's :func:`plain_data` classes only: no other class or
    function is ever looked up, so no code of the sender's runs here (an object's
    ``__reduce__`` is how a pickle would run it)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _PLAIN_CLASSES:
            return getattr(builtins, name)
        if (module, name) in _PLAIN_TYPES:
            return _PLAIN_TYPES[(module, name)]
        if module.split(".")[0] == "numpy":
            raise pickle.UnpicklingError("a NumPy array or value is not plain data")
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def plain_loads(data: bytes) -> Any:
    """Decode a pickle that may hold only built-in data (numbers, strings, bytes, lists,
    tuples, dicts, sets) and labkit's :func:`plain_data` classes; anything else raises
    :class:`pickle.UnpicklingError`.

    >>> plain_loads(pickle.dumps({"n": [1, 2.5, b"x", (None, True)]}))
    {'n': [1, 2.5, b'x', (None, True)]}
    >>> plain_loads(pickle.dumps(io.BytesIO))
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: _io.BytesIO is not plain data
    """
    return _PlainUnpickler(io.BytesIO(data)).load()
