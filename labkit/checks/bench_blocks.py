"""Checks for lesson 07's debugging exercise 07.pipe_blocks: a child writes big blocks into a
pipe and the parent reads them back block by block, as a throughput measurement would.

Nothing here is timed. Every block is bigger than the pipe (64 KiB on Linux, and one read
never returns more than the pipe holds), so a parent that takes one read for one block gets
a piece of it in every run; block ``k`` is filled with the byte ``k % 256``, so a block that
runs into the next one shows too.
"""
from __future__ import annotations

from typing import Any

from ..checking import CheckFailed, Exercise, call, expect, expect_clean
from ._shared import expect_function

BLOCKS = Exercise("07.pipe_blocks", "Big blocks through a pipe", kind="debug",
                  timeout=60.0)


def _blocks(answer: Any, count: int, size: int) -> Any:
    """Call ``pipe_blocks(count, size)``; fail unless every block came whole and in order."""
    expect_function(answer)
    what = f"pipe_blocks({count}, {size:_})"
    attempt = call(answer, count, size)
    got = attempt.value
    expect(isinstance(got, list) and all(isinstance(b, tuple) and len(b) == 3
                                         and all(type(x) is int for x in b) for b in got),
           f"{what} returned {str(got)[:80]}; expected a list of (length, first byte, last "
           "byte) tuples, one per block")
    expect(len(got) == count, f"{what} returned {len(got)} blocks; expected {count}")
    for k, (length, first, last) in enumerate(got):
        if length < size:
            raise CheckFailed(f"{what}: block {k} arrived with {length:_} bytes instead of "
                              f"{size:_}. One read returns what the pipe holds at that moment, "
                              "never more than the pipe's size (64 KiB here): it is not a "
                              "message")
        expect(length == size, f"{what}: block {k} arrived with {length:_} bytes, more than "
                               f"the {size:_} sent: it took bytes of the next block")
        expect((first, last) == (k % 256, k % 256),
               f"{what}: block {k} runs from byte value {first} to {last}; expected "
               f"{k % 256} throughout: bytes of another block got into it")
    return attempt


@BLOCKS.check("4 blocks of 1 MiB: each arrives whole, in order",
              hint="Print the length of what each read returns. Is it always what you asked "
                   "for?",
              concept="A pipe is a stream of bytes with no message boundaries. os.read(fd, n) "
                      "returns at least 1 byte and at most n: as many as the pipe holds when "
                      "it is called, which for a big block is only part of it.")
def _(answer):
    _blocks(answer, 4, 1 << 20)


@BLOCKS.check("7 blocks of 100,000 bytes: none takes bytes of the next one",
              hint="When one block is complete, how many more bytes may the next read take?")
def _(answer):
    _blocks(answer, 7, 100_000)


@BLOCKS.check("the child is reaped and no descriptor is left open",
              hint="Which ends of the pipe does each process still hold when it is done, and "
                   "who waits for the child?")
def _(answer):
    expect_clean(_blocks(answer, 3, 300_000))
