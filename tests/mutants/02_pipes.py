"""Wrong answers to lesson 02 (pipes and FIFOs): an end left open, a wait before the read,
a read that assumes whole messages, a request that is not one atomic write."""
from mutants import Mutant

# --- 02.converse: a parent and one child, a pipe each way ------------------------------

_CONVERSE = '''
def converse(transform, messages):
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            {child_close}
            os.close(up_r)
            with open(down_r, encoding="utf-8") as inbox, \\
                    open(up_w, "w", encoding="utf-8") as outbox:
                for line in inbox:
                    outbox.write({reply} + "\\n")
                    outbox.flush()
        finally:
            os._exit(0)
    os.close(down_r)
    {parent_close}
    with open(down_w, "w", encoding="utf-8") as out, open(up_r, encoding="utf-8") as back:
{talk}
    {wait}
    return replies
'''
_ALTERNATE = '''        replies = []
        for m in messages:
            out.write(m + "\\n")
            {flush}
            replies.append({reply_in_parent})
'''


def _converse(child_close="os.close(down_w)", parent_close="os.close(up_w)",
              reply='transform(line.rstrip("\\n"))', flush="out.flush()",
              reply_in_parent='back.readline().rstrip("\\n")', wait="os.waitpid(pid, 0)",
              talk=None) -> str:
    talk = talk or _ALTERNATE.format(flush=flush, reply_in_parent=reply_in_parent)
    return _CONVERSE.format(child_close=child_close, parent_close=parent_close, reply=reply,
                            talk=talk, wait=wait)


_ALL_AT_ONCE = '''        for m in messages:
            out.write(m + "\\n")
        out.flush()
        replies = [back.readline().rstrip("\\n") for _ in messages]
'''

# --- 02.pipeline: pipe, fork, dup2, exec ----------------------------------------------

_PIPELINE = '''
def pipeline(cmd1, cmd2):
    link_r, link_w = os.pipe()
    out_r, out_w = os.pipe()

    def spawn(argv, stdin, stdout):
        pid = os.fork()
        if pid == 0:
            {guard_open}
                {sigpipe}
                if stdin is not None:
                    os.dup2(stdin, 0)
                os.dup2(stdout, 1)
                for fd in (link_r, link_w, out_r, out_w):
                    os.close(fd)
                os.execvp(argv[0], argv)
            {guard_close}
        return pid

    first = spawn(cmd1, None, link_w)
    second = spawn(cmd2, link_r, out_w)
    {parent_close}
{collect}
    return output, status1, status2
'''
_READ_THEN_WAIT = '''    with open(out_r, encoding="utf-8", errors="replace") as out:
        output = out.read()
    status1 = os.waitstatus_to_exitcode(os.waitpid(first, 0)[1])
    status2 = os.waitstatus_to_exitcode(os.waitpid(second, 0)[1])
'''


def _pipeline(guard_open="try:", guard_close="finally:\n                os._exit(127)",
              sigpipe="signal.signal(signal.SIGPIPE, signal.SIG_DFL)",
              parent_close="for fd in (link_r, link_w, out_w):\n        os.close(fd)",
              collect=_READ_THEN_WAIT) -> str:
    return _PIPELINE.format(guard_open=guard_open, guard_close=guard_close, sigpipe=sigpipe,
                            parent_close=parent_close,
                            collect=collect)


# --- 02.recv_message: framing over a byte stream --------------------------------------

_RECV_WITH = '''
solved = recv_message
def recv_message(fd):
    {body}
'''

# --- 02.ask: a client of a FIFO server -------------------------------------------------

_ASK = '''
def ask(server_path, question):
    with labkit.objects.scope() as objs:
        reply_path = objs.fifo("reply")
        request = f"{{reply_path}}\\t{{question}}\\n".encode()
        {check}
        fd = os.open(server_path, os.O_WRONLY)
        try:
            {send}
        finally:
            os.close(fd)
        with open(reply_path, "rb") as reply:
            return {read}
'''
_LIMIT = '''if len(request) > select.PIPE_BUF:
            raise ValueError("too long")'''


def _ask(check=_LIMIT, send="os.write(fd, request)", read="reply.read().decode()") -> str:
    return _ASK.format(check=check, send=send, read=read)


# --- 02.fix_gather: children write lines into one pipe, the parent collects -------------

