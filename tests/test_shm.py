"""labkit.shm: lab segments are private, reserved, typed, shareable and always cleaned up."""
from __future__ import annotations

import ctypes
import gc
import os
import pickle
import pwd
import stat

import numpy as np
import pytest

from labkit import objects, run, run_workers, shm
from labkit.errors import LabError, LabTimeout, NoSpaceError
from labkit.shm import AccessDenied, NoSuchSegment, Segment


def _exists(name: str) -> bool:
    return os.path.exists(f"/dev/shm{name}")


class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_int32), ("b", ctypes.c_double)]


# --- creating ------------------------------------------------------------------------


def test_a_new_segment_is_private_zeroed_reserved_and_carries_a_lab_name():
    old = os.umask(0)                       # even a permissive umask must not widen the mode
    try:
        seg = Segment.create(3 * shm.PAGE_SIZE, label="fresh")
    finally:
        os.umask(old)
    with seg:
        st = os.stat(seg.path)
        assert seg.name.startswith(f"/labkit_{os.getuid()}_{os.getpid()}_fresh_")
        assert stat.S_IMODE(st.st_mode) == seg.mode == 0o600
        assert st.st_size == seg.size == 3 * shm.PAGE_SIZE
        assert st.st_blocks * 512 >= seg.size          # reserved now, not on first touch
        assert not any(seg.buf[:])
        assert seg.created and not seg.closed and not seg.unlinked
    assert not _exists(seg.name) and seg.closed and seg.unlinked


@pytest.mark.parametrize("bad", [0, -1, -4096, 1.5, "4096", True, None])
def test_bad_sizes_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="size must be a whole number of bytes > 0"):
        Segment.create(bad)


def test_a_size_beyond_the_free_space_of_dev_shm_is_a_clear_error():
    with pytest.raises(NoSpaceError, match=r"/dev/shm has only .* free"):
        Segment.create(objects.shm_free_bytes() + (1 << 30))


@pytest.mark.parametrize("bad", ["", "has space", "x" * 13, "a/b"])
def test_bad_labels_are_refused(bad):
    with pytest.raises(ValueError, match="label must be 1 to 12 letters or digits"):
        Segment.create(4096, label=bad)


def test_segments_cannot_be_built_directly():
    with pytest.raises(TypeError, match=r"Segment.create\(size\) or Segment.attach\(name\)"):
        Segment("/x", 4096)


# --- names and attaching -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "/", "/a/b", "a/b", "/" + "x" * 256, "/a\0b", ".", "/.."])
def test_invalid_names_are_refused_before_the_kernel_sees_them(bad):
    # posix_ipc itself crashes the process on a NUL byte and says only "Invalid parameter(s)"
    with pytest.raises(ValueError, match="a shared memory name is '/' followed by 1 to 255"):
        Segment.attach(bad)


@pytest.mark.parametrize("bad", [None, 5, b"/labkit"])
def test_names_must_be_text(bad):
    with pytest.raises(TypeError, match="a shared memory name is a str"):
        Segment.attach(bad)


def test_the_longest_valid_name_is_accepted():
    assert shm.check_name("x" * 255) == "/" + "x" * 255


def test_opening_a_missing_name_says_so():
    with pytest.raises(NoSuchSegment, match="no shared memory object is named") as info:
        Segment.attach(objects.lab_name("missing"))
    assert isinstance(info.value, FileNotFoundError)


def test_a_name_as_listed_in_dev_shm_attaches_too():
    with Segment.create(4096) as seg:
        seg.buf[:2] = b"ok"
        with Segment.attach(seg.name.lstrip("/")) as other:
            assert bytes(other.buf[:2]) == b"ok"


def test_two_mappings_of_one_segment_see_each_others_writes():
    with Segment.create(4096) as seg, Segment.attach(seg.name) as other:
        assert other.address != seg.address and other.size == seg.size
        seg.buf[10:15] = b"hello"
        assert bytes(other.buf[10:15]) == b"hello"
        other.buf[0] = 42
        assert seg.buf[0] == 42
        assert not other.created


def test_leaving_an_attached_segment_detaches_but_does_not_unlink():
    with Segment.create(4096) as seg:
        with Segment.attach(seg.name):
            pass
        assert _exists(seg.name)


