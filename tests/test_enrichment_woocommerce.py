"""WooCommerce orders enriched with their products' categories and tags, and the shipped
cross-sell pack end to end: a paid order of a product in category "coffee" leads, three days
later, to a coupon scoped to the "brewing" category and an email.

The store is mocked at the HTTP layer (``responses``) with the REST API v3 shapes WooCommerce
documents (``GET /products``: product objects with ``categories`` and ``tags`` as
``[{id, name, slug}]``).
"""
from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import replace
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from responses import matchers

from connectors.base import Shop
from connectors.products import fallback_allowed
from connectors.woocommerce import connector, products
from plugin.errors import StoreError
from plugin.exports import export_events

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "woocommerce" / "rest-v3-docs-examples"
API = "https://example.com/wp-json/wc/v3"
SHOP = Shop(id="shop-1", platform="woocommerce", domain="https://example.com", api_url="https://example.com",
            credentials={"consumer_key": "ck_4fd8b5a2cd0a1f6e7a0b9c8d7e6f5a4b3c2d1e0f", "consumer_secret": "cs_1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"},
            settings={"consent_meta_key": "_wc_marketing_opt_in"})
OTHER_SHOP = replace(SHOP, id="shop-2")


# --- helpers -----------------------------------------------------------------------------------

def example(name: str):
    return json.loads((EXAMPLES / name).read_text())


def paid_order(*product_ids: int, **changes) -> dict:
    """The docs' order example (a guest's processing, paid order) with line items for ``product_ids``
    (default: its own two, products 93 and 22)."""
    o = example("order_create_response.json")
    if product_ids:
        template = o["line_items"][0]
        o["line_items"] = [{**copy.deepcopy(template), "id": 500 + i, "product_id": p, "variation_id": 0}
                           for i, p in enumerate(product_ids)]
    o.update(changes)
    return o


def term(term_id: int, slug: str) -> dict:
    return {"id": term_id, "name": slug.replace("-", " ").title(), "slug": slug}


def wc_product(product_id: int, categories=(), tags=()) -> dict:
    """A product as ``GET /wc/v3/products`` lists it (the fields enrichment reads, and some around them)."""
    return {"id": product_id, "name": f"Product {product_id}", "slug": f"product-{product_id}",
            "permalink": f"https://example.com/product/product-{product_id}/", "type": "simple", "status": "publish",
            "sku": "", "price": "21.99", "regular_price": "21.99", "sale_price": "",
            "categories": [term(i, s) for i, s in categories], "tags": [term(i, s) for i, s in tags],
            "images": [], "attributes": [], "variations": [], "meta_data": []}


def listed(rsps) -> list[dict]:
    """The query of every GET /products the connector made."""
    return [{k: v[-1] for k, v in parse_qs(urlsplit(c.request.url).query).items()} for c in rsps.calls
            if urlsplit(c.request.url).path == "/wp-json/wc/v3/products"]


@pytest.fixture(autouse=True)
def fresh_cache():
    products.CACHE.clear()
    yield
    products.CACHE.clear()


@pytest.fixture
def store():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


# --- enrichment --------------------------------------------------------------------------------

def test_an_order_gets_category_slugs_and_ids_and_tag_slugs(store):
    store.get(f"{API}/products", match=[matchers.query_param_matcher({"include": "22,93", "per_page": "100"})],
              json=[wc_product(93, categories=[(15, "coffee"), (16, "single-origin")], tags=[(40, "ethiopia")]),
                    wc_product(22, categories=[(9, "brewing")])])
    created, paid = connector.parse(SHOP, "order.created", paid_order())
    for e in (created, paid):
        coffee, gear = e.order.line_items
        assert (coffee.product_id, coffee.collections, coffee.product_tags) == (
            "93", ("coffee", "15", "single-origin", "16"), ("ethiopia",))
        assert (gear.product_id, gear.variant_id, gear.collections, gear.product_tags) == ("22", "23", ("brewing", "9"), ())
    assert len(store.calls) == 1
    assert store.calls[0].request.headers["Authorization"].startswith("Basic ")