_GATHER = """
def gather(lines):
    r, w = os.pipe()
    {before_fork}
    pids = []
    for line in lines:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                os.write(w, (line + "\\n").encode())
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    {after_fork}
    {collect}
    os.close(r)
    {late_close}
    {reap}
    return sorted(received.decode().splitlines())
"""
_READ_ALL = """received = b""
    while chunk := os.read(r, 65536):
        received += chunk"""
_WAIT_ALL = """for pid in pids:
        os.waitpid(pid, 0)"""


def _gather(before_fork: str = "", after_fork: str = "os.close(w)", collect: str = _READ_ALL,
            late_close: str = "", reap: str = _WAIT_ALL, wait_first: bool = False) -> str:
    """The fixed gather with one of its parts replaced (or its wait moved before the read)."""
    if wait_first:
        collect, reap = reap + "\n    " + collect, ""
    return _GATHER.format(before_fork=before_fork, after_fork=after_fork, collect=collect,
                          late_close=late_close, reap=reap)


# --- 02.primes: the sieve, one stage per prime ------------------------------------------

_PRIMES = """
def primes(n):
    found_r, found_w = os.pipe()

    def start_stage(not_for_child):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for fd in {child_closes}:
                    os.close(fd)
                sieve(r)
                code = 0
            finally:
                os._exit(code)
        os.close(r)
        return w, pid

    def sieve(inbox):
        first = os.read(inbox, 4)
        os.write(found_w, first)
        prime = struct.unpack("i", first)[0]
        out, child = {eager}
        while data := os.read(inbox, 4):
            if struct.unpack("i", data)[0] % prime:
                if out is None:
                    out, child = start_stage([inbox])
                os.write(out, data)
        os.close(inbox)
        os.close(found_w)
        if out is not None:
            os.close(out)
            {stage_wait}

    found = []
    if n >= 2:
        numbers, first_stage = start_stage({first_not_for_child})
        {main_close}
        for k in range(2, n + 1):
            os.write(numbers, struct.pack("i", k))
        os.close(numbers)
        while data := os.read(found_r, 4):
            found.append(struct.unpack("i", data)[0])
        os.waitpid(first_stage, 0)
    else:
        os.close(found_w)
    os.close(found_r)
    return found
"""


def _primes(child_closes: str = "(w, *not_for_child)", eager: str = "None, None",
            stage_wait: str = "os.waitpid(child, 0)", first_not_for_child: str = "[found_r]",
            main_close: str = "os.close(found_w)") -> str:
    """The solution's sieve with one of its parts replaced."""
    return _PRIMES.format(child_closes=child_closes, eager=eager, stage_wait=stage_wait,
                          first_not_for_child=first_not_for_child, main_close=main_close)


