"""History import at install, end to end on SQLite and PostgreSQL with a real Redis and RQ worker:
a generated store history served in the platforms' real formats (Shopify bulk-operation JSONL,
WooCommerce pages) is folded into customer states without acting on any of it; a loyal
customer's next order is not a first order; a crash continues from the stored cursor; a
re-import changes nothing. Every GraphQL document sent is validated against the pinned schema."""
from __future__ import annotations

import gzip
import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from graphql import build_client_schema, parse as gql_parse, validate
from graphql.validation import NoDeprecatedCustomRule, specified_rules

from connectors.shopify import products as shopify_products
from connectors.woocommerce import products as woo_products
from history_store import WOO_CONSENT_KEY, BulkShopify, History, PagedWoo, utc
from live import running, work
from plugin import importing
from plugin.db import CustomerRow, DecisionRow, EffectRow, ImportRow, OrderIndexRow, ShopRow, TimerRow
from plugin.engine.state import state_from_dict

NOW = utc(2026, 12, 6, 12, 0)
#: KEEPWELL_IMPORT_ORDERS=50000 runs the full-size store (see bench/import.py for its throughput).
ORDERS = int(os.environ.get("KEEPWELL_IMPORT_ORDERS", "3000"))
DOMAIN = "history-shop.myshopify.com"
TOKEN = "shpat_history"
WOO_URL = "https://history.example"
SCHEMA = Path(__file__).resolve().parent / "fixtures" / "shopify" / "admin_schema_2026-10.json.gz"


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = NOW
        yield live


@pytest.fixture(autouse=True)
def fresh_caches():
    shopify_products.CACHE.clear()
    woo_products.LOOKUP.cache.clear()
    yield


@pytest.fixture(scope="module")
def schema():
    with gzip.open(SCHEMA) as f:
        return build_client_schema(json.load(f)["data"], assume_valid=True)


def valid(schema, document: str) -> None:
    errors = validate(schema, gql_parse(document), [*specified_rules, NoDeprecatedCustomRule])
    assert errors == [], [e.message for e in errors]


class Store:
    """One platform's store with a generated history, connected to the running Keepwell."""

    def __init__(self, live, rsps, platform: str, history: History, tmp_path):
        self.live, self.platform, self.history = live, platform, history
        if platform == "shopify":
            self.shop_id, _ = live.add_shop("shopify", DOMAIN, access_token=TOKEN)
            self.api = BulkShopify(rsps, DOMAIN, TOKEN, history, tmp_path)
        else:
            self.shop_id, self.secret = live.add_shop("woocommerce", WOO_URL, consumer_key="ck_h", consumer_secret="cs_h",
                                                      settings={"consent_meta_key": WOO_CONSENT_KEY})
            self.api = PagedWoo(rsps, WOO_URL, history)

    def customer_id(self, c: int) -> str:
        return str(self.history.shopify_customer_id(c)) if self.platform == "shopify" else str(c)

    def order_id(self, i: int) -> str:
        return str(self.history.shopify_order_id(i)) if self.platform == "shopify" else str(10_000 + i)

    def state(self, c: int):
        (row,) = self.live.rows(CustomerRow, shop_id=self.shop_id, customer_id=self.customer_id(c))
        return state_from_dict(row.state)

    def states(self) -> dict:
        return {r.customer_id: r.state for r in self.live.rows(CustomerRow, shop_id=self.shop_id)}

    def run(self, **kw):
        return importing.run(self.live.rt, self.shop_id, wait=True, **kw)


