"""The Procfile deployment end to end: `keepwell worker` as its own process, configured by the
environment (DATABASE_URL in Heroku's postgres:// form), on PostgreSQL and on SQLite.

- Many events across many jobs in one worker process leave nothing behind: no prepared
  statement or connection state leaks from one job into the next (the forking worker once
  shared its parent's PostgreSQL connection and dead-lettered every order).
- 1,000 mixed events for 20 shops of both platforms (signups, consent, orders, refunds,
  re-deliveries), posted while the worker runs: zero dead letters, and PostgreSQL ends with
  exactly the ledger SQLite ends with (decisions, effects, timers, coupons, tags, emails).

Every shipped pack on both platforms runs through the worker in test_procfile_packs.py; the demo
(test_demo.py) plays its story on both databases and compares the reports.
"""
from __future__ import annotations

import random
import secrets
import types
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from rq.registry import FinishedJobRegistry
from sqlalchemy import select

from live import (finish, gmt, live_redis, shopify_consent, shopify_customer, shopify_order, shopify_refund, start,
                  woo_customer, woo_order)
from procfile import procfile_worker, trouble
from plugin import shops as shops_module
from plugin.db import (AttributionRow, CustomerRow, DecisionRow, EffectRow, OrderIndexRow, TimerRow,
                       UnsubscribeRow)
from plugin.demo.sandbox import Server, StoreSandbox

NOW = datetime.now(timezone.utc).replace(microsecond=0)
T0 = NOW - timedelta(days=40)  # the stores' history starts here; the worker keeps real time
TOKEN, WOO_KEY, WOO_SECRET = "shpat_procfile", "ck_procfile", "cs_procfile"
TOTALS = ("24.00", "65.00", "120.00", "260.00", "540.00")  # below and above the VIP tiers


@dataclass
class ShopSpec:
    index: int
    platform: str
    shop_id: str
    domain: str
    secret: str


@pytest.fixture
def sandbox():
    box = StoreSandbox(TOKEN, WOO_KEY, WOO_SECRET)
    server = Server(box).start()
    box.url = server.url
    yield box
    server.stop()