MUTANTS = [
    # --- 02.converse
    Mutant("02.converse", "child_keeps_its_write_end", _converse(child_close="pass"),
           hangs=True, fault=r"write end it still holds itself"),
    Mutant("02.converse", "send_all_then_read", _converse(talk=_ALL_AT_ONCE),
           hangs=True, fault=r"writing into a full pipe.*none is reading"),
    Mutant("02.converse", "no_flush", _converse(flush="pass"),
           hangs=True, fault=r"never flushed"),
    Mutant("02.converse", "transform_in_parent",
           _converse(reply='line.rstrip("\\n")',
                     reply_in_parent='transform(back.readline().rstrip("\\n"))'),
           fault=r"not in a child"),
    Mutant("02.converse", "child_per_message", '''
_one = converse
def converse(transform, messages):
    return [_one(transform, [m])[0] for m in messages]
''', fault=r"different processes"),
    Mutant("02.converse", "child_never_waited_for", _converse(wait="pass"),
           fault=r"nobody waited for it"),
    Mutant("02.converse", "parent_keeps_the_childs_write_end", _converse(parent_close="pass"),
           fault=r"descriptor \d+ .* left open"),

    # --- 02.pipeline
    Mutant("02.pipeline", "waits_before_reading", _pipeline(collect='''\
    status1 = os.waitstatus_to_exitcode(os.waitpid(first, 0)[1])
    status2 = os.waitstatus_to_exitcode(os.waitpid(second, 0)[1])
    with open(out_r, encoding="utf-8", errors="replace") as out:
        output = out.read()
'''), hangs=True, fault=r"full pipe.*read the output before you wait"),
    Mutant("02.pipeline", "one_read_of_the_output", _pipeline(collect='''\
    output = os.read(out_r, 65536).decode(errors="replace")
    os.close(out_r)
    status1 = os.waitstatus_to_exitcode(os.waitpid(first, 0)[1])
    status2 = os.waitstatus_to_exitcode(os.waitpid(second, 0)[1])
'''), fault=r"more than a pipe holds.*read until end of file"),
    Mutant("02.pipeline", "parent_keeps_the_write_end",
           _pipeline(parent_close="os.close(out_w)"),
           hangs=True, fault=r"write end is still open in your function's process"),
    Mutant("02.pipeline", "parent_keeps_its_output_write_end", _pipeline(
        parent_close="os.close(link_r)\n    os.close(link_w)"),
        hangs=True, fault=r"write end it still holds itself"),
    Mutant("02.pipeline", "sigpipe_left_ignored", _pipeline(sigpipe="pass"),
           fault=r"SIGPIPE was still ignored"),
    Mutant("02.pipeline", "failed_exec_returns", _pipeline(
        guard_open="if True:", guard_close=""),
        fault=r"returned from your function instead of ending"),
    Mutant("02.pipeline", "raw_wait_status", _pipeline(collect='''\
    with open(out_r, encoding="utf-8", errors="replace") as out:
        output = out.read()
    status1 = os.waitpid(first, 0)[1]
    status2 = os.waitpid(second, 0)[1]
'''), fault=r"raw wait status"),

    # --- 02.recv_message
    Mutant("02.recv_message", "one_read_each", '''
def recv_message(fd):
    header = os.read(fd, 4)
    if not header:
        return None
    (length,) = struct.unpack("!I", header)
    return os.read(fd, length)
''', fault=r"fewer bytes than asked"),
    Mutant("02.recv_message", "loops_for_the_header_only", '''
def recv_message(fd):
    header = b""
    while len(header) < 4:
        chunk = os.read(fd, 4 - len(header))
        if not chunk:
            if header:
                raise EOFError("cut in the header")
            return None
        header += chunk
    (length,) = struct.unpack("!I", header)
    body = os.read(fd, length) if length else b""
    if len(body) < length and not body:
        raise EOFError("cut in the body")
    return body
''', fault=r"fewer bytes than asked"),
    Mutant("02.recv_message", "reads_past_its_message", '''
def recv_message(fd):
    data = os.read(fd, 65536)
    if not data:
        return None
    (length,) = struct.unpack("!I", data[:4])
    return data[4:4 + length]
''', fault=r"read more than its message"),
    Mutant("02.recv_message", "empty_bytes_at_end_of_file", _RECV_WITH.format(
        body="got = solved(fd)\n    return b'' if got is None else got"),
        fault=r"returned b'' instead of None"),
    Mutant("02.recv_message", "empty_message_taken_for_the_end", _RECV_WITH.format(
        body="got = solved(fd)\n    return got or None"),
        fault=r"empty message .* came back as None"),
    Mutant("02.recv_message", "cut_message_returned_quietly", _RECV_WITH.format(
        body="try:\n        return solved(fd)\n    except EOFError:\n        return None"),
        fault=r"returned None, expected EOFError"),

    # --- 02.ask
    Mutant("02.ask", "one_read_of_the_answer", _ask(read="os.read(reply.fileno(), 65536)"
                                                         ".decode()"),
           fault=r"read until end of file"),
    Mutant("02.ask", "opens_the_reply_before_asking", '''
def ask(server_path, question):
    with labkit.objects.scope() as objs:
        reply_path = objs.fifo("reply")
        with open(reply_path, "rb") as reply:
            with open(server_path, "w") as server:
                server.write(f"{reply_path}\\t{question}\\n")
            return reply.read().decode()
''', hangs=True, fault=r"blocked opening a FIFO"),
    Mutant("02.ask", "request_in_two_writes", _ask(
        send='os.write(fd, str(reply_path).encode())\n'
             '            os.write(fd, f"\\t{question}\\n".encode())'),
        fault=r"in 2 writes"),
    Mutant("02.ask", "no_pipe_buf_limit", _ask(check="pass"),
           fault=r"more than \d+ bytes \(PIPE_BUF\) was accepted"),
    Mutant("02.ask", "fixed_reply_path", '''
def ask(server_path, question):
    reply_path = "/tmp/ipclab_reply_fifo"
    os.mkfifo(reply_path, 0o600)
    try:
        with open(server_path, "w") as server:
            server.write(f"{reply_path}\\t{question}\\n")
        with open(reply_path) as reply:
            return reply.read()
    finally:
        os.unlink(reply_path)
''', fault=r"used the same reply FIFO"),
    Mutant("02.ask", "session_fifo_instead_of_a_scope", '''
def ask(server_path, question):
    reply_path = labkit.objects.fifo("reply")
    with open(server_path, "w") as server:
        server.write(f"{reply_path}\\t{question}\\n")
    with open(reply_path) as reply:
        return reply.read()
''', fault=r"was still there after ask returned"),
    Mutant("02.ask", "reply_fifo_left_on_disk", '''
def ask(server_path, question):
    reply_path = labkit.objects.lab_name("reply").replace("/", "/tmp/", 1)
    os.mkfifo(reply_path, 0o600)
    with open(server_path, "w") as server:
        server.write(f"{reply_path}\\t{question}\\n")
    with open(reply_path) as reply:
        return reply.read()
''', fault=r"was still there after ask returned"),
    # --- 02.fix_gather (debug) -------------------------------------------------------------
    Mutant("02.fix_gather", "given_write_end_closed_too_late",
           _gather(after_fork="", late_close="os.close(w)"), hangs=True,
           fault=r"write end it still holds itself"),
    Mutant("02.fix_gather", "write_end_closed_before_the_fork",
           _gather(before_fork="os.close(w)", after_fork=""),
           fault=r"no line arrived"),
    Mutant("02.fix_gather", "one_read_only",
           _gather(collect="received = os.read(r, 1 << 20)"),
           fault=r"read until end of file"),
    Mutant("02.fix_gather", "waits_before_reading", _gather(wait_first=True), hangs=True,
           fault=r"read the output before you wait"),
    Mutant("02.fix_gather", "children_never_reaped", _gather(reap="pass"),
           fault=r"nobody waited for it|still running when the function returned"),
    # --- 02.primes ----------------------------------------------------------------------------
    Mutant("02.primes", "stage_keeps_its_input_write_end", _primes(child_closes="not_for_child"),
           hangs=True, fault=r"write end it still holds itself"),
    Mutant("02.primes", "stage_keeps_the_parents_input", _primes(child_closes="(w,)"),
           fault=r"read end of a pipe it does not read"),
    Mutant("02.primes", "stage_leaves_without_waiting", _primes(stage_wait="pass"),
           fault=r"ended without waiting for its child"),
    Mutant("02.primes", "next_stage_started_before_any_number",
           _primes(eager="start_stage([inbox])"),
           fault=r"started \d+ processes; a sieve of \d+ primes"),
    Mutant("02.primes", "results_write_end_kept_by_the_generator", _primes(main_close="pass"),
           hangs=True, fault=r"write end it still holds itself"),
]


