"""Programs labkit starts as separate processes, one file each, to be read like a textbook's.

Each file here is a complete program: ``python -m labkit.programs.NAME ARGS``.
labkit starts them with :func:`labkit.runner.start_module`, which makes them
die with the lab; run by hand from a terminal they work the same way.
"""
