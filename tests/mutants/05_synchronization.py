"""Wrong answers to lesson 05 (synchronization): locks, batching, a bounded buffer for
several producers and consumers, lock ordering, deadlock schedules.

The counters' checks hold each worker's first store until the others have
loaded the counter or sleep on a lock, and the bank's accounts and locks
record what every worker does; so a missing or misplaced lock fails in every
run, not in one of forty.
"""
from mutants import Mutant


def _counter(worker: str, lock: str = "lock = objs.semaphore(1)") -> str:
    """A counter experiment around ``worker`` (the body of ``add_ones``), as a student
    would write it: a segment, a lock, workers released together."""
    return f'''
def _experiment(workers, iterations):
    def add_ones(i, counter, lock, n):
{worker}
    with objects.scope() as objs, shm.Segment.create(8) as seg:
        {lock}
        counter = seg.struct(ctypes.c_int64)
        labkit.run_workers(add_ones, workers, counter, lock, iterations).values
        value = int(counter.value)
        del counter
    return value

locked_count = batched_count = _experiment
'''


_BATCHED_LOCAL = '''        local = 0
        for _ in range(n):
            local += 1
'''


def _deposits(worker: str) -> str:
    """The deposits program of 05.deposits around ``worker`` (the loop of ``deposit``)."""
    return f'''
def deposit_all(workers, amounts):
    def deposit(i, total, lock):
        for amount in amounts[i::workers]:
{worker}
    with objects.scope() as objs, shm.Segment.create(8, label="total") as seg:
        lock = objs.semaphore(1, label="total")
        total = seg.struct(ctypes.c_int64)
        labkit.run_workers(deposit, workers, total, lock, timeout=2)
        final = int(total.value)
        del total
    return final
'''


_TURNS = '''
def _named(value, label):
    return posix_ipc.Semaphore(objects.lab_name(label), posix_ipc.O_CREX, mode=0o600,
                               initial_value=value)


def _unnamed(value, label):
    return multiprocessing.get_context("fork").Semaphore(value)


def take_turns(rounds, turn):
    mine = MAKE(1, "mine")
    theirs = MAKE(THEIRS, "theirs")
    slots = MAPPING
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for k in range(1, rounds, 2):
                    theirs.acquire(5)
                    struct.pack_into("q", slots, 8 * k, turn(k))
                    mine.release()
                code = 0
            finally:
                os._exit(code)
        try:
            for k in range(0, rounds, 2):
                mine.acquire(5)
                struct.pack_into("q", slots, 8 * k, turn(k))
                POST.release()
        finally:
            REAP
        return list(struct.unpack_from(f"{rounds}q", slots))
    finally:
        slots.close()
        for sem in (mine, theirs):
            UNLINK
            CLOSE
'''


def _turns(theirs: str = "0", mapping: str = "mmap.mmap(-1, 8 * rounds)", post: str = "theirs",
           reap: str = "os.waitpid(pid, 0)", unlink: str = "sem.unlink()",
           make: str = "_named", close: str = "sem.close()") -> str:
    """The solution of 05.take_turns with one of its parts changed."""
    return (_TURNS.replace("THEIRS", theirs).replace("MAPPING", mapping)
            .replace("POST", post).replace("REAP", reap).replace("UNLINK", unlink)
            .replace("MAKE", make).replace("CLOSE", close))


