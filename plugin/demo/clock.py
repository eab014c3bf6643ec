"""The demo's clock: real time plus an offset that the orchestrator moves forward.

The shipped rules wait days (a 14-day icebreaker, a 30-day return window, a 90-day lapse). The
demo makes that time pass in seconds: the orchestrator writes an offset to a small file, and
every process that shares the file (the demo worker, the orchestrator itself) reads it on each
call. Nothing is restarted and no production code knows about it: production Runtimes keep
``plugin.db.utcnow``.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from plugin.db import utcnow

ENV = "KEEPWELL_DEMO_CLOCK"  # names the offset file for the demo worker


class DemoClock:
    """``clock()`` is real time plus the offset stored in ``path`` (seconds; 0 when absent)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def offset(self) -> timedelta:
        try:
            return timedelta(seconds=float(self.path.read_text()))
        except (FileNotFoundError, ValueError):
            return timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset()

    def set(self, when: datetime) -> None:
        """Make it ``when`` now (time only moves forward)."""
        seconds = max(0.0, (when - utcnow()).total_seconds(), self.offset().total_seconds())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(seconds))
        os.replace(tmp, self.path)  # readers see the old or the new offset, never half of one