def test_a_read_only_attachment_refuses_writes():
    with Segment.create(4096) as seg, Segment.attach(seg.name, readonly=True) as ro:
        seg.buf[0] = 7
        assert ro.readonly and ro.buf[0] == 7
        with pytest.raises(TypeError):
            ro.buf[0] = 1
        assert not ro.array(np.uint8).flags.writeable
        with pytest.raises(TypeError, match=r"attached read-only.*from_buffer_copy"):
            ro.struct(Pair)


def _attach_as_nobody(name: str) -> str:
    nobody = pwd.getpwnam("nobody")
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    try:
        Segment.attach(name, readonly=True)
    except AccessDenied as e:
        return str(e)
    return "attached"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_another_user_may_not_open_a_lab_segment():
    with Segment.create(4096) as seg:
        message = run(_attach_as_nobody, seg.name).value
    assert message.startswith("permission denied") and "0600" in message


# --- the end of a segment ------------------------------------------------------------


def test_an_exception_inside_the_with_block_still_removes_the_name():
    with pytest.raises(RuntimeError, match="boom"), Segment.create(4096) as seg:
        seg.buf[0] = 1
        raise RuntimeError("boom")
    assert not _exists(seg.name) and seg.closed


def test_unlinking_twice_is_a_clear_error():
    with Segment.create(4096) as seg:
        seg.unlink()
        with pytest.raises(NoSuchSegment, match="already unlinked by this process"):
            seg.unlink()


def test_unlinking_a_name_another_process_removed_is_a_clear_error():
    with Segment.create(4096) as seg:
        with Segment.attach(seg.name) as other:
            other.unlink()
        with pytest.raises(NoSuchSegment, match="another process unlinked it"):
            seg.unlink()


def test_unlink_while_attached_removes_the_name_but_not_the_memory():
    with Segment.create(4096) as seg:
        seg.buf[:4] = b"kept"
        seg.unlink()
        assert not _exists(seg.name)
        assert bytes(seg.buf[:4]) == b"kept"          # still mapped, still readable
        seg.buf[:4] = b"more"
        with pytest.raises(NoSuchSegment):
            Segment.attach(seg.name)


def test_closing_detaches_keeps_the_name_and_tolerates_live_views():
    with Segment.create(4096) as seg:
        view = seg.array(np.int64)
        view[0] = 5
        seg.close()
        seg.close()                                    # twice is harmless
        assert seg.closed and _exists(seg.name)
        assert view[0] == 5                            # the view keeps its pages mapped
        with pytest.raises(ValueError, match="is closed in this process"):
            _ = seg.buf
        with Segment.attach(seg.name) as again:
            assert again.array(np.int64)[0] == 5
        del view


def test_a_creator_segment_that_is_dropped_takes_its_name_with_it():
    seg = Segment.create(4096)
    name = seg.name
    del seg
    gc.collect()
    assert not _exists(name)


def test_the_segment_is_forgotten_by_the_objects_bookkeeping():
    with Segment.create(4096) as seg:
        assert seg.name in {o.name for o in shm.lab_objects()}
    assert seg.name not in {o.name for o in shm.lab_objects()}


# --- sharing with other processes ----------------------------------------------------


def _write_through_inherited(seg: Segment) -> int:
    seg.buf[:6] = b"child!"
    with seg:                    # leaving the block in a child only detaches the child
        pass
    return seg.address


def test_a_forked_child_inherits_the_mapping_at_the_same_address_and_never_unlinks():
    with Segment.create(4096) as seg:
        address = run(_write_through_inherited, seg).value
        assert address == seg.address
        assert bytes(seg.buf[:6]) == b"child!"
        assert _exists(seg.name)


def _fill(i: int, seg: Segment, per: int) -> int:
    seg.array(np.int64)[i * per:(i + 1) * per] = i + 1
    return os.getpid()


def test_workers_fill_disjoint_slices_of_one_shared_array():
    with Segment.create(4 * 1000 * 8) as seg:
        pids = run_workers(_fill, 4, seg, 1000).values
        counts = np.bincount(seg.array(np.int64))
        assert len(set(pids)) == 4 and os.getpid() not in pids
        assert counts.tolist() == [0, 1000, 1000, 1000, 1000]


