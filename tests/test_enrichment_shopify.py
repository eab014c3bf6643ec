"""Shopify orders enriched with their products' collections and tags, and coupons scoped to a
collection named by handle.

The store is mocked at the HTTP layer (``responses``) with the documented GraphQL Admin API
shapes; every document sent is validated against the pinned 2026-10 schema, variables included,
and may use no deprecated field.
"""
from __future__ import annotations

import gzip
import json
import logging
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from graphql import build_client_schema, parse as gql_parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from graphql.validation import NoDeprecatedCustomRule, specified_rules

from connectors.base import Shop
from connectors.products import fallback_allowed
from connectors.cache import MISSING, TTLCache
from connectors.shopify import API_VERSION, connector, coupons, oauth, products
from plugin.engine.actions import Coupon
from plugin.errors import StoreError
from plugin.exports import export_events

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "fixtures" / "shopify" / f"admin_schema_{API_VERSION}.json.gz"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"

SHOP = Shop(id="shop-1", platform="shopify", domain="keepwell-demo.myshopify.com",
            api_url="https://keepwell-demo.myshopify.com", credentials={"access_token": "shpat_test_token"})
OTHER_SHOP = replace(SHOP, id="shop-2", domain="other.myshopify.com", api_url="https://other.myshopify.com")
GRAPHQL_URL = f"https://keepwell-demo.myshopify.com/admin/api/{API_VERSION}/graphql.json"
OTHER_URL = f"https://other.myshopify.com/admin/api/{API_VERSION}/graphql.json"

SHIRT = "9182736450918273645"  # the first line item of order_paid.json; the second is a custom item


# --- helpers -----------------------------------------------------------------------------------

def order(*product_ids) -> dict:
    """tests/fixtures/shopify/order_paid.json, with one line item per product id when given."""
    o = json.loads((FIXTURES / "order_paid.json").read_text())
    if product_ids:
        template = o["line_items"][0]
        o["line_items"] = [{**template, "id": 1000 + i, "product_id": int(p)} for i, p in enumerate(product_ids)]
    return o


def ok(data: dict) -> dict:
    return {"data": data, "extensions": {"cost": {
        "requestedQueryCost": 30, "actualQueryCost": 6,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1994.0, "restoreRate": 100.0}}}}


def product_node(product_id, tags=(), collections=()) -> dict:
    """A Product as ``nodes(ids:)`` returns it for KeepwellProductGroups; ``collections`` are (id, handle)."""
    return {"id": f"gid://shopify/Product/{product_id}", "tags": list(tags),
            "collections": {"nodes": [{"id": f"gid://shopify/Collection/{cid}", "handle": h} for cid, h in collections]}}


def nodes(*items) -> dict:
    return ok({"nodes": list(items)})


def sent(rsps, url: str = GRAPHQL_URL) -> list[dict]:
    return [json.loads(c.request.body) for c in rsps.calls if c.request.url == url]


def asked_for(rsps, url: str = GRAPHQL_URL) -> list[list[str]]:
    """The product ids each KeepwellProductGroups query asked for."""
    return [[gid.rsplit("/", 1)[1] for gid in b["variables"]["ids"]] for b in sent(rsps, url)
            if "KeepwellProductGroups" in b["query"]]


def line_items(events):
    (e,) = events
    return e.order.line_items


@pytest.fixture(scope="session")
def schema():
    with gzip.open(SCHEMA) as f:
        return build_client_schema(json.load(f)["data"], assume_valid=True)


def check_document(schema, body: dict) -> None:
    """Fail unless ``body`` is a valid operation of the pinned schema, uses no deprecated field,
    and its variables coerce to the declared types."""
    doc = gql_parse(body["query"])
    errors = validate(schema, doc, [*specified_rules, NoDeprecatedCustomRule])
    assert errors == [], [e.message for e in errors]
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, op.variable_definitions or (), body.get("variables") or {})
    assert not isinstance(coerced, list), [e.message for e in coerced]


@pytest.fixture(autouse=True)
def fresh_caches():
    products.CACHE.clear()
    coupons.COLLECTION_IDS.clear()
    yield
    products.CACHE.clear()
    coupons.COLLECTION_IDS.clear()


