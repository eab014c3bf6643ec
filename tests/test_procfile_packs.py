"""Every shipped rule pack on both platforms through the Procfile's worker, on PostgreSQL and on
SQLite: one `keepwell worker` process per database serves a Shopify and a WooCommerce shop for
95 days of their customers' lives. The worker keeps demo time (plugin/demo/worker.py: the very
`keepwell worker` command with the clock the demo moves), so the packs' days-long delays, lapses
and occasions pass in seconds; the test moves that clock from one due timer to the next and
fires them as the minutely tick does. Webhooks go through the real app (in this process), coupons
and tags to the store sandbox (a real HTTP server on 127.0.0.1), emails to a real SMTP server.

What the platforms' data cannot feed: Shopify customers have no birthday field (no birthday
touch on Shopify), and neither connector fills ``customer.anniversary`` (no anniversary touch).
Every other enabled shipped rule must touch its customer on each platform (Cleo's belated gift
for her mother's birthday is reminded of before the next one); a rule added to rules/ fails here
until the story gives it a customer.
"""
from __future__ import annotations

import secrets
import types
from datetime import date, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from conftest import Mailbox, free_port
from live import (finish, gmt, live_redis, outside_holdout, shopify_consent, shopify_customer, shopify_order, start,
                  woo_customer, woo_order)
from procfile import ON_DEMO_TIME, procfile_worker, trouble
from plugin import shops as shops_module
from plugin.db import DecisionRow, EffectRow, TimerRow
from plugin.demo.clock import ENV as CLOCK_ENV, DemoClock
from plugin.demo.sandbox import Server, StoreSandbox
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import Settings
from plugin.shops import referral_key
from plugin.pipeline import sweep_timers
from plugin.rulefile import load_rules

TOKEN, WOO_KEY, WOO_SECRET = "shpat_packs", "ck_packs", "cs_packs"
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
HORIZON = 95 * DAY  # past the 90-day lapse of every customer's last order
SHIPPED = {rule_id for rule_id, rule in load_rules().by_id.items() if rule.enabled}
NOT_FED = {"shopify": {"birthday", "anniversary"}, "woocommerce": {"anniversary"}}
COLLECTIONS = {"shopify": {"coffee": 841564290, "brewing": 841564295}, "woocommerce": {"coffee": 15, "brewing": 9}}
COFFEE = {"shopify": 9182736450918273001, "woocommerce": 93}  # a bag of beans, in the coffee collection
MACHINE = {"shopify": 9182736450918273002, "woocommerce": 94}  # in no collection


