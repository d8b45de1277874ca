"""labkit.pipes: the pipe experiments return true facts about real pipes, refuse bad input
clearly, and leave no descriptor, process or FIFO behind."""
from __future__ import annotations

import math
import os
import time

import pytest

import labkit
from labkit import objects, pipes, pipes_throughput, shm
from labkit.errors import LabError, LabTimeout, NotSupportedHere

LINUX_PIPE_SIZES = pipes._F_GETPIPE_SZ is not None
needs_pipe_sizes = pytest.mark.skipif(not LINUX_PIPE_SIZES, reason="F_GETPIPE_SZ is Linux's")
BAD_SIZES = [0, -1, -65536, 2**40, True, 1.5, "64"]


pytestmark = pytest.mark.usefixtures("no_descriptor_leaks")


@pytest.fixture()
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass  # the test closed it itself


# --- capacity -------------------------------------------------------------------------


@needs_pipe_sizes
def test_a_pipe_holds_exactly_what_the_kernel_reports():
    cap = pipes.probe_capacity()
    assert cap.filled == cap.reported == cap.waiting
    assert cap.reported % shm.PAGE_SIZE == 0


@needs_pipe_sizes
@pytest.mark.parametrize("size", [1, 4096, 10_000, 100_000])
def test_a_requested_capacity_is_rounded_up_to_a_power_of_two_pages(size):
    cap = pipes.probe_capacity(size=size)
    pages = cap.reported // shm.PAGE_SIZE
    assert cap.reported >= size and pages & (pages - 1) == 0
    assert cap.filled == cap.reported and cap.requested == size


def test_writes_that_do_not_divide_a_page_fit_fewer_bytes():
    # the kernel counts a pipe's room in page-sized slots: a slot with no room for the
    # next whole small write is left partly empty
    cap = pipes.probe_capacity(chunk=1000)
    assert cap.filled < pipes.probe_capacity(chunk=1024).filled
    assert cap.filled % 1000 == 0


def test_a_non_blocking_probe_never_blocks_even_with_huge_writes():
    cap = pipes.probe_capacity(chunk=pipes.MAX_CHUNK)
    assert 0 < cap.filled <= pipes.MAX_CHUNK and cap.writes == 1


@pytest.mark.parametrize("bad", BAD_SIZES + [None])
def test_bad_chunk_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="chunk must be a whole number of bytes from 1 to"):
        pipes.probe_capacity(chunk=bad)


@needs_pipe_sizes
@pytest.mark.parametrize("bad", BAD_SIZES + [pipes.max_pipe_size() + 1])
def test_bad_pipe_sizes_are_refused_with_the_limit(bad, pipe):
    with pytest.raises(ValueError, match=r"size must be .* from 1 to \d+ \(the limit in "
                                         r"/proc/sys/fs/pipe-max-size\)"):
        pipes.set_pipe_size(pipe[1], bad)
    with pytest.raises(ValueError):
        pipes.probe_capacity(size=bad)


@needs_pipe_sizes
def test_shrinking_below_what_the_pipe_holds_is_a_clear_error(pipe):
    _r, w = pipe
    os.write(w, bytes(20_000))
    with pytest.raises(LabError, match="holds 20000 bytes now") as info:
        pipes.set_pipe_size(w, 4096)
    assert isinstance(info.value.__cause__, OSError)


def test_only_pipes_have_a_pipe_size(tmp_path, pipe):
    with open(tmp_path / "plain", "w") as f, pytest.raises(ValueError,
                                                        match="is not a pipe or FIFO"):
        pipes.pipe_size(f.fileno())
    r, _w = pipe
    os.close(r)
    with pytest.raises(ValueError, match=f"{r} is not an open file descriptor"):
        pipes.bytes_waiting(r)
    with pytest.raises(ValueError, match="expected a file descriptor"):
        pipes.pipe_size("3")


