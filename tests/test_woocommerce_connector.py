"""connectors/woocommerce: webhook signatures and pings, payloads -> canonical events (every
real docs example), and write-back over REST v3 with the store mocked at the HTTP layer."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
import responses
from responses import matchers
from werkzeug.datastructures import Headers

from connectors.base import CouponResult, Shop
from connectors.woocommerce import WooCommerceConnector, connector
from connectors.woocommerce.oauth import signature as oauth_signature
from plugin.engine.state import apply, new_state
from plugin.engine.actions import Coupon, Tag
from plugin.engine.decisions import coupon_code
from plugin.errors import PayloadError, SignatureError, StoreError

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "woocommerce" / "rest-v3-docs-examples"
API = "https://example.com/wp-json/wc/v3"
PLAIN_API = "http://example.com/wp-json/wc/v3"

SHOP = Shop(
    id="shop-1",
    platform="woocommerce",
    domain="https://example.com",
    api_url="https://example.com",
    credentials={"consumer_key": "ck_4fd8b5a2cd0a1f6e7a0b9c8d7e6f5a4b3c2d1e0f", "consumer_secret": "cs_1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"},
    webhook_secrets=("current-secret", "previous-secret"),
    settings={"consent_meta_key": "_wc_marketing_opt_in", "birthday_meta_key": "birthday"},
)
PLAIN_SHOP = replace(SHOP, api_url="http://example.com")
#: The shop as a replayed export sees it: no API, so parsing asks the store nothing.
OFFLINE = replace(SHOP, api_url="")


def example(name: str):
    return json.loads((EXAMPLES / name).read_text())


def wc_body(payload) -> bytes:
    """The body as WooCommerce sends it: trim(wp_json_encode($payload)) escapes / and non-ASCII."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def wc_headers(topic: str, body: bytes, secret: str = "current-secret", **extra) -> dict:
    resource, event = topic.split(".")
    return {
        "User-Agent": "WooCommerce/8.9.1 Hookshot (WordPress/6.5.2)",
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": "https://example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(body, secret),
        "X-WC-Webhook-ID": "142",
        "X-WC-Webhook-Delivery-ID": "b2c9e7f0d1a34c8e9f6b5a4d3c2e1f00",
        **extra,
    }


def error_body(code: str, message: str, status: int) -> dict:
    return {"code": code, "message": message, "data": {"status": status}}


@pytest.fixture
def store():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    """The worker owns retries: the connector must never sleep."""
    def refuse(seconds):
        raise AssertionError(f"connector slept {seconds}s")
    monkeypatch.setattr(time, "sleep", refuse)


# --- the interface -----------------------------------------------------------------------------

def test_connector_exposes_the_interface():
    assert isinstance(connector, WooCommerceConnector)
    assert connector.platform == "woocommerce"
    for name in ("verify", "is_ping", "delivery_key", "parse", "create_coupon", "add_tag",
                 "register_webhooks", "changes_since"):
        assert callable(getattr(connector, name))


# --- signatures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,topic", [
    ("order_create_response.json", "order.created"),
    ("order_update_response.json", "order.updated"),
    ("customer_create_response.json", "customer.created"),
])
def test_signature_good_on_real_example_bodies(name, topic):
    body = wc_body(example(name))
    assert json.loads(body) == example(name)
    connector.verify(SHOP, wc_headers(topic, body), body)


def test_signature_over_the_verbatim_file_bytes():
    body = (EXAMPLES / "order_update_response.json").read_bytes()
    connector.verify(SHOP, {"X-WC-Webhook-Signature": sign(body, "current-secret")}, body)


def test_signature_is_over_the_exact_bytes_not_the_json():
    body = wc_body(example("order_create_response.json"))
    reencoded = json.dumps(example("order_create_response.json")).encode()  # same JSON, other bytes
    with pytest.raises(SignatureError):
        connector.verify(SHOP, wc_headers("order.created", body), reencoded)


def test_signature_bad_when_body_tampered():
    body = wc_body(example("order_create_response.json"))
    tampered = body.replace(b'"total":"29.35"', b'"total":"0.01"')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(SHOP, wc_headers("order.created", body), tampered)


def test_signature_missing_header():
    body = wc_body(example("order_create_response.json"))
    headers = wc_headers("order.created", body)
    del headers["X-WC-Webhook-Signature"]
    with pytest.raises(SignatureError, match="missing X-WC-Webhook-Signature"):
        connector.verify(SHOP, headers, body)


def test_signature_rotation_accepts_old_secret_until_dropped():
    body = wc_body(example("customer_create_response.json"))
    old = wc_headers("customer.created", body, secret="previous-secret")
    connector.verify(SHOP, old, body)
    with pytest.raises(SignatureError):
        connector.verify(replace(SHOP, webhook_secrets=("current-secret",)), old, body)
    with pytest.raises(SignatureError):
        connector.verify(SHOP, wc_headers("customer.created", body, secret="someone-else"), body)


def test_signature_header_names_are_case_insensitive():
    body = wc_body(example("order_update_response.json"))
    for name in ("x-wc-webhook-signature", "X-WC-WEBHOOK-SIGNATURE", "X-Wc-Webhook-Signature"):
        connector.verify(SHOP, {name: sign(body, "current-secret")}, body)


def test_signature_with_the_web_edge_header_type():
    body = wc_body(example("order_create_response.json"))
    headers = Headers()
    headers.add("x-wc-webhook-signature", sign(body, "current-secret"))
    headers.add("X-WC-Webhook-Topic", "order.created")
    connector.verify(SHOP, headers, body)
    assert connector.delivery_key(headers, example("order_create_response.json")) == "order.created:727:2017-03-22T19:28:08"
    assert not connector.is_ping(headers, b"webhook_id=142")


def test_signature_refused_when_shop_has_no_secret():
    body = b"{}"
    with pytest.raises(SignatureError):
        connector.verify(replace(SHOP, webhook_secrets=()), {"X-WC-Webhook-Signature": sign(body, "")}, body)


