"""Attribution end to end on both databases: a signed WooCommerce signup gets the welcome coupon,
an order redeems it (its code typed in capitals), the worker records the attribution, a refund
shows in the report, and `keepwell report` prints it. Plus the pure parts: what a coupon cost,
which touch a shared code is credited to."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest
import responses
from click.testing import CliRunner
from sqlalchemy import text

from live import load_json, start, woo_customer, woo_order
from plugin import runtime
from plugin.attribution import coupon_discount, issuers
from plugin.cli import main
from plugin.db import AttributionRow, Base, DecisionRow, EffectRow
from plugin.events import LineItem, Money, Order

STORE = "https://store.example"
OTHER_STORE = "https://other.example"
CONSENT = {"consent_meta_key": "_keepwell_marketing_opt_in"}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    # Redis database 12, shared by the end-to-end suites: each deletes only its own keys, never FLUSHDB
    live = start(redis_server.rsplit("/", 1)[0] + "/12", url, smtp)
    yield live
    _forget(live)


def _forget(live) -> None:
    """live.stop() without its FLUSHDB: this test's queue, backlogs and jobs go; other runs' keys stay."""
    from rq.registry import (CanceledJobRegistry, DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                             ScheduledJobRegistry, StartedJobRegistry)

    r, q = live.rt.redis, live.rt.queue
    ids = set(q.get_job_ids())
    for registry in (CanceledJobRegistry, DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                     ScheduledJobRegistry, StartedJobRegistry):
        ids.update(registry(queue=q).get_job_ids())
    keys = set(r.scan_iter(match=f"*{live.config.queue}*", count=1000))
    for job_id in ids:
        keys.update(r.scan_iter(match=f"rq:*{job_id}*", count=1000))
    if keys:
        r.delete(*keys)
    r.srem("rq:queues", f"rq:queue:{live.config.queue}")
    runtime.install(None)
    engine = live.rt.sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} CASCADE"))


def _wc_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")  # WooCommerce *_gmt fields: UTC without an offset


def _welcome(live, shop_id, secret, signup: datetime) -> EffectRow:
    """A signup, then the welcome rule's delay running out: the coupon effect it issued."""
    from plugin.pipeline import sweep_timers

    live.clock.now = signup
    r = live.post_woocommerce(shop_id, secret, "customer.created", woo_customer(modified=_wc_time(signup)))
    assert r.status_code == 202, r.data
    live.work()
    live.clock.now = signup + timedelta(hours=2)  # past the delay and the sweep's grace
    sweep_timers(live.rt)
    live.work()
    decision, = live.rows(DecisionRow, shop_id=shop_id, rule_id="welcome")
    assert decision.status == "done", decision.error
    return next(e for e in live.rows(EffectRow, decision_key=decision.key) if e.type == "coupon")


def _report(live, shop_id, *args):
    result = CliRunner().invoke(main, ["report", "--shop", shop_id, *args],
                                env={"DATABASE_URL": live.config.database_url})
    assert result.exit_code == 0, result.output
    return result.output


