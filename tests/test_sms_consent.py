"""SMS consent, end to end: the stores' SMS consent folded into the customer's state (Shopify's
REST-shaped customers and customers_marketing_consent/update, WooCommerce's opt-in meta), Twilio's
inbound-message webhook (X-Twilio-Signature checked with Twilio's documented vector; STOP takes
effect before the worker runs, START gives consent back, HELP answers), and every Keepwell-made
change written back to the store (Shopify customerSmsMarketingConsentUpdate, checked against the
pinned Admin schema; WooCommerce meta), with retries. The real app, an RQ worker on Redis,
SQLite and PostgreSQL; the stores mocked at the HTTP layer."""
from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
import responses
from graphql import build_client_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from werkzeug.datastructures import MultiDict

from connectors.base import Shop
from connectors.shopify import connector as shopify
from connectors.shopify import reconcile, sms as shopify_sms
from connectors.shopify.api import API_VERSION
from plugin.db import CustomerRow, SmsConsentRow
from plugin.shops import set_sms
from plugin.sms_consent import allows_sms, change_event, phones, writeback
from plugin.sms_consent.twilio import signature, valid
from live import FIXTURES, STORES, backlog, run_scheduled, running, scheduled, shopify_sample, work

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
TOKEN = "f3a9c0e2d1b44c6f8e7d9a0b1c2d3e4f"
TWILIO = {"provider": "twilio", "account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": TOKEN,
          "from": "+972523334444"}
WRITE_BACK = "plugin.jobs.write_back_sms_consent"


# --- the signature: Twilio's documented example ----------------------------------------------------------

