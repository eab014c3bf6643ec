"""Each shop sends as itself: sender name and address, Reply-To and the postal address in every
marketing email's footer, from the shop's settings.yaml (or the dashboard's Sender page, which
writes it), else the store's own details (Shopify's Shop object, WooCommerce's settings API),
else the deployment. End to end with the real app, an RQ worker, SMTP and the stores mocked at
the HTTP layer."""
from __future__ import annotations

import gzip
import html
import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import responses
from graphql import build_client_schema, parse, validate
from graphql.validation import NoDeprecatedCustomRule, specified_rules

from connectors.shopify.api import API_VERSION
from connectors.shopify.profile import SHOP_PROFILE
from plugin.admin_auth import admin_link
from plugin.db import RuleSetRow
from plugin.mail import Rendered, with_postal_address
from plugin.rulefile import RULES_DIR
from plugin.sender import effective, with_sender
from plugin.shops import compile_files, read_rule_dir
from live import FIXTURES, STORES, mails_to, running, text_and_html, work
from test_live_failures import HOUR, LATE, T0, advance, signed_up

SHIPPED = read_rule_dir(RULES_DIR)
STORE_ADDRESS = "Keepwell Coffee, 12 Roaster Lane, Portland OR 97201, United States"


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    with running(None, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# --- the rules of precedence --------------------------------------------------------------------

def test_settings_then_the_store_then_the_deployment():
    store = {"name": "Café Lumière", "email": "bonjour@cafe-lumiere.example", "postal_address": "3 rue X, Paris"}
    s = effective("Keepwell <noreply@keepwell.example>", {}, store, "cafe.myshopify.com")
    assert (s.from_header, s.reply_to, s.postal_address) == (
        "Café Lumière <noreply@keepwell.example>", "bonjour@cafe-lumiere.example", "3 rue X, Paris")
    assert s.sources == {"name": "store", "address": "deployment", "reply_to": "store", "postal_address": "store"}
    s = effective("noreply@keepwell.example", {"address": "Bonjour@cafe-lumiere.example", "name": "Lumière"}, store, "x")
    assert (s.name, s.address, s.reply_to) == ("Lumière", "Bonjour@cafe-lumiere.example", None)  # replies go there anyway
    s = effective("noreply@keepwell.example", {}, {}, "cafe.myshopify.com")
    assert (s.name, s.reply_to, s.postal_address) == ("cafe.myshopify.com", None, None)
    assert effective("n@k.example", {"name": "Smith, Jones & Co"}, {}, "x").from_header == '"Smith, Jones & Co" <n@k.example>'


def test_the_sender_block_is_written_into_settings_yaml_keeping_the_rest():
    files = with_sender(SHIPPED, {"name": "Café Lumière", "address": "bonjour@cafe-lumiere.example", "reply_to": " ",
                                  "postal_address": "3 rue de l'Église,\n75001 Paris"})
    text = files["settings.yaml"]
    assert text.startswith(SHIPPED["settings.yaml"].rstrip("\n"))  # comments and settings untouched
    assert dict(compile_files(files).settings.sender) == {
        "name": "Café Lumière", "address": "bonjour@cafe-lumiere.example", "postal_address": "3 rue de l'Église, 75001 Paris"}
    again = with_sender(files, {"name": "Lumière"})  # replaced, not added twice
    assert again["settings.yaml"].count("sender:") == 2  # the shipped comment's and the block
    assert dict(compile_files(again).settings.sender) == {"name": "Lumière"}
    assert with_sender(again, {})["settings.yaml"] == SHIPPED["settings.yaml"]


def test_a_bad_sender_in_settings_yaml_is_a_lint_error_with_its_line():
    from plugin.admin import lint_files

    files = {**SHIPPED, "settings.yaml": SHIPPED["settings.yaml"] + "  sender:\n    address: not an address\n"}
    _, problems = lint_files(files)
    (p,) = problems
    assert p.file == "settings.yaml" and p.line == SHIPPED["settings.yaml"].count("\n") + 2 and "address" in str(p)


def test_the_postal_address_is_added_to_a_footer_that_lacks_it():
    bare = Rendered("Hi", "<html><body><p>Hi</p></body></html>", "Hi\n")
    r = with_postal_address(bare, "3 rue de l'Église & Fils, Paris")
    assert r.text.endswith("Hi\n3 rue de l'Église & Fils, Paris\n")
    assert "3 rue de l&#39;Église &amp; Fils, Paris</p>\n</body>" in r.html
    assert with_postal_address(r, "3 rue de l'Église & Fils, Paris") == r  # shown once
    assert with_postal_address(bare, None) == bare


def test_the_shop_query_is_valid_against_the_admin_schema():
    with gzip.open(FIXTURES / "shopify" / f"admin_schema_{API_VERSION}.json.gz") as f:
        schema = build_client_schema(json.load(f)["data"], assume_valid=True)
    assert validate(schema, parse(SHOP_PROFILE), [*specified_rules, NoDeprecatedCustomRule]) == []


# --- end to end -------------------------------------------------------------------------------------

def welcome_mail(live, store, email="zoe@example.com"):
    advance(live, T0 + HOUR + LATE)
    (msg,) = mails_to(live, email)
    return msg


def test_a_shopify_shop_sends_with_its_store_details(live, rsps):
    store = STORES["shopify"](live, rsps)
    signed_up(store, live)
    msg = welcome_mail(live, store)
    assert msg["From"].addresses[0].display_name == "Keepwell Coffee"
    assert msg["From"].addresses[0].addr_spec == "shop@keepwell.test"  # the deployment's: never a spoofed domain
    assert str(msg["Reply-To"]) == "hello@keepwell-coffee.example"
    text, body = text_and_html(msg)
    assert f"Keepwell Coffee, {STORE_ADDRESS}. Unsubscribe:" in text
    assert html.escape(STORE_ADDRESS, quote=True) in body
    # a second email a day later: the store details were kept, not asked for again
    cid2 = store.customer(2)
    store.signup(cid2, T0 + timedelta(days=1), "ana@example.com", "Ana")
    live.clock.now = T0 + timedelta(days=1)
    work(live)
    advance(live, T0 + timedelta(days=1) + HOUR + LATE)
    assert len(mails_to(live, "ana@example.com")) == 1
    assert len(store.api.ops("KeepwellShopProfile")) == 1


def test_the_dashboard_sets_the_sender_in_settings_yaml(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    client = live.app.test_client()
    link = urlsplit(admin_link(live.config, store.shop_id, 60))
    client.get(f"{link.path}?{link.query}")
    page = client.get("/admin/sender").get_data(as_text=True)
    assert "12 Roaster Lane, 97201 Portland, OR, US" in page and "store" in page  # read from the settings API
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = client.post("/admin/sender", data={"csrf": csrf, "name": "Keepwell Coffee Roasters", "address": "bad",
                                           "reply_to": "", "postal_address": "PO Box 7, Portland OR 97207, USA"})
    assert r.status_code == 422 and "settings.yaml:" in r.get_data(as_text=True)
    r = client.post("/admin/sender", data={"csrf": csrf, "name": "Keepwell Coffee Roasters",
                                           "address": "news@keepwell-coffee.example", "reply_to": "",
                                           "postal_address": "PO Box 7, Portland OR 97207, USA"})
    assert r.status_code == 302 and "saved=2" in r.headers["Location"]
    (active,) = [v for v in live.rows(RuleSetRow, shop_id=store.shop_id) if v.active]
    assert "    address: news@keepwell-coffee.example" in active.files["settings.yaml"]

    signed_up(store, live)
    msg = welcome_mail(live, store)
    assert str(msg["From"]) == "Keepwell Coffee Roasters <news@keepwell-coffee.example>"
    assert str(msg["Reply-To"]) == "hello@keepwell-coffee.example"  # not set: the store's sender address
    text, body = text_and_html(msg)
    assert "PO Box 7, Portland OR 97207, USA" in text and "PO Box 7, Portland OR 97207, USA" in body
    page = client.get("/admin/sender").get_data(as_text=True)
    assert re.search(r'data-field="postal_address"><th scope="row">Postal address</th><td>PO Box 7, Portland OR '
                     r'97207, USA</td><td>settings.yaml</td>', page)


def test_without_store_details_the_email_still_goes_and_the_dashboard_says_what_is_missing(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    store.api.settings["general"]["woocommerce_store_address"] = ""
    store.api.fail_next("GET", "settings/email", 401, {"code": "woocommerce_rest_cannot_view",
                                                       "message": "Sorry, you cannot list resources.",
                                                       "data": {"status": 401}})
    signed_up(store, live)
    msg = welcome_mail(live, store)
    assert str(msg["From"]) == "Keepwell Coffee <shop@keepwell.test>" and msg["Reply-To"] is None
    client = live.app.test_client()
    link = urlsplit(admin_link(live.config, store.shop_id, 60))
    client.get(f"{link.path}?{link.query}")
    assert 'id="no-postal-address"' in client.get("/admin/sender").get_data(as_text=True)