@pytest.fixture
def store(schema):
    """A mocked Shopify store; every GraphQL document sent to it is validated after the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps
        for url in (GRAPHQL_URL, OTHER_URL):
            for body in sent(rsps, url):
                check_document(schema, body)


# --- enrichment --------------------------------------------------------------------------------

def test_an_order_gets_its_products_collections_by_handle_and_id_and_its_tags(store):
    store.post(GRAPHQL_URL, json=nodes(product_node(SHIRT, tags=["linen", "Summer 2026"],
                                                    collections=[(841564295, "shirts"), (841564296, "coffee")])))
    shirt, wrap = line_items(connector.parse(SHOP, "orders/paid", order()))
    assert shirt.collections == ("shirts", "841564295", "coffee", "841564296")
    assert shirt.product_tags == ("linen", "Summer 2026")
    assert (wrap.product_id, wrap.collections, wrap.product_tags) == ("", (), ())  # a custom item names no product
    (body,) = sent(store)
    assert body["variables"] == {"ids": [f"gid://shopify/Product/{SHIRT}"]}
    assert re.search(r"collections\(first: 25\)", body["query"])
    assert store.calls[0].request.headers["X-Shopify-Access-Token"] == SHOP.credentials['access_token']


def test_the_enriched_order_meets_the_shipped_cross_sell_condition(store):
    from plugin.engine import Kind, decide, new_state
    from plugin.engine.state import apply
    from plugin.rulefile import RULES_DIR, load_rules

    store.post(GRAPHQL_URL, json=nodes(product_node(SHIRT, collections=[(841564296, "coffee")])))
    (e,) = connector.parse(SHOP, "orders/paid", order())
    state = apply(new_state(SHOP.id, e.customer_id), e)
    assert {"coffee", "841564296"} <= state.collections_bought
    (d,) = [d for d in decide(e, state, load_rules(RULES_DIR), e.occurred_at) if d.rule_id == "cross_sell_brewing"]
    assert d.kind in (Kind.SCHEDULED, Kind.SUPPRESSED) and d.reason.value in ("delay", "holdout"), (d.kind, d.reason)


def test_one_query_per_order_for_every_product_of_every_event(store):
    store.post(GRAPHQL_URL, json=nodes(product_node(1, collections=[(11, "coffee")]), product_node(2, tags=["mug"]),
                                       product_node(3)))
    items = line_items(connector.parse(SHOP, "orders/create", order(1, 2, 3, 1)))
    assert [li.collections for li in items] == [("coffee", "11"), (), (), ("coffee", "11")]
    assert [li.product_tags for li in items] == [(), ("mug",), (), ()]
    assert asked_for(store) == [["1", "2", "3"]]


def test_a_cached_product_is_not_asked_for_again(store):
    store.post(GRAPHQL_URL, json=nodes(product_node(SHIRT, collections=[(841564296, "coffee")])))
    first = line_items(connector.parse(SHOP, "orders/create", order()))
    second = line_items(connector.parse(SHOP, "orders/paid", order()))
    assert first[0].collections == second[0].collections == ("coffee", "841564296")
    assert len(store.calls) == 1


def test_only_uncached_products_are_asked_for(store):
    store.post(GRAPHQL_URL, json=nodes(product_node(1, collections=[(11, "coffee")])))
    store.post(GRAPHQL_URL, json=nodes(product_node(2, collections=[(12, "brewing")])))
    connector.parse(SHOP, "orders/paid", order(1))
    items = line_items(connector.parse(SHOP, "orders/paid", order(1, 2)))
    assert [li.collections for li in items] == [("coffee", "11"), ("brewing", "12")]
    assert asked_for(store) == [["1"], ["2"]]


def test_the_cache_is_per_shop(store):
    store.post(GRAPHQL_URL, json=nodes(product_node(1, collections=[(11, "coffee")])))
    store.post(OTHER_URL, json=nodes(product_node(1, collections=[(99, "tea")])))
    assert line_items(connector.parse(SHOP, "orders/paid", order(1)))[0].collections == ("coffee", "11")
    assert line_items(connector.parse(OTHER_SHOP, "orders/paid", order(1)))[0].collections == ("tea", "99")


def test_the_cache_expires_after_its_ttl(store, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(products.CACHE, "clock", lambda: now[0])
    store.post(GRAPHQL_URL, json=nodes(product_node(1, collections=[(11, "coffee")])))
    store.post(GRAPHQL_URL, json=nodes(product_node(1, collections=[(11, "coffee"), (12, "gifts")])))
    connector.parse(SHOP, "orders/paid", order(1))
    now[0] += products.TTL_S - 1
    connector.parse(SHOP, "orders/paid", order(1))
    assert len(store.calls) == 1
    now[0] += 2
    assert line_items(connector.parse(SHOP, "orders/paid", order(1)))[0].collections == ("coffee", "11", "gifts", "12")
    assert len(store.calls) == 2


def test_the_cache_is_bounded(monkeypatch):
    cache = TTLCache(ttl=60, size=2)
    for key in "abc":
        cache.put(key, key.upper())
    assert len(cache) == 2 and cache.get("a") is MISSING and cache.get("c") == "C"


def test_a_deleted_product_is_bare_and_remembered(store):
    store.post(GRAPHQL_URL, json=nodes(None, product_node(2, tags=["mug"])))
    items = line_items(connector.parse(SHOP, "orders/paid", order(1, 2)))
    assert [(li.collections, li.product_tags) for li in items] == [((), ()), ((), ("mug",))]
    connector.parse(SHOP, "orders/paid", order(1))
    assert asked_for(store) == [["1", "2"]]


def test_a_large_order_is_asked_for_in_batches_under_the_query_cost_limit(store):
    ids = [str(100 + i) for i in range(products.BATCH + 3)]
    store.post(GRAPHQL_URL, json=nodes(*[product_node(p, tags=["t"]) for p in ids[:products.BATCH]]))
    store.post(GRAPHQL_URL, json=nodes(*[product_node(p, tags=["t"]) for p in ids[products.BATCH:]]))
    items = line_items(connector.parse(SHOP, "orders/paid", order(*ids)))
    assert all(li.product_tags == ("t",) for li in items)
    assert [len(a) for a in asked_for(store)] == [products.BATCH, 3]


RETRYABLE = [
    pytest.param(dict(status=429, headers={"Retry-After": "2.0"}, json={"errors": "Exceeded 2 calls per second"}),
                 "HTTP_429", id="429"),
    pytest.param(dict(status=503, body="Service Unavailable"), "HTTP_503", id="503"),
    pytest.param(dict(status=200, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                                        "extensions": {"cost": {"requestedQueryCost": 700, "actualQueryCost": None,
                                                                "throttleStatus": {"maximumAvailable": 2000.0,
                                                                                   "currentlyAvailable": 100.0,
                                                                                   "restoreRate": 100.0}}}}),
                 "THROTTLED", id="THROTTLED"),
]


@pytest.mark.parametrize("answer, code", RETRYABLE)
def test_a_passing_failure_delays_the_order_and_caches_nothing(store, answer, code):
    store.post(GRAPHQL_URL, **answer)
    store.post(GRAPHQL_URL, json=nodes(product_node(SHIRT, collections=[(11, "coffee")])))
    with pytest.raises(StoreError) as err:
        connector.parse(SHOP, "orders/paid", order())
    assert err.value.retryable and err.value.code == code
    # nothing was cached: the retry asks again, and this time gets the collections
    (e,) = connector.parse(SHOP, "orders/paid", order())
    assert line_items([e])[0].collections == ("coffee", "11") and e.order.products_unavailable is None


@pytest.mark.parametrize("answer, code", RETRYABLE)
def test_the_last_try_goes_on_without_enrichment_and_says_why(store, caplog, answer, code):
    store.post(GRAPHQL_URL, **answer)
    with fallback_allowed():
        (e,) = connector.parse(SHOP, "orders/paid", order())
    assert line_items([e])[0].collections == () and e.order.products_unavailable.startswith(code)
    assert "unavailable" in caplog.text


def test_a_network_failure_delays_the_order():
    with responses.RequestsMock() as rsps:
        rsps.post(GRAPHQL_URL, body=responses.ConnectionError("connection reset"))
        with pytest.raises(StoreError) as err:
            connector.parse(SHOP, "orders/paid", order())
    assert err.value.retryable and err.value.code == "CONNECTION"


PERMANENT = [
    pytest.param(dict(status=200, json={"errors": [{"message": "Access denied for nodes field. Required access: "
                                                               "`read_products` access scope.",
                                                    "extensions": {"code": "ACCESS_DENIED"}}]}),
                 "ACCESS_DENIED", id="missing-scope"),
    pytest.param(dict(status=401, json={"errors": "[API] Invalid API key or access token (unrecognized login or "
                                                  "wrong password)"}), "HTTP_401", id="revoked-token"),
    pytest.param(dict(status=200, json=ok({"nodes": None})), "BAD_RESPONSE", id="no-nodes"),
]


@pytest.mark.parametrize("answer, code", PERMANENT)
def test_a_permanent_failure_keeps_the_order_without_enrichment_and_logs(store, caplog, answer, code):
    store.post(GRAPHQL_URL, **answer)
    with caplog.at_level(logging.WARNING, logger="keepwell.connectors.shopify"):
        (e,) = connector.parse(SHOP, "orders/paid", order())
    assert e.type == "order.paid" and e.order.line_items[0].product_id == SHIRT
    assert e.order.line_items[0].collections == () and e.order.line_items[0].product_tags == ()
    assert e.order.products_unavailable.startswith(code)
    (record,) = [r for r in caplog.records if r.name == "keepwell.connectors.shopify"]
    assert "shop-1" in record.getMessage() and code in record.getMessage()
    (again,) = connector.parse(SHOP, "orders/paid", order())  # the same call would fail again: not repeated
    assert len(store.calls) == 1 and again.order.products_unavailable == e.order.products_unavailable


def test_refunds_and_customers_need_no_products():
    refund = json.loads((FIXTURES / "refund_create.json").read_text())
    customer = json.loads((ROOT / "tests" / "fixtures" / "shopify" / "webhooks"
                           / "2026-04__customers_create.payload.json").read_text())
    with responses.RequestsMock() as rsps:  # any request would fail the test
        (e,) = connector.parse(SHOP, "refunds/create", refund, lambda order_id: "7421852987654321123")
        assert e.type == "order.refunded" and e.order.line_items == ()
        assert connector.parse(SHOP, "customers/create", customer)[0].type == "customer.created"
        assert len(rsps.calls) == 0


def test_an_order_of_custom_items_only_asks_nothing():
    o = order()
    o["line_items"] = [o["line_items"][1]]
    with responses.RequestsMock():
        assert line_items(connector.parse(SHOP, "orders/paid", o))[0].product_id == ""


def test_exports_replayed_by_simulate_are_never_enriched():
    export = replace(SHOP, api_url="")
    with responses.RequestsMock() as rsps:
        (e,) = connector.parse(export, "orders/paid", order())
        assert e.order.line_items[0].collections == ()
        events = list(export_events("shopify", [{**order(), "financial_status": "paid"}]))
        assert [e.type for e in events] == ["order.created", "order.paid"]
        assert len(rsps.calls) == 0


def test_the_product_scope_is_requested():
    assert "read_products" in oauth.SCOPES


# --- coupons scoped to a collection named by handle ----------------------------------------------

def cross_sell_action(**changes) -> Coupon:
    """The shipped cross_sell pack's coupon action, from its JSON form."""
    action = {
        "type": "coupon", "key": "shop-1:cross_sell_brewing:7421852987654321123:order-1:0",
        "code": "BREW-K3J5Q2ZX7A", "title": "Coffee buyers get 10% off brewing gear",
        "discount_type": "percent", "value": "10", "currency": None,
        "expires_at": "2026-11-04T13:12:35+00:00", "starts_at": "2026-10-14T13:12:35+00:00",
        "minimum_subtotal": None, "products": [], "collections": ["brewing"],
        "customer_id": "7421852987654321123", "email": "ana.silva@example.com",
        "usage_limit": 1, "once_per_customer": True,
    }
    action.update(changes)
    return Coupon.from_dict(action)