@pytest.fixture(params=["shopify", "woocommerce"])
def store(request, live, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # a store in its own currency, not the dollar: euros on Shopify, shekels on WooCommerce
        currency = "EUR" if request.param == "shopify" else "ILS"
        yield Store(live, rsps, request.param, History(ORDERS, NOW, currency=currency), tmp_path)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr("plugin.importing.importer.time.sleep", lambda s: None)


def full_refunds_count(platform: str) -> bool:
    """Whether the state fold counts a paid order refunded in full as a purchase (the refund policy
    of plugin.engine.state; WooCommerce never reports such an order paid)."""
    from plugin.engine.state import OrderSummary

    refunded = OrderSummary("1", NOW, Decimal(10), "EUR", paid=True, refunds=(("r", Decimal(10)),))
    return platform == "shopify" and refunded.counts


def expected(store, c: int) -> dict:
    return store.history.expected(c, full_refunds_count(store.platform))


def check_states(store: Store, sample=range(1, 40)) -> None:
    h = store.history
    for c in sample:
        want, s = expected(store, c), store.state(c)
        assert s.orders_count == want["orders_count"], c
        if want["orders_count"]:
            assert s.total_spent.amount == want["spent"] and s.total_spent.currency == h.currency, c
            assert s.last_order_id == store.order_id(want["last"]), c
        email = h.shopify_email(c) if store.platform == "shopify" else h.email(c)
        # the consent the store holds now, whatever box was ticked on an older order
        assert s.accepts_marketing is (h.consent(c) and email is not None), c
        assert s.email == email and s.signed_up_at == h.signed_up(c).replace(microsecond=0), c
        assert (s.first_name, s.last_name) == (h.first_name(c), h.last_name(c)), c


def indexed_orders(store: Store) -> int:
    h = store.history
    return sum(1 for i in range(h.orders)
               if h.status(i) != "pending" and not (h.guest(i) and store.platform == "shopify"))


def test_the_past_is_folded_in_and_nothing_is_sent(store, schema):
    result = store.run()
    h = store.history
    assert (result.status, result.customers, result.orders) == ("done", h.customers, h.orders)
    states = store.states()
    guests = h.guest_states(store.platform)
    assert len(states) == h.customers + len(guests) and guests <= set(states)
    assert guests or store.platform == "shopify"
    check_states(store)
    # order index rows: a refund arriving later finds its customer
    assert len(store.live.rows(OrderIndexRow, shop_id=store.shop_id)) == indexed_orders(store)
    # nothing acted on: no ledger row, no effect, no mail, no store write
    assert store.live.rows(DecisionRow, shop_id=store.shop_id) == []
    assert store.live.rows(EffectRow, shop_id=store.shop_id) == []
    work(store.live)
    assert store.live.smtp.messages == []
    (imp,) = store.live.rows(ImportRow, shop_id=store.shop_id)
    assert (imp.status, imp.orders, imp.cursor) == ("done", h.orders, {"phase": "done"})
    (shop,) = store.live.rows(ShopRow, id=store.shop_id)
    assert shop.last_sync_at == NOW  # reconciliation continues from the import
    if store.platform == "shopify":
        ops = [op for op, _ in store.api.calls]
        assert ops.count("KeepwellHistory") == 2 and store.api.downloads == 2
        for body in store.api.bodies:
            valid(schema, body["query"])
            if "variables" in body and "query" in body["variables"]:
                valid(schema, body["variables"]["query"])  # the bulk query itself
    else:
        pages = [q for p, q in store.api.calls if p == "orders"]
        assert all(q["per_page"] == "100" for q in pages)
        assert len(pages) >= h.orders // 100


def test_quiet_import_sets_only_future_timers(store):
    store.run()
    h = store.history
    timers = store.live.rows(TimerRow, shop_id=store.shop_id)
    assert timers and all(t.wake_at > NOW for t in timers)
    lapse = [t for t in timers if ":lapse" in t.key]
    # reactivation fires 90 days after the last paid order: only customers whose last order is recent
    last = {store.customer_id(c): expected(store, c)["last"] for c in range(1, h.customers + 1)}
    last.update(h.guest_last_orders(store.platform))  # WooCommerce guests who bought are customers too
    recent = {cid for cid, i in last.items() if i is not None and h.created(i) > NOW - timedelta(days=90)}
    assert any(cid.startswith("guest:") for cid in recent) or store.platform == "shopify"
    assert {t.customer_id for t in lapse} == recent


def test_catch_up_spreads_past_lapses_over_days(store):
    from plugin.shops import install_rules, read_rule_dir
    from plugin.rulefile import RULES_DIR

    files = read_rule_dir(RULES_DIR)
    files["settings.yaml"] = files["settings.yaml"].replace("  referral_prefix: REF",
                                                            "  referral_prefix: REF\n  on_import: catch_up\n  catch_up_over: 5d")
    with store.live.rt.sessions.begin() as session:
        install_rules(session, store.shop_id, files)
    store.run()
    lapse = [t for t in store.live.rows(TimerRow, shop_id=store.shop_id) if ":lapse" in t.key]
    h = store.history
    assert len(lapse) == sum(1 for c in range(1, h.customers + 1) if expected(store, c)["last"] is not None) + \
        len(h.guest_last_orders(store.platform))
    caught_up = [t.wake_at for t in lapse if t.wake_at <= NOW + timedelta(days=5)]
    assert len(caught_up) > len(lapse) / 2
    assert min(caught_up) >= NOW and max(caught_up) - min(caught_up) > timedelta(days=3)


def test_a_loyal_customers_next_order_is_not_a_first_order(store):
    from plugin.engine.fields import FIELDS, Context
    from plugin.events import Event, Money, Order
    from plugin.pipeline import process_event

    store.run()

    def paid(order_id: str, cid: str) -> Event:
        order = Order(id=order_id, total=Money(Decimal("30.00"), store.history.currency), created_at=NOW)
        return Event(id=f"live:{order_id}", type="order.paid", shop=store.shop_id, customer_id=cid, occurred_at=NOW,
                     order=order)

    def icebreaker_timers(cid: str) -> list:
        return [t for t in store.live.rows(TimerRow, shop_id=store.shop_id, customer_id=cid) if ":icebreaker:" in t.key]

    loyal = next(c for c in range(1, 40) if expected(store, c)["orders_count"] >= 3)
    cid, event = store.customer_id(loyal), paid("990001", store.customer_id(loyal))
    process_event(store.live.rt, store.shop_id, event)
    state = store.state(loyal)
    assert state.orders_count == expected(store, loyal)["orders_count"] + 1
    assert FIELDS["order.is_first"].get(Context(event, state, NOW)) is False
    assert icebreaker_timers(cid) == []
    # the control: a customer the store never saw before does start the icebreaker's delay
    process_event(store.live.rt, store.shop_id, paid("990002", "424242"))
    assert len(icebreaker_timers("424242")) == 1


def test_a_crash_mid_import_continues_where_it_stopped_and_a_reimport_changes_nothing(store, monkeypatch):
    from plugin.importing import fold, importer as run_module

    real = run_module._commit
    commits = {"n": 0}

    def crash_on_fourth(*args):
        commits["n"] += 1
        if commits["n"] == 4:
            raise KeyboardInterrupt("the worker was killed")
        return real(*args)

    monkeypatch.setattr(run_module, "BATCH", 500)  # several batches, so the crash falls mid-way
    monkeypatch.setattr(fold, "KEEP", 100)  # and states dropped from memory between them, read back
    monkeypatch.setattr(run_module, "_commit", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        store.run()
    monkeypatch.setattr(run_module, "_commit", real)
    (imp,) = store.live.rows(ImportRow, shop_id=store.shop_id)
    assert imp.status == "running" and imp.cursor
    partial = len(store.states())
    resumed = store.run()
    assert resumed.status == "done"
    check_states(store)
    first = store.states()
    assert 0 < partial <= len(first)
    timers = sorted((t.key, t.wake_at) for t in store.live.rows(TimerRow, shop_id=store.shop_id))

    again = store.run()
    assert again.status == "done"
    assert store.states() == first
    assert sorted((t.key, t.wake_at) for t in store.live.rows(TimerRow, shop_id=store.shop_id)) == timers
    assert store.live.rows(DecisionRow, shop_id=store.shop_id) == []


def test_the_install_job_holds_live_webhooks_until_the_past_is_in(live, tmp_path):
    """The job started at install waits for Shopify's bulk operation (re-enqueued, not sleeping);
    a loyal customer's order arriving meanwhile waits in the backlog, then is not a first order."""
    from live import backlog, run_scheduled, scheduled, shopify_order
    from plugin.importing import is_importing

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "shopify", History(ORDERS, NOW), tmp_path)
        importing.enqueue(live.rt.queue, store.shop_id)
        work(live)
        assert [op for op, _ in store.api.calls] == ["KeepwellHistory", "KeepwellHistoryStatus"]
        assert len(scheduled(live, "plugin.jobs.import_history")) == 1 and is_importing(live.rt, store.shop_id)

        loyal = next(c for c in range(1, 40) if expected(store, c)["orders_count"] >= 3)
        cid = store.customer_id(loyal)
        r = live.post_shopify("orders/paid", shopify_order(990003, cid, NOW, currency="EUR", total="25.00",
                                                           email=store.history.email(loyal)), DOMAIN)
        assert r.status_code == 202
        work(live)
        assert backlog(live, store.shop_id) == 1  # held while the import runs

        while scheduled(live, "plugin.jobs.import_history"):
            run_scheduled(live, "plugin.jobs.import_history")
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert imp.status == "done" and not is_importing(live.rt, store.shop_id)
        run_scheduled(live, "plugin.jobs.drain")
        assert backlog(live, store.shop_id) == 0
        assert store.state(loyal).orders_count == expected(store, loyal)["orders_count"] + 1
        assert [t for t in live.rows(TimerRow, shop_id=store.shop_id, customer_id=cid) if ":icebreaker:" in t.key] == []
        assert live.rows(DecisionRow, shop_id=store.shop_id, rule_id="icebreaker") == []


def test_cli_import_simulate_and_dashboard(live, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from plugin.admin_auth import admin_link
    from plugin.cli import main

    url = live.rt.sessions.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("REDIS_URL", live.config.redis_url)
    monkeypatch.setenv("KEEPWELL_QUEUE", live.config.queue)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", live.config.secret_key)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "woocommerce", History(600, NOW), tmp_path)
        r = CliRunner().invoke(main, ["shop", "import", "--shop", store.shop_id], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"shop {store.shop_id}: imported 120 customers and 600 orders" in r.output
    assert "nothing was sent for the past" in r.output

    r = CliRunner().invoke(main, ["simulate", "--shop", store.shop_id, "--format", "json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["customers"] == 120 + len(store.history.guest_states("woocommerce")) and report["events"] > 600
    assert report["rules"]["icebreaker"]["touches"] > 0  # the replay acts on the past; the import did not
    assert live.rows(DecisionRow, shop_id=store.shop_id) == []

    r = CliRunner().invoke(main, ["shop", "import", "--shop", "nope"])
    assert r.exit_code == 1 and "no shop 'nope'" in r.output

    client = live.app.test_client()
    link = admin_link(live.config, store.shop_id, 60)
    client.get(link.split("keepwell.test", 1)[1])
    page = client.get("/admin").get_data(as_text=True)
    assert "Store history imported: 120 customers and 600 of 600 orders" in page


def test_shopify_bulk_operations_refused_failed_canceled_or_expired_are_asked_again(live, tmp_path, monkeypatch):
    """The states and errors shopify.dev documents for bulk queries: a run refused while the app's
    operations are busy (OPERATION_IN_PROGRESS, LIMIT_REACHED) is asked again later; an operation
    that FAILED (INTERNAL_SERVER_ERROR, TIMEOUT) or was CANCELED is started again; a crash after
    which the stored operation's result EXPIRED starts it again. The states end the same."""
    from plugin.importing import importer as run_module

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "shopify", History(600, NOW), tmp_path)
        api = store.api
        api.refusals = ["OPERATION_IN_PROGRESS", "LIMIT_REACHED"]
        api.endings["customers"] = [["FAILED:INTERNAL_SERVER_ERROR"], ["CANCELING", "CANCELED"]]
        api.endings["orders"] = [["FAILED:TIMEOUT"]]
        result = store.run()
        assert (result.status, result.customers, result.orders) == ("done", 120, 600)
        check_states(store)
        kinds = [o["kind"] for o in api.operations.values()]
        assert kinds == ["customers", "customers", "customers", "orders", "orders"]
        assert list(api.operations.values())[1]["polls"] == 3  # RUNNING, CANCELING (waited for), CANCELED
        assert [op for op, _ in api.calls].count("KeepwellHistory") == 2 + 5  # the two refusals asked again
        assert api.downloads == 2  # only completed operations' results are read
        first = store.states()

        # a crash part-way, and when the import continues the operation's result has expired
        real, commits = run_module._commit, {"n": 0}

        def crash_on_third(*args):
            commits["n"] += 1
            if commits["n"] == 3:
                raise KeyboardInterrupt("the worker was killed")
            return real(*args)

        monkeypatch.setattr(run_module, "BATCH", 150)
        monkeypatch.setattr(run_module, "_commit", crash_on_third)
        with pytest.raises(KeyboardInterrupt):
            store.run()
        monkeypatch.setattr(run_module, "_commit", real)
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert imp.status == "running" and imp.cursor.get("op") in api.operations
        api.expire()
        started = len(api.operations)
        assert store.run().status == "done"
        assert len(api.operations) > started  # asked again, not read from the expired one
    assert store.states() == first
    assert live.rows(DecisionRow, shop_id=store.shop_id) == []


def test_shopify_access_denied_fails_the_import_with_its_reason_and_a_rerun_completes_it(live, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "shopify", History(600, NOW), tmp_path)
        store.api.endings["orders"] = [["FAILED:ACCESS_DENIED"]]
        result = store.run()
        assert result.status == "failed" and "ACCESS_DENIED" in result.detail
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert imp.status == "failed" and "ACCESS_DENIED" in imp.error and imp.customers == 120
        assert [o["kind"] for o in store.api.operations.values()] == ["customers", "orders"]  # not asked again
        from plugin.importing.status import describe
        assert describe(imp).startswith("The history import stopped after 120 customers and 0 orders: Shopify's orders")

        again = store.run()  # e.g. once the merchant granted the access
        assert (again.status, again.orders) == ("done", 600)
        check_states(store)


def test_woocommerce_orders_changed_during_the_import_are_read_again_none_skipped(live, tmp_path):
    """Orders are walked oldest change first from the newest change folded (modified_after): a
    bulk edit that touches 250 orders in one second while the import runs (more than two pages
    changed at the same moment), and pending orders paid meanwhile, are all read (again), none
    twice in a way that counts twice, none skipped."""
    h = History(600, NOW)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "woocommerce", h, tmp_path)
        edit = NOW - timedelta(hours=1)
        pending = [i for i in range(h.orders) if h.status(i) == "pending" and not h.guest(i)][:3]
        bulk = [i for i in range(250) if h.status(i) != "pending"][:250]

        def merchant_edits():
            for i in bulk + pending:
                store.api.changed[i] = edit
            store.api.paid.update(pending)

        store.api.meanwhile = (3, merchant_edits)  # after three pages of orders
        result = store.run()
        assert result.status == "done" and result.orders >= h.orders + len(bulk) + len(pending)
        from plugin.importing.status import describe
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert describe(imp).startswith("Store history imported: 120 customers and 600 of 600 orders")
    after = [q.get("modified_after") for p, q in store.api.calls if p == "orders"]
    assert after[0] is None and "2026-12-06T10:59:59" in after  # resumed one second before the edit
    check_states(store, sample=[c for c in range(1, 40) if all(h.customer_of(i) != c for i in pending)])
    for i in pending:  # paid while the import ran: one more purchase, counted once
        c = h.customer_of(i)
        assert store.state(c).orders_count == expected(store, c)["orders_count"] + 1
        assert str(10_000 + i) in store.state(c).orders
    assert len(live.rows(OrderIndexRow, shop_id=store.shop_id)) == indexed_orders(store) + len(pending)


def test_a_woocommerce_checkout_opt_in_is_not_repeated_by_a_later_refund_or_cancellation():
    from connectors.base import Shop
    from connectors.woocommerce.parse import parse

    h = History(600, NOW)
    i = next(i for i in range(h.orders) if h.ticked(i) and h.status(i) == "partially_refunded" and not h.guest(i))
    shop = Shop(id="wo_1", platform="woocommerce", domain=WOO_URL, api_url=WOO_URL, credentials={"consumer_key": "ck", "consumer_secret": "cs"},
                settings={"consent_meta_key": WOO_CONSENT_KEY})
    order = h.woo_order(i)
    order["line_items"] = [dict(li, product_id=0) for li in order["line_items"]]  # no product lookup
    events = {e.type: e for e in parse(shop, "order.updated", order)}
    assert set(events) == {"order.paid", "order.refunded"}
    assert events["order.paid"].customer.accepts_marketing is True  # given at checkout
    assert events["order.refunded"].customer.accepts_marketing is None  # dated by the order's later change
    assert events["order.refunded"].occurred_at > events["order.paid"].occurred_at


def test_an_import_whose_worker_died_is_continued_by_the_minutely_tick(live, tmp_path, monkeypatch):
    from plugin import jobs
    from plugin.importing import importer as run_module
    from plugin.importing import is_importing

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = Store(live, rsps, "woocommerce", History(600, NOW), tmp_path)
        real, commits = run_module._commit, {"n": 0}

        def killed_on_third(*args):
            commits["n"] += 1
            if commits["n"] == 3:
                raise KeyboardInterrupt("the worker was killed")
            return real(*args)

        monkeypatch.setattr(run_module, "BATCH", 150)
        monkeypatch.setattr(run_module, "_commit", killed_on_third)
        with pytest.raises(KeyboardInterrupt):
            store.run()
        monkeypatch.setattr(run_module, "_commit", real)
        with live.rt.sessions.begin() as session:  # reconciliation is not due: only the import is at stake
            session.get(ShopRow, store.shop_id).last_sync_at = NOW
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert imp.status == "running" and not is_importing(live.rt, store.shop_id)

        assert jobs.tick()["imports"] == 1
        assert jobs.tick()["imports"] == 0  # one job, however many ticks run this minute
        work(live)
        (imp,) = live.rows(ImportRow, shop_id=store.shop_id)
        assert (imp.status, imp.orders) == ("done", 600)
        check_states(store)
        live.clock.now = NOW + timedelta(minutes=1)
        assert jobs.tick()["imports"] == 0  # done: nothing to continue
