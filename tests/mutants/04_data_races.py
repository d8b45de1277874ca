"""Wrong answers to lesson 04 (data races): lost-update schedules, the racy counter, the
ticket sale to debug, and the race built with mmap and fork by hand.

The counter and ticket mutants run on real processes; the check makes every worker load
the counter before any stores it, so their faults show in every run.
"""
from mutants import UNREAPED, Mutant

# The lesson's worker, as the students write it: the counter mutants differ around it.
_ADD_ONES = '''
def add_ones(i, counter, n):
    for _ in range(n):
        counter.value += 1
'''

# 04.ticket_sale's program with the seller's loop as each mutant writes it.
_SALE = '''
import threading
def sell_tickets(sellers, seats):
    def sell(i, left, sold, lock):
{loop}
    with labkit.objects.scope() as objs, shm.Segment.create(8 * (1 + sellers)) as seg:
        lock = {lock}
        left = seg.struct(ctypes.c_int64)
        left.value = seats
        sold = {sold}
        labkit.run_workers(sell, sellers, left, sold, lock).values
        total = int(sold.sum())
        del left, sold
    return total
'''


def _sale(loop: str, lock: str = "objs.semaphore(1)",
          sold: str = "seg.array(np.int64, sellers, offset=8)") -> str:
    return _SALE.format(loop=loop, lock=lock, sold=sold)


_LOCKED_LOOK = '''
        while True:
            with lock:
                if left.value <= 0:
                    return
                time.sleep(0.001)
                left.value -= 1
            sold[i] += 1'''

# 04.raw_race's solution, with one of its calls made wrong by each mutant.
_RACE = '''
def lost_updates(workers, iterations):
    mm = {mapping}
    counter = ctypes.c_int64.from_buffer(mm{view})
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(iterations):
                    counter.value += 1
            finally:
                os._exit(0)
        pids.append(pid){after_fork}
    for pid in pids:
        {wait}
    final = counter.value
    del counter
    mm.close(){unlink}
    return {result}
'''


def _race(mapping: str = "mmap.mmap(-1, 8)", view: str = "", unlink: str = "",
          after_fork: str = "", wait: str = "os.waitpid(pid, 0)",
          result: str = "workers * iterations - final") -> str:
    return _RACE.format(mapping=mapping, view=view, unlink=unlink, after_fork=after_fork,
                        wait=wait, result=result)


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

    # --- 04.ticket_sale (debugging): the given program, and wrong fixes
    Mutant("04.ticket_sale", "given_lock_around_the_sale_only", _sale('''
        while left.value > 0:
            time.sleep(0.001)
            with lock:
                left.value -= 1
            sold[i] += 1'''), fault=r"sold 3 tickets for 1 seat"),
    Mutant("04.ticket_sale", "lock_around_the_look_only", _sale('''
        while True:
            with lock:
                seen = left.value
            if seen <= 0:
                return
            time.sleep(0.001)
            left.value = seen - 1
            sold[i] += 1'''), fault=r"sold 3 tickets for 1 seat"),
    Mutant("04.ticket_sale", "a_thread_lock_between_processes", _sale(
        _LOCKED_LOOK, lock="threading.Lock()"), fault=r"sold 3 tickets for 1 seat"),
    Mutant("04.ticket_sale", "take_then_give_back_without_lock", _sale('''
        while True:
            time.sleep(0.001)
            left.value -= 1
            if left.value < 0:
                left.value += 1
                return
            sold[i] += 1'''), fault=r"sold \d+ tickets for 1 seat"),
    Mutant("04.ticket_sale", "sales_counted_in_private_memory", _sale(
        _LOCKED_LOOK, sold="np.zeros(sellers, np.int64)"),
        fault=r"sold 0 tickets .*not counted where the caller reads them"),

    # --- 04.raw_race: the calls made by hand
    Mutant("04.raw_race", "private_mapping", _race(
        mapping="mmap.mmap(-1, 8, flags=mmap.MAP_PRIVATE)"), fault=r"never reached your process"),
    Mutant("04.raw_race", "children_one_after_the_other", _race(
        after_fork="\n        os.waitpid(pids.pop(), 0)"), fault=r"started one after the other"),
    Mutant("04.raw_race", "returns_the_final_count", _race(result="final"),
           fault=r"returned 20,000: the child's increments never reached|returned 20,000; one"),
    Mutant("04.raw_race", "labkit_workers_instead_of_fork", '''
def lost_updates(workers, iterations):
    mm = mmap.mmap(-1, 8)
    counter = ctypes.c_int64.from_buffer(mm)

    def add(i):
        for _ in range(iterations):
            counter.value += 1

    labkit.run_workers(add, workers).values
    final = counter.value
    del counter
    mm.close()
    return workers * iterations - final
''', fault=r"forked by labkit's helpers"),
    Mutant("04.raw_race", "counter_in_a_named_segment", _race(
        mapping="shm.Segment.create(8)", view=".buf", unlink="\n    mm.unlink()"),
        fault=r"named shared memory object but no anonymous shared mapping"),
    Mutant("04.raw_race", "one_child_never_reaped", _race(wait="pass\n    os.wait()"),
           fault=r"did not clean up: .*" + UNREAPED),
]