MUTANTS = [
    # --- 05.locked_counter
    Mutant("05.locked_counter", "locks_only_the_read", _counter('''        for _ in range(n):
            with lock:
                value = counter.value
            counter.value = value + 1'''), fault=r"updates were lost"),
    Mutant("05.locked_counter", "locks_only_the_write", _counter('''        for _ in range(n):
            value = counter.value + 1
            with lock:
                counter.value = value'''), fault=r"updates were lost"),
    Mutant("05.locked_counter", "no_lock_at_all", _counter('''        for _ in range(n):
            counter.value += 1'''), fault=r"updates were lost"),
    Mutant("05.locked_counter", "a_lock_per_worker", _counter('''        with objects.scope() as mine:
            own = mine.semaphore(1)          # nobody else ever sees this one
            for _ in range(n):
                with own:
                    counter.value += 1'''), fault=r"updates were lost"),
    Mutant("05.locked_counter", "semaphore_of_two", _counter('''        for _ in range(n):
            with lock:
                counter.value += 1''', lock="lock = objs.semaphore(2)"),
            fault=r"updates were lost"),
    Mutant("05.locked_counter", "semaphore_never_unlinked", _counter('''        for _ in range(n):
            with lock:
                counter.value += 1''', lock="lock = posix_ipc.Semaphore(objects.lab_name('l'), "
                                            "posix_ipc.O_CREX, mode=0o600, initial_value=1)"),
            fault=r"did not clean up: .*sem /labkit_.*left behind"),
    Mutant("05.locked_counter", "fakes_the_number", '''
def locked_count(workers, iterations):
    labkit.run_workers(lambda i: None, workers).values
    return workers * iterations
''', fault=r"no worker process ever stored a value into the shared counter"),

    # --- 05.batched_counter
    Mutant("05.batched_counter", "single_add_unlocked", _counter(_BATCHED_LOCAL + '''
        counter.value += local               # one add per worker, but not locked'''),
            fault=r"updates were lost"),
    Mutant("05.batched_counter", "reads_before_the_lock", _counter(_BATCHED_LOCAL + '''
        before = counter.value
        with lock:
            counter.value = before + local'''), fault=r"updates were lost"),
    Mutant("05.batched_counter", "locks_every_increment", _counter('''        for _ in range(n):
            with lock:
                counter.value += 1'''), fault=r"times faster, and at least 3 times"),
    Mutant("05.batched_counter", "fakes_the_number", '''
def batched_count(workers, iterations):
    labkit.run_workers(lambda i: None, workers).values
    return workers * iterations              # fast indeed
''', fault=r"no worker process ever stored a value into the shared counter"),
    Mutant("05.batched_counter", "total_in_private_memory", '''
def batched_count(workers, iterations):
    def add_ones(i, total, lock, n):
        with lock:
            total.value += n                 # the worker's own copy of total
    total = ctypes.c_int64(0)
    with objects.scope() as objs:
        lock = objs.semaphore(1)
        labkit.run_workers(add_ones, workers, total, lock, iterations).values
    return total.value
''', fault=r"returned 0: the workers' increments never reached the counter"),
    Mutant("05.batched_counter", "segment_never_unlinked", '''
def batched_count(workers, iterations):
    def add_ones(i, counter, lock, n):
        local = 0
        for _ in range(n):
            local += 1
        with lock:
            counter.value += local
    seg = shm.Segment.create(8)
    with objects.scope() as objs:
        lock = objs.semaphore(1)
        counter = seg.struct(ctypes.c_int64)
        labkit.run_workers(add_ones, workers, counter, lock, iterations).values
        value = int(counter.value)
        del counter
    seg.close()
    return value
''', fault=r"never unlinked the segment .*garbage collector"),

    # --- 05.bounded_buffer
    Mutant("05.bounded_buffer", "no_mutex", '''
from helpers import spsc_consumer as consumer     # right for one producer and one consumer
from helpers import spsc_producer as producer
''', fault=r"never arrived|more than once|no producer put"),
    Mutant("05.bounded_buffer", "producer_takes_the_mutex_first", '''
def producer(ring, items):
    for item in items:
        with ring.mutex:
            ring.empty.acquire()             # asleep on a full buffer, holding the mutex
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
        ring.full.release()
''', fault=r"held ring.mutex while it waited|deadlock"),
    Mutant("05.bounded_buffer", "consumer_takes_the_mutex_first", '''
def consumer(ring, count):
    got = []
    for _ in range(count):
        with ring.mutex:
            ring.full.acquire()              # asleep on an empty buffer, holding the mutex
            got.append(int(ring.slots[ring.head.value % ring.capacity]))
            ring.head.value += 1
        ring.empty.release()
    return got
''', fault=r"held ring.mutex while it waited"),
    Mutant("05.bounded_buffer", "producer_never_waits_for_a_slot", '''
def producer(ring, items):
    for item in items:
        with ring.mutex:
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
        ring.full.release()
''', fault=r"did not wait.*overwriting an item nobody had taken"),
    Mutant("05.bounded_buffer", "consumer_never_waits_for_an_item", '''
def consumer(ring, count):
    got = []
    for _ in range(count):
        with ring.mutex:
            got.append(int(ring.slots[ring.head.value % ring.capacity]))
            ring.head.value += 1
        ring.empty.release()
    return got
''', fault=r"at once from an empty buffer"),
    Mutant("05.bounded_buffer", "producer_never_posts_the_item", '''
def producer(ring, items):
    for item in items:
        ring.empty.acquire()
        with ring.mutex:
            ring.slots[ring.tail.value % ring.capacity] = item
            ring.tail.value += 1
''', fault=r"still waiting 3 s after|never arrived|did not finish"),

    # --- 05.lock_order
    Mutant("05.lock_order", "source_lock_first", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        with locks[src]:
            with locks[dst]:
                accounts[src] -= amount
                accounts[dst] += amount
''', fault=r"in the order \[1, 0\]; expected \[0, 1\]|deadlock"),
    Mutant("05.lock_order", "only_the_lower_lock", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        with locks[min(src, dst)]:
            accounts[src] -= amount
            accounts[dst] += amount
''', fault=r"account 1 while not holding its lock"),
    Mutant("05.lock_order", "higher_lock_first", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        with locks[max(src, dst)]:
            with locks[min(src, dst)]:
                accounts[src] -= amount
                accounts[dst] += amount
''', fault=r"in the order \[1, 0\]; expected \[0, 1\]"),
    Mutant("05.lock_order", "money_moved_after_the_locks", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        a, b = sorted((src, dst))
        with locks[a]:
            with locks[b]:
                pass
        accounts[src] -= amount
        accounts[dst] += amount
''', fault=r"while not holding its lock"),
    Mutant("05.lock_order", "one_release_forgotten", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        a, b = sorted((src, dst))
        locks[a].acquire()
        locks[b].acquire()
        accounts[src] -= amount
        accounts[dst] += amount
        locks[b].release()
''', fault=r"never released"),
    Mutant("05.lock_order", "released_before_the_move", '''
def transfer(accounts, locks, moves):
    for src, dst, amount in moves:
        a, b = sorted((src, dst))
        with locks[a]:
            with locks[b]:
                amount_from = accounts[src]
        accounts[src] = amount_from - amount
        accounts[dst] += amount
''', fault=r"changed account \d while not holding its lock"),

    # --- 05.deadlock_schedule
    Mutant("05.deadlock_schedule", "runs_to_the_end", '''
def deadlock_two():
    return "0000000 1111111"
''', fault=r"every process finished .*no deadlock"),
    Mutant("05.deadlock_schedule", "steps_a_blocked_process", '''
def deadlock_two():
    return "010"
''', fault=r"process 0 is blocked at 'acquire B'"),
    Mutant("05.deadlock_schedule", "only_two_philosophers_sit", '''
def deadlock_philosophers():
    return "01"
''', fault=r"some process can still move"),
    Mutant("05.deadlock_schedule", "philosophers_numbered_from_one", '''
def deadlock_philosophers():
    return "123"
''', fault=r"cannot run: .*process 3"),
    Mutant("05.deadlock_schedule", "one_lock_taken", '''
def deadlock_two():
    return "0"
''', fault=r"some process can still move"),
    Mutant("05.deadlock_schedule", "returns_a_number", '''
def deadlock_two():
    return 1
''', fault=r"deadlock_two\(\) returned 1; expected a schedule"),

    # --- 05.deposits: the given program is the first
    Mutant("05.deposits", "given_lock_kept_on_a_skipped_amount", _deposits('''            lock.acquire()
            if amount == 0:
                continue
            total.value += amount
            lock.release()'''), fault=r"deadlock.*give it back on every path", hangs=True),
    Mutant("05.deposits", "released_twice_on_a_skipped_amount", _deposits('''            lock.acquire()
            try:
                if amount == 0:
                    lock.release()
                    continue
                total.value += amount
            finally:
                lock.release()'''), fault=r"was lost.*two workers can be inside the lock"),
    Mutant("05.deposits", "lock_removed", _deposits('''            total.value += amount'''),
           fault=r"was lost"),
    Mutant("05.deposits", "break_instead_of_continue", _deposits('''            lock.acquire()
            if amount == 0:
                break
            total.value += amount
            lock.release()'''), fault=r"deadlock", hangs=True),
    Mutant("05.deposits", "waits_with_a_timeout_and_goes_on", _deposits('''            try:
                lock.acquire(0.05)
            except posix_ipc.BusyError:
                pass
            if amount == 0:
                continue
            total.value += amount
            lock.release()'''), fault=r"was lost|added twice"),

    # --- 05.take_turns
    Mutant("05.take_turns", "both_semaphores_start_at_one", _turns(theirs="1"),
           fault=r"ran while the other process was in a turn"),
    Mutant("05.take_turns", "both_semaphores_start_at_zero", _turns().replace(
        '_named(1, "mine")', '_named(0, "mine")'),
           fault=r"deadlock", hangs=True),
    Mutant("05.take_turns", "posts_its_own_semaphore", _turns(post="mine"),
           fault=r"deadlock", hangs=True),
    Mutant("05.take_turns", "private_mapping", _turns(
        mapping="mmap.mmap(-1, 8 * rounds, flags=mmap.MAP_PRIVATE)"),
           fault=r"child's writes never reached the parent"),
    Mutant("05.take_turns", "returns_before_the_child_is_done", _turns(reap="pass"),
           fault=r"stopped after turn .*wait for the child"),
    Mutant("05.take_turns", "semaphores_never_unlinked", _turns(unlink="pass"),
           fault=r"sem /\S+ was left behind"),
    Mutant("05.take_turns", "multiprocessing_semaphores", _turns(make="_unnamed", unlink="pass",
                                                                close="pass"),
           fault=r"had 0 named semaphore\(s\) open"),
    Mutant("05.take_turns", "a_thread_instead_of_a_child", '''
def take_turns(rounds, turn):
    import threading
    slots = [0] * rounds
    mine, theirs = threading.Semaphore(1), threading.Semaphore(0)

    def play(first, wait, post):
        for k in range(first, rounds, 2):
            wait.acquire()
            slots[k] = turn(k)
            post.release()

    other = threading.Thread(target=play, args=(1, theirs, mine))
    other.start()
    play(0, mine, theirs)
    other.join()
    return slots
''', fault=r"not by a child forked by the parent"),
]
