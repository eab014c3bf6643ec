"""``keepwell demo``: the whole product, live, on embedded defaults, in well under a minute.

It starts Redis (a private redis-server unless REDIS_URL is set), the web app (gunicorn), a
worker (``keepwell worker`` on demo time, see plugin/demo/worker.py), an SMTP sink and a store
API sandbox; registers a Shopify and a WooCommerce demo shop with ``keepwell shop add``; plays
the storefront's story; makes a hundred days pass by moving the demo clock from one due timer to
the next (firing them with ``plugin.pipeline.sweep_timers``) and waits after every step until the
backlogs are drained and no effect is pending; then reports what happened and stops every
process it started, also on errors and Ctrl-C.

Everything lives in the work folder (var/demo by default, emptied first): the SQLite database,
the outbox, the logs; ``--database-url`` puts the data in an empty database of your own instead
(PostgreSQL), with the same report. With REDIS_URL set, the demo uses that database under a key prefix of its
own (queue, backlogs and RQ's keys) and deletes those keys afterwards.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import requests

from plugin.demo.clock import ENV as CLOCK_ENV, DemoClock
from plugin.errors import KeepwellError

HORIZON_DAYS = 380  # every shipped rule's wait, and a year on: the reminders of occasions named at checkout
STEP_WINDOW = timedelta(hours=6)  # timers due this close together fire in one step
# Hang detectors, generous for a busy 2-core machine; the demo finishes in ~15 s.
IDLE_TIMEOUT_S = 120.0
START_TIMEOUT_S = 120.0
SHOPIFY_DOMAIN = "demo-shop.myshopify.com"
WOO_URL = "https://woo-demo.example"
CONSENT_META_KEY = "_keepwell_marketing_opt_in"
MARKER = ".keepwell-demo"
INSTALL_REDIS = ("redis-server is not installed and REDIS_URL is not set. Install it "
                 "(Debian/Ubuntu: `sudo apt-get install -y redis-server`, or run `make demo` as root, which "
                 "installs it; macOS: `brew install redis`), or point the demo at a Redis you run: "
                 "REDIS_URL=redis://HOST:6379/0 (the demo only writes keys under its own prefix and deletes them).")


class DemoError(KeepwellError):
    """The demo could not run; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keepwell() -> list[str]:
    """The `keepwell` command of this very installation."""
    script = Path(sys.executable).with_name("keepwell")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plugin.cli"]


