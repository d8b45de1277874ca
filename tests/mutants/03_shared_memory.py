"""Wrong answers to lesson 03 (shared memory): another layout, a private copy instead of a
shared one, an address where an offset belongs, a name left behind on the error path, and
the raw calls half made (labkit's workers, a private mapping, a child that returns)."""
from mutants import Mutant

_WITH_PUBLISH = '''
solved = publish
def publish(name, sensor, value, unit):
    {body}
'''
_WITH_READ = '''
solved = read_record
def read_record(name):
    {body}
'''
_WITH_BUILD = '''
solved = build_list
def build_list(name, values):
    {body}
'''

# 03.raw_gather's solution, with one of its calls made wrong by each mutant.
_GATHER = '''
import sys
def gather(n, work):
    mem = posix_ipc.SharedMemory(objects.lab_name("gather"), posix_ipc.O_CREX, mode={mode},
                                 size=8 * n)
    bad = 0
    try:
        with mmap.mmap(mem.fd, 8 * n{flags}) as mm:
            pids = []
            for i in range(n):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        struct.pack_into("q", mm, 8 * i, work(i))
                        code = 0
                    finally:
                        {end}
                pids.append(pid)
            for pid in pids:
                bad += os.waitpid(pid, 0)[1] != 0
            values = list(struct.unpack_from(f"{{n}}q", mm))
    finally:
        mem.close_fd()
        {unlink}
    if bad:
        raise RuntimeError("a child failed")
    return values
'''


def _gather(mode: str = "0o600", flags: str = "", end: str = "os._exit(code)",
            unlink: str = "mem.unlink()") -> str:
    return _GATHER.format(mode=mode, flags=flags, end=end, unlink=unlink)


