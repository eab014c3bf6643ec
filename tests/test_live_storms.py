"""Delivery storms over real HTTP: the app on a real (threaded) server, ten clients posting the same
webhook at the same moment, then the worker. Exactly one coupon reaches the store and exactly one
email goes out, whether the edge or the worker is the one that recognises the repeats; a delivery
that comes back after everything was processed changes nothing."""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses

from children import WAIT_S
from plugin.db import DecisionRow, EffectRow, EventSeenRow
from live import (STORES, backlog, done_touch, gmt, mails_to, running, serving, shopify_delivery, shopify_order,
                  woo_delivery, woo_order, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
N = 10


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def gold_order(store, customer_id: str, order_id: int = 9001, modified: datetime = T0):
    """A first order big enough for the gold tier: a tag, a GOLD coupon and an email at once."""
    if store.platform == "shopify":
        return "orders/paid", shopify_order(order_id, customer_id, T0, total="520.00", email="vic@example.com",
                                            first_name="Vic")
    store.api.customers[customer_id] = store._customer_record(customer_id, T0, "vic@example.com", "Vic", True, None)
    return "order.created", woo_order(order_id, int(customer_id), email="vic@example.com", total="520.00",
                                      modified=gmt(modified))


def storm(live, store, topic, payload, same_delivery: bool) -> list[requests.Response]:
    """N clients post the event at once. ``same_delivery``: one delivery retried (Shopify keeps its
    webhook and event id; WooCommerce's dedupe key is topic, id and date_modified_gmt);
    otherwise N separate deliveries whose ids all differ (only the payload says it is one event;
    WooCommerce cannot send that: its key is made of the payload)."""
    shared = str(uuid.uuid4())

    def delivery(i):
        if store.platform == "shopify":
            ids = (shared, shared) if same_delivery else (str(uuid.uuid4()), None)
            return "/webhooks/shopify", *shopify_delivery(topic, payload, store.domain, webhook_id=ids[0], event_id=ids[1])
        return f"/webhooks/woocommerce/{store.shop_id}", *woo_delivery(topic, payload, store.secret)

    deliveries = [delivery(i) for i in range(N)]
    barrier = threading.Barrier(N)
    with serving(live.app) as base:
        def post(d):
            path, body, headers = d
            barrier.wait()  # all N at the same moment
            return requests.post(base + path, data=body, headers=headers, timeout=WAIT_S)

        with ThreadPoolExecutor(N) as pool:
            return list(pool.map(post, deliveries))


CASES = [("shopify", True), ("shopify", False), ("woocommerce", True)]


@pytest.mark.parametrize("platform, same_delivery", CASES,
                         ids=["shopify-one-delivery", "shopify-ten-deliveries", "woocommerce-one-version"])
def test_ten_at_once_give_one_coupon_and_one_email(live, rsps, platform, same_delivery):
    store = STORES[platform](live, rsps)
    vic = store.customer(1)
    topic, payload = gold_order(store, vic)
    rsps.add_passthru("http://127.0.0.1")  # our own server; only the store API is mocked
    answers = storm(live, store, topic, payload, same_delivery)
    statuses = sorted(r.status_code for r in answers)
    if same_delivery:
        assert statuses == [200] * (N - 1) + [202]
        assert sorted(r.json()["status"] for r in answers) == ["accepted"] + ["duplicate"] * (N - 1)
        assert backlog(live, store.shop_id) == 1
    else:
        assert statuses == [202] * N  # ten deliveries: the edge cannot tell
        assert backlog(live, store.shop_id) == N

    work(live)
    assert backlog(live, store.shop_id) == 0
    d, eff = done_touch(live, "vip_gold_welcome", vic)
    creates = store.api.creates
    assert len(creates) == 1, creates  # one call to the coupon API
    assert len(mails_to(live, "vic@example.com")) == 1 and len(live.smtp.messages) == 1
    assert store.tags(vic) == ["vip-gold"]
    assert len(live.rows(EventSeenRow, shop_id=store.shop_id)) == (1 if platform == "shopify" else 2)  # Woo: created + paid


def test_a_redelivery_after_processing_changes_nothing(live, rsps):
    for platform in ("shopify", "woocommerce"):
        store = STORES[platform](live, rsps)
        vic = store.customer(1)
        topic, payload = gold_order(store, vic)
        event_id = str(uuid.uuid4())
        if platform == "shopify":
            first = live.post_shopify(topic, payload, store.domain, event_id=event_id)
        else:
            first = live.post_woocommerce(store.shop_id, store.secret, topic, payload)
        assert first.status_code == 202
        work(live)
        done_touch(live, "vip_gold_welcome", vic)
        before = (len(store.api.calls), len(live.smtp.messages), len(live.rows(DecisionRow, shop_id=store.shop_id)),
                  len(live.rows(EffectRow, shop_id=store.shop_id)))

        if platform == "shopify":
            # The same event again (a Shopify retry hours later) is stopped at the edge ...
            again = live.post_shopify(topic, payload, store.domain, event_id=event_id)
            assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
            # ... and once the edge's memory of it is gone (a delivery without the event id header),
            # by the worker, which has seen the event.
            later = live.post_shopify(topic, payload, store.domain)
            assert later.status_code == 202
        else:
            again = live.post_woocommerce(store.shop_id, store.secret, topic, payload)
            assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
            # WooCommerce's order.updated for the same paid order, modified since (a note, a status
            # change to completed): a new version, so new event ids, yet the same touches.
            newer = dict(payload, status="completed", date_modified_gmt=gmt(T0 + timedelta(hours=2)))
            later = live.post_woocommerce(store.shop_id, store.secret, "order.updated", newer)
            assert later.status_code == 202
        live.clock.now = T0 + timedelta(hours=2)
        work(live)
        after = (len(store.api.calls), len(live.smtp.messages), len(live.rows(DecisionRow, shop_id=store.shop_id)),
                 len(live.rows(EffectRow, shop_id=store.shop_id)))
        assert after == before, platform
