"""`keepwell shop add / list / remove`: connecting stores by hand."""
import json
import re

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import func, select

from live import load_json
from plugin.cli import main
from plugin.db import RuleSetRow, ShopRow, sessions

STORE = "https://shop.example"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/keepwell.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", "cli-test-key")
    monkeypatch.setenv("KEEPWELL_APP_URL", "https://keepwell.example")

    def run(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    run.db = sessions(url)
    return run


def test_add_woocommerce_prints_id_url_and_secret_and_installs_the_packs(cli):
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1")
    assert r.exit_code == 0, r.output
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    assert f"webhook URL:    https://keepwell.example/webhooks/woocommerce/{shop_id}" in r.output
    assert re.search(r"webhook secret: \S{40,}", r.output)
    with cli.db() as s:
        assert s.get(ShopRow, shop_id).platform == "woocommerce"
        assert s.scalar(select(func.count()).select_from(RuleSetRow).where(RuleSetRow.shop_id == shop_id)) == 1
    assert shop_id in cli("shop", "list").output


def test_add_shopify_needs_its_token_and_a_domain(cli):
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "shopify", "--domain", "a.myshopify.com"])
    assert r.exit_code == 2 and "--token" in r.output
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "shopify", "--token", "shpat_x"])
    assert r.exit_code == 2 and "--domain is required" in r.output


def test_adding_the_same_store_again_updates_it(cli):
    first = cli("shop", "add", "--platform", "shopify", "--domain", "A.myshopify.com", "--token", "shpat_1")
    again = cli("shop", "add", "--platform", "shopify", "--domain", "a.myshopify.com", "--token", "shpat_2")
    ids = [re.search(r"shop id:\s+(\S+)", r.output).group(1) for r in (first, again)]
    assert ids[0] == ids[1]
    with cli.db() as s:
        assert s.scalar(select(func.count()).select_from(ShopRow)) == 1


def test_remove_forgets_the_shop_and_its_rules(cli):
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1")
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    refused = CliRunner().invoke(main, ["shop", "remove", shop_id], input="n\n")
    assert refused.exit_code == 1 and "Remove " + shop_id in refused.output and "Aborted" in refused.output
    with cli.db() as s:
        assert s.get(ShopRow, shop_id) is not None  # asked, said no: nothing removed
    confirmed = CliRunner().invoke(main, ["shop", "remove", shop_id], input="y\n")
    assert confirmed.exit_code == 0 and f"removed {shop_id}" in confirmed.output
    with cli.db() as s:
        assert s.get(ShopRow, shop_id) is None
        assert s.scalar(select(func.count()).select_from(RuleSetRow)) == 0
    r = CliRunner().invoke(main, ["shop", "remove", shop_id, "--yes"])
    assert r.exit_code == 1 and "no shop" in r.output


def test_remove_with_yes_does_not_ask(cli):
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1")
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    r = cli("shop", "remove", shop_id, "--yes")
    assert r.exit_code == 0 and r.output == f"removed {shop_id}\n"


def test_list_as_json(cli):
    assert cli("shop", "list", "--format", "json").output == "[]\n"
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1")
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    shops = json.loads(cli("shop", "list", "--format", "json").output)
    assert [{k: v for k, v in s.items() if k != "created_at"} for s in shops] == [
        {"id": shop_id, "platform": "woocommerce", "domain": STORE, "active": True}]
    assert shops[0]["created_at"].startswith("20")


def test_version():
    from importlib.metadata import version

    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and r.output == f"keepwell {version('keepwell')}\n"


@responses.activate
def test_register_webhooks_through_the_store_api(cli):
    hook = load_json("woocommerce", "rest-v3-docs-examples", "webhook_create_response.json")
    responses.get(f"{STORE}/wp-json/wc/v3/webhooks", json=[], headers={"X-WP-TotalPages": "1"})
    responses.post(f"{STORE}/wp-json/wc/v3/webhooks", json=hook, status=201)
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1",
            "--register-webhooks")
    assert r.exit_code == 0, r.output
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    posted = [json.loads(c.request.body) for c in responses.calls if c.request.method == "POST"]
    assert {p["topic"] for p in posted} == {"order.created", "order.updated", "customer.created", "customer.updated"}
    assert {p["delivery_url"] for p in posted} == {f"https://keepwell.example/webhooks/woocommerce/{shop_id}"}
    assert "webhooks registered:" in r.output


def test_register_webhooks_needs_a_public_app_url(cli, monkeypatch):
    monkeypatch.setenv("KEEPWELL_APP_URL", "http://127.0.0.1:5000")
    r = CliRunner().invoke(main, ["shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1",
                                  "--secret", "cs_1", "--register-webhooks"])
    assert r.exit_code == 1 and "needs a public http(s) URL the store can reach" in r.output
    assert "127.0.0.1 is this machine" in r.output


def test_report_until_in_the_future_says_so(cli):
    r = cli("shop", "add", "--platform", "woocommerce", "--url", STORE, "--key", "ck_1", "--secret", "cs_1")
    shop_id = re.search(r"shop id:\s+(\S+)", r.output).group(1)
    r = cli("report", "--shop", shop_id, "--until", "2999-01-01")
    assert r.exit_code == 0
    assert "note: --until 2999-01-01 is in the future; the report covers touches up to now (" in r.output
    assert "in the future" not in cli("report", "--shop", shop_id, "--until", "2020-01-01").output