def test_one_request_for_every_event_of_an_order(store):
    store.get(f"{API}/products", json=[wc_product(93, categories=[(15, "coffee")])])
    order = paid_order(93, status="refunded", refunds=[{"id": 726, "reason": "", "total": "-10.00"}])
    events = connector.parse(SHOP, "order.updated", order)
    assert [e.type for e in events] == ["order.refunded"]
    assert events[0].order.line_items[0].collections == ("coffee", "15")
    assert listed(store) == [{"include": "93", "per_page": "100"}]


def test_a_cached_product_is_not_asked_for_again(store):
    store.get(f"{API}/products", json=[wc_product(93, categories=[(15, "coffee")])])
    connector.parse(SHOP, "order.created", paid_order(93))
    second = connector.parse(SHOP, "order.updated", paid_order(93, date_modified_gmt="2017-03-23T10:00:00"))
    assert second[0].order.line_items[0].collections == ("coffee", "15")
    assert len(store.calls) == 1


def test_only_uncached_products_are_asked_for_and_the_cache_is_per_shop(store):
    store.get(f"{API}/products", match=[matchers.query_param_matcher({"include": "93", "per_page": "100"})],
              json=[wc_product(93, categories=[(15, "coffee")])])
    store.get(f"{API}/products", match=[matchers.query_param_matcher({"include": "22", "per_page": "100"})],
              json=[wc_product(22, categories=[(9, "brewing")])])
    store.get(f"{API}/products", match=[matchers.query_param_matcher({"include": "93", "per_page": "100"})],
              json=[wc_product(93, categories=[(70, "tea")])])
    connector.parse(SHOP, "order.created", paid_order(93))
    items = connector.parse(SHOP, "order.created", paid_order(93, 22))[0].order.line_items
    assert [li.collections for li in items] == [("coffee", "15"), ("brewing", "9")]
    other = connector.parse(OTHER_SHOP, "order.created", paid_order(93))[0].order.line_items
    assert other[0].collections == ("tea", "70")


def test_the_cache_expires_after_its_ttl(store, monkeypatch):
    now = [50.0]
    monkeypatch.setattr(products.CACHE, "clock", lambda: now[0])
    store.get(f"{API}/products", json=[wc_product(93, categories=[(15, "coffee")])])
    connector.parse(SHOP, "order.created", paid_order(93))
    now[0] += products.TTL_S + 1
    connector.parse(SHOP, "order.created", paid_order(93))
    assert len(store.calls) == 2


def test_deleted_products_are_not_asked_for_and_unlisted_ones_are_remembered_bare(store):
    store.get(f"{API}/products", json=[wc_product(22, tags=[(41, "gift")])])
    items = connector.parse(SHOP, "order.created", paid_order(0, 93, 22))[0].order.line_items
    assert [(li.product_id, li.collections, li.product_tags) for li in items] == [
        ("0", (), ()), ("93", (), ()), ("22", (), ("gift",))]
    connector.parse(SHOP, "order.created", paid_order(93))
    assert listed(store) == [{"include": "22,93", "per_page": "100"}]


def test_more_products_than_a_page_take_one_request_per_page(store):
    ids = list(range(1, products.PER_PAGE + 3))
    store.get(f"{API}/products", json=[wc_product(p, tags=[(1, "t")]) for p in ids[:products.PER_PAGE]])
    store.get(f"{API}/products", json=[wc_product(p, tags=[(1, "t")]) for p in ids[products.PER_PAGE:]])
    items = connector.parse(SHOP, "order.created", paid_order(*ids))[0].order.line_items
    assert all(li.product_tags == ("t",) for li in items)
    assert [len(q["include"].split(",")) for q in listed(store)] == [products.PER_PAGE, 2]


@pytest.mark.parametrize("status, body, headers", [
    (503, "<html><body>Service Unavailable</body></html>", {}),
    (429, {"code": "rest_too_many_requests", "message": "Too many requests", "data": {"status": 429}}, {"Retry-After": "7"}),
])
def test_a_passing_failure_delays_the_order_and_caches_nothing(store, status, body, headers):
    kw = {"json": body} if isinstance(body, dict) else {"body": body}
    store.get(f"{API}/products", status=status, headers=headers, **kw)
    store.get(f"{API}/products", json=[wc_product(93, categories=[(15, "coffee")])])
    with pytest.raises(StoreError) as err:
        connector.parse(SHOP, "order.created", paid_order(93))
    assert err.value.retryable
    # nothing was cached: the retry asks again
    assert connector.parse(SHOP, "order.created", paid_order(93))[0].order.line_items[0].collections == ("coffee", "15")


