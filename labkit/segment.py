"""The shared-memory segment: one named POSIX object, mapped, with typed views on it.

A :class:`Segment` is a POSIX shared memory object made by
:mod:`labkit.objects` (private ``0600`` name, exclusive create, space
reserved so a full ``/dev/shm`` is an error and not a SIGBUS) and mapped into
this process, with NumPy and ctypes views on it. Its owner is the process
that created it: the name goes when that process leaves the ``with`` block
(or drops the segment, or exits), never when a forked worker does, and a
child that inherited the segment or an unrelated process that attached it by
name only detaches. We wrap posix_ipc rather than
``multiprocessing.shared_memory``, whose resource tracker deletes segments
that unrelated processes still use on Python < 3.13 (CPython gh-82300).

This is the shared-memory type of every lesson (shared memory, races,
synchronisation, message passing, performance); :mod:`labkit.shm` re-exports
it for the notebooks, with the lesson's listings and pictures.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import stat
import warnings
import weakref
from typing import Any

import numpy as np
import posix_ipc

from . import objects
from .errors import AccessDenied, LabError, NoSuchSegment
from .session import SHM_DIR

__all__ = ["NAME_MAX", "PAGE_SIZE", "Segment", "check_name", "check_offset", "maps_line"]

PAGE_SIZE = mmap.PAGESIZE
NAME_MAX = 255     # the longest POSIX shared memory name, without its leading slash


def check_name(name: str) -> str:
    """Return ``name`` as a valid POSIX shared memory name (``/`` then 1 to 255 characters).

    A name as ``ls /dev/shm`` shows it (without the slash) is accepted too.

    >>> check_name("labkit_0_1_demo_abc123")
    '/labkit_0_1_demo_abc123'
    >>> check_name("/a/b")
    Traceback (most recent call last):
    ...
    ValueError: a shared memory name is '/' followed by 1 to 255 characters, none of them '/', got '/a/b'
    """
    if not isinstance(name, str):
        raise TypeError(f"a shared memory name is a str such as '/labkit_..._seg_1a2b3c', "
                        f"got {type(name).__name__} {name!r}")
    bare = name[1:] if name.startswith("/") else name
    if (not bare or len(bare) > NAME_MAX or "/" in bare or "\0" in bare
            or bare in (".", "..")):
        raise ValueError(f"a shared memory name is '/' followed by 1 to {NAME_MAX} "
                         f"characters, none of them '/', got {name!r}")
    return "/" + bare


# --- segments ------------------------------------------------------------------------


class _State:
    """What must be released, kept apart from the Segment so a finalizer can hold it."""

    def __init__(self, name: str, mm: mmap.mmap | None, scope: objects.Scope | None,
                 shm: Any) -> None:
        self.name = name
        self.mm = mm
        self.scope = scope                    # set only for a segment this process created
        self.shm = shm                        # its posix_ipc.SharedMemory (fd already closed)
        self.creator_pid = os.getpid() if scope is not None else None
        self.unlinked = False


def _detach(st: _State) -> None:
    mm, st.mm = st.mm, None
    if mm is not None:
        try:
            mm.close()                        # munmap
        except BufferError:
            pass  # views still use it: it is unmapped when the last of them goes


def _remove_name(st: _State) -> bool:
    """shm_unlink; False if the name had already gone (another process removed it)."""
    st.unlinked = True
    try:
        posix_ipc.unlink_shared_memory(st.name)
        gone = False
    except posix_ipc.ExistentialError:
        gone = True
    if st.scope is not None:
        st.scope.close()                      # forget it and tell the session janitor
    return not gone


def _release(st: _State) -> None:
    """The end of a segment's life in this process (with block, close by GC, exit)."""
    _detach(st)
    if st.creator_pid == os.getpid() and not st.unlinked:
        _remove_name(st)


def _collected(st: _State) -> None:
    """A segment's end by garbage collection (or at exit): warn if only that removes its name.

    The unlink still happens, but not silently: where an exception's traceback keeps
    the Segment alive (a notebook), the name would leak, and a check must not be
    fooled by a collection that happens to run in its own process.
    """
    if st.creator_pid == os.getpid() and not st.unlinked:
        warnings.warn(f"shared memory segment {st.name} was never unlinked; it goes only "
                      "because its Segment was garbage collected (or the process exited). "
                      "Use `with Segment.create(...)`, or unlink() in a finally block",
                      ResourceWarning, stacklevel=2)
    _release(st)