# --- the creation ping ---------------------------------------------------------------------------

PING_HEADERS = {"User-Agent": "WooCommerce/8.9.1 Hookshot (WordPress/6.5.2)",
                "Content-Type": "application/x-www-form-urlencoded"}


def test_ping_detected():
    assert connector.is_ping(PING_HEADERS, b"webhook_id=142")


@pytest.mark.parametrize("headers,body", [
    ({**PING_HEADERS, "X-WC-Webhook-Topic": "order.created"}, b"webhook_id=142"),  # a signed delivery
    ({**PING_HEADERS, "x-wc-webhook-signature": "abc"}, b"webhook_id=142"),
    (PING_HEADERS, b"webhook_id=142&x=1"),
    (PING_HEADERS, b"webhook_id=abc"),
    (PING_HEADERS, b'{"id":727}'),
    (PING_HEADERS, b""),
])
def test_not_a_ping(headers, body):
    assert not connector.is_ping(headers, body)


# --- delivery keys -------------------------------------------------------------------------------

def test_delivery_key_is_topic_id_and_modification_time():
    order = example("order_update_response.json")
    body = wc_body(order)
    key = connector.delivery_key(wc_headers("order.updated", body), order)
    assert key == "order.updated:727:2017-03-22T19:30:35"
    # a second delivery of the same version has another delivery id but the same key
    again = wc_headers("order.updated", body, **{"X-WC-Webhook-Delivery-ID": "ffff"})
    assert connector.delivery_key({k.lower(): v for k, v in again.items()}, order) == key


def test_delivery_key_changes_with_the_resource_version():
    order = example("order_update_response.json")
    newer = {**order, "date_modified_gmt": "2017-03-23T08:00:00"}
    headers = wc_headers("order.updated", b"")
    assert connector.delivery_key(headers, order) != connector.delivery_key(headers, newer)


def test_delivery_key_without_modification_time_falls_back_to_delivery_id():
    customer = {**example("customer_create_response.json"), "date_modified_gmt": None}
    key = connector.delivery_key(wc_headers("customer.updated", b""), customer)
    assert key == "customer.updated:25:delivery-b2c9e7f0d1a34c8e9f6b5a4d3c2e1f00"


def test_delivery_key_needs_a_topic():
    with pytest.raises(PayloadError, match="X-WC-Webhook-Topic"):
        connector.delivery_key({}, example("order_update_response.json"))


# --- parse: every real example -------------------------------------------------------------------

def _real_payloads():
    for name in ("order_create_response.json", "order_update_response.json", "orders_list_response.json",
                 "customer_create_response.json", "customers_list_response.json"):
        data = example(name)
        for i, payload in enumerate(data if isinstance(data, list) else [data]):
            resource = "order" if name.startswith("order") else "customer"
            for event in ("created", "updated"):
                yield pytest.param(f"{resource}.{event}", payload, id=f"{name}[{i}]-{event}")


@pytest.mark.parametrize("topic,payload", list(_real_payloads()))
def test_every_real_example_parses_into_valid_events(topic, payload):
    events = connector.parse(OFFLINE, topic, payload)
    for e in events:
        assert e.shop == "shop-1"
        assert e.occurred_at.tzinfo is not None and e.occurred_at.utcoffset().total_seconds() == 0
        assert isinstance(e.customer_id, str) and e.customer_id
        if e.order is not None:
            assert isinstance(e.order.total.amount, Decimal)
            assert e.order.id == str(payload["id"])
    assert connector.parse(OFFLINE, topic, copy.deepcopy(payload)) == events  # deterministic
    if topic.startswith("customer."):
        assert [e.type for e in events] == [topic]


@pytest.mark.parametrize("name,topic", [
    ("coupon_create_response.json", "coupon.created"),
    ("webhook_create_response.json", "action.woocommerce_webhook"),
    ("order_update_response.json", "order.restored"),
])
def test_topics_no_rule_triggers_on_give_no_events(name, topic):
    assert connector.parse(OFFLINE, topic, example(name)) == []


def test_deleted_bodies_give_no_events():
    assert connector.parse(OFFLINE, "order.deleted", {"id": 727}) == []
    assert connector.parse(OFFLINE, "customer.deleted", {"id": 25}) == []


def test_order_created_and_paid_guest_order():
    events = connector.parse(OFFLINE, "order.created", example("order_create_response.json"))
    assert [e.type for e in events] == ["order.created", "order.paid"]
    created, paid = events
    assert created.customer_id == paid.customer_id == "guest:john.doe@example.com"
    assert created.occurred_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=timezone.utc)
    assert paid.occurred_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=timezone.utc)
    order = paid.order
    assert order.id == "727" and order.number == "727"
    assert (order.total.amount, order.total.currency) == (Decimal("29.35"), "USD")
    assert order.subtotal.amount == Decimal("18.00")  # line totals: before shipping and tax
    assert order.created_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=timezone.utc)
    first, second = order.line_items
    assert (first.product_id, first.variant_id, first.sku, first.quantity, first.price.amount) == ("93", None, None, 2, Decimal("3"))
    assert (second.product_id, second.variant_id, second.sku, second.quantity, second.price.amount) == ("22", "23", "Bar3", 1, Decimal("12"))
    assert paid.customer.email == "john.doe@example.com"
    assert (paid.customer.first_name, paid.customer.last_name) == ("John", "Doe")
    assert paid.customer.accepts_marketing is None  # no consent meta on the order


def test_order_updated_to_completed_is_paid_again_harmlessly():
    events = connector.parse(OFFLINE, "order.updated", example("order_update_response.json"))
    assert [e.type for e in events] == ["order.paid"]
    assert events[0].id == "wc:order.paid:727:2017-03-22T19:30:35"
    state = new_state("shop-1", events[0].customer_id)
    for e in connector.parse(OFFLINE, "order.created", example("order_create_response.json")) + events + events:
        state = apply(state, e)
    assert state.orders_count == 1 and state.total_spent.amount == Decimal("29.35")