class Store:
    """One shop of the story: its customers' webhooks, built from the platforms' samples."""

    def __init__(self, live, sandbox, index: int, platform: str):
        self.live, self.sandbox, self.platform = live, sandbox, platform
        fixed = types.SimpleNamespace(token_hex=lambda n: f"{index:0{2 * n}x}", token_urlsafe=secrets.token_urlsafe)
        with pytest.MonkeyPatch.context() as mp:  # the same shop ids on every database: holdouts compare
            mp.setattr(shops_module, "token", fixed)
            if platform == "shopify":
                self.domain = f"packs-{index}.myshopify.com"
                self.shop_id, _ = live.add_shop("shopify", self.domain, access_token=TOKEN, api_url=sandbox.url,
                                                settings={"name": "Keepwell Coffee"})
            else:
                self.domain = f"https://packs-{index}.example"
                self.shop_id, self.secret = live.add_shop(
                    "woocommerce", self.domain, consumer_key=WOO_KEY, consumer_secret=WOO_SECRET, api_url=sandbox.url,
                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "birthday_meta_key": "birthday",
                              "name": "Keepwell Coffee"})
        for handle, collection_id in COLLECTIONS[platform].items():
            sandbox.add_collection(platform, handle, collection_id)
        sandbox.add_product(platform, str(COFFEE[platform]), ["coffee"])
        sandbox.add_product(platform, str(MACHINE[platform]), [])
        first = 7421852987654321000 if platform == "shopify" else 25
        # Ana meets every delayed pack: none of their control groups may hold her out
        self.ids = {"ana": outside_holdout(self.shop_id, first, "icebreaker", "cross_sell_brewing", "winback")}
        for n, key in enumerate(("ben", "cleo", "dan", "eli", "bea"), start=1):
            self.ids[key] = str(int(first) + 1000 * n)
        self.orders = 0

    def referral_code(self, key: str) -> str:
        """The code Keepwell gives the customer (keyed with the shop's referral key)."""
        with self.live.rt.sessions.begin() as session:
            key_of_shop = referral_key(session, self.live.config, self.shop_id)
        return referral_code(Settings(referral_key=key_of_shop), self.shop_id, self.ids[key])

    def email(self, key: str) -> str:
        return f"{key}@example.com"

    def _post(self, topic: str, payload: dict) -> None:
        if self.platform == "shopify":
            r = self.live.post_shopify(topic, payload, self.domain)
        else:
            r = self.live.post_woocommerce(self.shop_id, self.secret, topic, payload)
        assert r.status_code == 202, (topic, r.status_code, r.data)

    def _woo_record(self, key: str, at: datetime, consent: bool, birthday: date | None) -> dict:
        c = woo_customer(int(self.ids[key]), email=self.email(key), first_name=key.title(),
                         consent="yes" if consent else "no", modified=gmt(at))
        c["billing"]["email"], c["billing"]["first_name"] = self.email(key), key.title()
        if birthday:
            c["meta_data"].append({"id": 2, "key": "birthday", "value": birthday.isoformat()})
        return c

    def signup(self, key: str, at: datetime, consent: bool = True, birthday: date | None = None) -> None:
        cid = self.ids[key]
        if self.platform == "shopify":  # no birthday field on Shopify customers
            record = shopify_customer(cid, at, email=self.email(key), first_name=key.title())
            self.sandbox.add_customer("shopify", cid, record)
            self._post("customers/create", record)
            if consent:
                self.opt_in(key, at + timedelta(seconds=2))
        else:
            record = self._woo_record(key, at, consent, birthday)
            self.sandbox.add_customer("woocommerce", cid, record)
            self._post("customer.created", record)

    def opt_in(self, key: str, at: datetime) -> None:
        if self.platform == "shopify":
            self._post("customers_email_marketing_consent/update",
                       shopify_consent(self.ids[key], at, email=self.email(key)))
        else:
            record = self._woo_record(key, at, True, None)
            self.sandbox.add_customer("woocommerce", self.ids[key], record)
            self._post("customer.updated", record)

    def order(self, key: str, at: datetime, total: str, product: dict, code: str | None = None,
              consent: bool = True, occasion: dict | None = None) -> None:
        """A paid order; ``consent``: the buyer ticked the checkout's marketing box; ``occasion``:
        the answers to the occasion question (Shopify cart attributes, the WordPress plugin's meta)."""
        self.orders += 1
        cid, order_id = self.ids[key], 5_000_000 + self.orders
        if self.platform == "shopify":
            self.sandbox.add_order("shopify", str(order_id), cid)
            o = shopify_order(order_id, cid, at, total=total, email=self.email(key), first_name=key.title(),
                              codes=[code] if code else (), accepts_marketing=consent, product_id=product["shopify"])
            o["note_attributes"] = [{"name": f"keepwell_{k}", "value": v} for k, v in (occasion or {}).items()]
            self._post("orders/paid", o)
        else:
            o = woo_order(order_id, int(cid), email=self.email(key), total=total, modified=gmt(at),
                          coupons=[code.lower()] if code else (), consent="yes" if consent else "no")
            o["billing"]["first_name"] = key.title()
            o["line_items"][0]["product_id"] = product["woocommerce"]
            o["meta_data"] += [{"id": 700 + n, "key": f"_keepwell_{k}", "value": v}
                               for n, (k, v) in enumerate((occasion or {}).items())]
            self._post("order.created", o)

    def story(self, t0: datetime) -> list[tuple[datetime, callable]]:
        """(when, what) of this shop's customers; the packs' timers do the rest."""
        birthday = next(d for d in (t0.date() + timedelta(days=20 + i) for i in range(2)) if (d.month, d.day) != (2, 29))
        return [
            (t0, lambda: self.signup("ana", t0)),  # welcome an hour later
            (t0, lambda: self.signup("ben", t0, consent=False)),  # no welcome...
            (t0, lambda: self.signup("bea", t0, birthday=birthday.replace(year=1990))),  # birthday (WooCommerce)
            # referral invite (2 days), cross-sell (3 days, deferred by the cap), icebreaker (14 days),
            # winback (90 days)
            (t0 + 2 * HOUR, lambda: self.order("ana", t0 + 2 * HOUR, "120.00", COFFEE)),
            (t0 + DAY, lambda: self.signup("cleo", t0 + DAY)),
            # gold; and a belated gift for her mother's birthday, to be reminded of a week before the next one
            (t0 + DAY + 2 * HOUR, lambda: self.order("cleo", t0 + DAY + 2 * HOUR, "540.00", MACHINE, occasion={
                "occasion": "birthday", "occasion_date": (t0 - 300 * DAY).date().isoformat(),
                "occasion_for": "Mom", "occasion_remind": "yes"})),
            (t0 + DAY + 2 * HOUR, lambda: self.signup("dan", t0 + DAY + 2 * HOUR, consent=False)),
            (t0 + DAY + 3 * HOUR, lambda: self.order("dan", t0 + DAY + 3 * HOUR, "260.00", MACHINE,
                                                          consent=False)),  # silver
            (t0 + 2 * DAY + 5 * HOUR, lambda: self.opt_in("ben", t0 + 2 * DAY + 5 * HOUR)),  # ...the opt-in welcome
            (t0 + 3 * DAY + 4 * HOUR, lambda: self.signup("eli", t0 + 3 * DAY + 4 * HOUR)),
            # Eli's first order with Ana's code: Ana's reward once the 30-day return window is over
            (t0 + 3 * DAY + 6 * HOUR, lambda: self.order("eli", t0 + 3 * DAY + 6 * HOUR, "65.00", MACHINE,
                                                          code=self.referral_code("ana"))),
        ]


