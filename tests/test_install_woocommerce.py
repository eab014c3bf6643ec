"""Connecting a WooCommerce store with app key authorization, end to end through the web app, and
disconnecting it: the store is mocked at the HTTP layer with `responses`, in the shapes
WooCommerce's REST API documents."""
from __future__ import annotations

import base64
import copy
import json
import re
import time
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import text

from connectors.woocommerce import install
from live import load_json, sign, start, stop, woo_customer
from plugin import secrets
from plugin.app import create_app
from plugin.cli import main
from plugin.db import RuleSetRow, ShopRow
from plugin.shops import to_shop

STORE = "https://store.example"
APP = "https://keepwell.test"
CK = "ck_8c3b0c5b84f4e1e7d0c5b2a6a4f1c2d3e4f5a6b7"
CS = "cs_1f2e3d4c5b6a79880716253443526170819a2b3c"
TOPICS = ["order.created", "order.updated", "customer.created", "customer.updated"]
CANNOT_VIEW = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
               "data": {"status": 401}}
# GET /wp-json/wc/v3/settings, the first two groups of the documented example
SETTINGS_GROUPS = [
    {"id": "general", "label": "General", "description": "", "parent_id": "", "sub_groups": [],
     "_links": {"options": [{"href": "https://example.com/wp-json/wc/v3/settings/general"}]}},
    {"id": "products", "label": "Products", "description": "", "parent_id": "", "sub_groups": [],
     "_links": {"options": [{"href": "https://example.com/wp-json/wc/v3/settings/products"}]}},
]


class FakeStore:
    """A WooCommerce store's REST API as far as connecting needs it: key checks on every call,
    /settings, and /webhooks kept as a store keeps them (secrets stored, never echoed)."""

    def __init__(self, mock, base=STORE, keys=((CK, CS),), hooks=(), fail_create_after=None):
        self.base, self.keys = base, set(keys)
        self.hooks = [copy.deepcopy(h) for h in hooks]
        self.secrets: dict[int, str] = {}
        self.fail_create_after = fail_create_after
        api = re.escape(f"{base}/wp-json/wc/v3")
        mock.add_callback(responses.GET, re.compile(rf"{api}/settings(\?.*)?$"), callback=self.guard(self.settings))
        mock.add_callback(responses.GET, re.compile(rf"{api}/webhooks(\?.*)?$"), callback=self.guard(self.list))
        mock.add_callback(responses.POST, re.compile(rf"{api}/webhooks(\?.*)?$"), callback=self.guard(self.create))
        mock.add_callback(responses.PUT, re.compile(rf"{api}/webhooks/\d+(\?.*)?$"), callback=self.guard(self.update))
        mock.add_callback(responses.DELETE, re.compile(rf"{api}/webhooks/\d+(\?.*)?$"), callback=self.guard(self.delete))
        self.mock = mock

    def calls(self, method=None):
        return [c for c in self.mock.calls if c.request.url.startswith(self.base)
                and (method is None or c.request.method == method)]

    def authorized(self, request) -> bool:
        given = request.headers.get("Authorization", "")
        if given.startswith("Basic "):
            return tuple(base64.b64decode(given[6:]).decode().split(":", 1)) in self.keys
        query = dict(parse_qsl(urlsplit(request.url).query))  # OAuth 1.0a over plain http
        return "oauth_signature" in query and any(query.get("oauth_consumer_key") == ck for ck, _ in self.keys)

    def guard(self, handler):
        def checked(request):
            if not self.authorized(request):
                return 401, {}, json.dumps(CANNOT_VIEW)
            return handler(request)
        return checked

    def settings(self, request):
        return 200, {}, json.dumps(SETTINGS_GROUPS)

    def list(self, request):
        return 200, {"X-WP-Total": str(len(self.hooks)), "X-WP-TotalPages": "1"}, json.dumps(self.hooks)

    def create(self, request):
        if self.fail_create_after is not None and len(self.calls("POST")) >= self.fail_create_after:
            return 500, {}, json.dumps({"code": "internal_server_error", "message": "There has been a critical error.",
                                        "data": {"status": 500}})
        body = json.loads(request.body)
        resource, event = body["topic"].split(".")
        hook = {**load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json"), **body,
                "id": 300 + len(self.secrets), "resource": resource, "event": event}
        self.secrets[hook["id"]] = hook.pop("secret")
        self.hooks.append(hook)
        return 201, {}, json.dumps(hook)

    def update(self, request):
        hook = self._hook(request)
        body = json.loads(request.body)
        if "secret" in body:
            self.secrets[hook["id"]] = body.pop("secret")
        hook.update(body)
        return 200, {}, json.dumps(hook)

    def delete(self, request):
        hook = self._hook(request)
        if parse_qs(urlsplit(request.url).query).get("force") != ["true"]:
            return 501, {}, json.dumps({"code": "woocommerce_rest_trash_not_supported",
                                        "message": "Webhooks do not support trashing.", "data": {"status": 501}})
        self.hooks.remove(hook)
        return 200, {}, json.dumps(hook)

    def _hook(self, request):
        hook_id = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        return next(h for h in self.hooks if h["id"] == hook_id)


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    # The stores here are mocked at the HTTP layer under names nobody resolves, and one is on
    # localhost: the development setting lifts the public-address check (tested in test_security_connect.py).
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp, allow_private_stores=True)
    yield live
    stop(live)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


