"""The processes a test session starts (workers, demos, servers): each runs in its own process
group, and every one still running is stopped when the session ends, on Ctrl-C and on SIGTERM,
so no worker outlives the run that started it.

Waits use WAIT_S: generous, because a loaded 2-core machine makes a Python process start and a
job run several times slower than an idle one; a passing test never waits that long.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
from pathlib import Path

WAIT_S = float(os.environ.get("KEEPWELL_TEST_WAIT_S", "120"))

_running: dict[int, subprocess.Popen] = {}


def start(args: list[str], *, env: dict, log: Path | None = None, **popen) -> subprocess.Popen:
    """Popen in a new process group, remembered until stop(); output to ``log`` when given."""
    if log is not None:
        with open(log, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    **popen)
    else:
        proc = subprocess.Popen(args, env=env, start_new_session=True, **popen)
    _running[proc.pid] = proc
    return proc


def run(args: list[str], *, env: dict | None = None, timeout: float = 2 * WAIT_S) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output, text) in a process group of its own: a timeout or the end of
    the test run stops the command and everything it started."""
    proc = start(args, env=dict(os.environ) if env is None else env, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> int | None:
    """SIGTERM to the child's process group, SIGABRT after ``grace_s`` (a traceback of every thread
    from a Python child run with PYTHONFAULTHANDLER=1), then SIGKILL; returns the exit status."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:  # hung: a Python child with PYTHONFAULTHANDLER=1 logs where
                _signal_group(proc, signal.SIGABRT)
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    pass
        _signal_group(proc, signal.SIGKILL)  # whatever the child left in its group goes too
        return proc.wait(10)
    finally:
        _running.pop(proc.pid, None)


def stop_all(grace_s: float = 5.0) -> None:
    for proc in list(_running.values()):
        stop(proc, grace_s)


def wait_for(predicate, what: str, timeout_s: float = WAIT_S, every_s: float = 0.05, check=None):
    """Poll ``predicate`` until it returns a true value (returned); ``check`` runs on each round
    (e.g. to fail at once when a child died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check is not None:
            check()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _on_sigterm(signum, frame):
    stop_all()
    raise KeyboardInterrupt(f"signal {signum}")  # pytest then tears down as after Ctrl-C


def install() -> None:
    """Stop every child at exit and on SIGTERM (Ctrl-C ends in atexit too)."""
    atexit.register(stop_all)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
