"""Fault injection for the crash tests: a worker started with ``KEEPWELL_CRASH_AT=<point>`` kills
itself with SIGKILL (as when its machine dies: no cleanup, no ``finally``) the first time a drain
reaches that point. Unset in every deployment; reading one environment variable is all it costs.

The points, in the order a batch passes them (plugin.drain, plugin.batch, plugin.pipeline):
``taken`` (the batch moved to the processing list), ``decided`` (every outcome written, the
transaction not yet committed), ``committed``, ``acting`` (after the batch's first touch ran),
``acted`` (every touch ran, the batch still on the processing list), ``trimmed`` (the batch off
the processing list, before the next one).
"""
from __future__ import annotations

import os
import signal

POINTS = ("taken", "decided", "committed", "acting", "acted", "trimmed")


def point(name: str) -> None:
    if os.environ.get("KEEPWELL_CRASH_AT") == name:
        # the worker's whole process group (RQ's scheduler too) when it leads one, as `keepwell worker` does
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