def test_a_timeout_delays_the_order_and_the_last_try_goes_on_marked():
    import requests

    with responses.RequestsMock() as rsps:
        rsps.get(f"{API}/products", body=requests.Timeout("read timed out"))
        with pytest.raises(StoreError) as err:
            connector.parse(SHOP, "order.created", paid_order(93))
        assert err.value.retryable
        with fallback_allowed():
            events = connector.parse(SHOP, "order.created", paid_order(93))
    assert events[0].order.line_items[0].collections == () and "timed out" in events[0].order.products_unavailable


@pytest.mark.parametrize("status, body", [
    (401, {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}}),
    (404, {"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
           "data": {"status": 404}}),
])
def test_a_permanent_failure_keeps_the_order_without_enrichment_and_logs(store, caplog, status, body):
    store.get(f"{API}/products", status=status, json=body)
    with caplog.at_level(logging.WARNING, logger="keepwell.connectors.woocommerce"):
        created, paid = connector.parse(SHOP, "order.created", paid_order(93))
    assert paid.type == "order.paid" and paid.order.line_items[0].collections == ()
    assert body["code"] in paid.order.products_unavailable
    (record,) = [r for r in caplog.records if r.name == "keepwell.connectors.woocommerce"]
    assert "shop-1" in record.getMessage() and body["code"] in record.getMessage()
    connector.parse(SHOP, "order.created", paid_order(93))  # the same call would fail again: not repeated
    assert len(store.calls) == 1


def test_customers_and_orders_without_events_ask_nothing():
    pending = paid_order(93, status="pending", date_paid_gmt=None)
    with responses.RequestsMock() as rsps:  # any request would fail the test
        assert connector.parse(SHOP, "customer.created", example("customer_create_response.json"))
        assert connector.parse(SHOP, "order.updated", pending) == []
        assert len(rsps.calls) == 0


def test_exports_replayed_by_simulate_are_never_enriched():
    export = replace(SHOP, api_url="")
    with responses.RequestsMock() as rsps:
        assert all(li.collections == () for e in connector.parse(export, "order.created", paid_order())
                   for li in e.order.line_items)
        assert [e.type for e in export_events("woocommerce", [paid_order()])] == ["order.paid"]
        assert len(rsps.calls) == 0


# --- end to end: the shipped cross_sell pack on a live Keepwell -----------------------------------

STORE = "https://store.example"
COFFEE, GEAR, BREWING_ID = 93, 22, 9