def test_event_ids_are_deterministic_and_follow_the_version():
    order = example("order_update_response.json")
    newer = {**order, "date_modified_gmt": "2017-03-24T10:00:00"}
    assert connector.parse(OFFLINE, "order.updated", order)[0].id != connector.parse(OFFLINE, "order.updated", newer)[0].id


def test_pending_order_is_only_created():
    order = {**example("order_create_response.json"), "status": "pending", "date_paid": None, "date_paid_gmt": None}
    assert [e.type for e in connector.parse(OFFLINE, "order.created", order)] == ["order.created"]
    assert connector.parse(OFFLINE, "order.updated", order) == []


def test_processing_without_date_paid_is_not_paid():
    order = {**example("order_create_response.json"), "date_paid": None, "date_paid_gmt": None}
    assert [e.type for e in connector.parse(OFFLINE, "order.created", order)] == ["order.created"]


def test_cancelled_order():
    order = {**example("order_create_response.json"), "status": "cancelled", "date_modified_gmt": "2017-03-23T09:00:00"}
    events = connector.parse(OFFLINE, "order.updated", order)
    assert [e.type for e in events] == ["order.cancelled"]
    assert events[0].occurred_at == datetime(2017, 3, 23, 9, 0, tzinfo=timezone.utc)


def test_refunds_one_event_each_with_positive_amount():
    order = example("orders_list_response.json")[1]  # order 723: two refunds
    events = connector.parse(OFFLINE, "order.updated", order)
    assert [e.type for e in events] == ["order.refunded", "order.refunded"]
    assert [e.data for e in events] == [{"refund_id": "726"}, {"refund_id": "724"}]
    assert [e.order.refunded.amount for e in events] == [Decimal("10.00"), Decimal("9.00")]
    assert all(e.customer_id == "26" for e in events)
    # a refund's event id survives later modifications of its order
    later = {**order, "date_modified_gmt": "2017-04-01T00:00:00"}
    assert [e.id for e in connector.parse(OFFLINE, "order.updated", later)] == [e.id for e in events]


def test_refunds_fold_idempotently_into_state():
    order = {**example("orders_list_response.json")[1], "date_paid_gmt": "2017-03-21T19:00:00"}
    state = new_state("shop-1", "26")
    for _ in range(3):
        for e in connector.parse(OFFLINE, "order.updated", order):
            state = apply(state, e)
    assert state.orders["723"].refunds == (("726", Decimal("10.00")), ("724", Decimal("9.00")))


def test_paid_and_refunded_in_one_payload():
    order = {**example("orders_list_response.json")[1], "date_paid_gmt": "2017-03-21T19:00:00"}
    assert [e.type for e in connector.parse(OFFLINE, "order.updated", order)] == ["order.paid", "order.refunded", "order.refunded"]


def test_guest_id_is_lower_cased_billing_email():
    order = copy.deepcopy(example("order_create_response.json"))
    order["billing"]["email"] = "  John.DOE@Example.com "
    assert {e.customer_id for e in connector.parse(OFFLINE, "order.created", order)} == {"guest:john.doe@example.com"}


def test_guest_order_without_email_gives_nothing():
    order = copy.deepcopy(example("order_create_response.json"))
    order["billing"]["email"] = ""
    assert connector.parse(OFFLINE, "order.created", order) == []


def test_registered_customer_order_uses_customer_id():
    order = {**example("order_create_response.json"), "customer_id": 25}
    assert {e.customer_id for e in connector.parse(OFFLINE, "order.created", order)} == {"25"}


def test_coupon_lines_are_lower_cased_discount_codes():
    order = {**example("order_create_response.json"), "coupon_lines": [
        {"id": 320, "code": "REF-ABCDEF", "discount": "2.00", "discount_tax": "0.00", "meta_data": []},
        {"id": 321, "code": "welcome-x", "discount": "1.00", "discount_tax": "0.00", "meta_data": []}]}
    paid = connector.parse(OFFLINE, "order.created", order)[1]
    assert paid.order.discount_codes == ("ref-abcdef", "welcome-x")


def test_price_as_float_goes_through_str():
    order = copy.deepcopy(example("order_create_response.json"))
    order["line_items"][0]["price"] = 2.7
    assert connector.parse(OFFLINE, "order.created", order)[0].order.line_items[0].price.amount == Decimal("2.7")


def test_deleted_product_line_item_is_kept():
    order = copy.deepcopy(example("order_create_response.json"))
    order["line_items"][0]["product_id"] = 0
    assert connector.parse(OFFLINE, "order.created", order)[0].order.line_items[0].product_id == "0"


def test_customer_created_and_updated():
    payload = example("customer_create_response.json")
    created = connector.parse(OFFLINE, "customer.created", payload)[0]
    assert (created.type, created.customer_id, created.id) == ("customer.created", "25", "wc:customer.created:25:2017-03-21T19:09:30")
    assert created.occurred_at == datetime(2017, 3, 21, 19, 9, 28, tzinfo=timezone.utc)
    c = created.customer
    assert (c.email, c.first_name, c.last_name) == ("john.doe@example.com", "John", "Doe")
    assert c.created_at == datetime(2017, 3, 21, 19, 9, 28, tzinfo=timezone.utc)
    assert c.accepts_marketing is None and c.tags is None and c.birthday is None
    updated = connector.parse(OFFLINE, "customer.updated", payload)[0]
    assert updated.type == "customer.updated"
    assert updated.occurred_at == datetime(2017, 3, 21, 19, 9, 30, tzinfo=timezone.utc)
    assert connector.parse(OFFLINE, "customer.created", example("customers_list_response.json")[0])[0].customer.first_name == "João"


def _with_meta(payload: dict, key: str, value) -> dict:
    return {**payload, "meta_data": [{"id": 901, "key": "_some_plugin", "value": "x"}, {"id": 902, "key": key, "value": value}]}


