"""A test run that is interrupted (Ctrl-C, or SIGTERM from CI or a process manager) stops every
process its tests started: a pytest run of its own starts a long-lived child the way the
end-to-end tests start `keepwell worker`, and is interrupted while the child runs."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

import children
from children import wait_for

TESTS = Path(__file__).resolve().parent

INNER = '''
import os, sys, time
from pathlib import Path

import children


def test_starts_a_worker_and_is_interrupted():
    proc = children.start([sys.executable, "-c", "import time; time.sleep(600)"], env=dict(os.environ))
    Path(os.environ["CHILD_PID_FILE"]).write_text(str(proc.pid))
    time.sleep(600)
'''


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # dead, waiting for its parent (or init) to reap it


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_child_behind(tmp_path, signum):
    (tmp_path / "test_inner.py").write_text(INNER)
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "CHILD_PID_FILE": str(pid_file), "PYTHONPATH": str(TESTS)}
    run = children.start([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                          "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")], env=env,
                         log=tmp_path / "inner.log", cwd=tmp_path)
    try:
        wait_for(pid_file.exists, "the inner test to start its child",
                 check=lambda: run.poll() is None or pytest.fail((tmp_path / "inner.log").read_text()))
        child = int(pid_file.read_text())
        assert not _gone(child)
        os.kill(run.pid, signum)  # the test runner alone, as a terminal or a supervisor signals it
        run.wait(children.WAIT_S)
        wait_for(lambda: _gone(child), "the child to be stopped", timeout_s=10)
    finally:
        children.stop(run)