BREWING = "gid://shopify/Collection/841564297"
CREATED = ok({"discountCodeBasicCreate": {"codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1471023658921"},
                                          "userErrors": []}})


def test_a_coupon_scoped_to_a_collection_handle_gets_its_gid(store):
    store.post(GRAPHQL_URL, json=ok({"collectionByIdentifier": {"id": BREWING}}))
    store.post(GRAPHQL_URL, json=CREATED)
    result = connector.create_coupon(SHOP, cross_sell_action())
    assert result.store_id == "gid://shopify/DiscountCodeNode/1471023658921"
    lookup, create = sent(store)
    assert "KeepwellCollectionByHandle" in lookup["query"] and "collectionByHandle" not in lookup["query"]
    assert lookup["variables"] == {"identifier": {"handle": "brewing"}}
    d = create["variables"]["discount"]
    assert d["customerGets"] == {"value": {"percentage": 0.1}, "items": {"collections": {"add": [BREWING]}}}
    assert d["context"] == {"customers": {"add": ["gid://shopify/Customer/7421852987654321123"]}}


def test_a_resolved_handle_is_cached(store):
    store.post(GRAPHQL_URL, json=ok({"collectionByIdentifier": {"id": BREWING}}))
    store.post(GRAPHQL_URL, json=CREATED)
    store.post(GRAPHQL_URL, json=CREATED)
    connector.create_coupon(SHOP, cross_sell_action())
    connector.create_coupon(SHOP, cross_sell_action(code="BREW-Q9W8E7R6T5", collections=["Brewing"]))
    assert ["KeepwellCollectionByHandle" in b["query"] for b in sent(store)] == [True, False, False]
    assert sent(store)[2]["variables"]["discount"]["customerGets"]["items"] == {"collections": {"add": [BREWING]}}