@pytest.mark.parametrize("value,expected", [
    ("yes", True), ("1", True), ("true", True), ("on", True), (True, True), ("YES", True),
    ("no", False), ("0", False), ("", False), (False, False),
    ("maybe", None),
])
def test_consent_from_customer_meta(value, expected):
    payload = _with_meta(example("customer_create_response.json"), "_wc_marketing_opt_in", value)
    assert connector.parse(OFFLINE, "customer.updated", payload)[0].customer.accepts_marketing is expected


def test_consent_absent_or_not_configured_is_unknown():
    payload = _with_meta(example("customer_create_response.json"), "_wc_marketing_opt_in", "yes")
    assert connector.parse(OFFLINE, "customer.updated", example("customer_create_response.json"))[0].customer.accepts_marketing is None
    no_setting = replace(SHOP, settings={})
    assert connector.parse(no_setting, "customer.updated", payload)[0].customer.accepts_marketing is None


def test_checkout_opt_in_on_the_order():
    order = _with_meta(example("order_create_response.json"), "_wc_marketing_opt_in", "yes")
    events = connector.parse(OFFLINE, "order.created", order)
    assert all(e.customer.accepts_marketing is True for e in events)
    state = apply(new_state("shop-1", events[0].customer_id), events[0])
    assert state.accepts_marketing is True and state.email == "john.doe@example.com"


def test_birthday_meta():
    payload = _with_meta(example("customer_create_response.json"), "birthday", "1990-05-17")
    assert connector.parse(OFFLINE, "customer.updated", payload)[0].customer.birthday == date(1990, 5, 17)
    typo = _with_meta(example("customer_create_response.json"), "birthday", "17/05/1990")
    assert connector.parse(OFFLINE, "customer.updated", typo)[0].customer.birthday is None


def test_keepwell_tags_meta_become_customer_tags():
    payload = _with_meta(example("customer_create_response.json"), "keepwell_tags", "vip, gold")
    assert connector.parse(OFFLINE, "customer.updated", payload)[0].customer.tags == ("vip", "gold")


@pytest.mark.parametrize("topic,change,problem", [
    ("order.created", lambda p: p.pop("id"), "missing id"),
    ("order.created", lambda p: p.pop("currency"), "missing currency"),
    ("order.created", lambda p: p.update(total="twenty"), "total: 'twenty' is not an amount"),
    ("order.created", lambda p: p.update(total="NaN"), "'NaN' is not a plausible amount"),
    ("order.created", lambda p: p.pop("customer_id"), "missing customer_id"),
    ("order.created", lambda p: p.update(date_created_gmt="yesterday"), "date_created_gmt"),
    ("order.created", lambda p: p.update(date_created_gmt=None), "missing date_created_gmt"),
    ("order.updated", lambda p: p.update(refunds=[{"id": 726, "refund": "", "total": None}]), "refund 726 total"),
    ("order.created", lambda p: p["line_items"][0].pop("product_id"), "no product_id"),
    ("order.created", lambda p: p["line_items"][0].update(quantity="two"), "quantity: 'two' is not a quantity"),
    ("customer.created", lambda p: p.update(id=None), "missing id"),
    ("customer.created", lambda p: p.update(date_created_gmt=None, date_modified_gmt=None), "missing date_created_gmt"),
])
def test_malformed_payloads_name_the_problem(topic, change, problem):
    payload = copy.deepcopy(example("customer_create_response.json" if topic.startswith("customer") else "order_create_response.json"))
    change(payload)
    with pytest.raises(PayloadError, match=problem):
        connector.parse(OFFLINE, topic, payload)


def test_payload_must_be_an_object():
    with pytest.raises(PayloadError, match="expected a JSON object"):
        connector.parse(OFFLINE, "order.created", [example("order_create_response.json")])


# --- auth: Basic over HTTPS, OAuth 1.0a over HTTP ------------------------------------------------

def test_oauth_signature_known_vectors():
    # RFC 5849 section 1.2
    params = [("file", "vacation.jpg"), ("size", "original"), ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
              ("oauth_token", "nnch734d00sl2jdk"), ("oauth_signature_method", "HMAC-SHA1"),
              ("oauth_timestamp", "137131202"), ("oauth_nonce", "chapoH")]
    assert oauth_signature("GET", "http://photos.example.net/photos", params, "kd94hf93k423kf44",
                           "pfkkdhi9sl3r4s00", "HMAC-SHA1") == "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    # OAuth Core 1.0, appendix A.5
    params = [("file", "vacation.jpg"), ("size", "original"), ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
              ("oauth_token", "nnch734d00sl2jdk"), ("oauth_signature_method", "HMAC-SHA1"),
              ("oauth_timestamp", "1191242096"), ("oauth_nonce", "kllo9940pd9333jh"), ("oauth_version", "1.0")]
    assert oauth_signature("GET", "http://photos.example.net:80/photos", params, "kd94hf93k423kf44",
                           "pfkkdhi9sl3r4s00", "HMAC-SHA1") == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="


def test_https_uses_basic_auth(store):
    store.get(f"{API}/customers/25", json=example("customer_create_response.json"))
    store.put(f"{API}/customers/25", json=example("customer_create_response.json"))
    connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    for call in store.calls:
        expected = base64.b64encode(f"{SHOP.credentials['consumer_key']}:{SHOP.credentials['consumer_secret']}".encode()).decode()
        assert call.request.headers["Authorization"] == f"Basic {expected}"
        assert "oauth_signature" not in call.request.url