class Segment:
    """A named shared memory segment mapped into this process.

    Make one with :meth:`create` (a new private object) or :meth:`attach` (an
    existing one, by name, from any process). ``buf`` is the mapping itself
    (an ``mmap``: slice it, assign to slices); :meth:`array` and
    :meth:`struct` give NumPy and ctypes views that read and write the shared
    bytes in place. :meth:`close` detaches this process (munmap), :meth:`unlink`
    destroys the name. As a ``with`` block, leaving it detaches, and the
    process that created the segment also unlinks it, even after an
    exception. A forked child inherits the mapping at the same address; pass
    ``seg.name`` to an unrelated process, which calls ``Segment.attach(name)``
    (a pickled segment travels that way too). A segment dropped without
    ``with`` is cleaned up when it is garbage collected or at exit; a forked
    child that creates one must end its ``with`` block itself, because
    ``os._exit`` skips all cleanup.

    >>> with Segment.create(4096) as seg:
    ...     seg.buf[:5] = b"hello"
    ...     other = Segment.attach(seg.name)      # a second, independent mapping
    ...     bytes(other.buf[:5]), other.address != seg.address
    ...     other.close()
    (b'hello', True)
    >>> os.path.exists("/dev/shm" + seg.name)
    False
    """

    _st: _State
    _size: int
    _readonly: bool
    _address: int
    _finalizer: weakref.finalize[[_State], Segment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("make a segment with Segment.create(size) or Segment.attach(name)")

    @classmethod
    def _new(cls, st: _State, size: int, readonly: bool) -> Segment:
        self = object.__new__(cls)
        self._st = st
        self._size = size
        self._readonly = readonly
        assert st.mm is not None
        probe = np.frombuffer(st.mm, dtype=np.uint8, count=1)
        self._address = int(probe.ctypes.data)
        del probe                             # no view may outlive this line
        self._finalizer = weakref.finalize(self, _collected, st)
        return self

    @classmethod
    def create(cls, size: int, label: str = "seg") -> Segment:
        """Create a new private segment of ``size`` bytes, all zero, and map it.

        The name is ``/labkit_<uid>_<session>_<label>_<random>``, the object is
        created exclusively (``O_CREAT | O_EXCL``) with mode ``0600``, and its
        pages are reserved at once (``posix_fallocate``).

        Raises:
            ValueError: ``size`` is not a whole number > 0, or ``label`` is not
                1 to 12 letters or digits.
            NoSpaceError: ``/dev/shm`` has no room for ``size`` bytes.

        >>> with Segment.create(100, label="demo") as seg:
        ...     seg.size, seg.mode, seg.created
        (100, 384, True)
        """
        scope = objects.scope()
        try:
            shm = scope.shared_memory(size, label)
            mm = mmap.mmap(shm.fd, size, access=mmap.ACCESS_WRITE)  # MAP_SHARED, read-write
        except BaseException:
            scope.close()
            raise
        shm.close_fd()                        # the mapping keeps the memory, not the descriptor
        return cls._new(_State(shm.name, mm, scope, shm), size, readonly=False)

    @classmethod
    def attach(cls, name: str, readonly: bool = False) -> Segment:
        """Map an existing segment by name (from this or any other process).

        ``readonly=True`` opens it ``O_RDONLY`` and maps it ``PROT_READ``:
        writes then raise ``TypeError``. Attaching never unlinks: a segment
        belongs to the process that created it.

        Raises:
            ValueError: ``name`` is not a valid shared memory name.
            NoSuchSegment: nothing has that name (never created, or unlinked).
            AccessDenied: the object's mode does not allow this user.

        >>> Segment.attach("/labkit_no_such_segment")
        Traceback (most recent call last):
        ...
        labkit.errors.NoSuchSegment: no shared memory object is named '/labkit_no_such_segment': it was never created, or it has been unlinked (names do not come back)
        """
        name = check_name(name)
        try:
            shm = posix_ipc.SharedMemory(name, 0, read_only=readonly)
        except posix_ipc.ExistentialError as e:
            raise NoSuchSegment(f"no shared memory object is named {name!r}: it was never "
                                "created, or it has been unlinked (names do not come "
                                "back)") from e
        except posix_ipc.PermissionsError as e:
            raise AccessDenied(_denied(name, readonly)) from e
        try:
            size = os.fstat(shm.fd).st_size
            if size == 0:
                raise LabError(f"{name} has size 0, so there is nothing to map; its creator "
                               "has not sized it yet (ftruncate)")
            access = mmap.ACCESS_READ if readonly else mmap.ACCESS_WRITE
            mm = mmap.mmap(shm.fd, size, access=access)
        except PermissionError as e:
            raise AccessDenied(_denied(name, readonly)) from e
        finally:
            shm.close_fd()
        return cls._new(_State(name, mm, None, shm), size, readonly)

    # --- what it is

    @property
    def name(self) -> str:
        """The POSIX name (``/labkit_...``); ``/dev/shm`` shows it without the slash."""
        return self._st.name

    @property
    def size(self) -> int:
        """The size in bytes."""
        return self._size

    @property
    def address(self) -> int:
        """Where the mapping starts in *this* process (another process may differ)."""
        return self._address

    @property
    def readonly(self) -> bool:
        """True if attached with ``readonly=True``."""
        return self._readonly

    @property
    def created(self) -> bool:
        """True if this process created it (and so unlinks it at the end of ``with``)."""
        return self._st.creator_pid == os.getpid()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has detached this process."""
        return self._st.mm is None

    @property
    def unlinked(self) -> bool:
        """True once this process has unlinked the name."""
        return self._st.unlinked

    @property
    def path(self) -> str:
        """Where Linux shows the object: ``/dev/shm/<name>``."""
        return f"{SHM_DIR}{self.name}"

    @property
    def mode(self) -> int:
        """The object's permission bits (``0o600`` for lab segments)."""
        try:
            return stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            raise NoSuchSegment(f"{self.name} has been unlinked; its mode is gone "
                                "with its name") from None

    @property
    def buf(self) -> mmap.mmap:
        """The mapping: ``seg.buf[0:4]`` reads bytes, ``seg.buf[0:4] = b"abcd"`` writes."""
        mm = self._st.mm
        if mm is None:
            raise ValueError(f"segment {self.name} is closed in this process (detached); "
                             f"attach it again with Segment.attach({self.name!r})")
        return mm

    # --- typed views

    def array(self, dtype: Any = np.uint8, shape: int | tuple[int, ...] | None = None,
              offset: int = 0) -> np.ndarray:
        """A NumPy array whose elements live in the segment (a view, not a copy).

        Without ``shape`` the array fills the segment from ``offset``.
        ``offset`` must be a multiple of the dtype's alignment.

        >>> with Segment.create(64) as seg:
        ...     a = seg.array(np.int64)
        ...     a[:] = range(8)
        ...     b = seg.array(np.int64, (2, 2), offset=16)
        ...     b.tolist()
        [[2, 3], [4, 5]]
        """
        dt = np.dtype(dtype)
        check_offset(offset, dt.alignment, dt.name, self.size)
        if shape is None:
            shape = ((self.size - offset) // dt.itemsize,)
        elif isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
            shape = (int(shape),)
        if not isinstance(shape, tuple) or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                for n in shape):
            raise ValueError(f"shape must be a whole number or a tuple of whole numbers >= 0, "
                             f"got {shape!r}")
        count = int(np.prod(shape, dtype=np.int64))
        need = count * dt.itemsize
        if offset + need > self.size:
            raise ValueError(f"an array of shape {shape} of {dt.name} needs {need} bytes from "
                             f"offset {offset}, but the segment has {self.size} bytes")
        return np.frombuffer(self.buf, dtype=dt, count=count, offset=offset).reshape(shape)

    def struct(self, ctype: type, offset: int = 0) -> Any:
        """A ctypes object (a Structure, an array type, ``c_int64``...) living in the segment.

        >>> class Point(ctypes.Structure):
        ...     _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]
        >>> with Segment.create(64) as seg:
        ...     p = seg.struct(Point, offset=8)
        ...     p.x, p.y = 3, 4
        ...     seg.array(np.int32)[2:4].tolist()
        [3, 4]
        """
        if not (isinstance(ctype, type) and issubclass(
                ctype, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union, ctypes.Array))):
            raise TypeError(f"ctype must be a ctypes type such as a Structure subclass or "
                            f"ctypes.c_int64, got {ctype!r}")
        check_offset(offset, ctypes.alignment(ctype), ctype.__name__, self.size)
        need = ctypes.sizeof(ctype)
        if offset + need > self.size:
            raise ValueError(f"a {ctype.__name__} needs {need} bytes from offset {offset}, but "
                             f"the segment has {self.size} bytes")
        if self.readonly:
            raise TypeError(f"{self.name} is attached read-only and ctypes views need writable "
                            f"memory; read a copy with {ctype.__name__}.from_buffer_copy("
                            "seg.buf, offset), or use seg.array() with a NumPy dtype")
        return ctype.from_buffer(self.buf, offset)

    # --- the end

    def close(self) -> None:
        """Detach this process: unmap the segment (the name and the memory stay).

        Views made with :meth:`array` or :meth:`struct` that are still in use
        keep the pages mapped until they are deleted. Closing twice is harmless.

        >>> seg = Segment.create(4096)
        >>> seg.close(); seg.closed, os.path.exists(seg.path)
        (True, True)
        >>> seg.unlink()
        """
        _detach(self._st)

    def unlink(self) -> None:
        """Destroy the name now; mappings, here and elsewhere, stay valid until closed.

        Raises:
            NoSuchSegment: the name was already unlinked, by this process or
                another one.

        >>> with Segment.create(4096) as seg:
        ...     seg.unlink()
        ...     seg.buf[0] = 1                    # the mapping still works
        ...     seg.unlink()
        Traceback (most recent call last):
        ...
        labkit.errors.NoSuchSegment: /labkit_..._seg_... was already unlinked by this process; a name can be unlinked only once
        """
        st = self._st
        if st.unlinked:
            raise NoSuchSegment(f"{self.name} was already unlinked by this process; a name "
                                "can be unlinked only once")
        if not _remove_name(st):
            raise NoSuchSegment(f"{self.name} was already gone: another process unlinked it "
                                "(its creator? or a multiprocessing resource tracker, see "
                                "lesson 03)")

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._finalizer.detach():          # not yet ended: end it here, on purpose
            _release(self._st)                # detach, and unlink if we created it

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (for a spawned worker), a segment travels as its name and is re-attached.
        return (Segment.attach, (self.name, self.readonly))

    def __repr__(self) -> str:
        how = "created here" if self.created else "attached"
        state = "closed" if self.closed else f"mapped at {self.address:#x}"
        gone = ", unlinked" if self.unlinked else ""
        return f"<Segment {self.name} {self.size} bytes, {how}, {state}{gone}>"