def test_twilios_documented_signature_vector():
    """twilio.com/docs/usage/webhooks/webhooks-security: this URL, these parameters and the auth
    token 12345 sign as 0/KCTR6DLpKmkAf8muzZqo1nDgQ=."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = MultiDict([("To", "+18005551212"), ("Digits", "1234"), ("CallSid", "CA1234567890ABCDE"),
                        ("From", "+12349013030"), ("Caller", "+12349013030")])  # any order: they are sorted
    assert signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert valid("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not valid("12346", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not valid("12345", url.replace("bar=2", "bar=3"), params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    tampered = params.copy()
    tampered["Digits"] = "9999"
    assert not valid("12345", url, tampered, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not valid("12345", url, params, None) and not valid("", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def twilio_signed(url: str, form: dict, token: str = TOKEN) -> str:
    """What Twilio sends in X-Twilio-Signature (written out here, apart from the code under test)."""
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# --- phone numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("stored,sender,same", [
    ("+972549876543", "+972549876543", True),
    ("054-987-6543", "+972549876543", True),  # national form, read as a number of the sender's country
    ("٠٥٤٩٨٧٦٥٤٣", "+972549876543", True),  # Arabic-Indic digits, as some phones type them
    ("+1 (415) 555-0132", "+14155550132", True),
    ("054-987-6543", "+14155550132", False),
    ("+972549876544", "+972549876543", False),
    (None, "+972549876543", False),
])
def test_a_stored_number_is_matched_to_the_sender_in_e164(stored, sender, same):
    assert phones.same_number(stored, sender) is same
    if same:
        assert phones.phone_key(stored) == phones.phone_key(sender)  # found through the same index key


# --- the stores' SMS consent, parsed -----------------------------------------------------------------

SHOP = Shop(id="shop_sms", platform="shopify", domain="keepwell-sms.myshopify.com",
            api_url="https://keepwell-sms.myshopify.com", webhook_secrets=("s",))


def test_shopify_sms_consent_topic_and_rest_shaped_customers():
    payload = json.loads((FIXTURES / "shopify" / "customers_marketing_consent_update.json").read_text())
    (event,) = shopify.parse(SHOP, "customers_marketing_consent/update", payload)
    assert (event.type, event.customer_id) == ("customer.consent_changed", "7421852987654321777")
    assert (event.customer.phone, event.customer.sms_consent, event.customer.accepts_marketing) == \
        ("+972549876543", True, None)
    assert event.occurred_at == datetime(2026, 11, 23, 12, 2, 11, tzinfo=timezone.utc)
    for state, consent in (("unsubscribed", False), ("not_subscribed", False), ("redacted", False), ("pending", None)):
        changed = copy.deepcopy(payload)
        changed["sms_marketing_consent"]["state"] = state
        (e,) = shopify.parse(SHOP, "customers_marketing_consent/update", changed)
        assert e.customer.sms_consent is consent and e.id != event.id

    # A REST-shaped customer (webhooks before 2025-01, reconciliation): phone and SMS consent read.
    customer = shopify_sample("customers_update")
    (plain,) = shopify.parse(SHOP, "customers/update", customer)
    assert (plain.customer.phone, plain.customer.sms_consent) == (None, None)  # the sample has no phone: says nothing
    customer.update(phone="+972549876543", sms_marketing_consent={
        "state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": "2026-11-20T10:00:00Z",
        "consent_collected_from": "OTHER"})
    (told,) = shopify.parse(SHOP, "customers/update", customer)
    assert (told.customer.phone, told.customer.sms_consent) == ("+972549876543", True)


@responses.activate
def test_an_orders_phone_counts_for_texts_only_with_the_sms_opt_in_given_on_it():
    """A billing phone is where an order ships from, not a consent: texts go to the number the
    customer opted in with (a START, a checkout box ticked with that phone)."""
    from connectors.woocommerce import connector as woo
    from live import woo_order

    shop = Shop(id="wc_sms", platform="woocommerce", domain="https://store.example", api_url="https://store.example",
                webhook_secrets=("s",))
    responses.get("https://store.example/wp-json/wc/v3/products", json=[], headers={"X-WP-TotalPages": "1"})
    order = woo_order(730, 31)
    order["billing"]["phone"] = "052-555-1234"
    plain = woo.parse(shop, "order.created", order)[0].customer
    assert (plain.phone, plain.sms_consent) == (None, None)
    order["meta_data"].append({"id": 2, "key": "_keepwell_sms_opt_in", "value": "yes"})
    ticked = woo.parse(shop, "order.created", order)[0].customer
    assert (ticked.phone, ticked.sms_consent) == ("052-555-1234", True)


def test_reconciliation_reads_the_phone_and_its_sms_consent_from_graphql():
    node = {"legacyResourceId": "7421852987654321777", "createdAt": "2026-11-01T00:00:00Z",
            "updatedAt": "2026-11-23T12:02:11Z", "tags": [], "firstName": "נועה", "lastName": "כהן", "locale": "he",
            "defaultEmailAddress": {"emailAddress": "noa@example.co.il", "marketingState": "NOT_SUBSCRIBED",
                                    "marketingUpdatedAt": None},
            "defaultPhoneNumber": {"phoneNumber": "+972549876543",
                                   "smsMarketingConsent": {"state": "SUBSCRIBED", "updatedAt": "2026-11-23T12:02:11Z"}}}
    (event,) = shopify.parse(SHOP, "customers/update", reconcile.customer_payload(node))
    assert (event.customer.phone, event.customer.sms_consent, event.customer.accepts_marketing) == \
        ("+972549876543", True, False)
    no_phone = {**node, "defaultPhoneNumber": None}
    (event,) = shopify.parse(SHOP, "customers/update", reconcile.customer_payload(no_phone))
    assert (event.customer.phone, event.customer.sms_consent) == (None, None)


@pytest.mark.parametrize("document,variables", [
    (shopify_sms.UPDATE, {"input": {"customerId": "gid://shopify/Customer/7421852987654321",
                                    "smsMarketingConsent": {"marketingState": "UNSUBSCRIBED",
                                                            "consentUpdatedAt": T0.isoformat()}}}),
    (shopify_sms.UPDATE, {"input": {"customerId": "gid://shopify/Customer/7421852987654321",
                                    "smsMarketingConsent": {"marketingState": "SUBSCRIBED",
                                                            "marketingOptInLevel": "SINGLE_OPT_IN",
                                                            "consentUpdatedAt": T0.isoformat()}}}),
    (reconcile.CUSTOMERS_QUERY, {"query": "updated_at:>'2026-11-01T00:00:00Z'", "after": None}),
    (reconcile.ORDERS_QUERY, {"query": "updated_at:>'2026-11-01T00:00:00Z'", "after": None}),
])
def test_the_sms_documents_are_valid_against_the_admin_schema(document, variables):
    from graphql.validation import NoDeprecatedCustomRule, specified_rules

    with gzip.open(FIXTURES / "shopify" / f"admin_schema_{API_VERSION}.json.gz") as f:
        schema = build_client_schema(json.load(f)["data"], assume_valid=True)
    doc = parse(document)
    assert validate(schema, doc, [*specified_rules, NoDeprecatedCustomRule]) == []
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    assert not isinstance(get_variable_values(schema, op.variable_definitions, variables), list)


# --- end to end ----------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path, app_url="https://keepwell.example.com") as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def connect_twilio(live, shop_id: str) -> None:
    with live.rt.sessions.begin() as session:
        set_sms(session, live.config, shop_id, TWILIO)
    live.app.extensions["keepwell"].shops.forget()
    live.rt._shops.pop(shop_id, None)


def text_in(live, shop_id: str, sender: str, body: str, token: str = TOKEN, query: str = ""):
    """Twilio delivering a text message the shop's number received."""
    form = {"ToCountry": "IL", "SmsMessageSid": "SM1f0e3f5e0c6b4a2f8d9e7c6b5a4f3e2d", "NumMedia": "0",
            "SmsSid": "SM1f0e3f5e0c6b4a2f8d9e7c6b5a4f3e2d", "SmsStatus": "received", "Body": body, "To": TWILIO["from"],
            "NumSegments": "1", "MessageSid": "SM1f0e3f5e0c6b4a2f8d9e7c6b5a4f3e2d", "AccountSid": TWILIO["account_sid"],
            "From": sender, "ApiVersion": "2010-04-01"}
    path = f"/sms/twilio/{shop_id}" + (f"?{query}" if query else "")
    headers = {"X-Twilio-Signature": twilio_signed(f"https://keepwell.example.com{path}", form, token)}
    return live.client.post(path, data=urlencode(form), headers=headers,
                            content_type="application/x-www-form-urlencoded")