def test_http_uses_oauth_in_the_query_string_and_never_basic(store):
    store.get(f"{PLAIN_API}/orders", json=[])
    store.get(f"{PLAIN_API}/customers", json=[])
    list(connector.changes_since(PLAIN_SHOP, datetime(2024, 5, 1, tzinfo=timezone.utc)))
    request = store.calls[0].request
    assert "Authorization" not in request.headers
    query = dict(parse_qsl(urlsplit(request.url).query))
    assert query["oauth_consumer_key"] == PLAIN_SHOP.credentials['consumer_key']
    assert query["oauth_signature_method"] == "HMAC-SHA256"
    assert len(query["oauth_nonce"]) == 32
    assert abs(int(query["oauth_timestamp"]) - time.time()) < 60
    assert "oauth_version" not in query
    # the signature, recomputed by hand: the base string is written out literally
    normalized = "&".join([
        "dates_are_gmt=true",
        "modified_after=2024-05-01T00%3A00%3A00",
        f"oauth_consumer_key={PLAIN_SHOP.credentials['consumer_key']}",
        f"oauth_nonce={query['oauth_nonce']}",
        "oauth_signature_method=HMAC-SHA256",
        f"oauth_timestamp={query['oauth_timestamp']}",
        "order=asc", "orderby=id", "page=1", "per_page=100",
    ])
    base = "GET&http%3A%2F%2Fexample.com%2Fwp-json%2Fwc%2Fv3%2Forders&" + quote(normalized, safe="")
    expected = base64.b64encode(hmac.new(f"{PLAIN_SHOP.credentials['consumer_secret']}&".encode(), base.encode(), hashlib.sha256).digest()).decode()
    assert query["oauth_signature"] == expected
    assert query["modified_after"] == "2024-05-01T00:00:00"


def test_http_post_signs_the_query_not_the_body(store):
    store.post(f"{PLAIN_API}/coupons", status=201, json=example("coupon_create_response.json"))
    connector.create_coupon(PLAIN_SHOP, referral_action())
    request = store.calls[0].request
    query = dict(parse_qsl(urlsplit(request.url).query))
    assert set(query) == {"oauth_consumer_key", "oauth_nonce", "oauth_signature_method", "oauth_timestamp", "oauth_signature"}
    base = ("POST&http%3A%2F%2Fexample.com%2Fwp-json%2Fwc%2Fv3%2Fcoupons&"
            + quote(f"oauth_consumer_key={PLAIN_SHOP.credentials['consumer_key']}&oauth_nonce={query['oauth_nonce']}"
                    f"&oauth_signature_method=HMAC-SHA256&oauth_timestamp={query['oauth_timestamp']}", safe=""))
    expected = base64.b64encode(hmac.new(f"{PLAIN_SHOP.credentials['consumer_secret']}&".encode(), base.encode(), hashlib.sha256).digest()).decode()
    assert query["oauth_signature"] == expected
    assert json.loads(request.body)["code"] == "REF-7Q2MPX4K"


def test_oauth_nonce_is_fresh_per_request(store):
    store.get(f"{PLAIN_API}/customers/25", json=example("customer_create_response.json"))
    store.put(f"{PLAIN_API}/customers/25", json=example("customer_create_response.json"))
    connector.add_tag(PLAIN_SHOP, "25", Tag(key="k:0", tag="vip"))
    nonces = [dict(parse_qsl(urlsplit(c.request.url).query))["oauth_nonce"] for c in store.calls]
    assert len(nonces) == 2 and nonces[0] != nonces[1]


# --- coupons -----------------------------------------------------------------------------------

def welcome_action(**change) -> Coupon:
    """The engine's coupon action, from its JSON form (Decision.to_dict()["actions"][0])."""
    return Coupon.from_dict({
        "type": "coupon",
        "key": "shop-1:welcome:25:customer.created:0",
        "code": "WELCOME-VRHPHJYFBQ",
        "title": "Welcome new subscribers WELCOME-VRHPHJYFBQ",
        "discount_type": "percent",
        "value": "10",
        "currency": None,
        "expires_at": "2024-05-15T10:00:00+00:00",
        "starts_at": "2024-05-01T10:00:00+00:00",
        "minimum_subtotal": None,
        "products": [],
        "collections": [],
        "customer_id": "25",
        "email": "John.Doe@example.com",
        "usage_limit": 1,
        "once_per_customer": True,
        **change,
    })


def referral_action() -> Coupon:
    return welcome_action(key="shop-1:referral_invite:25:order.paid:727:0", code="REF-7Q2MPX4K", title="Friend discount",
                          expires_at=None, customer_id=None, email=None, usage_limit=None)


def created_coupon(code: str, coupon_id: int = 719) -> dict:
    return {**example("coupon_create_response.json"), "id": coupon_id, "code": code.lower()}


def test_coupon_request_body_exactly(store):
    store.post(f"{API}/coupons", status=201, json=created_coupon("WELCOME-VRHPHJYFBQ"))
    result = connector.create_coupon(SHOP, welcome_action())
    assert result == CouponResult(code="WELCOME-VRHPHJYFBQ", store_id="719", already_existed=False)
    assert json.loads(store.calls[0].request.body) == {
        "code": "WELCOME-VRHPHJYFBQ",
        "discount_type": "percent",
        "amount": "10",
        "individual_use": True,
        "description": "Welcome new subscribers WELCOME-VRHPHJYFBQ",
        "product_ids": [],
        "product_categories": [],
        "meta_data": [{"key": "keepwell_key", "value": "shop-1:welcome:25:customer.created:0"}],
        "date_expires": "2024-05-15T10:00:00+00:00",
        "email_restrictions": ["john.doe@example.com"],
        "usage_limit": 1,
        "usage_limit_per_user": 1,
    }
    assert store.calls[0].request.headers["Content-Type"] == "application/json"