def _attach_by_name(name: str) -> bytes:
    with Segment.attach(name) as seg:
        seg.buf[4:8] = b"back"
        return bytes(seg.buf[:4])


def test_a_forked_child_can_attach_by_name_as_well():
    with Segment.create(4096) as seg:
        seg.buf[:4] = b"name"
        assert run(_attach_by_name, seg.name).value == b"name"
        assert bytes(seg.buf[4:8]) == b"back" and _exists(seg.name)


def test_an_unrelated_process_attaches_by_name_and_leaves_the_name_alone():
    code = ("import sys\nfrom labkit.shm import Segment\n"
            "with Segment.attach(sys.argv[1]) as seg:\n"
            "    print(bytes(seg.buf[:5]).decode())\n    seg.buf[:5] = b'HELLO'\n")
    with Segment.create(4096) as seg:
        seg.buf[:5] = b"hello"
        r = shm.run_unrelated(code, seg.name)
        assert r.ok, r.stderr
        assert r.stdout.strip() == "hello" and bytes(seg.buf[:5]) == b"HELLO"
        assert _exists(seg.name)


def test_a_pickled_segment_travels_as_its_name_and_is_attached_again():
    with Segment.create(4096) as seg:
        seg.buf[:3] = b"abc"
        copy = pickle.loads(pickle.dumps(seg))
        with copy:
            assert copy.name == seg.name and not copy.created
            assert bytes(copy.buf[:3]) == b"abc"
        assert _exists(seg.name)


# --- typed views ---------------------------------------------------------------------


def test_arrays_and_structures_are_views_of_the_same_bytes():
    with Segment.create(64) as seg:
        pair = seg.struct(Pair, offset=16)
        pair.a, pair.b = 7, 2.5
        ints = seg.array(np.int32)
        assert ints[4] == 7
        assert seg.array(np.float64, 1, offset=24)[0] == 2.5
        grid = seg.array(np.uint8, (4, 16))
        grid[0, 0] = 9
        assert seg.buf[0] == 9
        del pair, ints, grid


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": np.int64, "shape": 9}, "needs 72 bytes from offset 0, but the segment has 64"),
    ({"dtype": np.int64, "offset": 4}, "not a multiple of 8, the alignment of int64"),
    ({"dtype": np.int64, "offset": 64}, "offset must be a whole number of bytes from 0 to 63"),
    ({"dtype": np.int64, "offset": -8}, "offset must be a whole number"),
    ({"dtype": np.int64, "shape": (2, -1)}, "shape must be a whole number or a tuple"),
])
def test_bad_array_views_are_refused_clearly(kwargs, message):
    with Segment.create(64) as seg, pytest.raises(ValueError, match=message):
        seg.array(**kwargs)


def test_bad_struct_views_are_refused_clearly():
    with Segment.create(16) as seg:
        with pytest.raises(TypeError, match="ctype must be a ctypes type"):
            seg.struct(int)
        with pytest.raises(ValueError, match="a Pair needs 16 bytes from offset 8"):
            seg.struct(Pair, offset=8)
        with pytest.raises(ValueError, match="not a multiple of 8, the alignment of Pair"):
            seg.struct(Pair, offset=4)


# --- listing and pictures ------------------------------------------------------------


def test_the_listing_shows_owner_size_mode_and_a_living_creator():
    with Segment.create(8192) as seg:
        mine = [o for o in shm.lab_objects() if o.name == seg.name]
        assert [(o.kind, o.uid, o.size, o.mode, o.session_pid, o.alive) for o in mine] == [
            ("shm", os.getuid(), 8192, 0o600, os.getpid(), True)]
        table = repr(shm.objects_table(mine))
        assert seg.name in table and "0600" in table and "running" in table