def state(live, customer_id: str) -> dict:
    (found,) = live.rows(CustomerRow, customer_id=customer_id)
    return found.state


def allowed(live, shop_id: str, customer_id: str) -> bool:
    with live.rt.sessions() as session:
        return allows_sms(session, shop_id, customer_id)


def shopify_sms_customer(store, n: int, phone: str, at: datetime) -> str:
    """A Shopify customer who signed up and ticked the SMS box (customers_marketing_consent/update)."""
    cid = store.customer(n)
    store.signup(cid, at, f"c{n}@example.co.il", "נועה")
    payload = json.loads((FIXTURES / "shopify" / "customers_marketing_consent_update.json").read_text())
    payload.update(id=int(cid), phone=phone)
    payload["sms_marketing_consent"]["consent_updated_at"] = (at + timedelta(seconds=5)).isoformat()
    store.api.phones[cid] = (phone, "SUBSCRIBED", payload["sms_marketing_consent"]["consent_updated_at"])
    store.post("customers_marketing_consent/update", payload)
    return cid


def test_shopify_stop_withdraws_at_once_and_is_written_back_then_start_gives_it_back(live, rsps):
    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    cid = shopify_sms_customer(store, 1, "+972549876543", T0)
    work(live)
    assert (state(live, cid)["sms_consent"], state(live, cid)["sms_phone"]) == (True, "+972549876543")
    assert allowed(live, store.shop_id, cid)

    live.clock.now = T0 + timedelta(days=3)
    r = text_in(live, store.shop_id, "+972549876543", " stop ")
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert r.data == b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'  # Twilio confirms the STOP itself
    # Before any worker ran: the row says no, so a touch about to be sent re-checks and does not go.
    assert not allowed(live, store.shop_id, cid)
    assert state(live, cid)["sms_consent"] is True  # the state has not folded it yet
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert (row.subscribed, row.source, row.store_status) == (False, "twilio", "pending")
    assert backlog(live, store.shop_id) == 1

    work(live)
    assert state(live, cid)["sms_consent"] is False
    assert not allowed(live, store.shop_id, cid)
    (sent,) = store.api.ops("KeepwellSmsConsent")
    assert sent["input"]["customerId"] == f"gid://shopify/Customer/{cid}"
    assert sent["input"]["smsMarketingConsent"]["marketingState"] == "UNSUBSCRIBED"
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert datetime.fromisoformat(sent["input"]["smsMarketingConsent"]["consentUpdatedAt"]) == row.at
    assert (row.store_status, row.store_attempts, row.store_error) == ("done", 1, None)
    assert store.api.phones[cid][1] == "UNSUBSCRIBED"
    assert writeback.resend_lost(live.rt) == 0

    r = text_in(live, store.shop_id, "+972549876543", "Unstop")
    assert r.status_code == 200 and allowed(live, store.shop_id, cid)
    work(live)
    assert state(live, cid)["sms_consent"] is True
    sent = store.api.ops("KeepwellSmsConsent")[-1]["input"]["smsMarketingConsent"]
    assert (sent["marketingState"], sent["marketingOptInLevel"]) == ("SUBSCRIBED", "SINGLE_OPT_IN")
    assert store.api.phones[cid][1] == "SUBSCRIBED"


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit"])
def test_twilios_other_opt_out_words_withdraw_too(live, rsps, word):
    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    cid = shopify_sms_customer(store, 2, "+972528765432", T0)
    work(live)
    assert text_in(live, store.shop_id, "+972528765432", word).status_code == 200
    assert not allowed(live, store.shop_id, cid)
    assert text_in(live, store.shop_id, "+972528765432", f"{word} please").status_code == 200  # not the whole message
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert row.subscribed is False