def test_fixed_coupon_with_products_categories_and_minimum(store):
    store.get(f"{API}/products/categories", match=[matchers.query_param_matcher({"slug": "brewing"})],
              json=[{"id": 9, "name": "Brewing", "slug": "brewing", "parent": 0, "description": "", "display": "default",
                     "image": None, "menu_order": 0, "count": 4}])
    store.post(f"{API}/coupons", status=201, json=created_coupon("GOLD-ABCDEFGHIJ", 731))
    action = welcome_action(code="GOLD-ABCDEFGHIJ", discount_type="fixed", value="25", currency="USD",
                            expires_at="2024-06-30T09:30:00-04:00", products=["93", 22], collections=["brewing", "15"],
                            minimum_subtotal={"amount": "100.00", "currency": "USD"})
    assert connector.create_coupon(SHOP, action).store_id == "731"
    body = json.loads(store.calls[-1].request.body)
    assert body["discount_type"] == "fixed_cart"
    assert body["amount"] == "25"
    assert body["product_ids"] == [93, 22]
    assert body["product_categories"] == [9, 15]
    assert body["minimum_amount"] == "100.00"
    assert body["date_expires"] == "2024-06-30T13:30:00+00:00"  # converted to UTC, offset explicit


def test_referral_code_is_shared_not_restricted(store):
    store.post(f"{API}/coupons", status=201, json=created_coupon("REF-7Q2MPX4K"))
    connector.create_coupon(SHOP, referral_action())
    body = json.loads(store.calls[0].request.body)
    assert "email_restrictions" not in body and "usage_limit" not in body and "date_expires" not in body
    assert body["usage_limit_per_user"] == 1


def test_personal_coupon_without_email_looks_the_customer_up(store):
    store.get(f"{API}/customers/25", json=example("customer_create_response.json"))
    store.post(f"{API}/coupons", status=201, json=created_coupon("WELCOME-VRHPHJYFBQ"))
    connector.create_coupon(SHOP, welcome_action(email=None))
    assert json.loads(store.calls[-1].request.body)["email_restrictions"] == ["john.doe@example.com"]


def test_guest_coupon_without_email_uses_the_guest_id(store):
    store.post(f"{API}/coupons", status=201, json=created_coupon("WELCOME-VRHPHJYFBQ"))
    connector.create_coupon(SHOP, welcome_action(email=None, customer_id="guest:ann@example.com"))
    assert json.loads(store.calls[0].request.body)["email_restrictions"] == ["ann@example.com"]


def stored_welcome(coupon_id: int = 733, **change) -> dict:
    """welcome_action()'s coupon as GET /coupons lists it once WooCommerce stored it."""
    return {**example("coupon_create_response.json"), "id": coupon_id, "code": "welcome-vrhphjyfbq",
            "amount": "10.00", "discount_type": "percent", "description": "Welcome new subscribers WELCOME-VRHPHJYFBQ",
            "date_expires": "2024-05-15T10:00:00", "date_expires_gmt": "2024-05-15T10:00:00",
            "email_restrictions": ["john.doe@example.com"], "usage_limit": 1, "usage_limit_per_user": 1,
            "minimum_amount": "0.00", "product_ids": [], "product_categories": [],
            "meta_data": [{"id": 4210, "key": "keepwell_key", "value": "shop-1:welcome:25:customer.created:0"}],
            **change}


ALREADY_EXISTS = error_body("woocommerce_rest_coupon_code_already_exists", "The coupon code already exists", 400)


def test_already_exists_for_our_own_earlier_coupon_is_adopted_case_insensitively(store):
    store.post(f"{API}/coupons", status=400, json=ALREADY_EXISTS)
    store.get(f"{API}/coupons", match=[matchers.query_param_matcher({"code": "WELCOME-VRHPHJYFBQ"})],
              json=[stored_welcome()])
    result = connector.create_coupon(SHOP, welcome_action())
    assert result == CouponResult(code="WELCOME-VRHPHJYFBQ", store_id="733", already_existed=True)


@pytest.mark.parametrize("change, difference", [
    ({"meta_data": []}, "made for no Keepwell touch"),
    ({"email_restrictions": []}, "for everyone"),
    ({"amount": "50.00"}, "50.00 percent"),
    ({"date_expires_gmt": None}, "expires None"),
    ({"usage_limit": None}, "usage_limit None"),
    ({"minimum_amount": "100.00"}, "minimum 100.00"),
])
def test_already_exists_for_another_coupon_creates_a_fresh_code(store, change, difference):
    action = welcome_action()
    fresh = coupon_code("WELCOME", f"{action.key}:taken")
    store.post(f"{API}/coupons", status=400, json=ALREADY_EXISTS)
    store.get(f"{API}/coupons", json=[stored_welcome(**change)])
    store.post(f"{API}/coupons", status=201, json=created_coupon(fresh, 734))
    result = connector.create_coupon(SHOP, action)
    assert (result.code, result.store_id, result.already_existed) == (fresh, "734", False)
    assert difference in result.conflict and result.conflict.endswith(f"created {fresh} instead")
    retry = json.loads(store.calls[2].request.body)
    assert retry["code"] == fresh and retry["email_restrictions"] == ["john.doe@example.com"]
    assert retry["description"] == f"Welcome new subscribers {fresh}"


def test_already_exists_when_the_lookup_fails_is_retried(store):
    store.post(f"{API}/coupons", status=400, json=ALREADY_EXISTS)
    store.get(f"{API}/coupons", status=503, body="Service Unavailable")
    with pytest.raises(StoreError) as info:
        connector.create_coupon(SHOP, welcome_action())
    assert info.value.retryable


def test_other_coupon_errors_are_not_success(store):
    store.post(f"{API}/coupons", status=400, json=error_body(
        "rest_invalid_param", "Invalid parameter(s): discount_type", 400))
    with pytest.raises(StoreError) as info:
        connector.create_coupon(SHOP, welcome_action())
    assert (info.value.retryable, info.value.code, info.value.status) == (False, "rest_invalid_param", 400)


def test_unknown_category_slug(store):
    store.get(f"{API}/products/categories", json=[])
    with pytest.raises(StoreError, match="slug 'brewing'") as info:
        connector.create_coupon(SHOP, welcome_action(collections=["brewing"]))
    assert info.value.retryable is False
    assert not any(c.request.method == "POST" for c in store.calls)


