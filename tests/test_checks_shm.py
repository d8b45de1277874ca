"""Lesson 03's check helpers and the premises they rest on. The solutions and untouched
exercises are covered by tests/test_checks.py, the wrong answers by
tests/mutants/03_shared_memory.py."""
from __future__ import annotations

import os
import warnings

import numpy as np
from helpers import failures as _failures
from helpers import load_answers

import labkit
from labkit import objects, shm
from labkit.checking import call
from labkit.checks.shm import SLOT, _elsewhere, _watched

SOLVED = load_answers("solutions/03_shared_memory.ipynb")


def test_a_single_function_instead_of_a_pair_is_refused_clearly():
    failed = _failures("03.record", SOLVED["publish"])
    assert all("pass both functions as a pair" in m for m in failed.values()) and failed


def test_a_dropped_segment_takes_its_name_with_it_so_the_answer_stays_clean():
    def forgets_with(data, n):
        seg = shm.Segment.create(n * SLOT.itemsize)  # no with block, no unlink...

        def work(i, seg):
            seg.array(SLOT, n)[i] = (os.getpid(), np.array_split(data, n)[i].sum())

        _ = labkit.run_workers(work, n, seg).values
        slots = [(int(p), int(t)) for p, t in seg.array(SLOT, n)]
        return sum(t for _, t in slots), slots       # ...but it ends with the function

    assert _failures("03.parallel_sum", forgets_with) == {}


def test_a_segment_only_garbage_collection_unlinks_warns_and_still_goes():
    seg = shm.Segment.create(4096)
    path = seg.path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del seg
    assert not os.path.exists(path)
    assert [str(w.message) for w in caught if w.category is ResourceWarning
            and "was never unlinked" in str(w.message)]


def test_a_segment_ended_on_purpose_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with shm.Segment.create(4096):
            pass
        seg = shm.Segment.create(4096)
        seg.unlink()
        del seg


def _mapped_at(name: str) -> int:
    with shm.Segment.attach(name, readonly=True) as seg:
        return seg.address


def test_a_walker_maps_the_segment_where_a_sibling_process_did_not():
    with shm.Segment.create(4096) as seg:
        plain = call(_watched, _mapped_at, seg.name).value[1]
        moved = call(_elsewhere, _mapped_at, seg.name).value[1]
    assert moved != plain


def test_objects_made_by_the_checks_carry_lab_names():
    assert objects.lab_name("check").startswith(f"/labkit_{os.getuid()}_")


def test_the_results_table_row_is_the_c_layout_that_native_struct_writes():
    import ctypes
    import struct

    from labkit.checks.shm import Row

    assert ctypes.sizeof(Row) == struct.calcsize("iqd") == 24
    assert (Row.count.offset, Row.mean.offset) == (8, 16)
    assert struct.calcsize("<iqd") == 20            # the given reader's layout: no padding


def _forked_here() -> list[bool]:
    """In the answer's process: whether a raw fork, then labkit's workers, are seen as
    forked by labkit (each child reports through its exit code)."""
    from labkit.checks._shared import forked_by_labkit

    pid = os.fork()
    if pid == 0:
        os._exit(int(forked_by_labkit()))
    raw = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    by_labkit = labkit.run_workers(lambda i: forked_by_labkit(), 1, show=False).values[0]
    return [bool(raw), by_labkit]


def test_a_raw_fork_in_an_answer_is_told_from_a_fork_by_labkits_helpers():
    assert call(_forked_here).value == [False, True]


def test_the_raw_gather_children_see_their_named_shared_mapping_from_the_kernel():
    from labkit.checks.shm_raw import _CHILD, _FACTS, _PRIVATE_MODE, _SHARED, _facts

    got = call(SOLVED["gather"], 2, _facts).value
    assert got == [_FACTS + (_CHILD | _SHARED | _PRIVATE_MODE)] * 2
