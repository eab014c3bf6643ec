"""The web app on demo time: ``gunicorn 'plugin.demo.app:create_app()'``.

The production app, whose dashboard reads the clock in the file named by KEEPWELL_DEMO_CLOCK, so
its "last 30 days" and "waiting until" are the demo's days, as the demo worker's decisions are.
"""
from __future__ import annotations

import os

from plugin.app import create_app as production_app
from plugin.demo.clock import ENV, DemoClock


def create_app():
    app = production_app()
    app.config["KEEPWELL_CLOCK"] = DemoClock(os.environ[ENV])
    return app
