"""Consent kept in step with the store, end to end (the real app, an RQ worker on Redis, SQLite
and PostgreSQL; the stores mocked at the HTTP layer): a one-click unsubscribe is written back
to Shopify (customerEmailMarketingConsentUpdate -> UNSUBSCRIBED, checked against the pinned
Admin schema) and to WooCommerce (the shop's consent meta), with retries; and a customer Keepwell
meets without a known consent is looked up in the store once, before the first decision."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest
import responses
from graphql import build_client_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode

from connectors.shopify import consent as shopify_consent
from connectors.shopify.api import API_VERSION
from plugin import consent, jobs
from plugin.db import CustomerRow, UnsubscribeRow
from plugin.mail import unsubscribe_token
from live import (FIXTURES, STORES, iso, run_scheduled, running, scheduled, shopify_customer, shopify_order,
                  woo_customer, woo_error, woo_order, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
WRITE_BACK = "plugin.jobs.write_back_unsubscribe"


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def unsubscribe(live, shop_id: str, customer_id: str):
    """The customer presses the button behind their email's one-click link."""
    token = unsubscribe_token(live.config.secret_key, shop_id, customer_id)
    r = live.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and b"Unsubscribed" in r.data
    return r


def row(live, customer_id: str) -> UnsubscribeRow:
    (found,) = live.rows(UnsubscribeRow, customer_id=customer_id)
    return found


def state(live, customer_id: str) -> dict:
    (found,) = live.rows(CustomerRow, customer_id=customer_id)
    return found.state


# --- the documents, against the pinned schema --------------------------------------------------------

@pytest.mark.parametrize("document,variables", [
    (shopify_consent.CUSTOMER_CONSENT, {"id": "gid://shopify/Customer/7421852987654321"}),
    (shopify_consent.UNSUBSCRIBE, {"input": {"customerId": "gid://shopify/Customer/7421852987654321",
                                             "emailMarketingConsent": {"marketingState": "UNSUBSCRIBED",
                                                                       "consentUpdatedAt": T0.isoformat()}}}),
])
def test_the_consent_documents_are_valid_against_the_admin_schema(document, variables):
    from graphql.validation import NoDeprecatedCustomRule, specified_rules

    with gzip.open(FIXTURES / "shopify" / f"admin_schema_{API_VERSION}.json.gz") as f:
        schema = build_client_schema(json.load(f)["data"], assume_valid=True)
    doc = parse(document)
    assert validate(schema, doc, [*specified_rules, NoDeprecatedCustomRule]) == []
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    assert not isinstance(get_variable_values(schema, op.variable_definitions, variables), list)


# --- out: the unsubscribe written back ---------------------------------------------------------------

