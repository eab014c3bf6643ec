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

import secrets
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from plugin.demo.processes import DemoError, free_port, run_cli, tail
from plugin.demo.services import Services

HORIZON_DAYS = 380  # every shipped rule's wait, and a year on: the reminders of occasions named at checkout
STEP_WINDOW = timedelta(hours=6)  # timers due this close together fire in one step
IDLE_TIMEOUT_S = 120.0  # a hang detector, generous for a busy 2-core machine; the demo finishes in ~15 s
SERVE_LINK_TTL_S = 3600  # `keepwell demo --serve`: how long its sign-in links open a dashboard
SHOPIFY_DOMAIN = "demo-shop.myshopify.com"
WOO_URL = "https://woo-demo.example"
CONSENT_META_KEY = "_keepwell_marketing_opt_in"
#: The demo shops' Twilio account, answered by the local SMS sink (KEEPWELL_TWILIO_API_URL).
DEMO_TWILIO_SID, DEMO_TWILIO_TOKEN, DEMO_TWILIO_FROM = "AC" + "d3" * 16, "demo-twilio-auth-token", "+14155552345"
ZOE_MOBILE = "+972 52 555 0188"  # an Israeli mobile: her texts go out in Jerusalem's daytime


def _field(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise DemoError(f"no {label!r} in the output of `keepwell shop add`:\n{output}")


class Demo(Services):
    """One run of the demo in ``workdir``; ``out`` receives progress lines."""

    # --- the whole run -------------------------------------------------------------------------

    def run(self, when_played: Callable[[dict], None] | None = None) -> dict:
        """Play the demo and stop; ``when_played(report)`` runs first, while everything still runs
        (``keepwell demo --serve`` waits there so the dashboard can be browsed)."""
        started = time.monotonic()
        previous = self._trap_sigterm()
        try:
            report = self._run()
            if when_played is not None:
                when_played(report)
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
        from plugin.sms.sink import SmsSink

        self.sms = SmsSink(self.workdir / "sms.jsonl", credentials={DEMO_TWILIO_SID: DEMO_TWILIO_TOKEN}).start()
        app_port = free_port()
        self.app_url = f"http://127.0.0.1:{app_port}"
        self.shopify_secret = secrets.token_hex(16)
        env = self.env = self._env()
        logs = self.workdir

        run_cli([["db", "upgrade"]], env, logs / "cli.log")  # first: two processes must not both create the schema
        app = self.procs.start("the web app (gunicorn)", [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", "1", "--threads", "4",
            "--graceful-timeout", "5", "--access-logfile", "-", "plugin.demo.app:create_app()"], env, logs / "app.log")
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
        run_cli([["shop", "sms", store.shop_id, "--account-sid", DEMO_TWILIO_SID, "--from", DEMO_TWILIO_FROM]
                 for store in self.stores], {**env, "KEEPWELL_SMS_AUTH_TOKEN": DEMO_TWILIO_TOKEN}, logs / "cli.log")
        self._wait_for_app(app)
        self._wait_for_worker(worker)
        self.worker, self.app = worker, app
        self._say_services()
        return self._play()

    def _referral_code(self, shop_id: str, customer_id: str) -> str | None:
        """The code Keepwell gives the customer (the shop's key is in its encrypted secrets)."""
        from plugin.engine.referral import referral_code
        from plugin.engine.ruleset import for_shop
        from plugin.shops import active_rules, referral_key

        with self.rt.sessions.begin() as session:
            rules = for_shop(active_rules(session, shop_id)[0], referral_key(session, self.rt.config, shop_id))
        return referral_code(rules.settings, shop_id, customer_id)

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
        self._texts_please(storefront)
        last = max(s.day for s in script)
        self._advance_to(self.t0 + timedelta(days=HORIZON_DAYS))
        self.out(f"  day {last:>3g} -> {HORIZON_DAYS}: time passes; {self.timers_fired} timers fired "
                 f"(delays, deferrals, lapses, occasions) in {self.steps} steps")
        return self._report(storefront)

    def _texts_please(self, storefront) -> None:
        """Zoë texts START to the shop's number and picks texts on her personal page: the events the
        inbound SMS webhook and the page push. Her anniversary reminder next year comes as a text."""
        zoe, shop = storefront.people["zoe"], self.stores[1]
        now = self.clock()
        for n, (kind, body) in enumerate((
                ("customer.consent_changed", {"customer": {"id": zoe.id, "phone": ZOE_MOBILE, "sms_consent": True}}),
                ("customer.preference_changed", {"data": {"preferred_channel": "sms"}}))):
            self.rt.handoff.push_event(shop.shop_id, {
                "id": f"{'sms-start' if n == 0 else 'page'}:{zoe.id}:{int(now.timestamp())}", "type": kind,
                "shop": shop.shop_id, "customer_id": zoe.id, "occurred_at": (now + timedelta(seconds=n)).isoformat(),
                **body})
        self._wait_idle("Zoë's text opt-in")
        self.out("  day   6  Zoë texts START to the shop's number and picks texts on her page (2 events)")

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
                                f"see {self.worker.log}:\n{tail(self.worker.log)}")
            time.sleep(0.03)

    def _idle(self) -> bool:
        from rq.registry import StartedJobRegistry
        from sqlalchemy import func, select

        from plugin.db import DecisionRow

        r, q = self.rt.redis, self.rt.queue
        for store in self.stores:
            if self.rt.handoff.pending(store.shop_id):
                return False
        if q.count or r.llen(q.intermediate_queue_key) or StartedJobRegistry(queue=q).count:
            return False
        with self.rt.sessions() as session:
            pending = session.scalar(select(func.count()).select_from(DecisionRow).where(DecisionRow.status == "pending"))
        return not pending

    def sign_in_links(self, ttl_s: int) -> list[tuple[str, str]]:
        """(store, a link that signs in to its dashboard within ``ttl_s`` seconds) per demo store."""
        from plugin.admin_auth import admin_link

        return [(s.domain, admin_link(self.rt.config, s.shop_id, ttl_s)) for s in self.stores]

    # --- the report ----------------------------------------------------------------------------

    def _report(self, storefront) -> dict:
        from plugin.demo import report as reporting
        from plugin.demo.smtp_sink import read
        from plugin.sms.sink import read as read_texts

        dead = {s.shop_id: self.rt.redis.llen(f"{self.rt.handoff.keys(s.shop_id).backlog}:dead") for s in self.stores}
        with self.rt.sessions() as session:
            shops = reporting.gather(session, t0=self.t0, stores=self.stores, sandbox=self.sandbox,
                                     outbox=read(self.workdir / "mail.jsonl"), storefront=storefront, dead_letters=dead,
                                     texts=read_texts(self.workdir / "sms.jsonl"))
        return {"shops": shops, "days": HORIZON_DAYS, "timers_fired": self.timers_fired, "steps": self.steps,
                "workdir": str(self.workdir)}


