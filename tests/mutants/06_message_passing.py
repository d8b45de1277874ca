"""Wrong answers to lesson 06 (message passing): queues, datagram sockets, gathering."""
from mutants import Mutant

MUTANTS = [
    # --- 06.ask: a client with a reply queue of its own
    Mutant("06.ask", "priority_dropped", '''
def ask(server, question, priority=0, timeout=2.0):
    with mq.queue(max_messages=1, max_message_size=1024) as mine:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{mine.name}\\n{question}".encode(), timeout=timeout)
        except posix_ipc.BusyError:
            raise TimeoutError("full") from None
        finally:
            q.close()
        try:
            return mine.receive(timeout=timeout)[0].decode()
        except posix_ipc.BusyError:
            raise TimeoutError("no answer") from None
''', fault=r"priority .*expected 7|priorities did not travel"),
    Mutant("06.ask", "world_readable_reply_queue", '''
def ask(server, question, priority=0, timeout=2.0):
    name = objects.lab_name("reply")
    mine = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=0o666, max_messages=1,
                                  max_message_size=1024)
    try:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{name}\\n{question}".encode(), priority=priority, timeout=timeout)
        except posix_ipc.BusyError:
            raise TimeoutError("full") from None
        finally:
            q.close()
        try:
            return mine.receive(timeout=timeout)[0].decode()
        except posix_ipc.BusyError:
            raise TimeoutError("no answer") from None
    finally:
        mine.close()
        mine.unlink()
''', fault=r"had mode 6[46][46], expected 600"),
    Mutant("06.ask", "fixed_name_never_unlinked", '''
def ask(server, question, priority=0, timeout=2.0):
    mine = posix_ipc.MessageQueue("/ask_replies", posix_ipc.O_CREAT, mode=0o600,
                                  max_messages=1, max_message_size=1024)
    q = posix_ipc.MessageQueue(server)
    try:
        q.send(f"/ask_replies\\n{question}".encode(), priority=priority, timeout=timeout)
        return mine.receive(timeout=timeout)[0].decode()
    except posix_ipc.BusyError:
        raise TimeoutError("no answer") from None
    finally:
        q.close()
        mine.close()
''', fault=r"left the queue /ask_replies behind|same reply queue /ask_replies"),
    Mutant("06.ask", "reply_queue_leaks_on_timeout", '''
def ask(server, question, priority=0, timeout=2.0):
    mine = posix_ipc.MessageQueue(objects.lab_name("reply"), posix_ipc.O_CREX, mode=0o600,
                                  max_messages=1, max_message_size=1024)
    q = posix_ipc.MessageQueue(server)
    try:
        q.send(f"{mine.name}\\n{question}".encode(), priority=priority, timeout=timeout)
        answer = mine.receive(timeout=timeout)[0].decode()
    except posix_ipc.BusyError:
        raise TimeoutError("no answer") from None
    finally:
        q.close()
    mine.close()
    mine.unlink()          # only reached when all went well
    return answer
''', fault=r"after the time-out, your function left the queue"),
    Mutant("06.ask", "send_waits_forever", '''
def ask(server, question, priority=0, timeout=2.0):
    with mq.queue(max_messages=1, max_message_size=1024) as mine:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{mine.name}\\n{question}".encode(), priority=priority)
        finally:
            q.close()
        try:
            return mine.receive(timeout=timeout)[0].decode()
        except posix_ipc.BusyError:
            raise TimeoutError("no answer") from None
''', fault=r"never reached the server's queue: sending must give up"),
    Mutant("06.ask", "receive_waits_forever", '''
def ask(server, question, priority=0, timeout=2.0):
    with mq.queue(max_messages=1, max_message_size=1024) as mine:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{mine.name}\\n{question}".encode(), priority=priority, timeout=timeout)
        except posix_ipc.BusyError:
            raise TimeoutError("full") from None
        finally:
            q.close()
        return mine.receive()[0].decode()
''', fault=r"no answer came, and receiving must give up"),
    Mutant("06.ask", "busy_error_not_translated", '''
def ask(server, question, priority=0, timeout=2.0):
    with mq.queue(max_messages=1, max_message_size=1024) as mine:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{mine.name}\\n{question}".encode(), priority=priority, timeout=timeout)
        finally:
            q.close()
        return mine.receive(timeout=timeout)[0].decode()
''', fault=r"raised BusyError.*expected TimeoutError"),
    Mutant("06.ask", "bytes_not_decoded", '''
def ask(server, question, priority=0, timeout=2.0):
    with mq.queue(max_messages=1, max_message_size=1024) as mine:
        q = posix_ipc.MessageQueue(server)
        try:
            q.send(f"{mine.name}\\n{question}".encode(), priority=priority, timeout=timeout)
        except posix_ipc.BusyError:
            raise TimeoutError("full") from None
        finally:
            q.close()
        try:
            return mine.receive(timeout=timeout)[0]
        except posix_ipc.BusyError:
            raise TimeoutError("no answer") from None
''', fault=r"returned bytes .*must be text"),

    # --- 06.serve: a server that never waits for a client
    Mutant("06.serve", "waits_for_a_full_reply_queue", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done = []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            try:
                out = posix_ipc.MessageQueue(to)
            except posix_ipc.ExistentialError:
                done.append((question, prio, "dropped"))
                continue
            try:
                out.send(question.upper().encode(), priority=prio)
                done.append((question, prio, "answered"))
            finally:
                out.close()
    finally:
        inbox.close()
    return done
''', fault=r"stuck on the client whose reply queue is full"),
    Mutant("06.serve", "crashes_on_a_vanished_client", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done = []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            out = posix_ipc.MessageQueue(to)
            try:
                out.send(question.upper().encode(), priority=prio, timeout=0)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
            finally:
                out.close()
    finally:
        inbox.close()
    return done
''', fault=r"raised ExistentialError"),
    Mutant("06.serve", "creates_a_vanished_clients_queue", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done = []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            out = posix_ipc.MessageQueue(to, posix_ipc.O_CREAT, max_messages=2,
                                         max_message_size=1024)
            try:
                out.send(question.upper().encode(), priority=prio, timeout=0)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
            finally:
                out.close()
    finally:
        inbox.close()
    return done
''', fault=r"created the queue .* of a client that had gone"),
    Mutant("06.serve", "unlinks_the_request_queue", '''
_serve = serve

def serve(requests, count):
    try:
        return _serve(requests, count)
    finally:
        posix_ipc.unlink_message_queue(requests)
''', fault=r"close it, not unlink it"),
    Mutant("06.serve", "unlinks_the_clients_queue", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done = []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            try:
                out = posix_ipc.MessageQueue(to)
            except posix_ipc.ExistentialError:
                done.append((question, prio, "dropped"))
                continue
            try:
                out.send(question.upper().encode(), priority=prio, timeout=0)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
            finally:
                out.close()
                out.unlink()
    finally:
        inbox.close()
    return done
''', fault=r"reply queue was gone .*do not unlink"),
    Mutant("06.serve", "answers_at_priority_zero", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done = []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            try:
                out = posix_ipc.MessageQueue(to)
            except posix_ipc.ExistentialError:
                done.append((question, prio, "dropped"))
                continue
            try:
                out.send(question.upper().encode(), timeout=0)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
            finally:
                out.close()
    finally:
        inbox.close()
    return done
''', fault=r"must carry its request's priority"),
    Mutant("06.serve", "reply_queues_left_open", '''
def serve(requests, count):
    inbox = posix_ipc.MessageQueue(requests)
    done, opened = [], []
    try:
        for _ in range(count):
            data, prio = inbox.receive(timeout=5)
            to, _, question = data.decode().partition("\\n")
            try:
                out = posix_ipc.MessageQueue(to)
            except posix_ipc.ExistentialError:
                done.append((question, prio, "dropped"))
                continue
            opened.append(out)
            try:
                out.send(question.upper().encode(), priority=prio, timeout=0)
                done.append((question, prio, "answered"))
            except posix_ipc.BusyError:
                done.append((question, prio, "dropped"))
    finally:
        inbox.close()
    return done
''', fault=r"file descriptor \d+ \(/labkit_.*\) was left open"),

    # --- 06.kv_server: a datagram server
    Mutant("06.kv_server", "value_cut_at_first_space", '''
def kv_server(path, count):
    store = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        try:
            for _ in range(count):
                data, addr = s.recvfrom(1 << 16)
                parts = data.split()
                try:
                    key = parts[1].decode() if len(parts) > 1 else ""
                except UnicodeDecodeError:
                    key = ""
                if parts[:1] == [b"SET"] and len(parts) >= 3 and key:
                    store[key] = parts[2]
                    reply = b"OK"
                elif parts[:1] == [b"GET"] and len(parts) == 2 and key:
                    reply = store.get(key, b"NOT FOUND")
                else:
                    reply = b"ERROR"
                s.sendto(reply, addr)
        finally:
            os.unlink(path)
    return store
''', fault=r"cut at its first space"),
    Mutant("06.kv_server", "replies_to_the_first_client", '''
def kv_server(path, count):
    store, first = {}, None
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        try:
            for _ in range(count):
                data, addr = s.recvfrom(1 << 16)
                first = first or addr
                words = data.split(b" ", 2)
                try:
                    key = words[1].decode() if len(words) > 1 else ""
                except UnicodeDecodeError:
                    key = ""
                if words[0] == b"SET" and len(words) == 3 and key:
                    store[key] = words[2]
                    reply = b"OK"
                elif words[0] == b"GET" and len(words) == 2 and key:
                    reply = store.get(key, b"NOT FOUND")
                else:
                    reply = b"ERROR"
                s.sendto(reply, first)
        finally:
            os.unlink(path)
    return store
''', fault=r"got no answer at its own address"),
    Mutant("06.kv_server", "socket_file_never_removed", '''
def kv_server(path, count):
    store = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        for _ in range(count):
            data, addr = s.recvfrom(1 << 16)
            words = data.split(b" ", 2)
            try:
                key = words[1].decode() if len(words) > 1 else ""
            except UnicodeDecodeError:
                key = ""
            if words[0] == b"SET" and len(words) == 3 and key:
                store[key] = words[2]
                reply = b"OK"
            elif words[0] == b"GET" and len(words) == 2 and key:
                reply = store.get(key, b"NOT FOUND")
            else:
                reply = b"ERROR"
            s.sendto(reply, addr)
    return store
''', fault=r"socket file was still there after kv_server returned"),
    Mutant("06.kv_server", "socket_file_left_on_the_error_path", '''
def kv_server(path, count):
    store = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        for _ in range(count):
            data, addr = s.recvfrom(1 << 16)
            words = data.split(b" ", 2)
            try:
                key = words[1].decode() if len(words) > 1 else ""
            except UnicodeDecodeError:
                key = ""
            if words[0] == b"SET" and len(words) == 3 and key:
                store[key] = words[2]
                reply = b"OK"
            elif words[0] == b"GET" and len(words) == 2 and key:
                reply = store.get(key, b"NOT FOUND")
            else:
                reply = b"ERROR"
            s.sendto(reply, addr)
    os.unlink(path)          # not reached after an error or Ctrl-C
    return store
''', fault=r"still there after kv_server was interrupted"),
    Mutant("06.kv_server", "stream_socket", '''
def kv_server(path, count):
    store = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
        s.listen()
        try:
            for _ in range(count):
                conn, _ = s.accept()
                with conn:
                    data = conn.recv(1 << 16)
                    words = data.split(b" ", 2)
                    if words[0] == b"SET" and len(words) == 3:
                        store[words[1].decode()] = words[2]
                        conn.sendall(b"OK")
                    else:
                        conn.sendall(store.get(words[-1].decode(), b"NOT FOUND"))
        finally:
            os.unlink(path)
    return store
''', fault=r"datagram .* refused.*SOCK_DGRAM"),
    Mutant("06.kv_server", "crashes_on_a_bad_request", '''
def kv_server(path, count):
    store = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        try:
            for _ in range(count):
                data, addr = s.recvfrom(1 << 16)
                command, key, *rest = data.split(b" ", 2)
                key = key.decode()
                if command == b"SET":
                    store[key] = rest[0]
                    reply = b"OK"
                elif command == b"GET":
                    reply = store.get(key, b"NOT FOUND")
                else:
                    reply = b"ERROR"
                s.sendto(reply, addr)
        finally:
            os.unlink(path)
    return store
''', fault=r"raised ValueError.*never crash"),

    # --- 06.gather: results through a multiprocessing.Queue
    Mutant("06.gather", "feeder_thread_not_flushed", '''
def gather(fn, items, workers):
    q = multiprocessing.get_context("fork").Queue()

    def work(i):
        for item in items[i::workers]:
            q.put((item, fn(item)))

    with labkit.start_workers(work, workers) as ws:
        got = dict(q.get(timeout=10) for _ in items)
        ws.wait()
    q.close()
    q.join_thread()
    return got
''', fault=r"feeder thread.*os\._exit"),
    Mutant("06.gather", "waits_before_reading", '''
def gather(fn, items, workers):
    q = multiprocessing.get_context("fork").Queue()

    def work(i):
        for item in items[i::workers]:
            q.put((item, fn(item)))
        q.close()
        q.join_thread()

    with labkit.start_workers(work, workers) as ws:
        ws.wait()
        got = dict(q.get(timeout=10) for _ in items)
    q.close()
    q.join_thread()
    return got
''', fault=r"nobody was reading their results.*before you wait"),
    Mutant("06.gather", "computed_in_the_parent", '''
def gather(fn, items, workers):
    return {item: fn(item) for item in items}
''', fault=r"fn ran in the process that called gather"),
    Mutant("06.gather", "every_worker_does_every_item", '''
def gather(fn, items, workers):
    q = multiprocessing.get_context("fork").Queue()

    def work(i):
        for item in items:
            q.put((item, fn(item)))
        q.close()
        q.join_thread()

    with labkit.start_workers(work, workers) as ws:
        got = dict(q.get(timeout=10) for _ in range(len(items) * workers))
        ws.wait()
    q.close()
    q.join_thread()
    return got
''', fault=r"fn was called \d+ times for \d+ items"),
    Mutant("06.gather", "chunks_drop_the_remainder", '''
def gather(fn, items, workers):
    q = multiprocessing.get_context("fork").Queue()
    chunk = len(items) // workers

    def work(i):
        for item in items[i * chunk:(i + 1) * chunk]:
            q.put((item, fn(item)))
        q.close()
        q.join_thread()

    with labkit.start_workers(work, workers) as ws:
        got = dict(q.get(timeout=10) for _ in items)
        ws.wait()
    q.close()
    q.join_thread()
    return got
''', fault=r"only 18 of 20 items were computed.*given to no worker"),
    Mutant("06.gather", "reads_while_the_queue_is_not_empty", '''
def gather(fn, items, workers):
    q = multiprocessing.get_context("fork").Queue()

    def work(i):
        for item in items[i::workers]:
            q.put((item, fn(item)))
        q.close()
        q.join_thread()

    got = {}
    with labkit.start_workers(work, workers) as ws:
        while not q.empty():
            item, value = q.get()
            got[item] = value
        ws.wait()
    q.close()
    q.join_thread()
    return got
''', fault=r"results are missing"),
]
