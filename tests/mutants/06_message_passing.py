"""Wrong answers to lesson 06 (message passing): queues, datagram sockets, gathering.

Each exercise has one template that can make each mistake; a mutant calls it with the
mistake switched on, so that every mutant differs from the solution in that one place.
"""
from mutants import UNREAPED, Mutant


def _maker(exercise: str, template: str, signature: str, call: str):
    """Mutants of one exercise: ``template`` called with one mistake (``args``) switched on."""
    return lambda name, args, fault: Mutant(
        exercise, name, f"{template}\ndef {signature}:\n    return {call}, {args})\n", fault)


# ask with one mistake (the solution when every parameter is left as it is)
_ASK = '''
def _ask(server, question, priority=0, timeout=2.0, *, keep_priority=True, mode=None,
         fixed_name=None, unlink="always", send_timeout=True, receive_timeout=True,
         translate=True, decode=True):
    import contextlib
    name = fixed_name or objects.lab_name("reply")
    flags = posix_ipc.O_CREAT if fixed_name else posix_ipc.O_CREX
    mine = posix_ipc.MessageQueue(name, flags, mode=mode or 0o600, max_messages=1,
                                  max_message_size=1024)
    failed = True
    try:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{name}\\n{question}".encode(), priority=priority if keep_priority else 0,
                   timeout=timeout if send_timeout else None)
        finally:
            q.close()
        answer, _ = mine.receive(timeout=timeout if receive_timeout else None)
        failed = False
        return answer.decode() if decode else answer
    except posix_ipc.BusyError:
        if translate:
            raise TimeoutError("no room, or no answer, in time") from None
        raise
    finally:
        mine.close()
        if unlink == "always" or (unlink == "on success" and not failed):
            with contextlib.suppress(posix_ipc.ExistentialError):
                mine.unlink()
'''


_ask = _maker('06.ask', _ASK, 'ask(server, question, priority=0, timeout=2.0)',
              '_ask(server, question, priority, timeout')


# serve with one mistake
_SERVE = '''
def _serve(requests, count, *, send_timeout=0, catch_missing=True, create=False,
           keep_priority=True, close=True, unlink_reply=False, unlink_requests=False):
    inbox = posix_ipc.MessageQueue(requests)
    done, opened = [], []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            try:
                out = posix_ipc.MessageQueue(to, posix_ipc.O_CREAT if create else 0,
                                             max_messages=2, max_message_size=1024)
            except posix_ipc.ExistentialError:
                if not catch_missing:
                    raise
                done.append((question, prio, "dropped"))
                continue
            opened.append(out)
            try:
                out.send(question.upper().encode(), priority=prio if keep_priority else 0,
                         timeout=send_timeout)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
            finally:
                if close:
                    out.close()
                if unlink_reply:
                    out.unlink()
    finally:
        inbox.close()
        if unlink_requests:
            inbox.unlink()
    return done
'''


_serve = _maker('06.serve', _SERVE, 'serve(requests, count)',
                '_serve(requests, count')


# kv_server with one mistake
_KV = '''
def _kv(path, count, *, split=lambda data: data.split(b" ", 2), reply_to_first=False,
        unlink="finally", kind=socket.SOCK_DGRAM, strict_words=False):
    store, first = {}, None
    s = socket.socket(socket.AF_UNIX, kind)
    try:
        s.bind(path)
        if kind == socket.SOCK_STREAM:
            s.listen()
        for _ in range(count):
            if kind == socket.SOCK_STREAM:
                conn, _ = s.accept()
                data, addr = conn.recv(1 << 16), None
            else:
                data, addr = s.recvfrom(1 << 16)
            first = first or addr
            words = split(data)
            if strict_words:
                command, key, *rest = words
                key = key.decode()
            else:
                command, rest = words[0], words[2:]
                try:
                    key = words[1].decode() if len(words) > 1 else ""
                except UnicodeDecodeError:
                    key = ""
            if command == b"SET" and rest and key:
                store[key] = rest[0]
                reply = b"OK"
            elif command == b"GET" and not rest and key:
                reply = store.get(key, b"NOT FOUND")
            else:
                reply = b"ERROR"
            if kind == socket.SOCK_STREAM:
                conn.sendall(reply)
                conn.close()
            else:
                s.sendto(reply, first if reply_to_first else addr)
    finally:
        s.close()
        if unlink == "finally":
            os.unlink(path)
    if unlink == "at the end":
        os.unlink(path)
    return store
'''


_kv = _maker('06.kv_server', _KV, 'kv_server(path, count)',
             '_kv(path, count')


# gather with one mistake
_GATHER = '''
def _gather(fn, items, workers, *, flush=True, wait_first=False, share=None, read="counted"):
    q = multiprocessing.get_context("fork").Queue()
    share = share or (lambda i: items[i::workers])

    def work(i):
        for item in share(i):
            q.put((item, fn(item)))
        if flush:
            q.close()
            q.join_thread()

    with labkit.start_workers(work, workers) as ws:
        if wait_first:
            ws.wait()
        if read == "counted":
            got = dict(q.get(timeout=10) for _ in items)
        elif read == "per share":
            got = dict(q.get(timeout=10) for i in range(workers) for _ in share(i))
        else:
            got = {}
            while not q.empty():
                item, value = q.get()
                got[item] = value
        ws.wait()
    q.close()
    q.join_thread()
    return got
'''


