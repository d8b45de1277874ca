"""Run Python source text given on the command line, as a script with its own arguments.

Run: ``python -m labkit.programs.run_code CODE ARG...``. The code sees
``sys.argv[1:] == [ARG, ...]``. :func:`labkit.shm.run_unrelated` starts this
to show a process that shares nothing with the notebook: no memory, no
mapping, no open object, only what it opens by name.
"""
import sys


def main(argv: list[str]) -> None:
    code, sys.argv = argv[0], ["-c", *argv[1:]]
    exec(compile(code, "<unrelated process>", "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main(sys.argv[1:])
