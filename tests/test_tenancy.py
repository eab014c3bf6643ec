"""Tenants never meet: one shop's credentials can neither read nor change another shop's data,
every row and Redis key is scoped by shop, and store credentials are encrypted at rest (with a
key that can be rotated)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import UniqueConstraint, select, text

from live import SHOPIFY_SECRET, load_json, start, stop, woo_customer, woo_order
from plugin import secrets
from plugin.cli import main
from plugin.config import Config
from plugin.db import (Base, CustomerRow, DecisionRow, EffectRow, EventSeenRow, OrderIndexRow, RuleSetRow, ShopRow,
                       TimerRow, sessions, upgrade)
from plugin.pipeline import RQ_TIMER_HORIZON, sweep_timers
from plugin.shops import active_rule_row, add_shop, install_rules, to_shop

STORE_A, STORE_B = "https://a.example", "https://b.example"
CONSENT = {"consent_meta_key": "_keepwell_marketing_opt_in"}
ORDER_PAID = json.loads((Path(__file__).parent / "fixtures" / "shopify" / "order_paid.json").read_text())


@pytest.fixture
def live(redis_server, smtp, tmp_path):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    yield live
    stop(live)


@pytest.fixture(params=["sqlite", "postgres"])
def live_db(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    yield live
    stop(live)


def our_redis_keys(live) -> list[str]:
    return sorted(k.decode() for k in live.rt.redis.keys(f"{live.config.queue}:*"))


def assert_nothing_queued(live):
    assert our_redis_keys(live) == []  # no backlog, no dedupe mark, no drain flag, for any shop
    assert live.rt.queue.count == 0


def two_woocommerce_shops(live):
    a = live.add_shop("woocommerce", STORE_A, consumer_key="ck_a", consumer_secret="cs_a", settings=CONSENT)
    b = live.add_shop("woocommerce", STORE_B, consumer_key="ck_b", consumer_secret="cs_b", settings=CONSENT)
    return a, b


# --- (a), (b): a signature only opens its own shop ----------------------------------------------

def test_woocommerce_webhook_signed_with_another_shops_secret_is_refused(live):
    (a, a_secret), (b, b_secret) = two_woocommerce_shops(live)

    assert live.post_woocommerce(b, a_secret, "order.created", woo_order()).status_code == 401
    assert live.post_woocommerce(a, b_secret, "customer.created", woo_customer()).status_code == 401
    assert_nothing_queued(live)

    assert live.post_woocommerce(a, a_secret, "order.created", woo_order()).status_code == 202
    assert [k for k in our_redis_keys(live) if k.endswith(":backlog")] == [f"{live.config.queue}:{{{a}}}:backlog"]


def test_shopify_webhook_signed_with_another_custom_apps_secret_is_refused(live):
    a, _ = live.add_shop("shopify", "a-shop.myshopify.com", access_token="shpat_a", webhook_secret="custom-app-secret-a")
    b, _ = live.add_shop("shopify", "b-shop.myshopify.com", access_token="shpat_b", webhook_secret="custom-app-secret-b")
    c, _ = live.add_shop("shopify", "c-shop.myshopify.com", access_token="shpat_c")  # installed app: app secret

    for secret in ("custom-app-secret-b", SHOPIFY_SECRET):  # B's custom app; the public app's secret
        assert live.post_shopify("orders/paid", ORDER_PAID, "a-shop.myshopify.com", secret=secret).status_code == 401
    assert live.post_shopify("orders/paid", ORDER_PAID, "c-shop.myshopify.com",
                             secret="custom-app-secret-a").status_code == 401
    assert_nothing_queued(live)

    assert live.post_shopify("orders/paid", ORDER_PAID, "a-shop.myshopify.com",
                             secret="custom-app-secret-a").status_code == 202
    assert live.post_shopify("orders/paid", ORDER_PAID, "c-shop.myshopify.com").status_code == 202
    backlogs = {k for k in our_redis_keys(live) if k.endswith(":backlog")}
    assert backlogs == {f"{live.config.queue}:{{{a}}}:backlog", f"{live.config.queue}:{{{c}}}:backlog"}
    assert b not in " ".join(our_redis_keys(live))


# --- (c): the same customer and order ids in two shops ------------------------------------------

@pytest.fixture
def stores():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        created = load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json")
        for store in (STORE_A, STORE_B):
            mock.post(f"{store}/wp-json/wc/v3/coupons", json=created, status=201)
            mock.get(f"{store}/wp-json/wc/v3/products", json=[])  # the order's products, deleted since
        yield mock


def test_same_customer_and_order_ids_in_two_shops_stay_apart(live_db, stores):
    live = live_db
    (a, a_secret), (b, b_secret) = two_woocommerce_shops(live)
    with live.rt.sessions.begin() as session:  # B's merchant dropped the icebreaker; A keeps it
        files = dict(active_rule_row(session, b).files)
        del files["icebreaker.yaml"]
        install_rules(session, b, files)

    people = ((a, a_secret, "ann@a.example", "Ann", "64.90"), (b, b_secret, "bob@b.example", "Bob", "12.00"))
    for shop, secret, email, name, _ in people:
        r = live.post_woocommerce(shop, secret, "customer.created",
                                  woo_customer(customer_id=25, email=email, first_name=name))
        assert r.status_code == 202, r.data  # (B's is not a duplicate of A's delivery)
    live.work()
    live.clock.now += timedelta(hours=2)  # the welcome waits an hour
    assert sweep_timers(live.rt) == 2
    live.work()
    for shop, secret, email, _, total in people:
        r = live.post_woocommerce(shop, secret, "order.created",
                                  woo_order(order_id=727, customer_id=25, email=email, total=total))
        assert r.status_code == 202, r.data
    live.work()

    # customer state: one row per shop, each with its own shop's facts
    state_a, = live.rows(CustomerRow, shop_id=a)
    state_b, = live.rows(CustomerRow, shop_id=b)
    assert (state_a.customer_id, state_a.state["shop"], state_a.state["email"]) == ("25", a, "ann@a.example")
    assert (state_b.customer_id, state_b.state["shop"], state_b.state["email"]) == ("25", b, "bob@b.example")
    assert [o["total"] for o in state_a.state["orders"]] == ["64.90"]
    assert [o["total"] for o in state_b.state["orders"]] == ["12.00"]
    # the order index and the events seen: the same ids, recorded once per shop
    assert [(r.order_id, r.customer_id) for r in live.rows(OrderIndexRow, shop_id=a)] == [("727", "25")]
    assert [(r.order_id, r.customer_id) for r in live.rows(OrderIndexRow, shop_id=b)] == [("727", "25")]
    seen_a = {r.key for r in live.rows(EventSeenRow, shop_id=a) if r.key.startswith("wc:")}
    seen_b = {r.key for r in live.rows(EventSeenRow, shop_id=b) if r.key.startswith("wc:")}
    assert seen_a == seen_b == {"wc:customer.created:25:2026-11-20T09:00:00", "wc:order.created:727:2026-11-20T10:00:00",
                                "wc:order.paid:727:2026-11-20T10:00:00"}
    # the ledger: both welcomed their customer 25, under keys and coupon codes of their own
    decisions_a, decisions_b = live.rows(DecisionRow, shop_id=a), live.rows(DecisionRow, shop_id=b)
    welcome_a, = [d for d in decisions_a if d.rule_id == "welcome"]
    welcome_b, = [d for d in decisions_b if d.rule_id == "welcome"]
    assert welcome_a.status == welcome_b.status == "done"
    assert not {d.key for d in decisions_a} & {d.key for d in decisions_b}
    effects_a, effects_b = live.rows(EffectRow, shop_id=a), live.rows(EffectRow, shop_id=b)
    assert {e.decision_key for e in effects_a} == {welcome_a.key}
    assert {e.decision_key for e in effects_b} == {welcome_b.key}
    coupon_a, = [e.coupon_code for e in effects_a if e.type == "coupon"]
    coupon_b, = [e.coupon_code for e in effects_b if e.type == "coupon"]
    assert coupon_a != coupon_b
    # timers: each shop's delayed rules, from its own rule set, carrying its own customer's facts
    timers_a, timers_b = live.rows(TimerRow, shop_id=a), live.rows(TimerRow, shop_id=b)
    rules_of = lambda timers: {t.event["data"]["rule"] for t in timers}  # noqa: E731
    assert rules_of(timers_a) - rules_of(timers_b) == {"icebreaker"} and rules_of(timers_b) <= rules_of(timers_a)
    for shop, timers, email in ((a, timers_a, "ann@a.example"), (b, timers_b, "bob@b.example")):
        for t in timers:
            assert t.event["shop"] == shop and t.customer_id == "25"
            assert t.event["data"].get("event", {}).get("customer", {}).get("email", email) == email
    # only timers due soon are RQ jobs; the rest wait in each shop's own timer rows for the tick
    near = [t for t in timers_a + timers_b if t.status == "pending" and t.wake_at <= live.clock() + RQ_TIMER_HORIZON]
    scheduled = live.rt.queue.scheduled_job_registry.get_job_ids()
    assert len([j for j in scheduled if "timer-" in j]) == len(near)
    # rule sets: B's change is B's alone
    rules_a, rules_b = live.rows(RuleSetRow, shop_id=a), live.rows(RuleSetRow, shop_id=b)
    assert [(r.version, r.active, "icebreaker.yaml" in r.files) for r in rules_a] == [(1, True, True)]
    assert sorted((r.version, r.active, "icebreaker.yaml" in r.files) for r in rules_b) == [(1, False, True), (2, True, False)]
    # each store was called with its own keys, for its own customer; each customer got their own email
    own = {STORE_A: (("ck_a", "cs_a"), "ann@a.example", coupon_a), STORE_B: (("ck_b", "cs_b"), "bob@b.example", coupon_b)}
    # (besides each store's product lookups and the store details its email sender is read from)
    assert sorted(c.request.url for c in stores.calls if "/products" not in c.request.url
                  and "/settings/" not in c.request.url) == [
        f"{STORE_A}/wp-json/wc/v3/coupons", f"{STORE_B}/wp-json/wc/v3/coupons"]
    for call in stores.calls:  # product lookups included: each with its own store's keys
        keys, email, code = own[call.request.url.split("/wp-json/")[0]]
        given = base64.b64decode(call.request.headers["Authorization"].removeprefix("Basic ")).decode()
        assert tuple(given.split(":", 1)) == keys
        if call.request.method == "POST":
            body = json.loads(call.request.body)
            assert (body["code"], body["email_restrictions"]) == (code, [email])
    assert sorted(m["To"].addresses[0].addr_spec for m in live.smtp.messages) == ["ann@a.example", "bob@b.example"]


# --- (d): Redis keys per shop -------------------------------------------------------------------

def test_dedupe_is_per_shop(live):
    a, _ = live.add_shop("shopify", "a-shop.myshopify.com", access_token="shpat_a")
    b, _ = live.add_shop("shopify", "b-shop.myshopify.com", access_token="shpat_b")
    (wa, wa_secret), (wb, wb_secret) = two_woocommerce_shops(live)

    assert live.post_shopify("orders/paid", ORDER_PAID, "a-shop.myshopify.com", event_id="evt-1").status_code == 202
    assert live.post_shopify("orders/paid", ORDER_PAID, "b-shop.myshopify.com", event_id="evt-1").status_code == 202
    again = live.post_shopify("orders/paid", ORDER_PAID, "a-shop.myshopify.com", event_id="evt-1")
    assert (again.status_code, again.json) == (200, {"status": "duplicate"})
    # WooCommerce: the same topic, resource id and modification date in two stores
    assert live.post_woocommerce(wa, wa_secret, "order.updated", woo_order()).status_code == 202
    assert live.post_woocommerce(wb, wb_secret, "order.updated", woo_order()).status_code == 202

    prefix = live.config.queue
    for shop in (a, b, wa, wb):
        assert live.rt.redis.llen(f"{prefix}:{{{shop}}}:backlog") == 1
    assert live.rt.redis.exists(f"{prefix}:{{{a}}}:seen:evt-1", f"{prefix}:{{{b}}}:seen:evt-1") == 2
    shop_ids = (a, b, wa, wb)
    for key in our_redis_keys(live):  # every key of ours carries exactly one shop's hash tag
        assert sum(key.startswith(f"{prefix}:{{{s}}}:") for s in shop_ids) == 1, key


# --- (e): every table is keyed by shop ----------------------------------------------------------

def shop_column(table) -> str:
    return "id" if table.name == "shops" else "shop_id"


def keys_of(table) -> list[set[str]]:
    """The column sets of the table's primary key, unique constraints and unique indexes."""
    keys = [{c.name for c in table.primary_key.columns}]
    keys += [{c.name for c in con.columns} for con in table.constraints if isinstance(con, UniqueConstraint)]
    keys += [{c.name for c in index.columns} for index in table.indexes if index.unique]
    return keys


