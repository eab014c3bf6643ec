"""Installing from the Shopify App Store, session tokens, and the mandatory privacy webhooks.

The OAuth pieces are tested as functions (the documented query-HMAC vector, shop domains,
session-token claims); the flows run through the real app on a real Redis and database, with
Shopify mocked at the HTTP layer (``responses``) and every GraphQL document validated against
the pinned Admin API schema. Every refused request must leave nothing stored.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jwt
import pytest
import requests
import responses
from flask import g, jsonify
from graphql import build_client_schema, parse as gql_parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from sqlalchemy import select

from connectors.shopify import API_VERSION, grants, oauth, subscriptions
from live import load_json, start, stop
from plugin import mail, secrets
from plugin.admin_auth import require_shop
from plugin.db import (CustomerRow, DataExportRow, DecisionRow, EffectRow, EventSeenRow, OrderIndexRow, RuleSetRow,
                       ShopRow, TimerRow, UnsubscribeRow)
from plugin.errors import StoreError
from plugin.handoff import Envelope
from plugin.shops import to_shop

API_KEY = "4f6b1c2d8e9a0b3c5d7e9f1a2b4c6d8e"
APP_SECRET = "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"  # a client secret's real shape (38 bytes)
OLD_SECRET = "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"
SHOP = "keepwell-demo.myshopify.com"
OTHER = "other-store.myshopify.com"
TOKEN = "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"
REFRESH_TOKEN = "shprt_2d4f6a8c0e1b3d5f7a9c1e3b5d7f9a0c"
APP_URL = "https://keepwell.test"  # what tests/live.py configures
SCHEMA_FILE = Path(__file__).resolve().parent / "fixtures" / "shopify" / f"admin_schema_{API_VERSION}.json.gz"


# --- the app, with the Shopify app credentials set ---------------------------------------------

def _start(redis_server, smtp, url):
    live = start(redis_server, url, smtp)
    config = replace(live.config, shopify_api_key=API_KEY, shopify_api_secrets=(APP_SECRET, OLD_SECRET))
    edge = live.app.extensions["keepwell"]
    edge.config = edge.shops.config = live.config = live.rt.config = config

    @live.app.get("/admin-test/whoami")
    @require_shop
    def whoami():  # what a merchant-admin page sees
        return jsonify(shop_id=g.shop_id)

    return live


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = _start(redis_server, smtp, f"sqlite:///{tmp_path}/keepwell.db")
    yield live
    stop(live)


@pytest.fixture(params=["sqlite", "postgres"])
def live_any_db(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = _start(redis_server, smtp, url)
    yield live
    stop(live)


# --- Shopify, mocked; every GraphQL document checked against the schema ------------------------

@pytest.fixture(scope="session")
def schema():
    with gzip.open(SCHEMA_FILE) as f:
        return build_client_schema(json.load(f)["data"], assume_valid=True)


def graphql_url(shop: str) -> str:
    return f"https://{shop}/admin/api/{API_VERSION}/graphql.json"


def check_document(schema, body: dict) -> str:
    """The operation's root field, after failing unless the document and its variables are valid."""
    doc = gql_parse(body["query"])
    assert validate(schema, doc) == []
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, op.variable_definitions or (), body.get("variables") or {})
    assert not isinstance(coerced, list), [e.message for e in coerced]
    return op.selection_set.selections[0].name.value


def _graphql_answer(root: str, variables: dict) -> dict:
    if root == "webhookSubscriptionCreate":
        return {"webhookSubscription": {"id": f"gid://shopify/WebhookSubscription/{uuid.uuid4().int % 10**12}"},
                "userErrors": []}
    if root == "discountCodeBasicCreate":
        return {"codeDiscountNode": {"id": "gid://shopify/DiscountCodeNode/1057371386"}, "userErrors": []}
    if root == "tagsAdd":
        return {"node": {"id": variables["id"]}, "userErrors": []}
    if root == "nodes":  # order enrichment: products in no collection, untagged
        return [{"id": gid, "tags": [], "collections": {"nodes": []}} for gid in variables["ids"]]
    if root == "customer":  # the consent look-up of a customer first seen without one
        return {"id": variables["id"], "defaultEmailAddress": {"marketingState": "NOT_SUBSCRIBED",
                                                               "marketingUpdatedAt": None}}
    if root == "customerEmailMarketingConsentUpdate":  # an unsubscribe written back
        return {"customer": {"id": variables["input"]["customerId"],
                             "defaultEmailAddress": {"marketingState": "UNSUBSCRIBED"}}, "userErrors": []}
    if root == "shop":  # the store's details for the email sender
        return {"name": "Keepwell Test Shop", "contactEmail": "hello@keepwell-test.example",
                "email": "owner@keepwell-test.example", "shopAddress": {"formatted": ["1 Test Street", "Ottawa ON K1A 0B1",
                                                                                     "Canada"]},
                "primaryDomain": {"url": "https://keepwell-test.example"}}
    raise AssertionError(f"unexpected GraphQL operation {root}")


@pytest.fixture
def store(schema):
    """Shopify's token endpoint and GraphQL API for SHOP and OTHER, answering like Shopify; every
    GraphQL document sent is validated against the schema after the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        def graphql(request):
            body = json.loads(request.body)
            (op,) = [d for d in gql_parse(body["query"]).definitions if isinstance(d, OperationDefinitionNode)]
            root = op.selection_set.selections[0].name.value
            return 200, {}, json.dumps({"data": {root: _graphql_answer(root, body.get("variables") or {})}})

        for shop in (SHOP, OTHER):
            rsps.add_callback(responses.POST, graphql_url(shop), callback=graphql, content_type="application/json")
        yield rsps
        graphql_calls = [c for c in rsps.calls if c.request.url in (graphql_url(SHOP), graphql_url(OTHER))]
        for call in graphql_calls:
            check_document(schema, json.loads(call.request.body))
            assert call.request.headers["X-Shopify-Access-Token"].startswith("shpat_")


def token_endpoint(store, shop=SHOP, token=TOKEN, scope="write_customers,read_orders,write_discounts,read_products",
                   status=200):
    """Shopify's answer to the code exchange (an expiring token, as asked), or its refusal of a used code."""
    body = ({"access_token": token, "scope": scope, "expires_in": 3600, "refresh_token": REFRESH_TOKEN,
             "refresh_token_expires_in": 7776000} if status == 200 else
            {"error": "invalid_request", "error_description": "The authorization code was not found or was already used"})
    store.upsert(responses.POST, f"https://{shop}/admin/oauth/access_token", json=body, status=status)