def test_a_shopify_unsubscribe_is_written_back_as_unsubscribed(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(1)
    store.signup(cid, T0, "zoe@example.com", "Zoe")
    work(live)
    assert state(live, cid)["accepts_marketing"] is True
    live.clock.now = T0 + timedelta(days=2)
    unsubscribe(live, store.shop_id, cid)
    assert row(live, cid).store_status == "pending"
    work(live)
    (sent,) = store.api.ops("KeepwellUnsubscribe")
    assert sent["input"]["customerId"] == f"gid://shopify/Customer/{cid}"
    consent_sent = sent["input"]["emailMarketingConsent"]
    assert consent_sent["marketingState"] == "UNSUBSCRIBED"
    assert datetime.fromisoformat(consent_sent["consentUpdatedAt"]) == row(live, cid).at  # when they pressed it
    assert store.api.consents[cid][0] == "UNSUBSCRIBED"
    r = row(live, cid)
    assert (r.store_status, r.store_attempts, r.store_error) == ("done", 1, None)
    assert state(live, cid)["accepts_marketing"] is False
    # a second press, and the tick, change nothing and call nobody
    unsubscribe(live, store.shop_id, cid)
    work(live)
    assert consent.resend_lost(live.rt) == 0
    assert len(store.api.ops("KeepwellUnsubscribe")) == 1


def test_shopify_throttling_is_retried_with_backoff(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(2)
    store.signup(cid, T0, "ana@example.com", "Ana")
    work(live)
    store.api.fail_next(429, {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume "
                                        "uninterrupted service."}, headers={"Retry-After": "30"})
    store.api.fail_next(503, "<html>Service Unavailable</html>")
    unsubscribe(live, store.shop_id, cid)
    work(live)
    r = row(live, cid)
    assert (r.store_status, r.store_attempts) == ("pending", 1) and "429" in r.store_error
    ((job, when),) = scheduled(live, WRITE_BACK)
    assert job.args == (store.shop_id, cid)
    assert 25 < (when - datetime.now(timezone.utc)).total_seconds() <= 30  # the store's Retry-After
    assert run_scheduled(live, WRITE_BACK) == 1
    assert (row(live, cid).store_status, row(live, cid).store_attempts) == ("pending", 2)
    assert run_scheduled(live, WRITE_BACK) == 1
    r = row(live, cid)
    assert (r.store_status, r.store_attempts, r.store_error) == ("done", 3, None)
    assert store.api.consents[cid][0] == "UNSUBSCRIBED"


def test_a_refusal_is_final_and_kept_with_the_stores_message(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(3)
    store.signup(cid, T0, "lea@example.com", "Lea")
    work(live)
    store.api.fail_next(200, {"data": {"customerEmailMarketingConsentUpdate": {"customer": None, "userErrors": [
        {"field": ["input", "customerId"], "message": "Customer must have an email address", "code": "INVALID"}]}}})
    unsubscribe(live, store.shop_id, cid)
    work(live)
    r = row(live, cid)
    assert r.store_status == "failed" and "Customer must have an email address" in r.store_error
    assert scheduled(live, WRITE_BACK) == []
    assert state(live, cid)["accepts_marketing"] is False  # Keepwell itself never mails them again


def test_a_woocommerce_unsubscribe_sets_the_consent_meta_to_no(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    cid = store.customer(1)
    store.signup(cid, T0, "zoe@example.com", "Zoe")
    work(live)
    store.api.fail_next("PUT", f"customers/{cid}", 500,
                        woo_error("internal_server_error", "There has been a critical error on this website.", 500))
    unsubscribe(live, store.shop_id, cid)
    work(live)
    assert row(live, cid).store_status == "pending" and "500" in row(live, cid).store_error
    assert run_scheduled(live, WRITE_BACK) == 1
    assert row(live, cid).store_status == "done"
    meta = [m for m in store.api.customers[cid]["meta_data"] if m["key"] == "_keepwell_marketing_opt_in"]
    assert meta == [{"id": 1, "key": "_keepwell_marketing_opt_in", "value": "no"}]  # the same entry, updated
    # the next customer.updated the store sends agrees with Keepwell
    store.post("customer.updated", {**store.api.customers[cid], "date_modified_gmt": "2026-11-24T09:00:00"})
    work(live)
    assert state(live, cid)["accepts_marketing"] is False


def test_a_woocommerce_guest_has_no_record_to_write_to(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    guest = "guest:maria@example.com"
    store.post("order.created", woo_order(4100, 0, email="maria@example.com", consent="yes"))
    work(live)
    unsubscribe(live, store.shop_id, guest)
    work(live)
    r = row(live, guest)
    assert (r.store_status, r.store_error) == ("skipped", "a guest has no customer record")
    assert [c for c in store.api.calls if c[0] == "PUT"] == []


def test_a_lost_write_back_job_is_sent_again_by_the_tick(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(4)
    store.signup(cid, T0, "ines@example.com", "Ines")
    work(live)
    unsubscribe(live, store.shop_id, cid)
    live.rt.queue.empty()  # Redis lost the job
    work(live)
    assert row(live, cid).store_status == "pending" and store.api.ops("KeepwellUnsubscribe") == []
    assert consent.resend_lost(live.rt) == 0  # not stale yet: its job may still be on its way
    live.clock.now = row(live, cid).at + consent.STALE + timedelta(minutes=1)
    result = jobs.tick()
    assert result["unsubscribes"] == 1
    work(live)
    assert row(live, cid).store_status == "done" and len(store.api.ops("KeepwellUnsubscribe")) == 1


# --- in: the first look-up ----------------------------------------------------------------------------

def test_a_customer_without_known_consent_is_looked_up_once(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(5)
    # a customer from before the install, subscribed long ago: Shopify's webhooks carry no consent
    store.api.consents[cid] = ("SUBSCRIBED", "2025-03-02T10:00:00Z")
    store.post("orders/paid", shopify_order(5001, cid, T0, email="olga@example.com", first_name="Olga",
                                            accepts_marketing=False))
    work(live)
    assert store.api.ops("KeepwellCustomerConsent") == [{"id": f"gid://shopify/Customer/{cid}"}]
    s = state(live, cid)
    assert s["accepts_marketing"] is True and s["consent_at"].startswith("2025-03-02T10:00:00")
    assert s["consent_changed_at"] is None  # known from the store, not a change: no opt-in welcome
    store.post("orders/paid", shopify_order(5002, cid, T0 + timedelta(days=3), email="olga@example.com",
                                            first_name="Olga", accepts_marketing=False))
    work(live)
    assert len(store.api.ops("KeepwellCustomerConsent")) == 1  # once
    # a newer consent from the store's own topic still wins
    store.post("customers_email_marketing_consent/update", {
        "customer_id": int(cid), "email_address": "olga@example.com",
        "email_marketing_consent": {"state": "unsubscribed", "opt_in_level": "single_opt_in",
                                    "consent_updated_at": iso(T0 + timedelta(days=4))}})
    work(live)
    assert state(live, cid)["accepts_marketing"] is False


def test_a_failed_look_up_is_tried_again_with_the_next_event(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(6)
    store.api.consents[cid] = ("SUBSCRIBED", None)
    store.api.fail_next(503, "<html>Service Unavailable</html>")
    store.post("customers/create", shopify_customer(cid, T0, email="pia@example.com", first_name="Pia"))
    work(live)
    s = state(live, cid)
    assert (s["accepts_marketing"], s["consent_at"]) == (False, None)  # decided without it (no consent); nothing lost
    store.post("customers/update", shopify_customer(cid, T0 + timedelta(hours=1), email="pia@example.com",
                                                    first_name="Pia"))
    work(live)
    assert len(store.api.ops("KeepwellCustomerConsent")) == 2
    assert state(live, cid)["accepts_marketing"] is True


def test_a_woocommerce_customer_is_looked_up_in_the_consent_meta(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    cid = store.customer(7)
    store.api.customers[cid] = woo_customer(int(cid), email="tom@example.com", consent="yes")
    order = woo_order(4200, int(cid), email="tom@example.com")
    order["meta_data"] = []  # a checkout without the opt-in box
    store.post("order.created", order)
    work(live)
    assert store.api.requests("GET", f"customers/{cid}") == [{}]
    assert state(live, cid)["accepts_marketing"] is True