def test_without_f_getpipe_sz_the_probe_still_measures(monkeypatch, pipe):
    monkeypatch.setattr(pipes, "_F_GETPIPE_SZ", None)
    monkeypatch.setattr(pipes, "_F_SETPIPE_SZ", None)
    with pytest.raises(NotSupportedHere, match="only on Linux"):
        pipes.pipe_size(pipe[1])
    with pytest.raises(NotSupportedHere, match="only on Linux"):
        pipes.set_pipe_size(pipe[1], 4096)
    cap = pipes.probe_capacity()
    assert cap.reported is None and cap.filled > 0


def test_bytes_waiting_counts_written_and_unread_bytes(pipe):
    r, w = pipe
    assert pipes.bytes_waiting(r) == 0
    os.write(w, b"x" * 1234)
    assert pipes.bytes_waiting(r) == pipes.bytes_waiting(w) == 1234
    os.read(r, 234)
    assert pipes.bytes_waiting(r) == 1000


# --- fill level -----------------------------------------------------------------------


def test_the_fill_level_never_exceeds_the_capacity_and_every_byte_arrives():
    trace = pipes.record_fill(total=96 * 1024, write_every=0.0005, read_every=0.002)
    assert 0 < trace.max_level <= (trace.capacity or math.inf)
    assert sum(trace.read_sizes) == 96 * 1024
    assert len(trace.write_starts) == len(trace.write_ends) == 24
    assert all(a <= b for a, b in zip(trace.write_starts, trace.write_ends, strict=True))
    assert trace.times == sorted(trace.times) and len(trace.times) == len(trace.levels)
    assert trace.blocked_seconds >= 0


@needs_pipe_sizes
def test_a_small_pipe_caps_the_fill_level():
    trace = pipes.record_fill(total=32 * 1024, size=4096, write_every=0, read_every=0.001)
    assert trace.capacity == 4096 and trace.max_level <= 4096


@pytest.mark.parametrize("kwargs, message", [
    ({"total": 0}, "total must be"), ({"total": -5}, "total must be"),
    ({"total": 2**40}, "total must be"), ({"write_size": 0}, "write_size must be"),
    ({"read_size": -1}, "read_size must be"), ({"write_every": -0.1}, "write_every must be"),
    ({"read_every": math.nan}, "read_every must be"), ({"sample_every": 0}, "sample_every"),
    ({"timeout": 0}, "timeout must be"),
])
def test_bad_fill_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipes.record_fill(**kwargs)


# --- interleaving ---------------------------------------------------------------------


def test_the_detector_finds_torn_writes_in_a_known_stream():
    # writer A's second write is split by one of B's; everything else is intact
    stream = b"AAAA" + b"BBBB" + b"AA" + b"BBBB" + b"AA"
    starts, lengths, owners = pipes._runs(stream)
    assert (starts, lengths, owners) == ([0, 4, 8, 10, 14], [4, 4, 2, 4, 2], [0, 1, 0, 1, 0])
    assert pipes._pieces(lengths, owners, 2, 2, 4) == [[1, 2], [1, 1]]


def test_the_detector_counts_every_piece_of_a_torn_write():
    stream = b"AB" * 4 + b"BB"
    _, lengths, owners = pipes._runs(stream)
    assert pipes._pieces(lengths, owners, 2, 1, 4) == [[4], [4]]


@pytest.mark.parametrize("size", [1, 512, pipes.PIPE_BUF])
def test_writes_up_to_pipe_buf_are_never_torn(size):
    for _ in range(3):
        result = pipes.interleaving(writers=4, write_size=size, writes=64)
        assert result.torn == 0, result
        assert result.stream_bytes == 4 * 64 * size


def test_large_writes_keep_every_byte_and_each_writers_order():
    result = pipes.interleaving(writers=3, write_size=65536, writes=8)
    assert result.stream_bytes == 3 * 8 * 65536
    per_writer = [sum(n for n, w in zip(result.run_lengths, result.run_writers, strict=True) if w == i)
                  for i in range(3)]
    assert per_writer == [8 * 65536] * 3
    assert all(p >= 1 for row in result.pieces for p in row) and len(result.pieces) == 3
    assert 0 <= result.torn <= result.total_writes  # whether any tear happened is timing


