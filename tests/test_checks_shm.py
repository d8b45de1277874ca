"""Lesson 03's checks (tests/test_checks.py covers solutions and untouched exercises):
plausible wrong answers fail with a message that points at the mistake."""
from __future__ import annotations

import ctypes
import mmap
import os
import struct

import numpy as np
import posix_ipc
from helpers import failures as _failures
from helpers import load_answers

import labkit
from labkit import objects, shm
from labkit.checks.shm import SLOT, Node, Reading

SOLVED = load_answers("solutions/03_shared_memory.ipynb")


def test_a_single_function_instead_of_a_pair_is_refused_clearly():
    failed = _failures("03.record", SOLVED["publish"])
    assert all("pass both functions as a pair" in m for m in failed.values()) and failed


# --- 03.record ---------------------------------------------------------------------------


def test_a_record_written_in_another_layout_is_caught():
    def publish_packed(name, sensor, value, unit):
        with shm.Segment.attach(name) as seg:
            struct.pack_into("<dI i8s", seg.buf, 0, value, 1, sensor, unit)

    failed = _failures("03.record", (publish_packed, SOLVED["read_record"]))
    message = failed["publish writes the record where a reader expects it"]
    assert "another process reads sensor=" in message and "expected sensor=7, count=1" in message


def test_a_count_that_is_set_instead_of_incremented_is_caught():
    def publish_once(name, sensor, value, unit):
        with shm.Segment.attach(name) as seg:
            record = seg.struct(Reading)
            record.sensor, record.count, record.value, record.unit = sensor, 1, value, unit
            del record

    failed = _failures("03.record", (publish_once, SOLVED["read_record"]))
    assert list(failed) == ["publishing twice counts 2 and keeps the latest values"]
    assert "count=1" in failed["publishing twice counts 2 and keeps the latest values"]


def test_a_writer_that_unlinks_the_callers_segment_is_caught():
    def publish_and_unlink(name, sensor, value, unit):
        SOLVED["publish"](name, sensor, value, unit)
        posix_ipc.unlink_shared_memory(name)

    failed = _failures("03.record", (publish_and_unlink, SOLVED["read_record"]))
    assert "no longer exists after publish" in failed[
        "both leave the segment to its owner and clean up"]


def test_a_reader_that_leaves_its_descriptor_open_is_caught():
    def read_leaky(name):
        mem = posix_ipc.SharedMemory(name, read_only=True)
        with mmap.mmap(mem.fd, ctypes.sizeof(Reading), prot=mmap.PROT_READ) as mm:
            r = Reading.from_buffer_copy(mm)
        return (r.sensor, r.count, r.value, r.unit)

    failed = _failures("03.record", (SOLVED["publish"], read_leaky))
    assert list(failed) == ["both leave the segment to its owner and clean up"]
    assert "read_record did not clean up: file descriptor" in failed[
        "both leave the segment to its owner and clean up"]


_kept: list = []


def test_a_reader_that_keeps_the_segment_mapped_is_caught():
    def read_and_keep(name):
        seg = shm.Segment.attach(name, readonly=True)
        _kept.append(seg)                            # a "cache" keeps the mapping alive
        r = Reading.from_buffer_copy(seg.buf)
        return (r.sensor, r.count, r.value, r.unit)

    failed = _failures("03.record", (SOLVED["publish"], read_and_keep))
    message = failed["both leave the segment to its owner and clean up"]
    assert "a shared mapping was still in place when your function returned" in message


# --- 03.parallel_sum ---------------------------------------------------------------------


def test_slots_in_a_plain_array_are_caught():
    def plain_slots(data, n):
        slots = np.zeros(n, SLOT)                    # copied into each child at fork

        def work(i):
            slots[i] = (os.getpid(), np.array_split(data, n)[i].sum())

        labkit.run_workers(work, n).values
        pairs = [(int(p), int(t)) for p, t in slots]
        return sum(t for _, t in pairs), pairs

    failed = _failures("03.parallel_sum", plain_slots)
    assert "wrote into their own copies, not into shared memory" in failed[
        "each slot holds its part's sum, written by its own worker process"]
    assert "the total is right (4 workers, 100,001 numbers)" in failed


def test_summing_in_the_calling_process_is_caught():
    def no_workers(data, n):
        slots = [(os.getpid(), int(part.sum())) for part in np.array_split(data, n)]
        return sum(t for _, t in slots), slots

    failed = _failures("03.parallel_sum", no_workers)
    assert list(failed) == ["each slot holds its part's sum, written by its own worker process"]
    assert "expected four different worker processes" in next(iter(failed.values()))


def test_a_segment_never_unlinked_is_caught():
    def leaves_it(data, n):
        mem = posix_ipc.SharedMemory(objects.lab_name("sum"), posix_ipc.O_CREX, mode=0o600,
                                     size=n * SLOT.itemsize)
        mm = mmap.mmap(mem.fd, n * SLOT.itemsize)
        mem.close_fd()
        slots = np.frombuffer(mm, SLOT)

        def work(i):
            slots[i] = (os.getpid(), np.array_split(data, n)[i].sum())

        labkit.run_workers(work, n).values
        pairs = [(int(p), int(t)) for p, t in slots]
        del slots
        mm.close()                                   # detached, but never unlinked
        return sum(t for _, t in pairs), pairs

    failed = _failures("03.parallel_sum", leaves_it)
    assert list(failed) == ["nothing is left behind: no segment, mapping, descriptor or child"]
    assert "was left behind (labkit removed it)" in next(iter(failed.values()))