def calls(store, path: str) -> list:
    return [c for c in store.calls if urlsplit(c.request.url).path == path]


# --- signing as Shopify does -------------------------------------------------------------------

def signed(params: dict, secret: str = APP_SECRET) -> dict:
    """``params`` with Shopify's hmac: hex HMAC-SHA256 of the sorted, percent-encoded query."""
    message = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def host_param(shop: str) -> str:
    return base64.b64encode(f"admin.shopify.com/store/{shop.split('.')[0]}".encode()).decode().rstrip("=")


def install_request(live, shop=SHOP, **overrides):
    params = {"shop": shop, "timestamp": str(int(time.time())), "host": host_param(shop)}
    params.update(overrides)
    return live.client.get("/shopify/install?" + urlencode(signed(params)))


def callback_request(live, state, shop=SHOP, code="0907a61c0c8d55e99db179b68161bc00", secret=APP_SECRET, **overrides):
    params = {"code": code, "shop": shop, "state": state, "timestamp": str(int(time.time())), "host": host_param(shop)}
    params.update(overrides)
    return live.client.get("/shopify/callback?" + urlencode(signed({k: v for k, v in params.items() if v is not None},
                                                                    secret)))


def state_from(response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


def install(live, store, shop=SHOP, token=TOKEN):
    """The whole flow, as a merchant's browser goes through it; returns the callback response."""
    token_endpoint(store, shop, token)
    return callback_request(live, state_from(install_request(live, shop)), shop)


def state_keys(live) -> list:
    return list(live.rt.redis.scan_iter(match=f"{live.config.queue}:oauth-state:*"))


def assert_nothing_stored(live):
    assert live.rows(ShopRow) == []
    assert live.rows(RuleSetRow) == []


# --- the query HMAC ----------------------------------------------------------------------------

VECTOR = {"code": "0907a61c0c8d55e99db179b68161bc00", "shop": "some-shop.myshopify.com",
          "state": "0.6784241404160823", "timestamp": "1337178173",
          "hmac": "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"}


def test_the_documented_query_hmac_vector():
    assert oauth.query_message(VECTOR) == ("code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com"
                                           "&state=0.6784241404160823&timestamp=1337178173")
    assert oauth.query_hmac(VECTOR, "hush") == VECTOR["hmac"]
    oauth.verify_query_hmac(VECTOR, ["hush"], now=1337178173 + 30)
    oauth.verify_query_hmac(VECTOR, ["new-secret", "hush"], now=1337178173 - 90)  # the old secret, mid-rotation


@pytest.mark.parametrize("now", [1337178173 + 91, 1337178173 - 91, time.time()])
def test_a_stale_or_future_timestamp_is_refused(now):
    with pytest.raises(oauth.StaleRequest):
        oauth.verify_query_hmac(VECTOR, ["hush"], now=now)


@pytest.mark.parametrize("params,secrets_", [
    ({**VECTOR, "hmac": "0" * 64}, ["hush"]),
    (VECTOR, ["not-the-secret"]),
    (VECTOR, []),
    ({k: v for k, v in VECTOR.items() if k != "hmac"}, ["hush"]),
    ({**VECTOR, "shop": "evil-shop.myshopify.com"}, ["hush"]),  # a parameter changed after signing
    ({**VECTOR, "extra": "1"}, ["hush"]),  # a parameter added after signing
])
def test_a_bad_query_hmac_is_refused(params, secrets_):
    with pytest.raises(oauth.InvalidHmac) as err:
        oauth.verify_query_hmac(params, secrets_, now=1337178173)
    assert not isinstance(err.value, oauth.StaleRequest) and err.value.status == 401


def test_query_values_are_percent_encoded_like_shopify_signs_them():
    # Shopify's own library signs "hello world" as hello%20world (not +), and keeps * - . _ as they are.
    params = {"custom": "hello world", "shop": "myshop.myshopify.com", "timestamp": "1700000000", "x": "a*b~c"}
    message = "custom=hello%20world&shop=myshop.myshopify.com&timestamp=1700000000&x=a*b%7Ec"
    assert oauth.query_message(params) == message
    params["hmac"] = hmac.new(b"secret", message.encode(), hashlib.sha256).hexdigest()
    oauth.verify_query_hmac(params, ["secret"], now=1700000000)


# --- shop domains ------------------------------------------------------------------------------

@pytest.mark.parametrize("given,expected", [
    ("keepwell-demo.myshopify.com", "keepwell-demo.myshopify.com"),
    ("Keepwell-Demo.MyShopify.COM", "keepwell-demo.myshopify.com"),
    ("shop_1.myshopify.com", "shop_1.myshopify.com"),
])
def test_valid_shop_domains(given, expected):
    assert oauth.valid_shop_domain(given) == expected


FOREIGN_SHOPS = ["evil.com", "myshopify.com.evil.com", "keepwell-demo.myshopify.com.evil.com", "myshopify.com",
                 "keepwell-demo.myshopify.com/", "https://keepwell-demo.myshopify.com", "keepwell-demo.myshopify.com:443",
                 "evil.com#keepwell-demo.myshopify.com", "evil.com/keepwell-demo.myshopify.com",
                 "keepwell-demo.myshopify.com@evil.com", "a.b.myshopify.com", "-shop.myshopify.com",
                 "keepwell-demo.myshopify.com\n", "keepwell-demo.myshopify.com.", "shop.shopify.com",
                 "keepwell-demo.myshopify.io", "keepwell demo.myshopify.com", ""]


@pytest.mark.parametrize("given", [*FOREIGN_SHOPS, None, 42])
def test_foreign_shop_domains(given):
    assert oauth.valid_shop_domain(given) is None
    with pytest.raises(oauth.InvalidShopDomain):
        oauth.require_shop_domain(given)


# --- the authorization URL and the code exchange ------------------------------------------------

def test_authorize_url():
    url = oauth.authorize_url(SHOP, API_KEY, oauth.SCOPES, f"{APP_URL}/shopify/callback", "nonce-123")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", SHOP, "/admin/oauth/authorize")
    assert parse_qs(parts.query) == {"client_id": [API_KEY], "redirect_uri": [f"{APP_URL}/shopify/callback"],
                                     "state": ["nonce-123"],
                                     "scope": ["read_orders,read_customers,write_customers,write_discounts,read_products"]}
    with pytest.raises(oauth.InvalidShopDomain):
        oauth.authorize_url("evil.com", API_KEY, oauth.SCOPES, f"{APP_URL}/shopify/callback", "nonce-123")


@responses.activate
def test_exchange_code():
    responses.post(f"https://{SHOP}/admin/oauth/access_token",
                   json={"access_token": TOKEN, "scope": "write_customers,read_orders,write_discounts,read_products"})
    grant = grants.exchange_code(SHOP, API_KEY, APP_SECRET, "the-code")
    assert grant == grants.Grant(TOKEN, ("write_customers", "read_orders", "write_discounts", "read_products"))
    assert grant.missing() == []  # write_customers grants read_customers
    assert grants.Grant(TOKEN, ("read_orders",)).missing() == ["read_customers", "write_customers", "write_discounts",
                                                               "read_products"]
    assert json.loads(responses.calls[0].request.body) == {"client_id": API_KEY, "client_secret": APP_SECRET,
                                                           "code": "the-code", "expiring": "1"}


@pytest.mark.parametrize("status,body,retryable", [
    (400, {"error": "invalid_request", "error_description": "The authorization code was not found or was already used"}, False),
    (500, {"errors": "Internal Server Error"}, True),
    (429, {"errors": "Exceeded 2 calls per second for api client."}, True),
    (200, {"scope": "read_orders"}, False),
    (200, ["not", "an", "object"], False),
])
@responses.activate
def test_exchange_code_failures(status, body, retryable):
    responses.post(f"https://{SHOP}/admin/oauth/access_token", json=body, status=status)
    with pytest.raises(StoreError) as err:
        grants.exchange_code(SHOP, API_KEY, APP_SECRET, "the-code")
    assert err.value.retryable is retryable


@responses.activate
def test_exchange_code_unreachable():
    responses.post(f"https://{SHOP}/admin/oauth/access_token", body=requests.ConnectionError("refused"))
    with pytest.raises(StoreError) as err:
        grants.exchange_code(SHOP, API_KEY, APP_SECRET, "the-code")
    assert err.value.retryable


# --- session tokens ----------------------------------------------------------------------------

NOW = 1_790_000_000


def session_token(shop=SHOP, secret=APP_SECRET, alg="HS256", now=NOW, **claims) -> str:
    """An App Bridge session token as Shopify issues it (one-minute lifetime)."""
    payload = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": API_KEY, "sub": "74985635",
               "exp": int(now) + 60, "nbf": int(now) - 5, "iat": int(now) - 5, "jti": str(uuid.uuid4()),
               "sid": hashlib.sha256(shop.encode()).hexdigest()}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short key for HS512 in the forgery tests
        return jwt.encode(payload, secret, algorithm=alg)