@pytest.mark.parametrize("kwargs, message", [
    ({"writers": 0}, "writers must be"), ({"writers": 27}, "writers must be"),
    ({"write_size": 0}, "write_size must be"), ({"write_size": -4096}, "write_size must be"),
    ({"write_size": 2**40}, "write_size must be"), ({"writes": 0}, "writes must be"),
    ({"writers": 26, "writes": 10_000, "write_size": 4096}, "keep it at most"),
])
def test_bad_interleaving_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipes.interleaving(**kwargs)


# --- throughput -----------------------------------------------------------------------


def test_throughput_reports_medians_and_spread_for_every_size():
    t = pipes.throughput(sizes=[256, 65536], trials=3, total=1 << 20, baseline=False)
    assert t.sizes == [256, 65536] and t.totals == [1 << 20, 1 << 20]
    for size in t.sizes:
        q1, med, q3 = t.quartiles(size)
        assert 0 < q1 <= med <= q3 and len(t.rates(size)) == 3
    assert t.baseline == [[], []]
    with pytest.raises(ValueError, match="no baseline measurement"):
        t.median(256, baseline=True)


def test_the_dd_baseline_runs_side_by_side():
    t = pipes.throughput(sizes=[65536], trials=2, total=2 << 20, baseline=True)
    assert len(t.seconds[0]) == len(t.baseline[0]) == 2
    assert t.ratio(65536) > 0
    assert "lab / dd" in repr(t.table())


def test_tiny_writes_are_capped_so_the_sweep_stays_quick():
    t = pipes.throughput(sizes=[1], trials=1, total=1 << 20, baseline=False)
    assert t.totals == [pipes_throughput.MAX_WRITES]


@pytest.mark.parametrize("text, seconds", [
    ("1000 records in\n1000 records out\n65536000 bytes (66 MB, 62 MiB) copied, "
     "0.0161 s, 4.1 GB/s\n", 0.0161),
    ("1000+0 records in\n1000+0 records out\n65536000 bytes transferred in 0.020 secs "
     "(3276800000 bytes/sec)\n", 0.020),
    ("65536 bytes (66 kB, 64 KiB) copied, 2.5e-05 s, 2.6 GB/s", 2.5e-05),
])
def test_dd_summaries_of_gnu_and_bsd_are_understood(text, seconds):
    found = pipes_throughput._DD_SUMMARY.search(text)
    assert found and float(found.group(2)) == seconds


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": []}, "non-empty list"), ({"sizes": "4096"}, "non-empty list"),
    ({"sizes": [0]}, "every write size must be"), ({"sizes": [-1]}, "every write size"),
    ({"sizes": [2**40]}, "every write size"), ({"sizes": [64, 64]}, "must not repeat"),
    ({"trials": 0}, "trials must be"), ({"total": 0}, "total must be"),
    ({"total": 2**40}, "total must be"), ({"pin": "fast"}, "pin must be"),
])
def test_bad_throughput_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipes.throughput(**kwargs)


def test_a_missing_dd_is_said_clearly(monkeypatch):
    monkeypatch.setattr(pipes_throughput.shutil, "which", lambda name: None)
    with pytest.raises(NotSupportedHere, match="pass baseline=False"):
        pipes.throughput(sizes=[4096], trials=1)


def test_a_sweep_that_runs_out_of_time_is_stopped():
    with pytest.raises(LabTimeout, match="did not finish in time"):
        pipes.throughput(sizes=[1], trials=50, total=1 << 20, baseline=False, timeout=0.3)


# --- FIFOs ----------------------------------------------------------------------------


def _read_fifo(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)  # blocks until the writer arrives
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


def test_open_fifo_meets_a_reader_in_another_process():
    with objects.scope() as objs:
        path = objs.fifo("test")
        with labkit.start(_read_fifo, str(path), timeout=5, show=False) as reader:
            fd = pipes.open_fifo(path, "w", timeout=5)
            os.write(fd, b"hello")
            os.close(fd)
            assert reader.wait().value == b"hello"
    assert not path.exists()


def _write_fifo(path: str, delay: float) -> None:
    time.sleep(delay)
    fd = os.open(path, os.O_WRONLY)
    os.write(fd, b"late")
    os.close(fd)