@pytest.mark.parametrize("table", [pytest.param(t, id=t.name) for t in Base.metadata.sorted_tables])
def test_every_table_has_shop_id_in_a_primary_or_unique_key(table):
    column = shop_column(table)
    assert column in table.columns, f"table {table.name} has no {column} column"
    assert any(column in key for key in keys_of(table)), \
        f"table {table.name}: {column} is in none of its keys {keys_of(table)}"


def test_the_tenancy_check_sees_every_table():
    names = {t.name for t in Base.metadata.sorted_tables}
    assert {"shops", "rule_sets", "customers", "orders", "events_seen", "decisions", "effects", "timers",
            "unsubscribes"} <= names


# --- secrets at rest ----------------------------------------------------------------------------

def raw_shop_rows(live) -> str:
    with live.rt.sessions() as session:
        return repr(session.execute(text("SELECT * FROM shops")).all())


def test_store_credentials_are_not_stored_in_clear_text(live):
    live.add_shop("shopify", "a-shop.myshopify.com", access_token="shpat_0123456789abcdef0123456789abcdef",
                  webhook_secret="custom-app-secret-0123456789")
    _, woo_secret = live.add_shop("woocommerce", STORE_A, consumer_key="ck_41f1c0ffee41f1c0ffee41f1c0ffee41f1c0ffee",
                                  consumer_secret="cs_5ec12e75ec12e75ec12e75ec12e75ec12e75ec12")
    raw = raw_shop_rows(live)
    for clear in ("shpat_0123456789abcdef0123456789abcdef", "custom-app-secret-0123456789",
                  "ck_41f1c0ffee41f1c0ffee41f1c0ffee41f1c0ffee", "cs_5ec12e75ec12e75ec12e75ec12e75ec12e75ec12", woo_secret):
        assert clear not in raw
    for row in live.rows(ShopRow):  # ...and yet readable with the key
        assert to_shop(row, live.config).webhook_secrets