def begin(live, store_url=STORE) -> str:
    """GET /woocommerce/connect; the user_id the store is asked to echo."""
    r = live.client.get("/woocommerce/connect", query_string={"store_url": store_url})
    assert r.status_code == 302, r.data
    return parse_qs(urlsplit(r.headers["Location"]).query)["user_id"][0]


def grant(user_id, key=CK, secret=CS, permissions="read_write", key_id=1) -> dict:
    """The JSON WooCommerce POSTs to callback_url (class-wc-auth.php create_keys)."""
    return {"key_id": key_id, "user_id": user_id, "consumer_key": key, "consumer_secret": secret,
            "key_permissions": permissions}


def post_callback(live, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return live.client.post("/woocommerce/callback", data=data, content_type="application/json;charset=UTF-8")


def pending_keys(live) -> list:
    return live.rt.redis.keys(f"{live.config.queue}:wc-connect:*")


def assert_nothing_stored(live):
    assert live.rows(ShopRow) == [] and live.rows(RuleSetRow) == []


# --- /woocommerce/connect -----------------------------------------------------------------------

def test_connect_sends_the_merchant_to_the_stores_authorize_page(live):
    r = live.client.get("/woocommerce/connect", query_string={"store_url": "https://Store.Example/"})
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "store.example", "/wc-auth/v1/authorize")
    params = parse_qs(location.query)
    user_id = params.pop("user_id")[0]
    assert params == {"app_name": ["Keepwell"], "scope": ["read_write"],
                      "return_url": [f"{APP}/woocommerce/connected"], "callback_url": [f"{APP}/woocommerce/callback"]}
    assert re.fullmatch(r"[0-9a-f]{32}", user_id)
    key = f"{live.config.queue}:wc-connect:{user_id}"
    assert pending_keys(live) == [key.encode()]
    assert json.loads(live.rt.redis.get(key))["store_url"] == "https://store.example"
    assert 1790 < live.rt.redis.ttl(key) <= 1800
    assert begin(live) != user_id  # a fresh id every time


def test_connect_keeps_a_wordpress_subfolder_and_port(live):
    r = live.client.get("/woocommerce/connect", query_string={"store_url": "https://example.com:8443/shop/"})
    assert r.headers["Location"].startswith("https://example.com:8443/shop/wc-auth/v1/authorize?")


@pytest.mark.parametrize("url", [
    "http://store.example",  # API keys would travel in clear text
    "http://192.168.1.20",
    "ftp://store.example",
    "javascript:alert(1)",
    "store.example",
    "https://admin:hunter2@store.example",
    "https://store.example/#fragment",
    "https://store.example/?page=shop",
    "https://store.example:99999",
    "https:///nohost",
    "https://store.example/a b",
    "",
])
def test_connect_refuses_unusable_store_urls(live, url):
    r = live.client.get("/woocommerce/connect", query_string={"store_url": url})
    assert r.status_code == 400
    assert b"<form" in r.data  # the merchant can correct it on the spot
    assert pending_keys(live) == []