def test_ids_gids_and_handles_mix(store):
    store.post(GRAPHQL_URL, json=ok({"collectionByIdentifier": {"id": BREWING}}))
    store.post(GRAPHQL_URL, json=CREATED)
    connector.create_coupon(SHOP, cross_sell_action(collections=[841564295, "gid://shopify/Collection/7", "brewing"]))
    items = sent(store)[1]["variables"]["discount"]["customerGets"]["items"]
    assert items == {"collections": {"add": ["gid://shopify/Collection/841564295", "gid://shopify/Collection/7", BREWING]}}


def test_an_unknown_handle_is_final_and_creates_nothing(store):
    store.post(GRAPHQL_URL, json=ok({"collectionByIdentifier": None}))
    with pytest.raises(StoreError, match="no collection with handle 'brewing'") as err:
        connector.create_coupon(SHOP, cross_sell_action())
    assert err.value.retryable is False and err.value.code == "UNKNOWN_COLLECTION"
    assert len(store.calls) == 1


def test_a_throttled_handle_lookup_is_retryable(store):
    store.post(GRAPHQL_URL, status=429, json={"errors": "Exceeded 2 calls per second for api client."})
    with pytest.raises(StoreError) as err:
        connector.create_coupon(SHOP, cross_sell_action())
    assert err.value.retryable is True