def next_timer(live, shop_ids) -> datetime | None:
    with live.rt.sessions() as session:
        return session.scalar(select(func.min(TimerRow.wake_at)).where(
            TimerRow.shop_id.in_(shop_ids), TimerRow.status == "pending"))


def play(live, sandbox, mailbox, tmp_path) -> dict:
    clock = DemoClock(tmp_path / "clock")
    live.rt.clock = clock  # the tick's sweep, run here, keeps the worker's time
    stores = [Store(live, sandbox, 100, "shopify"), Store(live, sandbox, 101, "woocommerce")]
    ids = [s.shop_id for s in stores]
    t0 = clock().replace(microsecond=0)
    actions = sorted((at, n, act) for n, (at, act) in enumerate(a for s in stores for a in s.story(t0)))
    steps = 0
    with procfile_worker(live, tmp_path / "worker.log", ON_DEMO_TIME, {CLOCK_ENV: str(clock.path)}) as worker:
        while True:
            due = [t for t in (actions[0][0] if actions else None, next_timer(live, ids)) if t is not None]
            if not due or min(due) > t0 + HORIZON:
                break
            now = min(due) + timedelta(minutes=1)
            clock.set(now)
            while actions and actions[0][0] <= now:
                actions.pop(0)[2]()
            sweep_timers(live.rt, grace=timedelta(0))
            worker.wait_idle(ids)
            steps += 1
        assert trouble(live, ids) == {}, worker.output()
        log = worker.output()
    assert "Traceback" not in log, log
    return {"stores": stores, "steps": steps, "ledger": ledger(live, stores, sandbox, mailbox)}


def prefix(code: str) -> str:
    """WELCOME-7Q2M... -> WELCOME; a referral code (REF3F9K2A7) -> REF."""
    code = code.upper()
    return code.split("-")[0] if "-" in code else code[:3]


def ledger(live, stores, sandbox, mailbox) -> dict:
    """What the story decided and did, in terms that do not depend on the moment it ran (decision
    keys and codes carry times: a deferral's key its wake time)."""
    who = {(s.shop_id, cid): (s.platform, key) for s in stores for key, cid in s.ids.items()}
    with live.rt.sessions() as session:
        decisions = session.scalars(select(DecisionRow).where(DecisionRow.shop_id.in_([s.shop_id for s in stores])))
        rows = {d.key: d for d in decisions}
        effects = session.scalars(select(EffectRow).where(EffectRow.decision_key.in_(list(rows)))).all()
    by_decision: dict[str, list] = {}
    for e in effects:
        by_decision.setdefault(e.decision_key, []).append((e.type, e.status, e.error))
    return {
        "decisions": sorted((*who[(d.shop_id, d.customer_id)], d.rule_id, d.kind, d.reason or "", d.status,
                             tuple(sorted(by_decision.get(d.key, ())))) for d in rows.values()),
        "coupons": sorted((c["platform"], prefix(c["code"]), c["discount"], c["for"] != "anyone") for c in sandbox.coupons),
        "tags": {p: sorted((who[(s.shop_id, cid)][1], tuple(t)) for s in stores if s.platform == p
                           for cid, t in tags.items()) for p, tags in sandbox.tags.items()},
        "emails": sorted((m["To"].addresses[0].addr_spec, str(m["Subject"])) for m in mailbox.messages),
    }