def unsigned_token(**claims) -> str:
    """alg "none": a token anybody can write."""
    good = jwt.decode(session_token(**claims), options={"verify_signature": False})
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(good)}."


def test_a_session_token_names_its_shop():
    assert oauth.decode_session_token(session_token(), API_KEY, [APP_SECRET], NOW) == SHOP
    assert oauth.decode_session_token(session_token(secret=OLD_SECRET), API_KEY, [APP_SECRET, OLD_SECRET], NOW) == SHOP
    # the 10 s leeway, both ways
    assert oauth.decode_session_token(session_token(exp=NOW - 9), API_KEY, [APP_SECRET], NOW) == SHOP
    assert oauth.decode_session_token(session_token(nbf=NOW + 9), API_KEY, [APP_SECRET], NOW) == SHOP


def _spliced(now) -> str:
    """Shop A's header and signature around shop B's claims."""
    a, b = session_token(now=now).split("."), session_token(shop=OTHER, now=now).split(".")
    return ".".join([a[0], b[1], a[2]])


#: Tokens that must not authenticate anybody, each made for the time ``now``.
FORGED = {
    "wrong secret": lambda now: session_token(secret="shpss_" + "f" * 32, now=now),
    "alg none": lambda now: unsigned_token(now=now),
    "HS512": lambda now: session_token(alg="HS512", now=now),
    "HS384": lambda now: session_token(alg="HS384", now=now),
    "expired": lambda now: session_token(exp=int(now) - 11, nbf=int(now) - 70, now=now),
    "nbf in the future": lambda now: session_token(nbf=int(now) + 40, now=now),  # well past the 10 s leeway, on a slow machine too
    "no exp": lambda now: session_token(exp=None, now=now),
    "no nbf": lambda now: session_token(nbf=None, now=now),
    "exp not a number": lambda now: session_token(exp=str(int(now) + 60), now=now),
    "wrong aud": lambda now: session_token(aud="another-apps-client-id", now=now),
    "aud as a list": lambda now: session_token(aud=[API_KEY, "x"], now=now),
    "no aud": lambda now: session_token(aud=None, now=now),
    "dest not myshopify": lambda now: session_token(dest="https://evil.com", iss="https://evil.com/admin", now=now),
    "dest over http": lambda now: session_token(dest=f"http://{SHOP}", iss=f"http://{SHOP}/admin", now=now),
    "dest without scheme": lambda now: session_token(dest=SHOP, iss=f"{SHOP}/admin", now=now),
    "dest with a path": lambda now: session_token(dest=f"https://{SHOP}/x", iss=f"https://{SHOP}/x/admin", now=now),
    "dest lookalike": lambda now: session_token(dest=f"https://{SHOP}.evil.com", iss=f"https://{SHOP}.evil.com/admin",
                                                now=now),
    "iss on another shop": lambda now: session_token(iss=f"https://{OTHER}/admin", now=now),
    "no iss": lambda now: session_token(iss=None, now=now),
    "not a jwt": lambda now: "not-a-token",
    "spliced claims": _spliced,
}