@responses.activate
def test_a_redeemed_welcome_coupon_is_attributed_once_and_reported(live):
    # the report's clock is the real one: the story happened a few days ago
    signup = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3)
    ordered = signup + timedelta(days=1)
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings=CONSENT)
    responses.post(f"{STORE}/wp-json/wc/v3/coupons",
                   json=load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json"), status=201)
    responses.get(f"{STORE}/wp-json/wc/v3/products", json=[])  # the order's products, deleted since
    coupon = _welcome(live, shop_id, secret, signup)
    assert coupon.status == "done" and coupon.coupon_code.startswith("WELCOME-")
    decision, = live.rows(DecisionRow, rule_id="welcome")

    live.clock.now = ordered + timedelta(minutes=2)
    order = woo_order(order_id=727, modified=_wc_time(ordered), total="64.90", coupons=(coupon.coupon_code.upper(),))
    r = live.post_woocommerce(shop_id, secret, "order.created", order)
    assert r.status_code == 202, r.data
    live.work()

    row, = live.rows(AttributionRow, shop_id=shop_id)
    assert (row.order_id, row.customer_id, row.decision_key, row.rule_id) == ("727", "25", decision.key, "welcome")
    assert row.coupon_code == coupon.coupon_code and row.variant is None
    assert (row.revenue, row.currency) == (Decimal("64.90"), "USD")
    # 10% off: the line totals after the coupon come to 18.00, so the goods cost 20.00 and the coupon 2.00
    assert row.discount == Decimal("2.00")
    assert row.ordered_at == ordered

    # the store re-sends the order later, now partly refunded and with the code as WooCommerce writes it
    updated = dict(order, date_modified_gmt=_wc_time(ordered + timedelta(hours=5)),
                   coupon_lines=[{"id": 1, "code": coupon.coupon_code.lower(), "discount": "2.00", "discount_tax": "0"}],
                   refunds=[{"id": 801, "reason": "damaged", "total": "-20.00"}])
    r = live.post_woocommerce(shop_id, secret, "order.updated", updated)
    assert r.status_code == 202, r.data
    live.work()
    assert len(live.rows(AttributionRow, shop_id=shop_id)) == 1  # one per order and decision

    data = json.loads(_report(live, shop_id, "--format", "json"))
    welcome = data["rules"]["welcome"]
    assert (welcome["coupons_issued"], welcome["coupons_redeemed"], welcome["attributed_orders"]) == (1, 1, 1)
    assert welcome["attributed_revenue"] == "64.90" and welcome["attributed_net_revenue"] == "44.90"
    assert welcome["refunded_orders"] == 1 and welcome["discount_cost"] == "2.00"
    assert welcome["emails_sent"] == 1 and welcome["redemption_rate"] == 1.0
    assert welcome["lift"]["verdict"] == "no holdout"
    assert data["currency"] == "USD" and data["store"]["buyers"] == 1
    assert data["funnel"]["welcome"][0]["redeemed"] == 1

    table = _report(live, shop_id, "--since", (signup - timedelta(days=1)).date().isoformat(), "--window", "7d")
    line = next(row for row in table.splitlines() if row.strip().startswith("welcome"))
    assert "64.90" in line and "44.90" in line and "100.0%" in line
    assert "welcome: 1 refunded, 0 cancelled" in table
    # a period after the touch has nothing in it
    later = _report(live, shop_id, "--since", (ordered + timedelta(days=1)).isoformat())
    assert "No touches or holdouts in this period." in later


@responses.activate
def test_codes_of_other_shops_and_foreign_codes_are_not_attributed(live):
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings=CONSENT)
    other_id, other_secret = live.add_shop("woocommerce", OTHER_STORE, consumer_key="ck_o", consumer_secret="cs_o",
                                           settings=CONSENT)
    created = load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json")
    responses.post(f"{STORE}/wp-json/wc/v3/coupons", json=created, status=201)
    responses.post(f"{OTHER_STORE}/wp-json/wc/v3/coupons", json=created, status=201)
    for store in (STORE, OTHER_STORE):
        responses.get(f"{store}/wp-json/wc/v3/products", json=[])  # the orders' products, deleted since
    code = _welcome(live, shop_id, secret, now).coupon_code

    paid = _wc_time(now + timedelta(hours=3))
    # the same code typed at another Keepwell shop, and a store-wide promo code here
    live.post_woocommerce(other_id, other_secret, "order.created", woo_order(order_id=900, modified=paid, coupons=(code,)))
    live.post_woocommerce(shop_id, secret, "order.created", woo_order(order_id=901, modified=paid, coupons=("SUMMER10",)))
    live.work()
    assert live.rows(AttributionRow) == []


