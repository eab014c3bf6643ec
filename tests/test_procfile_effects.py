"""Effects off the drain, on the Procfile deployment: `keepwell worker` as its own process, the
store sandbox over real HTTP answering slowly, a real SMTP server.

- A slow store does not slow deciding: every order of a burst is decided and recorded long before
  the store could have answered the calls its touches make one by one (as the drain used to).
- The shop's effects then run side by side, never more at once than the platform's slots:
  Shopify's (paced by its cost bucket besides) and WooCommerce's few; every coupon once, every
  email once.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from children import wait_for
from connectors.shopify import pacing as shopify_pacing
from connectors.woocommerce import pacing as woo_pacing
from live import finish, gmt, live_redis, shopify_order, start, woo_customer, woo_order
from plugin.db import DecisionRow, EffectRow, OrderIndexRow
from plugin.demo.sandbox import Server, StoreSandbox
from procfile import procfile_worker

TOKEN, WOO_KEY, WOO_SECRET = "shpat_effects", "ck_effects", "cs_effects"
ORDERS = 10
LATENCY_S = 1.0  # per store call
#: What deciding the orders may take: a third of what their store calls take one after another
#: (each order's touches make at least three: a tag, a coupon, the shop's details for the email).
DECIDED_WITHIN_S = ORDERS * 3 * LATENCY_S / 3


class SlowStore:
    """WSGI wrapper around the sandbox: each answer takes ``seconds``; counts the calls in flight."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds
        self.in_flight = self.most = 0
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.seconds)
            return self.app(environ, start_response)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def sandbox():
    box = StoreSandbox(TOKEN, WOO_KEY, WOO_SECRET)
    box.app.wsgi_app = box.slow = SlowStore(box.app.wsgi_app, LATENCY_S)
    server = Server(box).start()
    box.url = server.url
    yield box
    server.stop()


@pytest.fixture
def live(redis_server, postgres_url, smtp):
    live = start(live_redis(redis_server), postgres_url, smtp)
    yield live
    finish(live)


def count(live, model, shop_id, **where) -> int:
    return len(live.rows(model, shop_id=shop_id, **where))


def post_orders(live, sandbox, platform: str) -> str:
    """ORDERS paid first orders of 520 USD (the VIP gold tier: a tag, then a coupon and an email)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    if platform == "shopify":
        shop_id, _ = live.add_shop("shopify", "effects-test.myshopify.com", access_token=TOKEN, api_url=sandbox.url,
                                   settings={"name": "Effects Coffee"})
        for i in range(ORDERS):
            cid = str(7421852987654321000 + 1000 * i)
            o = shopify_order(5301 + i, cid, now, email=f"buyer{i}@example.com", total="520.00")
            sandbox.add_customer("shopify", cid, o["customer"])
            assert live.post_shopify("orders/paid", o, "effects-test.myshopify.com").status_code == 202
        return shop_id
    shop_id, secret = live.add_shop("woocommerce", "https://effects-test.example", consumer_key=WOO_KEY,
                                    consumer_secret=WOO_SECRET, api_url=sandbox.url,
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    for i in range(ORDERS):
        cid = 25 + i
        sandbox.add_customer("woocommerce", str(cid), woo_customer(cid, email=f"buyer{i}@example.com"))
        o = woo_order(6301 + i, cid, email=f"buyer{i}@example.com", total="520.00", modified=gmt(now))
        assert live.post_woocommerce(shop_id, secret, "order.created", o).status_code == 202
    return shop_id


@pytest.mark.parametrize("platform, slots", [("shopify", shopify_pacing.EFFECT_SLOTS),
                                             ("woocommerce", woo_pacing.EFFECT_SLOTS)])
def test_a_slow_store_does_not_slow_deciding_and_effects_stay_within_the_shops_slots(live, sandbox, tmp_path,
                                                                                      platform, slots):
    with procfile_worker(live, tmp_path / "worker.log") as worker:
        started = time.monotonic()
        shop_id = post_orders(live, sandbox, platform)
        wait_for(lambda: count(live, OrderIndexRow, shop_id) == ORDERS, "every order decided", check=worker.check,
                 every_s=0.05)
        decided_s = time.monotonic() - started
        assert decided_s < DECIDED_WITHIN_S, (decided_s, worker.output())
        worker.wait_idle([shop_id])

    touches = live.rows(DecisionRow, shop_id=shop_id, rule_id="vip_gold_welcome")
    assert len(touches) == ORDERS and {d.status for d in touches} == {"done"}, [(d.status, d.error) for d in touches]
    assert count(live, EffectRow, shop_id, type="coupon", status="done") == ORDERS
    assert len(sandbox.coupons) == ORDERS and not sandbox.refused  # each created once
    assert len(live.smtp.messages) == ORDERS
    assert sorted(m["To"].addresses[0].addr_spec for m in live.smtp.messages) == sorted(
        f"buyer{i}@example.com" for i in range(ORDERS))
    # side by side, and never more at once than the shop's slots
    assert 1 < sandbox.slow.most <= slots, (sandbox.slow.most, slots)
