"""A store that asks to be called later delays the order, end to end through the worker: a
THROTTLED (Shopify) or 429 (WooCommerce) answer to the product lookup puts the shop's backlog on
hold for the wait the store named, then the order is decided with its collections, so the
collection rule fires. Only when the store stays unavailable past every delay does the order go
on without them, marked on the order."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import responses

from plugin import delays
from plugin.db import TimerRow
from plugin.explain import explain
from plugin.events import event_from_dict
from plugin.rulefile import RULES_DIR, load_rules
from live import STORES, backlog, gql_throttled, run_scheduled, running, scheduled, work

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


def shop_with_coffee(live, rsps, platform):
    store = STORES[platform](live, rsps)
    if platform == "shopify":
        store.api.products["9182736450918273645"] = {"tags": ["ethiopia"], "collections": {"coffee": "841564296"}}
    else:
        store.api.products["93"] = ["coffee"]
    return store


def throttle(store, platform):
    """The store's documented "call again later" answer to the product lookup; returns its wait."""
    if platform == "shopify":  # HTTP 200, errors[].extensions.code THROTTLED, the bucket in extensions.cost
        store.api.fail_next(200, gql_throttled(requested=112, available=12.0, restore=50.0))
        return (112 - 12.0) / 50.0
    store.api.fail_next("GET", "products", 429, {"code": "rest_too_many_requests", "message": "Too many requests",
                                                 "data": {"status": 429}}, headers={"Retry-After": "7"})
    return 7.0


def rule_timers(live, shop_id, rule_id):
    return [t for t in live.rows(TimerRow, shop_id=shop_id) if t.event["data"]["rule"] == rule_id]


def drain_waits(live) -> list[float]:
    now = datetime.now(timezone.utc)
    return [(at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at) - now
            for _, at in scheduled(live, "plugin.jobs.drain")]


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_throttled_product_lookup_delays_the_order_by_the_stores_wait(live, rsps, platform):
    store = shop_with_coffee(live, rsps, platform)
    cid = store.customer(1, "cross_sell_brewing")
    wait = throttle(store, platform)
    store.order(5001, cid, T0, email="ana@example.com", first_name="Ana")
    work(live)

    # Nothing was decided: the order waits first in line, for the store's own figure.
    assert rule_timers(live, store.shop_id, "cross_sell_brewing") == []
    assert backlog(live, store.shop_id) == 1
    (left,) = drain_waits(live)
    assert wait - 3 < left.total_seconds() <= wait  # the store's figure, not a fixed backoff (RQ keeps whole seconds)
    keys = live.rt.handoff.keys(store.shop_id)
    assert live.rt.redis.hgetall(f"{keys.backlog}:attempts") == {}  # a wait is not a failure
    assert live.rt.redis.llen(f"{keys.backlog}:dead") == 0

    # A webhook arriving meanwhile queues behind it and starts no drain of its own.
    store.signup(store.customer(2), T0, "bo@example.com", "Bo")
    assert live.rt.queue.count == 0

    assert run_scheduled(live, "plugin.jobs.drain") == 1
    (timer,) = rule_timers(live, store.shop_id, "cross_sell_brewing")
    order = timer.event["data"]["event"]["order"]
    assert "coffee" in order["line_items"][0]["collections"] and "products_unavailable" not in order
    assert backlog(live, store.shop_id) == 0 and scheduled(live, "plugin.jobs.drain") == []
    assert live.rt.redis.hgetall(f"{keys.backlog}:delays") == {}


def test_a_store_unavailable_past_every_delay_lets_the_order_go_on_marked(live, rsps):
    store = shop_with_coffee(live, rsps, "shopify")
    cid = store.customer(1, "cross_sell_brewing", "icebreaker")
    for _ in range(delays.MAX_DELAYS + 1):
        throttle(store, "shopify")
    store.order(5001, cid, T0, email="ana@example.com", first_name="Ana")
    work(live)
    for _ in range(delays.MAX_DELAYS):
        assert rule_timers(live, store.shop_id, "icebreaker") == []
        assert run_scheduled(live, "plugin.jobs.drain") == 1

    # The last try decided the order without its collections, and the order says why.
    assert rule_timers(live, store.shop_id, "cross_sell_brewing") == []
    (timer,) = rule_timers(live, store.shop_id, "icebreaker")
    event = timer.event["data"]["event"]
    assert event["order"]["products_unavailable"].startswith("THROTTLED: Shopify throttled")
    assert backlog(live, store.shop_id) == 0
    keys = live.rt.handoff.keys(store.shop_id)
    assert live.rt.redis.llen(f"{keys.backlog}:dead") == 0

    lines = explain([event_from_dict(event)], load_rules(RULES_DIR), cid)
    assert any("decided without its products' collections and tags" in line and "THROTTLED" in line
               for line in lines), lines
