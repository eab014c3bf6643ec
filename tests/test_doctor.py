"""`keepwell doctor` against real services: a good deployment passes, and each broken piece of
configuration is named on its own FAIL line with a fix."""
import shutil
import sqlite3
import subprocess
import time
from dataclasses import replace

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from redis import Redis

from conftest import free_port
from plugin import doctor
from plugin.cli import main
from plugin.config import DEV_SECRET_KEY, Config
from plugin.db import MIGRATIONS, RuleSetRow, sessions, upgrade
from plugin.shops import active_rule_row, add_shop

SECRET = "k" * 40
HEAD = ", ".join(sorted(ScriptDirectory(str(MIGRATIONS)).get_heads()))
UPGRADE = "Fix: run `keepwell db upgrade` (or deploy, which runs it as the release step)"


def good_config(redis_server, smtp, database_url) -> Config:
    return Config(redis_url=redis_server, database_url=database_url, smtp_url=smtp.url, secret_keys=(SECRET,),
                  app_url="https://keepwell.example.com", shopify_api_key="client-id", shopify_api_secrets=("shpss_x",),
                  queue="kwdoctor")


def with_shop(config: Config) -> str:
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        row, _ = add_shop(session, config, "woocommerce", "https://store.example", consumer_key="ck", consumer_secret="cs")
        return row.id


def lines(config: Config) -> dict[str, str]:
    return {c.name: str(c) for c in doctor.run(config, timeout=2)}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/keepwell.db"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    from sqlalchemy import text

    from plugin.db import Base, get_engine

    upgrade(url)
    with get_engine(url).begin() as conn:  # leave the shared test database as we found it
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} CASCADE"))


def test_a_good_deployment_passes(redis_server, smtp, database_url):
    config = good_config(redis_server, smtp, database_url)
    shop_id = with_shop(config)
    checks = doctor.run(config, timeout=2)
    assert [str(c) for c in checks] == [
        "OK   secret key: KEEPWELL_SECRET_KEY is set",
        "OK   shopify app: SHOPIFY_API_KEY and SHOPIFY_API_SECRET are set",
        "OK   app url: KEEPWELL_APP_URL=https://keepwell.example.com",
        f"OK   redis: {redis_server} answers PING and accepts writes",
        "OK   dead letters: none",
        f"OK   database: {database_url} is reachable",
        f"OK   migrations: schema at revision {HEAD} (current)",
        f"OK   smtp: {smtp.url} answers EHLO",
        f"OK   stored secrets: credentials of shop {shop_id} decrypt with the configured keys",
        "OK   rule sets: 1 active shop(s), each with an active rule set that compiles",
        "OK   shopify tokens: no active Shopify shops",
        "OK   timers: no touch lost its timer",
        "OK   woocommerce consent: 1 active WooCommerce shop(s); consent answers arrive (or too few customers yet "
        "to tell)",
    ]
    assert not doctor.failed(checks)
    assert live_keys(redis_server) == []  # the write probe cleaned up
    assert smtp.messages == []  # nothing was sent


def live_keys(redis_url):
    return Redis.from_url(redis_url).keys("kwdoctor:*")


def env_of(config: Config) -> dict:
    return {"REDIS_URL": config.redis_url, "DATABASE_URL": config.database_url, "SMTP_URL": config.smtp_url,
            "KEEPWELL_SECRET_KEY": ",".join(config.secret_keys) if config.secret_keys != (DEV_SECRET_KEY,) else None,
            "KEEPWELL_APP_URL": config.app_url, "SHOPIFY_API_KEY": config.shopify_api_key or None,
            "SHOPIFY_API_SECRET": ",".join(config.shopify_api_secrets) or None, "KEEPWELL_QUEUE": config.queue}


