"""WooCommerce reconciliation reads only what changed: orders through ``modified_after``; customers
narrowed by the Keepwell WordPress plugin when it answers ``modified_after``, otherwise the newest
registrations and, once a day, the whole list; webhooks the store disabled are set active again.
The store's REST API is mocked at the HTTP layer with tests/fixtures/woocommerce payloads."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import responses
from responses import matchers

from connectors.base import Shop
from connectors.woocommerce import connector
from plugin.errors import StoreError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "woocommerce"
API = "https://shop.example.co.il/wp-json/wc/v3"
SHOP = Shop(id="wc_1", platform="woocommerce", domain="https://shop.example.co.il", api_url="https://shop.example.co.il",
            credentials={"consumer_key": "ck_1", "consumer_secret": "cs_1"}, webhook_secrets=("s",), settings={})
NOW = datetime(2026, 12, 7, 15, 30, tzinfo=timezone.utc)
SINCE = NOW - timedelta(minutes=25)
AFTER = SINCE.strftime("%Y-%m-%dT%H:%M:%S")
ORDERS = {"modified_after": AFTER, "dates_are_gmt": "true", "orderby": "id", "order": "asc", "per_page": "100"}
CUSTOMERS = {"modified_after": AFTER, "dates_are_gmt": "true", "orderby": "registered_date", "order": "desc",
             "per_page": "100"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def gmt(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S")


def customer(cid: int, created: datetime, modified: datetime | None = None) -> dict:
    c = copy.deepcopy(fixture("customer_with_consent.json"))
    c.update(id=cid, date_created_gmt=gmt(created), date_modified_gmt=gmt(modified or created))
    return c


@pytest.fixture
def store():
    with responses.RequestsMock() as mock:
        yield mock


def no_orders(store, after=AFTER):
    store.get(f"{API}/orders", match=[matchers.query_param_matcher({**ORDERS, "modified_after": after, "page": "1"})],
              json=[], headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})


def test_a_store_with_the_plugin_sends_only_the_customers_changed(store):
    no_orders(store)
    changed = [customer(40, NOW - timedelta(days=300), NOW - timedelta(minutes=3)),
               customer(41, NOW - timedelta(minutes=20))]
    store.get(f"{API}/customers", match=[matchers.query_param_matcher({**CUSTOMERS, "page": "1"})], json=changed,
              headers={"X-WP-Total": "2", "X-WP-TotalPages": "1", "X-Keepwell-Modified-After": "applied"})
    changes = list(connector.changes_since(SHOP, SINCE, now=NOW))
    assert [(t, p["id"]) for t, p in changes] == [("customer.updated", 40), ("customer.updated", 41)]
    assert len(store.calls) == 2


def test_without_the_plugin_only_new_registrations_are_read_until_an_older_one(store):
    no_orders(store)
    newest_first = [customer(52, NOW - timedelta(minutes=2)), customer(51, NOW - timedelta(minutes=24)),
                    customer(50, NOW - timedelta(hours=5)), customer(49, NOW - timedelta(days=2))]
    newest_first += [customer(48 - i, NOW - timedelta(days=3 + i)) for i in range(96)]
    # The store ignores modified_after: the whole list, 30 pages of it, newest registrations first.
    store.get(f"{API}/customers", match=[matchers.query_param_matcher({**CUSTOMERS, "page": "1"})], json=newest_first,
              headers={"X-WP-Total": "3000", "X-WP-TotalPages": "30"})
    changes = list(connector.changes_since(SHOP, SINCE, now=NOW))
    assert [p["id"] for _, p in changes] == [52, 51]
    assert len(store.calls) == 2  # one page of customers, not thirty


def test_once_a_day_the_whole_list_is_read_for_changes_to_existing_customers(store):
    since = datetime(2026, 12, 6, 23, 50, tzinfo=timezone.utc)
    now = datetime(2026, 12, 7, 0, 15, tzinfo=timezone.utc)
    after = gmt(since)
    no_orders(store, after)
    page1 = [customer(60, now - timedelta(minutes=5)),
             customer(59, now - timedelta(days=90), now - timedelta(hours=20)),  # changed yesterday, its webhook lost
             customer(58, now - timedelta(days=91), now - timedelta(days=3))]
    page2 = [customer(57, now - timedelta(days=400), now - timedelta(hours=2)), customer(56, now - timedelta(days=401))]
    for page, items in ((1, page1), (2, page2)):
        store.get(f"{API}/customers", match=[matchers.query_param_matcher({**CUSTOMERS, "modified_after": after,
                                                                          "page": str(page)})],
                  json=items, headers={"X-WP-Total": "5", "X-WP-TotalPages": "2"})
    changes = list(connector.changes_since(SHOP, since, now=now))
    assert [p["id"] for _, p in changes] == [60, 59, 57]
    assert len(store.calls) == 3


def test_disabled_keepwell_webhooks_are_set_active_again(store):
    target = "https://keepwell.example/webhooks/woocommerce/wc_1"
    hook = fixture("webhook.json")
    listed = [{**hook, "id": 150, "topic": "order.created", "status": "disabled", "delivery_url": target},
              {**hook, "id": 151, "topic": "order.updated", "status": "disabled", "delivery_url": target},
              {**hook, "id": 152, "topic": "order.updated", "status": "disabled",
               "delivery_url": "https://crm.example/hooks/woo"}]  # another service's: not ours to revive
    store.get(f"{API}/webhooks", match=[matchers.query_param_matcher({"status": "disabled", "per_page": "100",
                                                                      "page": "1"})],
              json=listed, headers={"X-WP-Total": "3", "X-WP-TotalPages": "1"})
    for hook_id in (150, 151):
        store.put(f"{API}/webhooks/{hook_id}", match=[matchers.json_params_matcher({"status": "active"})],
                  json={**listed[hook_id - 150], "status": "active"})
    assert connector.revive_webhooks(SHOP, "https://keepwell.example") == [150, 151]
    assert [c.request.method for c in store.calls] == ["GET", "PUT", "PUT"]


def test_a_store_that_refuses_to_list_webhooks_is_a_store_error(store):
    store.get(f"{API}/webhooks", status=401, json={"code": "woocommerce_rest_cannot_view",
                                                    "message": "Sorry, you cannot list resources.",
                                                    "data": {"status": 401}})
    with pytest.raises(StoreError) as info:
        connector.revive_webhooks(SHOP, "https://keepwell.example")
    assert not info.value.retryable and info.value.code == "woocommerce_rest_cannot_view"
