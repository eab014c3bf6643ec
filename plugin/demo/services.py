"""The services a demo run starts and stops: its work folder, Redis (private, or REDIS_URL under a
prefix of its own), the environment of its processes, and waiting for the web app and the worker."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import requests

from plugin.demo.clock import ENV as CLOCK_ENV, DemoClock
from plugin.demo.processes import Child, DemoError, Processes, free_port, tail

START_TIMEOUT_S = 120.0  # a hang detector, generous for a busy 2-core machine
MARKER = ".keepwell-demo"
INSTALL_REDIS = ("redis-server is not installed and REDIS_URL is not set. Install it "
                 "(Debian/Ubuntu: `sudo apt-get install -y redis-server`, or run `make demo` as root, which "
                 "installs it; macOS: `brew install redis`), or point the demo at a Redis you run: "
                 "REDIS_URL=redis://HOST:6379/0 (the demo only writes keys under its own prefix and deletes them).")


class Services:
    """The services of one demo run in ``workdir``; ``out`` receives progress lines."""

    def __init__(self, workdir: Path, out: Callable[[str], None] = print, database_url: str | None = None):
        self.workdir = Path(workdir).resolve()
        self.stores = []
        self.database_url = database_url
        self.out = out
        self.procs = Processes()
        self.sandbox_server = None
        self.smtp = None
        self.sms = None  # the local SMS sink (Twilio's API)
        self.redis_url = None
        self.shared_redis = False
        self.queue = "keepwell-demo"
        self.rq_prefix = None

    # --- starting -------------------------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker = self.workdir / MARKER
        if any(self.workdir.iterdir()) and not marker.exists():
            raise DemoError(f"{self.workdir} is not empty and holds no earlier demo: the demo empties its work "
                            f"folder, so give it an empty or new one (--workdir)")
        for item in self.workdir.iterdir():  # a fresh demo every time
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        marker.write_text("A `keepwell demo` work folder: emptied at the start of every demo run.\n")
        self.clock = DemoClock(self.workdir / "clock")
        self.clock.path.write_text("0")

    def _start_redis(self) -> None:
        url = os.environ.get("REDIS_URL")
        if url:
            self.shared_redis = True
            self.redis_url = url
            self.queue = f"keepwell-demo-{uuid.uuid4().hex[:8]}"
            # RQ (>= 3) keeps its own keys under this prefix too, so nothing of the demo mixes with
            # the keys of anything else in that database. RQ reads it once, when first imported.
            if "rq" in sys.modules:
                self.rq_prefix = getattr(sys.modules.get("rq.defaults"), "RQ_KEY_PREFIX", "rq")
            else:
                self.rq_prefix = os.environ["RQ_KEY_PREFIX"] = f"{self.queue}:rq"
            self._ping(url, f"REDIS_URL={url} is not reachable")
            self.redis_note = f"REDIS_URL {url}, keys under {self.queue}:* (deleted afterwards)"
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise DemoError(INSTALL_REDIS)
        port = free_port()
        data = self.workdir / "redis"
        data.mkdir()
        self.procs.start("redis-server", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no", "--dir", str(data)], dict(os.environ),
                         self.workdir / "redis.log", tier=0)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self._ping(self.redis_url, "the private redis-server did not start", child=self.procs.children[-1])
        self.redis_note = f"private redis-server on 127.0.0.1:{port} (pid {self.procs.children[-1].proc.pid})"

    def _ping(self, url: str, problem: str, child: Child | None = None) -> None:
        from redis import Redis

        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis.from_url(url, socket_connect_timeout=0.5).ping():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                error = exc
            if child is not None:
                self.procs.check(child)
            if time.monotonic() > deadline:
                raise DemoError(f"{problem}: {error}")
            time.sleep(0.05)

    def _env(self) -> dict:
        from plugin.demo import database

        env = dict(os.environ)
        env.update({
            "DATABASE_URL": database.choose(self.workdir, self.database_url),
            "REDIS_URL": self.redis_url,
            "SMTP_URL": self.smtp.url,
            "KEEPWELL_TWILIO_API_URL": self.sms.url,
            "SHOPIFY_API_KEY": "keepwell-demo",
            "SHOPIFY_API_SECRET": self.shopify_secret,
            "KEEPWELL_SECRET_KEY": secrets.token_hex(32),
            "KEEPWELL_APP_URL": self.app_url,
            "KEEPWELL_MAIL_FROM": "Keepwell Demo Roasters <hello@demo-roasters.example>",
            "KEEPWELL_QUEUE": self.queue,
            "KEEPWELL_ALLOW_PRIVATE_STORES": "1",  # the sandbox stores listen on loopback
            CLOCK_ENV: str(self.clock.path),
            "PYTHONUNBUFFERED": "1",
        })
        if self.rq_prefix:
            env["RQ_KEY_PREFIX"] = self.rq_prefix  # the prefix this process's RQ uses, too
        return env

    def _wait_for_app(self, app: Child) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self.procs.check(app)
            try:
                if requests.get(f"{self.app_url}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the web app did not answer at {self.app_url} in {START_TIMEOUT_S:.0f} s; "
                                f"see {app.log}:\n{tail(app.log)}")
            time.sleep(0.1)

    def _wait_for_worker(self, worker: Child) -> None:
        from rq import Worker

        from plugin.config import Config
        from plugin.db import sessions
        from plugin.pipeline import Runtime
        from plugin.runtime import redis_client

        config = Config.from_env(self.env)
        self.rt = Runtime(config=config, sessions=sessions(config.database_url), redis=redis_client(config.redis_url),
                          clock=self.clock)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not Worker.all(queue=self.rt.queue):
            self.procs.check(worker)
            if time.monotonic() > deadline:
                raise DemoError(f"the worker did not start in {START_TIMEOUT_S:.0f} s; see {worker.log}:\n"
                                f"{tail(worker.log)}")
            time.sleep(0.1)

    def _say_services(self) -> None:
        from plugin.demo import database

        rel = os.path.relpath(self.workdir) if self.workdir.is_relative_to(Path.cwd()) else str(self.workdir)
        self.out(f"  redis      {self.redis_note}")
        self.out(f"  database   {database.describe(self.env['DATABASE_URL'])}")
        self.out(f"  web app    gunicorn at {self.app_url} (pid {self.app.proc.pid}), log {rel}/app.log")
        self.out(f"  worker     keepwell worker (pid {self.worker.proc.pid}) on demo time, log {rel}/worker.log")
        self.out(f"  smtp sink  {self.smtp.url}, outbox {rel}/mail.jsonl")
        self.out(f"  sms sink   Twilio's Messages API at {self.sms.url}, outbox {rel}/sms.jsonl")
        self.out(f"  sandbox    Shopify GraphQL + WooCommerce REST at {self.sandbox_server.url}")
        for s in self.stores:
            self.out(f"  shop       {s.platform:<12} {s.domain:<28} {s.shop_id}  webhooks -> {s.webhook_url}")

    # --- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything this demo started; safe to call at any point, and twice."""
        try:
            self.procs.stop_all()
        finally:
            for part in (self.sandbox_server, self.smtp, self.sms):
                try:
                    if part is not None:
                        part.stop()
                except Exception:  # noqa: BLE001 - stopping must go on
                    pass
            self.sandbox_server = self.smtp = self.sms = None
            if self.shared_redis:
                self._forget_redis_keys()
                self.shared_redis = False

    def _forget_redis_keys(self) -> None:
        """Delete this run's keys from the Redis at REDIS_URL: all of them carry its unique prefix."""
        from redis import Redis

        try:
            r = Redis.from_url(self.redis_url, socket_connect_timeout=2)
            doomed = list(r.scan_iter(match=f"{self.queue}*", count=500))
            from rq import defaults

            if getattr(defaults, "RQ_KEY_PREFIX", "rq") == "rq":  # an RQ that ignores RQ_KEY_PREFIX (< 3)
                doomed += r.scan_iter(match=f"rq:*{self.queue}*", count=500)
                doomed += [k for k in r.scan_iter(match="rq:job:*", count=500)
                           if r.hget(k, "origin") in (self.queue.encode(), self.queue)]
                r.srem("rq:queues", f"rq:queue:{self.queue}")
            for i in range(0, len(doomed), 500):
                r.delete(*doomed[i:i + 500])
        except Exception as exc:  # noqa: BLE001 - report, do not mask the demo's own outcome
            self.out(f"warning: could not delete the demo's keys ({self.queue}*) from {self.redis_url}: {exc}")

    def _trap_sigterm(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def interrupted(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        return signal.signal(signal.SIGTERM, interrupted)

    @staticmethod
    def _restore_sigterm(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
