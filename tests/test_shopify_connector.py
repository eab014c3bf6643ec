"""The Shopify connector: signatures, payload parsing, and write-back over the GraphQL Admin API.

The store is mocked only at the HTTP layer (``responses``). Every GraphQL document the
connector sends in these tests is validated against the pinned Admin API schema, and its
variables are coerced against the declared input types.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import inspect
import json
import re
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import responses
from graphql import build_client_schema, parse as gql_parse, validate
from graphql.execution.values import get_variable_values
from graphql.type import validate_schema
from graphql.language import OperationDefinitionNode

from connectors.base import CouponResult, Shop
from connectors.shopify import API_VERSION, connector
from connectors.shopify import api, coupons, payloads, reconcile, subscriptions
from plugin.engine.actions import Coupon, Tag
from plugin.engine.decisions import coupon_code
from plugin.errors import PayloadError, SignatureError, StoreError
from live import basic_discount

ROOT = Path(__file__).resolve().parents[1]
SHOPIFY_FIXTURES = ROOT / "tests" / "fixtures" / "shopify"
SAMPLES = SHOPIFY_FIXTURES / "webhooks"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "shopify"

SECRET = "shpss_current_secret"
OLD_SECRET = "shpss_previous_secret"
SHOP = Shop(id="shop-1", platform="shopify", domain="keepwell-demo.myshopify.com",
            api_url="https://keepwell-demo.myshopify.com", credentials={"access_token": "shpat_test_token"},
            webhook_secrets=(SECRET, OLD_SECRET))
GRAPHQL_URL = f"https://keepwell-demo.myshopify.com/admin/api/{API_VERSION}/graphql.json"
#: The shop as a replayed export sees it: no API, so parsing asks the store nothing.
OFFLINE = Shop(id="shop-1", platform="shopify", domain="keepwell-demo.myshopify.com", api_url="",
               webhook_secrets=(SECRET, OLD_SECRET))


# --- helpers -----------------------------------------------------------------------------------

def sample(name: str) -> tuple[str, bytes]:
    """(topic, raw body bytes) of an official sample, e.g. ``2026-04__orders_paid``."""
    meta = json.loads((SAMPLES / f"{name}.metadata.json").read_text())
    return meta["name"], (SAMPLES / f"{name}.payload.json").read_bytes()


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def cost(requested=10, available=990.0, restore=100.0, actual=10):
    """Shopify's ``extensions.cost`` block, present on every GraphQL Admin response."""
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available,
                                        "restoreRate": restore}}}


def ok(data: dict) -> dict:
    return {"data": data, "extensions": cost()}


def throttled(requested=112, available=12.0, restore=50.0) -> dict:
    return {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": cost(requested=requested, available=available, restore=restore, actual=None)}


def sent(rsps) -> list[dict]:
    """The JSON bodies of the GraphQL requests the connector made."""
    return [json.loads(c.request.body) for c in rsps.calls if c.request.url == GRAPHQL_URL]


# --- the schema and the check every sent document goes through ---------------------------------

@pytest.fixture(scope="session")
def schema():
    with gzip.open(SHOPIFY_FIXTURES / f"admin_schema_{API_VERSION}.json.gz") as f:
        introspection = json.load(f)["data"]
    # Shopify's schema deprecates a few fields that implement non-deprecated interface fields, which
    # graphql-core's newest schema rule rejects. Only that rule may fail; then documents are checked
    # against the schema as Shopify serves it.
    problems = validate_schema(build_client_schema(introspection))
    assert all(DEPRECATED_IMPLEMENTATION.match(p.message) for p in problems), [p.message for p in problems]
    return build_client_schema(introspection, assume_valid=True)


DEPRECATED_IMPLEMENTATION = re.compile(
    r"Interface field \S+ is not deprecated, so implementation field \S+ must not be deprecated\.$")
SEEN_OPERATIONS: set[str] = set()


def check_document(schema, body: dict) -> None:
    """Fail unless ``body`` is a valid operation of the pinned schema with well-typed variables."""
    doc = gql_parse(body["query"])
    errors = validate(schema, doc)
    assert errors == [], [e.message for e in errors]
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, op.variable_definitions or (), body.get("variables") or {})
    assert not isinstance(coerced, list), [e.message for e in coerced]  # a list holds coercion errors
    SEEN_OPERATIONS.add(op.name.value)


