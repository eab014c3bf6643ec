"""A shop's SMS provider settings: kept encrypted with its other secrets, exposed decrypted as
Shop.sms, checked in plain words, kept when the store is connected again, and set, shown (token
hidden) and removed with `keepwell shop sms`."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from plugin.cli import main
from plugin.config import Config
from plugin.db import ShopRow, sessions, upgrade
from plugin.shops import add_shop, set_sms, to_shop

KEY = "sms-settings-test-key"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "f2c3a1b0e9d8c7b6a5f4e3d2c1b0a9f8"
SETTINGS = {"account_sid": SID, "auth_token": TOKEN, "from": "+15017122661"}


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/keepwell.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", KEY)
    upgrade(url)
    return url, Config(database_url=url, secret_keys=(KEY,))


def new_shop(db) -> str:
    url, config = db
    with sessions(url).begin() as s:
        row, _ = add_shop(s, config, "woocommerce", "https://shop.example", consumer_key="ck_1", consumer_secret="cs_1")
        return row.id


def test_set_sms_stores_the_document_encrypted_and_to_shop_decrypts_it(db):
    url, config = db
    shop_id = new_shop(db)
    with sessions(url).begin() as s:
        assert to_shop(s.get(ShopRow, shop_id), config).sms == {}
        set_sms(s, config, shop_id, SETTINGS)
    with sessions(url)() as s:
        row = s.get(ShopRow, shop_id)
        assert TOKEN not in row.secrets and SID not in row.secrets
        shop = to_shop(row, config)
    assert shop.sms == {"provider": "twilio", **SETTINGS}
    assert TOKEN not in repr(shop)
    assert shop.credentials == {"consumer_key": "ck_1", "consumer_secret": "cs_1"}  # the store's keys untouched


def test_connecting_the_store_again_keeps_the_sms_provider(db):
    url, config = db
    shop_id = new_shop(db)
    with sessions(url).begin() as s:
        set_sms(s, config, shop_id, {**SETTINGS, "from": "MG" + "ab" * 16})
    with sessions(url).begin() as s:
        row, _ = add_shop(s, config, "woocommerce", "https://shop.example", consumer_key="ck_2", consumer_secret="cs_2")
        shop = to_shop(row, config)
    assert shop.sms["from"] == "MG" + "ab" * 16 and shop.credentials["consumer_key"] == "ck_2"


@pytest.mark.parametrize("given, words", [
    ({**SETTINGS, "account_sid": "SK123"}, "Account SID starts with AC"),
    ({**SETTINGS, "from": "0501234567"}, "international form"),
    ({"account_sid": SID, "from": "+15017122661"}, "missing auth_token"),
    ({**SETTINGS, "provider": "carrier-pigeon"}, "provider is one of: twilio"),
    ({**SETTINGS, "region": "us1"}, "Additional properties"),
])
def test_bad_settings_are_refused_in_plain_words_and_nothing_changes(db, given, words):
    url, config = db
    shop_id = new_shop(db)
    with sessions(url).begin() as s:
        set_sms(s, config, shop_id, SETTINGS)
    with sessions(url).begin() as s, pytest.raises(ValueError, match=words):
        set_sms(s, config, shop_id, given)
    with sessions(url)() as s:
        assert to_shop(s.get(ShopRow, shop_id), config).sms["account_sid"] == SID


def test_unknown_shop_and_removal(db):
    url, config = db
    shop_id = new_shop(db)
    with sessions(url).begin() as s, pytest.raises(LookupError):
        set_sms(s, config, "wo_nope", SETTINGS)
    with sessions(url).begin() as s:
        set_sms(s, config, shop_id, SETTINGS)
        set_sms(s, config, shop_id, None)
        assert to_shop(s.get(ShopRow, shop_id), config).sms == {}


def test_cli_sets_shows_changes_one_field_and_removes(db):
    url, config = db
    shop_id = new_shop(db)

    def run(*args, env=None):
        return CliRunner().invoke(main, ["shop", "sms", shop_id, *args], env=env)

    shown = run()
    assert shown.exit_code == 0 and "sends no SMS" in shown.output
    made = run("--account-sid", SID, "--from", "+15017122661", env={"KEEPWELL_SMS_AUTH_TOKEN": TOKEN})
    assert made.exit_code == 0, made.output
    assert TOKEN not in made.output and "…a9f8" in made.output and SID in made.output
    changed = run("--from", "+972501234567")
    assert changed.exit_code == 0 and "+972501234567" in changed.output
    with sessions(url)() as s:
        assert to_shop(s.get(ShopRow, shop_id), config).sms == {"provider": "twilio", **SETTINGS, "from": "+972501234567"}
    bad = run("--account-sid", "nope")
    assert bad.exit_code != 0 and "Account SID starts with AC" in bad.output
    assert run("--remove", "--from", "+15017122661").exit_code != 0
    gone = run("--remove")
    assert gone.exit_code == 0 and "sends no SMS any more" in gone.output
    assert CliRunner().invoke(main, ["shop", "sms", "wo_nope"]).exit_code != 0
