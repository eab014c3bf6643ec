"""The demo's child processes: starting them each in a session of its own, checking on them,
stopping them in order, and running `keepwell` commands to completion."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


from plugin.errors import KeepwellError


class DemoError(KeepwellError):
    """The demo could not run; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keepwell_command() -> list[str]:
    """The `keepwell` command of this very installation."""
    script = Path(sys.executable).with_name("keepwell")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plugin.cli"]


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return ""
    return "\n".join("    " + line for line in text)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    tier: int  # stopped highest tier first: the app and the worker before the Redis they use


@dataclass
class Processes:
    """Every process the demo starts, each in a session of its own, so Ctrl-C in the terminal
    reaches only the demo, which then stops them in order."""

    children: list[Child] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict, log: Path, tier: int = 1) -> Child:
        with log.open("ab") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        child = Child(name, proc, log, tier)
        self.children.append(child)
        return child

    def check(self, child: Child) -> None:
        if child.proc.poll() is not None:
            raise DemoError(f"{child.name} exited with status {child.proc.returncode}; the end of {child.log}:\n"
                            f"{tail(child.log)}")

    def stop_all(self, grace: float = 8.0) -> None:
        for tier in sorted({c.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.tier == tier]
            for child in group:
                if child.proc.poll() is None:
                    child.proc.terminate()  # gunicorn, the RQ worker and redis-server stop gracefully on SIGTERM
            deadline = time.monotonic() + grace
            for child in group:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                try:  # whatever is left of its session: a hung process, a worker's scheduler or work horse
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                child.proc.wait()
        self.children.clear()


def run_cli(commands: list[list[str]], env: dict, log: Path) -> list[str]:
    """Run `keepwell` commands side by side to completion; their outputs, or DemoError."""
    procs = [subprocess.Popen(keepwell_command() + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for args in commands]
    outputs, failed = [], None
    for args, proc in zip(commands, procs):
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        with log.open("a") as f:
            f.write(f"$ keepwell {' '.join(args)}\n{out}{err}\n")
        if proc.returncode != 0 and failed is None:
            failed = f"`keepwell {' '.join(args)}` failed ({proc.returncode}):\n{out}{err}"
        outputs.append(out)
    if failed:
        raise DemoError(failed)
    return outputs


