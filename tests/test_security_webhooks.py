"""Shopify signs the body only: X-Shopify-Topic and X-Shopify-Shop-Domain are not signed, and every
shop of the public app shares its secret. These tests replay genuinely signed bodies under other
topics and other shops' domains; nothing destructive may happen, and each refusal is a logged 401.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from live import SHOPIFY_SECRET, start, stop
from plugin import secrets
from plugin.db import CustomerRow, RuleSetRow, ShopRow
from plugin.privacy import redact_shop_job

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
VICTIM = "victim-store.myshopify.com"
ATTACKER = "attacker-store.myshopify.com"


def sample(name: str, shop: str | None = None) -> dict:
    payload = json.loads((FIXTURES / "webhooks" / f"2026-04__{name}.payload.json").read_text())
    if shop and "shop_domain" in payload:
        payload["shop_domain"] = shop
    return payload


def uninstalled(shop: str, shop_id: int = 548380009) -> dict:
    """The app/uninstalled sample as Shopify sends it for ``shop`` (the sample leaves the domain null)."""
    return {**sample("app_uninstalled"), "id": shop_id, "myshopify_domain": shop}


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    yield live
    stop(live)


@pytest.fixture
def shops(live):
    victim, _ = live.add_shop("shopify", VICTIM, access_token="shpat_victim")
    attacker, _ = live.add_shop("shopify", ATTACKER, access_token="shpat_attacker")
    with live.rt.sessions.begin() as session:
        session.add(CustomerRow(shop_id=victim, customer_id="191167", state={"email": "john@example.com"}))
    return victim, attacker


def intact(live, shop_id: str) -> bool:
    (row,) = live.rows(ShopRow, id=shop_id)
    token = secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("access_token", "")
    return row.active and token != "" and bool(live.rows(RuleSetRow, shop_id=shop_id))


def refused(caplog, status: int = 401) -> bool:
    return any("refused POST /webhooks/shopify" in r.getMessage() and f"({status})" in r.getMessage()
               for r in caplog.records)


# --- app/uninstalled -----------------------------------------------------------------------------

def test_an_order_relabelled_app_uninstalled_does_not_uninstall_a_shop(live, shops, caplog):
    victim, _ = shops
    order = sample("orders_paid")  # a genuine order body of the attacker's own shop, signed by Shopify
    with caplog.at_level(logging.WARNING, logger="keepwell.webhooks"):
        r = live.post_shopify("app/uninstalled", order, VICTIM)
    assert r.status_code == 401
    assert refused(caplog)
    assert intact(live, victim)


def test_another_shops_app_uninstalled_does_not_uninstall_a_shop(live, shops, caplog):
    victim, attacker = shops
    with caplog.at_level(logging.WARNING, logger="keepwell.webhooks"):
        r = live.post_shopify("app/uninstalled", uninstalled(ATTACKER), VICTIM)
    assert r.status_code == 401 and refused(caplog)
    assert intact(live, victim) and intact(live, attacker)


def test_a_shops_own_app_uninstalled_uninstalls_it(live, shops):
    victim, attacker = shops
    r = live.post_shopify("app/uninstalled", uninstalled(VICTIM.upper(), 954889), VICTIM)
    assert r.status_code == 200 and r.get_json() == {"status": "uninstalled"}
    (row,) = live.rows(ShopRow, id=victim)
    assert not row.active and secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("access_token", "") == ""
    assert row.settings["shopify_shop_id"] == "954889"  # binds the shop/redact that follows
    assert intact(live, attacker)


def test_the_shop_objects_primary_domain_also_names_the_shop(live, shops):
    victim, _ = shops
    body = {**uninstalled(VICTIM), "myshopify_domain": None, "domain": VICTIM}
    assert live.post_shopify("app/uninstalled", body, VICTIM).status_code == 200
    assert not live.rows(ShopRow, id=victim)[0].active


# --- compliance topics ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,topic", [
    ("customers_data_request", "shop/redact"),
    ("customers_redact", "shop/redact"),
    ("customers_data_request", "customers/redact"),
    ("customers_redact", "customers/data_request"),
    ("shop_redact", "customers/redact"),
])
def test_a_compliance_body_relabelled_as_another_topic_is_refused(live, shops, caplog, name, topic):
    victim, _ = shops
    with caplog.at_level(logging.WARNING, logger="keepwell.webhooks"):
        r = live.post_shopify(topic, sample(name, VICTIM), VICTIM)
    assert r.status_code == 401 and refused(caplog)
    assert live.rt.queue.count == 0
    live.work()
    assert intact(live, victim) and live.rows(CustomerRow, shop_id=victim)


def test_a_data_request_relabelled_shop_redact_with_no_domain_header_is_refused(live, shops):
    victim, _ = shops
    body = json.dumps(sample("customers_data_request", VICTIM)).encode()
    from live import sign

    r = live.client.post("/webhooks/shopify", data=body, headers={
        "X-Shopify-Topic": "shop/redact", "X-Shopify-Hmac-Sha256": sign(SHOPIFY_SECRET, body),
        "X-Shopify-Webhook-Id": "w1", "Content-Type": "application/json"})
    assert r.status_code == 401
    live.work()
    assert intact(live, victim)


def test_a_compliance_body_for_another_shop_than_the_header_is_refused(live, shops, caplog):
    victim, attacker = shops
    with caplog.at_level(logging.WARNING, logger="keepwell.webhooks"):
        r = live.post_shopify("customers/redact", sample("customers_redact", VICTIM), ATTACKER)
    assert r.status_code == 401 and refused(caplog)
    assert live.rt.queue.count == 0


def test_shop_redact_never_erases_an_installed_shop(live, shops):
    victim, _ = shops
    r = live.post_shopify("shop/redact", sample("shop_redact", VICTIM), VICTIM)
    assert r.status_code == 200 and r.get_json() == {"status": "installed; nothing erased"}
    assert live.rt.queue.count == 0
    live.work()
    assert intact(live, victim)


def test_shop_redact_erases_an_uninstalled_shop_whose_id_matches(live, shops, caplog):
    victim, attacker = shops
    assert live.post_shopify("app/uninstalled", uninstalled(VICTIM, 954889), VICTIM).status_code == 200
    wrong = {**sample("shop_redact", VICTIM), "shop_id": 111}
    with caplog.at_level(logging.WARNING, logger="keepwell.webhooks"):
        assert live.post_shopify("shop/redact", wrong, VICTIM).status_code == 401
    assert refused(caplog) and live.rt.queue.count == 0

    r = live.post_shopify("shop/redact", sample("shop_redact", VICTIM), VICTIM)  # shop_id 954889
    assert r.status_code == 200 and r.get_json() == {"status": "queued"}
    live.work()
    assert live.rows(ShopRow, id=victim) == [] and live.rows(CustomerRow, shop_id=victim) == []
    assert intact(live, attacker)


def test_the_shop_redact_job_keeps_a_shop_reinstalled_after_it_was_queued(live, shops):
    victim, _ = shops
    assert live.post_shopify("app/uninstalled", uninstalled(VICTIM, 954889), VICTIM).status_code == 200
    assert live.post_shopify("shop/redact", sample("shop_redact", VICTIM), VICTIM).status_code == 200
    live.add_shop("shopify", VICTIM, access_token="shpat_reinstalled")  # reinstalled before the worker ran
    live.work()
    assert intact(live, victim) and live.rows(CustomerRow, shop_id=victim)
    assert redact_shop_job(victim) == {}  # run directly, too: it checks at run time
