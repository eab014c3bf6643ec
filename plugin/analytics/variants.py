"""A/B variants: per-variant outcomes of one rule and whether one variant wins."""
from __future__ import annotations

import statistics
from collections import defaultdict

from plugin.analytics.inputs import ZERO, Settings, Touch, as_index, same_currency, send_cost
from plugin.analytics.lift import first_decisions, window_revenue
from plugin.analytics.results import MetricComparison, VariantComparison, VariantStats
from plugin.analytics.statistics import MIN_EVENTS, mean_difference, too_few, two_proportion_z_test


def compare_variants(rule_id, touches, holdouts, orders, attributions, now, settings: Settings) -> VariantComparison:
    """Per-variant outcomes of one rule, and whether one variant wins (see the module doc)."""
    orders = as_index(orders)
    window = settings.window
    first: dict[str, Touch] = {}
    for t in sorted((t for t in touches if t.variant), key=lambda t: (t.at, t.key)):
        first.setdefault(t.customer_id, t)
    redeemed_keys = {a.decision_key for a in attributions}
    attr_by_key = defaultdict(list)
    for a in attributions:
        attr_by_key[a.decision_key].append(a)
    # the holdout is the shared control for every variant's incremental revenue
    control = [window_revenue(orders, cid, d.at, window, settings.currency)[1]
               for cid, (_, d) in first_decisions([], holdouts).items() if d.at + window <= now]
    control_mean = sum(control, ZERO) / len(control) if len(control) >= settings.min_group else None

    by_variant = defaultdict(list)
    for t in first.values():
        by_variant[t.variant].append(t)
    stats, samples = [], {}
    for name in sorted(by_variant):
        group = by_variant[name]
        with_coupon = [t for t in group if t.coupons]
        redeemed = sum(1 for t in with_coupon if t.key in redeemed_keys)
        matured = [t for t in group if t.at + window <= now]
        outcomes = [window_revenue(orders, t.customer_id, t.at, window, settings.currency) for t in matured]
        revenues = [float(r) for _, r in outcomes]
        converted = sum(c for c, _ in outcomes)
        attr = [a for t in group for a in attr_by_key[t.key]]
        revenue = sum((a.revenue for a in attr if same_currency(a.currency, settings.currency)), ZERO)
        discount = sum((a.discount for a in attr if same_currency(a.currency, settings.currency) and not a.cancelled), ZERO)
        emails = sum(t.emails for t in group)
        per = sum((r for _, r in outcomes), ZERO) / len(outcomes) if outcomes else ZERO
        incremental = roi = None
        if control_mean is not None and matured:
            incremental = (per - control_mean) * len(matured)
            m_keys = {t.key for t in matured}
            m_discount = sum((a.discount for a in attr if a.decision_key in m_keys and not a.cancelled
                              and same_currency(a.currency, settings.currency)), ZERO)
            m_send = send_cost(matured, settings)  # emails and texts
            if m_discount + m_send > 0:
                roi = float((incremental - m_discount - m_send) / (m_discount + m_send))
        stats.append(VariantStats(
            variant=name, customers=len(group), coupons_issued=len(with_coupon), redeemed=redeemed,
            redemption_rate=redeemed / len(with_coupon) if with_coupon else None, matured=len(matured),
            converted=converted, conversion_rate=converted / len(matured) if matured else None,
            revenue_per_customer=per, attributed_revenue=revenue, discount_cost=discount, emails_sent=emails,
            incremental_revenue=incremental, roi=roi))
        samples[name] = {"redemption": (redeemed, len(with_coupon)), "conversion": (converted, len(matured)),
                         "revenue": revenues}
    tests = [_proportion_test("redemption", samples, settings), _proportion_test("conversion", samples, settings),
             _revenue_test(samples, settings)]
    coupons = all(samples[v]["redemption"][1] for v in samples)
    primary = tests[0] if coupons else tests[1]
    winner = primary.winner
    verdict = f"{winner} wins on {primary.metric}" if winner else "no winner yet"
    return VariantComparison(rule_id=rule_id, variants=stats, tests=tests, winner=winner, verdict=verdict)


def _leader_test(metric: str, names: list, score, compare, enough, settings: Settings) -> MetricComparison:
    """The leader by ``score`` must beat every other variant at alpha / (k - 1)."""
    if len(names) < 2:
        return MetricComparison(metric, names[0] if names else None, None, None, "no winner yet",
                                "only one variant has data")
    short = [n for n in names if not enough(n)]
    leader = max(names, key=lambda n: (score(n), n))
    alpha = (1 - settings.confidence) / (len(names) - 1)
    p_values = [compare(leader, other) for other in names if other != leader]
    worst = max(p_values)
    if short:
        return MetricComparison(metric, leader, None, worst, "no winner yet",
                                f"not enough data yet for {', '.join(short)}: each variant needs {settings.min_group}+ "
                                f"customers and {MIN_EVENTS}+ successes and failures")
    if worst >= alpha:
        return MetricComparison(metric, leader, None, worst, "no winner yet",
                                f"{leader} leads, not significantly: {_p(worst)}, needs < {alpha:.3g}")
    return MetricComparison(metric, leader, leader, worst, f"{leader} wins",
                            f"{_p(worst)} < {alpha:.3g} against every other variant")


def _p(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.4f}"


def _proportion_test(metric: str, samples: dict, settings: Settings) -> MetricComparison:
    names = [n for n in samples if samples[n][metric][1]]
    if len(names) < 2:
        return MetricComparison(metric, names[0] if names else None, None, None, "no winner yet",
                    f"fewer than two variants with {metric} data")

    def score(n):
        x, total = samples[n][metric]
        return x / total

    def compare(a, b):
        (xa, na), (xb, nb) = samples[a][metric], samples[b][metric]
        return two_proportion_z_test(xa, na, xb, nb)[1]

    def enough(n):
        x, total = samples[n][metric]
        return not too_few(total, x, settings.min_group)

    return _leader_test(metric, names, score, compare, enough, settings)


def _revenue_test(samples: dict, settings: Settings) -> MetricComparison:
    names = [n for n in samples if len(samples[n]["revenue"]) > 1]
    if len(names) < 2:
        return MetricComparison("revenue", names[0] if names else None, None, None, "no winner yet",
                    "fewer than two variants with closed windows")

    def compare(a, b):
        return mean_difference(samples[a]["revenue"], samples[b]["revenue"], settings.confidence)[3]

    def enough(n):
        rev = samples[n]["revenue"]
        buyers = sum(1 for r in rev if r > 0)
        return len(rev) >= settings.min_group and buyers >= MIN_EVENTS

    return _leader_test("revenue", names, lambda n: statistics.fmean(samples[n]["revenue"]), compare, enough, settings)