def test_connect_accepts_plain_http_only_for_localhost(live):
    for url in ("http://localhost:8080/", "http://127.0.0.1"):
        r = live.client.get("/woocommerce/connect", query_string={"store_url": url})
        assert r.status_code == 302
        assert r.headers["Location"].startswith(f"{url.rstrip('/')}/wc-auth/v1/authorize?")


def test_connect_escapes_what_it_echoes(live):
    r = live.client.get("/woocommerce/connect", query_string={"store_url": 'http://x"><script>alert(1)</script>'})
    assert r.status_code == 400
    assert b"<script>" not in r.data and b"&lt;script&gt;" in r.data


def test_connect_without_a_store_url_asks_for_one(live):
    r = live.client.get("/woocommerce/connect")
    assert r.status_code == 200 and b'name="store_url"' in r.data
    assert pending_keys(live) == []


def test_connect_needs_an_https_app_url(live):
    from dataclasses import replace

    app = create_app(replace(live.config, app_url="http://127.0.0.1:5000"))
    r = app.test_client().get("/woocommerce/connect", query_string={"store_url": STORE})
    assert r.status_code == 503 and b"KEEPWELL_APP_URL" in r.data
    assert pending_keys(live) == []


# --- the key grant, end to end ------------------------------------------------------------------