# --- end to end: the shipped cross_sell pack on a live Keepwell -----------------------------------

LIVE_DOMAIN = "keepwell-brew.myshopify.com"
LIVE_URL = f"https://{LIVE_DOMAIN}/admin/api/{API_VERSION}/graphql.json"
LIVE_TOKEN = "shpat_live_token"


class GraphQLStore:
    """One shop's GraphQL Admin API behind `responses`: products with collections, collections by
    handle, discount codes and customer tags. Records (operation, variables) of every call."""

    def __init__(self, rsps, products_by_id: dict[str, dict], collections_by_handle: dict[str, str]):
        self.products, self.collections = products_by_id, collections_by_handle
        self.calls: list[tuple[str, dict]] = []
        self.bodies: list[dict] = []
        rsps.add_callback(responses.POST, LIVE_URL, callback=self.answer, content_type="application/json")

    def ops(self, name: str) -> list[dict]:
        return [v for op, v in self.calls if op == name]

    def answer(self, request):
        assert request.headers["X-Shopify-Access-Token"] == LIVE_TOKEN
        body = json.loads(request.body)
        self.bodies.append(body)
        op = re.search(r"\b(?:query|mutation)\s+(\w+)", body["query"]).group(1)
        v = body.get("variables") or {}
        self.calls.append((op, v))
        if op == "KeepwellProductGroups":
            data = {"nodes": [self.products.get(gid.rsplit("/", 1)[1]) for gid in v["ids"]]}
        elif op == "KeepwellCollectionByHandle":
            found = self.collections.get(v["identifier"]["handle"])
            data = {"collectionByIdentifier": {"id": found} if found else None}
        elif op == "KeepwellCouponCreate":
            data = {"discountCodeBasicCreate": {"codeDiscountNode": {
                "id": f"gid://shopify/DiscountCodeNode/{1471023658921 + len(self.ops(op))}"}, "userErrors": []}}
        elif op == "KeepwellTagsAdd":
            data = {"tagsAdd": {"node": {"id": v["id"]}, "userErrors": []}}
        else:
            return 200, {}, json.dumps({"errors": [{"message": f"unexpected {op}", "extensions": {"code": "BAD"}}]})
        return 200, {}, json.dumps(ok(data))


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    from live import start, stop

    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    yield live
    stop(live)


