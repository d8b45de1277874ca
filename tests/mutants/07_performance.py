"""Wrong answers to lesson 07 (performance): mistakes of mechanism, each killed by a check
of what the answer did (the echo's notes, the figures bench gave it, where the bytes lay),
never by a timing that happened to be slow."""
from mutants import UNREAPED, Mutant


def _maker(exercise: str, template: str, signature: str, call: str):
    """Mutants of one exercise: ``template`` called with one mistake (``args``) switched on."""
    return lambda name, args, fault: Mutant(
        exercise, name, f"{template}\ndef {signature}:\n    return {call}, {args})\n", fault)


# round_trip with one mistake; the parameters say which (the solution when all are default)
_ROUND_TRIP = '''
def _trip(n, cpus, echo, *, unit=1e9, call_echo=True, pin=True, child_cpu=1, one_way=False,
          fixed_start=False, warm_up=50, reap=True, echo_in_parent=False, answer_back=True,
          close_first=True):
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if pin:
                os.sched_setaffinity(0, {cpus[child_cpu]})
            os.close(down_w)
            os.close(up_r)
            while message := os.read(down_r, 1):
                reply = echo(message) if call_echo and not echo_in_parent else message
                if answer_back:
                    os.write(up_w, reply)
        finally:
            os._exit(0)
    os.close(down_r)
    os.close(up_w)
    if pin:
        os.sched_setaffinity(0, {cpus[0]})
    times = []
    start = time.perf_counter_ns()
    for k in range(warm_up + n):
        began = start if fixed_start else time.perf_counter_ns()
        os.write(down_w, b"x")
        if one_way:
            ended = time.perf_counter_ns()
        os.read(up_r, 1)
        if echo_in_parent:
            echo(b"x")
        if not one_way:
            ended = time.perf_counter_ns()
        if k >= warm_up:
            times.append((ended - began) / unit)
    if reap and not close_first:
        os.waitpid(pid, 0)          # the child still waits for input: never returns
    os.close(down_w)
    os.close(up_r)
    if reap and close_first:
        os.waitpid(pid, 0)
    return times
'''


_round_trip = _maker('07.round_trip', _ROUND_TRIP, 'round_trip(n, cpus, echo)',
                     '_trip(n, cpus, echo')


# fastest with one mistake
_FASTEST = '''
def _fastest(workload, *, pick=None, scale=1.0, stream_always=False, rounds_always=False,
             default_size=False, usable=None):
    size, count = workload["size"], workload["count"]
    if usable is None:
        usable = [m for m in bench.MECHANISMS
                  if m != "mqueue" or size <= mq.limits().msgsize_max]
    if (workload["pattern"] == "request-response" or rounds_always) and not stream_always:
        s = bench.round_trips(usable, n=count, **({} if default_size else {"size": size}))
        figures = {m: s.round_trip(m) * scale for m in usable}
    else:
        s = bench.sweep(usable, sizes=[size], trials=3, round_trips=0, total=size * count,
                        max_messages=count, baseline=False)
        figures = {m: s.per_message(m, size) * scale for m in usable}
    return pick or min(figures, key=figures.get), figures
'''


_fastest = _maker('07.fastest', _FASTEST, 'fastest(workload)',
                  '_fastest(workload')


# ring_transfer with one mistake
_RING = '''
def _ring(count, size, slots, produce, consume, *, copy_in=False, copy_out=False,
          wait_empty=True, wait_full=True, release_early=False, unlink=True, thread=False,
          free=None, hand_back=True, poll=False):
    import threading
    import time

    import posix_ipc

    def take(sem):
        if not poll:
            sem.acquire(10)
            return
        while True:  # asks every 50 ms instead of being woken: right, but slow
            try:
                sem.acquire(0)
                return
            except posix_ipc.BusyError:
                time.sleep(0.05)

    scope = objects.scope()
    seg = shm.Segment.create(slots * size, label="ring")
    try:
        empty = scope.semaphore(free if free is not None else slots if wait_empty else 0)
        full = scope.semaphore(0)
        view = memoryview(seg.buf)

        def consumer():
            for i in range(count):
                if wait_full:
                    take(full)
                at = (i % slots) * size
                if release_early and wait_empty:
                    empty.release()
                consume(i, bytes(view[at:at + size]) if copy_out else view[at:at + size])
                if wait_empty and not release_early and hand_back:
                    empty.release()

        def producer():
            private = memoryview(bytearray(size))
            for i in range(count):
                if wait_empty:
                    take(empty)
                at = (i % slots) * size
                if copy_in:
                    produce(i, private)
                    view[at:at + size] = private
                else:
                    produce(i, view[at:at + size])
                full.release()

        if thread:
            t = threading.Thread(target=consumer)
            t.start()
            producer()
            t.join()
        else:
            with labkit.start(consumer, timeout=60) as child:
                producer()
                child.wait().value
        view.release()
    finally:
        seg.close()
        if unlink:
            seg.unlink()
            scope.close()
'''