# --- secrets rotation ---------------------------------------------------------------------------

def test_secrets_rotate_moves_every_shop_to_the_newest_key(tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db"
    upgrade(url)
    key_a, key_b = "old-key-a-" + "x" * 32, "new-key-b-" + "y" * 32
    with sessions(url).begin() as session:
        add_shop(session, Config(secret_keys=(key_a,)), "shopify", "a-shop.myshopify.com", access_token="shpat_a")
        _, woo_secret = add_shop(session, Config(secret_keys=(key_a,)), "woocommerce", STORE_A,
                                 consumer_key="ck_a", consumer_secret="cs_a")

    def read(*keys):
        with sessions(url)() as session:
            return {(s.credentials.get("access_token", ""), s.credentials.get("consumer_key", ""),
                     s.credentials.get("consumer_secret", ""), s.webhook_secrets)
                    for s in (to_shop(r, Config(secret_keys=keys)) for r in session.scalars(select(ShopRow)))}

    def rotate(keys: str):
        return CliRunner().invoke(main, ["secrets", "rotate"], env={"DATABASE_URL": url, "KEEPWELL_SECRET_KEY": keys})

    expected = {("shpat_a", "", "", ()), ("", "ck_a", "cs_a", (woo_secret,))}
    assert read(key_a) == expected
    assert read(key_b, key_a) == expected  # the new key first, the old one still decrypts

    wrong = rotate(key_b)  # the old key forgotten: nothing can be rotated, nothing is changed
    assert wrong.exit_code == 1 and "2 shops' secrets cannot be decrypted" in wrong.output
    assert read(key_a) == expected

    done = rotate(f"{key_b},{key_a}")
    assert done.exit_code == 0, done.output
    assert "re-encrypted 2 shops' secrets" in done.output and "0 already used it" in done.output
    again = rotate(f"{key_b},{key_a}")  # idempotent
    assert again.exit_code == 0 and "re-encrypted 0 shops' secrets" in again.output and "2 already used it" in again.output

    assert read(key_b) == expected  # the old key can go
    with pytest.raises(secrets.SecretError, match="cannot be decrypted: is KEEPWELL_SECRET_KEY"):
        read(key_a)
