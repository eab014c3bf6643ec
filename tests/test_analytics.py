"""Analytics on generated stores with a known, planted effect, and on hand-computed examples.

The generator draws, per rule, customers split by the holdout; a touched customer orders within
the conversion window with probability p0 + X, a held-out one with p0. Orders before the decision
and after the window are noise the report must ignore. The report has to find X inside its
interval, call it significant, and call a rule without effect not significant.
"""
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from plugin.analytics import (Attribution, Holdout, Inputs, PaidOrder, Settings, Touch, Unsubscribe, build_report,
                              difference_interval, holdout_lift, mean_difference, store_kpis, two_proportion_z_test,
                              week_of)
from plugin.reports import format_table

START = datetime(2026, 6, 1, tzinfo=timezone.utc)
NOW = START + timedelta(days=120)  # every window below has closed
DAY = timedelta(days=1)
P0, X = 0.20, 0.08
ORDER_VALUE = Decimal("50.00")


def t(days: float) -> datetime:
    return START + days * DAY


def plant(inputs: Inputs, rng: random.Random, rule_id: str, n: int, holdout: float, p0: float, x: float,
          variants=(), redeem=0.5) -> None:
    """Add ``n`` customers of ``rule_id`` to ``inputs``. ``variants``: (name, redemption chance)
    pairs assigned in turn to touched customers; a converting touched customer redeems the
    touch's coupon with that chance (``redeem`` without variants)."""
    for i in range(n):
        cid = f"{rule_id}-{i}"
        key = f"shop:{rule_id}:{cid}:anchor"
        at = START + timedelta(minutes=rng.randrange(60 * 24 * 60))  # decisions over 60 days
        held = rng.random() < holdout
        variant, chance = variants[i % len(variants)] if variants and not held else (None, redeem)
        if held:
            inputs.holdouts.append(Holdout(rule_id, cid, at, key))
        else:
            inputs.touches.append(Touch(rule_id, cid, at, key, variant, coupons=1, emails=1))
        if rng.random() < (p0 if held else p0 + x):
            when = at + timedelta(minutes=rng.randrange(60, 60 * 24 * 14 - 60))
            inputs.orders.append(PaidOrder(cid, f"o-{cid}", when, ORDER_VALUE, "EUR"))
            if not held and rng.random() < chance:
                inputs.attributions.append(Attribution(rule_id, cid, f"o-{cid}", key, when, ORDER_VALUE, "EUR",
                                                       Decimal("5.00"), "CODE", variant))
        if rng.random() < 0.3:  # bought before the decision: not a conversion
            inputs.orders.append(PaidOrder(cid, f"b-{cid}", at - rng.uniform(1, 100) * DAY, Decimal("30"), "EUR"))
        if rng.random() < 0.3:  # bought after the window: not a conversion either
            inputs.orders.append(PaidOrder(cid, f"l-{cid}", at + rng.uniform(14.01, 40) * DAY, Decimal("30"), "EUR"))


def planted_store(seed: int, n: int = 4000) -> Inputs:
    rng = random.Random(seed)
    inputs = Inputs()
    plant(inputs, rng, "winback", n, holdout=0.25, p0=P0, x=X)
    plant(inputs, rng, "welcome", n, holdout=0.25, p0=P0, x=0.0)
    return inputs


# --- holdout lift -------------------------------------------------------------------------------

def test_a_planted_lift_is_recovered_within_its_interval_and_called_significant():
    report = build_report(planted_store(seed=7), now=NOW)
    lift = report.rules["winback"].lift
    assert lift.touched + lift.held_out == 4000 and lift.pending == 0
    assert 0.22 < lift.held_out / 4000 < 0.28
    assert lift.difference.contains(X)
    assert abs(lift.difference.estimate - X) < 0.03
    assert lift.significant and lift.verdict == "significant lift"
    assert lift.difference.low > 0 and lift.p_value < 0.001
    # revenue: a converted customer spends ORDER_VALUE in the window, so the truth is X * 50 per touched customer
    true_incremental = Decimal(str(X)) * ORDER_VALUE * lift.touched
    low, high = lift.incremental_revenue_interval
    assert low <= true_incremental <= high
    assert lift.incremental_revenue == (lift.revenue_per_touched - lift.revenue_per_held_out) * lift.touched
    cost = lift.discount_cost + lift.send_cost
    assert lift.roi == pytest.approx(float((lift.incremental_revenue - cost) / cost))
    assert lift.send_cost == lift.touched * Decimal("0.001")


def test_a_rule_without_effect_shows_no_significant_lift():
    report = build_report(planted_store(seed=7), now=NOW)
    lift = report.rules["welcome"].lift
    assert lift.difference.contains(0.0)
    assert not lift.significant and lift.verdict == "inconclusive"
    assert "spans 0" in lift.reason