def test_the_command_prints_one_line_per_check_and_exits_by_the_result(redis_server, smtp, tmp_path):
    config = good_config(redis_server, smtp, f"sqlite:///{tmp_path}/keepwell.db")
    with_shop(config)
    r = CliRunner().invoke(main, ["doctor", "--timeout", "2"], env=env_of(config))
    assert r.exit_code == 0, r.output
    assert [line.split(" ", 1)[0] for line in r.stdout.splitlines()] == ["OK"] * 13

    # the embedded defaults are not a deployment
    bad = replace(config, secret_keys=(DEV_SECRET_KEY,), app_url="http://127.0.0.1:5000", shopify_api_key="",
                  shopify_api_secrets=())
    r = CliRunner().invoke(main, ["doctor", "--timeout", "2"], env=env_of(bad))
    assert r.exit_code == 1
    out = r.stdout.splitlines()
    assert out[:3] == [
        "FAIL secret key: KEEPWELL_SECRET_KEY is not set (the public development key is in use). Fix: set "
        "KEEPWELL_SECRET_KEY to a long random value, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`",
        "WARN shopify app: SHOPIFY_API_KEY and SHOPIFY_API_SECRET not set. Fix: only needed to install from the "
        "Shopify App Store: copy the app's client id and secret from the Partner Dashboard (custom-app shops added "
        "with `keepwell shop add` work without)",
        "FAIL app url: KEEPWELL_APP_URL=http://127.0.0.1:5000: 127.0.0.1 is this machine (a loopback address), which "
        "stores cannot reach. Fix: set KEEPWELL_APP_URL to this app's public https URL, e.g. https://keepwell.example.com",
    ]
    # the development key cannot decrypt what the real key stored
    assert out[8].startswith("FAIL stored secrets: ")


def test_secret_key_problems():
    base = Config(secret_keys=(SECRET,))
    assert str(doctor.check_secret_key(base)) == "OK   secret key: KEEPWELL_SECRET_KEY is set"
    dev = doctor.check_secret_key(replace(base, secret_keys=(DEV_SECRET_KEY,)))
    assert dev.status == "FAIL" and dev.detail == "KEEPWELL_SECRET_KEY is not set (the public development key is in use)"
    old = doctor.check_secret_key(replace(base, secret_keys=(SECRET, DEV_SECRET_KEY)))
    assert old.status == "WARN" and old.detail == "the public development key is still accepted as an old KEEPWELL_SECRET_KEY"
    short = doctor.check_secret_key(replace(base, secret_keys=("hunter2",)))
    assert short.status == "WARN" and short.detail == "KEEPWELL_SECRET_KEY is short (7 of at least 32 characters)"


@pytest.mark.parametrize("url, detail", [
    ("ftp://keepwell.example.com", "KEEPWELL_APP_URL=ftp://keepwell.example.com is not an http(s) URL"),
    ("http://localhost:5000", "KEEPWELL_APP_URL=http://localhost:5000: localhost is this machine (localhost), which stores cannot reach"),
    ("https://localhost:5000", "KEEPWELL_APP_URL=https://localhost:5000: localhost is this machine (localhost), which stores cannot reach"),
    ("https://127.0.0.1", "KEEPWELL_APP_URL=https://127.0.0.1: 127.0.0.1 is this machine (a loopback address), which stores cannot reach"),
    ("https://192.168.1.20", "KEEPWELL_APP_URL=https://192.168.1.20: 192.168.1.20 is a private address, which stores cannot reach"),
    ("https://", "KEEPWELL_APP_URL=https:// has no host name"),
])
def test_app_url_must_be_public_https(url, detail):
    check = doctor.check_app_url(Config(app_url=url))
    assert str(check) == (f"FAIL app url: {detail}. Fix: set KEEPWELL_APP_URL to this app's public https URL, "
                          "e.g. https://keepwell.example.com")


def test_plain_http_serves_woocommerce_stores_but_not_a_shopify_app():
    woo = doctor.check_app_url(Config(app_url="http://keepwell.example.com"))
    assert str(woo) == ("WARN app url: KEEPWELL_APP_URL=http://keepwell.example.com is plain http: WooCommerce stores "
                        "can deliver webhooks to it, but Shopify and WooCommerce's connect page need https. Fix: set "
                        "KEEPWELL_APP_URL to this app's public https URL, e.g. https://keepwell.example.com")
    app = doctor.check_app_url(Config(app_url="http://keepwell.example.com", shopify_api_key="client-id"))
    assert (app.status, app.detail) == ("FAIL", "KEEPWELL_APP_URL=http://keepwell.example.com is not https "
                                                "(Shopify only calls https URLs)")
    assert doctor.app_url_problem("http://keepwell.example.com", "woocommerce") is None
    assert doctor.app_url_problem("http://keepwell.example.com", "shopify") == \
        "KEEPWELL_APP_URL=http://keepwell.example.com is not https (Shopify only calls https URLs)"
    assert doctor.check_app_url(Config(app_url="https://keepwell.example.com")).status == "OK"


def test_shopify_credentials_only_warn():
    check = doctor.check_shopify(Config(shopify_api_key="client-id"))
    assert (check.status, check.detail) == ("WARN", "SHOPIFY_API_SECRET not set")