@pytest.fixture
def store(schema):
    """A mocked Shopify store; every GraphQL document sent to it is validated after the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps
        for body in sent(rsps):
            check_document(schema, body)
        for call in rsps.calls:
            assert call.request.headers["X-Shopify-Access-Token"] == SHOP.credentials["access_token"]


# --- verify ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["2026-04__orders_paid", "2025-01__customers_create",
                                  "2026-04__customers_email_marketing_consent_update"])
def test_verify_accepts_real_bodies_signed_with_the_current_secret(name):
    _, body = sample(name)
    connector.verify(SHOP, {"X-Shopify-Hmac-Sha256": sign(body)}, body)


def test_verify_accepts_the_old_secret_during_a_rotation():
    _, body = sample("2026-04__orders_create")
    connector.verify(SHOP, {"X-Shopify-Hmac-Sha256": sign(body, OLD_SECRET)}, body)


def test_verify_finds_the_header_in_any_case():
    _, body = sample("2026-04__orders_create")
    connector.verify(SHOP, {"x-shopify-hmac-sha256": sign(body)}, body)


def test_verify_refuses_a_secret_the_shop_no_longer_has():
    _, body = sample("2026-04__orders_create")
    shop = Shop(**{**SHOP.__dict__, "webhook_secrets": (SECRET,)})
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(shop, {"X-Shopify-Hmac-Sha256": sign(body, OLD_SECRET)}, body)


def test_verify_refuses_a_tampered_body():
    _, body = sample("2026-04__orders_paid")
    tampered = body.replace(b'"404.95"', b'"4.95"')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(SHOP, {"X-Shopify-Hmac-Sha256": sign(body)}, tampered)


def test_verify_refuses_a_re_serialised_body():
    """The HMAC covers the raw bytes: parsing and dumping the JSON again breaks it."""
    _, body = sample("2026-04__customers_create")
    again = json.dumps(json.loads(body)).encode()
    with pytest.raises(SignatureError):
        connector.verify(SHOP, {"X-Shopify-Hmac-Sha256": sign(body)}, again)


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing X-Shopify-Hmac-Sha256"),
    ({"X-Shopify-Hmac-Sha256": ""}, "missing X-Shopify-Hmac-Sha256"),
    ({"X-Shopify-Hmac-Sha256": "not base64 at all"}, "does not match"),
    ({"X-Shopify-Hmac-Sha256": hashlib.sha256(b"x").hexdigest()}, "does not match"),  # hex, not base64
])
def test_verify_refuses_missing_and_bad_signatures(headers, reason):
    _, body = sample("2026-04__orders_paid")
    with pytest.raises(SignatureError, match=reason):
        connector.verify(SHOP, headers, body)


def test_verify_refuses_when_the_shop_has_no_secret():
    _, body = sample("2026-04__orders_paid")
    shop = Shop(**{**SHOP.__dict__, "webhook_secrets": ()})
    with pytest.raises(SignatureError, match="no webhook secret"):
        connector.verify(shop, {"X-Shopify-Hmac-Sha256": sign(body)}, body)


# --- delivery_key ------------------------------------------------------------------------------

def test_delivery_key_prefers_the_event_id():
    headers = {"X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
               "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    assert connector.delivery_key(headers, {}) == "98880550-7158-44d4-b7cd-2c97c8a091b5"


def test_delivery_key_falls_back_to_the_webhook_id_in_any_case():
    assert connector.delivery_key({"x-shopify-webhook-id": "b54557e4"}, {}) == "b54557e4"


def test_delivery_key_without_either_header_is_a_payload_error():
    with pytest.raises(PayloadError, match="X-Shopify-Event-Id"):
        connector.delivery_key({"X-Shopify-Topic": "orders/paid"}, {})


def test_shopify_sends_no_unsigned_ping():
    _, body = sample("2026-04__orders_paid")
    assert connector.is_ping({"X-Shopify-Topic": "orders/paid"}, body) is False
    assert connector.is_ping({}, b"webhook_id=1") is False  # WooCommerce's ping shape means nothing here


# --- parse: every official sample ---------------------------------------------------------------

ALL_SAMPLES = sorted(p.name.removesuffix(".payload.json") for p in SAMPLES.glob("*.payload.json"))
EXPECTED_TYPE = {
    "orders/create": "order.created", "orders/paid": "order.paid",
    "customers/create": "customer.created", "customers/update": "customer.updated",
    "customers_email_marketing_consent/update": "customer.consent_changed",
}


def test_the_shared_samples_cover_both_api_versions():
    versions = {n.split("__")[0] for n in ALL_SAMPLES}
    assert {"2025-01", "2026-04"} <= versions
    assert len(ALL_SAMPLES) >= 19


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_official_sample_parses(name):
    topic, body = sample(name)
    events = connector.parse(OFFLINE, topic, json.loads(body))
    if topic not in EXPECTED_TYPE:
        # app/uninstalled, compliance topics, tags and purchasing summary give no rule events
        assert events == []
        return
    (event,) = events
    assert event.type == EXPECTED_TYPE[topic]
    assert event.shop == OFFLINE.id
    assert event.customer_id.isdigit()
    assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset().total_seconds() == 0
    assert event.id == connector.parse(OFFLINE, topic, json.loads(body))[0].id  # deterministic


@pytest.mark.parametrize("version, total, subtotal, items", [
    ("2026-04", "404.95", "404.95", 5),
    ("2025-01", "359.97", "359.97", 3),
])
def test_the_official_order_sample_in_detail(version, total, subtotal, items):
    """The official sample is a voided, cancelled test order; parsed as orders/paid it still maps field by field."""
    topic, body = sample(f"{version}__orders_paid")
    payload = json.loads(body)
    assert payload["financial_status"] == "voided" and payload["cancelled_at"]
    (e,) = connector.parse(OFFLINE, topic, payload)
    # The scraped sample's numeric ids lost precision; the gid carries the real one.
    assert payload["id"] == 820982911946154500
    assert e.order.id == "820982911946154508"
    assert e.customer_id == "115310627314723954"
    assert e.order.total.amount == Decimal(total) and e.order.total.currency == "USD"
    assert e.order.subtotal.amount == Decimal(subtotal)
    assert e.order.number == "#9999"
    assert e.order.discount_codes == ()
    assert len(e.order.line_items) == items
    assert all(li.variant_id is None for li in e.order.line_items)
    assert e.order.line_items[0].product_id == "788032119674292900"
    assert e.order.line_items[0].price.amount == Decimal("89.99")
    assert e.occurred_at == datetime(2022, 1, 1, 0, 0, tzinfo=timezone.utc)  # 19:00 -05:00
    assert e.customer.email == "john@example.com"
    assert (e.customer.first_name, e.customer.last_name) == ("John", "Smith")
    assert e.customer.accepts_marketing is True  # buyer_accepts_marketing: true


def test_custom_line_items_keep_an_empty_product_id():
    topic, body = sample("2026-04__orders_create")
    (e,) = connector.parse(OFFLINE, topic, json.loads(body))
    custom = [li for li in e.order.line_items if li.product_id == ""]
    assert [li.sku for li in custom] == ["LENS-PROTECT-2YR", "CASE-LEATHER-PREM"]


def test_the_official_customer_sample():
    topic, body = sample("2026-04__customers_create")
    (e,) = connector.parse(OFFLINE, topic, json.loads(body))
    assert e.customer_id == "706405506930370084"
    assert e.customer.email == "bob@biller.com"
    assert e.customer.tags is None  # not in customer webhooks since 2025-01: unknown, not empty
    assert e.customer.accepts_marketing is None
    assert e.customer.created_at == datetime(2022, 1, 1, tzinfo=timezone.utc)


def test_the_official_consent_sample():
    topic, body = sample("2026-04__customers_email_marketing_consent_update")
    (e,) = connector.parse(OFFLINE, topic, json.loads(body))
    assert topic == "customers_email_marketing_consent/update"
    assert e.type == "customer.consent_changed"
    assert e.customer.email == "bob@biller.com"
    assert e.customer.accepts_marketing is False


@pytest.mark.parametrize("state, expected", [
    ("subscribed", True), ("SUBSCRIBED", True), ("not_subscribed", False), ("unsubscribed", False),
    ("redacted", False), ("invalid", False), ("pending", None),
])
def test_consent_states(state, expected):
    payload = {"customer_id": 7421852987654321123, "email_address": "ana.silva@example.com",
               "email_marketing_consent": {"state": state, "opt_in_level": "single_opt_in",
                                           "consent_updated_at": "2026-10-14T09:20:00-04:00"}}
    (e,) = connector.parse(OFFLINE, "customers/email_marketing_consent_update", payload)
    assert e.customer.accepts_marketing is expected
    assert e.customer_id == "7421852987654321123"
    assert e.occurred_at == datetime(2026, 10, 14, 13, 20, tzinfo=timezone.utc)


def test_tag_topics_are_ignored():
    topic, body = sample("2026-04__customer.tags_added")
    assert connector.parse(OFFLINE, topic, json.loads(body)) == []
    assert connector.parse(OFFLINE, "customer.tags_removed", json.loads(body)) == []


# --- parse: a realistic paid order --------------------------------------------------------------

def test_a_paid_order():
    (e,) = connector.parse(OFFLINE, "orders/paid", fixture("order_paid.json"))
    assert e.type == "order.paid"
    assert e.id == "shopify:orders/paid:9007199254740993:2026-10-14T13:12:35+00:00"
    assert e.customer_id == "7421852987654321123"
    assert e.occurred_at == datetime(2026, 10, 14, 13, 12, 30, tzinfo=timezone.utc)  # processed_at
    o = e.order
    assert o.total.amount == Decimal("92.30") and o.total.currency == "EUR"
    assert isinstance(o.total.amount, Decimal)
    assert o.subtotal.amount == Decimal("86.40")
    assert o.discount_codes == ("welcome-7kq2m4xd9p",)
    assert o.landing_site == "/products/linen-shirt?ref=REF-A1B2C3"
    shirt, wrap = o.line_items
    assert (shirt.product_id, shirt.variant_id, shirt.quantity, shirt.sku) == (
        "9182736450918273645", "4611686018427387905", 2, "LIN-SH-M")
    assert shirt.price.amount == Decimal("48.00") and shirt.price.currency == "EUR"
    assert (wrap.product_id, wrap.variant_id, wrap.sku) == ("", None, None)
    assert e.customer.accepts_marketing is None  # buyer_accepts_marketing: false is not an opt-out
    assert e.customer.locale == "pt-PT"


def test_big_ids_stay_exact_from_raw_json():
    body = (FIXTURES / "order_paid.json").read_text()
    body = body.replace("9007199254740993", "9223372036854775807")  # 2**63 - 1
    (e,) = connector.parse(OFFLINE, "orders/paid", json.loads(body))
    assert e.order.id == "9223372036854775807"
    assert float(9223372036854775807) != 9223372036854775807  # what a float would have done


def test_a_float_id_is_refused():
    payload = fixture("order_paid.json")
    del payload["admin_graphql_api_id"]
    payload["id"] = 9007199254740993.0
    with pytest.raises(PayloadError, match="'id' is a float"):
        connector.parse(OFFLINE, "orders/paid", payload)


def test_duplicate_deliveries_get_one_event_id():
    first = fixture("order_paid.json")
    second = fixture("order_paid.json")
    second["updated_at"] = "2026-10-14T13:12:35Z"  # the same instant written in UTC
    assert connector.parse(OFFLINE, "orders/paid", first)[0].id == connector.parse(OFFLINE, "orders/paid", second)[0].id
    later = {**first, "updated_at": "2026-10-14T09:30:00-04:00"}
    assert connector.parse(OFFLINE, "orders/paid", later)[0].id != connector.parse(OFFLINE, "orders/paid", first)[0].id


def test_created_and_cancelled_orders():
    payload = fixture("order_paid.json")
    (created,) = connector.parse(OFFLINE, "orders/create", payload)
    assert created.type == "order.created"
    assert created.occurred_at == datetime(2026, 10, 14, 13, 12, 31, tzinfo=timezone.utc)
    payload.update(cancelled_at="2026-10-15T08:00:00+00:00", cancel_reason="customer")
    (cancelled,) = connector.parse(OFFLINE, "orders/cancelled", payload)
    assert cancelled.type == "order.cancelled"
    assert cancelled.occurred_at == datetime(2026, 10, 15, 8, tzinfo=timezone.utc)


def test_a_guest_order_gives_no_event():
    payload = fixture("order_paid.json")
    payload["customer"] = None
    assert connector.parse(OFFLINE, "orders/paid", payload) == []
    del payload["customer"]
    assert connector.parse(OFFLINE, "orders/create", payload) == []


@pytest.mark.parametrize("mutate, field", [
    (lambda p: [p.pop("total_price"), p.pop("total_price_set")], "total_price"),
    (lambda p: p.pop("currency"), "currency"),
    (lambda p: [p.pop("id"), p.pop("admin_graphql_api_id")], "id"),
    (lambda p: [p["customer"].pop("id"), p["customer"].pop("admin_graphql_api_id")], "id"),
    (lambda p: p["line_items"][0].pop("price"), "price"),
    (lambda p: p["line_items"][0].update(quantity="two"), "quantity"),
    (lambda p: [p.update(total_price="lots"), p.pop("total_price_set")], "total_price"),
    (lambda p: p["total_price_set"]["shop_money"].update(amount="lots"), "amount"),
    (lambda p: [p.pop("processed_at"), p.pop("created_at")], "processed_at"),
    (lambda p: p.update(processed_at="yesterday"), "processed_at"),
    (lambda p: p.update(updated_at="soon"), "updated_at"),
])
def test_malformed_orders_name_the_field(mutate, field):
    payload = fixture("order_paid.json")
    mutate(payload)
    with pytest.raises(PayloadError, match=f"'{field}'"):
        connector.parse(OFFLINE, "orders/paid", payload)


def test_malformed_customer_and_consent_payloads():
    with pytest.raises(PayloadError, match="'id'"):
        connector.parse(OFFLINE, "customers/update", {"email": "x@example.com", "updated_at": "2026-10-01T00:00:00Z"})
    with pytest.raises(PayloadError, match="email_marketing_consent.state"):
        connector.parse(OFFLINE, "customers_email_marketing_consent/update", {"customer_id": 1})
    with pytest.raises(PayloadError, match="not a JSON object"):
        connector.parse(OFFLINE, "orders/paid", ["not", "an", "object"])


def test_unknown_topics_give_no_event():
    assert connector.parse(OFFLINE, "products/update", {"id": 1}) == []


# --- parse: refunds ----------------------------------------------------------------------------

def test_a_refund_asks_the_worker_for_the_customer_first(store):
    asked = []
    (e,) = connector.parse(SHOP, "refunds/create", fixture("refund_create.json"),
                           customer_of_order=lambda order_id: asked.append(order_id) or "7421852987654321123")
    assert asked == ["9007199254740993"]
    assert len(store.calls) == 0  # the worker knew: no store call
    assert e.type == "order.refunded"
    assert e.customer_id == "7421852987654321123"
    assert e.order.id == "9007199254740993"
    assert e.order.refunded.amount == Decimal("38.40")  # the failed transaction does not count
    assert e.order.refunded.currency == "EUR"  # from subtotal_set: transactions say currency null
    assert e.data == {"refund_id": "9007199254741001"}
    assert e.occurred_at == datetime(2026, 10, 20, 9, 0, 2, tzinfo=timezone.utc)


def test_a_refund_looks_the_customer_up_in_the_store(store):
    store.post(GRAPHQL_URL, json=ok({"order": {"id": "gid://shopify/Order/9007199254740993",
                                               "customer": {"id": "gid://shopify/Customer/7421852987654321123"}}}))
    (e,) = connector.parse(SHOP, "refunds/create", fixture("refund_create.json"), customer_of_order=lambda _: None)
    assert e.customer_id == "7421852987654321123"
    (body,) = sent(store)
    assert body["variables"] == {"id": "gid://shopify/Order/9007199254740993"}


def test_a_refund_of_a_guest_order_gives_no_event(store):
    store.post(GRAPHQL_URL, json=ok({"order": {"id": "gid://shopify/Order/9007199254740993", "customer": None}}))
    assert connector.parse(SHOP, "refunds/create", fixture("refund_create.json")) == []


def test_a_refund_without_transactions_counts_its_line_items():
    payload = fixture("refund_create.json")
    payload["transactions"] = []
    payload["refund_line_items"].append({**payload["refund_line_items"][0], "subtotal": 9.99})
    (e,) = connector.parse(SHOP, "refunds/create", payload, customer_of_order=lambda _: "1")
    assert e.order.refunded.amount == Decimal("48.39")


def test_a_refund_without_any_currency_is_malformed():
    payload = fixture("refund_create.json")
    payload["refund_line_items"] = []
    with pytest.raises(PayloadError, match="currency"):
        connector.parse(SHOP, "refunds/create", payload, customer_of_order=lambda _: "1")


def test_a_refund_without_order_id_is_malformed():
    payload = fixture("refund_create.json")
    del payload["order_id"]
    with pytest.raises(PayloadError, match="'order_id'"):
        connector.parse(SHOP, "refunds/create", payload, customer_of_order=lambda _: "1")


# --- create_coupon -----------------------------------------------------------------------------

def coupon_action(**changes) -> Coupon:
    """An engine coupon action, from its JSON form (Decision.to_dict()["actions"][i])."""
    action = {
        "type": "coupon", "key": "shop-1:winback:7421852987654321123:order-1:0",
        "code": "WINBACK-K3J5Q2ZX7A", "title": "Win-back WINBACK-K3J5Q2ZX7A",
        "discount_type": "percent", "value": "15", "currency": None,
        "expires_at": "2026-11-14T13:12:35+00:00", "starts_at": "2026-10-14T13:12:35+00:00",
        "minimum_subtotal": None, "products": [], "collections": [],
        "customer_id": "7421852987654321123", "email": "ana.silva@example.com",
        "usage_limit": 1, "once_per_customer": True,
    }
    action.update(changes)
    return Coupon.from_dict(action)


CREATED = ok({"discountCodeBasicCreate": {
    "codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1471023658921"}, "userErrors": []}})


def test_a_personal_percentage_coupon(store):
    store.post(GRAPHQL_URL, json=CREATED)
    result = connector.create_coupon(SHOP, coupon_action())
    assert result == CouponResult(code="WINBACK-K3J5Q2ZX7A", store_id="gid://shopify/DiscountCodeNode/1471023658921")
    (body,) = sent(store)
    d = body["variables"]["discount"]
    assert d["code"] == "WINBACK-K3J5Q2ZX7A"
    assert d["customerGets"] == {"value": {"percentage": 0.15}, "items": {"all": True}}
    assert d["context"] == {"customers": {"add": ["gid://shopify/Customer/7421852987654321123"]}}
    assert "customerSelection" not in d  # deprecated since 2025-10
    assert d["usageLimit"] == 1 and d["appliesOncePerCustomer"] is True
    assert d["startsAt"] == "2026-10-14T13:12:35+00:00" and d["endsAt"] == "2026-11-14T13:12:35+00:00"
    assert d["minimumRequirement"] is None


def test_a_fixed_coupon_with_a_minimum_subtotal_and_no_expiry(store):
    store.post(GRAPHQL_URL, json=CREATED)
    connector.create_coupon(SHOP, coupon_action(discount_type="fixed", value="5", currency="EUR", expires_at=None,
                                                minimum_subtotal={"amount": "50", "currency": "EUR"}))
    d = sent(store)[0]["variables"]["discount"]
    assert d["customerGets"]["value"] == {"discountAmount": {"amount": "5", "appliesOnEachItem": False}}
    assert d["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "50"}}
    assert d["endsAt"] is None


def test_a_coupon_scoped_to_products_and_collections(store):
    store.post(GRAPHQL_URL, json=CREATED)
    connector.create_coupon(SHOP, coupon_action(products=["9182736450918273645", "gid://shopify/Product/42"],
                                                collections=[841564295]))
    items = sent(store)[0]["variables"]["discount"]["customerGets"]["items"]
    assert items == {"products": {"productsToAdd": ["gid://shopify/Product/9182736450918273645",
                                                    "gid://shopify/Product/42"]},
                     "collections": {"add": ["gid://shopify/Collection/841564295"]}}


def test_a_referral_code_is_for_everyone(store):
    store.post(GRAPHQL_URL, json=CREATED)
    connector.create_coupon(SHOP, coupon_action(code="REF-7QX2A9", customer_id=None, email=None, usage_limit=None,
                                                value="10"))
    d = sent(store)[0]["variables"]["discount"]
    assert d["context"] == {"all": "ALL"}
    assert d["usageLimit"] is None
    assert d["appliesOncePerCustomer"] is True
    assert d["customerGets"]["value"] == {"percentage": 0.1}


TAKEN_ERRORS = [
    # What Shopify answers for a code in use (DiscountUserError with code TAKEN) ...
    {"field": ["basicCodeDiscount", "code"], "message": "Code must be unique. Please try a different code.",
     "code": "TAKEN", "extraInfo": None},
    # ... and the message-only form older answers and other discount mutations use.
    {"field": ["basicCodeDiscount", "code"], "message": "must be unique. Please try a different code.",
     "code": None, "extraInfo": None},
]


def found(action: dict, **changes) -> dict:
    """``codeDiscountNodeByCode`` answering the discount ``action`` describes, as Shopify reads it
    back (amounts as decimals, ``context`` as DiscountCustomers), with ``changes`` made to it."""
    node = basic_discount(coupons.discount_input(action))
    node.update(changes)
    return ok({"codeDiscountNodeByCode": {"id": "gid://shopify/DiscountCodeNode/1471023658921", "codeDiscount": node}})


@pytest.mark.parametrize("error", TAKEN_ERRORS)
def test_a_code_our_earlier_attempt_created_is_adopted(store, error):
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [error]}}))
    store.post(GRAPHQL_URL, json=found(coupon_action()))
    result = connector.create_coupon(SHOP, coupon_action())
    assert result == CouponResult(code="WINBACK-K3J5Q2ZX7A", store_id="gid://shopify/DiscountCodeNode/1471023658921",
                                  already_existed=True)
    assert sent(store)[1]["variables"] == {"code": "WINBACK-K3J5Q2ZX7A"}


OTHER_CUSTOMER = {"__typename": "DiscountCustomers", "customers": [{"id": "gid://shopify/Customer/1"}]}


@pytest.mark.parametrize("changes, difference", [
    ({"context": {"__typename": "DiscountBuyerSelectionAll", "all": "ALL"}}, "for customers all"),
    ({"context": OTHER_CUSTOMER}, "for customers ['gid://shopify/Customer/1']"),
    ({"customerGets": {"value": {"__typename": "DiscountPercentage", "percentage": 0.5},
                       "items": {"__typename": "AllDiscountItems", "allItems": True}}}, "value ('percentage', 0.5)"),
    ({"endsAt": None}, "endsAt None"),
    ({"startsAt": "2026-01-01T00:00:00Z"}, "startsAt 2026-01-01"),
    ({"usageLimit": None}, "usageLimit None"),
    ({"minimumRequirement": {"__typename": "DiscountMinimumSubtotal",
                             "greaterThanOrEqualToSubtotal": {"amount": "100.0"}}}, "minimum subtotal 100.0"),
    ({"__typename": "DiscountCodeFreeShipping"}, "a DiscountCodeFreeShipping discount"),
])
def test_a_taken_code_that_is_not_ours_gets_a_fresh_code(store, changes, difference):
    action = coupon_action()
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [TAKEN_ERRORS[0]]}}))
    store.post(GRAPHQL_URL, json=found(action, **changes))
    store.post(GRAPHQL_URL, json=CREATED)
    result = connector.create_coupon(SHOP, action)
    fresh = coupon_code("WINBACK", f"{action.key}:taken")
    assert result.code == fresh and result.store_id == "gid://shopify/DiscountCodeNode/1471023658921"
    assert difference in result.conflict and result.conflict.endswith(f"created {fresh} instead")
    retry = sent(store)[2]["variables"]["discount"]
    assert retry["code"] == fresh and retry["title"] == f"Win-back {fresh}"
    assert retry["context"] == {"customers": {"add": ["gid://shopify/Customer/7421852987654321123"]}}


def test_a_taken_referral_code_that_is_not_ours_is_final(store):
    """A referral code must stay the customer's own (friends' orders are recognised by it)."""
    action = coupon_action(customer_id=None, email=None, usage_limit=None)
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [TAKEN_ERRORS[0]]}}))
    store.post(GRAPHQL_URL, json=found(action, endsAt=None))
    with pytest.raises(StoreError) as err:
        connector.create_coupon(SHOP, action)
    assert err.value.code == "CODE_CONFLICT" and err.value.retryable is False and "endsAt None" in err.value.message


def test_other_user_errors_are_final_and_carry_the_store_message(store):
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [
        {"field": ["basicCodeDiscount", "customerGets", "items", "products", "productsToAdd"],
         "message": "Product with id: 42 is invalid", "code": "INVALID", "extraInfo": None}]}}))
    with pytest.raises(StoreError) as err:
        connector.create_coupon(SHOP, coupon_action(products=["42"]))
    assert err.value.retryable is False
    assert err.value.code == "INVALID"
    assert "Product with id: 42 is invalid" in err.value.message
    assert "customerGets.items.products.productsToAdd" in err.value.message


def test_taken_about_another_field_is_not_success(store):
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [
        {"field": ["basicCodeDiscount", "title"], "message": "Title has already been taken", "code": "TAKEN",
         "extraInfo": None}]}}))
    with pytest.raises(StoreError, match="Title has already been taken"):
        connector.create_coupon(SHOP, coupon_action())


@pytest.mark.parametrize("changes, reason", [
    ({"discount_type": "bogo"}, "unknown discount_type"),
    ({"value": Decimal("150")}, "not in"),
    ({"customer_id": "ana@example.com"}, "neither a number nor a gid"),
])
def test_a_bad_action_is_refused_before_any_call(changes, reason):
    """(A value that is not a number cannot be a Coupon: Coupon.from_dict refuses it, tests/test_actions.py.)"""
    with responses.RequestsMock() as rsps:
        with pytest.raises(StoreError, match=reason) as err:
            connector.create_coupon(SHOP, replace(coupon_action(), **changes))
        assert len(rsps.calls) == 0
    assert err.value.retryable is False


def test_discount_link():
    assert connector.discount_link(SHOP, "REF-7QX2A9") == "https://keepwell-demo.myshopify.com/discount/REF-7QX2A9"
    odd = Shop(**{**SHOP.__dict__, "domain": "https://keepwell-demo.myshopify.com/"})
    assert connector.discount_link(odd, "A B/C") == "https://keepwell-demo.myshopify.com/discount/A%20B%2FC"


# --- add_tag -----------------------------------------------------------------------------------

def test_add_tag(store):
    store.post(GRAPHQL_URL, json=ok({"tagsAdd": {"node": {"id": "gid://shopify/Customer/7421852987654321123"},
                                                 "userErrors": []}}))
    connector.add_tag(SHOP, "7421852987654321123", Tag(key="k:0", tag="keepwell-vip"))
    assert sent(store)[0]["variables"] == {"id": "gid://shopify/Customer/7421852987654321123", "tags": ["keepwell-vip"]}


def test_add_tag_user_errors_are_final(store):
    store.post(GRAPHQL_URL, json=ok({"tagsAdd": {"node": None, "userErrors": [
        {"field": ["id"], "message": "Customer does not exist"}]}}))
    with pytest.raises(StoreError, match="Customer does not exist") as err:
        connector.add_tag(SHOP, "1", Tag(key="k:0", tag="keepwell-vip"))
    assert err.value.retryable is False


# --- register_webhooks -------------------------------------------------------------------------

def test_register_webhooks(store):
    for topic in subscriptions.TOPICS:
        if topic == "ORDERS_PAID":  # subscribed before: Shopify says the address is taken
            store.post(GRAPHQL_URL, json=ok({"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
                {"field": ["webhookSubscription", "callbackUrl"],
                 "message": "Address for this topic has already been taken"}]}}))
        else:
            store.post(GRAPHQL_URL, json=ok({"webhookSubscriptionCreate": {
                "webhookSubscription": {"id": "gid://shopify/WebhookSubscription/1"}, "userErrors": []}}))
    topics = connector.register_webhooks(SHOP, "https://keepwell.example.com/")
    assert topics == ["orders/create", "orders/paid", "orders/cancelled", "refunds/create", "customers/create",
                      "customers/update", "customers_email_marketing_consent/update",
                      "customers_marketing_consent/update", "app/uninstalled"]
    bodies = sent(store)
    assert [b["variables"]["topic"] for b in bodies] == list(subscriptions.TOPICS)
    assert {b["variables"]["uri"] for b in bodies} == {"https://keepwell.example.com/webhooks/shopify"}


def test_register_webhooks_other_errors_are_final(store):
    store.post(GRAPHQL_URL, json=ok({"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": [
        {"field": ["webhookSubscription", "callbackUrl"], "message": "Address is invalid"}]}}))
    with pytest.raises(StoreError, match="Address is invalid"):
        connector.register_webhooks(SHOP, "http://localhost")


# --- changes_since -----------------------------------------------------------------------------

def customer_node(n: int, created="2026-10-14T12:00:00Z", state="SUBSCRIBED") -> dict:
    return {"legacyResourceId": str(7421852987654321100 + n), "firstName": "Ana", "lastName": "Silva",
            "locale": "pt-PT", "createdAt": created, "updatedAt": "2026-10-14T12:05:00Z", "tags": ["vip", "newsletter"],
            "defaultEmailAddress": {"emailAddress": f"c{n}@example.com", "marketingState": state,
                                    "marketingUpdatedAt": "2026-10-14T09:30:00Z"}}


def order_node(n: int, status="PAID", cancelled=None, customer=True) -> dict:
    money = lambda a: {"shopMoney": {"amount": a, "currencyCode": "EUR"}}  # noqa: E731
    return {
        "legacyResourceId": str(9007199254740990 + n), "name": f"#10{n}", "email": "c1@example.com",
        "createdAt": "2026-10-14T13:12:31Z", "updatedAt": "2026-10-14T13:12:35Z", "processedAt": "2026-10-14T13:12:30Z",
        "cancelledAt": cancelled, "displayFinancialStatus": status, "currencyCode": "EUR",
        "customerAcceptsMarketing": True, "customerLocale": "pt-PT", "discountCodes": ["WELCOME-7KQ2M4XD9P"],
        "totalPriceSet": money("92.30"), "subtotalPriceSet": money("86.40"),
        "customer": None if not customer else {
            "legacyResourceId": "7421852987654321101", "firstName": "Ana", "lastName": "Silva",
            "createdAt": "2026-03-02T17:40:00Z", "defaultEmailAddress": {"emailAddress": "c1@example.com"}},
        "lineItems": {"nodes": [
            {"quantity": 2, "sku": "LIN-SH-M", "title": "Linen shirt",
             "product": {"legacyResourceId": "9182736450918273645"}, "variant": {"legacyResourceId": "4611686018427387905"},
             "originalUnitPriceSet": {"shopMoney": {"amount": "48.0"}}},
            {"quantity": 1, "sku": None, "title": "Gift wrapping", "product": None, "variant": None,
             "originalUnitPriceSet": {"shopMoney": {"amount": "0.0"}}},
        ]},
    }


def page(root: str, nodes: list, cursor: str | None) -> dict:
    return ok({root: {"pageInfo": {"hasNextPage": cursor is not None, "endCursor": cursor}, "nodes": nodes}})


def test_changes_since_pages_through_customers_and_orders(store):
    since = datetime(2026, 10, 14, 11, 0, tzinfo=timezone.utc)
    store.post(GRAPHQL_URL, json=page("customers", [customer_node(1), customer_node(2, created="2026-01-01T00:00:00Z",
                                                                                    state="UNSUBSCRIBED")], None))
    store.post(GRAPHQL_URL, json=page("orders", [order_node(1), order_node(2, status="PENDING")], "eyJsYXN0X2lkIjoy"))
    store.post(GRAPHQL_URL, json=page("orders", [order_node(3, status="REFUNDED", cancelled="2026-10-15T08:00:00Z"),
                                                 order_node(4, customer=False)], None))
    changes = list(connector.changes_since(SHOP, since))
    assert [t for t, _ in changes] == ["customers/create", "customers/update", "orders/paid", "orders/create",
                                       "orders/cancelled", "orders/paid"]
    bodies = sent(store)
    assert bodies[0]["variables"] == {"query": "updated_at:>'2026-10-14T11:00:00Z'", "after": None}
    assert bodies[2]["variables"] == {"query": "updated_at:>'2026-10-14T11:00:00Z'", "after": "eyJsYXN0X2lkIjoy"}

    events = [e for topic, payload in changes for e in connector.parse(OFFLINE, topic, payload)]
    assert len(events) == 5  # the guest order gives none
    c1, c2, paid, created, cancelled = events
    assert c1.type == "customer.created" and c1.customer.accepts_marketing is True
    assert c1.customer.tags == ("vip", "newsletter")
    assert c2.type == "customer.updated" and c2.customer.accepts_marketing is False
    assert paid.type == "order.paid" and paid.order.id == "9007199254740991"
    assert paid.customer_id == "7421852987654321101"
    assert paid.order.total.amount == Decimal("92.30") and paid.order.total.currency == "EUR"
    assert paid.order.discount_codes == ("welcome-7kq2m4xd9p",)
    assert [li.product_id for li in paid.order.line_items] == ["9182736450918273645", ""]
    assert paid.order.line_items[0].variant_id == "4611686018427387905"
    assert created.type == "order.created" and cancelled.type == "order.cancelled"


def test_a_reconciled_order_has_the_webhook_event_id():
    """The same order change seen by a webhook and by reconciliation is one event."""
    webhook = fixture("order_paid.json")
    node = order_node(3)
    node["legacyResourceId"] = str(webhook["id"])
    node["updatedAt"] = "2026-10-14T13:12:35Z"  # = 09:12:35-04:00
    payload = reconcile.order_payload(node)
    assert connector.parse(OFFLINE, "orders/paid", payload)[0].id == connector.parse(OFFLINE, "orders/paid", webhook)[0].id


# --- every document, validated -----------------------------------------------------------------

def test_every_document_the_connector_can_send_is_valid(store, schema):
    """Drive each write and read once; the ``store`` fixture validates what was actually sent."""
    store.post(GRAPHQL_URL, json=CREATED)
    store.post(GRAPHQL_URL, json=ok({"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [TAKEN_ERRORS[0]]}}))
    store.post(GRAPHQL_URL, json=found(coupon_action(customer_id=None, usage_limit=None)))
    store.post(GRAPHQL_URL, json=ok({"tagsAdd": {"node": None, "userErrors": []}}))
    store.post(GRAPHQL_URL, json=ok({"order": None}))
    for _ in subscriptions.TOPICS:
        store.post(GRAPHQL_URL, json=ok({"webhookSubscriptionCreate": {"webhookSubscription": None, "userErrors": []}}))
    store.post(GRAPHQL_URL, json=page("customers", [], None))
    store.post(GRAPHQL_URL, json=page("orders", [], None))

    connector.create_coupon(SHOP, coupon_action(discount_type="fixed", value="5", currency="EUR",
                                                minimum_subtotal={"amount": "50", "currency": "EUR"},
                                                products=["1"], collections=["2"]))
    assert connector.create_coupon(SHOP, coupon_action(customer_id=None, usage_limit=None)).already_existed
    connector.add_tag(SHOP, "1", Tag(key="k:0", tag="vip"))
    assert connector.parse(SHOP, "refunds/create", fixture("refund_create.json")) == []
    connector.register_webhooks(SHOP, "https://keepwell.example.com")
    assert list(connector.changes_since(SHOP, "2026-10-01T00:00:00+02:00")) == []

    for body in sent(store):
        check_document(schema, body)
    assert SEEN_OPERATIONS >= {"KeepwellCouponCreate", "KeepwellCouponByCode", "KeepwellTagsAdd",
                               "KeepwellOrderCustomer", "KeepwellWebhookSubscribe", "KeepwellCustomersSince",
                               "KeepwellOrdersSince"}
    # The date given with an offset is searched in UTC.
    assert sent(store)[-1]["variables"]["query"] == "updated_at:>'2026-09-30T22:00:00Z'"


def test_the_checker_rejects_what_shopify_would(schema):
    """The validation is not vacuous: deprecated-era inputs and wrong variable types fail it."""
    bad_field = {"query": "mutation { tagsAdd(id: \"1\", tags: [\"x\"]) { userErrors { nope } } }"}
    with pytest.raises(AssertionError):
        check_document(schema, bad_field)
    wrong_type = {"query": coupons.CREATE_DISCOUNT, "variables": {"discount": {
        **coupons.discount_input(coupon_action()), "customerGets": {"value": {"percentage": "15%"}}}}}
    with pytest.raises(AssertionError):
        check_document(schema, wrong_type)
    two_contexts = {"query": coupons.CREATE_DISCOUNT, "variables": {"discount": {
        **coupons.discount_input(coupon_action()), "context": {"all": "ALL", "customers": {"add": ["gid://shopify/Customer/1"]}}}}}
    with pytest.raises(AssertionError):
        check_document(schema, two_contexts)  # DiscountContextInput is @oneOf


# --- failure classification --------------------------------------------------------------------

CLASSIFICATION = [
    # (status, headers, body, retryable, retry_after, code)
    (200, {}, throttled(requested=112, available=12.0, restore=50.0), True, 2.0, "THROTTLED"),
    (200, {}, {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}, True, 1.0, "THROTTLED"),
    (429, {"Retry-After": "2.0"}, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."},
     True, 2.0, "HTTP_429"),
    (429, {}, throttled(requested=100, available=0.0, restore=100.0), True, 1.0, "HTTP_429"),
    (500, {}, {"errors": "Internal Server Error"}, True, None, "HTTP_500"),
    (502, {}, "<html>Bad Gateway</html>", True, None, "HTTP_502"),
    (503, {"Retry-After": "30"}, {"errors": "Unavailable Shop"}, True, 30.0, "HTTP_503"),
    (200, {}, {"errors": [{"message": "Internal error. Looks like something went wrong on our end.\nRequest ID: 0b3c",
                           "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": "0b3c"}}]}, True, None,
     "INTERNAL_SERVER_ERROR"),
    (200, {}, "<html>not json</html>", True, None, "BAD_RESPONSE"),
    (401, {}, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, False, None,
     "HTTP_401"),
    (402, {}, {"errors": "Unavailable Shop"}, False, None, "HTTP_402"),
    (403, {}, {"errors": "[API] This action requires merchant approval for write_discounts scope."}, False, None,
     "HTTP_403"),
    (404, {}, {"errors": "Not Found"}, False, None, "HTTP_404"),
    (423, {}, {"errors": "This shop is unavailable"}, False, None, "HTTP_423"),
    (301, {"Location": "https://elsewhere.myshopify.com/admin/api/2026-10/graphql.json"}, "", False, None, "HTTP_301"),
    (200, {}, {"errors": [{"message": "Access denied for discountCodeBasicCreate field. Required access: `write_discounts` access scope.",
                           "extensions": {"code": "ACCESS_DENIED"}}]}, False, None, "ACCESS_DENIED"),
    (200, {}, {"errors": [{"message": "Field 'nope' doesn't exist on type 'UserError'",
                           "locations": [{"line": 1, "column": 50}], "path": ["mutation", "tagsAdd"],
                           "extensions": {"code": "undefinedField", "typeName": "UserError", "fieldName": "nope"}}]},
     False, None, "undefinedField"),
]


@pytest.mark.parametrize("status, headers, body, retryable, retry_after, code", CLASSIFICATION)
def test_failure_classification(status, headers, body, retryable, retry_after, code):
    with responses.RequestsMock() as rsps:
        kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
        rsps.post(GRAPHQL_URL, status=status, headers=headers, **kwargs)
        with pytest.raises(StoreError) as err:
            connector.add_tag(SHOP, "1", Tag(key="k:0", tag="vip"))
    e = err.value
    assert (e.retryable, e.retry_after, e.code) == (retryable, retry_after, code)
    assert e.status == status
    if isinstance(body, dict) and isinstance(body.get("errors"), str):
        assert body["errors"] in e.message  # the store's own words reach the merchant


@pytest.mark.parametrize("exc, code", [
    (requests.ConnectTimeout("connect timed out"), "TIMEOUT"),
    (requests.ReadTimeout("read timed out"), "TIMEOUT"),
    (requests.ConnectionError("Connection refused"), "CONNECTION"),
])
def test_network_failures_are_retryable(exc, code):
    with responses.RequestsMock() as rsps:
        rsps.post(GRAPHQL_URL, body=exc)
        with pytest.raises(StoreError) as err:
            connector.create_coupon(SHOP, coupon_action())
    assert err.value.retryable is True
    assert err.value.code == code
    assert err.value.status is None


def test_throttle_wait_uses_the_bucket_not_a_constant():
    assert api.throttle_wait(throttled(requested=1000, available=0.0, restore=1000.0)) == 1.0
    assert api.throttle_wait(throttled(requested=302, available=2.0, restore=100.0)) == 3.0
    assert api.throttle_wait(throttled(requested=10, available=50.0, restore=100.0)) == api.DEFAULT_RETRY_AFTER
    assert api.throttle_wait({"extensions": {}}) == api.DEFAULT_RETRY_AFTER


def test_the_connector_pins_the_api_version_and_satisfies_the_interface():
    from connectors.interfaces import INTERFACES
    assert API_VERSION == "2026-10"
    assert connector.platform == "shopify"
    for interface in INTERFACES:
        assert isinstance(connector, interface), interface.__name__
        for name in interface.__dict__:
            if not name.startswith("_") and callable(interface.__dict__[name]):
                assert callable(getattr(connector, name)), name
    assert "customer_of_order" in inspect.signature(connector.parse).parameters
    assert payloads.ORDER_CUSTOMER_QUERY  # the refund lookup document lives with parse
