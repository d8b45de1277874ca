"""Wrong answers to lesson 04 (data races): lost-update schedules and the racy counter.

The counter mutants run on real processes; the check makes every worker load
the counter before any stores it, so their faults show in every run.
"""
from mutants import Mutant

# The lesson's worker, as the students write it: the counter mutants differ around it.
_ADD_ONES = '''
def add_ones(i, counter, n):
    for _ in range(n):
        counter.value += 1
'''

MUTANTS = [
    # --- 04.lost_update: schedules in the interleaving model
    Mutant("04.lost_update", "serial_schedule", '''
def lose_one():
    return "000 111"          # one process after the other: nothing is lost
''', fault=r"lose_one\(\) gave '000 111': following it, x ends at 2, not 1"),
    Mutant("04.lost_update", "loads_and_adds_only", '''
def lose_one():
    return "0101"             # both load and add, but nobody stores
''', fault=r"stops with 2 steps still to go"),
    Mutant("04.lost_update", "three_lose_only_one", '''
def lose_two():
    return "01 01 01 222"     # P0 and P1 race, but P2 runs alone afterwards
''', fault=r"lose_two\(\) gave .*x ends at 2, not 1"),
    Mutant("04.lost_update", "processes_numbered_from_one", '''
def lose_two():
    return "123 123 123"
''', fault=r"cannot run: .*process 3"),
    Mutant("04.lost_update", "one_step_too_many", '''
def lose_one():
    return "01 01 01 0"
''', fault=r"cannot run: .*finished"),
    Mutant("04.lost_update", "returns_the_trace", '''
def lose_one():
    return interleave.run(interleave.counter(2), "010101")
''', fault=r"expected a schedule"),

    # --- 04.smallest_total
    Mutant("04.smallest_total", "written_out_for_three", '''
def smallest_total(n):
    return "0" + "111" * 2 + "00" + "1" + "000" * 2 + "11"
''', fault=r"smallest_total\(2\) gave .*cannot run|smallest_total\(2\) gave .*steps still"),
    Mutant("04.smallest_total", "one_stale_store_only", '''
def smallest_total(n):
    return "0" + "111" * n + "00" + "000" * (n - 1)     # P1's work wiped, but x = n after
''', fault=r"smallest_total\(3\) gave .*x ends at 3, not 2"),
    Mutant("04.smallest_total", "second_store_not_stale", '''
def smallest_total(n):
    return "0" + "111" * (n - 1) + "00" + "000" * (n - 1) + "111"
''', fault=r"x ends at \d+, not 2"),
    Mutant("04.smallest_total", "n_where_n_minus_1", '''
def smallest_total(n):
    return "0" + "111" * n + "00" + "1" + "000" * n + "11"
''', fault=r"cannot run: .*finished"),
    Mutant("04.smallest_total", "serial", '''
def smallest_total(n):
    return "000" * n + "111" * n
''', fault=r"x ends at 6, not 2"),
    Mutant("04.smallest_total", "returns_the_value", '''
def smallest_total(n):
    return 2
''', fault=r"smallest_total\(3\) returned 2; expected a schedule"),

    # --- 04.racy_counter: real processes
    Mutant("04.racy_counter", "fakes_the_number", '''
def racy_count(workers, iterations):
    labkit.run_workers(lambda i: None, workers).values
    return workers * iterations            # what a lossless count would give
''', fault=r"no worker process ever stored a value into the shared counter"),
    Mutant("04.racy_counter", "counter_in_private_memory", _ADD_ONES + '''
def racy_count(workers, iterations):
    counter = ctypes.c_int64(0)            # copied into each worker at fork
    labkit.run_workers(add_ones, workers, counter, iterations).values
    return counter.value
''', fault=r"counted in its own copy, not in shared memory"),
    Mutant("04.racy_counter", "no_worker_processes", '''
def racy_count(workers, iterations):
    with shm.Segment.create(8) as seg:
        counter = seg.struct(ctypes.c_int64)
        for _ in range(workers * iterations):  # all in this process: nothing can race
            counter.value += 1
        value = int(counter.value)
        del counter
    return value
''', fault=r"started no process|forked 0 process"),
    Mutant("04.racy_counter", "segment_never_unlinked", _ADD_ONES + '''
def racy_count(workers, iterations):
    seg = shm.Segment.create(8)
    counter = seg.struct(ctypes.c_int64)
    labkit.run_workers(add_ones, workers, counter, iterations).values
    value = int(counter.value)
    del counter
    seg.close()                            # detached; the name waits for the collector
    return value
''', fault=r"never unlinked the segment .*garbage collector"),
    Mutant("04.racy_counter", "name_never_unlinked", _ADD_ONES + '''
import posix_ipc

def racy_count(workers, iterations):
    mem = posix_ipc.SharedMemory(labkit.objects.lab_name("leak"), posix_ipc.O_CREX,
                                 mode=0o600, size=8)
    seg = shm.Segment.attach(mem.name)
    mem.close_fd()
    counter = seg.struct(ctypes.c_int64)
    labkit.run_workers(add_ones, workers, counter, iterations).values
    value = int(counter.value)
    del counter
    seg.close()
    return value
''', fault=r"did not clean up: .*was left behind"),
    Mutant("04.racy_counter", "work_split_between_workers", _ADD_ONES + '''
def racy_count(workers, iterations):
    with shm.Segment.create(8) as seg:
        counter = seg.struct(ctypes.c_int64)
        labkit.run_workers(add_ones, workers, counter, iterations // workers).values
        value = int(counter.value)
        del counter
    return value
''', fault=r"stored into the shared counter [\d,]+ times in all; expected"),
    Mutant("04.racy_counter", "locked_after_all", '''
def racy_count(workers, iterations):
    def add_ones(i, counter, lock, n):
        for _ in range(n):
            with lock:
                counter.value += 1
    with labkit.objects.scope() as objs, shm.Segment.create(8) as seg:
        lock = objs.semaphore(1)
        counter = seg.struct(ctypes.c_int64)
        labkit.run_workers(add_ones, workers, counter, lock, iterations).values
        value = int(counter.value)
        del counter
    return value
''', fault=r"at least 2 updates must be lost.*serialized"),
    Mutant("04.racy_counter", "returns_the_view", _ADD_ONES + '''
def racy_count(workers, iterations):
    seg = shm.Segment.create(8)
    counter = seg.struct(ctypes.c_int64)
    labkit.run_workers(add_ones, workers, counter, iterations).values
    return counter                         # a view on memory that is about to go away
''', fault=r"expected the counter's final value as an int"),
]
