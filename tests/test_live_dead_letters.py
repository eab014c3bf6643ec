"""Validly signed payloads of the wrong shape are dead-lettered with their reason on the first try
(no retries), the shop's next event goes through, and `keepwell dead-letters` (with the dashboard
count and the doctor line) shows them and puts them back or drops them."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import responses
from click.testing import CliRunner
from rq.registry import FailedJobRegistry

from plugin.admin_auth import admin_link
from plugin.cli import main
from plugin.db import CustomerRow
from plugin.shape import MAX_DEPTH, MAX_ITEMS
from live import STORES, backlog, run_scheduled, running, scheduled, shopify_order, woo_order, work

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def nested(depth: int):
    value: object = "deep"
    for _ in range(depth):
        value = {"v": [value]} if depth % 2 else [value]
    return value


def _set(path, value):
    def change(p):
        *parents, last = path
        for key in parents:
            p = p[key]
        p[last] = value
    return change


SHOPIFY_POISON = {
    "customer is a string": (_set(["customer"], "7421852987654321000"), "'customer' is str, expected an object"),
    "total is a word": (_set(["total_price"], "one hundred"), "'total_price'"),
    "negative total": (_set(["total_price"], "-120.00"), "is negative"),
    "numeric timestamp": (_set(["processed_at"], 1763899200), "'processed_at' is int, not an ISO time"),
    "1,000-deep nesting": (_set(["note_attributes"], nested(1000)), f"nests deeper than {MAX_DEPTH} levels"),
    "10,000 line items": (_set(["line_items"], [{"id": i, "product_id": 1, "quantity": 1, "price": "1.00"}
                                                for i in range(10_000)]), f"at most {MAX_ITEMS}"),
}
WOO_POISON = {
    "billing is a list": (_set(["billing"], ["john.doe@example.com"]), "'billing' is list, expected an object"),
    "negative total": (_set(["total"], "-64.90"), "is negative"),
    "numeric timestamp": (_set(["date_paid_gmt"], 1763899200), "int is not an ISO-8601 time"),
    "line item price is an object": (_set(["line_items", 0, "price"], {"amount": 1}), "dict is not an amount"),
}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def poison(store, live, change):
    """A good order of customer 1, changed by ``change``, signed and accepted by the edge."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))  # json.dumps of the 1,000-deep payload
    cid = store.customer(1)
    if store.platform == "shopify":
        payload = shopify_order(5001, cid, T0, email="ana@example.com")
        change(payload)
        store.post("orders/paid", payload)
    else:
        payload = woo_order(5001, int(cid), email="ana@example.com", modified="2026-11-23T12:00:00")
        change(payload)
        store.post("order.created", payload)


def cli(live, *args):
    env = {"REDIS_URL": live.config.redis_url, "KEEPWELL_QUEUE": live.config.queue,
           "DATABASE_URL": str(live.rt.sessions.kw["bind"].url.render_as_string(hide_password=False))}
    return CliRunner().invoke(main, ["dead-letters", *args], env=env)


@pytest.mark.parametrize("platform, case", [("shopify", c) for c in SHOPIFY_POISON] + [("woocommerce", c) for c in WOO_POISON])
def test_a_payload_of_the_wrong_shape_is_dead_lettered_at_once_and_the_next_event_goes_through(live, rsps, platform, case):
    store = STORES[platform](live, rsps)
    change, reason = (SHOPIFY_POISON if platform == "shopify" else WOO_POISON)[case]
    poison(store, live, change)
    later = store.customer(2)
    store.order(5002, later, T0 + timedelta(minutes=1), email="zoe@example.com", first_name="Zoë")
    work(live)

    (line,) = cli(live, "list", "--shop", store.shop_id).output.splitlines()
    assert line.startswith("  0  ") and reason in line, line
    assert backlog(live, store.shop_id) == 0 and FailedJobRegistry(queue=live.rt.queue).count == 0
    assert scheduled(live, "plugin.jobs.drain") == []  # refused on the first try, not retried
    assert live.rt.redis.hlen(live.rt.handoff.keys(store.shop_id).attempts) == 0
    assert live.rows(CustomerRow, customer_id=store.customer(1)) == []
    (zoe,) = live.rows(CustomerRow, customer_id=later)  # the shop's next event was processed
    assert len(zoe.state["orders"]) == 1


def test_dead_letters_are_listed_shown_counted_retried_and_dropped(live, rsps):
    from plugin.drain import MAX_ENVELOPE_ATTEMPTS

    store = STORES["shopify"](live, rsps)
    poison(store, live, SHOPIFY_POISON["negative total"][0])
    work(live)
    # A refund of an order Keepwell never saw: the worker asks the store whose order it was, and the
    # store refuses every try (the app lost its access to orders until the merchant grants it again).
    for _ in range(MAX_ENVELOPE_ATTEMPTS):
        store.api.fail_next(403, {"errors": "[API] This action requires merchant approval for read_orders scope."})
    zoe = store.customer(2)
    store.api.orders["5002"] = zoe
    store.refund(91, 5002, T0, "20.00")
    work(live)
    for _ in range(MAX_ENVELOPE_ATTEMPTS):  # RQ retries the drain with backoff
        run_scheduled(live, "plugin.jobs.drain")
    assert scheduled(live, "plugin.jobs.drain") == [] and backlog(live, store.shop_id) == 0

    assert cli(live, "list").output == f"{store.shop_id}  2\n"
    lines = cli(live, "list", "--shop", store.shop_id).output.splitlines()
    assert [x.split()[0] for x in lines] == ["0", "1"]
    assert "shopify orders/paid: refused: orders/paid 'total_price': '-120.00' is negative" in lines[0], lines
    assert f"shopify refunds/create: failed {MAX_ENVELOPE_ATTEMPTS} times: StoreError: Shopify answered 403" in lines[1]
    shown = cli(live, "show", "--shop", store.shop_id, lines[0].split()[1]).output
    assert shown.startswith(lines[0]) and '"total_price": "-120.00"' in shown
    assert cli(live, "show", "--shop", store.shop_id, "7").exit_code == 1

    client = live.app.test_client()
    link = urlsplit(admin_link(live.config, store.shop_id, 60))
    client.get(f"{link.path}?{link.query}")
    assert '<dd data-kpi="dead-letters">2</dd>' in client.get("/admin").get_data(as_text=True)

    # access granted again: the order that kept failing goes through when retried
    assert cli(live, "retry", "--shop", store.shop_id, "1").output.endswith("1 dead letter(s) back on the backlog\n")
    work(live)
    (refund,) = live.rows(CustomerRow, customer_id=zoe)
    assert len(refund.state["orders"]) == 1
    assert len(cli(live, "list", "--shop", store.shop_id).output.splitlines()) == 1
    assert cli(live, "drop", "--shop", store.shop_id).exit_code == 2  # which ones? name them or pass --all
    assert cli(live, "drop", "--shop", store.shop_id, "--all").output.endswith("1 dead letter(s) dropped\n")
    assert cli(live, "list", "--shop", store.shop_id).output == f"shop {store.shop_id}: no dead letters\n"
    assert live.rt.redis.hlen(live.rt.handoff.keys(store.shop_id).dead_reasons) == 0
    assert '<dd data-kpi="dead-letters">0</dd>' in client.get("/admin").get_data(as_text=True)