_ring = _maker('07.ring', _RING, 'ring_transfer(count, size, slots, produce, consume)',
               '_ring(count, size, slots, produce, consume')


# pipe_blocks (07.pipe_blocks, a debugging exercise) with one mistake; read="one read" is the
# program the exercise gives
_PIPE_BLOCKS = '''
def _pipe_blocks(count, size, *, read="whole", close_write=True, reap=True):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            for k in range(count):
                os.write(w, bytes([k % 256]) * size)
            code = 0
        finally:
            os._exit(code)
    if close_write:
        os.close(w)
    received = []
    for _ in range(count):
        if read == "one read":
            block = os.read(r, size)
        elif read == "until a short read":
            block = b""
            while True:
                piece = os.read(r, size)
                block += piece
                if len(piece) < size:
                    break
        elif read == "pipe-sized reads":
            block = b"".join(os.read(r, 65536) for _ in range(max(1, size // 65536)))
        else:
            block = b""
            while len(block) < size:
                block += os.read(r, size - len(block))
        received.append((len(block), block[0], block[-1]))
    os.close(r)
    if reap:
        os.waitpid(pid, 0)
    return received
'''
_blocks = _maker("07.pipe_blocks", _PIPE_BLOCKS, "pipe_blocks(count, size)",
                 "_pipe_blocks(count, size")

MUTANTS = [
    # --- 07.round_trip
    _round_trip("nanoseconds_not_seconds", "unit=1", r"not seconds"),
    _round_trip("echo_skipped", "call_echo=False", r"echo was called 0 times"),
    _round_trip("echo_in_the_timing_process", "echo_in_parent=True",
                r"echo ran in the process that does the timing"),
    _round_trip("not_pinned", "pin=False", r"not pinned to cpus\[1\]"),
    _round_trip("child_pinned_to_the_parents_cpu", "child_cpu=0", r"not pinned to cpus\[1\]"),
    _round_trip("timed_one_way", "one_way=True",
                r"did not include the wait for the reply"),
    _round_trip("timed_from_a_fixed_start", "fixed_start=True",
                r"must start anew at its own write"),
    _round_trip("warm_up_timed", "warm_up=0", r"warm-up round trips were timed"),
    _round_trip("child_never_waited_for", "reap=False", r"nobody waited for it"),
    _round_trip("waits_before_closing_the_write_end", "close_first=False",
                r"write end of its pipe is still open"),
    _round_trip("child_never_answers", "answer_back=False",
                r"waited for a message the other never sent"),

    # --- 07.fastest
    _fastest("choice_against_its_own_figures", "pick='mp_queue'", r"by your own figures"),
    _fastest("microseconds", "scale=1e6", r"not seconds"),
    _fastest("round_trips_for_a_stream", "rounds_always=True, default_size=True",
             r"one-way stream.*was a round trip"),
    _fastest("stream_for_request_response", "stream_always=True",
             r"request and response.*time per message of a one-way stream"),
    _fastest("round_trips_of_one_byte", "default_size=True",
             r"measured with 1-byte messages"),
    _fastest("whole_run_not_per_message", "scale=16", r"(16 times|whole run)"),
    _fastest("queue_above_its_size_limit", "usable=list(bench.MECHANISMS)",
             r"every mechanism that can carry|msgsize|message queue"),

    # --- 07.ring
    _ring("copies_into_the_ring", "copy_in=True", r"not the shared segment"),
    _ring("consumes_a_copy", "copy_out=True", r"a copy of the message"),
    _ring("laps_its_reader", "wait_empty=False", r"overwritten before it was consumed"),
    _ring("hands_the_slot_back_before_consuming", "release_early=True",
          r"overwritten before it was consumed"),
    _ring("reads_before_the_slot_is_full", "wait_full=False",
          r"arrived wrong|overwritten|out of order"),
    _ring("consumer_is_a_thread", "thread=True", r"ran in the same process"),
    _ring("no_free_slot_at_the_start", "free=0", r"none is free at the start"),
    _ring("slots_never_handed_back", "hand_back=False", r"never handed back"),
    _ring("segment_and_semaphores_left", "unlink=False", r"was left behind"),
    _ring("polls_the_semaphores", "poll=True", r"your ring moved at best .* a pipe"),

    # --- 07.pipe_blocks: the given program is the first
    _blocks("given_one_read_per_block", "read='one read'", r"block 0 arrived with [\d_]+ bytes"),
    _blocks("stops_at_the_first_short_read", "read='until a short read'",
            r"arrived with [\d_]+ bytes instead"),
    _blocks("reads_pipe_sized_pieces", "read='pipe-sized reads'", r"arrived with [\d_]+ bytes"),
    _blocks("write_end_kept_in_the_parent", "close_write=False",
            r"file descriptor \d+ \(pipe:\S+\) was left open"),
    _blocks("child_never_reaped", "reap=False", UNREAPED),
]
