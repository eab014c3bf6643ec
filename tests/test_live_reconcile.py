"""Reconciliation, end to end: WooCommerce never retries a failed webhook, so plugin.jobs.reconcile
reads the orders and customers changed since the last sync (GET /orders?modified_after=...) and
feeds them through the same backlog as webhooks. A missed order is processed exactly once; a
second run, and an order that did arrive as a webhook, change nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin import jobs
from plugin.db import DecisionRow, EffectRow, EventSeenRow, ShopRow
from live import (STORES, backlog, check_email, done_touch, gmt, mails_to, running, woo_order, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def ledger(live, shop_id):
    return (sorted((d.rule_id, d.customer_id, d.status) for d in live.rows(DecisionRow, shop_id=shop_id)),
            len(live.rows(EffectRow, shop_id=shop_id)), len(live.rows(EventSeenRow, shop_id=shop_id)))


def test_a_missed_order_is_reconciled_once(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    vic, ann = store.customer(1), store.customer(2)
    # Ann's order arrived as a webhook; Vic's delivery failed (WooCommerce does not retry).
    store.order(7270, ann, T0 - timedelta(hours=3), total="40.00", email="ann@example.com", first_name="Ann")
    live.clock.now = T0 - timedelta(hours=3)
    work(live)
    store.api.customers[vic] = store._customer_record(vic, T0 - timedelta(days=3), "vic@example.com", "Vic", True, None)
    missed = woo_order(7271, int(vic), email="vic@example.com", total="520.00", modified=gmt(T0 - timedelta(hours=2)))
    missed["billing"]["first_name"] = "Vic"
    store.api.orders.append(missed)
    before = ledger(live, store.shop_id)
    assert not [d for d in before[0] if d[1] == vic]

    live.clock.now = T0
    assert jobs.reconcile(store.shop_id) == 3  # both orders and the customers changed since
    (orders_query,) = store.api.requests("GET", "orders")
    assert orders_query == {"modified_after": gmt(T0 - timedelta(days=1, minutes=10)), "dates_are_gmt": "true",
                            "orderby": "id", "order": "asc", "per_page": "100", "page": "1"}
    work(live)
    assert backlog(live, store.shop_id) == 0
    d, eff = done_touch(live, "vip_gold_welcome", vic)
    assert [b["code"] for b in store.api.creates] == [eff["coupon"].coupon_code]
    (msg,) = mails_to(live, "vic@example.com")
    check_email(live, msg, to="vic@example.com", subject="Welcome to Gold, Vic", code=eff["coupon"].coupon_code,
                effect=eff["email"])
    assert store.tags(vic) == ["vip-gold"]
    (shop,) = live.rows(ShopRow, id=store.shop_id)
    assert shop.last_sync_at == T0
    after_first = ledger(live, store.shop_id)
    ann_before = [x for x in before[0] if x[1] == ann]
    assert [x for x in after_first[0] if x[1] == ann] == ann_before  # the webhook's order: nothing new

    # A second run a quarter of an hour later reads the same records again (the overlap) ...
    live.clock.now = T0 + timedelta(minutes=15)
    assert jobs.reconcile(store.shop_id) == 0  # ... and queues none of them
    assert store.api.requests("GET", "orders")[-1]["modified_after"] == gmt(T0 - timedelta(minutes=10))
    work(live)
    assert ledger(live, store.shop_id) == after_first
    assert len(store.api.creates) == 1 and len(live.smtp.messages) == 1


def test_webhooks_the_store_disabled_are_active_again_and_what_they_missed_is_read(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    vic = store.customer(1)
    target = f"{live.config.app_url}/webhooks/woocommerce/{store.shop_id}"
    store.api.webhooks = [{"id": 150 + i, "name": f"Keepwell {t}", "topic": t, "status": s, "delivery_url": target}
                          for i, (t, s) in enumerate([("order.created", "disabled"), ("order.updated", "disabled"),
                                                      ("customer.created", "active"), ("customer.updated", "paused")])]
    store.api.webhooks.append({"id": 160, "name": "CRM", "topic": "order.created", "status": "disabled",
                               "delivery_url": "https://crm.example/hooks"})
    # Keepwell was unreachable for five deliveries: WooCommerce disabled the order webhooks and
    # will neither retry Vic's order nor deliver the next one.
    store.api.customers[vic] = store._customer_record(vic, T0 - timedelta(days=3), "vic@example.com", "Vic", True, None)
    missed = woo_order(7280, int(vic), email="vic@example.com", total="520.00", modified=gmt(T0 - timedelta(hours=1)))
    missed["billing"]["first_name"] = "Vic"
    store.api.orders.append(missed)

    live.clock.now = T0
    assert jobs.reconcile(store.shop_id) >= 1
    assert [(h["id"], h["status"]) for h in store.api.webhooks] == [
        (150, "active"), (151, "active"), (152, "active"), (153, "paused"), (160, "disabled")]
    assert store.api.requests("GET", "webhooks") == [{"status": "disabled", "per_page": "100", "page": "1"}]
    work(live)
    done_touch(live, "vip_gold_welcome", vic)

    # The next run finds nothing disabled and changes nothing in the store.
    live.clock.now = T0 + timedelta(minutes=15)
    jobs.reconcile(store.shop_id)
    assert [c for c in store.api.calls if c[0] == "PUT" and c[1].startswith("webhooks/")] == [
        ("PUT", "webhooks/150", {}), ("PUT", "webhooks/151", {})]
