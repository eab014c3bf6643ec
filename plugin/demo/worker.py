"""``keepwell worker`` on demo time: ``python -m plugin.demo.worker``.

It runs the very ``keepwell worker`` command, after installing the Runtime its jobs use with the
demo clock (the file named by KEEPWELL_DEMO_CLOCK), so every decision, timer and coupon expiry
is computed in demo time while everything else is the production worker.
"""
from __future__ import annotations

import os

from plugin import runtime
from plugin.config import Config
from plugin.db import sessions
from plugin.demo.clock import ENV, DemoClock
from plugin.pipeline import Runtime


def main() -> None:
    config = Config.from_env()
    clock = DemoClock(os.environ[ENV])
    runtime.install(Runtime(config=config, sessions=sessions(config.database_url),
                            redis=runtime.redis_client(config.redis_url), clock=clock))
    from plugin.cli import main as keepwell

    keepwell(["worker"], prog_name="keepwell")


if __name__ == "__main__":
    main()
