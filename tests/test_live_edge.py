"""The webhook edge, end to end: every refusal answers the right status, is logged with its reason,
and queues nothing (no backlog entry, no RQ job); pings, duplicates, uninstalls and secret
rotation behave as the platforms expect (PLATFORMS.md sections 1, 2 and 7)."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin.db import EventSeenRow, OrderIndexRow, ShopRow
from live import (SHOPIFY_SECRET, FakeShopify, backlog, job_ids, running, shopify_order, shopify_sample, sign, woo_customer,
                  woo_order, work)

DOMAIN = "edge-test.myshopify.com"
STORE = "https://store.example"
LIMIT = 16 * 1024  # max_webhook_bytes for these tests: a real order is ~4 KiB
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path, max_webhook_bytes=LIMIT) as live:
        yield live


@pytest.fixture
def sqlite_live(request, redis_server, smtp, tmp_path):
    """For checks where the database plays no part (the refusal happens before any query)."""
    with running(request, redis_server, smtp, tmp_path, max_webhook_bytes=LIMIT) as live:
        yield live


def shops(live):
    shopify_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_edge")
    woo_id, woo_secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                       settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
    return shopify_id, woo_id, woo_secret


def shopify_headers(body: bytes, topic="orders/paid", domain=DOMAIN, secret=SHOPIFY_SECRET, **extra) -> dict:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": domain, "X-Shopify-API-Version": "2026-10",
               "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-Event-Id": str(uuid.uuid4()),
               "X-Shopify-Triggered-At": NOW.isoformat(), "Content-Type": "application/json"}
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign(secret, body)
    headers.update(extra)
    return headers


def woo_headers(body: bytes, secret: str | None, topic="order.updated") -> dict:
    resource, event = topic.split(".")
    headers = {"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)", "Content-Type": "application/json",
               "X-WC-Webhook-Source": f"{STORE}/", "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Resource": resource,
               "X-WC-Webhook-Event": event, "X-WC-Webhook-ID": "31", "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex}
    if secret is not None:
        headers["X-WC-Webhook-Signature"] = sign(secret, body)
    return headers


ORDER = json.dumps(shopify_order(9007199254740993, "7421852987654321123", NOW)).encode()
WOO_ORDER = json.dumps(woo_order(), separators=(",", ":")).replace("/", "\\/").encode()  # as wp_json_encode writes


def big_order() -> bytes:
    o = shopify_order(9007199254740993, "7421852987654321123", NOW)
    o["line_items"] = o["line_items"] * 60  # a large wholesale order: well over LIMIT
    body = json.dumps(o).encode()
    assert len(body) > LIMIT
    return body


# (name, platform, body, headers(ids, secrets) -> dict, status, reason in the log)
SHOPIFY_REFUSALS = [
    ("forged signature", ORDER, lambda: shopify_headers(ORDER, secret="shpss_someone_else"), 401,
     "X-Shopify-Hmac-Sha256 does not match"),
    ("missing signature", ORDER, lambda: shopify_headers(ORDER, secret=None), 401, "missing X-Shopify-Hmac-Sha256"),
    ("truncated body", ORDER[:-40], lambda: shopify_headers(ORDER), 401, "does not match"),
    ("not JSON, signed", b"order=1042&total=92.30", lambda: shopify_headers(b"order=1042&total=92.30"), 400,
     "body is not JSON"),
    ("not UTF-8, signed", b'{"id": "\xff"}', lambda: shopify_headers(b'{"id": "\xff"}'), 400, "body is not JSON"),
    ("JSON array, signed", b"[1, 2, 3]", lambda: shopify_headers(b"[1, 2, 3]"), 400, "not a JSON object"),
    ("unknown shop", ORDER, lambda: shopify_headers(ORDER, domain="someone-else.myshopify.com"), 404,
     "unknown or uninstalled shop 'someone-else.myshopify.com'"),
    ("no shop header", ORDER, lambda: {k: v for k, v in shopify_headers(ORDER).items() if k != "X-Shopify-Shop-Domain"},
     404, "unknown or uninstalled shop ''"),
]


@pytest.mark.parametrize("name, body, headers, status, reason", SHOPIFY_REFUSALS, ids=[c[0] for c in SHOPIFY_REFUSALS])
def test_shopify_refusals_are_logged_and_queue_nothing(sqlite_live, caplog, name, body, headers, status, reason):
    live = sqlite_live
    shopify_id, woo_id, _ = shops(live)
    with caplog.at_level(logging.INFO, logger="keepwell.webhooks"):
        r = live.client.post("/webhooks/shopify", data=body, headers=headers())
    assert r.status_code == status, r.data
    assert reason in r.get_json()["error"]
    refused = [rec.getMessage() for rec in caplog.records if rec.name == "keepwell.webhooks"]
    assert len(refused) == 1 and f"({status})" in refused[0] and reason in refused[0], refused
    assert backlog(live, shopify_id) == 0 and backlog(live, woo_id) == 0
    assert job_ids(live) == []


def test_oversized_bodies_are_refused_413_with_or_without_content_length(sqlite_live, caplog):
    live = sqlite_live
    shopify_id, woo_id, woo_secret = shops(live)
    body = big_order()
    with caplog.at_level(logging.INFO, logger="keepwell.webhooks"):
        r = live.client.post("/webhooks/shopify", data=body, headers=shopify_headers(body))
        assert r.status_code == 413
        # Without Content-Length (chunked upload) the edge stops reading after LIMIT + 1 bytes.
        import io
        r2 = live.client.post(f"/webhooks/woocommerce/{woo_id}", input_stream=io.BytesIO(body),
                              headers=woo_headers(body, woo_secret))
        assert r2.status_code == 413
    assert f"over the {LIMIT}-byte limit" in r.get_json()["error"]
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "keepwell.webhooks"]
    assert len(logged) == 2 and all("(413)" in m for m in logged), logged
    assert backlog(live, shopify_id) == 0 and backlog(live, woo_id) == 0
    assert job_ids(live) == []


WOO_REFUSALS = [
    ("forged signature", WOO_ORDER, lambda secret: woo_headers(WOO_ORDER, "not-the-secret"), 401,
     "X-WC-Webhook-Signature does not match"),
    ("missing signature", WOO_ORDER, lambda secret: woo_headers(WOO_ORDER, None), 401, "missing X-WC-Webhook-Signature"),
    ("truncated body", WOO_ORDER[:-40], lambda secret: woo_headers(WOO_ORDER, secret), 401, "does not match"),
    ("not JSON, signed", b"webhook_id=12&x=1", lambda secret: woo_headers(b"webhook_id=12&x=1", secret), 400,
     "body is not JSON"),
    ("JSON array, signed", b'[{"id":727}]', lambda secret: woo_headers(b'[{"id":727}]', secret), 400,
     "not a JSON object"),
]


@pytest.mark.parametrize("name, body, headers, status, reason", WOO_REFUSALS, ids=[c[0] for c in WOO_REFUSALS])
def test_woocommerce_refusals_are_logged_and_queue_nothing(sqlite_live, caplog, name, body, headers, status, reason):
    live = sqlite_live
    shopify_id, woo_id, woo_secret = shops(live)
    with caplog.at_level(logging.INFO, logger="keepwell.webhooks"):
        r = live.client.post(f"/webhooks/woocommerce/{woo_id}", data=body, headers=headers(woo_secret))
    assert r.status_code == status, r.data
    assert reason in r.get_json()["error"]
    refused = [rec.getMessage() for rec in caplog.records if rec.name == "keepwell.webhooks"]
    assert len(refused) == 1 and f"({status})" in refused[0] and reason in refused[0], refused
    assert backlog(live, woo_id) == 0 and backlog(live, shopify_id) == 0
    assert job_ids(live) == []


def test_woocommerce_unknown_shop_is_404(sqlite_live, caplog):
    live = sqlite_live
    shopify_id, woo_id, woo_secret = shops(live)
    with caplog.at_level(logging.INFO, logger="keepwell.webhooks"):
        r = live.client.post("/webhooks/woocommerce/wo_000000000000", data=WOO_ORDER, headers=woo_headers(WOO_ORDER, woo_secret))
    assert r.status_code == 404
    assert any("unknown or disconnected shop 'wo_000000000000'" in rec.getMessage() and "(404)" in rec.getMessage()
               for rec in caplog.records)
    assert backlog(live, woo_id) == 0 and job_ids(live) == []


def test_topics_keepwell_does_not_use_are_200_and_queue_nothing(sqlite_live):
    live = sqlite_live
    shopify_id, woo_id, woo_secret = shops(live)
    body = json.dumps({"id": 632910392, "title": "IPod Nano - 8GB", "updated_at": NOW.isoformat()}).encode()
    r = live.client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, topic="products/update"))
    assert (r.status_code, r.get_json()) == (200, {"status": "ignored"})
    coupon = json.dumps({"id": 719, "code": "10off"}).encode()
    r = live.client.post(f"/webhooks/woocommerce/{woo_id}", data=coupon, headers=woo_headers(coupon, woo_secret, "coupon.created"))
    assert (r.status_code, r.get_json()) == (200, {"status": "ignored"})
    assert backlog(live, shopify_id) == 0 and backlog(live, woo_id) == 0 and job_ids(live) == []


def test_woocommerce_creation_ping_is_200_and_queues_nothing(sqlite_live):
    live = sqlite_live
    _, woo_id, _ = shops(live)
    # deliver_ping(): a form post, the Hookshot user agent, no X-WC-Webhook-* headers, no signature
    r = live.client.post(f"/webhooks/woocommerce/{woo_id}", data=b"webhook_id=12",
                         headers={"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
                                  "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200  # only exactly 200 counts as success for WooCommerce
    assert backlog(live, woo_id) == 0 and job_ids(live) == []
    # The same body with webhook headers is a delivery, and unsigned it is refused.
    r = live.client.post(f"/webhooks/woocommerce/{woo_id}", data=b"webhook_id=12", headers=woo_headers(b"webhook_id=12", None))
    assert r.status_code == 401
    assert backlog(live, woo_id) == 0 and job_ids(live) == []


def test_uninstalled_shop_is_404_and_its_later_webhooks_queue_nothing(live, caplog):
    shopify_id, _, _ = shops(live)
    body = json.dumps({**shopify_sample("app_uninstalled"), "myshopify_domain": DOMAIN}).encode()
    r = live.client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, topic="app/uninstalled"))
    assert r.status_code == 200 and r.get_json() == {"status": "uninstalled"}
    (row,) = live.rows(ShopRow, id=shopify_id)
    assert row.active is False
    from plugin.shops import to_shop

    assert to_shop(row, live.config).credentials.get("access_token", "") == ""  # the token is revoked: do not keep it
    with caplog.at_level(logging.INFO, logger="keepwell.webhooks"):
        r = live.client.post("/webhooks/shopify", data=ORDER, headers=shopify_headers(ORDER))
    assert r.status_code == 404
    assert any("unknown or uninstalled shop" in rec.getMessage() and "(404)" in rec.getMessage() for rec in caplog.records)
    assert backlog(live, shopify_id) == 0 and job_ids(live) == []


def test_webhooks_accepted_before_an_uninstall_are_dropped_by_the_worker(live, caplog):
    shopify_id, _, _ = shops(live)
    r = live.client.post("/webhooks/shopify", data=ORDER, headers=shopify_headers(ORDER))
    assert r.status_code == 202
    body = json.dumps({**shopify_sample("app_uninstalled"), "myshopify_domain": DOMAIN}).encode()
    assert live.client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, topic="app/uninstalled")).status_code == 200
    with caplog.at_level(logging.INFO, logger="keepwell.worker"), responses.RequestsMock() as rsps:
        work(live)  # no store call at all: the token is gone
        assert len(rsps.calls) == 0
    assert any(f"shop {shopify_id} is not active" in rec.getMessage() for rec in caplog.records)
    assert backlog(live, shopify_id) == 0 and live.rows(OrderIndexRow, shop_id=shopify_id) == []
    assert live.smtp.messages == []


def test_shopify_redelivery_of_one_event_is_a_duplicate(live):
    shopify_id, _, _ = shops(live)
    rsps = responses.RequestsMock(assert_all_requests_are_fired=False)
    FakeShopify(rsps, DOMAIN, "shpat_edge")  # the worker asks the store about the order's products
    event_id = str(uuid.uuid4())
    answers = []
    for _ in range(3):  # Shopify's retries: a new X-Shopify-Webhook-Id each time, the same event id
        r = live.client.post("/webhooks/shopify", data=ORDER, headers=shopify_headers(ORDER, **{"X-Shopify-Event-Id": event_id}))
        answers.append((r.status_code, r.get_json()))
    assert answers == [(202, {"status": "accepted"}), (200, {"status": "duplicate"}), (200, {"status": "duplicate"})]
    assert backlog(live, shopify_id) == 1
    with rsps:
        work(live)
    assert backlog(live, shopify_id) == 0
    assert [r.order_id for r in live.rows(OrderIndexRow, shop_id=shopify_id)] == ["9007199254740993"]
    assert len(live.rows(EventSeenRow, shop_id=shopify_id)) == 1


def test_woocommerce_redelivery_of_one_version_is_a_duplicate(live):
    _, woo_id, woo_secret = shops(live)
    # WooCommerce's delivery id changes per send; topic, id and date_modified_gmt do not.
    first = live.post_woocommerce(woo_id, woo_secret, "customer.created", woo_customer())
    again = live.post_woocommerce(woo_id, woo_secret, "customer.created", woo_customer())
    newer = live.post_woocommerce(woo_id, woo_secret, "customer.created", woo_customer(modified="2026-11-20T09:05:00"))
    assert (first.status_code, again.status_code, newer.status_code) == (202, 200, 202)
    assert again.get_json() == {"status": "duplicate"}
    assert backlog(live, woo_id) == 2


def test_shopify_secret_rotation_accepts_the_old_secret(redis_server, smtp, tmp_path, request):
    new, old = "shpss_new_app_secret", SHOPIFY_SECRET
    with running(request, redis_server, smtp, tmp_path, shopify_api_secrets=(new, old)) as live:
        shopify_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_edge")
        statuses = []
        for secret in (old, new, "shpss_retired_long_ago"):
            o = shopify_order(9007199254740993 + len(statuses), "7421852987654321123", NOW + timedelta(minutes=len(statuses)))
            body = json.dumps(o).encode()
            statuses.append(live.client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, secret=secret)).status_code)
        assert statuses == [202, 202, 401]
        assert backlog(live, shopify_id) == 2
