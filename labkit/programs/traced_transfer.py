"""Send COUNT messages of SIZE bytes one way through MECHANISM, then stop (lesson 07).

Usage: python -m labkit.programs.traced_transfer MECHANISM SIZE COUNT

labkit.bench.count_syscalls runs this program under ``strace -f -c`` twice,
once with COUNT messages and once with none: starting Python and making the
channel cost the same both times, so the difference, divided by COUNT, is
what one message costs the sender and the receiver together. MECHANISM is
one of labkit.bench.MECHANISMS ("pipe", "unix", "shm", ...).
"""
import sys

from labkit import objects, processes
from labkit.bench_channels import CHANNELS, Channel, message_bytes


def receive(channel: Channel, size: int, count: int) -> None:
    """The receiver (a child): take every message, then say so with one byte."""
    end = channel.end(1, True)          # keeps the receiving side's ends, closes the rest
    for _ in range(count):
        end.recv(size)
    end.send(end.prepare(memoryview(b"!")))
    end.close()


def main() -> None:
    mechanism, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with objects.scope() as objs:       # every named object goes at the end of the block
        channel = CHANNELS[mechanism](objs, size, 1)
        with processes.start(receive, channel, size, count, timeout=60, show=False) as child:
            end = channel.end(0, True)  # the sender: this process
            message = end.prepare(message_bytes(size))
            for _ in range(count):
                end.send(message)
            end.recv(1)                 # the receiver has them all
            end.close()
            result = child.wait()
    if not result.returned:
        sys.exit(f"the receiver failed: {result.failure}\n{result.traceback}")


if __name__ == "__main__":
    main()
