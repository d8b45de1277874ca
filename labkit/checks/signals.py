"""Checks for the exercises of lesson 01 (signals).

The checker never guesses when an answer is ready or done with a signal: it
reads the answer's signal masks and sleep count in ``/proc`` (see
:func:`labkit.signals.wait_for_state` and :func:`~labkit.signals.send_and_settle`),
and where an answer must face many signals at once it makes that happen for
certain (children that end while the answer's process is stopped).
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

import psutil

from .. import objects
from ..checking import (
    Attempt,
    CheckFailed,
    CheckTimedOut,
    Exercise,
    call,
    expect,
    expect_clean,
    launch,
)
from ..errors import LabError
from ..processes import to_signal
from ..signals import PUZZLE_TARGET, gatekeeper, replay, send_and_settle, signal_state
from ..waiting import Deadline, wait_until
from ._shared import expect_function, first_difference

_SETTLE = 1.0  # seconds an answer may take from installing its handlers to sleeping
_START = 3.0   # seconds an answer may take to install its handlers at all


def _await_waiting(pid: int, caught: list[str], blocked_ok: Sequence[str] = ()) -> None:
    """Wait until the answer catches ``caught`` (or blocks those in ``blocked_ok``) and sleeps.

    An answer that has its handlers but keeps running is busy-waiting, and one asleep
    with only some of them will never get the rest: both fail after ``_SETTLE`` seconds,
    which is ample for an answer that goes on to wait (it is microseconds away from it).
    """
    now = time.monotonic()
    deadline, since, seen = now + _START, now, None
    while True:
        try:
            st = signal_state(pid)
        except LabError:
            return  # it ended: finish() will say how
        missing = [s for s in caught if s not in st.caught
                   and not (s in blocked_ok and (s in st.blocked or st.in_sigwait))]
        if st.state in "ZX" or (not missing and st.state == "S"):
            return
        now = time.monotonic()
        # "ready" (every handler there, still running) or "partial" (asleep without some)
        phase = "ready" if not missing else "partial" if (
            st.state == "S" and len(missing) < len(caught)) else None
        if phase != seen:
            seen, since = phase, now
        if phase == "ready" and now - since > _SETTLE:
            raise CheckFailed(f"your function had its handlers, but {_SETTLE:g} s later it was "
                              f"still running (process state {st.state}) instead of waiting: "
                              "a loop that tests a flag without sleeping is a busy wait; "
                              "signal.pause() or signal.sigwait() wait without using the CPU")
        if phase == "partial" and now - since > _SETTLE:
            raise CheckFailed(f"your function was waiting, but had not installed a handler "
                              f"for {' and '.join(missing)}")
        if now > deadline and missing:
            raise CheckFailed(f"after {_START:g} s your function had still not installed a "
                              f"handler for {' and '.join(missing)}")
        time.sleep(0.002)


# --- 01.count_usr1 --------------------------------------------------------------------

COUNT = Exercise("01.count_usr1", "Count SIGUSR1 until SIGTERM")


def _count_with_previous_ignored(answer):
    """Run the answer with SIGUSR1 and SIGTERM ignored beforehand; report what it restored."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    value = answer()
    restored = (signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
                and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
    return value, restored


def _count_run(answer, usr1: int, paced: bool, wrapper=None) -> object:
    """Launch the answer, send ``usr1`` SIGUSR1 (one at a time if paced), then SIGTERM."""
    target = (functools.partial(wrapper, answer) if wrapper else answer)
    with launch(target, timeout=10) as running:
        _await_waiting(running.pid, ["SIGUSR1", "SIGTERM"], blocked_ok=["SIGTERM"])
        for _ in range(usr1):
            if not running.running:
                break
            if paced:
                send_and_settle(running.pid, "SIGUSR1", timeout=1.0)
            else:
                os.kill(running.pid, signal.SIGUSR1)
        if running.running:
            send_and_settle(running.pid, "SIGTERM", timeout=1.0)
        attempt = running.finish()
    _explain_death(attempt)
    return attempt


def _miscount(got: object, sent: int) -> str:
    """Why ``got`` SIGUSR1 may have been counted when ``sent`` were handled one at a time."""
    if got == sent + 1:
        return ": one more than the SIGUSR1 sent, so SIGTERM was counted too"
    if isinstance(got, int) and 0 <= got < sent:
        return (": your function stopped waiting before SIGTERM came (wait again after each "
                "signal until SIGTERM has come)")
    return ""


def _explain_death(attempt) -> None:
    """Fail with the likely reason if the answer's process ended before the function returned."""
    r = attempt.result
    if r.returned or r.escaped:
        return
    if r.status.signal is not None:
        sig = r.status.signal_name
        raise CheckFailed(f"the process running your function was {r.status}: it had no handler "
                          f"for {sig} when {sig} came (install it before you wait, and keep "
                          "it until you return)")
    if r.error_type is None:
        raise CheckFailed(f"your function never returned: its process {r.status} (sys.exit in "
                          "a signal handler?). A handler should only note that the signal "
                          "came, so that your function can clean up and return")


@COUNT.check("five SIGUSR1, one at a time, then SIGTERM: returns 5",
             hint="Count in one handler, end the wait in another, and wait for signals in a "
                  "loop until the ending one has come.",
             concept="A handler runs in your process between two bytecodes of the waiting "
                     "code; it can only pass on what it learnt through a variable that the "
                     "waiting code also sees (nonlocal or global).")
def _(answer):
    expect_function(answer)
    got = _count_run(answer, 5, paced=True).value
    expect(got == 5, f"five SIGUSR1 were sent, each after the one before had been handled, "
                     f"then SIGTERM; your function returned {got!r}, expected 5"
                     f"{_miscount(got, 5)}")


@COUNT.check("SIGTERM alone: returns 0 and the process survives",
             hint="Install the SIGTERM handler before you start waiting; it should only "
                  "end the wait, not the process.",
             concept="Without a handler, SIGTERM's default action ends the whole process, "
                     "and nothing of your function runs after it.")
def _(answer):
    expect_function(answer)
    got = _count_run(answer, 0, paced=True).value
    expect(got == 0, f"only SIGTERM was sent; your function returned {got!r}, expected 0"
                     f"{_miscount(got, 0)}")


@COUNT.check("a burst of 300 SIGUSR1 counts at least 1 and never more than 300",
             hint="Count in the handler, once per call. Fewer than 300 is right: standard "
                  "signals that arrive while one is pending merge into it.",
             concept="The kernel keeps one pending bit per standard signal, not a counter: "
                     "a burst can only be seen as fewer signals, never as more.")
def _(answer):
    expect_function(answer)
    got = _count_run(answer, 300, paced=False).value
    expect(isinstance(got, int) and 1 <= got <= 300,
           f"300 SIGUSR1 were sent as fast as possible; your function returned {got!r}: "
           "it must be between 1 (they may all merge) and 300 (none may be invented)")


@COUNT.check("the previous handlers of SIGUSR1 and SIGTERM are back afterwards",
             hint="Installing a handler hands you back the one it replaced: keep both and "
                  "put them back however your function ends.",
             concept="Signal handlers belong to the whole process; a function that changes "
                     "them borrows them and must give them back.")
def _(answer):
    expect_function(answer)
    attempt = _count_run(answer, 2, paced=True, wrapper=_count_with_previous_ignored)
    _, restored = attempt.value
    expect(restored, "before your function ran, SIGUSR1 and SIGTERM were ignored; afterwards "
                     "they were not: restore the handlers you replaced")
    expect_clean(attempt)


# --- 01.graceful_jobs -----------------------------------------------------------------

GRACEFUL = Exercise("01.graceful_jobs", "Shut down gracefully on SIGTERM")


def _job(i: int) -> int:
    time.sleep(0.01)
    return i


def _job_reads_pidfile(pidfile: str) -> int:
    try:
        with open(pidfile) as f:
            return int(f.read().strip() or -1)
    except (OSError, ValueError):
        return -1


def _job_terms_itself(i: int, log: str) -> int:
    os.kill(os.getpid(), signal.SIGTERM)   # SIGTERM arrives in the middle of this job
    time.sleep(0.05)                       # ... and the job goes on to its end
    with open(log, "a") as f:
        f.write(f"finished {i}\n")
    return i


def _job_logged(i: int, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"started {i}\n")
    return i


def _job_waits_for(i: int, started: str, release: str) -> int:
    with open(started, "w"):
        pass
    wait_until(lambda: os.path.exists(release), 5, None, every=0.005)
    return i


def _jobs_with_previous_ignored(answer, jobs, pidfile):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    value = answer(jobs, pidfile)
    return value, signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def _results(attempt, n: int) -> list:
    _explain_death(attempt)
    got = attempt.value
    expect(isinstance(got, list), f"expected the list of the jobs' results, got {got!r}")
    return got


@GRACEFUL.check("without SIGTERM every job runs, in order, and the pid file goes",
                hint="Announce the process in the pid file, run the jobs in order, and remove "
                     "the file whatever happens.",
                concept="Cleanup that must happen on every path (a normal end, a signal, an "
                        "exception) belongs in a finally block.")
def _(answer):
    expect_function(answer)
    with objects.temp_folder("jobs") as d:
        pidfile = os.path.join(d, "worker.pid")
        jobs = [functools.partial(_job, i) for i in range(4)]
        got = _results(call(answer, jobs, pidfile), 4)
        expect(got == [0, 1, 2, 3], f"four jobs returned 0, 1, 2, 3; you returned {got!r}")
        expect(not os.path.exists(pidfile), f"the pid file {pidfile} is still there")


@GRACEFUL.check("the pid file holds the pid while the jobs run",
                hint="Create the file before the first job runs, with the pid of the process "
                     "that runs the jobs (not its parent's).",
                concept="Other programs read a pid file to know whom to signal: it must exist, "
                        "complete, for as long as the service runs.")
def _(answer):
    expect_function(answer)
    with objects.temp_folder("jobs") as d:
        pidfile = os.path.join(d, "worker.pid")
        attempt = call(answer, [functools.partial(_job_reads_pidfile, pidfile)], pidfile)
        got = _results(attempt, 1)
        expect(got == [attempt.result.pid],
               f"a job read {got[0] if got else None!r} from the pid file, expected the pid "
               f"of the process running your function ({attempt.result.pid})")


@GRACEFUL.check("SIGTERM in the middle of a job: that job finishes, no later job starts",
                hint="Let the handler only note that SIGTERM came; the loop looks at that "
                     "note between jobs, so the current job runs to its end.",
                concept="A handler interrupts the main code at an arbitrary point; stopping "
                        "right there (an exit, an exception) leaves the current work half "
                        "done.")
def _(answer):
    expect_function(answer)
    with objects.temp_folder("jobs") as d:
        pidfile, log = os.path.join(d, "worker.pid"), os.path.join(d, "log")
        jobs = [functools.partial(_job_logged, 0, log), functools.partial(_job_logged, 1, log),
                functools.partial(_job_terms_itself, 2, log),
                functools.partial(_job_logged, 3, log), functools.partial(_job_logged, 4, log)]
        got = _results(call(answer, jobs, pidfile), 5)
        with open(log) as f:
            lines = f.read().split()
        expect("finished" in lines, "job 2 was interrupted by SIGTERM and never finished: the "
                                    "handler must not stop the work at once")
        expect("3" not in lines[lines.index("finished"):] and got == [0, 1, 2],
               f"SIGTERM came during job 2; expected results [0, 1, 2] and no job started "
               f"after it, got {got!r}")
        expect(not os.path.exists(pidfile), "after SIGTERM the pid file was not removed")


@GRACEFUL.check("SIGTERM from another process: cleans up and returns what is done",
                hint="Install the SIGTERM handler before the first job; after the loop, "
                     "remove the pid file and return the results so far.",
                concept="A signal from another process can come at any moment, also while "
                        "a job runs; the loop is where your code decides what to do about it.")
def _(answer):
    expect_function(answer)
    with objects.temp_folder("jobs") as d:
        pidfile = os.path.join(d, "worker.pid")
        started, release = os.path.join(d, "started"), os.path.join(d, "release")
        jobs = [functools.partial(_job, 0),
                functools.partial(_job_waits_for, 1, started, release),
                functools.partial(_job, 2), functools.partial(_job, 3)]
        with launch(answer, jobs, pidfile, timeout=10) as running:
            wait_until(lambda: os.path.exists(started) or not running.running, 5, None,
                       every=0.005)
            if running.running:
                running.send_signal("SIGTERM")
            with open(release, "w"):
                pass
            attempt = running.finish()
        got = _results(attempt, 4)
        expect(got == [0, 1], f"SIGTERM came while job 1 ran; expected [0, 1], got {got!r}")
        expect(not os.path.exists(pidfile), "after SIGTERM the pid file was not removed")


@GRACEFUL.check("the previous SIGTERM handler is back, and nothing is left open",
                hint="Keep the handler your own one replaced, and put it back at the end, "
                     "after SIGTERM too; close whatever you opened.",
                concept="Signal handlers belong to the whole process; a function that changes "
                        "them borrows them and must give them back.")
def _(answer):
    expect_function(answer)
    with objects.temp_folder("jobs") as d:
        pidfile = os.path.join(d, "worker.pid")
        attempt = call(_jobs_with_previous_ignored, answer,
                       [functools.partial(_job, 0)], pidfile)
        _explain_death(attempt)
        _, restored = attempt.value
        expect(restored, "SIGTERM was ignored before your function ran, and not afterwards: "
                         "put the previous handler back")
        expect_clean(attempt)


# --- 01.call_with_timeout -------------------------------------------------------------

TIMEOUT = Exercise("01.call_with_timeout", "A time limit built on SIGALRM")


def _quick() -> int:
    return 42


def _sleepy() -> None:
    time.sleep(30)


def _spin() -> None:
    while True:
        pass


def _fails() -> None:
    raise ValueError("fn failed on purpose")


def _previous_alarm(signum, frame) -> None:
    pass


def _timeout_outcome(answer, fn, seconds, prior_timer=0.0):
    """Call the answer with a known SIGALRM handler (and timer) in place; report everything."""
    signal.signal(signal.SIGALRM, _previous_alarm)
    signal.setitimer(signal.ITIMER_REAL, prior_timer)
    try:
        outcome = ("returned", answer(fn, seconds))
    except NotImplementedError:
        raise
    except BaseException as e:
        outcome = ("raised", type(e).__name__, str(e))
    left = signal.setitimer(signal.ITIMER_REAL, 0)[0]   # read the timer, and disarm it
    return outcome, signal.getsignal(signal.SIGALRM) is _previous_alarm, left


def _timeout_call(answer, fn, seconds, prior_timer=0.0):
    expect_function(answer)
    try:
        attempt = call(_timeout_outcome, answer, fn, seconds, prior_timer, timeout=3)
    except CheckFailed as e:
        if "did not finish" not in str(e):
            raise
        raise CheckFailed(f"with a limit of {seconds:g} s, fn was still running after 3 s: "
                          "nothing interrupted it (is the timer armed for the limit, and does "
                          "the SIGALRM handler raise TimeoutError?)") from None
    if not attempt.result.returned and attempt.result.status.signal == signal.SIGALRM:
        raise CheckFailed("the process was killed by SIGALRM: a timer went off when no handler "
                          "was installed any more (cancel your timer before you restore the "
                          "old handler)")
    return attempt.value


@TIMEOUT.check("a quick function's value comes back",
               hint="Arm a real-time timer for the limit before calling fn, and let fn's "
                    "value through.",
               concept="ITIMER_REAL counts wall-clock time and sends SIGALRM when it runs out.")
def _(answer):
    outcome, _, _ = _timeout_call(answer, _quick, 1.0)
    expect(outcome == ("returned", 42),
           f"call_with_timeout(lambda: 42, 1.0) gave {_describe(outcome)}, expected 42")


def _describe(outcome) -> str:
    if outcome[0] == "returned":
        return f"{outcome[1]!r}"
    return f"{outcome[1]}({outcome[2]!r})"


@TIMEOUT.check("a function that sleeps too long raises TimeoutError",
               hint="A handler that only notes the alarm lets fn carry on; one that raises "
                    "makes the exception come out of fn wherever it is, even inside a sleep.",
               concept="Python runs a handler in the main thread at the point the program had "
                       "reached; an exception it raises propagates from that point.")
def _(answer):
    _expect_timeout(answer, _sleepy, 0.2, "fn sleeps 30 s")


def _expect_timeout(answer, fn, seconds: float, what: str) -> None:
    outcome, _, _ = _timeout_call(answer, fn, seconds)
    expect(outcome[:2] == ("raised", "TimeoutError"),
           f"{what} and the limit is {seconds:g} s; expected TimeoutError, got "
           f"{_describe(outcome)}")


@TIMEOUT.check("fractions of a second work, and a busy loop is interrupted too",
               hint="One of the two timer functions takes whole seconds only (and 0 cancels "
                    "the alarm!); the other takes a float.",
               concept="A timer interrupts any code, sleeping or computing: the kernel sends "
                       "the signal when the time is up, whatever the process is doing.")
def _(answer):
    _expect_timeout(answer, _spin, 0.3, "fn computes in an endless loop")


def _timer_left() -> float:
    """The time left on the real-time timer while fn runs."""
    return signal.getitimer(signal.ITIMER_REAL)[0]


@TIMEOUT.check("the timer is armed for the limit itself, to a fraction of a second",
               hint="Whole seconds are not enough: arm the timer with the float you were "
                    "given, neither rounded up nor down.",
               concept="The real-time timer can be read back while it runs: it shows the "
                       "time left until SIGALRM.")
def _(answer):
    outcome, _, _ = _timeout_call(answer, _timer_left, 0.25)
    expect(outcome[0] == "returned", f"fn only reads the timer, yet your function gave "
                                     f"{_describe(outcome)}")
    left = outcome[1]
    expect(isinstance(left, float) and left > 0,
           f"while fn ran with a limit of 0.25 s, no real-time timer (ITIMER_REAL) was armed "
           f"(time left {left!r}): a limit rounded down to 0 s cancels the alarm, and the "
           "other timers count CPU time, which a sleeping fn does not use")
    expect(left <= 0.25, f"while fn ran with a limit of 0.25 s, the timer had {left:.2f} s "
                         "left: it was armed for longer than the limit (rounded up?)")


@TIMEOUT.check("the previous SIGALRM handler is back, after a value and after a timeout",
               hint="Keep the handler yours replaced and restore it in every case: after a "
                    "value and after a timeout.",
               concept="Signal handlers belong to the whole process; a function that changes "
                       "them borrows them and must give them back.")
def _(answer):
    for fn, what in ((_quick, "returned"), (_sleepy, "timed out")):
        _, restored, _ = _timeout_call(answer, fn, 0.2)
        expect(restored, f"after a call that {what}, the SIGALRM handler that was there "
                         "before was not restored")


@TIMEOUT.check("no timer is left running afterwards",
               hint="Disarm your timer in every case before you return.",
               concept="An armed timer outlives the call that armed it: its SIGALRM arrives "
                       "later, in code that does not expect it.")
def _(answer):
    _, _, left = _timeout_call(answer, _quick, 2.0)
    expect(left == 0, f"after call_with_timeout returned, a timer was still armed with "
                      f"{left:.2f} s left: its SIGALRM would hit the program later")


@TIMEOUT.check("a timer that was already running goes on running",
               hint="Arming a timer tells you what was armed before; re-arm that at the end "
                    "with what is left of it.",
               concept="A process has one real-time timer: arming it replaces the caller's, "
                       "so a well-behaved function saves and restores it.")
def _(answer):
    _, _, left = _timeout_call(answer, _quick, 1.0, prior_timer=20.0)
    expect(0 < left <= 20, f"a 20 s timer was running before the call; afterwards it had "
                           f"{left:.2f} s left, expected a little under 20 s")


@TIMEOUT.check("an exception from fn passes through unchanged",
               hint="Do not catch exceptions from fn; only make sure the timer and handler "
                    "are restored.",
               concept="A time limit changes how fn can end, not what its own errors are.")
def _(answer):
    outcome, restored, left = _timeout_call(answer, _fails, 1.0)
    expect(outcome == ("raised", "ValueError", "fn failed on purpose"),
           f"fn raised ValueError('fn failed on purpose'); your function gave "
           f"{_describe(outcome)}")
    expect(restored and left == 0, "after fn raised, the timer or the handler was not restored")


# --- 01.reaper ------------------------------------------------------------------------

REAPER = Exercise("01.reaper", "Reap children from a SIGCHLD handler")


def _reap(answer, tasks: list) -> Attempt:
    """``call(answer, tasks)``; a hang names the reaper's most common cause."""
    try:
        return call(answer, tasks, timeout=_QUICK)
    except CheckTimedOut as e:
        raise CheckTimedOut(f"{e} A reaper that hangs usually waits for a child nobody reaped: "
                            "children that end close together may send a single SIGCHLD for "
                            "all of them") from None


_QUICK = 3.0  # seconds for a call whose children end at once: a hang fails sooner


def _code(i: int) -> int:
    return i


def _handler_inherited() -> int:
    """1 if the parent had a SIGCHLD handler when it forked this child (children inherit it)."""
    h = signal.getsignal(signal.SIGCHLD)
    return 1 if callable(h) else 0


def _wait_for_go(r: int) -> int:
    os.read(r, 1)
    return 3


def _stop_parent_and_release(r: int, w: int, others: int) -> int:
    """Stop the parent, let every other child end, then continue the parent.

    While the parent is stopped it runs no handler, so every SIGCHLD the
    ended children cause merges into one pending signal.
    """
    parent = os.getppid()
    os.kill(parent, signal.SIGSTOP)
    deadline = Deadline(3)
    wait_until(lambda: signal_state(parent).state in "tT", deadline.left(), None, every=0.001)
    os.write(w, b"g" * others)
    me = os.getpid()

    def siblings_ended() -> bool:
        try:
            siblings = [c for c in psutil.Process(parent).children() if c.pid != me]
            return all(c.status() == psutil.STATUS_ZOMBIE for c in siblings)
        except psutil.Error:
            return False

    wait_until(siblings_ended, deadline.left(), None, every=0.002)
    os.kill(parent, signal.SIGCONT)
    return 3


def _stopped_burst(answer, n: int):
    r, w = os.pipe()
    try:
        tasks = [functools.partial(_wait_for_go, r) for _ in range(n - 1)]
        tasks.append(functools.partial(_stop_parent_and_release, r, w, n - 1))
        return answer(tasks)
    finally:
        os.close(r)
        os.close(w)


def _previous_chld(signum, frame) -> None:
    pass


def _reap_with_previous(answer, tasks):
    signal.signal(signal.SIGCHLD, _previous_chld)
    value = answer(tasks)
    return value, signal.getsignal(signal.SIGCHLD) is _previous_chld


def _codes(attempt, n: int) -> dict:
    got = attempt.value
    expect(isinstance(got, dict), f"expected a dict {{pid: exit code}}, got {got!r}")
    expect(len(got) == n and attempt.result.pid not in got,
           f"expected {n} child pids, got {sorted(got)}")
    return got


@REAPER.check("three children's exit codes come back",
              hint="The handler collects every ended child it can without blocking and "
                   "keeps each one's exit code, decoded from its status.",
              concept="SIGCHLD only says that some child changed state; a wait without "
                      "blocking says which, one child per call.")
def _(answer):
    expect_function(answer)
    got = _codes(_reap(answer, [functools.partial(_code, i) for i in range(3)]), 3)
    values = sorted(got.values())
    raw = (" (those are raw wait statuses: the exit code is in their second byte)"
           if values == [0, 1 << 8, 2 << 8] else "")
    expect(values == [0, 1, 2], f"children exiting with 0, 1 and 2 gave {values}{raw}")


def _task_raises() -> int:
    raise ValueError("this task fails on purpose")


@REAPER.check("a task that raises: its child exits with 1, and still ends",
              hint="Whatever the task does, even raising, the child's last act must be to "
                   "exit, with 1 if the task raised.",
              concept="A forked child that lets an exception escape returns into the "
                      "parent's code and carries on as a second copy of the program.")
def _(answer):
    expect_function(answer)
    got = _codes(_reap(answer, [functools.partial(_code, 4), _task_raises]), 2)
    values = sorted(got.values())
    expect(values == [1, 4], f"a task returning 4 and one that raises gave {values}, "
                             "expected [1, 4]")


_BURN = 0.3  # seconds of CPU time a child computes while the answer waits for it


def _burn() -> int:
    """Compute for _BURN seconds of this process's own CPU time, then exit with 0."""
    end = time.process_time() + _BURN
    while time.process_time() < end:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@REAPER.check("your process sleeps while its child computes: no busy wait",
              hint="While the children work, your process should sleep between two looks "
                   "at what the handler has collected, not look again as fast as it can.",
              concept="A loop that never sleeps keeps a CPU busy for nothing, as long as the "
                      "child it waits for; a sleeping process uses no CPU, and the kernel "
                      "still wakes it to run the handler when SIGCHLD comes.")
def _(answer):
    expect_function(answer)
    used = 0.0
    # The child's CPU time is the yardstick: a busy-waiting parent gets about as much CPU
    # as the child (the scheduler shares fairly), however loaded the machine is.
    with launch(answer, [_burn], timeout=10) as running:
        while running.running:
            try:
                used = max(used, _cpu_seconds(running.pid))
            except psutil.Error:
                break  # it ended and was reaped between two looks
            time.sleep(0.02)
        attempt = running.finish()
    _codes(attempt, 1)
    expect(used < _BURN / 3,
           f"while its child computed for {_BURN:g} s of CPU time, the process running your "
           f"function used {used:.2f} s of CPU time itself: it waited in a busy loop instead "
           "of sleeping")


@REAPER.check("the SIGCHLD handler is installed before the first fork",
              hint="A child can end before fork even returns in the parent: install the "
                   "handler first, then fork.",
              concept="Children inherit their parent's handlers at fork time, and a SIGCHLD "
                      "that comes while no handler is installed is simply lost.")
def _(answer):
    expect_function(answer)
    got = _codes(_reap(answer, [_handler_inherited] * 3), 3)
    expect(all(v == 1 for v in got.values()),
           "some children were forked while your process had no SIGCHLD handler yet "
           "(children inherit the handlers of their parent at fork time)")


@REAPER.check("twenty children that end while your process is stopped are all reaped",
              hint="One SIGCHLD may stand for many ended children: in the handler, keep "
                   "collecting until no ended child is left.",
              concept="Standard signals do not queue: while one SIGCHLD is pending, more "
                      "children ending add nothing to it.")
def _(answer):
    expect_function(answer)
    try:
        attempt = call(_stopped_burst, answer, 20, timeout=4)
    except CheckFailed as e:
        raise CheckFailed(f"{e}. Nineteen children ended while your process was stopped; it "
                          "then received a single SIGCHLD for all of them, and your handler "
                          "did not reap them all") from None
    got = _codes(attempt, 20)
    expect(sorted(got.values()) == [3] * 20, f"expected twenty exit codes 3, got {got!r}")
    expect_clean(attempt)


def _wrapped_call(wrapper, answer, n: int):
    """Call ``wrapper(answer, tasks)`` for n children ending at once; return what it reports."""
    expect_function(answer)
    attempt = call(wrapper, answer, [functools.partial(_code, i) for i in range(n)],
                   timeout=_QUICK)
    got, report = attempt.value
    return attempt, got, report


_WAITS = ("wait", "waitpid", "waitid", "wait3", "wait4")


def _in_sigchld_handler() -> bool:
    """True if the caller's caller runs inside the SIGCHLD handler now installed."""
    code = getattr(signal.getsignal(signal.SIGCHLD), "__code__", None)
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return code is None  # a handler that is no plain function: nothing to tell


def _reaped_where(answer, tasks) -> tuple[object, dict[str, int]]:
    """Call the answer with os's wait functions counting where they are called from."""
    where = {"handler": 0, "elsewhere": 0}
    real = {name: getattr(os, name) for name in _WAITS if hasattr(os, name)}

    def counted(wait):
        def counting(*args, **kwargs):
            where["handler" if _in_sigchld_handler() else "elsewhere"] += 1
            return wait(*args, **kwargs)
        return counting

    for name, wait in real.items():
        setattr(os, name, counted(wait))
    try:
        return answer(tasks), where
    finally:
        for name, wait in real.items():
            setattr(os, name, wait)


@REAPER.check("the SIGCHLD handler does the reaping, not the main code",
              hint="The main code only sleeps until the handler has collected every child; "
                   "the wait calls belong in the handler.",
              concept="With a SIGCHLD handler, a program can go on with its own work and "
                      "still never leave a zombie: the kernel interrupts it exactly when "
                      "a child has ended.")
def _(answer):
    _, got, where = _wrapped_call(_reaped_where, answer, 3)
    expect(isinstance(got, dict) and len(got) == 3,
           f"expected a dict {{pid: exit code}} of three children, got {got!r}")
    expect(where["elsewhere"] == 0,
           f"your main code called a wait function {where['elsewhere']} time(s) outside the "
           "SIGCHLD handler: the children must be reaped by the handler")


@REAPER.check("the previous SIGCHLD handler is back, and no zombie is left",
              hint="Put the previous handler back after the last child is reaped.",
              concept="Signal handlers belong to the whole process; a function that changes "
                      "them borrows them and must give them back.")
def _(answer):
    attempt, _, restored = _wrapped_call(_reap_with_previous, answer, 5)
    expect(restored, "the SIGCHLD handler that was there before your function ran was not "
                     "put back")
    expect_clean(attempt)


# --- 01.signal_puzzle -----------------------------------------------------------------

PUZZLE = Exercise("01.signal_puzzle", "Choose the signals: make the gatekeeper print this")


@PUZZLE.check("the gatekeeper prints exactly the target and exits with code 0",
              hint="Signals sent while the gate is closed wait, merge, and come out in "
                   "signal-number order (SIGHUP 1, SIGUSR1 10, SIGUSR2 12) the moment it opens, "
                   "before 'open' is printed.")
def _(answer):
    expect_function(answer)
    chosen = call(answer).value
    expect(isinstance(chosen, (list, tuple)) and chosen,
           f"expected a list of signals such as ['SIGUSR1', 'SIGTERM'], got {chosen!r}")
    expect(len(chosen) <= 40, f"at most 40 signals, please; you chose {len(chosen)}")
    try:
        sigs = [to_signal(s) for s in chosen]
    except ValueError as e:
        raise CheckFailed(str(e).split("; valid")[0]) from None
    result = replay(gatekeeper, sigs, timeout=15)
    names = " ".join(s.name[3:] for s in sigs)
    expect(result.output == PUZZLE_TARGET,
           f"sending {names} made the gatekeeper print {result.output}; "
           f"{first_difference(result.output, PUZZLE_TARGET)}")
    expect(result.status == "exited with code 0",
           f"the output is right, but the gatekeeper {result.status}; it must end by itself "
           "with exit code 0")