@pytest.mark.parametrize("name", FORGED)
def test_forged_session_tokens_are_refused(name):
    with pytest.raises(oauth.SessionTokenError) as err:
        oauth.decode_session_token(FORGED[name](NOW), API_KEY, [APP_SECRET, OLD_SECRET], NOW)
    assert err.value.status == 401


def test_the_admin_helper_returns_the_tokens_own_shop_only(live):
    shop_a, _ = live.add_shop("shopify", SHOP)
    shop_b, _ = live.add_shop("shopify", OTHER)
    now = time.time()

    def whoami(token, query=""):
        return live.client.get(f"/admin-test/whoami{query}", headers={"Authorization": f"Bearer {token}"})

    assert whoami(session_token(now=now)).get_json() == {"shop_id": shop_a}
    # shop B's token asking about shop A gets shop B: nothing in the request can point elsewhere
    r = whoami(session_token(shop=OTHER, now=now), f"?shop={SHOP}&shop_id={shop_a}")
    assert r.status_code == 200 and r.get_json() == {"shop_id": shop_b}
    # a token for shop B with shop A in its issuer is no token at all
    r = whoami(session_token(shop=OTHER, iss=f"https://{SHOP}/admin", now=now))
    assert r.status_code == 401 and "iss" in r.get_json()["error"]

    for name, make in FORGED.items():
        r = whoami(make(now))
        assert r.status_code == 401, name
        assert r.headers.get("X-Shopify-Retry-Invalid-Session-Request") == "1", name
    assert whoami(session_token(now=now - 120)).status_code == 401  # expired a minute ago
    assert live.client.get("/admin-test/whoami").status_code == 401
    assert live.client.get("/admin-test/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    # a valid token of a shop that never installed, or has uninstalled
    r = whoami(session_token(shop="stranger.myshopify.com", now=now))
    assert r.status_code == 401 and "not installed" in r.get_json()["error"]
    live.app.extensions["keepwell"].shops.uninstall(shop_a)
    assert whoami(session_token(now=now)).status_code == 401


# --- install -> callback -----------------------------------------------------------------------

def test_install_flow(live_any_db, store):
    live = live_any_db
    r = install_request(live, host=host_param(SHOP))  # a non-embedded (legacy) install: the code grant
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    query = parse_qs(location.query)
    assert (location.scheme, location.netloc, location.path) == ("https", SHOP, "/admin/oauth/authorize")
    assert query["client_id"] == [API_KEY]
    assert query["scope"] == [",".join(oauth.SCOPES)]
    assert query["redirect_uri"] == [f"{APP_URL}/shopify/callback"]
    state = query["state"][0]
    key = f"{live.config.queue}:oauth-state:{state}"
    assert live.rt.redis.get(key) == SHOP.encode() and 0 < live.rt.redis.ttl(key) <= 600
    assert live.rows(ShopRow) == []  # nothing stored before the merchant approved

    token_endpoint(store)
    r = callback_request(live, state)
    assert r.status_code == 302, r.get_data(as_text=True)
    assert r.headers["Location"] == f"https://{SHOP}/admin/apps/{API_KEY}"

    (exchange,) = calls(store, "/admin/oauth/access_token")
    assert json.loads(exchange.request.body) == {"client_id": API_KEY, "client_secret": APP_SECRET,
                                                 "code": "0907a61c0c8d55e99db179b68161bc00", "expiring": "1"}
    subscribed = [json.loads(c.request.body) for c in calls(store, f"/admin/api/{API_VERSION}/graphql.json")]
    assert [b["variables"]["topic"] for b in subscribed] == list(subscriptions.TOPICS)
    assert {b["variables"]["uri"] for b in subscribed} == {f"{APP_URL}/webhooks/shopify"}
    assert {c.request.headers["X-Shopify-Access-Token"] for c in calls(store, f"/admin/api/{API_VERSION}/graphql.json")} == {TOKEN}

    (row,) = live.rows(ShopRow)
    assert (row.platform, row.domain, row.api_url, row.active) == ("shopify", SHOP, f"https://{SHOP}", True)
    assert TOKEN not in row.secrets  # encrypted at rest
    stored = secrets.decrypt(live.config.secret_keys, row.secrets)
    assert stored["credentials"]["access_token"] == TOKEN and stored["webhook_secrets"] == []
    assert stored["credentials"]["refresh_token"] == REFRESH_TOKEN and REFRESH_TOKEN not in row.secrets
    assert time.time() + 3500 < stored["credentials"]["access_token_expires_at"] <= time.time() + 3600
    assert to_shop(row, live.config).webhook_secrets == (APP_SECRET, OLD_SECRET)  # the app's, rotation included
    assert row.settings["scopes"] == ["write_customers", "read_orders", "write_discounts", "read_products"]
    (rules,) = live.rows(RuleSetRow, shop_id=row.id)
    assert rules.active and rules.files
    assert live.rt.redis.exists(key) == 0  # the state is spent

    # The same callback again (a replay, or a double click): refused, nothing changes.
    before = len(store.calls)
    r = callback_request(live, state)
    assert r.status_code == 403 and "already used" in r.get_data(as_text=True)
    assert len(store.calls) == before
    assert [(s.id, s.active) for s in live.rows(ShopRow)] == [(row.id, True)]

    # The shop's webhooks now reach the engine.
    r = live.post_shopify("customers/create", load_json("shopify", "webhooks", "2026-04__customers_create.payload.json"),
                          SHOP, secret=APP_SECRET)
    assert r.status_code == 202, r.get_data(as_text=True)


def test_reinstall_updates_the_same_shop_and_keeps_its_rules(live, store):
    assert install(live, store).status_code == 302
    (first,) = live.rows(ShopRow)
    rules_before = [(r.id, r.version, r.digest, r.active) for r in live.rows(RuleSetRow)]

    uninstalled = uninstalled_body(SHOP)
    assert live.post_shopify("app/uninstalled", uninstalled, SHOP, secret=APP_SECRET).status_code == 200
    (row,) = live.rows(ShopRow)
    assert not row.active and secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("access_token", "") == ""

    assert install(live, store, token="shpat_second_token_after_reinstall").status_code == 302
    (row,) = live.rows(ShopRow)
    assert (row.id, row.active, row.created_at) == (first.id, True, first.created_at)
    assert secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("access_token", "") == "shpat_second_token_after_reinstall"
    assert [(r.id, r.version, r.digest, r.active) for r in live.rows(RuleSetRow)] == rules_before


# --- tampered installs: refused, logged, nothing stored -----------------------------------------

@pytest.mark.parametrize("case,shop,status", [
    ("bad hmac", SHOP, 401), ("foreign secret", SHOP, 401), ("no hmac", SHOP, 401), ("stale", SHOP, 401),
    ("future", SHOP, 401), ("shop changed after signing", SHOP, 401),
    *[("foreign shop", s, 400) for s in FOREIGN_SHOPS],
])
def test_tampered_install_requests(live, store, caplog, case, shop, status):
    now = int(time.time())
    params = {"shop": shop, "timestamp": str(now)}
    if case == "bad hmac":
        query = {**signed(params), "hmac": "ab" * 32}
    elif case == "foreign secret":
        query = signed(params, secret="shpss_" + "e" * 32)
    elif case == "no hmac":
        query = params
    elif case in ("stale", "future"):
        query = signed({**params, "timestamp": str(now - 300 if case == "stale" else now + 300)})
    elif case == "shop changed after signing":
        query = {**signed(params), "shop": OTHER}
    else:
        query = signed(params)
    r = live.client.get("/shopify/install?" + urlencode(query))
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.get_data(as_text=True).startswith("Keepwell could not be installed: ")
    assert "install refused" in caplog.text
    assert state_keys(live) == []
    assert len(store.calls) == 0
    assert_nothing_stored(live)


CALLBACK_CASES = ["bad hmac", "foreign secret", "stale", "unknown state", "no state", "malformed state",
                  "state of another shop", "foreign shop", "no code", "exchange refused", "webhooks refused"]


@pytest.mark.parametrize("case", CALLBACK_CASES)
def test_tampered_callbacks(live, store, caplog, case):
    state = state_from(install_request(live))
    other_state = state_from(install_request(live, OTHER))
    token_endpoint(store)
    expected = {"bad hmac": 401, "foreign secret": 401, "stale": 401, "unknown state": 403, "no state": 403,
                "malformed state": 403, "state of another shop": 403, "foreign shop": 400, "no code": 400,
                "exchange refused": 502, "webhooks refused": 502}[case]
    if case == "bad hmac":
        params = {"code": "c0de", "shop": SHOP, "state": state, "timestamp": str(int(time.time()))}
        r = live.client.get("/shopify/callback?" + urlencode({**params, "hmac": "00" * 32}))
    elif case == "foreign secret":
        r = callback_request(live, state, secret="shpss_" + "e" * 32)
    elif case == "stale":
        r = callback_request(live, state, timestamp=str(int(time.time()) - 120))
    elif case == "unknown state":
        r = callback_request(live, "x" * 43)
    elif case == "no state":
        r = callback_request(live, None)
    elif case == "malformed state":
        r = callback_request(live, f"{state}:backlog")  # an attempt at another Redis key
    elif case == "state of another shop":
        r = callback_request(live, other_state)  # issued for OTHER, presented for SHOP
    elif case == "foreign shop":
        r = callback_request(live, state, shop="keepwell-demo.myshopify.com.evil.com")
    elif case == "no code":
        r = callback_request(live, state, code=None)
    elif case == "exchange refused":
        token_endpoint(store, status=400)
        r = callback_request(live, state)
    else:
        store.replace(responses.POST, graphql_url(SHOP), json={"data": {"webhookSubscriptionCreate": {
            "webhookSubscription": None, "userErrors": [{"field": ["webhookSubscription", "callbackUrl"],
                                                         "message": "Address is invalid"}]}}})
        r = callback_request(live, state)
    assert r.status_code == expected, r.get_data(as_text=True)
    assert r.get_data(as_text=True).startswith("Keepwell could not be installed: ")
    assert "install refused" in caplog.text
    if expected < 500:
        assert calls(store, "/admin/oauth/access_token") == []  # nothing reached Shopify
    assert_nothing_stored(live)


def test_a_state_expires_and_works_for_one_callback_only(live, store):
    state = state_from(install_request(live))
    live.rt.redis.delete(f"{live.config.queue}:oauth-state:{state}")  # what the 10-minute TTL does
    assert callback_request(live, state).status_code == 403
    token_endpoint(store)
    state = state_from(install_request(live))
    assert callback_request(live, state).status_code == 302
    assert callback_request(live, state).status_code == 403


def test_install_needs_the_app_credentials(live):
    edge = live.app.extensions["keepwell"]
    edge.config = replace(edge.config, shopify_api_key="")
    r = install_request(live)
    assert r.status_code == 503 and "SHOPIFY_API_KEY" in r.get_data(as_text=True)


# --- app/uninstalled stops the worker ----------------------------------------------------------

def test_uninstall_stops_processing(live, store):
    install(live, store)
    (row,) = live.rows(ShopRow)
    customer = load_json("shopify", "webhooks", "2026-04__customers_create.payload.json")
    assert live.post_shopify("customers/create", customer, SHOP, secret=APP_SECRET).status_code == 202  # queued
    uninstalled = uninstalled_body(SHOP)
    assert live.post_shopify("app/uninstalled", uninstalled, SHOP, secret=APP_SECRET).status_code == 200
    live.work()  # the queued delivery is dropped: the shop is not active
    assert live.rows(CustomerRow, shop_id=row.id) == [] and live.rows(DecisionRow, shop_id=row.id) == []
    assert live.post_shopify("customers/create", customer, SHOP, secret=APP_SECRET).status_code == 404
    (row,) = live.rows(ShopRow)
    assert not row.active and secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("access_token", "") == ""
    graphql_calls = len(calls(store, f"/admin/api/{API_VERSION}/graphql.json"))
    assert graphql_calls == len(subscriptions.TOPICS)  # only the install's subscriptions; no write-back


# --- compliance webhooks -----------------------------------------------------------------------

def uninstalled_body(shop: str) -> dict:
    """The app/uninstalled sample as Shopify sends it for ``shop``: the sample leaves the domain
    null, and its id is made the compliance samples' shop_id."""
    return {**load_json("shopify", "webhooks", "2026-04__app_uninstalled.payload.json"), "id": 954889,
            "myshopify_domain": shop}


CUSTOMER = "191167"  # the compliance samples' customer (its id, like all sample ids, used as published)


def sample(name: str, shop: str) -> dict:
    """An official sample with its ``{shop}`` placeholder filled in."""
    payload = load_json("shopify", "webhooks", f"2026-04__{name}.payload.json")
    payload["shop_domain"] = payload["shop_domain"].replace("{shop}.myshopify.com", shop)
    return payload


def seed_customer(live, shop: str, customer_id: str, email: str, first: str, last: str, order_id: str):
    """The customer signs up, opts in, orders and unsubscribes, through the real webhooks and worker."""
    customer = load_json("shopify", "webhooks", "2026-04__customers_create.payload.json")
    customer.update(id=int(customer_id), email=email, first_name=first, last_name=last, phone="555-625-1199",
                    created_at="2026-10-01T10:00:00-04:00", updated_at="2026-10-01T10:00:00-04:00",
                    admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}")
    customer["default_address"].update(customer_id=int(customer_id), first_name=first, last_name=last)
    order = json.loads((Path(__file__).parent / "fixtures" / "shopify" / "order_paid.json").read_text())
    order.update(id=int(order_id), email=email, contact_email=email, admin_graphql_api_id=f"gid://shopify/Order/{order_id}")
    order["customer"].update(id=int(customer_id), email=email, first_name=first, last_name=last,
                             admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}")
    consent = load_json("shopify", "webhooks", "2026-04__customers_email_marketing_consent_update.payload.json")
    consent.update(customer_id=int(customer_id), email_address=email, email_marketing_consent={
        "state": "subscribed", "opt_in_level": "single_opt_in", "consent_updated_at": "2026-10-01T10:05:00-04:00"})
    assert live.post_shopify("customers/create", customer, shop, secret=APP_SECRET).status_code == 202
    assert live.post_shopify("customers/email_marketing_consent_update", consent, shop, secret=APP_SECRET).status_code == 202
    assert live.post_shopify("orders/paid", order, shop, secret=APP_SECRET).status_code == 202
    live.work()
    with live.rt.sessions() as session:
        shop_id = session.scalar(select(ShopRow.id).where(ShopRow.domain == shop))
    token = mail.unsubscribe_token(live.config.secret_key, shop_id, customer_id)
    assert live.client.post(f"/unsubscribe/{token}").status_code == 200
    live.work()
    return shop_id


def held(live, shop_id: str, customer_id: str) -> dict:
    """Every row Keepwell holds on the customer, by table."""
    return {
        "customers": live.rows(CustomerRow, shop_id=shop_id, customer_id=customer_id),
        "decisions": live.rows(DecisionRow, shop_id=shop_id, customer_id=customer_id),
        "effects": live.rows(EffectRow, shop_id=shop_id, customer_id=customer_id),
        "orders": live.rows(OrderIndexRow, shop_id=shop_id, customer_id=customer_id),
        "timers": live.rows(TimerRow, shop_id=shop_id, customer_id=customer_id),
        "unsubscribes": live.rows(UnsubscribeRow, shop_id=shop_id, customer_id=customer_id),
    }


def dump(rows) -> str:
    return json.dumps([{c.name: getattr(r, c.name) for c in r.__table__.columns} for r in rows], default=str)


@pytest.fixture
def two_shops(live, store):
    """SHOP and OTHER installed; the samples' customer known to both, and a second customer in SHOP."""
    install(live, store)
    install(live, store, OTHER)
    a = seed_customer(live, SHOP, CUSTOMER, "john@example.com", "John", "Smith", "299938")
    seed_customer(live, SHOP, "7421852987654321123", "ana.silva@example.com", "Ana", "Silva", "9007199254740993")
    b = seed_customer(live, OTHER, CUSTOMER, "john@example.com", "John", "Smith", "299938")
    return a, b


@pytest.mark.parametrize("name", ["customers_data_request", "customers_redact", "shop_redact"])
def test_compliance_webhooks_with_a_bad_signature_get_401(live, name):
    live.add_shop("shopify", SHOP)
    topic = name.replace("_", "/", 1)
    for secret in ("shpss_" + "e" * 32, "", None):
        payload = sample(name, SHOP)
        if secret is None:  # no signature at all
            body = json.dumps(payload).encode()
            r = live.client.post("/webhooks/shopify", data=body, headers={"X-Shopify-Topic": topic,
                                 "X-Shopify-Shop-Domain": SHOP, "Content-Type": "application/json"})
        else:
            r = live.post_shopify(topic, payload, SHOP, secret=secret)
        assert r.status_code == 401, (secret, r.get_data(as_text=True))
    # for a shop Keepwell never had, too
    assert live.post_shopify(topic, sample(name, "stranger.myshopify.com"), "stranger.myshopify.com",
                             secret="shpss_" + "e" * 32).status_code == 401
    assert live.rt.queue.count == 0


@pytest.mark.parametrize("name", ["customers_data_request", "customers_redact", "shop_redact"])
def test_compliance_webhooks_for_a_shop_keepwell_holds_nothing_on(live, name):
    topic = name.replace("_", "/", 1)
    for shop in ("stranger.myshopify.com", "{shop}.myshopify.com"):  # the published sample, unfilled
        r = live.post_shopify(topic, sample(name, shop), shop, secret=APP_SECRET)
        assert r.status_code == 200 and r.get_json() == {"status": "nothing held"}
    # the old secret still counts during a rotation
    assert live.post_shopify(topic, sample(name, "stranger.myshopify.com"), "stranger.myshopify.com",
                             secret=OLD_SECRET).status_code == 200
    assert live.rt.queue.count == 0


def test_a_data_request_exports_what_keepwell_holds(live, store, two_shops):
    shop_a, shop_b = two_shops
    before = held(live, shop_a, CUSTOMER)
    assert all(before.values()), {k: len(v) for k, v in before.items()}  # the seed reached every table

    r = live.post_shopify("customers/data_request", sample("customers_data_request", SHOP), SHOP, secret=APP_SECRET)
    assert r.status_code == 200 and r.get_json() == {"status": "queued"}
    live.work()
    (export,) = live.rows(DataExportRow)
    assert (export.shop_id, export.customer_id, export.request_id) == (shop_a, CUSTOMER, "9999")
    data = export.data
    assert data["holds_data"] and data["customer_state"]["email"] == "john@example.com"
    assert data["customer_state"]["first_name"] == "John"
    assert {d["key"] for d in data["decisions"]} == {d.key for d in before["decisions"]}
    assert {e["key"] for e in data["effects"]} == {e.key for e in before["effects"]}
    assert data["orders"] == ["299938"]
    assert {t["key"] for t in data["timers"]} == {t.key for t in before["timers"]}
    assert data["unsubscribed_at"] is not None
    text = json.dumps(data)
    assert "ana.silva@example.com" not in text and shop_b not in text  # nobody else's data

    # Shopify's retry of the same request replaces that export; nothing else changed
    live.post_shopify("customers/data_request", sample("customers_data_request", SHOP), SHOP, secret=APP_SECRET)
    live.work()
    assert [e.id for e in live.rows(DataExportRow)] == [export.id]
    assert {k: len(v) for k, v in held(live, shop_a, CUSTOMER).items()} == {k: len(v) for k, v in before.items()}

    # a known shop, a customer it never saw: an export that says so
    payload = sample("customers_data_request", SHOP)
    payload["customer"]["id"], payload["data_request"]["id"] = 5550001, 10000
    assert live.post_shopify("customers/data_request", payload, SHOP, secret=APP_SECRET).status_code == 200
    live.work()
    (empty,) = live.rows(DataExportRow, customer_id="5550001")
    assert not empty.data["holds_data"] and empty.data["decisions"] == [] and empty.data["customer_state"] is None


def test_a_customer_redaction_erases_the_customer(live, store, two_shops):
    shop_a, shop_b = two_shops
    live.post_shopify("customers/data_request", sample("customers_data_request", SHOP), SHOP, secret=APP_SECRET)
    live.work()
    others_before = {shop: {k: dump(v) for k, v in held(live, shop, c).items()}
                     for shop, c in ((shop_a, "7421852987654321123"), (shop_b, CUSTOMER))}
    decisions_before = held(live, shop_a, CUSTOMER)["decisions"]
    assert "john@example.com" in dump(decisions_before)

    r = live.post_shopify("customers/redact", sample("customers_redact", SHOP), SHOP, secret=APP_SECRET)
    assert r.status_code == 200 and r.get_json() == {"status": "queued"}
    live.work()

    after = held(live, shop_a, CUSTOMER)
    for table in ("customers", "orders", "timers", "unsubscribes"):
        assert after[table] == [], table
    assert live.rows(OrderIndexRow, shop_id=shop_a, order_id="299938") == []
    assert live.rows(DataExportRow, shop_id=shop_a, customer_id=CUSTOMER) == []
    # the ledger stays, without a trace of who the customer was
    assert [d.key for d in after["decisions"]] == [d.key for d in decisions_before]
    ledger = dump(after["decisions"]) + dump(after["effects"])
    for personal in ("john@example.com", "John", "Smith", "555-625-1199"):
        assert personal not in ledger, personal
    assert all(d.status != "pending" for d in after["decisions"])
    # delivery keys hold nothing personal and keep re-deliveries out
    assert live.rows(EventSeenRow, shop_id=shop_a)
    # the shop's other customer, and the same customer id in another shop, are untouched
    assert {shop: {k: dump(v) for k, v in held(live, shop, c).items()}
            for shop, c in ((shop_a, "7421852987654321123"), (shop_b, CUSTOMER))} == others_before

    # again (Shopify retries): still 200, nothing else changes
    assert live.post_shopify("customers/redact", sample("customers_redact", SHOP), SHOP, secret=APP_SECRET).status_code == 200
    live.work()
    assert dump(held(live, shop_a, CUSTOMER)["decisions"]) == dump(after["decisions"])


def test_a_shop_redaction_erases_the_shop_and_nothing_else(live, store, two_shops):
    shop_a, shop_b = two_shops
    for shop in (SHOP, OTHER):
        live.post_shopify("customers/data_request", sample("customers_data_request", shop), shop, secret=APP_SECRET)
    live.work()
    redis = live.rt.redis
    for shop_id in (shop_a, shop_b):  # something still waiting in each backlog
        waiting = Envelope("keepwell", "event", f"event:{uuid.uuid4()}", time.time(), "{}")
        redis.rpush(live.rt.handoff.keys(shop_id).backlog, waiting.encode())
    keys_of = lambda shop_id: sorted(redis.scan_iter(match=f"{live.config.queue}:{{{shop_id}}}:*"))  # noqa: E731
    assert keys_of(shop_a) and keys_of(shop_b)
    b_before = {k: dump(v) for k, v in held(live, shop_b, CUSTOMER).items()}
    b_keys = keys_of(shop_b)

    uninstalled = uninstalled_body(SHOP)
    assert live.post_shopify("app/uninstalled", uninstalled, SHOP, secret=APP_SECRET).status_code == 200
    # 48 hours later; the shop is not served any more, and its header may say anything
    r = live.post_shopify("shop/redact", sample("shop_redact", SHOP), SHOP, secret=APP_SECRET)
    assert r.status_code == 200 and r.get_json() == {"status": "queued"}
    live.work()

    assert [s.id for s in live.rows(ShopRow)] == [shop_b]
    for model in (CustomerRow, DecisionRow, EffectRow, OrderIndexRow, TimerRow, UnsubscribeRow, EventSeenRow,
                  RuleSetRow, DataExportRow):
        assert live.rows(model, shop_id=shop_a) == [], model.__name__
    assert keys_of(shop_a) == []
    assert {k: dump(v) for k, v in held(live, shop_b, CUSTOMER).items()} == b_before
    assert keys_of(shop_b) == b_keys
    assert live.rows(DataExportRow, shop_id=shop_b)
    # once more (Shopify retries): the shop is gone, nothing held, still 200
    r = live.post_shopify("shop/redact", sample("shop_redact", SHOP), SHOP, secret=APP_SECRET)
    assert r.status_code == 200 and r.get_json() == {"status": "nothing held"}


def test_a_body_for_another_shop_than_the_header_is_refused(live, store, two_shops):
    shop_a, shop_b = two_shops
    # shop B's genuine shop/redact, re-sent with shop A's domain in the unsigned header
    r = live.post_shopify("shop/redact", sample("shop_redact", OTHER), SHOP, secret=APP_SECRET)
    assert r.status_code == 401
    live.work()
    assert sorted(s.id for s in live.rows(ShopRow)) == sorted([shop_a, shop_b])


def test_redaction_reaches_a_referrers_copy_and_cancels_pending_touches(live):
    """A friend's email travels to the referrer in a referral signal; erasing the friend erases
    that copy too, and leaves the referrer's own data (even a first name they share) alone."""
    from plugin.privacy import REDACTED, redact_customer

    shop_id, _ = live.add_shop("shopify", SHOP)
    john, ana = CUSTOMER, "7421852987654321123"
    key = f"{shop_id}:referral_qualified:{john}:order.paid:299938"
    with live.rt.sessions.begin() as session:
        session.add(CustomerRow(shop_id=shop_id, customer_id=john, state={
            "shop": shop_id, "customer_id": john, "email": "john@example.com", "first_name": "John", "last_name": "Smith"}))
        session.add(DecisionRow(shop_id=shop_id, key=key, rule_id="referral_qualified", customer_id=john, kind="touch",
                                status="pending", event_id="e1", decision={"key": key, "customer_id": john, "actions": [
                                    {"type": "email", "key": f"{key}:0", "to": "john@example.com"},
                                    {"type": "signal", "key": f"{key}:1", "event": "referral.converted", "customer_id": ana,
                                     "data": {"friend_id": john, "friend_email": "john@example.com"}}]}))
        session.add(EffectRow(shop_id=shop_id, key=f"{key}:0", decision_key=key, customer_id=john, type="email",
                              status="failed", error="550 5.1.1 <John@Example.com>: mailbox unavailable"))
        session.add(EffectRow(shop_id=shop_id, key=f"{key}:1", decision_key=key, customer_id=john, type="signal"))
        session.add(TimerRow(shop_id=shop_id, key="t-ana", customer_id=ana, wake_at=live.clock.now, event={
            "type": "timer", "customer_id": ana, "data": {"event": {
                "type": "referral.converted", "customer": {"email": "ana.silva@example.com", "first_name": "John"},
                "data": {"friend_id": john, "friend_email": "john@example.com"}}}}))
        session.add(DecisionRow(shop_id=shop_id, key="d-ana", rule_id="referral_reward", customer_id=ana, kind="touch",
                                status="done", event_id=f"{key}:1", detail="friend john@example.com ordered",
                                decision={"actions": [{"type": "email", "to": "ana.silva@example.com"}]}))

    with live.rt.sessions.begin() as session:
        counts = redact_customer(session, shop_id, john, ["299938"], ["john@example.com", "555-625-1199"])
    assert counts["customers"] == 1 and counts["decisions_scrubbed"] == 1 and counts["effects_scrubbed"] == 2

    (decision,) = live.rows(DecisionRow, customer_id=john)
    assert (decision.status, decision.error) == ("failed", "customer data erased")
    assert decision.decision["actions"][0]["to"] is None
    assert decision.decision["actions"][1]["data"] == {"friend_id": john, "friend_email": None}
    failed, pending = sorted(live.rows(EffectRow, customer_id=john), key=lambda e: e.key)
    assert (failed.status, failed.error) == ("failed", f"550 5.1.1 <{REDACTED}>: mailbox unavailable")
    assert (pending.status, pending.error) == ("skipped", "customer data erased")  # the signal never goes out
    (timer,) = live.rows(TimerRow, customer_id=ana)
    event = timer.event["data"]["event"]
    assert event["data"]["friend_email"] == REDACTED
    assert event["customer"] == {"email": "ana.silva@example.com", "first_name": "John"}  # Ana's own, untouched
    (reward,) = live.rows(DecisionRow, customer_id=ana)
    assert reward.detail == f"friend {REDACTED} ordered"
    assert reward.decision == {"actions": [{"type": "email", "to": "ana.silva@example.com"}]}