def test_over_many_stores_the_interval_covers_the_truth_and_false_positives_are_rare():
    seeds = range(20)
    covered = detected = false_positives = 0
    for seed in seeds:
        rules = build_report(planted_store(seed), now=NOW).rules
        covered += rules["winback"].lift.difference.contains(X)
        detected += rules["winback"].lift.significant
        false_positives += rules["welcome"].lift.significant
    assert covered >= 17  # a 95% interval: about 19 of 20
    assert detected >= 19  # the power at these sizes is above 99%
    assert false_positives <= 3  # about 1 in 20 by chance


@pytest.mark.parametrize("n, holdout, x, reason", [
    (40, 0.25, 0.5, "fewer than 30 held-out customers"),  # a huge effect, too few customers to tell
    (20, 0.5, 0.3, "fewer than 30 touched customers"),
])
def test_small_samples_are_inconclusive_never_hidden(n, holdout, x, reason):
    inputs = Inputs()
    plant(inputs, random.Random(3), "vip", n, holdout=holdout, p0=P0, x=x)
    lift = build_report(inputs, now=NOW).rules["vip"].lift
    assert lift.verdict == "inconclusive" and not lift.significant
    assert reason in lift.reason
    assert lift.difference is not None and lift.touched + lift.held_out == n  # the numbers are still shown


def test_too_few_conversions_for_the_normal_approximation_are_inconclusive():
    inputs = Inputs()
    plant(inputs, random.Random(5), "rare", 400, holdout=0.5, p0=0.0, x=0.02)
    lift = build_report(inputs, now=NOW).rules["rare"].lift
    assert lift.held_out_converted == 0
    assert lift.verdict == "inconclusive" and "too few held-out customers converted" in lift.reason


def test_a_rule_without_holdout_says_so_and_open_windows_wait():
    inputs = Inputs()
    plant(inputs, random.Random(2), "welcome", 200, holdout=0.0, p0=P0, x=X)
    report = build_report(inputs, now=NOW)
    assert report.rules["welcome"].lift.verdict == "no holdout"
    # seen 5 days after the last decision, most windows are still open and are left out
    early = build_report(inputs, now=t(65)).rules["welcome"].lift
    assert early.pending > 0 and early.touched + early.pending == 200


def test_conversion_counts_only_uncancelled_orders_inside_the_window_and_revenue_is_net():
    touches = [Touch("r", f"t{i}", t(0), f"k{i}", coupons=0, emails=1) for i in range(4)]
    holdouts = [Holdout("r", f"h{i}", t(0), f"hk{i}") for i in range(4)]
    orders = [
        PaidOrder("t0", "1", t(1), Decimal("100"), "EUR"),  # converted, 100
        PaidOrder("t1", "2", t(13.9), Decimal("80"), "EUR", refunded=Decimal("30")),  # converted, net 50
        PaidOrder("t2", "3", t(2), Decimal("60"), "EUR", cancelled=True),  # cancelled: not converted
        PaidOrder("t3", "4", t(14.5), Decimal("70"), "EUR"),  # after the 14-day window
        PaidOrder("h0", "5", t(-1), Decimal("90"), "EUR"),  # before the decision
        PaidOrder("h1", "6", t(3), Decimal("40"), "EUR"),  # converted, 40
    ]
    lift = holdout_lift("r", touches, holdouts, orders, [], NOW, Settings(min_group=1))
    assert (lift.touched_converted, lift.touched, lift.held_out_converted, lift.held_out) == (2, 4, 1, 4)
    assert lift.revenue_per_touched == Decimal("37.5") and lift.revenue_per_held_out == Decimal("10")
    assert lift.incremental_revenue == Decimal("110")  # (37.5 - 10) * 4
    # no discounts; four emails at 0.001: ROI = (110 - 0.004) / 0.004
    assert lift.send_cost == Decimal("0.004")
    assert lift.roi == pytest.approx((110 - 0.004) / 0.004)
    # a 7-day window sees t1's order on day 13.9 no more
    week = holdout_lift("r", touches, holdouts, orders, [], NOW, Settings(window=7 * DAY, min_group=1))
    assert week.touched_converted == 1


