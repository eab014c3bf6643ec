"""A busy shop's backlog goes through per-customer lanes (plugin.lanes), on SQLite and PostgreSQL.

Forty WooCommerce customers sign up and pay two orders each: 120 webhooks wait on one shop's
backlog. The shop's drain splits them into lanes (one per 50 waiting entries): every customer's
webhooks are in one lane, the one their id hashes to, in the order they came. A real worker then
drains the lanes: every event is decided once, each customer's two orders fold in order, nothing
is left. The next webhook, with the lanes empty, finds the shop back to one lane.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import responses

from live import STORES, backlog, gmt, running, woo_customer, woo_order, work
from plugin import drain, lanes
from plugin.db import CustomerRow, EventSeenRow
from plugin.handoff import Envelope

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
CUSTOMERS = 40


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def customer_of(raw: bytes) -> tuple[str, str]:
    env = Envelope.decode(raw)
    payload = json.loads(env.body)
    return str(payload["id"] if env.topic.startswith("customer.") else payload["customer_id"]), env.topic


def test_a_busy_shops_backlog_goes_through_lanes_one_customer_in_order(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    sent: dict[str, list[str]] = {}
    for n in range(CUSTOMERS):
        cid = store.customer(n + 1)
        at = T0 - timedelta(hours=2, minutes=n)
        store.post("customer.created", woo_customer(int(cid), email=f"c{n}@example.com", first_name=f"Dana{n}",
                                                    modified=gmt(at)))
        for k in range(2):
            paid = at + timedelta(minutes=10 + k)
            store.post("order.created", woo_order(700_000 + 10 * n + k, int(cid), email=f"c{n}@example.com",
                                                  modified=gmt(paid)))
        sent[cid] = ["customer.created", "order.created", "order.created"]
    shop = store.shop_id
    assert backlog(live, shop) == 3 * CUSTOMERS

    # the shop's drain job, as a worker would run it: it splits the backlog and queues the lanes
    drain.drain(live.rt, shop)
    count = live.rt.handoff.lane_count(shop)
    assert count == lanes.wanted(3 * CUSTOMERS) == 3
    keys = live.rt.handoff.keys(shop)
    assert live.rt.redis.llen(keys.backlog) == 0
    found: dict[str, list[str]] = {}
    for n in range(count):
        for raw in live.rt.redis.lrange(keys.lane(n).backlog, 0, -1):
            cid, topic = customer_of(raw)
            assert lanes.lane_of(cid, count) == n
            found.setdefault(cid, []).append(topic)
    assert found == sent  # all of them, each customer's in one lane, in the order they came
    assert all(live.rt.redis.llen(keys.lane(n).backlog) for n in range(count))  # every lane has work
    assert sorted(j.func_name for j in live.rt.queue.jobs).count("plugin.jobs.drain_lane") == count

    work(live)
    assert backlog(live, shop) == 0
    assert len(live.rows(EventSeenRow, shop_id=shop)) == 5 * CUSTOMERS  # a signup; per order: created and paid
    states = {r.customer_id: r.state for r in live.rows(CustomerRow, shop_id=shop)}
    assert set(states) == set(sent)
    assert all([o["id"] for o in s["orders"]] == [o for o in sorted(o["id"] for o in s["orders"])] and len(s["orders"]) == 2
               for s in states.values())

    # quiet again: the next webhook finds every lane empty, and the shop back to one
    late = store.customer(CUSTOMERS + 1)
    store.post("customer.created", woo_customer(int(late), email="late@example.com", modified=gmt(T0)))
    work(live)
    assert live.rt.handoff.lane_count(shop) == 1
    assert backlog(live, shop) == 0 and len(live.rows(EventSeenRow, shop_id=shop)) == 5 * CUSTOMERS + 1