def test_key_grant_end_to_end(live, mock):
    store = FakeStore(mock, hooks=[load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json")])
    user_id = begin(live)

    r = post_callback(live, grant(user_id))
    assert r.status_code == 200, r.data  # exactly 200: WooCommerce deletes the keys after anything else

    shop_row, = live.rows(ShopRow)
    assert (shop_row.platform, shop_row.domain, shop_row.api_url, shop_row.active) == ("woocommerce", STORE, STORE, True)
    shop = to_shop(shop_row, live.config)
    assert (shop.credentials['consumer_key'], shop.credentials['consumer_secret']) == (CK, CS)
    assert len(shop.webhook_secrets) == 1 and len(shop.webhook_secrets[0]) >= 32
    # the keys were tried before anything was stored, with Basic auth over https
    first = store.calls()[0].request
    assert first.method == "GET" and urlsplit(first.url).path == "/wp-json/wc/v3/settings"
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{CK}:{CS}".encode()).decode()
    # encrypted at rest
    with live.rt.sessions() as session:
        raw = session.execute(text("SELECT secrets FROM shops WHERE id = :id"), {"id": shop.id}).scalar_one()
    for clear in (CK, CS, shop.webhook_secrets[0]):
        assert clear not in raw
    # the webhooks: one per topic, to this shop's URL, signed with its secret; the store's own hook untouched
    ours = [h for h in store.hooks if h["delivery_url"] == f"{APP}/webhooks/woocommerce/{shop.id}"]
    assert sorted(h["topic"] for h in ours) == sorted(TOPICS)
    assert {store.secrets[h["id"]] for h in ours} == {shop.webhook_secrets[0]}
    assert all(h["status"] == "active" for h in ours)
    assert store.hooks[0]["delivery_url"] == "http://requestb.in/1g0sxmo1"
    # the shipped rule packs
    rules, = live.rows(RuleSetRow, shop_id=shop.id)
    assert rules.active and rules.version == 1 and "welcome.yaml" in rules.files

    # WooCommerce sends the merchant back
    page = live.client.get("/woocommerce/connected", query_string={"success": "1", "user_id": user_id})
    assert page.status_code == 200
    assert f"{APP}/webhooks/woocommerce/{shop.id}".encode() in page.data
    assert CK.encode() not in page.data and CS.encode() not in page.data
    assert shop.webhook_secrets[0].encode() not in page.data

    # a delivery signed as the store now signs it is accepted
    hook = next(h for h in ours if h["topic"] == "customer.created")
    body = json.dumps(woo_customer()).encode()
    r = live.client.post(urlsplit(hook["delivery_url"]).path, data=body, headers={
        "X-WC-Webhook-Topic": "customer.created", "X-WC-Webhook-Resource": "customer", "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-Signature": sign(store.secrets[hook["id"]], body), "X-WC-Webhook-ID": str(hook["id"]),
        "X-WC-Webhook-Delivery-ID": "d1", "Content-Type": "application/json"})
    assert r.status_code == 202, r.data

    # the same callback again (a replay) is refused and changes nothing
    calls = len(store.calls())
    r = post_callback(live, grant(user_id, key="ck_attacker", secret="cs_attacker"))
    assert r.status_code == 400
    assert len(store.calls()) == calls
    assert to_shop(live.rows(ShopRow)[0], live.config).credentials['consumer_key'] == CK


def test_reconnecting_a_store_updates_the_same_shop(live, mock):
    shop_id, old_secret = live.add_shop("woocommerce", STORE, consumer_key="ck_old", consumer_secret="cs_old",
                                        settings={"consent_meta_key": "_wc_opt_in"})
    existing = [{**load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json"), "id": 150 + i,
                 "topic": t, "status": "disabled", "delivery_url": f"{APP}/webhooks/woocommerce/{shop_id}"}
                for i, t in enumerate(TOPICS)]
    store = FakeStore(mock, keys=((CK, CS),), hooks=existing)

    assert post_callback(live, grant(begin(live))).status_code == 200

    row, = live.rows(ShopRow)
    shop = to_shop(row, live.config)
    assert row.id == shop_id and (shop.credentials['consumer_key'], shop.credentials['consumer_secret']) == (CK, CS)
    assert shop.webhook_secrets[0] != old_secret  # a fresh secret, pushed to the store's webhooks ...
    assert shop.webhook_secrets[1:] == (old_secret,)  # ... while deliveries signed before stay accepted
    assert shop.settings["consent_meta_key"] == "_wc_opt_in"
    assert store.calls("POST") == [] and len(store.hooks) == 4
    assert all(h["status"] == "active" and store.secrets[h["id"]] == shop.webhook_secrets[0] for h in store.hooks)
    assert [r.version for r in live.rows(RuleSetRow, shop_id=shop_id)] == [1]


def test_a_store_on_localhost_is_called_with_oauth_over_http(live, mock):
    store = FakeStore(mock, base="http://localhost:8080")
    assert post_callback(live, grant(begin(live, "http://localhost:8080"))).status_code == 200
    for call in store.calls():
        assert "Authorization" not in call.request.headers
        assert dict(parse_qsl(urlsplit(call.request.url).query))["oauth_consumer_key"] == CK
    assert live.rows(ShopRow)[0].domain == "http://localhost:8080"


# --- tampering and failures: refused, nothing stored --------------------------------------------

def test_callback_with_an_unknown_user_id_is_refused(live, mock):
    store = FakeStore(mock)
    begin(live)
    for user_id in ("0" * 32, "123", 123, None, "../../etc", ["x"]):
        r = post_callback(live, grant(user_id))
        assert r.status_code == 400, user_id
    assert store.calls() == []
    assert_nothing_stored(live)
    assert len(pending_keys(live)) == 1  # the real pending connection is untouched


def test_callback_after_the_pending_connection_expired_is_refused(live, mock):
    store = FakeStore(mock)
    user_id = begin(live)
    live.rt.redis.pexpire(f"{live.config.queue}:wc-connect:{user_id}", 1)
    time.sleep(0.01)
    assert post_callback(live, grant(user_id)).status_code == 400
    assert store.calls() == []
    assert_nothing_stored(live)


def test_callback_with_read_only_permissions_is_refused(live, mock):
    store = FakeStore(mock)
    user_id = begin(live)
    r = post_callback(live, grant(user_id, permissions="read"))
    assert r.status_code == 400 and b"read_write" in r.data
    assert store.calls() == []
    assert_nothing_stored(live)
    # the id was used up: the correct grant afterwards is refused too
    assert post_callback(live, grant(user_id)).status_code == 400
    assert_nothing_stored(live)
    page = live.client.get("/woocommerce/connected", query_string={"success": "0", "user_id": user_id})
    assert page.status_code == 400 and b"read_write" in page.data


@pytest.mark.parametrize("permissions", ["write", "", None, "READ_WRITE"])
def test_callback_with_other_permissions_is_refused(live, mock, permissions):
    FakeStore(mock)
    assert post_callback(live, grant(begin(live), permissions=permissions)).status_code == 400
    assert_nothing_stored(live)


def test_callback_with_keys_the_store_rejects_is_refused(live, mock):
    store = FakeStore(mock, keys=(("ck_real", "cs_real"),))
    user_id = begin(live)
    r = post_callback(live, grant(user_id, key="ck_forged", secret="cs_forged"))
    assert r.status_code == 400
    assert [urlsplit(c.request.url).path for c in store.calls()] == ["/wp-json/wc/v3/settings"]
    assert_nothing_stored(live)
    page = live.client.get("/woocommerce/connected", query_string={"success": "0", "user_id": user_id})
    assert page.status_code == 400 and b"did not accept the new API keys" in page.data
    assert b"ck_forged" not in page.data and b"woocommerce_rest_cannot_view" not in page.data


@pytest.mark.parametrize("body", [b"not json", b"[]", b'"text"', {"user_id": "x"}])
def test_callback_with_a_malformed_body_is_refused(live, mock, body):
    store = FakeStore(mock)
    begin(live)
    assert post_callback(live, body).status_code == 400
    assert store.calls() == []
    assert_nothing_stored(live)


@pytest.mark.parametrize("missing", ["consumer_key", "consumer_secret"])
def test_callback_without_keys_is_refused(live, mock, missing):
    store = FakeStore(mock)
    body = grant(begin(live))
    body[missing] = ""
    assert post_callback(live, body).status_code == 400
    assert store.calls() == []
    assert_nothing_stored(live)


def test_failed_webhook_subscription_leaves_nothing_behind(live, mock):
    store = FakeStore(mock, fail_create_after=2)  # the third webhook fails with a 500
    r = post_callback(live, grant(begin(live)))
    assert r.status_code == 400 and b"refused to create" in r.data and b"500" not in r.data
    assert_nothing_stored(live)
    assert store.hooks == []  # the two created first were deleted again
    assert len(store.calls("DELETE")) == 2


def test_failed_reconnect_keeps_the_previous_connection(live, mock):
    shop_id, old_secret = live.add_shop("woocommerce", STORE, consumer_key="ck_old", consumer_secret="cs_old")
    store = FakeStore(mock, keys=((CK, CS), ("ck_old", "cs_old")), fail_create_after=0)
    assert post_callback(live, grant(begin(live))).status_code == 400
    row, = live.rows(ShopRow)
    shop = to_shop(row, live.config)
    assert (row.id, row.active, shop.credentials['consumer_key'], shop.credentials['consumer_secret']) == (shop_id, True, "ck_old", "cs_old")
    assert shop.webhook_secrets[0] == old_secret
    assert store.calls("DELETE") == []


def test_connected_page_for_an_unknown_connection(live):
    assert live.client.get("/woocommerce/connected", query_string={"success": "1", "user_id": "f" * 32}).status_code == 404
    assert live.client.get("/woocommerce/connected", query_string={"success": "0", "user_id": "f" * 32}).status_code == 400
    assert live.client.get("/woocommerce/connected").status_code == 404


# --- disconnect ---------------------------------------------------------------------------------

@pytest.fixture
def cli_env(live, redis_server):
    return {"DATABASE_URL": live.config.database_url, "KEEPWELL_SECRET_KEY": live.config.secret_key,
            "KEEPWELL_APP_URL": APP, "REDIS_URL": live.config.redis_url, "KEEPWELL_QUEUE": live.config.queue}


def connected_shop(live, mock, **store_kw):
    store = FakeStore(mock, hooks=[load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json")],
                      **store_kw)
    assert post_callback(live, grant(begin(live))).status_code == 200
    return store, live.rows(ShopRow)[0].id


def test_disconnect_removes_our_webhooks_and_drops_the_keys(live, mock, cli_env):
    store, shop_id = connected_shop(live, mock)
    secret = to_shop(live.rows(ShopRow)[0], live.config).webhook_secrets[0]

    result = CliRunner().invoke(main, ["shop", "disconnect", shop_id], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "webhooks removed from https://store.example: 4" in result.output

    deleted = store.calls("DELETE")
    assert len(deleted) == 4 and all(parse_qs(urlsplit(c.request.url).query)["force"] == ["true"] for c in deleted)
    assert [h["delivery_url"] for h in store.hooks] == ["http://requestb.in/1g0sxmo1"]  # not ours: kept
    row, = live.rows(ShopRow)
    assert not row.active
    kept = secrets.decrypt(live.config.secret_keys, row.secrets)
    assert kept.pop("referral_key")  # not a store credential: codes customers hold stay valid after a reconnect
    assert kept == {"credentials": {}, "webhook_secrets": []}
    assert live.rows(RuleSetRow, shop_id=shop_id)  # rules and history stay for a later reconnect
    # deliveries for the shop are refused from now on
    body = json.dumps(woo_customer()).encode()
    r = create_app(live.config).test_client().post(f"/webhooks/woocommerce/{shop_id}", data=body, headers={
        "X-WC-Webhook-Topic": "customer.created", "X-WC-Webhook-Signature": sign(secret, body),
        "Content-Type": "application/json"})
    assert r.status_code == 404

    again = CliRunner().invoke(main, ["shop", "disconnect", shop_id], env=cli_env)
    assert again.exit_code == 0 and "webhooks removed from https://store.example: 0" in again.output
    assert len(store.calls("DELETE")) == 4


def test_disconnect_reports_store_errors_and_still_disconnects(live, mock, cli_env):
    store, shop_id = connected_shop(live, mock)
    store.keys.clear()  # the merchant revoked the key in the store

    result = CliRunner().invoke(main, ["shop", "disconnect", shop_id], env=cli_env)
    assert result.exit_code == 1
    assert "401 woocommerce_rest_cannot_view" in result.stderr
    assert f"{APP}/webhooks/woocommerce/{shop_id}" in result.stderr
    row, = live.rows(ShopRow)
    assert not row.active and secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"].get("consumer_secret", "") == ""


def test_disconnect_unknown_or_shopify_shop(live, cli_env):
    result = CliRunner().invoke(main, ["shop", "disconnect", "wo_nope"], env=cli_env)
    assert result.exit_code == 1 and "no shop 'wo_nope'" in result.output
    shop_id, _ = live.add_shop("shopify", "a-shop.myshopify.com", access_token="shpat_x")
    result = CliRunner().invoke(main, ["shop", "disconnect", shop_id], env=cli_env)
    assert result.exit_code == 1 and "not a WooCommerce" in result.output
    row, = live.rows(ShopRow)
    assert row.active and to_shop(row, live.config).credentials['access_token'] == "shpat_x"


def test_delete_webhooks_pages_through_and_matches_the_exact_url(mock):
    from connectors.base import Shop

    shop = Shop(id="wo_1", platform="woocommerce", domain=STORE, api_url=STORE, credentials={"consumer_key": CK, "consumer_secret": CS})
    ours = f"{APP}/webhooks/woocommerce/wo_1"
    base = load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json")
    page1 = [{**base, "id": i, "delivery_url": ours if i % 2 else f"{APP}/webhooks/woocommerce/wo_10"} for i in range(100)]
    page2 = [{**base, "id": 100, "delivery_url": ours + "/x"}, {**base, "id": 101, "delivery_url": ours}]
    api = f"{STORE}/wp-json/wc/v3/webhooks"
    mock.get(api, json=page1, headers={"X-WP-TotalPages": "2"},
             match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "1"})])
    mock.get(api, json=page2, headers={"X-WP-TotalPages": "2"},
             match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "2"})])
    mock.delete(re.compile(rf"{re.escape(api)}/\d+\?force=true$"), json=base)
    assert install.delete_webhooks(shop, APP + "/") == [*range(1, 100, 2), 101]