def test_unreachable_redis_fails_and_hides_the_password():
    port = free_port()
    check = doctor.check_redis(Config(redis_url=f"redis://:hunter2@127.0.0.1:{port}/0"), timeout=1)
    line = str(check)
    assert line.startswith(f"FAIL redis: cannot reach redis://:***@127.0.0.1:{port}/0: ")
    assert "Connection refused" in line and "hunter2" not in line
    assert line.endswith(". Fix: start Redis, or set REDIS_URL to a Redis this machine can reach (and its password)")


def test_a_read_only_redis_fails_as_not_writable(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server to run a read-only replica")
    port = free_port()
    # a replica of a master that is not there: answers PING, refuses writes
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--replicaof", "127.0.0.1", str(free_port()), "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                Redis.from_url(url).ping()
                break
            except Exception:
                time.sleep(0.05)
        check = doctor.check_redis(Config(redis_url=url), timeout=2)
        assert str(check) == (f"FAIL redis: {url} answers PING but refuses writes: You can't write against a read only "
                              "replica. Fix: point REDIS_URL at the primary (not a read-only replica) and check its "
                              "maxmemory and ACLs")
    finally:
        proc.terminate()
        proc.wait(5)


def test_unreachable_smtp_fails():
    port = free_port()
    line = str(doctor.check_smtp(Config(smtp_url=f"smtp://127.0.0.1:{port}"), timeout=1))
    assert line.startswith(f"FAIL smtp: cannot reach smtp://127.0.0.1:{port}: ") and "Connection refused" in line
    assert line.endswith(". Fix: start the mail server, or set SMTP_URL to one this machine can reach")
    bad = doctor.check_smtp(Config(smtp_url="mail.example.com"))
    assert bad.status == "FAIL" and bad.detail.startswith("bad SMTP_URL 'mail.example.com'")


def test_unmigrated_databases_fail_precisely(redis_server, smtp, tmp_path):
    config = good_config(redis_server, smtp, "")

    missing = lines(replace(config, database_url=f"sqlite:///{tmp_path}/missing.db"))
    assert missing["database"] == f"FAIL database: SQLite file {tmp_path}/missing.db does not exist. {UPGRADE}"
    assert missing["migrations"] == "SKIP migrations: needs a reachable database"
    assert not (tmp_path / "missing.db").exists()

    sqlite3.connect(tmp_path / "empty.db").close()
    empty = lines(replace(config, database_url=f"sqlite:///{tmp_path}/empty.db"))
    assert empty["database"] == f"OK   database: sqlite:///{tmp_path}/empty.db is reachable"
    assert empty["migrations"] == (f"FAIL migrations: the database has no Keepwell schema (unmigrated); this release "
                                   f"expects revision {HEAD}. {UPGRADE}")
    assert empty["stored secrets"] == "SKIP stored secrets: needs a reachable, migrated database"
    assert empty["rule sets"] == "SKIP rule sets: needs a reachable, migrated database"
    assert empty["woocommerce consent"] == "SKIP woocommerce consent: needs a reachable, migrated database"

    old_url = f"sqlite:///{tmp_path}/old.db"
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", old_url)
    command.upgrade(cfg, "0001")
    old = lines(replace(config, database_url=old_url))
    assert old["migrations"] == f"FAIL migrations: the database is at revision 0001; this release expects {HEAD}. {UPGRADE}"

    command.stamp(cfg, "0001", purge=True)
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    newer = lines(replace(config, database_url=old_url))
    assert newer["migrations"] == (f"FAIL migrations: the database is at revision 9999, which this release does not "
                                   f"know (expects {HEAD}): a newer release migrated it. Fix: run the same Keepwell "
                                   "release everywhere that uses this database")


def test_unreachable_postgres_fails(redis_server, smtp):
    port = free_port()
    url = f"postgresql+psycopg://keepwell:s3cret@127.0.0.1:{port}/keepwell"
    out = lines(good_config(redis_server, smtp, url))
    assert out["database"].startswith(f"FAIL database: cannot connect to postgresql+psycopg://keepwell:***@127.0.0.1:{port}/keepwell: ")
    assert "s3cret" not in out["database"]
    assert out["database"].endswith(". Fix: check DATABASE_URL (host, port, user, password, database name) and that the server runs")
    assert out["migrations"] == "SKIP migrations: needs a reachable database"


def test_secrets_stored_with_another_key_fail(redis_server, smtp, tmp_path):
    config = good_config(redis_server, smtp, f"sqlite:///{tmp_path}/keepwell.db")
    shop_id = with_shop(config)
    out = lines(replace(config, secret_keys=("z" * 40,)))
    assert out["stored secrets"] == (
        f"FAIL stored secrets: shop {shop_id} (https://store.example): stored credentials cannot be decrypted with the "
        "configured KEEPWELL_SECRET_KEY. Fix: set KEEPWELL_SECRET_KEY to the key they were stored with; to rotate, "
        "set 'new,old' and keep the old key until every shop was saved again")
    # during a rotation the old key still decrypts
    assert lines(replace(config, secret_keys=("z" * 40, SECRET)))["stored secrets"].startswith("OK ")


def test_shops_without_a_compiling_rule_set_fail(redis_server, smtp, tmp_path):
    config = good_config(redis_server, smtp, f"sqlite:///{tmp_path}/keepwell.db")
    first, second = with_shop(config), None
    with sessions(config.database_url).begin() as session:
        row, _ = add_shop(session, config, "shopify", "second.myshopify.com", access_token="shpat_x")
        second = row.id
        # a version that no longer compiles (say, written by hand or by an older release)
        good = active_rule_row(session, first)
        good.active = False
        session.flush()
        session.add(RuleSetRow(shop_id=first, version=2, digest="broken", engine_version="", active=True,
                               files={**good.files, "welcome.yaml": good.files["welcome.yaml"].replace("template: welcome\n", "template: welcom\n")}))
        active_rule_row(session, second).active = False
    out = lines(config)
    assert out["rule sets"] == (
        f"FAIL rule sets: shop {first} version 2 does not compile: welcome.yaml:22:11: [welcome] email template 'welcom' "
        f"not found (did you mean 'welcome'?) (templates are templates/NAME.html and NAME.txt); shop {second} has "
        "no active rule set. Fix: push a valid rule set: `keepwell rules push --shop SHOP_ID DIR` (`keepwell rules lint "
        "DIR` shows every problem)")


def test_dead_letters_warn_with_the_shops_and_how_to_recover(redis_server, smtp, tmp_path):
    from plugin.handoff import Envelope, Handoff

    config = good_config(redis_server, smtp, f"sqlite:///{tmp_path}/keepwell.db")
    handoff = Handoff(Redis.from_url(redis_server), config.queue)
    try:
        body = Envelope("woocommerce", "order.created", "d1", 1.0, '{"id": 1}').encode()
        handoff.dead_letter("wo_1", body, "refused: order 1: missing currency")
        handoff.dead_letter("wo_1", body + " ", "refused: order 1: missing currency")
        handoff.dead_letter("sh_2", "not an envelope", "undecodable backlog entry")
        check = doctor.check_dead_letters(config)
        assert str(check) == ("WARN dead letters: 3 backlog entries were set aside: shop sh_2 (1), shop wo_1 (2). "
                              "Fix: `keepwell dead-letters list --shop SHOP_ID` says why; fix the cause, then "
                              "`keepwell dead-letters retry --shop SHOP_ID --all` (or `drop`)")
        assert lines(config)["dead letters"] == str(check)
    finally:
        for key in live_keys(redis_server):
            handoff.redis.delete(key)


def test_a_woocommerce_store_whose_customers_carry_no_consent_is_named(tmp_path):
    from plugin.db import CustomerRow
    from plugin.engine.state import new_state, state_to_dict

    config = Config(database_url=f"sqlite:///{tmp_path}/keepwell.db", secret_keys=(SECRET,))
    silent, answered = with_shop(config), None
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        answered, _ = add_shop(session, config, "woocommerce", "https://answered.example", consumer_key="ck",
                               consumer_secret="cs")
        answered = answered.id
        assert doctor.check_woocommerce_consent(session).status == "OK"  # no customers yet: too early to tell
        for n in range(25):
            for shop_id in (silent, answered):
                state = state_to_dict(new_state(shop_id, str(n)))
                if shop_id == answered and n == 7:
                    state["consent_at"] = "2026-12-01T10:00:00+00:00"  # one answer is enough
                session.add(CustomerRow(shop_id=shop_id, customer_id=str(n), state=state))
    with sessions(config.database_url)() as session:
        check = doctor.check_woocommerce_consent(session)
    assert str(check) == (
        f"WARN woocommerce consent: no marketing consent is known, so nothing is marketed, for shop(s) {silent} (none "
        "of its latest 25 customers). Fix: install the Keepwell WordPress plugin (`make wordpress-plugin`), or name "
        "the meta key your store's opt-in is kept in: `keepwell shop consent SHOP_ID --meta-key KEY`")
