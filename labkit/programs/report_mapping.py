"""Attach a shared memory segment by name and report how this process maps it, as JSON.

Run: ``python -m labkit.programs.report_mapping NAME NBYTES``. Prints one
line: this process's pid, the address where the segment starts here, the
line of ``/proc/self/maps`` that shows it, and its first NBYTES bytes.
:func:`labkit.shm.two_mappings` compares it with the notebook's own view.
"""
import json
import os
import sys

from labkit.segment import Segment, maps_line


def main(argv: list[str]) -> None:
    name, nbytes = argv[0], int(argv[1])
    with Segment.attach(name, readonly=True) as seg:
        print(json.dumps({"pid": os.getpid(), "address": seg.address,
                          "maps": maps_line(seg.name), "first": list(seg.buf[:nbytes])}))


if __name__ == "__main__":
    main(sys.argv[1:])