def test_open_fifo_for_reading_waits_for_a_writer_and_its_data():
    with objects.scope() as objs:
        path = objs.fifo("test")
        with labkit.start(_write_fifo, str(path), 0.2, timeout=5, show=False) as writer:
            fd = pipes.open_fifo(path, "r", timeout=5)
            try:
                assert os.read(fd, 100) == b"late"
                assert os.read(fd, 100) == b""  # end of file once the writer closed
            finally:
                os.close(fd)
            writer.wait()


@pytest.mark.parametrize("mode", ["r", "w"])
def test_open_fifo_gives_up_when_nobody_comes(mode):
    with objects.scope() as objs:
        path = objs.fifo("test")
        begin = time.monotonic()
        with pytest.raises(LabTimeout, match=f"nobody opened {path}"):
            pipes.open_fifo(path, mode, timeout=0.2)
        assert time.monotonic() - begin < 3  # generous: only that it gave up at all


def test_open_fifo_refuses_a_path_that_exists_but_is_no_fifo(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("not a pipe")
    with pytest.raises(ValueError, match="exists but is not a FIFO"):
        pipes.open_fifo(plain)
    with pytest.raises(ValueError, match="exists but is not a FIFO"):
        pipes.open_fifo(tmp_path)


def test_open_fifo_says_how_to_make_a_missing_fifo(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"labkit.objects.fifo\(\)"):
        pipes.open_fifo(tmp_path / "nothing")


@pytest.mark.parametrize("kwargs, message", [({"mode": "rw"}, "mode must be"),
                                             ({"timeout": 0}, "timeout must be"),
                                             ({"timeout": -1}, "timeout must be")])
def test_bad_open_fifo_arguments_are_refused(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        pipes.open_fifo(tmp_path / "x", **kwargs)


# --- plots ----------------------------------------------------------------------------


def test_every_plot_draws_from_the_data_alone():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = [
        pipes.plot_fill(pipes.record_fill(total=16 * 1024, read_every=0.001)),
        pipes.plot_interleaving(pipes.interleaving(writers=2, write_size=8192, writes=4)),
        pipes.plot_tears([pipes.interleaving(writers=2, write_size=s, writes=4)
                          for s in (512, 8192)]),
        pipes.plot_pipe_throughput(pipes.throughput(sizes=[512, 4096], trials=2, total=1 << 18)),
    ]
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")


# --- the FIFO question server ---------------------------------------------------------


def _ask(server_path: str, question: str) -> str:
    with objects.scope() as objs:
        reply = objs.fifo("reply")
        fd = os.open(server_path, os.O_WRONLY)
        os.write(fd, f"{reply}\t{question}\n".encode())
        os.close(fd)
        with open(reply) as answer:
            return answer.read()


def test_the_fifo_server_answers_unrelated_clients_and_stops():
    with pipes.fifo_server() as server:
        assert server.path.exists()
        got = labkit.run_workers(lambda i: _ask(str(server.path), f"client {i}"), 3,
                                 show=False).values
        long = labkit.run(_ask, str(server.path), "count to 20000", show=False).value
    assert got == ["CLIENT 0", "CLIENT 1", "CLIENT 2"]
    assert long.split() == [str(i) for i in range(1, 20001)]
    assert [status for status, _ in server.served] == ["answered"] * 4
    assert not server.path.exists()


def test_the_fifo_server_never_writes_into_a_plain_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with pipes.fifo_server() as server:
        fd = pipes.open_fifo(server.path, "w", timeout=5)
        os.write(fd, f"{victim}\tgotcha\nno tab here\n".encode())
        os.close(fd)
        # requests are served in order: once this one is answered, so were the two above
        assert labkit.run(_ask, str(server.path), "last", show=False).value == "LAST"
    assert victim.read_text() == "precious"
    assert server.served[:2] == [("not a FIFO", str(victim)), ("bad request", "no tab here")]


@pytest.mark.parametrize("bad", [0, -1, math.inf, "60"])
def test_bad_server_lifetimes_are_refused(bad):
    with pytest.raises(ValueError, match="lifetime must be"), pipes.fifo_server(lifetime=bad):
        pass