MUTANTS = [
    # --- 03.record
    Mutant("03.record", "packed_in_another_layout", '''
import struct
def publish(name, sensor, value, unit):
    with shm.Segment.attach(name) as seg:
        struct.pack_into("<dIi8s", seg.buf, 0, value, 1, sensor, unit)
''', fault=r"not laid out as Reading"),
    Mutant("03.record", "count_set_not_added", '''
def publish(name, sensor, value, unit):
    with shm.Segment.attach(name) as seg:
        record = seg.struct(Reading)
        record.sensor, record.count, record.value, record.unit = sensor, 1, value, unit
        del record
''', fault=r"add 1 to what the segment holds"),
    Mutant("03.record", "fields_set_on_a_copy", '''
def publish(name, sensor, value, unit):
    with shm.Segment.attach(name) as seg:
        record = Reading.from_buffer_copy(seg.buf)
        record.sensor, record.value, record.unit = sensor, value, unit
        record.count += 1
''', fault=r"nothing reached shared memory.*copy"),
    Mutant("03.record", "publish_unlinks_the_callers_segment", _WITH_PUBLISH.format(
        body="solved(name, sensor, value, unit)\n    posix_ipc.unlink_shared_memory(name)"),
        fault=r"no longer exists after publish"),
    Mutant("03.record", "reader_leaves_its_descriptor_open", '''
def read_record(name):
    mem = posix_ipc.SharedMemory(name, read_only=True)
    with mmap.mmap(mem.fd, ctypes.sizeof(Reading), prot=mmap.PROT_READ) as mm:
        r = Reading.from_buffer_copy(mm)
    return (r.sensor, r.count, r.value, r.unit)
''', fault=r"read_record did not clean up: file descriptor"),
    Mutant("03.record", "reader_keeps_the_segment_mapped", '''
_cache = []
def read_record(name):
    seg = shm.Segment.attach(name, readonly=True)
    _cache.append(seg)
    r = Reading.from_buffer_copy(seg.buf)
    return (r.sensor, r.count, r.value, r.unit)
''', fault=r"shared mapping was still in place"),
    Mutant("03.record", "unit_decoded_to_text", _WITH_READ.format(
        body="s, c, v, u = solved(name)\n    return (s, c, v, u.decode())"),
        fault=r"with unit as bytes"),

    # --- 03.parallel_sum
    Mutant("03.parallel_sum", "slots_in_a_plain_array", '''
def parallel_sum(data, n):
    slots = np.zeros(n, SLOT)

    def work(i):
        slots[i] = (os.getpid(), np.array_split(data, n)[i].sum())

    labkit.run_workers(work, n).values
    pairs = [(int(p), int(t)) for p, t in slots]
    return sum(t for _, t in pairs), pairs
''', fault=r"wrote into their own copies, not into shared memory"),
    Mutant("03.parallel_sum", "summed_in_the_calling_process", '''
def parallel_sum(data, n):
    slots = [(os.getpid(), int(part.sum())) for part in np.array_split(data, n)]
    return sum(t for _, t in slots), slots
''', fault=r"expected four different worker processes"),
    Mutant("03.parallel_sum", "one_worker_fills_every_slot", '''
def parallel_sum(data, n):
    def work(i, seg):
        for k, part in enumerate(np.array_split(data, n)):
            seg.array(SLOT, n)[k] = (os.getpid(), part.sum())

    with shm.Segment.create(n * SLOT.itemsize, label="sum") as seg:
        labkit.run_workers(work, 1, seg).values
        slots = [(int(p), int(t)) for p, t in seg.array(SLOT, n)]
    return sum(t for _, t in slots), slots
''', fault=r"expected four different worker processes"),
    Mutant("03.parallel_sum", "own_split_of_the_data", '''
def parallel_sum(data, n):
    size = len(data) // n
    def work(i, seg):
        part = data[i * size:] if i == n - 1 else data[i * size:(i + 1) * size]
        seg.array(SLOT, n)[i] = (os.getpid(), part.sum())

    with shm.Segment.create(n * SLOT.itemsize, label="sum") as seg:
        labkit.run_workers(work, n, seg).values
        slots = [(int(p), int(t)) for p, t in seg.array(SLOT, n)]
    return sum(t for _, t in slots), slots
''', fault=r"np.array_split\(data, 4\) sum to"),
    Mutant("03.parallel_sum", "segment_never_unlinked", '''
def parallel_sum(data, n):
    mem = posix_ipc.SharedMemory(objects.lab_name("sum"), posix_ipc.O_CREX, mode=0o600,
                                 size=n * SLOT.itemsize)
    mm = mmap.mmap(mem.fd, n * SLOT.itemsize)
    mem.close_fd()
    slots = np.frombuffer(mm, SLOT)

    def work(i):
        slots[i] = (os.getpid(), np.array_split(data, n)[i].sum())

    labkit.run_workers(work, n).values
    pairs = [(int(p), int(t)) for p, t in slots]
    del slots
    mm.close()
    return sum(t for _, t in pairs), pairs
''', fault=r"was left behind \(labkit removed it\)"),
    Mutant("03.parallel_sum", "returns_views_of_the_segment", '''
def parallel_sum(data, n):
    def work(i, seg):
        seg.array(SLOT, n)[i] = (os.getpid(), np.array_split(data, n)[i].sum())

    with shm.Segment.create(n * SLOT.itemsize, label="sum") as seg:
        labkit.run_workers(work, n, seg).values
        slots = list(seg.array(SLOT, n))
    return sum(int(t) for _, t in slots), slots
''', fault=r"NumPy array or value is not plain data.*copy NumPy values out"),

    # --- 03.linked_list
    Mutant("03.linked_list", "pointers_in_both_directions", '''
def build_list(name, values):
    with shm.Segment.attach(name) as seg:
        nodes = [seg.struct(Node, 8 + 16 * i) for i in range(len(values))]
        for i, (node, value) in enumerate(zip(nodes, values)):
            node.value = value
            node.next = ctypes.addressof(nodes[i + 1]) if i + 1 < len(nodes) else 0
        seg.struct(ctypes.c_int64).value = ctypes.addressof(nodes[0]) if nodes else 0
        del nodes, node

def walk_list(name):
    with shm.Segment.attach(name, readonly=True) as seg:
        values, p = [], ctypes.c_int64.from_buffer_copy(seg.buf, 0).value
        while p:
            node = Node.from_address(p)
            values.append(node.value)
            p = node.next
        return values
''', fault=r"(maps the segment at another address.*(offsets|SIGSEGV))|address in the builder"),
    Mutant("03.linked_list", "walker_ignores_next", '''
def walk_list(name):
    with shm.Segment.attach(name, readonly=True) as seg:
        count = sum(1 for i in range(8, seg.size - 15, 16)
                    if Node.from_buffer_copy(seg.buf, i).value)
        return [Node.from_buffer_copy(seg.buf, 8 + 16 * i).value for i in range(count)]
''', fault=r"its nodes stored out of order"),
    Mutant("03.linked_list", "walker_takes_offsets_for_addresses", '''
def walk_list(name):
    with shm.Segment.attach(name, readonly=True) as seg:
        values, p = [], ctypes.c_int64.from_buffer_copy(seg.buf, 0).value
        while p:
            node = Node.from_address(p)
            values.append(node.value)
            p = node.next
        return values
''', fault=r"killed by SIGSEGV: it used a stored number as an address"),
    Mutant("03.linked_list", "empty_list_header_not_written", _WITH_BUILD.format(
        body="if values:\n        solved(name, values)"), fault=r"expected 0"),
    Mutant("03.linked_list", "last_node_points_to_the_first", '''
def build_list(name, values):
    offsets = [8 + 16 * i for i in range(len(values))]
    with shm.Segment.attach(name) as seg:
        for value, here, after in zip(values, offsets, offsets[1:] + offsets[:1]):
            node = seg.struct(Node, here)
            node.value, node.next = value, after
            del node
        seg.struct(ctypes.c_int64).value = offsets[0] if offsets else 0
''', fault=r"the list never ends"),
    Mutant("03.linked_list", "builder_unlinks_the_segment", _WITH_BUILD.format(
        body="solved(name, values)\n    posix_ipc.unlink_shared_memory(name)"),
        fault=r"no longer exists|no shared memory object is named"),

    # --- 03.lifecycle
    Mutant("03.lifecycle", "segment_dropped_to_garbage_collection", '''
def share_and_destroy(size, work, n):
    seg = shm.Segment.create(size)
    labkit.run_workers(work, n, seg.name).values
    data = bytes(seg.buf)
    seg.unlink()
    return data
''', fault=r"still there when your function raised; only garbage collection"),
    Mutant("03.lifecycle", "cleanup_without_finally", '''
def share_and_destroy(size, work, n):
    mem = posix_ipc.SharedMemory(objects.lab_name("life"), posix_ipc.O_CREX, mode=0o600,
                                 size=size)
    labkit.run_workers(work, n, mem.name).values
    data = os.pread(mem.fd, size, 0)
    mem.close_fd()
    mem.unlink()
    return data
''', fault=r"shm /labkit_\S+ was left behind"),
    Mutant("03.lifecycle", "worker_failure_swallowed", '''
def share_and_destroy(size, work, n):
    with shm.Segment.create(size) as seg:
        labkit.run_workers(work, n, seg.name)
        return bytes(seg.buf)
''', fault=r"your function returned normally"),
    Mutant("03.lifecycle", "fixed_world_readable_name", '''
def share_and_destroy(size, work, n):
    name = f"/labkit_{os.getuid()}_{os.getpid()}_fixed_000000"
    old = os.umask(0o022)
    try:
        mem = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o666, size=size)
    finally:
        os.umask(old)
    try:
        labkit.run_workers(work, n, name).values
        return os.pread(mem.fd, size, 0)
    finally:
        mem.close_fd()
        mem.unlink()
''', fault=r"the segment had mode 0644"),
    Mutant("03.lifecycle", "created_without_o_excl", '''
def share_and_destroy(size, work, n):
    mem = posix_ipc.SharedMemory(objects.lab_name("life"), posix_ipc.O_CREAT, mode=0o600,
                                 size=size)
    try:
        labkit.run_workers(work, n, mem.name).values
        return os.pread(mem.fd, size, 0)
    finally:
        mem.close_fd()
        mem.unlink()
''', fault=r"without O_EXCL"),
    Mutant("03.lifecycle", "workers_one_after_the_other", '''
def share_and_destroy(size, work, n):
    with shm.Segment.create(size) as seg:
        for i in range(n):
            labkit.run(work, i, seg.name).value
        return bytes(seg.buf)
''', fault=r"they did not run at the same time"),
    Mutant("03.lifecycle", "unlinked_before_the_workers_attach", '''
def share_and_destroy(size, work, n):
    with shm.Segment.create(size) as seg:
        seg.unlink()
        labkit.run_workers(work, n, seg.name).values
        return bytes(seg.buf)
''', fault=r"no shared memory object is named"),

    # --- 03.results_table (debugging): the given program, and wrong fixes
    Mutant("03.results_table", "given_reader_without_padding", '''
def collect(name, n):
    with shm.Segment.attach(name, readonly=True) as seg:
        size = struct.calcsize("<iqd")
        return [struct.unpack_from("<iqd", seg.buf, size * i) for i in range(n)]
''', fault=r"collect does not read the table's layout"),
    Mutant("03.results_table", "writer_changed_to_match_the_reader", '''
def report(name, i, count, mean):
    with shm.Segment.attach(name) as seg:
        struct.pack_into("<iqd", seg.buf, struct.calcsize("<iqd") * i, i, count, mean)

def collect(name, n):
    with shm.Segment.attach(name, readonly=True) as seg:
        size = struct.calcsize("<iqd")
        return [struct.unpack_from("<iqd", seg.buf, size * i) for i in range(n)]
''', fault=r"collect does not read the table's layout|report must write that layout"),
    Mutant("03.results_table", "format_fixed_stride_not", '''
def collect(name, n):
    with shm.Segment.attach(name, readonly=True) as seg:
        return [struct.unpack_from("iqd", seg.buf, 20 * i) for i in range(n)]
''', fault=r"collect does not read the table's layout"),
    Mutant("03.results_table", "collector_unlinks_the_segment", '''
solved = collect
def collect(name, n):
    rows = solved(name, n)
    posix_ipc.unlink_shared_memory(name)
    return rows
''', fault=r"no longer exists after collect"),
    Mutant("03.results_table", "collector_keeps_the_segment_mapped", '''
_kept = []
def collect(name, n):
    seg = shm.Segment.attach(name, readonly=True)
    _kept.append(seg)
    return [struct.unpack_from("iqd", seg.buf, 24 * i) for i in range(n)]
''', fault=r"collect did not clean up: .*a shared mapping was still in place"),

    # --- 03.raw_gather: the calls made by hand
    Mutant("03.raw_gather", "labkit_workers_instead_of_fork", '''
def gather(n, work):
    mem = posix_ipc.SharedMemory(objects.lab_name("gather"), posix_ipc.O_CREX, mode=0o600,
                                 size=8 * n)
    try:
        with mmap.mmap(mem.fd, 8 * n) as mm:
            def child(i):
                struct.pack_into("q", mm, 8 * i, work(i))
            labkit.run_workers(child, n).values
            return list(struct.unpack_from(f"{n}q", mm))
    finally:
        mem.close_fd()
        mem.unlink()
''', fault=r"forked by labkit's helpers"),
    Mutant("03.raw_gather", "private_mapping", _gather(flags=", flags=mmap.MAP_PRIVATE"),
           fault=r"none of the children's numbers reached the parent"),
    Mutant("03.raw_gather", "child_leaves_with_sys_exit", _gather(end="sys.exit(code)"),
           fault=r"instead of ending: a child must always finish with os._exit"),
    Mutant("03.raw_gather", "exit_code_always_0", _gather(end="os._exit(0)"),
           fault=r"but gather returned normally"),
    Mutant("03.raw_gather", "name_never_unlinked", _gather(unlink="pass"),
           fault=r"was left behind"),
    Mutant("03.raw_gather", "world_readable_segment", _gather(mode="0o644"),
           fault=r"mode is not 0600"),
]