def test_the_report_reads_touches_holdouts_effects_states_and_unsubscribes(tmp_path):
    from plugin.db import CustomerRow, ShopRow, UnsubscribeRow, sessions, upgrade
    from plugin.reports import load_inputs, shop_report

    url = f"sqlite:///{tmp_path}/report.db"
    upgrade(url)
    at = datetime(2026, 9, 1, 12, tzinfo=timezone.utc)
    with sessions(url).begin() as session:
        session.add(ShopRow(id="s1", platform="woocommerce", domain=STORE, api_url=STORE, secrets=""))
        session.flush()

        def decision(key, cid, kind, reason=None, variant=None):
            session.add(DecisionRow(shop_id="s1", key=key, rule_id="thanks", customer_id=cid, kind=kind, reason=reason,
                                    status="done", event_id="e", decision={"at": at.isoformat(), "variant": variant}))

        decision("k-a", "a", "touch", variant="fifteen")
        decision("k-b", "b", "touch", variant="ten")
        decision("k-h", "h", "suppressed", reason="holdout")
        decision("k-c", "c", "suppressed", reason="cap")  # neither touched nor held out
        for key, cid, kind, status in [("k-a:0", "a", "coupon", "done"), ("k-a:1", "a", "email", "done"),
                                       ("k-b:0", "b", "coupon", "failed"), ("k-b:1", "b", "email", "skipped")]:
            session.add(EffectRow(shop_id="s1", key=key, decision_key=key[:3], customer_id=cid, type=kind, status=status,
                                  coupon_code="THANKS-X" if kind == "coupon" else None))
        orders = [{"id": "o1", "at": (at + timedelta(days=2)).isoformat(), "total": "80.00", "currency": "EUR",
                   "paid": True, "cancelled": False, "refunds": [["r1", "30.00"]]},
                  {"id": "o2", "at": (at + timedelta(days=3)).isoformat(), "total": "15.00", "currency": "EUR",
                   "paid": False, "cancelled": False, "refunds": []}]  # not paid: not an order for the report
        session.add(CustomerRow(shop_id="s1", customer_id="a", state={"orders": orders}))
        session.add(AttributionRow(shop_id="s1", order_id="o1", customer_id="a", decision_key="k-a", rule_id="thanks",
                                   variant="fifteen", coupon_code="THANKS-X", revenue=Decimal("80.00"), currency="EUR",
                                   discount=Decimal("12.00"), ordered_at=at + timedelta(days=2)))
        session.add(UnsubscribeRow(shop_id="s1", customer_id="a", at=at + timedelta(hours=1)))

    with sessions(url)() as session:
        inputs = load_inputs(session, "s1")
        report = shop_report(session, "s1", now=at + timedelta(days=30))
    assert sorted((t.customer_id, t.variant, t.coupons, t.emails) for t in inputs.touches) == [
        ("a", "fifteen", 1, 1), ("b", "ten", 0, 0)]
    assert [(h.customer_id, h.at) for h in inputs.holdouts] == [("h", at)]
    assert [(o.order_id, o.refunded, o.net) for o in inputs.orders] == [("o1", Decimal("30.00"), Decimal("50.00"))]
    attribution, = inputs.attributions
    assert attribution.refunded == Decimal("30.00") and attribution.net == Decimal("50.00")
    thanks = report.rules["thanks"]
    assert (thanks.customers_reached, thanks.coupons_issued, thanks.coupons_redeemed, thanks.emails_sent) == (2, 1, 1, 1)
    assert (thanks.held_out, thanks.unsubscribes, thanks.refunded_orders) == (1, 1, 1)
    assert thanks.attributed_net_revenue == Decimal("50.00") and thanks.discount_cost == Decimal("12.00")
    assert thanks.lift.verdict == "inconclusive" and thanks.variants.verdict == "no winner yet"
    assert report.to_dict()["send_cost"] == "0.001"


# --- the pure parts -----------------------------------------------------------------------------

def _order(subtotal: str | None, total: str = "50.00", lines=()) -> Order:
    return Order(id="1", total=Money(Decimal(total), "EUR"),
                 subtotal=Money(Decimal(subtotal), "EUR") if subtotal is not None else None,
                 line_items=tuple(LineItem(str(i), q, Money(Decimal(p), "EUR")) for i, (q, p) in enumerate(lines)))


@pytest.mark.parametrize("action, order, cost", [
    ({"discount_type": "percent", "value": "10"}, _order("90.00"), "10.00"),  # 10% of 100 left 90
    ({"discount_type": "percent", "value": "25"}, _order("30.00"), "10.00"),
    ({"discount_type": "percent", "value": "100"}, _order("0.00", lines=[(2, "12.50")]), "25.00"),
    ({"discount_type": "fixed", "value": "5", "currency": "EUR"}, _order("45.00"), "5.00"),
    ({"discount_type": "fixed", "value": "20", "currency": "EUR"}, _order("0.00", lines=[(1, "12.00")]), "12.00"),  # capped
    ({"discount_type": "fixed", "value": "20", "currency": "EUR"}, _order("0.00"), "20.00"),  # no lines to cap by
    ({"discount_type": "percent", "value": "10"}, _order(None, total="45.00"), "5.00"),  # no subtotal: the total
    ({}, _order("45.00"), "0.00"),
])
def test_coupon_discount_works_the_price_back_from_the_subtotal_after_discounts(action, order, cost):
    assert coupon_discount(action, order) == Decimal(cost)


def test_a_shared_code_goes_to_the_newest_touch_before_the_order():
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)

    def eff(i, code, days):
        return SimpleNamespace(id=i, coupon_code=code, created_at=t0 + timedelta(days=days))

    effects = [eff(1, "REF1X", 0), eff(2, "ref1x", 10), eff(3, "REF1X", 30), eff(4, "WELCOME-A", 40)]
    assert [e.id for e in issuers(effects, t0 + timedelta(days=20))] == [2, 4]  # WELCOME-A was issued later
    assert [e.id for e in issuers(effects[:1], t0 - timedelta(days=1))] == [1]