def test_a_dropped_segment_takes_its_name_with_it_so_the_answer_stays_clean():
    def forgets_with(data, n):
        seg = shm.Segment.create(n * SLOT.itemsize)  # no with block, no unlink...

        def work(i, seg):
            seg.array(SLOT, n)[i] = (os.getpid(), np.array_split(data, n)[i].sum())

        labkit.run_workers(work, n, seg).values
        slots = [(int(p), int(t)) for p, t in seg.array(SLOT, n)]
        return sum(t for _, t in slots), slots       # ...but the Segment's owner ends here

    assert _failures("03.parallel_sum", forgets_with) == {}


# --- 03.linked_list ----------------------------------------------------------------------


def test_a_list_of_pointers_is_caught():
    def build_pointers(name, values):
        with shm.Segment.attach(name) as seg:
            nodes = [seg.struct(Node, 8 + 16 * i) for i in range(len(values))]
            for i, (node, value) in enumerate(zip(nodes, values)):
                node.value = value
                node.next = ctypes.addressof(nodes[i + 1]) if i + 1 < len(nodes) else 0
            seg.struct(ctypes.c_int64).value = ctypes.addressof(nodes[0]) if nodes else 0
            del nodes, node

    failed = _failures("03.linked_list", (build_pointers, SOLVED["walk_list"]))
    message = failed["build_list stores offsets that another process can follow"]
    assert "It looks like an address in the builder's process" in message


def test_a_walker_that_ignores_next_is_caught():
    def walk_in_order(name):
        with shm.Segment.attach(name, readonly=True) as seg:
            count = sum(1 for i in range(8, seg.size - 15, 16)
                        if Node.from_buffer_copy(seg.buf, i).value)
            return [Node.from_buffer_copy(seg.buf, 8 + 16 * i).value for i in range(count)]

    failed = _failures("03.linked_list", (SOLVED["build_list"], walk_in_order))
    assert "walk_list follows the offsets, wherever the nodes are" in failed
    assert "its nodes stored out of order" in failed[
        "walk_list follows the offsets, wherever the nodes are"]


def test_a_walker_that_follows_addresses_is_caught():
    def walk_addresses(name):
        with shm.Segment.attach(name, readonly=True) as seg:
            values, p = [], ctypes.c_int64.from_buffer_copy(seg.buf, 0).value
            while p:
                node = Node.from_address(p)          # an offset used as an address
                values.append(node.value)
                p = node.next
            return values

    failed = _failures("03.linked_list", (SOLVED["build_list"], walk_addresses))
    assert "killed by SIGSEGV: it used a stored number as an address" in failed[
        "walk_list follows the offsets, wherever the nodes are"]


# --- 03.lifecycle ------------------------------------------------------------------------


def test_cleanup_without_finally_is_caught():
    def no_finally(size, work, n):
        mem = posix_ipc.SharedMemory(objects.lab_name("life"), posix_ipc.O_CREX, mode=0o600,
                                     size=size)
        labkit.run_workers(work, n, mem.name).values    # raises: what follows never runs
        data = os.pread(mem.fd, size, 0)
        mem.close_fd()
        mem.unlink()
        return data

    raises = "a worker that raises: the segment is still destroyed, and you raise"
    failed = _failures("03.lifecycle", no_finally)
    assert set(failed) == {raises,
                           "a worker that is killed: the segment is still destroyed, and you raise"}
    assert "did not clean up: shm /labkit_" in failed[raises]


def test_a_segment_dropped_by_an_exception_still_goes_with_its_owner():
    def no_with(size, work, n):
        seg = shm.Segment.create(size)                   # no with block, no finally...
        labkit.run_workers(work, n, seg.name).values
        data = bytes(seg.buf)
        seg.unlink()
        return data                                      # ...but the Segment's owner ends

    assert _failures("03.lifecycle", no_with) == {}


def test_swallowing_a_failed_worker_is_caught():
    def swallows(size, work, n):
        with shm.Segment.create(size) as seg:
            labkit.run_workers(work, n, seg.name)    # results never looked at
            return bytes(seg.buf)

    failed = _failures("03.lifecycle", swallows)
    assert "your function returned normally" in failed[
        "a worker that raises: the segment is still destroyed, and you raise"]
    assert "your function returned normally" in failed[
        "a worker that is killed: the segment is still destroyed, and you raise"]


def test_a_fixed_world_readable_name_is_caught():
    def fixed_name(size, work, n):
        name = f"/labkit_{os.getuid()}_{os.getpid()}_fixed_000000"
        mem = posix_ipc.SharedMemory(name, posix_ipc.O_CREAT, mode=0o666, size=size)
        try:
            labkit.run_workers(work, n, name).values
            return os.pread(mem.fd, size, 0)
        finally:
            mem.close_fd()
            mem.unlink()

    old = os.umask(0o022)
    try:
        failed = _failures("03.lifecycle", fixed_name)
    finally:
        os.umask(old)
    assert "the segment had mode 0644" in failed[
        "the segment is private: mode 0600, and a fresh name each time"]


def test_workers_run_one_after_the_other_are_caught():
    def one_by_one(size, work, n):
        with shm.Segment.create(size) as seg:
            for i in range(n):
                labkit.run(work, i, seg.name).value
            return bytes(seg.buf)

    failed = _failures("03.lifecycle", one_by_one)
    assert list(failed) == ["the workers run at the same time"]
    assert "they did not run at the same time" in failed["the workers run at the same time"]


def test_objects_made_by_the_checks_carry_lab_names():
    assert objects.lab_name("check").startswith(f"/labkit_{os.getuid()}_")