@pytest.fixture(scope="module")
def played(redis_server, postgres_url, tmp_path_factory):
    """played(database) -> the story's result on that database, played once per module."""
    results: dict[str, dict] = {}

    def on(database: str) -> dict:
        if database not in results:
            tmp = tmp_path_factory.mktemp(f"packs-{database}")
            url = postgres_url if database == "postgresql" else f"sqlite:///{tmp}/keepwell.db"
            mailbox, port = Mailbox(), free_port()
            smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
            smtp.start()
            mailbox.url = f"smtp://127.0.0.1:{port}"
            sandbox = StoreSandbox(TOKEN, WOO_KEY, WOO_SECRET)
            server = Server(sandbox).start()
            sandbox.url = server.url
            live = start(live_redis(redis_server), url, mailbox)
            try:
                results[database] = play(live, sandbox, mailbox, tmp)
            finally:
                finish(live)
                server.stop()
                smtp.stop()
        return results[database]

    return on


SUBJECTS = {
    ("ana", "welcome"): "Welcome, Ana! Here is 10% off",
    ("ana", "referral_invite"): "Give 10%, get a thank-you",
    ("ana", "cross_sell_brewing"): "Brew it better: 10% off brewing gear",
    ("ana", "icebreaker"): "Ana, 15% off your next order",
    ("ana", "referral_reward"): "Your friend ordered: here is 10.00 USD off",
    ("ana", "winback"): "It has been a while, Ana: 20% off",
    ("ben", "welcome_on_opt_in"): "Thanks for subscribing",
    ("cleo", "vip_gold_welcome"): "Welcome to Gold, Cleo",
    ("bea", "birthday"): "An early happy birthday, Bea!",
    ("cleo", "occasion_reminder"): "Birthday for Mom is a week away",
}
PREFIXES = {"welcome": "WELCOME", "cross_sell_brewing": "BREW", "icebreaker": "THANKS", "referral_reward": "THANKYOU",
            "winback": "MISSYOU", "vip_gold_welcome": "GOLD", "birthday": "BDAY", "referral_invite": "REF",
            "occasion_reminder": "REMIND"}


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_every_shipped_pack_touches_its_customer_on_both_platforms(played, database):
    result = played(database)
    got = result["ledger"]
    assert {d[5] for d in got["decisions"]} <= {"done", "suppressed"}, [d for d in got["decisions"] if d[5] not in ("done", "suppressed")]
    assert all(status == "done" for d in got["decisions"] for _, status, _ in d[6])
    for platform in ("shopify", "woocommerce"):
        touched = {(d[1], d[2]) for d in got["decisions"] if d[0] == platform and d[3] == "touch" and d[5] == "done"}
        assert {rule for _, rule in touched} == SHIPPED - NOT_FED[platform], (platform, sorted(touched))
        for (who, rule), subject in SUBJECTS.items():
            if rule in NOT_FED[platform]:
                continue
            assert (who, rule) in touched, (platform, who, rule)
        coupons = {c[1] for c in got["coupons"] if c[0] == platform}
        assert coupons == {PREFIXES[r] for r in SHIPPED - NOT_FED[platform] if r in PREFIXES}, (platform, coupons)
        assert dict(got["tags"][platform]) == {"cleo": ("vip-gold",), "dan": ("vip-silver",)}, got["tags"]
        # nobody without consent got an email: Ben only after he opted in, Dan never
        assert not [e for e in got["emails"] if e[0] == "dan@example.com"]
    for (who, rule), subject in SUBJECTS.items():
        expected = 1 if rule == "birthday" else 2  # one per platform
        assert [e for e in got["emails"] if e == (f"{who}@example.com", subject)] == [(f"{who}@example.com", subject)] * expected
    assert result["steps"] >= 10  # many separate days, every one worked by the same worker process


def test_postgresql_ends_with_the_ledger_of_sqlite(played):
    assert played("postgresql")["ledger"] == played("sqlite")["ledger"]