def test_statistics_match_hand_computed_values():
    # 60/100 vs 40/100: pooled p = 0.5, se = sqrt(0.25 * 0.02), z = 2.828, two-sided p = 0.00468
    z, p = two_proportion_z_test(60, 100, 40, 100)
    assert z == pytest.approx(2.8284, abs=1e-4) and p == pytest.approx(0.00468, abs=1e-5)
    # Wald: se = sqrt(.6*.4/100 + .4*.6/100) = 0.069282; half-width 1.959964 * se = 0.135790
    ci = difference_interval(60, 100, 40, 100)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((0.2, 0.064210, 0.335790), abs=1e-5)
    d, low, high, p = mean_difference([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0])
    # se = sqrt(1.6667 / 4 + 0 / 4) = 0.6455; z = 2.3238; half-width 1.959964 * se = 1.2652
    assert (d, low, high, p) == pytest.approx((1.5, 0.2348, 2.7652, 0.0201), abs=1e-4)


# --- A/B variants -------------------------------------------------------------------------------

def variant_store(seed: int, ten: float, fifteen: float, n: int = 4000) -> Inputs:
    inputs = Inputs()
    plant(inputs, random.Random(seed), "thanks", n, holdout=0.1, p0=0.5, x=0.0,
          variants=(("ten", ten), ("fifteen", fifteen)))
    return inputs


def test_a_planted_redemption_difference_picks_the_winner():
    cmp = build_report(variant_store(11, ten=0.30, fifteen=0.45), now=NOW).rules["thanks"].variants
    assert cmp.winner == "fifteen" and cmp.verdict == "fifteen wins on redemption"
    redemption = next(m for m in cmp.tests if m.metric == "redemption")
    assert redemption.winner == "fifteen" and redemption.p_value < 0.001
    stats = {v.variant: v for v in cmp.variants}
    assert stats["fifteen"].redemption_rate > stats["ten"].redemption_rate
    # both variants convert alike (the planted difference is in redemption only)
    conversion = next(m for m in cmp.tests if m.metric == "conversion")
    assert conversion.winner is None and conversion.verdict == "no winner yet"
    assert all(v.roi is not None and v.incremental_revenue is not None for v in cmp.variants)


def test_equal_variants_have_no_winner_yet():
    winners = 0
    for seed in range(20):
        cmp = build_report(variant_store(seed, ten=0.4, fifteen=0.4, n=2000), now=NOW).rules["thanks"].variants
        if cmp.winner is None:
            assert cmp.verdict == "no winner yet"
            assert "not significantly" in next(m for m in cmp.tests if m.metric == "redemption").reason
        winners += cmp.winner is not None
    assert winners <= 3  # a 5% test: about 1 store in 20 by chance


def test_a_big_difference_on_little_data_is_no_winner_yet():
    cmp = build_report(variant_store(1, ten=0.1, fifteen=0.9, n=40), now=NOW).rules["thanks"].variants
    assert cmp.winner is None and cmp.verdict == "no winner yet"
    assert "not enough data" in next(m for m in cmp.tests if m.metric == "redemption").reason


# --- rule summaries, funnel, store KPIs ---------------------------------------------------------

def hand_store() -> Inputs:
    """Two rules, five customers, every number checkable by hand (see the test)."""
    return Inputs(
        touches=[
            Touch("welcome", "a", t(0), "w-a", coupons=1, emails=1),
            Touch("welcome", "b", t(1), "w-b", coupons=1, emails=1),
            Touch("welcome", "c", t(8), "w-c", coupons=1, emails=0),  # the email was not sent
            Touch("welcome", "d", t(9), "w-d", coupons=0, emails=0),  # the coupon failed
            Touch("news", "a", t(20), "n-a", emails=1),  # an email without a coupon
            Touch("news", "e", t(20), "n-e", emails=1),
            Touch("news", "e", t(40), "n-e2", emails=1),  # before the period's end, after e's order
            Touch("welcome", "z", t(-5), "w-z", coupons=1, emails=1),  # before the period
        ],
        holdouts=[Holdout("welcome", "h", t(2), "w-h")],
        orders=[
            PaidOrder("a", "1", t(3), Decimal("100.00"), "EUR"),
            PaidOrder("b", "2", t(4), Decimal("60.00"), "EUR", refunded=Decimal("60.00")),
            PaidOrder("c", "3", t(10), Decimal("40.00"), "EUR", cancelled=True),
            PaidOrder("a", "4", t(25), Decimal("30.00"), "EUR"),  # 5 days after news: influenced
            PaidOrder("e", "5", t(38), Decimal("20.00"), "EUR"),  # 18 days after news, before the next: not influenced
            PaidOrder("z", "6", t(-4), Decimal("10.00"), "EUR"),
        ],
        attributions=[
            Attribution("welcome", "a", "1", "w-a", t(3), Decimal("100.00"), "EUR", Decimal("11.11")),
            Attribution("welcome", "b", "2", "w-b", t(4), Decimal("60.00"), "EUR", Decimal("6.67"), refunded=Decimal("60.00")),
            Attribution("welcome", "c", "3", "w-c", t(10), Decimal("40.00"), "EUR", Decimal("4.44"), cancelled=True),
            Attribution("welcome", "z", "6", "w-z", t(-4), Decimal("10.00"), "EUR", Decimal("1.11")),
        ],
        unsubscribes=[Unsubscribe("b", t(2)), Unsubscribe("e", t(21)), Unsubscribe("z", t(-1))],
    )