_gather = _maker('06.gather', _GATHER, 'gather(fn, items, workers)',
                 '_gather(fn, items, workers')


# all_squares (06.squares, a debugging exercise) with one mistake; order="join, get" is the
# program the exercise gives
_SQUARES = '''
def _all_squares(workers, n, *, order="get, join", by_worker=True):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def work(i):
        results.put((i, [k * k for k in range(i, n, workers)]))

    procs = [ctx.Process(target=work, args=(i,)) for i in range(workers)]
    for p in procs:
        p.start()
    parts = []
    if order in ("join, get", "join a while, get"):
        for p in procs:
            p.join(0.2 if order == "join a while, get" else None)
    if order == "join and get each":
        for p in procs:
            p.join()
            parts.append(results.get())
    else:
        parts = [results.get() for _ in procs]
    if order == "get, join":
        for p in procs:
            p.join()
    if not by_worker:
        return [square for _, part in parts for square in part]
    squares = [0] * n
    for i, part in parts:
        squares[i::workers] = part
    return squares
'''
_squares = _maker("06.squares", _SQUARES, "all_squares(workers, n)",
                  "_all_squares(workers, n")

MUTANTS = [
    # --- 06.ask: a client with a reply queue of its own
    _ask("priority_dropped", "keep_priority=False",
         r"priority .*expected 7|priorities did not travel"),
    _ask("world_readable_reply_queue", "mode=0o666", r"had mode 6[46][46], expected 600"),
    _ask("fixed_name_never_unlinked", "fixed_name='/ask_replies', unlink='never'",
         r"left the queue /ask_replies behind|same reply queue /ask_replies"),
    _ask("reply_queue_leaks_on_timeout", "unlink='on success'",
         r"after the time-out, your function left the queue"),
    _ask("send_waits_forever", "send_timeout=False",
         r"never reached the server's queue: sending must give up"),
    _ask("receive_waits_forever", "receive_timeout=False",
         r"no answer came, and receiving must give up"),
    _ask("busy_error_not_translated", "translate=False",
         r"raised BusyError.*expected TimeoutError"),
    _ask("bytes_not_decoded", "decode=False", r"returned bytes .*must be text"),

    # --- 06.serve: a server that never waits for a client
    _serve("waits_for_a_full_reply_queue", "send_timeout=None",
           r"stuck on the client whose reply queue is full"),
    _serve("crashes_on_a_vanished_client", "catch_missing=False", r"raised ExistentialError"),
    _serve("creates_a_vanished_clients_queue", "create=True",
           r"created the queue .* of a client that had gone"),
    _serve("unlinks_the_request_queue", "unlink_requests=True", r"close it, not unlink it"),
    _serve("unlinks_the_clients_queue", "unlink_reply=True",
           r"reply queue was gone .*do not unlink"),
    _serve("answers_at_priority_zero", "keep_priority=False",
           r"must carry its request's priority"),
    _serve("reply_queues_left_open", "close=False",
           r"file descriptor \d+ \(/labkit_.*\) was left open"),

    # --- 06.kv_server: a datagram server
    _kv("value_cut_at_first_space", "split=bytes.split", r"cut at its first space"),
    _kv("replies_to_the_first_client", "reply_to_first=True",
        r"got no answer at its own address"),
    _kv("socket_file_never_removed", "unlink='never'",
        r"socket file was still there after kv_server returned"),
    _kv("socket_file_left_on_the_error_path", "unlink='at the end'",
        r"still there after kv_server was interrupted"),
    _kv("stream_socket", "kind=socket.SOCK_STREAM", r"datagram .* refused.*SOCK_DGRAM"),
    _kv("crashes_on_a_bad_request", "strict_words=True", r"raised ValueError.*never crash"),

    # --- 06.gather: results through a multiprocessing.Queue
    _gather("feeder_thread_not_flushed", "flush=False", r"feeder thread.*os\._exit"),
    _gather("waits_before_reading", "wait_first=True",
            r"nobody was reading their results.*before you wait"),
    Mutant("06.gather", "computed_in_the_parent", '''
def gather(fn, items, workers):
    return {item: fn(item) for item in items}
''', fault=r"fn ran in the process that called gather"),
    _gather("every_worker_does_every_item", "share=lambda i: items, read='per share'",
            r"fn was called \d+ times for \d+ items"),
    _gather("chunks_drop_the_remainder",
            "share=lambda i: items[i * (len(items) // workers):"
            "(i + 1) * (len(items) // workers)]",
            r"only 18 of 20 items were computed.*given to no worker"),
    _gather("reads_while_the_queue_is_not_empty", "read='until empty'",
            r"results are missing"),

    # --- 06.squares: the given program is the first
    Mutant("06.squares", "given_joins_before_getting", _SQUARES + '''
def all_squares(workers, n):
    return _all_squares(workers, n, order="join, get")
''', fault=r"never finished.*deadlock", hangs=True),
    Mutant("06.squares", "joins_and_gets_one_worker_at_a_time", _SQUARES + '''
def all_squares(workers, n):
    return _all_squares(workers, n, order="join and get each")
''', fault=r"never finished.*deadlock", hangs=True),
    _squares("never_joins", "order='get only'", UNREAPED),
    _squares("joins_with_a_timeout_first", "order='join a while, get'",
             UNREAPED),
    _squares("parts_in_arrival_order", "by_worker=False", r"must be in order"),
]
