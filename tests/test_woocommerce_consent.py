"""WooCommerce marketing consent from what real stores keep: the shop's own meta key, the Keepwell
WordPress plugin's opt-in (which also mirrors MailPoet), Mailchimp for WooCommerce; and the
plugin's birthday. Payloads from tests/fixtures/woocommerce."""
from __future__ import annotations

import copy
import re
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import responses

from connectors.base import Shop
from connectors.woocommerce import connector
from connectors.woocommerce.parse import consent_keys

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "woocommerce"
SHOP = Shop(id="shop-1", platform="woocommerce", domain="https://shop.example.co.il",
            api_url="https://shop.example.co.il", webhook_secrets=("s",), settings={})


@pytest.fixture(autouse=True)
def store():
    """Order parsing asks the store for its products' categories: it has none to tell."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(r"https://shop\.example\.co\.il/wp-json/wc/v3/products.*"), json=[],
                 headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})
        yield mock


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def with_meta(payload: dict, **values) -> dict:
    """The payload with its meta_data replaced by ``values`` (in the order given)."""
    out = copy.deepcopy(payload)
    out["meta_data"] = [{"id": 5000 + i, "key": k, "value": v} for i, (k, v) in enumerate(values.items())]
    return out


def consent(payload: dict, shop: Shop = SHOP, topic: str = "customer.updated"):
    return connector.parse(shop, topic, payload)[0].customer.accepts_marketing


def test_a_store_without_any_setting_reads_the_plugins_opt_in_first():
    customer = fixture("customer_with_consent.json")
    # Withdrawn on the account page (plugin: no) although Mailchimp still says 1: the plugin decides.
    assert consent(customer) is False
    parsed = connector.parse(SHOP, "customer.updated", customer)[0].customer
    assert parsed.birthday == date(1991, 4, 9)


def test_the_checkout_opt_in_on_an_order_counts_without_any_setting():
    order = fixture("order_with_occasion.json")
    events = connector.parse(SHOP, "order.created", order)
    assert events and all(e.customer.accepts_marketing is True for e in events)


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("", None), ("transactional", None)])
def test_mailchimp_for_woocommerce_alone(value, expected):
    customer = with_meta(fixture("customer_with_consent.json"), mailchimp_woocommerce_is_subscribed=value)
    assert consent(customer) is expected


def test_nothing_known_is_no_consent():
    customer = with_meta(fixture("customer_with_consent.json"), wc_last_active="1764460800")
    assert consent(customer) is None


def test_the_shops_own_key_comes_first_and_the_known_ones_still_follow():
    shop = replace(SHOP, settings={"consent_meta_key": "newsletter_ok"})
    assert consent_keys(shop) == ("newsletter_ok", "_keepwell_marketing_opt_in", "mailchimp_woocommerce_is_subscribed")
    customer = fixture("customer_with_consent.json")
    both = with_meta(customer, newsletter_ok="yes", _keepwell_marketing_opt_in="no")
    assert consent(both, shop) is True
    assert consent(with_meta(customer, newsletter_ok="", _keepwell_marketing_opt_in="yes"), shop) is False  # unticked
    assert consent(with_meta(customer, _keepwell_marketing_opt_in="yes"), shop) is True  # own key absent
    assert consent_keys(replace(SHOP, settings={"consent_meta_key": "_keepwell_marketing_opt_in"})) == \
        ("_keepwell_marketing_opt_in", "mailchimp_woocommerce_is_subscribed")


def test_an_unreadable_birthday_falls_back_to_the_plugins():
    shop = replace(SHOP, settings={"birthday_meta_key": "dob"})
    customer = with_meta(fixture("customer_with_consent.json"), dob="9/4/1991", _keepwell_birthday="1991-04-09")
    assert connector.parse(shop, "customer.updated", customer)[0].customer.birthday == date(1991, 4, 9)
    customer = with_meta(fixture("customer_with_consent.json"), dob="1990-01-02", _keepwell_birthday="1991-04-09")
    assert connector.parse(shop, "customer.updated", customer)[0].customer.birthday == date(1990, 1, 2)


def test_the_first_look_up_reads_sms_consent_and_the_phone_from_the_same_record(store):
    shop = replace(SHOP, settings={"consent_meta_key": "newsletter"})
    customer = with_meta(fixture("customer_with_consent.json"), newsletter="no", _keepwell_sms_opt_in="yes")
    customer["billing"]["phone"] = "052-555-1234"
    store.get("https://shop.example.co.il/wp-json/wc/v3/customers/25", json=customer)
    found = connector.marketing_consent(shop, "25")
    assert (found.accepts_marketing, found.sms_consent, found.phone) == (False, True, "052-555-1234")
    assert len([c for c in store.calls if "/customers/" in c.request.url]) == 1  # one read for both channels