@pytest.mark.parametrize("change,problem", [
    ({"discount_type": "free_shipping"}, "discount_type"),
    ({"products": ("gid://shopify/Product/1",)}, "not a WooCommerce id"),
])
def test_bad_actions_fail_without_calling_the_store(store, change, problem):
    """(A value that is not a number cannot be a Coupon: Coupon.from_dict refuses it, tests/test_actions.py.)"""
    with pytest.raises(StoreError, match=problem) as info:
        connector.create_coupon(SHOP, replace(welcome_action(), **change))
    assert info.value.retryable is False and not store.calls


# --- error classification ------------------------------------------------------------------------

@pytest.mark.parametrize("status,headers,body,retryable,retry_after,code", [
    (429, {"Retry-After": "7"}, error_body("woocommerce_rest_too_many_requests", "Too many requests.", 429), True, 7.0, "woocommerce_rest_too_many_requests"),
    (429, {}, "", True, None, None),
    (500, {}, error_body("internal_server_error", "There has been a critical error on this website.", 500), True, None, "internal_server_error"),
    (502, {}, "<html><body>Bad Gateway</body></html>", True, None, None),
    (503, {"Retry-After": "120"}, "", True, 120.0, None),
    (504, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "", True, 0.0, None),  # a date in the past
    (400, {"Retry-After": "5"}, error_body("rest_invalid_param", "Invalid parameter(s): email", 400), False, None, "rest_invalid_param"),
    (401, {}, error_body("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.", 401), False, None, "woocommerce_rest_cannot_view"),
    (403, {}, error_body("woocommerce_rest_authentication_error", "Invalid signature - provided signature does not match.", 403), False, None, "woocommerce_rest_authentication_error"),
    (404, {}, example("error_example_introduction.json"), False, None, "woocommerce_rest_term_invalid"),
    (404, {}, error_body("rest_no_route", "No route was found matching the URL and request method.", 404), False, None, "rest_no_route"),
    (301, {"Location": "https://www.example.com/wp-json/wc/v3/customers/25"}, "", False, None, "keepwell_redirect"),
])
def test_error_classification(store, status, headers, body, retryable, retry_after, code):
    kw = {"json": body} if isinstance(body, dict) else {"body": body}
    store.get(f"{API}/customers/25", status=status, headers=headers, **kw)
    with pytest.raises(StoreError) as info:
        connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    err = info.value
    assert (err.retryable, err.retry_after, err.code) == (retryable, retry_after, code)
    assert err.status == status
    if isinstance(body, dict):
        assert body["message"] in err.message
    assert len(store.calls) == 1  # no retry inside the connector


def test_redirect_is_not_followed_and_says_where(store):
    store.post(f"{API}/coupons", status=301, headers={"Location": "https://www.example.com/wp-json/wc/v3/coupons"})
    with pytest.raises(StoreError, match="https://www.example.com/wp-json/wc/v3/coupons"):
        connector.create_coupon(SHOP, welcome_action())
    assert len(store.calls) == 1


@pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout("read timed out"),
                                 requests.exceptions.ConnectTimeout("connect timed out"),
                                 requests.exceptions.ConnectionError("connection refused")])
def test_timeouts_and_connection_errors_are_retryable(store, exc):
    store.get(f"{API}/customers/25", body=exc)
    with pytest.raises(StoreError) as info:
        connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    assert info.value.retryable is True and info.value.status is None
    assert len(store.calls) == 1


def test_html_instead_of_json_is_reported(store):
    store.get(f"{API}/customers/25", body="<!doctype html><html>Home</html>", content_type="text/html")
    with pytest.raises(StoreError, match="permalinks") as info:
        connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    assert info.value.retryable is False


def test_secrets_stay_out_of_error_messages(store):
    store.get(f"{PLAIN_API}/customers/25", status=401, json=error_body(
        "woocommerce_rest_authentication_error", "Invalid signature - provided signature does not match.", 401))
    with pytest.raises(StoreError) as info:
        connector.add_tag(PLAIN_SHOP, "25", Tag(key="k:0", tag="vip"))
    assert PLAIN_SHOP.credentials['consumer_secret'] not in str(info.value) and "oauth_signature" not in str(info.value)


# --- tags --------------------------------------------------------------------------------------

def test_add_tag_writes_customer_meta(store):
    store.get(f"{API}/customers/25", json=example("customer_create_response.json"))
    store.put(f"{API}/customers/25", json=example("customer_create_response.json"))
    connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    assert json.loads(store.calls[1].request.body) == {"meta_data": [{"key": "keepwell_tags", "value": "vip"}]}


def test_add_tag_merges_with_existing_tags(store):
    customer = _with_meta(example("customer_create_response.json"), "keepwell_tags", "gold, lapsed")
    store.get(f"{API}/customers/25", json=customer)
    store.put(f"{API}/customers/25", json=customer)
    connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    assert json.loads(store.calls[1].request.body) == {"meta_data": [{"id": 902, "key": "keepwell_tags", "value": "gold, lapsed, vip"}]}


def test_add_tag_already_there_sends_nothing(store):
    store.get(f"{API}/customers/25", json=_with_meta(example("customer_create_response.json"), "keepwell_tags", "VIP"))
    connector.add_tag(SHOP, "25", Tag(key="k:0", tag="vip"))
    assert [c.request.method for c in store.calls] == ["GET"]


def test_add_tag_skips_guests(store):
    connector.add_tag(SHOP, "guest:ann@example.com", Tag(key="k:0", tag="vip"))
    assert not store.calls


# --- webhook registration ----------------------------------------------------------------------

