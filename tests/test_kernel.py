"""labkit inside a real Jupyter kernel: interrupts, the kernel's own SIGINT handler, output."""
from __future__ import annotations

import time

import psutil
import pytest
from jupyter_client.manager import start_new_kernel

from labkit.waiting import wait_until


class Kernel:
    """A live ipykernel, driven the way JupyterLab drives it."""

    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3")

    def send(self, code: str) -> str:
        return self.kc.execute(code)

    def collect(self, msg_id: str, timeout: float = 30) -> tuple[str, str, str, str]:
        """Wait for the cell to finish: (status, stdout, stderr, error name)."""
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        stdout = stderr = ""
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    stdout += content["text"]
                else:
                    stderr += content["text"]
            elif kind == "execute_result":
                stdout += content["data"].get("text/plain", "") + "\n"
            elif kind == "status" and content["execution_state"] == "idle":
                break
        return (reply["content"]["status"], stdout, stderr,
                reply["content"].get("ename", ""))

    def run(self, code: str) -> tuple[str, str, str, str]:
        return self.collect(self.send(code))

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel()


@pytest.fixture()
def kernel():
    k = Kernel()
    yield k
    k.close()


def test_interrupting_a_cell_that_waits_on_workers_leaves_the_kernel_clean(kernel):
    status, *_ = kernel.run("import os, signal, time, psutil, labkit\n"
                            "handler = signal.getsignal(signal.SIGINT)")
    assert status == "ok"
    msg_id = kernel.send("labkit.run_workers(lambda i: time.sleep(60), 3, timeout=60)")
    cell = psutil.Process(kernel.km.provisioner.pid)
    wait_until(lambda: len([p for p in cell.children(recursive=True)
                            if p.name() != "labkit-janitor"]) >= 3,
               timeout=30, message="the cell's three workers never started")
    kernel.km.interrupt_kernel()
    status, _, _, error = kernel.collect(msg_id)
    assert (status, error) == ("error", "KeyboardInterrupt")
    status, out, _, _ = kernel.run(
        "sorted(p.name() for p in psutil.Process().children(recursive=True))")
    assert out.strip() == "['labkit-janitor']"
    status, out, _, _ = kernel.run("signal.getsignal(signal.SIGINT) is handler")
    assert out.strip() == "True"
    status, out, _, _ = kernel.run("labkit.run(os.getpid).value != os.getpid()")
    assert (status, out.strip()) == ("ok", "True")


def test_child_output_reaches_the_cell_in_order(kernel):
    status, out, err, _ = kernel.run(
        "import labkit, sys\n"
        "def talk():\n"
        "    for i in range(3):\n"
        "        print('line', i)\n"
        "    print('oops', file=sys.stderr)\n"
        "    return 'done'\n"
        "print(labkit.run(talk).value)")
    assert status == "ok"
    assert out == "line 0\nline 1\nline 2\ndone\n" and err == "oops\n"


def test_labkit_forks_without_the_multithreading_warning(kernel):
    # A kernel has several threads: on Python 3.12+ a raw os.fork() warns, labkit's does not.
    status, out, err, error = kernel.run(
        "import warnings, os, threading, labkit\n"
        "warnings.simplefilter('error')\n"
        "print(threading.active_count() > 1, labkit.run(os.getpid, show=False).returned)")
    assert (status, out, err) == ("ok", "True True\n", ""), error


@pytest.mark.alone  # timing-sensitive: in a parallel run, nothing else runs meanwhile
def test_thirty_interrupts_of_a_forking_cell_all_arrive(kernel):
    """Each interrupt ends the cell: none is lost in a fork's hooks, whenever it comes."""
    import queue
    import random

    status, *_ = kernel.run("import os, labkit")
    assert status == "ok"
    rng = random.Random(15)
    for n in range(30):
        msg_id = kernel.send("while True:\n    labkit.run(os.getpid, show=False)")
        time.sleep(rng.uniform(0.05, 0.3))  # a random moment to interrupt, not a wait
        kernel.km.interrupt_kernel()
        try:
            status, _, err, error = kernel.collect(msg_id, timeout=20)
        except queue.Empty:
            pytest.fail(f"interrupt {n + 1} of 30 was lost: the cell ran on")
        assert (status, error) == ("error", "KeyboardInterrupt")
        assert "Exception ignored" not in err
    # Whenever the interrupt came (even between the fork and the wait), the cell ended the
    # child before it raised: nothing is left but the janitor, at once.
    status, out, _, _ = kernel.run(
        "import psutil\n[p.name() for p in psutil.Process().children()]")
    assert out.strip() == "['labkit-janitor']"