class Store:
    """The WooCommerce REST API v3 of one store, behind `responses`: products with categories,
    category look-up by slug, coupons, customers."""

    def __init__(self, rsps):
        self.products = {COFFEE: wc_product(COFFEE, categories=[(15, "coffee")], tags=[(40, "ethiopia")]),
                         GEAR: wc_product(GEAR, categories=[(21, "mugs")])}
        self.categories = [{"id": BREWING_ID, "name": "Brewing", "slug": "brewing", "parent": 0, "description": "",
                            "display": "default", "image": None, "menu_order": 0, "count": 4}]
        self.customers: dict[str, dict] = {}
        self.coupons: list[dict] = []
        self.calls: list[tuple[str, str, dict]] = []
        pattern = re.compile(re.escape(f"{STORE}/wp-json/wc/v3/") + ".*")
        for method in (responses.GET, responses.POST, responses.PUT):
            rsps.add_callback(method, pattern, callback=self.answer, content_type="application/json")

    def answer(self, request):
        parts = urlsplit(request.url)
        path = parts.path.removeprefix("/wp-json/wc/v3/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.calls.append((request.method, path, query))
        body = json.loads(request.body) if request.body else None
        if (request.method, path) == ("GET", "products"):
            wanted = [int(p) for p in query["include"].split(",")]
            return 200, {}, json.dumps([self.products[p] for p in wanted if p in self.products])
        if (request.method, path) == ("GET", "products/categories"):
            return 200, {}, json.dumps([c for c in self.categories if c["slug"] == query.get("slug")])
        if (request.method, path) == ("POST", "coupons"):
            self.coupons.append(body)
            return 201, {}, json.dumps({**example("coupon_create_response.json"), **body, "id": 700 + len(self.coupons),
                                        "code": body["code"].lower()})
        m = re.fullmatch(r"customers/(\d+)", path)
        if m and m.group(1) in self.customers:
            customer = self.customers[m.group(1)]
            if request.method == "PUT":
                customer["meta_data"] += [{"id": 9000 + i, **meta} for i, meta in enumerate(body.get("meta_data") or ())]
            return 200, {}, json.dumps(customer)
        return 404, {}, json.dumps({"code": "rest_no_route", "message": "No route was found matching the URL and "
                                    "request method.", "data": {"status": 404}})


def outside_holdout(shop_id: str, rule_id: str, start: int) -> str:
    """The first customer id from ``start`` the rule's 10 % control group does not hold out."""
    from plugin.engine.decisions import stable_percent
    from plugin.rulefile import RULES_DIR, load_rules

    holdout = load_rules(RULES_DIR).by_id[rule_id].holdout
    n = start
    while stable_percent(shop_id, rule_id, str(n)) < holdout:
        n += 1
    return str(n)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    from live import start, stop

    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    yield live
    stop(live)


def test_a_paid_coffee_order_gets_a_brewing_coupon_and_email_three_days_later(live):
    from live import woo_customer, woo_order
    from plugin.db import DecisionRow, EffectRow, TimerRow
    from plugin.pipeline import sweep_timers

    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": "Keepwell Coffee"})
    customer_id = outside_holdout(shop_id, "cross_sell_brewing", 25)
    email = "lina.berg@example.com"
    stamp = live.clock.now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")  # paid now, as *_gmt

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        api = Store(rsps)
        api.customers[customer_id] = woo_customer(int(customer_id), email=email, first_name="Lina", modified=stamp)
        order = woo_order(4127, int(customer_id), email=email, total="38.00", modified=stamp)
        order["line_items"][0]["product_id"] = COFFEE
        order["line_items"][1]["product_id"] = GEAR
        r = live.post_woocommerce(shop_id, secret, "order.created", order)
        assert r.status_code == 202, r.data
        live.work()

        # the worker asked the store once for both products' categories; nothing is due yet
        assert [q for m, p, q in api.calls if (m, p) == ("GET", "products")] == [
            {"include": f"{GEAR},{COFFEE}", "per_page": "100"}]
        (timer,) = [t for t in live.rows(TimerRow, shop_id=shop_id) if t.event["data"]["rule"] == "cross_sell_brewing"]
        assert timer.wake_at == live.clock.now + timedelta(days=3)
        # the timer re-checks the enriched order, categories included
        items = timer.event["data"]["event"]["order"]["line_items"]
        assert [li.get("collections") for li in items] == [["coffee", "15"], ["mugs", "21"]]
        assert [li.get("product_tags") or [] for li in items] == [["ethiopia"], []]
        assert not live.rows(DecisionRow, rule_id="cross_sell_brewing")
        assert not [b for b in api.coupons if b["code"].startswith("BREW")]

        live.clock.now += timedelta(days=3, minutes=3)
        sweep_timers(live.rt)
        live.work()

        touches = [d for d in live.rows(DecisionRow, rule_id="cross_sell_brewing") if d.kind == "touch"]
        assert len(touches) == 1, [(d.kind, d.reason, d.status, d.detail) for d in live.rows(DecisionRow)]
        (touch,) = touches
        assert touch.status == "done", touch.error
        effects = {e.type: e for e in live.rows(EffectRow, decision_key=touch.key)}
        assert {t: e.status for t, e in effects.items()} == {"coupon": "done", "email": "done"}
        (body,) = [b for b in api.coupons if b["code"] == effects["coupon"].coupon_code]
        assert body["code"].startswith("BREW-")
        assert body["product_categories"] == [BREWING_ID]  # "brewing" resolved to its category id
        assert body["discount_type"] == "percent" and Decimal(body["amount"]) == 10
        assert body["email_restrictions"] == [email]
        assert ("GET", "products/categories", {"slug": "brewing"}) in api.calls

    (msg,) = [m for m in live.smtp.messages if "Brew it better" in m["Subject"]]
    assert msg["To"].addresses[0].addr_spec == email
    assert body["code"] in msg.get_body(("plain",)).get_content()
    assert effects["email"].message_id == msg["Message-ID"]