def check_offset(offset: int, alignment: int, what: str, size: int) -> None:
    """A ``ValueError`` unless ``offset`` is inside ``size`` bytes and a multiple of ``alignment``.

    >>> check_offset(8, 8, "a c_int64", 4096)
    """
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or not (
            0 <= offset < size):
        raise ValueError(f"offset must be a whole number of bytes from 0 to {size - 1}, "
                         f"got {offset!r}")
    if offset % alignment:
        raise ValueError(f"offset {offset} is not a multiple of {alignment}, the alignment "
                         f"of {what}; an aligned value is read and written in one access")


def _denied(name: str, readonly: bool) -> str:
    how = "read" if readonly else "read and write"
    return (f"permission denied: you may not {how} {name}. Its mode does not allow your user "
            "(lab segments are 0600: only their owner may open them); check "
            f"`ls -l /dev/shm{name}`" + ("" if readonly else ", or attach with readonly=True"))


def maps_line(name: str) -> str:
    """The line of this process's ``/proc/self/maps`` that shows segment ``name`` ("" if none).

    >>> with Segment.create(4096) as seg:
    ...     maps_line(seg.name).endswith(seg.path)
    True
    """
    try:
        with open("/proc/self/maps") as f:
            return next((line.rstrip() for line in f if f"/dev/shm{name}" in line), "")
    except FileNotFoundError:
        return ""  # no /proc (macOS)
