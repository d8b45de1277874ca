"""Wrong answers to lesson 09 (one process, many channels): event loops, a signal in the
loop, descriptors handed over, a sealed memfd.

Each exercise has one template that can make each mistake; a mutant calls it with the
mistake switched on, so that every mutant differs from the solution in that one place.
"""
from mutants import Mutant


def _maker(exercise: str, template: str, signature: str, call: str):
    """Mutants of one exercise: ``template`` called with one mistake (``args``) switched on."""
    return lambda name, args, fault: Mutant(
        exercise, name, f"{template}\ndef {signature}:\n    return {call}, {args})\n", fault)


# echo_server with one mistake
_ECHO = '''
def _echo(path, clients, *, blocking=False, send_once=False, remove=True, shared=False):
    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pending = {}
    echoed = closed = 0
    try:
        listener.bind(path)
        listener.listen()
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ)
        while closed < clients:
            for key, events in sel.select():
                conn = key.fileobj
                if conn is listener:
                    new, _ = listener.accept()
                    new.setblocking(blocking)
                    pending[new] = b""
                    sel.register(new, selectors.EVENT_READ)
                    continue
                if events & selectors.EVENT_WRITE:
                    sent = conn.send(pending[conn])
                    echoed += sent
                    pending[conn] = pending[conn][sent:]
                    if not pending[conn]:
                        sel.modify(conn, selectors.EVENT_READ)
                elif events & selectors.EVENT_READ:
                    data = conn.recv(65536)
                    if not data:
                        sel.unregister(conn)
                        del pending[conn]
                        conn.close()
                        closed += 1
                        continue
                    if blocking:
                        conn.sendall(data)
                        echoed += len(data)
                    elif send_once:
                        echoed += conn.send(data)
                    else:
                        if shared:   # one buffer for everyone: what is left goes to whoever is next
                            for other in pending:
                                pending[other] += data
                        else:
                            pending[conn] += data
                        sel.modify(conn, selectors.EVENT_WRITE)
        return echoed
    finally:
        for conn in pending:
            conn.close()
        sel.close()
        listener.close()
        if remove and os.path.exists(path):
            os.unlink(path)
'''
_echo = _maker("09.echo_server", _ECHO, "echo_server(path, clients)", "_echo(path, clients")

_SERIAL = '''
def echo_server(path, clients):
    echoed = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()
        try:
            for _ in range(clients):
                conn, _ = listener.accept()
                with conn:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                        echoed += len(data)
        finally:
            os.unlink(path)
    return echoed
'''

# serve_until_term with one mistake
_TERM = '''
def _term(path, *, wake=True, timeout=None, restore_handler=True, restore_wakeup=True,
          close_pipe=True):
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    stop = []
    old_handler = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    old_wakeup = signal.set_wakeup_fd(wake_w) if wake else -1
    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conns = set()
    served = 0
    try:
        listener.bind(path)
        listener.listen()
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ)
        sel.register(wake_r, selectors.EVENT_READ)
        while not stop:
            for key, _ in sel.select(timeout):
                if key.fileobj == wake_r:
                    os.read(wake_r, 512)
                elif key.fileobj is listener:
                    new, _ = listener.accept()
                    new.setblocking(False)
                    conns.add(new)
                    served += 1
                    sel.register(new, selectors.EVENT_READ)
                else:
                    conn = key.fileobj
                    data = conn.recv(65536)
                    if data:
                        conn.sendall(data)
                    else:
                        sel.unregister(conn)
                        conns.discard(conn)
                        conn.close()
        return served
    finally:
        if restore_wakeup:
            signal.set_wakeup_fd(old_wakeup)
        if restore_handler:
            signal.signal(signal.SIGTERM, old_handler)
        for conn in conns:
            conn.close()
        sel.close()
        listener.close()
        if close_pipe:
            os.close(wake_r)
        if close_pipe and restore_wakeup:
            os.close(wake_w)
        if os.path.exists(path):
            os.unlink(path)
'''
_term = _maker("09.graceful_server", _TERM, "serve_until_term(path)", "_term(path")

# give_file with one mistake
_GIVE = '''
def _give(address, path, *, flags=os.O_RDONLY, message=b"F", as_number=False,
          read_first=False, close=True):
    fd = os.open(path, flags)
    try:
        if read_first:
            os.read(fd, 1 << 20)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(address)
            if as_number:
                sock.sendall(str(fd).encode())
            else:
                socket.send_fds(sock, [message], [fd])
    finally:
        if close:
            os.close(fd)
'''
_give = _maker("09.give_file", _GIVE, "give_file(address, path)", "_give(address, path")

# share_bytes with one mistake
_SHARE = '''
def _share(address, data, *, page=False, seals=None, unnamed=True, close=True):
    import tempfile
    if unnamed:
        fd = os.memfd_create("shared", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    else:
        with tempfile.TemporaryFile() as named:
            fd = os.dup(named.fileno())
    try:
        size = -(-len(data) // mmap.PAGESIZE) * mmap.PAGESIZE if page else len(data)
        os.ftruncate(fd, size)
        os.pwrite(fd, data, 0)
        if seals is None:
            seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        if seals and unnamed:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(address)
            socket.send_fds(sock, [b"M"], [fd])
    finally:
        if close:
            os.close(fd)
'''
_share = _maker("09.share_bytes", _SHARE, "share_bytes(address, data)", "_share(address, data")

MUTANTS = [
    Mutant("09.echo_server", "one_client_at_a_time", _SERIAL, r"waited on the silent client"),
    _echo("blocking_sendall", "blocking=True", r"stuck sending to the one that does not read"),
    _echo("ignores_partial_send", "send_once=True",
          r"partial send was lost|raised BlockingIOError"),
    _echo("one_buffer_for_all_clients", "shared=True", r"not its own bytes"),
    _echo("leaves_the_socket_file", "remove=False", r"socket file was still there"),
    _term("flag_without_wakeup", "wake=False", r"slept on in its selector"),
    _term("polls_the_flag", "wake=False, timeout=0.05", r"polls"),
    _term("keeps_its_handler", "restore_handler=False", r"SIGTERM handler was not"),
    _term("keeps_the_wakeup_fd", "restore_wakeup=False", r"wakeup descriptor was still set"),
    _term("leaves_the_wakeup_pipe_open", "close_pipe=False", r"left open"),
    _give("sends_the_number", "as_number=True", r"no descriptor"),
    _give("no_byte_to_ride_on", 'message=b""', r"no descriptor"),
    _give("reads_it_first", "read_first=True", r"offset"),
    _give("opens_for_writing", "flags=os.O_RDWR", r"open for writing"),
    _give("keeps_its_copy", "close=False", r"left open"),
    _share("sized_to_a_page", "page=True", r"sized to a page"),
    _share("unlinked_temp_file", "unnamed=False", r"not a memfd"),
    _share("not_sealed", "seals=0", r"not sealed"),
    _share("writes_still_allowed", "seals=fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW",
           r"F_SEAL_WRITE"),
    _share("keeps_its_copy", "close=False", r"left open"),
]