def _tail(path: Path, lines: int = 15) -> str:
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
                            f"{_tail(child.log)}")

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
    procs = [subprocess.Popen(_keepwell() + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def _field(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise DemoError(f"no {label!r} in the output of `keepwell shop add`:\n{output}")


class Demo:
    """One run of the demo in ``workdir``; ``out`` receives progress lines."""

    def __init__(self, workdir: Path, out: Callable[[str], None] = print, database_url: str | None = None):
        self.workdir = Path(workdir).resolve()
        self.database_url = database_url
        self.out = out
        self.procs = Processes()
        self.sandbox_server = None
        self.smtp = None
        self.redis_url = None
        self.shared_redis = False
        self.queue = "keepwell-demo"
        self.rq_prefix = None

    # --- the whole run -------------------------------------------------------------------------

    def run(self) -> dict:
        started = time.monotonic()
        previous = self._trap_sigterm()
        try:
            report = self._run()
        finally:
            self.stop()
            self._restore_sigterm(previous)
        report["elapsed_s"] = round(time.monotonic() - started, 1)
        return report

    def _run(self) -> dict:
        from plugin.demo import database

        if self.database_url:
            database.check_empty(self.database_url)
        self._prepare_workdir()
        self._start_redis()
        from plugin.demo.sandbox import Server, StoreSandbox
        from plugin.demo.smtp_sink import SMTPSink

        token, ck, cs = f"shpat_{secrets.token_hex(16)}", f"ck_{secrets.token_hex(20)}", f"cs_{secrets.token_hex(20)}"
        self.sandbox = StoreSandbox(token, ck, cs)
        self.sandbox_server = Server(self.sandbox).start()
        self.smtp = SMTPSink(self.workdir / "mail.jsonl", port=free_port()).start()
        app_port = free_port()
        self.app_url = f"http://127.0.0.1:{app_port}"
        self.shopify_secret = secrets.token_hex(16)
        env = self.env = self._env()
        logs = self.workdir

        run_cli([["db", "upgrade"]], env, logs / "cli.log")  # first: two processes must not both create the schema
        app = self.procs.start("the web app (gunicorn)", [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", "1", "--threads", "4",
            "--graceful-timeout", "5", "--access-logfile", "-", "plugin.app:create_app()"], env, logs / "app.log")
        worker = self.procs.start("the worker (keepwell worker)", [sys.executable, "-m", "plugin.demo.worker"], env,
                                  logs / "worker.log")
        shopify_out, woo_out = run_cli([
            ["shop", "add", "--platform", "shopify", "--domain", SHOPIFY_DOMAIN, "--token", token,
             "--api-url", self.sandbox_server.url],
            ["shop", "add", "--platform", "woocommerce", "--url", WOO_URL, "--key", ck, "--secret", cs,
             "--api-url", self.sandbox_server.url, "--consent-meta-key", CONSENT_META_KEY],
        ], env, logs / "cli.log")
        from plugin.demo.storefront import StoreInfo

        self.stores = [
            StoreInfo("shopify", _field(shopify_out, "shop id"), SHOPIFY_DOMAIN, _field(shopify_out, "webhook URL"),
                      self.shopify_secret),
            StoreInfo("woocommerce", _field(woo_out, "shop id"), WOO_URL, _field(woo_out, "webhook URL"),
                      _field(woo_out, "webhook secret")),
        ]
        self._wait_for_app(app)
        self._wait_for_worker(worker)
        self.worker, self.app = worker, app
        self._say_services()
        return self._play()

    # --- services ------------------------------------------------------------------------------

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
                                f"see {app.log}:\n{_tail(app.log)}")
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
                                f"{_tail(worker.log)}")
            time.sleep(0.1)

    def _referral_code(self, shop_id: str, customer_id: str) -> str | None:
        """The code Keepwell gives the customer (the shop's key is in its encrypted secrets)."""
        from plugin.engine.referral import referral_code
        from plugin.engine.ruleset import for_shop
        from plugin.shops import active_rules, referral_key

        with self.rt.sessions.begin() as session:
            rules = for_shop(active_rules(session, shop_id)[0], referral_key(session, self.rt.config, shop_id))
        return referral_code(rules.settings, shop_id, customer_id)

    def _say_services(self) -> None:
        from plugin.demo import database

        rel = os.path.relpath(self.workdir) if self.workdir.is_relative_to(Path.cwd()) else str(self.workdir)
        self.out(f"  redis      {self.redis_note}")
        self.out(f"  database   {database.describe(self.env['DATABASE_URL'])}")
        self.out(f"  web app    gunicorn at {self.app_url} (pid {self.app.proc.pid}), log {rel}/app.log")
        self.out(f"  worker     keepwell worker (pid {self.worker.proc.pid}) on demo time, log {rel}/worker.log")
        self.out(f"  smtp sink  {self.smtp.url}, outbox {rel}/mail.jsonl")
        self.out(f"  sandbox    Shopify GraphQL + WooCommerce REST at {self.sandbox_server.url}")
        for s in self.stores:
            self.out(f"  shop       {s.platform:<12} {s.domain:<28} {s.shop_id}  webhooks -> {s.webhook_url}")

    # --- the story and the passing of time -----------------------------------------------------

    def _play(self) -> dict:
        from plugin.demo.storefront import Storefront

        storefront = Storefront(self.stores[0], self.stores[1], self.shopify_secret, self.clock, self._referral_code,
                                sandbox=self.sandbox)
        self.t0 = self.clock()
        self.timers_fired = self.steps = 0
        self.out("")
        self.out("storefront (demo days; a day passes in well under a second):")
        script = storefront.script()
        for step in script:
            self._advance_to(self.t0 + timedelta(days=step.day))
            before = len(storefront.deliveries)
            step.play()
            self._wait_idle(f"day {step.day:g}")
            self.out(f"  day {step.day:>3g}  {step.title} ({len(storefront.deliveries) - before} webhooks)")
        last = max(s.day for s in script)
        self._advance_to(self.t0 + timedelta(days=HORIZON_DAYS))
        self.out(f"  day {last:>3g} -> {HORIZON_DAYS}: time passes; {self.timers_fired} timers fired "
                 f"(delays, deferrals, lapses, occasions) in {self.steps} steps")
        return self._report(storefront)

    def _advance_to(self, when: datetime) -> None:
        """Fire every timer due before ``when``, a step at a time in wake order, then set the clock."""
        from sqlalchemy import func, select

        from plugin.db import TimerRow
        from plugin.pipeline import sweep_timers

        while True:
            with self.rt.sessions() as session:
                due = session.scalar(select(func.min(TimerRow.wake_at)).where(TimerRow.status == "pending"))
            if due is None:
                break
            if due > when:
                break
            self.clock.set(min(due + STEP_WINDOW, when))
            fired = sweep_timers(self.rt, grace=timedelta(0))
            if not fired:
                raise DemoError("a due timer did not fire")  # cannot happen: pending and due means it fires
            self.timers_fired += fired
            self.steps += 1
            self._wait_idle(f"timers due by day {(self.clock() - self.t0).days}")
        self.clock.set(when)

    def _wait_idle(self, what: str) -> None:
        """Until every backlog is drained, no job is queued or running and no effect is pending."""
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        quiet = 0
        while quiet < 2:  # two quiet looks in a row: nothing was between two of the places we look
            self.procs.check(self.worker)
            self.procs.check(self.app)
            quiet = quiet + 1 if self._idle() else 0
            if time.monotonic() > deadline:
                raise DemoError(f"the worker did not finish the work of {what} in {IDLE_TIMEOUT_S:.0f} s; "
                                f"see {self.worker.log}:\n{_tail(self.worker.log)}")
            time.sleep(0.03)

    def _idle(self) -> bool:
        from rq.registry import StartedJobRegistry
        from sqlalchemy import func, select

        from plugin.db import DecisionRow

        r, q = self.rt.redis, self.rt.queue
        for store in self.stores:
            keys = self.rt.handoff.keys(store.shop_id)
            if r.llen(keys.backlog) or r.llen(keys.processing):
                return False
        if q.count or r.llen(q.intermediate_queue_key) or StartedJobRegistry(queue=q).count:
            return False
        with self.rt.sessions() as session:
            pending = session.scalar(select(func.count()).select_from(DecisionRow).where(DecisionRow.status == "pending"))
        return not pending

    # --- the report ----------------------------------------------------------------------------

    def _report(self, storefront) -> dict:
        from plugin.demo import report as reporting
        from plugin.demo.smtp_sink import read

        dead = {s.shop_id: self.rt.redis.llen(f"{self.rt.handoff.keys(s.shop_id).backlog}:dead") for s in self.stores}
        with self.rt.sessions() as session:
            shops = reporting.gather(session, t0=self.t0, stores=self.stores, sandbox=self.sandbox,
                                     outbox=read(self.workdir / "mail.jsonl"), storefront=storefront, dead_letters=dead)
        return {"shops": shops, "days": HORIZON_DAYS, "timers_fired": self.timers_fired, "steps": self.steps,
                "workdir": str(self.workdir)}

    # --- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything this demo started; safe to call at any point, and twice."""
        try:
            self.procs.stop_all()
        finally:
            for part in (self.sandbox_server, self.smtp):
                try:
                    if part is not None:
                        part.stop()
                except Exception:  # noqa: BLE001 - stopping must go on
                    pass
            self.sandbox_server = self.smtp = None
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


def main(workdir: Path, out: Callable[[str], None] = print, json_path: Path | None = None,
         database_url: str | None = None) -> dict:
    """Run the demo and print its report; returns the report (DemoError when it could not run)."""
    import json

    from plugin.demo.report import format_report, totals

    out("Keepwell live demo: a Shopify and a WooCommerce store, 100 days of customers, played live")
    demo = Demo(workdir, out, database_url)
    report = demo.run()
    out(format_report(report))
    t = totals(report)
    out("")
    out(f"{t['coupons']} coupons created, {t['emails']} emails delivered, {t['suppressed']} decisions suppressed, "
        f"{t['duplicates']} duplicate deliveries answered \"duplicate\"; demo finished in {report['elapsed_s']} s, "
        f"every process it started is stopped.")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    return report