class FakeWebhooks:
    """/webhooks as a store keeps them, so registration can be run twice."""

    def __init__(self, store, hooks=()):
        self.hooks = [dict(h) for h in hooks]
        store.add_callback(responses.GET, f"{API}/webhooks", callback=self.list)
        store.add_callback(responses.POST, f"{API}/webhooks", callback=self.create)
        store.add_callback(responses.PUT, re.compile(rf"{re.escape(API)}/webhooks/\d+"), callback=self.update)

    def list(self, request):
        return 200, {"X-WP-Total": str(len(self.hooks)), "X-WP-TotalPages": "1"}, json.dumps(self.hooks)

    def create(self, request):
        body = json.loads(request.body)
        resource, event = body["topic"].split(".")
        hook = {**example("webhook_create_response.json"), **body, "id": 200 + len(self.hooks),
                "resource": resource, "event": event}
        hook.pop("secret")  # the store does not echo secrets
        self.hooks.append(hook)
        return 201, {}, json.dumps(hook)

    def update(self, request):
        hook_id = int(request.url.rsplit("/", 1)[1].split("?")[0])
        hook = next(h for h in self.hooks if h["id"] == hook_id)
        hook.update({k: v for k, v in json.loads(request.body).items() if k != "secret"})
        return 200, {}, json.dumps(hook)


def test_register_webhooks(store):
    fake = FakeWebhooks(store, [example("webhook_create_response.json")])  # someone else's hook
    topics = connector.register_webhooks(SHOP, "https://keepwell.example.net")
    assert topics == ["order.created", "order.updated", "customer.created", "customer.updated"]
    posts = [json.loads(c.request.body) for c in store.calls if c.request.method == "POST"]
    assert posts == [{"name": f"Keepwell {t}", "topic": t, "delivery_url": "https://keepwell.example.net/webhooks/woocommerce/shop-1",
                      "secret": "current-secret", "status": "active"} for t in topics]
    assert fake.hooks[0]["delivery_url"] == "http://requestb.in/1g0sxmo1"  # untouched


def test_register_webhooks_is_idempotent(store):
    fake = FakeWebhooks(store)
    connector.register_webhooks(SHOP, "https://keepwell.example.net/")
    posts_before = sum(c.request.method == "POST" for c in store.calls)
    connector.register_webhooks(SHOP, "https://keepwell.example.net/")
    assert sum(c.request.method == "POST" for c in store.calls) == posts_before == 4
    assert len(fake.hooks) == 4


def test_register_webhooks_needs_a_secret(store):
    with pytest.raises(ValueError, match="no webhook secret"):
        connector.register_webhooks(replace(SHOP, webhook_secrets=()), "https://keepwell.example.net")
    assert not store.calls


def test_register_webhooks_reactivates_and_rekeys_existing(store):
    disabled = {**example("webhook_create_response.json"), "id": 150, "topic": "order.updated", "status": "disabled",
                "delivery_url": "https://keepwell.example.net/webhooks/woocommerce/shop-1"}
    fake = FakeWebhooks(store, [disabled])
    connector.register_webhooks(SHOP, "https://keepwell.example.net")
    puts = [(c.request.url, json.loads(c.request.body)) for c in store.calls if c.request.method == "PUT"]
    assert puts == [(f"{API}/webhooks/150", {"secret": "current-secret", "status": "active"})]
    assert sorted(h["topic"] for h in fake.hooks) == sorted(["order.updated", "order.created", "customer.created", "customer.updated"])


# --- reconciliation ----------------------------------------------------------------------------

def test_changes_since_pages_orders_and_filters_customers(store):
    orders = example("orders_list_response.json")
    base = {"modified_after": "2017-03-21T19:10:00", "dates_are_gmt": "true", "orderby": "id", "order": "asc", "per_page": "100"}
    store.get(f"{API}/orders", match=[matchers.query_param_matcher({**base, "page": "1"})],
              json=orders, headers={"X-WP-Total": "3", "X-WP-TotalPages": "2"})
    store.get(f"{API}/orders", match=[matchers.query_param_matcher({**base, "page": "2"})],
              json=[example("order_update_response.json")], headers={"X-WP-Total": "3", "X-WP-TotalPages": "2"})
    store.get(f"{API}/customers", match=[matchers.query_param_matcher({**base, "orderby": "registered_date", "order": "desc", "page": "1"})],
              json=example("customers_list_response.json"), headers={"X-WP-Total": "2", "X-WP-TotalPages": "1"})
    since = datetime(2017, 3, 21, 19, 10, tzinfo=timezone.utc)
    changes = list(connector.changes_since(SHOP, since, now=since + timedelta(minutes=25)))
    assert [(t, p["id"]) for t, p in changes] == [
        ("order.updated", 727), ("order.updated", 723), ("order.updated", 727),
        ("customer.updated", 26),  # 25 registered at 19:09:28, before since
    ]
    for topic, payload in changes:
        connector.parse(OFFLINE, topic, payload)
    # three listing pages; parsing adds only product lookups (order enrichment)
    assert sum("/products" not in c.request.url for c in store.calls) == 3


def test_changes_since_without_total_pages_stops_on_a_short_page(store):
    many = [{**example("customer_create_response.json"), "id": i} for i in range(1, 101)]
    query = {"modified_after": "2017-01-01T00:00:00", "dates_are_gmt": "true", "orderby": "registered_date",
             "order": "desc", "per_page": "100"}
    store.get(f"{API}/orders", json=[])
    store.get(f"{API}/customers", match=[matchers.query_param_matcher({**query, "page": "1"})], json=many)
    store.get(f"{API}/customers", match=[matchers.query_param_matcher({**query, "page": "2"})],
              json=[{**example("customer_create_response.json"), "id": 101}])
    changes = list(connector.changes_since(SHOP, datetime(2017, 1, 1, tzinfo=timezone.utc)))
    assert len(changes) == 101 and len(store.calls) == 3


def test_changes_since_propagates_store_errors(store):
    store.get(f"{API}/orders", status=503, headers={"Retry-After": "30"}, body="")
    with pytest.raises(StoreError) as info:
        list(connector.changes_since(SHOP, datetime(2024, 1, 1, tzinfo=timezone.utc)))
    assert info.value.retryable and info.value.retry_after == 30.0
