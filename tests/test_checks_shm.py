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
