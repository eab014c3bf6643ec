"""Shopify-managed installation: opening the app in the admin with an ``id_token`` installs the
shop by token exchange, reopening it lands on the dashboard without OAuth or redirect loops, a
shop on a non-expiring token is moved to an expiring one, and the authorization-code grant is
left to signed install requests without an id_token. The real app, Redis and database; Shopify's
token endpoint and GraphQL API mocked with ``responses`` (test_install_shopify's fixtures)."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import responses

from plugin import secrets
from plugin.db import RuleSetRow, ShopRow
from test_install_shopify import (API_KEY, APP_SECRET, REFRESH_TOKEN, SHOP, TOKEN, calls, host_param,  # noqa: F401
                                  install_request, live, schema, session_token, signed, store, token_endpoint)

EXCHANGE = {"client_id": API_KEY, "client_secret": APP_SECRET,
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token", "expiring": "1"}


def opened(live, path="/admin", shop=SHOP, **extra):
    """The admin opening the app: its URL with Shopify's query, id_token included."""
    token = session_token(shop=shop, now=time.time())
    query = {"embedded": "1", "host": host_param(shop), "id_token": token, "locale": "en", "shop": shop,
             "timestamp": str(int(time.time())), **extra}
    return token, live.client.get(f"{path}?{urlencode(signed(query))}")


def exchanges(store) -> list[dict]:
    return [json.loads(c.request.body) for c in calls(store, "/admin/oauth/access_token")]


def stored(live) -> dict:
    (row,) = live.rows(ShopRow)
    return secrets.decrypt(live.config.secret_keys, row.secrets)["credentials"]


def test_opening_the_app_installs_the_shop_by_token_exchange(live, store):
    token_endpoint(store)
    id_token, r = opened(live)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert SHOP in r.get_data(as_text=True)  # the dashboard, not an approval page
    assert exchanges(store) == [{**EXCHANGE, "subject_token": id_token}]
    (row,) = live.rows(ShopRow)
    assert (row.domain, row.active, row.settings["scopes"]) == (SHOP, True, ["write_customers", "read_orders",
                                                                            "write_discounts", "read_products"])
    kept = stored(live)
    assert (kept["access_token"], kept["refresh_token"]) == (TOKEN, REFRESH_TOKEN)
    assert TOKEN not in row.secrets and REFRESH_TOKEN not in row.secrets
    assert live.rows(RuleSetRow, shop_id=row.id)  # the shipped packs, as on any first install
    # Shopify subscribes the webhooks of shopify.app.toml itself: no per-shop subscriptions
    assert calls(store, "/admin/api/2026-10/graphql.json") == []
    # and the shop's webhooks are accepted at once (no stale "unknown shop" in the edge's cache)
    r = live.post_shopify("customers/create", {"id": 1, "email": "a@example.com"}, SHOP, secret=APP_SECRET)
    assert r.status_code == 202


def test_reopening_lands_on_the_dashboard_without_oauth(live, store):
    token_endpoint(store)
    opened(live)
    before = len(store.calls)
    for path in ("/admin", "/shopify/install"):  # the App URL of new and of older app configurations
        _, r = opened(live, path)
        hops = 0
        while r.status_code in (301, 302) and hops < 3:
            location = urlsplit(r.headers["Location"])
            assert location.netloc in ("", "localhost", "keepwell.test"), r.headers["Location"]
            r = live.client.get(f"{location.path}?{location.query}")
            hops += 1
        assert r.status_code == 200 and hops <= 1, (path, hops)
        assert SHOP in r.get_data(as_text=True)
    assert len(store.calls) == before  # no token exchange, no OAuth: the stored token is current


def test_a_signed_install_request_of_an_installed_shop_opens_its_dashboard(live, store):
    token_endpoint(store)
    opened(live)
    r = install_request(live)  # a non-embedded open: Shopify's signed query, no id_token
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert location.path == "/admin" and "link" in parse_qs(location.query)  # an admin link: no trip to Shopify's approval
    r = live.client.get(f"/admin?{location.query}", follow_redirects=True)
    assert r.status_code == 200 and SHOP in r.get_data(as_text=True)


def test_an_embedded_install_without_an_id_token_leaves_the_iframe_for_approval(live, store):
    r = install_request(live, embedded="1")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert f'<meta name="shopify-api-key" content="{API_KEY}">' in page
    assert f"https://{SHOP}/admin/oauth/authorize?" in page and 'target="_top"' in page
    assert r.headers["Content-Security-Policy"] == f"frame-ancestors https://{SHOP} https://admin.shopify.com"
    assert live.rows(ShopRow) == []


def test_a_shop_on_a_non_expiring_token_is_moved_when_the_app_is_opened(live, store):
    live.add_shop("shopify", SHOP, access_token="shpat_legacy", settings={"scopes": ["write_customers"]})
    token_endpoint(store)
    id_token, r = opened(live)
    assert r.status_code == 200
    assert exchanges(store) == [{**EXCHANGE, "subject_token": id_token}]
    assert (stored(live)["access_token"], stored(live)["refresh_token"]) == (TOKEN, REFRESH_TOKEN)
    assert len(live.rows(ShopRow)) == 1


def test_a_reinstall_after_uninstall_reactivates_the_shop(live, store):
    token_endpoint(store)
    opened(live)
    (row,) = live.rows(ShopRow)
    live.app.extensions["keepwell"].shops.uninstall(row.id)
    _, r = opened(live)
    assert r.status_code == 200
    (again,) = live.rows(ShopRow)
    assert (again.id, again.active, stored(live)["access_token"]) == (row.id, True, TOKEN)
    assert len(exchanges(store)) == 2


def test_bad_id_tokens_and_refused_exchanges_store_nothing(live, store):
    forged = session_token(now=time.time(), secret="not-the-app-secret")
    r = live.client.get(f"/admin?id_token={forged}")
    assert r.status_code == 401 and exchanges(store) == []
    store.upsert(responses.POST, f"https://{SHOP}/admin/oauth/access_token", status=400,
                 json={"error": "invalid_subject_token", "error_description": "The session token is invalid"})
    _, r = opened(live)
    assert r.status_code == 401 and "reload the app" in r.get_data(as_text=True)
    assert live.rows(ShopRow) == []