def test_a_forged_or_unsigned_stop_is_refused_and_changes_nothing(live, rsps, caplog):
    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    cid = shopify_sms_customer(store, 3, "+972547654321", T0)
    work(live)
    forged = text_in(live, store.shop_id, "+972547654321", "STOP", token="not-the-shops-token")
    assert forged.status_code == 403
    unsigned = live.client.post(f"/sms/twilio/{store.shop_id}", data={"From": "+972547654321", "Body": "STOP"})
    assert unsigned.status_code == 403
    form = {"From": "+972547654321", "Body": "STOP"}  # signed for the address behind the proxy, not the public one
    wrong_url = live.client.post(f"/sms/twilio/{store.shop_id}", data=form, headers={
        "X-Twilio-Signature": twilio_signed(f"http://127.0.0.1:5000/sms/twilio/{store.shop_id}", form)})
    assert wrong_url.status_code == 403
    assert live.rows(SmsConsentRow, customer_id=cid) == [] and backlog(live, store.shop_id) == 0
    assert allowed(live, store.shop_id, cid)
    assert "X-Twilio-Signature does not match" in caplog.text
    # the genuine request, to a webhook URL with a query string (signed with it)
    assert text_in(live, store.shop_id, "+972547654321", "STOP", query="shop=keepwell").status_code == 200
    assert not allowed(live, store.shop_id, cid)
    huge = live.client.post(f"/sms/twilio/{store.shop_id}", data={"Body": "x" * (live.config.max_webhook_bytes + 1)})
    assert huge.status_code == 413
    # a shop without SMS settings has no token to check with
    other = STORES["woocommerce"](live, rsps)
    assert text_in(live, other.shop_id, "+972547654321", "STOP").status_code == 403


def test_help_names_the_shop_and_how_to_stop_and_an_unknown_number_is_a_no_op(live, rsps):
    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    r = text_in(live, store.shop_id, "+972502345678", "help")
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert b"<Message>Keepwell Coffee: " in r.data and b"Reply STOP to unsubscribe" in r.data
    assert text_in(live, store.shop_id, "+972502345678", "STOP").status_code == 200  # nobody we know
    assert live.rows(SmsConsentRow) == [] and backlog(live, store.shop_id) == 0
    assert text_in(live, store.shop_id, "+972502345678", "What time do you open?").data.endswith(b"<Response></Response>")


def test_a_refusal_is_kept_and_throttling_is_retried(live, rsps):
    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    cid = shopify_sms_customer(store, 4, "+972537654321", T0)
    work(live)
    store.api.fail_next(200, {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                              "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None,
                                                      "throttleStatus": {"maximumAvailable": 2000.0,
                                                                         "currentlyAvailable": 2, "restoreRate": 100.0}}}})
    text_in(live, store.shop_id, "+972537654321", "STOP")
    work(live)
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert (row.store_status, row.store_attempts) == ("pending", 1)
    ((job, _),) = scheduled(live, WRITE_BACK)
    assert job.args == (store.shop_id, cid)
    assert run_scheduled(live, WRITE_BACK) == 1
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert (row.store_status, row.store_attempts, row.store_error) == ("done", 2, None)

    # a customer Shopify holds no phone for: its userErrors refuse, for good, and the message is kept
    cid2 = shopify_sms_customer(store, 5, "+972586543210", T0)
    work(live)
    store.api.fail_next(200, {"data": {"customerSmsMarketingConsentUpdate": {"customer": None, "userErrors": [
        {"field": ["input", "smsMarketingConsent"], "message": "Phone can't be blank", "code": "INVALID"}]}}})
    text_in(live, store.shop_id, "+972586543210", "STOP")
    work(live)
    (row,) = live.rows(SmsConsentRow, customer_id=cid2)
    assert row.store_status == "failed" and "Phone can't be blank" in row.store_error
    assert scheduled(live, WRITE_BACK) == []
    assert not allowed(live, store.shop_id, cid2)  # the opt-out holds in Keepwell whatever the store said