def add_shops(live, sandbox, monkeypatch, count: int) -> list[ShopSpec]:
    """``count`` shops, alternating platforms, with the same ids on every database so that the
    holdout groups and coupon codes (both derived from the shop id) compare across runs."""
    out = []
    for i in range(count):
        platform = ("shopify", "woocommerce")[i % 2]
        fixed = types.SimpleNamespace(token_hex=lambda n, i=i: f"{i:0{2 * n}x}", token_urlsafe=secrets.token_urlsafe)
        monkeypatch.setattr(shops_module, "token", fixed)
        if platform == "shopify":
            domain = f"procfile-{i}.myshopify.com"
            shop_id, secret = live.add_shop("shopify", domain, access_token=TOKEN, api_url=sandbox.url,
                                            settings={"name": f"Shop {i}"})
        else:
            domain = f"https://procfile-{i}.example"
            shop_id, secret = live.add_shop("woocommerce", domain, consumer_key=WOO_KEY, consumer_secret=WOO_SECRET,
                                            api_url=sandbox.url,
                                            settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": f"Shop {i}"})
        out.append(ShopSpec(i, platform, shop_id, domain, secret))
    monkeypatch.undo()
    return out


def story(shop: ShopSpec, sandbox, n: int) -> list[tuple]:
    """``n`` deliveries of one shop in the order the store sends them: (topic, payload, webhook id)."""
    rnd = random.Random(shop.index)
    first = (7421852987654321000 if shop.platform == "shopify" else 25) + 1000 * shop.index
    out: list[tuple] = []
    customers = []
    orders: list[tuple[int, str]] = []
    k = 0
    t = T0
    while len(out) < n:
        t += timedelta(hours=rnd.randint(2, 20))
        roll = rnd.random()
        if not customers or roll < 0.2:  # a signup, most with consent
            cid, email, name = str(first + k), f"c{shop.index}-{k}@example.com", rnd.choice(("Ana", "Zoë", "Omar", "李"))
            consent = rnd.random() < 0.8
            customers.append((cid, email, name))
            k += 1
            if shop.platform == "shopify":
                record = shopify_customer(cid, t, email=email, first_name=name)
                sandbox.add_customer("shopify", cid, record)
                out.append(("customers/create", record, None))
                if consent:
                    out.append(("customers_email_marketing_consent/update",
                                shopify_consent(cid, t + timedelta(seconds=2), email=email), None))
            else:
                record = woo_customer(int(cid), email=email, first_name=name, consent="yes" if consent else "no",
                                      modified=gmt(t))
                sandbox.add_customer("woocommerce", cid, record)
                out.append(("customer.created", record, None))
        elif roll < 0.8:  # an order
            cid, email, name = rnd.choice(customers)
            order_id = 5_000_000 + 10_000 * shop.index + len(orders)
            total = rnd.choice(TOTALS)
            orders.append((order_id, cid))
            if shop.platform == "shopify":
                sandbox.add_order("shopify", str(order_id), cid)
                out.append(("orders/paid", shopify_order(order_id, cid, t, email=email, first_name=name, total=total),
                            None))
            else:
                out.append(("order.created", woo_order(order_id, int(cid), email=email, total=total, modified=gmt(t)),
                            None))
        elif roll < 0.9 and orders:  # a refund of an earlier order
            order_id, cid = rnd.choice(orders)
            if shop.platform == "shopify":
                out.append(("refunds/create", shopify_refund(900_000 + len(out), order_id, t, amount="10.00"), None))
            else:
                email = next(c[1] for c in customers if c[0] == cid)
                o = woo_order(order_id, int(cid), email=email, status="refunded", modified=gmt(t),
                              refunds=[{"id": 900_000 + len(out), "reason": "", "total": "-10.00"}])
                out.append(("order.updated", o, None))
        elif out and shop.platform == "shopify":  # the store delivers an earlier webhook again
            topic, payload, _ = rnd.choice(out)
            again = f"again-{shop.index}-{len(out)}"
            out += [(topic, payload, again), (topic, payload, again)]  # the second one is a duplicate
    return out[:n]


def post(live, shop: ShopSpec, topic: str, payload: dict, webhook_id: str | None) -> None:
    if shop.platform == "shopify":
        r = live.post_shopify(topic, payload, shop.domain, webhook_id=webhook_id)
    else:
        r = live.post_woocommerce(shop.shop_id, shop.secret, topic, payload)
    assert r.status_code in (200, 202), (r.status_code, r.data)


def interleaved(stories: dict[int, list[tuple]]) -> list[tuple[int, tuple]]:
    """Round robin over the shops, each shop's deliveries in order: how busy stores overlap."""
    out, rows = [], [list(s) for s in stories.values()]
    keys = list(stories)
    while any(rows):
        for key, row in zip(keys, rows):
            if row:
                out.append((key, row.pop(0)))
    return out


def ledger(live, sandbox, mailbox) -> dict:
    """Everything the run decided and did, with nothing that depends on the moment it ran."""
    def rows(model, *cols):
        with live.rt.sessions() as session:
            return sorted(tuple(getattr(r, c) for c in cols) for r in session.scalars(select(model)))

    return {
        "decisions": rows(DecisionRow, "shop_id", "key", "rule_id", "customer_id", "kind", "reason", "status",
                          "event_id", "error"),
        "effects": rows(EffectRow, "shop_id", "key", "decision_key", "type", "status", "coupon_code", "error"),
        "timers": rows(TimerRow, "shop_id", "key", "customer_id", "status"),
        "orders": rows(OrderIndexRow, "shop_id", "order_id", "customer_id"),
        "customers": rows(CustomerRow, "shop_id", "customer_id"),
        "attributions": rows(AttributionRow, "shop_id", "order_id", "decision_key", "coupon_code"),
        "unsubscribes": rows(UnsubscribeRow, "shop_id", "customer_id"),
        "store coupons": sorted(c["code"] for c in sandbox.coupons),
        "store tags": {p: {c: sorted(t) for c, t in tags.items()} for p, tags in sandbox.tags.items()},
        "emails": sorted((m["To"].addresses[0].addr_spec, str(m["Subject"])) for m in mailbox),
    }


def play(live, sandbox, smtp, monkeypatch, tmp_path, *, shops: int, events: int, waves: int, settle_each: bool):
    """Post ``events`` deliveries over ``shops`` shops in ``waves`` while `keepwell worker` runs;
    returns (ledger, shop specs, finished jobs)."""
    specs = add_shops(live, sandbox, monkeypatch, shops)
    per_shop = events // shops
    stories = {s.index: story(s, sandbox, per_shop) for s in specs}
    deliveries = interleaved(stories)
    assert len(deliveries) == events
    before = len(smtp.messages)
    ids = [s.shop_id for s in specs]
    with procfile_worker(live, tmp_path / "worker.log") as worker:
        size = -(-events // waves)
        for start_at in range(0, events, size):
            for index, (topic, payload, webhook_id) in deliveries[start_at:start_at + size]:
                post(live, specs[index], topic, payload, webhook_id)
            if settle_each:
                worker.wait_idle(ids)
        worker.wait_idle(ids)
        assert trouble(live, ids) == {}, worker.output()
        finished = FinishedJobRegistry(queue=live.rt.queue).count
        log = worker.output()
    assert "Traceback" not in log, log
    return ledger(live, sandbox, smtp.messages[before:]), specs, finished


@pytest.fixture
def running_on(request, redis_server, smtp):
    """start(url) -> a Live on that database, cleaned up afterwards."""
    started = []

    def start_on(url: str):
        live = start(live_redis(redis_server), url, smtp)
        started.append(live)
        return live

    yield start_on
    for live in started:
        finish(live)


def test_200_events_across_many_jobs_leave_nothing_behind(running_on, postgres_url, sandbox, smtp, monkeypatch,
                                                          tmp_path):
    live = running_on(postgres_url)
    got, specs, finished = play(live, sandbox, smtp, monkeypatch, tmp_path, shops=2, events=200, waves=40,
                                settle_each=True)
    assert finished >= 40  # one drain job per shop and wave at least, all in one worker process
    assert {d[6] for d in got["decisions"]} <= {"done", "suppressed"}, [d for d in got["decisions"] if d[6] == "failed"] + [e for e in got["effects"] if e[4] == "failed"]
    assert {d[6] for d in got["decisions"]} <= {"done", "suppressed"}
    assert {e[4] for e in got["effects"]} == {"done"}
    assert len(got["customers"]) >= 20 and len(got["orders"]) >= 60
    assert got["store coupons"] and got["emails"] and any(got["store tags"].values())


def test_1000_events_for_20_shops_give_postgresql_the_ledger_of_sqlite(running_on, postgres_url, smtp, monkeypatch,
                                                                       tmp_path):
    runs = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path}/keepwell.db"), ("postgresql", postgres_url)):
        box = StoreSandbox(TOKEN, WOO_KEY, WOO_SECRET)
        server = Server(box).start()
        box.url = server.url
        try:
            (tmp_path / name).mkdir()
            runs[name] = play(running_on(url), box, smtp, monkeypatch, tmp_path / name, shops=20, events=1000,
                              waves=10, settle_each=False)[0]
        finally:
            server.stop()
    sqlite, postgresql = runs["sqlite"], runs["postgresql"]
    assert {d[6] for d in sqlite["decisions"]} <= {"done", "suppressed"}
    assert {e[4] for e in sqlite["effects"]} == {"done"}
    assert len(sqlite["decisions"]) > 200 and len(sqlite["store coupons"]) > 50 and len(sqlite["emails"]) > 50
    for part in sqlite:
        assert postgresql[part] == sqlite[part], part