def main(workdir: Path, out: Callable[[str], None] = print, json_path: Path | None = None,
         database_url: str | None = None, serve: bool = False) -> dict:
    """Run the demo and print its report; returns the report (DemoError when it could not run).
    With ``serve`` the demo keeps running after its report, with a sign-in link to each store's
    dashboard, until interrupted (Ctrl-C)."""
    import json

    from plugin.demo.report import format_report, totals

    out("Keepwell live demo: a Shopify and a WooCommerce store, a year of customers, played live")
    demo = Demo(workdir, out, database_url)

    def keep_serving(report: dict) -> None:
        out(format_report(report))
        out("")
        out("The dashboard of each demo store (sign-in links valid for an hour; the session then lasts):")
        for store, link in demo.sign_in_links(SERVE_LINK_TTL_S):
            out(f"  {store:<28} {link}")
        out("The demo keeps running: press Ctrl-C to stop it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            out("stopping the demo")

    report = demo.run(keep_serving if serve else None)
    if not serve:
        out(format_report(report))
    t = totals(report)
    out("")
    out(f"{t['coupons']} coupons created, {t['emails']} emails and {t['texts']} texts delivered, "
        f"{t['suppressed']} decisions suppressed, "
        f"{t['duplicates']} duplicate deliveries answered \"duplicate\"; demo finished in {report['elapsed_s']} s, "
        f"every process it started is stopped.")
    if not serve:
        out("To browse these stores' dashboards: `keepwell demo --serve` plays the same demo, keeps it running and "
            "ends with a sign-in link to each.")
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2, default=str))
    return report


__all__ = ["Demo", "DemoError", "main"]