# --- 02.pipes_puzzle: wrong answers to each student's own puzzle --------------------------
# Each reads the right names from the bank and spoils them as a student would (the puzzle
# differs from one user to the next, so no fixed list is wrong for every one of them).


def _pipes_puzzle(names: str) -> str:
    return f'''
from labkit.puzzle_student import my_puzzle, puzzle_of

def pipes_puzzle_answer():
    mine = my_puzzle("02.pipes_puzzle").puzzle
    hang = [] if mine.answer == "none" else mine.answer.split()
    return {names}
'''


MUTANTS += [
    Mutant("02.pipes_puzzle", "the_opposite", _pipes_puzzle(
        "[name for name in mine.choices if name not in hang]"),
           fault=r"you (named a process that finishes|left out a process that never "
                 r"finishes) in a real run of your own puzzle"),
    Mutant("02.pipes_puzzle", "one_left_out_or_one_too_many", _pipes_puzzle(
        "hang[1:] if hang else list(mine.choices[:1])"),
           fault=r"you (named a process that finishes|left out a process that never "
                 r"finishes)"),
    Mutant("02.pipes_puzzle", "another_students_answer", _pipes_puzzle(
        'next(theirs for theirs in (puzzle_of("02.pipes_puzzle", f"neighbour{i}").puzzle'
        '.answer for i in range(50)) if theirs != mine.answer).replace("none", "").split()'),
           fault=r"your own puzzle's program"),
    Mutant("02.pipes_puzzle", "none_as_a_word", _pipes_puzzle('"none"'),
           fault=r"expected a list of process names"),
    Mutant("02.pipes_puzzle", "a_name_the_program_does_not_have", _pipes_puzzle('["C"]'),
           fault=r"'C' is not one of the processes"),
]