def test_a_paid_coffee_order_gets_a_brewing_coupon_three_days_later(live, schema):
    from plugin.db import DecisionRow, EffectRow, TimerRow
    from plugin.engine.decisions import stable_percent
    from plugin.pipeline import sweep_timers
    from plugin.rulefile import RULES_DIR, load_rules

    shop_id, _ = live.add_shop("shopify", LIVE_DOMAIN, access_token=LIVE_TOKEN, settings={"name": "Keepwell Coffee"})
    holdout = load_rules(RULES_DIR).by_id["cross_sell_brewing"].holdout
    customer = next(str(n) for n in range(7421852987654321000, 7421852987654322000)
                    if stable_percent(shop_id, "cross_sell_brewing", str(n)) >= holdout)
    at = live.clock.now.replace(microsecond=0).isoformat()
    o = order(SHIRT)
    o.update(buyer_accepts_marketing=True, discount_codes=[], created_at=at, processed_at=at, updated_at=at)
    o["customer"].update(id=int(customer), admin_graphql_api_id=f"gid://shopify/Customer/{customer}", updated_at=at)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = GraphQLStore(rsps, {SHIRT: product_node(SHIRT, tags=["ethiopia"], collections=[(841564296, "coffee")])},
                             {"brewing": BREWING})
        r = live.post_shopify("orders/paid", o, LIVE_DOMAIN)
        assert r.status_code == 202, r.data
        live.work()
        assert store.ops("KeepwellProductGroups") == [{"ids": [f"gid://shopify/Product/{SHIRT}"]}]
        (timer,) = [t for t in live.rows(TimerRow, shop_id=shop_id) if t.event["data"]["rule"] == "cross_sell_brewing"]
        assert timer.event["data"]["event"]["order"]["line_items"][0]["collections"] == ["coffee", "841564296"]

        live.clock.now += timedelta(days=3, minutes=3)
        sweep_timers(live.rt)
        live.work()

        (touch,) = [d for d in live.rows(DecisionRow, rule_id="cross_sell_brewing") if d.kind == "touch"]
        assert touch.status == "done", touch.error
        effects = {e.type: e for e in live.rows(EffectRow, decision_key=touch.key)}
        assert {t: e.status for t, e in effects.items()} == {"coupon": "done", "email": "done"}
        (discount,) = [v["discount"] for v in store.ops("KeepwellCouponCreate")
                       if v["discount"]["code"] == effects["coupon"].coupon_code]
        assert discount["code"].startswith("BREW-")
        assert discount["customerGets"]["items"] == {"collections": {"add": [BREWING]}}
        assert discount["context"] == {"customers": {"add": [f"gid://shopify/Customer/{customer}"]}}
        assert store.ops("KeepwellCollectionByHandle") == [{"identifier": {"handle": "brewing"}}]
        for body in store.bodies:
            check_document(schema, body)

    (msg,) = [m for m in live.smtp.messages if "Brew it better" in m["Subject"]]
    assert msg["To"].addresses[0].addr_spec == "ana.silva@example.com"
    assert discount["code"] in msg.get_body(("plain",)).get_content()