def test_the_listing_tells_a_segment_whose_creator_is_gone():
    code = ("import posix_ipc\nfrom labkit.objects import lab_name\n"
            "m = posix_ipc.SharedMemory(lab_name('orphan'), posix_ipc.O_CREX, mode=0o600, "
            "size=4096)\nprint(m.name)\n")
    r = shm.run_unrelated(code)
    name = r.stdout.strip()
    try:
        found = {o.name: o for o in shm.lab_objects()}
        assert not found[name].alive and found[name].session_pid == r.pid
        assert "gone" in repr(shm.objects_table([found[name]]))
    finally:
        Segment.attach(name).unlink()


def test_segment_bytes_copies_what_is_there():
    with Segment.create(4096) as seg:
        seg.buf[:4] = b"\x01\x02\x03\x04"
        snap = shm.segment_bytes(seg, 2, 4)
        assert snap.data == (3, 4, 0, 0) and snap.offset == 2 and snap.name == seg.name
        with pytest.raises(ValueError, match="length must be a whole number of bytes > 0"):
            shm.segment_bytes(seg, 0, 0)


def test_struct_fields_show_padding():
    assert shm.struct_fields(Pair) == [("a", 0, 4), ("b", 8, 8)]


def test_two_mappings_report_two_processes_with_the_same_contents():
    with Segment.create(4096) as seg:
        seg.buf[:4] = b"same"
        m = shm.two_mappings(seg, 4)
    here, there = m.processes
    assert here.pid == os.getpid() and there.pid != here.pid
    assert m.same_contents and bytes(there.first_bytes) == b"same"
    assert here.maps_line.endswith(seg.name) and "r--s" in there.maps_line


def test_the_plots_return_their_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Segment.create(4096) as seg:
        ax = shm.plot_bytes(shm.segment_bytes(seg, 0, 32), fields=shm.struct_fields(Pair))
        assert ax.get_title().startswith("32 bytes of")
        ax = shm.plot_mappings(shm.Mappings(seg.name, seg.size, (
            shm.ProcessMapping("this process", 1, 0x7f0000000000, (1, 2), ""),
            shm.ProcessMapping("unrelated process", 2, 0x7f1000000000, (1, 2), ""))))
        assert "two processes" in ax.get_title()
    plt.close("all")


# --- unrelated processes, System V, copying ------------------------------------------


def test_an_unrelated_process_reports_how_it_ended():
    assert str(shm.run_unrelated("import os; os._exit(3)").status) == "exited with code 3"
    died = shm.run_unrelated("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert died.status.signal_name == "SIGKILL" and not died.ok
    failed = shm.run_unrelated("raise ValueError('nope')")
    assert "ValueError: nope" in failed.stderr and failed.status.code == 1


def test_an_unrelated_process_that_hangs_is_killed():
    with pytest.raises(LabTimeout, match=r"did not finish in 0\.5 s; it was killed"):
        shm.run_unrelated("import time; time.sleep(30)", timeout=0.5)


@pytest.mark.parametrize("bad", [0, -1, True])
def test_bad_timeouts_for_unrelated_processes_are_refused(bad):
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        shm.run_unrelated("pass", timeout=bad)


def test_a_system_v_segment_is_gone_once_detached():
    demo = shm.sysv_demo()
    if demo.shmid is None:
        pytest.skip(demo.note)
    assert demo.read_back == b"System V" and demo.after_detach == []
    if demo.tool:
        assert len(demo.while_attached) == 1


def test_the_copy_benchmark_returns_one_time_per_trial():
    b = shm.copy_benchmark(1 << 20, 1 << 19, trials=3)
    for times in (b.numpy_seconds, b.segment_seconds, b.shared_first, b.shared_again,
                  b.private_first, b.private_again):
        assert len(times) == 3 and all(t > 0 for t in times)
    assert b.pages == (1 << 19) // shm.PAGE_SIZE
    assert b.shared_fault_us >= 0 and b.private_fault_us >= 0


@pytest.mark.parametrize("kwargs", [{"nbytes": 0}, {"segment_bytes": 1000},
                                    {"nbytes": 3 << 20, "segment_bytes": 2 << 20},
                                    {"trials": 0}])
def test_bad_benchmark_sizes_are_refused(kwargs):
    with pytest.raises(ValueError):
        shm.copy_benchmark(**kwargs)


def test_errors_are_lab_errors():
    assert issubclass(NoSuchSegment, LabError) and issubclass(AccessDenied, PermissionError)