def test_an_sms_stop_event_from_elsewhere_is_kept_and_written_back(live, rsps):
    """The personal page, or Twilio's 21610 answer, push the sms-stop: event alone."""
    store = STORES["shopify"](live, rsps)
    cid = shopify_sms_customer(store, 6, "+972547001122", T0)
    work(live)
    at = T0 + timedelta(days=1)
    live.rt.handoff.push_event(store.shop_id, change_event(store.shop_id, cid, False, at, "page"))
    work(live)
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert (row.subscribed, row.source, row.store_status) == (False, "page", "done")
    assert state(live, cid)["sms_consent"] is False and not allowed(live, store.shop_id, cid)
    assert store.api.ops("KeepwellSmsConsent")[0]["input"]["smsMarketingConsent"]["marketingState"] == "UNSUBSCRIBED"
    # the store's later opt-in (newer than the stop) is the customer's own again
    live.rt.handoff.push_event(store.shop_id, {
        "id": "shopify:test:later", "type": "customer.consent_changed", "shop": store.shop_id, "customer_id": cid,
        "occurred_at": (at + timedelta(days=5)).isoformat(), "customer": {"id": cid, "sms_consent": True}})
    work(live)
    assert allowed(live, store.shop_id, cid)
    assert len(store.api.ops("KeepwellSmsConsent")) == 1  # the store's own change is not written back to it


def test_the_first_look_up_brings_the_stores_sms_consent(live, rsps):
    store = STORES["shopify"](live, rsps)
    cid = store.customer(7)
    store.api.phones[cid] = ("+972545123456", "SUBSCRIBED", "2026-11-01T09:00:00Z")
    store.order(91001, cid, T0, email="dana@example.co.il", first_name="Dana", consent=False)  # the order says nothing
    work(live)
    assert store.api.ops("KeepwellCustomerConsent")
    s = state(live, cid)
    assert (s["sms_consent"], s["sms_phone"], s["sms_consent_at"]) == (True, "+972545123456", "2026-11-01T09:00:00+00:00")
    (row,) = live.rows(CustomerRow, customer_id=cid)
    assert row.phone_key == "5123456"


