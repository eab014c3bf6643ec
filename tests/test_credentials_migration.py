"""Revision 0008 on SQLite and PostgreSQL: shops stored by the previous schema (every platform's
credential fields side by side in the encrypted secrets) come out with one credentials document
their platform's package reads, keep their webhook secrets and referral key, and go back on
downgrade."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command

from plugin import secrets
from plugin.app import create_app
from plugin.config import Config
from plugin.db import ShopRow, alembic_config, get_engine, sessions, upgrade
from plugin.shops import to_shop

KEYS = ("the-deployment-key-" + "k" * 24,)
SHOPIFY = {"access_token": "shpat_0123456789", "consumer_key": "", "consumer_secret": "", "webhook_secrets": [],
           "referral_key": "ref-shopify", "access_token_expires_at": 1_900_000_000.5, "refresh_token": "shprt_abc",
           "refresh_token_expires_at": 1_907_776_000.0}
CUSTOM_APP = {"access_token": "shpat_custom", "consumer_key": "", "consumer_secret": "",
              "webhook_secrets": ["custom-app-secret"], "referral_key": "ref-custom"}
WOO = {"access_token": "", "consumer_key": "ck_live", "consumer_secret": "cs_live",
       "webhook_secrets": ["wh-new", "wh-old"], "referral_key": "ref-woo"}
DISCONNECTED = {"access_token": "", "consumer_key": "", "consumer_secret": "", "webhook_secrets": [],
                "referral_key": "ref-gone"}
ROWS = {"sh_1": ("shopify", "flat.myshopify.com", SHOPIFY, True), "sh_2": ("shopify", "custom.myshopify.com", CUSTOM_APP, True),
        "wo_1": ("woocommerce", "https://flat.example", WOO, True),
        "wo_2": ("woocommerce", "https://gone.example", DISCONNECTED, False)}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/keepwell.db"
    return request.getfixturevalue("empty_postgres_url").replace("postgres://", "postgresql+psycopg://", 1)


def write_previous_rows(url: str) -> None:
    """Rows as the previous schema's code wrote them (plugin.shops.add_shop before revision 0008)."""
    with get_engine(url).begin() as conn:  # the shops table itself is the same in both revisions
        for shop_id, (platform, domain, stored, active) in ROWS.items():
            conn.execute(ShopRow.__table__.insert().values(
                id=shop_id, platform=platform, domain=domain, api_url=domain if "://" in domain else f"https://{domain}",
                secrets=secrets.encrypt(KEYS, stored), settings={}, active=active,
                created_at=datetime(2026, 11, 1, tzinfo=timezone.utc)))


def stored(url: str) -> dict[str, dict]:
    with sessions(url)() as session:
        return {row.id: secrets.decrypt(KEYS, row.secrets) for row in session.scalars(sa.select(ShopRow))}


def test_credentials_move_into_one_document_and_back(database_url):
    cfg = alembic_config(database_url, KEYS)
    command.upgrade(cfg, "0007")
    write_previous_rows(database_url)

    upgrade(database_url, KEYS)
    after = stored(database_url)
    assert after["sh_1"] == {"credentials": {"access_token": "shpat_0123456789", "refresh_token": "shprt_abc",
                                             "access_token_expires_at": 1_900_000_000.5,
                                             "refresh_token_expires_at": 1_907_776_000.0},
                             "webhook_secrets": [], "referral_key": "ref-shopify"}
    assert after["sh_2"] == {"credentials": {"access_token": "shpat_custom"}, "webhook_secrets": ["custom-app-secret"],
                             "referral_key": "ref-custom"}
    assert after["wo_1"] == {"credentials": {"consumer_key": "ck_live", "consumer_secret": "cs_live"},
                             "webhook_secrets": ["wh-new", "wh-old"], "referral_key": "ref-woo"}
    assert after["wo_2"] == {"credentials": {}, "webhook_secrets": [], "referral_key": "ref-gone"}

    config = Config(database_url=database_url, secret_keys=KEYS, shopify_api_secrets=("app-secret",))
    with sessions(database_url)() as session:
        shops = {row.id: to_shop(row, config) for row in session.scalars(sa.select(ShopRow))}
    assert shops["sh_1"].credentials["access_token"] == "shpat_0123456789"
    assert shops["sh_1"].webhook_secrets == ("app-secret",)  # the app's, as before
    assert shops["sh_2"].webhook_secrets == ("custom-app-secret",)
    assert dict(shops["wo_1"].credentials) == {"consumer_key": "ck_live", "consumer_secret": "cs_live"}
    assert shops["wo_1"].referral_key == "ref-woo"  # codes customers hold stay valid

    upgrade(database_url, KEYS)  # at head already: nothing changes
    assert stored(database_url) == after

    command.downgrade(cfg, "0007")
    before = stored(database_url)
    for shop_id, (_, _, flat, _) in ROWS.items():
        assert before[shop_id] == flat, shop_id
    command.upgrade(cfg, "head")
    assert stored(database_url) == after
    get_engine(database_url).dispose()


def test_a_migrated_store_keeps_receiving_its_webhooks(tmp_path, redis_server):
    """WooCommerce stores keep their per-shop URL and secret across the migration."""
    url = f"sqlite:///{tmp_path}/keepwell.db"
    command.upgrade(alembic_config(url, KEYS), "0007")
    write_previous_rows(url)
    upgrade(url, KEYS)
    queue = f"migrated-{tmp_path.name}"
    app = create_app(Config(database_url=url, redis_url=redis_server, secret_keys=KEYS, queue=queue))
    redis = app.extensions["keepwell"].handoff.redis
    body = json.dumps({"id": 7, "email": "dana@example.com", "date_modified_gmt": "2026-11-02T10:00:00"}).encode()
    for secret in ("not-the-shops-secret", "wh-new", "wh-old"):  # a rotation in progress survives too
        signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        r = app.test_client().post("/webhooks/woocommerce/wo_1", data=body, headers={
            "X-WC-Webhook-Topic": "customer.created", "X-WC-Webhook-Signature": signature,
            "X-WC-Webhook-Delivery-ID": secret, "Content-Type": "application/json"})
        expected = {"not-the-shops-secret": 401, "wh-new": 202, "wh-old": 200}[secret]  # 200: the same event again
        assert r.status_code == expected, r.get_data(as_text=True)
    r = app.test_client().post("/webhooks/woocommerce/wo_2", data=body, headers={"X-WC-Webhook-Topic": "customer.created"})
    assert r.status_code == 404  # disconnected before the migration: still disconnected
    for key in redis.scan_iter(f"{queue}*"):
        redis.delete(key)


def test_the_migration_needs_the_keys_the_secrets_were_stored_with(tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db"
    command.upgrade(alembic_config(url, KEYS), "0007")
    write_previous_rows(url)
    with pytest.raises(secrets.SecretError, match="KEEPWELL_SECRET_KEY"):
        upgrade(url, ("another-key-" + "x" * 30,))
    with get_engine(url).connect() as conn:  # nothing changed: still the previous revision, rows as they were
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0007"
    with sessions(url)() as session:
        rows = {row.id: secrets.decrypt(KEYS, row.secrets) for row in session.scalars(sa.select(ShopRow))}
    assert rows == {shop_id: flat for shop_id, (_, _, flat, _) in ROWS.items()}