def test_rule_summaries_add_up_by_hand():
    report = build_report(hand_store(), since=t(0), until=t(45), now=t(60))
    assert report.currency == "EUR" and list(report.rules) == ["news", "welcome"]
    w = report.rules["welcome"]
    assert (w.touches, w.customers_reached, w.coupons_issued, w.coupons_redeemed) == (4, 4, 3, 3)
    assert w.redemption_rate == 1.0 and w.attributed_orders == 3
    assert (w.refunded_orders, w.cancelled_orders) == (1, 1)
    assert w.attributed_revenue == Decimal("200.00")
    assert w.attributed_net_revenue == Decimal("100.00")  # b refunded in full, c cancelled
    assert w.discount_cost == Decimal("17.78")  # the cancelled order's discount was never given
    assert w.emails_sent == 2 and w.send_cost == Decimal("0.002")
    assert w.unsubscribes == 1  # b, after the welcome email; z's touch is before the period
    assert w.held_out == 1 and w.lift.verdict == "inconclusive"
    n = report.rules["news"]
    assert (n.touches, n.customers_reached, n.emails_sent, n.coupons_issued) == (3, 2, 3, 0)
    assert n.redemption_rate is None
    assert n.unsubscribes == 1  # e, the day after the news email
    assert (n.influenced_customers, n.influenced_revenue) == (1, Decimal("30.00"))  # a's order 4, not e's
    assert n.lift.verdict == "no holdout"


def test_weekly_funnel_counts_by_the_week_of_the_touch():
    report = build_report(hand_store(), since=t(0), until=t(45), now=t(60))
    assert week_of(t(0)) == "2026-06-01" and week_of(t(6.9)) == "2026-06-01" and week_of(t(7)) == "2026-06-08"
    rows = [(w.week, w.touched, w.coupons_issued, w.redeemed, w.revenue) for w in report.funnel["welcome"]]
    assert rows == [("2026-06-01", 2, 2, 2, Decimal("160.00")), ("2026-06-08", 2, 1, 1, Decimal("40.00"))]
    assert [(w.week, w.touched) for w in report.funnel["news"]] == [("2026-06-15", 2), ("2026-07-06", 1)]


def test_store_kpis_by_hand():
    orders = [
        PaidOrder("A", "1", t(0), Decimal("10"), "EUR"),
        PaidOrder("A", "2", t(10), Decimal("10"), "EUR"),
        PaidOrder("A", "3", t(50), Decimal("10"), "EUR"),
        PaidOrder("B", "4", t(31), Decimal("20"), "EUR"),
        PaidOrder("B", "5", t(1), Decimal("20"), "EUR"),  # out of order on purpose: B's gap is 30 days
        PaidOrder("C", "6", t(4), Decimal("5"), "EUR"),
        PaidOrder("D", "7", t(2), Decimal("8"), "EUR"),
        PaidOrder("D", "8", t(9), Decimal("8"), "EUR", cancelled=True),  # D bought once
        PaidOrder("E", "9", t(1), Decimal("40"), "EUR"),
        PaidOrder("E", "10", t(21), Decimal("40"), "EUR", refunded=Decimal("15")),
    ]
    k = store_kpis(orders, "EUR")
    assert (k.buyers, k.repeat_buyers, k.orders) == (5, 3, 9)
    assert k.repeat_purchase_rate == 0.6
    assert k.median_days_to_second_order == 20.0  # gaps 10, 30, 20
    assert k.revenue == Decimal("148")  # 30 + 40 + 5 + 8 + 40 + 25
    assert store_kpis([], "EUR").repeat_purchase_rate is None


def test_the_report_serialises_and_reads_as_a_table():
    report = build_report(planted_store(seed=7, n=600), now=NOW)
    data = json.loads(json.dumps(report.to_dict()))
    lift = data["rules"]["winback"]["lift"]
    assert set(lift["difference"]) == {"estimate", "low", "high", "confidence"}
    assert "Wald" in lift["method"] and isinstance(lift["incremental_revenue"], str)
    text = format_table(report, "shop-1")
    for heading in ("RULES", "HOLDOUT LIFT", "WEEKLY FUNNEL", "STORE", "95% Wald interval"):
        assert heading in text
    assert "winback" in text and "welcome" in text