def test_woocommerce_opt_in_meta_becomes_sms_consent_and_a_stop_is_written_back_to_it(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    connect_twilio(live, store.shop_id)
    cid = store.customer(1)
    c = store._customer_record(cid, T0, "noa@example.co.il", "נועה", True, None)
    c["billing"]["phone"] = "054-765-4321"  # as typed at checkout, national form
    c["meta_data"].append({"id": 7, "key": "_keepwell_sms_opt_in", "value": "1"})
    store.api.customers[cid] = c
    store.post("customer.created", c)
    work(live)
    assert (state(live, cid)["sms_consent"], state(live, cid)["sms_phone"]) == (True, "054-765-4321")

    live.clock.now = T0 + timedelta(days=1)
    assert text_in(live, store.shop_id, "+972547654321", "STOP").status_code == 200
    assert not allowed(live, store.shop_id, cid)
    work(live)
    assert state(live, cid)["sms_consent"] is False
    meta = {m["key"]: m for m in store.api.customers[cid]["meta_data"]}
    assert (meta["_keepwell_sms_opt_in"]["value"], meta["_keepwell_sms_opt_in"]["id"]) == ("0", 7)  # in the form stored
    assert meta["_keepwell_sms_opt_in_source"]["value"] == "keepwell"
    (row,) = live.rows(SmsConsentRow, customer_id=cid)
    assert row.store_status == "done"
    assert len(store.api.requests("PUT", f"customers/{cid}")) == 1

    # A store whose SMS plugin keeps consent under a key of its own, and a customer who never opted in.
    c2 = store._customer_record(store.customer(2), T0, "eli@example.co.il", "Eli", True, None)
    c2["billing"]["phone"] = "+972 54 321 6549"
    store.api.customers[str(c2["id"])] = c2
    store.post("customer.created", c2)
    work(live)
    assert state(live, str(c2["id"]))["sms_consent"] is False  # a phone number is no consent
    assert state(live, str(c2["id"]))["sms_phone"] == "+972 54 321 6549"


def test_woocommerce_reads_the_shops_own_sms_meta_key(live, rsps):
    store = STORES["woocommerce"](live, rsps, sms_consent_meta_key="sms_marketing")
    cid = store.customer(3)
    c = store._customer_record(cid, T0, "tal@example.co.il", "Tal", False, None)
    c["billing"]["phone"] = "+972527001234"
    c["meta_data"] += [{"id": 8, "key": "sms_marketing", "value": "on"},
                       {"id": 9, "key": "_keepwell_sms_opt_in", "value": "no"}]  # the shop's own key is read first
    store.api.customers[cid] = c
    store.post("customer.updated", c)
    work(live)
    assert state(live, cid)["sms_consent"] is True and state(live, cid)["accepts_marketing"] is False
    live.rt.handoff.push_event(store.shop_id, change_event(store.shop_id, cid, False, T0 + timedelta(hours=1), "page"))
    work(live)
    meta = {m["key"]: m["value"] for m in store.api.customers[cid]["meta_data"]}
    assert meta["sms_marketing"] == "off"  # the form of the "on" stored there
    assert meta["_keepwell_sms_opt_in"] == "no"


# --- a text decided before a STOP is not sent after it (with the SMS effect of plugin.effects.sms) ---------

THANKS = {"rules.yaml": """\
settings:
  sms: {region: IL, time_zone: Asia/Jerusalem}
rules:
  - id: thanks
    name: Thank you
    trigger: order.paid
    holdout: 0%
    actions:
      - sms: {template: thanks}
""", "templates/thanks.sms.txt": "תודה {{ customer.first_name }}! להסרה השיבו STOP\n"}


def test_a_text_decided_before_a_stop_is_not_sent_after_it(live, rsps):
    pytest.importorskip("plugin.effects.sms", reason="the SMS effect (sms action) is not in this tree")
    from sqlalchemy import select

    from plugin.db import DecisionRow, EffectRow
    from plugin.pipeline import execute_decision
    from plugin.shops import install_rules

    store = STORES["shopify"](live, rsps)
    connect_twilio(live, store.shop_id)
    with live.rt.sessions.begin() as session:
        install_rules(session, store.shop_id, THANKS)
    cid = shopify_sms_customer(store, 8, "+972549876543", T0)
    work(live)
    twilio = rsps.post(f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO['account_sid']}/Messages.json", status=429,
                       json={"code": 20429, "message": "Too Many Requests",
                             "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429})
    live.clock.now = T0 + timedelta(minutes=10)  # 14:10 in Jerusalem
    store.order(91008, cid, live.clock.now, email="c8@example.co.il", first_name="נועה")
    work(live)  # decided; Twilio is busy: the text waits for its retry
    with live.rt.sessions() as session:
        key = session.scalar(select(DecisionRow.key).where(DecisionRow.customer_id == cid, DecisionRow.rule_id == "thanks"))
        assert session.scalar(select(EffectRow.status).where(EffectRow.decision_key == key, EffectRow.type == "sms")) \
            == "pending"
    assert twilio.call_count == 1

    assert text_in(live, store.shop_id, "+972549876543", "STOP").status_code == 200
    assert state(live, cid)["sms_consent"] is True  # the STOP still waits in the backlog...
    execute_decision(live.rt, store.shop_id, key)  # ...when the text's retry comes round
    with live.rt.sessions() as session:
        eff = session.scalars(select(EffectRow).where(EffectRow.decision_key == key, EffectRow.type == "sms")).one()
        assert (eff.status, eff.error) == ("skipped", "customer has not opted in to SMS marketing")
    assert twilio.call_count == 1  # not sent
    work(live)
    assert state(live, cid)["sms_consent"] is False
    assert store.api.phones[cid][1] == "UNSUBSCRIBED"
