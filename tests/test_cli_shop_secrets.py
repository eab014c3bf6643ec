"""A connected WooCommerce store survives its set-up commands being run again: `keepwell shop add`
keeps the webhook secret its webhooks sign with, `keepwell shop rotate-secret` changes it without a
failed delivery, `keepwell shop consent` changes where consent is read; http app URLs serve
WooCommerce. The store's REST API is mocked at the HTTP layer."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest
import responses
from click.testing import CliRunner

import connectors
from plugin.cli import main
from plugin.config import Config
from plugin.db import ShopRow, sessions
from plugin.errors import SignatureError
from plugin.shops import to_shop

STORE = "https://shop.example"
KEY = "cli-test-key"
HOOKS = f"{STORE}/wp-json/wc/v3/webhooks"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/keepwell.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", KEY)
    monkeypatch.setenv("KEEPWELL_APP_URL", "https://keepwell.example")

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    run.db = sessions(url)
    return run


def add(cli, *extra):
    return cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1", *extra)


def shop_id_of(result) -> str:
    return re.search(r"shop id:\s+(\S+)", result.output).group(1)


def secret_of(result) -> str:
    return re.search(r"webhook secret: (\S+)", result.output).group(1)


def delivery(secret: str) -> tuple[dict, bytes]:
    body = json.dumps({"id": 727, "status": "processing"}).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-WC-Webhook-Signature": signature, "X-WC-Webhook-Topic": "order.updated"}, body


def accepts(cli, shop_id: str, secret: str) -> bool:
    with cli.db() as s:
        shop = to_shop(s.get(ShopRow, shop_id), Config(secret_keys=(KEY,)))
    try:
        connectors.get("woocommerce").verify(shop, *delivery(secret))
        return True
    except SignatureError:
        return False


def test_adding_a_connected_store_again_keeps_its_webhook_secret(cli):
    first = add(cli)
    shop_id, secret = shop_id_of(first), secret_of(first)
    again = cli("shop", "add", "--platform", "woocommerce", "--url", STORE + "/", "--key", "ck_2", "--secret", "cs_2")
    assert again.exit_code == 0, again.output
    assert shop_id_of(again) == shop_id
    assert f"webhook secret: {secret} (unchanged: the store is already connected)" in again.output
    assert accepts(cli, shop_id, secret)  # the store's next delivery is still accepted
    with cli.db() as s:
        shop = to_shop(s.get(ShopRow, shop_id), Config(secret_keys=(KEY,)))
    assert (shop.credentials['consumer_key'], shop.credentials['consumer_secret'], shop.webhook_secrets) == ("ck_2", "cs_2", (secret,))
    # giving the secret it already has is fine too
    assert add(cli, "--webhook-secret", secret).exit_code == 0


def test_another_webhook_secret_or_consent_key_is_refused_with_the_command_that_changes_it(cli):
    first = add(cli, "--consent-meta-key", "newsletter_ok")
    shop_id, secret = shop_id_of(first), secret_of(first)
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_2",
                                  "--secret", "cs_2", "--webhook-secret", "something-else"])
    assert r.exit_code == 1
    assert (f"Error: shop {shop_id} ({STORE}) is already connected with another webhook secret; to replace it "
            f"run `keepwell shop rotate-secret {shop_id}`") in r.output
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_2",
                                  "--secret", "cs_2", "--consent-meta-key", "_other"])
    assert r.exit_code == 1
    assert (f"reads consent from 'newsletter_ok'; to read '_other' instead run "
            f"`keepwell shop consent {shop_id} --meta-key _other`") in r.output
    with cli.db() as s:  # nothing changed
        row = s.get(ShopRow, shop_id)
        shop = to_shop(row, Config(secret_keys=(KEY,)))
        assert (shop.credentials['consumer_key'], shop.webhook_secrets) == ("ck_1", (secret,))
        assert row.settings["consent_meta_key"] == "newsletter_ok"


@responses.activate
def test_rotating_the_secret_accepts_both_until_the_previous_is_forgotten(cli):
    first = add(cli)
    shop_id, old = shop_id_of(first), secret_of(first)
    existing = [{"id": 140 + i, "name": f"Keepwell {t}", "status": s, "topic": t,
                 "delivery_url": f"https://keepwell.example/webhooks/woocommerce/{shop_id}"}
                for i, (t, s) in enumerate([("order.created", "active"), ("order.updated", "disabled"),
                                            ("customer.created", "active"), ("customer.updated", "active")])]
    responses.get(HOOKS, json=existing, headers={"X-WP-Total": "4", "X-WP-TotalPages": "1"})
    for hook in existing:
        responses.put(f"{HOOKS}/{hook['id']}", json={**hook, "status": "active"})
    r = cli("shop", "rotate-secret", shop_id, "--register-webhooks")
    assert r.exit_code == 0, r.output
    new = secret_of(r)
    assert new != old and len(new) >= 40
    assert "still accepted: 1 previous secret(s)" in r.output
    assert "the store's Keepwell webhooks now sign with the new secret" in r.output
    puts = [json.loads(c.request.body) for c in responses.calls if c.request.method == "PUT"]
    assert puts == [{"secret": new, "status": "active"}] * 4
    assert accepts(cli, shop_id, old) and accepts(cli, shop_id, new)

    r = cli("shop", "rotate-secret", shop_id, "--forget-previous")
    assert r.exit_code == 0 and "only the current webhook secret is accepted now" in r.output
    assert accepts(cli, shop_id, new) and not accepts(cli, shop_id, old)


@responses.activate
def test_a_store_that_refuses_the_new_secret_keeps_the_old_one_working(cli):
    first = add(cli)
    shop_id, old = shop_id_of(first), secret_of(first)
    responses.get(HOOKS, status=401, json={"code": "woocommerce_rest_cannot_view",
                                           "message": "Sorry, you cannot list resources.", "data": {"status": 401}})
    r = CliRunner().invoke(main, ["shop", "rotate-secret", shop_id, "--register-webhooks"])
    assert r.exit_code == 1
    assert "the store did not take the new secret" in r.output and "the previous one is still accepted" in r.output
    assert accepts(cli, shop_id, old)


def test_rotate_without_the_store_prints_where_to_paste_it(cli):
    shop_id = shop_id_of(add(cli))
    r = cli("shop", "rotate-secret", shop_id, "--secret", "chosen-by-hand")
    assert r.exit_code == 0
    assert "webhook secret: chosen-by-hand" in r.output
    assert "WooCommerce → Settings → Advanced → Webhooks" in r.output
    assert accepts(cli, shop_id, "chosen-by-hand")
    r = CliRunner().invoke(main, ["shop", "rotate-secret", "wo_nosuchshop"])
    assert r.exit_code == 1 and "no shop 'wo_nosuchshop'" in r.output
    r = CliRunner().invoke(main, ["shop", "rotate-secret", shop_id, "--forget-previous", "--register-webhooks"])
    assert r.exit_code == 2


def test_shop_consent_shows_and_changes_where_consent_is_read(cli):
    shop_id = shop_id_of(add(cli))
    r = cli("shop", "consent", shop_id)
    assert r.exit_code == 0
    assert r.output.splitlines()[1:3] == ["  _keepwell_marketing_opt_in", "  mailchimp_woocommerce_is_subscribed"]
    assert "Without any of these a customer is not marketed to." in r.output
    r = cli("shop", "consent", shop_id, "--meta-key", "newsletter_ok")
    assert r.output.splitlines()[1:4] == ["  newsletter_ok", "  _keepwell_marketing_opt_in",
                                          "  mailchimp_woocommerce_is_subscribed"]
    with cli.db() as s:
        assert s.get(ShopRow, shop_id).settings["consent_meta_key"] == "newsletter_ok"
    r = cli("shop", "consent", shop_id, "--no-meta-key")
    assert r.output.splitlines()[1] == "  _keepwell_marketing_opt_in"
    with cli.db() as s:
        assert "consent_meta_key" not in s.get(ShopRow, shop_id).settings
    shopify = shop_id_of(cli("shop", "add", "--platform", "shopify", "--domain", "a.myshopify.com", "--token", "shpat_1"))
    r = CliRunner().invoke(main, ["shop", "consent", shopify, "--meta-key", "x"])
    assert r.exit_code == 1 and "Shopify keeps consent on the customer" in r.output
    assert CliRunner().invoke(main, ["shop", "consent", shop_id, "--meta-key", " "]).exit_code == 2


def test_shop_consent_shows_and_changes_where_sms_consent_is_read(cli):
    shop_id = shop_id_of(add(cli))
    r = cli("shop", "consent", shop_id)
    assert r.output.splitlines()[-1] == "  _keepwell_sms_opt_in"
    r = cli("shop", "consent", shop_id, "--sms-meta-key", "sms_ok")
    assert r.output.splitlines()[-2:] == ["  sms_ok", "  _keepwell_sms_opt_in"]
    assert r.output.splitlines()[1] == "  _keepwell_marketing_opt_in"  # email's keys unchanged
    with cli.db() as s:
        assert s.get(ShopRow, shop_id).settings["sms_consent_meta_key"] == "sms_ok"
    r = cli("shop", "consent", shop_id, "--no-sms-meta-key")
    assert r.output.splitlines()[-1] == "  _keepwell_sms_opt_in" and "  sms_ok" not in r.output
    with cli.db() as s:
        assert "sms_consent_meta_key" not in s.get(ShopRow, shop_id).settings
    assert CliRunner().invoke(main, ["shop", "consent", shop_id, "--sms-meta-key", "x", "--no-sms-meta-key"]).exit_code == 2


@responses.activate
def test_register_webhooks_over_http_for_woocommerce_only(cli, monkeypatch):
    monkeypatch.setenv("KEEPWELL_APP_URL", "http://keepwell.example")
    hook = {"id": 142, "name": "Keepwell", "status": "active", "topic": "order.created"}
    responses.get(HOOKS, json=[], headers={"X-WP-TotalPages": "1"})
    responses.post(HOOKS, json=hook, status=201)
    r = add(cli, "--register-webhooks")
    assert r.exit_code == 0, r.output
    shop_id = shop_id_of(r)
    posted = [json.loads(c.request.body) for c in responses.calls if c.request.method == "POST"]
    assert {p["delivery_url"] for p in posted} == {f"http://keepwell.example/webhooks/woocommerce/{shop_id}"}
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "shopify", "--domain", "b.myshopify.com",
                                  "--token", "shpat_1", "--register-webhooks"])
    assert r.exit_code == 1 and "is not https (Shopify only calls https URLs)" in r.output
    monkeypatch.setenv("KEEPWELL_APP_URL", "http://192.168.1.20:5000")
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "woocommerce", "--url", "https://other.example",
                                  "--key", "ck", "--secret", "cs", "--register-webhooks"])
    assert r.exit_code == 1 and "is a private address" in r.output
