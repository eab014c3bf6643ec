"""Expiring Shopify offline tokens: asked for on every grant, stored encrypted with their refresh
token, refreshed before they expire and after a 401 by one process per shop at a time (a real
Redis lock), a lost refresh answer recovered, non-expiring tokens migrated, and ``keepwell
doctor`` naming the shops still on one. Shopify is mocked at the HTTP layer (tests/shopify_tokens.py
keeps its documented token rules); Redis and the database are real."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace

import pytest
import responses
from click.testing import CliRunner
from redis import Redis

from connectors.shopify import api, grants
from plugin import doctor, secrets
from plugin.cli import main
from plugin.config import Config
from plugin.db import ShopRow, sessions, upgrade
from plugin.errors import StoreError
from plugin.shops import add_shop, to_shop
from plugin.tokens import REFRESH_MARGIN_S, TokenKeeper, stored_fields
from shopify_tokens import INVALID_GRANT, SCOPE, FakeShopify

SHOP = "keepwell-demo.myshopify.com"
API_KEY = "4f6b1c2d8e9a0b3c5d7e9f1a2b4c6d8e"
APP_SECRET = "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"
QUERY = "{ shop { name } }"


@pytest.fixture
def config(redis_server, tmp_path):
    config = Config(redis_url=redis_server, database_url=f"sqlite:///{tmp_path}/keepwell.db", secret_keys=("k" * 40,),
                    shopify_api_key=API_KEY, shopify_api_secrets=(APP_SECRET,), queue=f"kwtok{uuid.uuid4().hex[:8]}",
                    app_url="https://keepwell.test")
    upgrade(config.database_url)
    yield config
    redis = Redis.from_url(redis_server)
    for key in redis.scan_iter(match=f"{config.queue}:*"):
        redis.delete(key)


@pytest.fixture
def shopify():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeShopify(rsps, SHOP, API_KEY, APP_SECRET)


def installed(config, shopify, expires_in: float | None = 3600) -> str:
    """A shop installed with an expiring token (as the code grant issues it) that expires in
    ``expires_in`` seconds by our clock; or, with None, a non-expiring token of an old install."""
    with sessions(config.database_url).begin() as session:
        if expires_in is None:
            row, _ = add_shop(session, config, "shopify", SHOP, access_token=shopify.non_expiring("shpat_legacy0001"),
                              settings={"scopes": SCOPE.split(",")})
            return row.id
        grant = grants.exchange_code(SHOP, API_KEY, APP_SECRET, "the-code", now=time.time() - 3600 + expires_in)
        row, _ = add_shop(session, config, "shopify", SHOP, credentials=stored_fields(grant))
        return row.id


def shop_of(config, shop_id, keeper=None):
    with sessions(config.database_url)() as session:
        shop = to_shop(session.get(ShopRow, shop_id), config)
    return replace(shop, tokens=keeper) if keeper is not None else shop


def stored(config, shop_id) -> dict:
    with sessions(config.database_url)() as session:
        row = session.get(ShopRow, shop_id)
        return secrets.decrypt(config.secret_keys, row.secrets)["credentials"] | {"_raw": row.secrets}


def token_requests(rsps_calls) -> list[dict]:
    return [json.loads(c.request.body) for c in rsps_calls if c.request.url.endswith("/admin/oauth/access_token")]


# --- the token endpoint, as documented --------------------------------------------------------

@responses.activate
def test_every_grant_asks_for_an_expiring_token_and_reads_its_expiry():
    answer = {"access_token": "shpat_a", "scope": SCOPE, "expires_in": 3600, "refresh_token": "shprt_a",
              "refresh_token_expires_in": 7776000}
    responses.post(f"https://{SHOP}/admin/oauth/access_token", json=answer)
    now = 1_790_000_000
    calls = [
        (grants.exchange_code, "the-code", {"code": "the-code", "expiring": "1"}),
        (grants.exchange_session_token, "id.token.jwt", {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "id.token.jwt",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token", "expiring": "1"}),
        (grants.migrate_offline_token, "shpat_old", {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "shpat_old",
            "subject_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
            "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token", "expiring": "1"}),
        (grants.refresh, "shprt_old", {"grant_type": "refresh_token", "refresh_token": "shprt_old"}),
    ]
    for i, (call, subject, body) in enumerate(calls):
        grant = call(SHOP, API_KEY, APP_SECRET, subject, now=now)
        assert grant == grants.Grant("shpat_a", tuple(SCOPE.split(",")), now + 3600, "shprt_a", now + 7776000)
        assert json.loads(responses.calls[i].request.body) == {"client_id": API_KEY, "client_secret": APP_SECRET, **body}


@pytest.mark.parametrize("status,body,retryable,code", [
    (400, INVALID_GRANT, False, "invalid_grant"),
    (401, {"error": "invalid_client", "error_description": "Client authentication failed"}, False, "invalid_client"),
    (500, {"errors": "Internal Server Error"}, True, "HTTP_500"),
    (429, {"errors": "Exceeded 2 calls per second for api client."}, True, "HTTP_429"),
    (200, {"access_token": "shpat_a", "scope": SCOPE, "expires_in": 3600}, False, "BAD_RESPONSE"),  # no refresh token
])
@responses.activate
def test_refresh_failures(status, body, retryable, code):
    responses.post(f"https://{SHOP}/admin/oauth/access_token", json=body, status=status)
    with pytest.raises(StoreError) as err:
        grants.refresh(SHOP, API_KEY, APP_SECRET, "shprt_old")
    assert (err.value.retryable, err.value.code) == (retryable, code)


@responses.activate
def test_a_non_expiring_answer_is_a_grant_without_expiry():
    responses.post(f"https://{SHOP}/admin/oauth/access_token", json={"access_token": "shpat_a", "scope": "read_orders"})
    assert grants.exchange_code(SHOP, API_KEY, APP_SECRET, "c") == grants.Grant("shpat_a", ("read_orders",))


# --- refresh before expiry and after a 401 ----------------------------------------------------

def test_a_token_far_from_expiry_is_used_as_it_is(config, shopify):
    shop_id = installed(config, shopify, expires_in=3000)
    token = stored(config, shop_id)["access_token"]
    assert api.execute(shop_of(config, shop_id), QUERY) == {"shop": {"name": "Keepwell Demo"}}
    assert shopify.refreshes == [] and shopify.graphql_tokens == [token]


def test_a_token_about_to_expire_is_refreshed_first(config, shopify):
    shop_id = installed(config, shopify, expires_in=REFRESH_MARGIN_S - 60)
    before = stored(config, shop_id)
    assert before["refresh_token"] and before["refresh_token"] not in before["_raw"]  # encrypted at rest

    started = time.time()
    assert api.execute(shop_of(config, shop_id), QUERY) == {"shop": {"name": "Keepwell Demo"}}
    after = stored(config, shop_id)
    assert shopify.refreshes == [before["refresh_token"]]
    assert shopify.graphql_tokens == [after["access_token"]] != [before["access_token"]]
    assert after["refresh_token"] not in (before["refresh_token"], "") and after["refresh_token"] not in after["_raw"]
    assert started + 3600 <= after["access_token_expires_at"] <= time.time() + 3600
    assert started + 7776000 <= after["refresh_token_expires_at"] <= time.time() + 7776000


def test_a_401_refreshes_and_repeats_the_call_once(config, shopify):
    shop_id = installed(config, shopify, expires_in=3000)
    first = stored(config, shop_id)
    shopify.revoke_access()  # Shopify no longer takes it, though our clock says it has 50 minutes left
    assert api.execute(shop_of(config, shop_id), QUERY) == {"shop": {"name": "Keepwell Demo"}}
    now = stored(config, shop_id)
    assert shopify.refreshes == [first["refresh_token"]]
    assert shopify.graphql_tokens == [first["access_token"], now["access_token"]]


def test_a_401_that_a_refresh_cannot_cure_is_final(config, shopify):
    shop_id = installed(config, shopify, expires_in=3000)
    shopify.revoke_access()
    shopify.refresh_tokens.clear()  # the merchant uninstalled: the refresh token is gone too
    with pytest.raises(StoreError) as err:
        api.execute(shop_of(config, shop_id), QUERY)
    assert (err.value.retryable, err.value.code) == (False, "invalid_grant")
    assert len(shopify.graphql_tokens) == 1


def test_a_stale_snapshot_uses_the_token_another_process_stored(config, shopify):
    shop_id = installed(config, shopify, expires_in=REFRESH_MARGIN_S - 60)
    stale = shop_of(config, shop_id)  # a worker's cached shop, taken before the refresh
    api.execute(shop_of(config, shop_id), QUERY)  # another worker refreshes
    assert api.execute(stale, QUERY) == {"shop": {"name": "Keepwell Demo"}}
    assert len(shopify.refreshes) == 1  # the stored new token was used; no second refresh


# --- one refresh per shop across workers --------------------------------------------------------

@pytest.mark.parametrize("why", ["expiry", "401"])
def test_two_workers_refresh_once(config, shopify, why):
    shop_id = installed(config, shopify, expires_in=REFRESH_MARGIN_S - 60 if why == "expiry" else 3000)
    if why == "401":
        shopify.revoke_access()
    shopify.refresh_delay = 0.5
    # Two workers: each its own keeper, Redis connection and database sessions.
    workers = [shop_of(config, shop_id, TokenKeeper(config, Redis.from_url(config.redis_url),
                                                    sessions(config.database_url))) for _ in range(2)]
    results, barrier = [], threading.Barrier(2)

    def work(shop):
        barrier.wait()
        try:
            results.append(api.execute(shop, QUERY))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(shop,)) for shop in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"shop": {"name": "Keepwell Demo"}}] * 2
    assert len(shopify.refreshes) == 1
    assert shopify.graphql_tokens[-2:] == [stored(config, shop_id)["access_token"]] * 2


# --- a lost refresh answer ----------------------------------------------------------------------

def test_a_lost_refresh_answer_is_recovered_with_the_old_refresh_token(config, shopify):
    shop_id = installed(config, shopify, expires_in=REFRESH_MARGIN_S - 60)
    before = stored(config, shop_id)
    shopify.lose_next_refresh = True  # Shopify issues a new pair; the answer never arrives
    with pytest.raises(StoreError) as err:
        api.execute(shop_of(config, shop_id), QUERY)
    assert err.value.retryable
    assert stored(config, shop_id)["refresh_token"] == before["refresh_token"]  # the old pair is kept

    # The job's retry: the old refresh token still works (its replacement was never used).
    assert api.execute(shop_of(config, shop_id), QUERY) == {"shop": {"name": "Keepwell Demo"}}
    after = stored(config, shop_id)
    assert shopify.refreshes == [before["refresh_token"]] * 2
    assert after["access_token"] == shopify.access
    assert before["refresh_token"] not in shopify.refresh_tokens  # retired once the new token was used


# --- non-expiring tokens: migration and doctor -------------------------------------------------

def test_shops_on_non_expiring_tokens_are_named_by_doctor_and_migrated(config, shopify, smtp):
    config = replace(config, smtp_url=smtp.url)
    legacy = installed(config, shopify, expires_in=None)
    with sessions(config.database_url).begin() as session:
        add_shop(session, config, "woocommerce", "https://store.example", consumer_key="ck", consumer_secret="cs")
        # a merchant's custom app: Shopify exempts those from expiring tokens
        add_shop(session, config, "shopify", "custom-app.myshopify.com", access_token="shpat_custom")
    check = {c.name: c for c in doctor.run(config, timeout=2)}["shopify tokens"]
    assert (check.status, check.detail) == (doctor.WARN, f"1 shop(s) on a non-expiring token, which Shopify refuses "
                                                          f"from 2027-01-01: {legacy} ({SHOP})")
    assert "keepwell shop migrate-tokens" in str(check)

    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "KEEPWELL_SECRET_KEY": "k" * 40,
           "SHOPIFY_API_KEY": API_KEY, "SHOPIFY_API_SECRET": APP_SECRET, "KEEPWELL_QUEUE": config.queue}
    result = CliRunner().invoke(main, ["shop", "migrate-tokens"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.split() == [legacy, SHOP, "expiring", "token", "stored"]  # the custom app's is left alone
    now = stored(config, legacy)
    assert (now["access_token"], now["refresh_token"]) == (shopify.access, "shprt_fake0001")
    assert {c.name: c for c in doctor.run(config, timeout=2)}["shopify tokens"].status == doctor.OK
    assert api.execute(shop_of(config, legacy), QUERY) == {"shop": {"name": "Keepwell Demo"}}

    again = CliRunner().invoke(main, ["shop", "migrate-tokens"], env=env)
    assert again.exit_code == 0 and "no app-installed Shopify shop is on a non-expiring token" in again.output


def test_a_lost_migration_answer_is_recovered(config, shopify):
    legacy = installed(config, shopify, expires_in=None)
    keeper = TokenKeeper(config)
    shopify.migrated["shpat_legacy0001"] = shopify.issue()  # Shopify migrated it; the answer was lost
    grant = keeper.migrate(shop_of(config, legacy))
    assert grant.access_token == shopify.migrated["shpat_legacy0001"]["access_token"]
    assert stored(config, legacy)["refresh_token"] == grant.refresh_token
