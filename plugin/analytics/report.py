"""The report: per-rule summaries for touches in a period, with lift, variants and the funnel."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from plugin.analytics.funnel import store_kpis, weekly_funnel
from plugin.analytics.inputs import (ZERO, Inputs, OrderIndex, Settings, as_index, main_currency, same_currency,
                                     sms_cost)
from plugin.analytics.lift import holdout_lift
from plugin.analytics.results import Report, RuleSummary
from plugin.analytics.variants import compare_variants

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def build_report(inputs: Inputs, *, since: datetime | None = None, until: datetime | None = None,
                 now: datetime, settings: Settings = Settings()) -> Report:
    """Everything the report shows, per rule and for the store, for touches in [since, until)."""
    until = min(until or now, now)
    currency = settings.currency or main_currency(inputs)
    settings = replace(settings, currency=currency)
    lo = since or _EPOCH

    def in_period(t: datetime) -> bool:
        return lo <= t < until

    touches = [t for t in inputs.touches if in_period(t.at)]
    holdouts = [h for h in inputs.holdouts if in_period(h.at)]
    keys = {t.key: t for t in touches}
    attributions = [a for a in inputs.attributions if a.decision_key in keys and a.at <= now]
    orders = OrderIndex(o for o in inputs.orders if o.at <= now)
    rules = rule_summaries(touches, holdouts, orders, attributions, inputs.unsubscribes, inputs.touches, now, settings)
    other = sum(1 for a in attributions if not same_currency(a.currency, currency))
    return Report(
        since=since, until=until, now=now, window_days=settings.window / timedelta(days=1), currency=currency,
        send_cost=settings.send_cost, confidence=settings.confidence, other_currency_orders=other, rules=rules,
        funnel=weekly_funnel(touches, attributions, currency),
        store=store_kpis([o for o in inputs.orders if in_period(o.at)], currency),
    )


def rule_summaries(touches, holdouts, orders, attributions, unsubscribes, all_touches, now, settings) -> dict:
    """One RuleSummary per rule with touches or holdouts in the period (already filtered)."""
    currency = settings.currency
    out: dict[str, RuleSummary] = {}

    def summary(rule_id: str) -> RuleSummary:
        s = out.get(rule_id)
        if s is None:
            s = out[rule_id] = RuleSummary(rule_id)
        return s

    reached, by_rule = defaultdict(set), defaultdict(list)
    for t in touches:
        by_rule[t.rule_id].append(t)
        s = summary(t.rule_id)
        s.touches += 1
        s.coupons_issued += t.coupons
        s.emails_sent += t.emails
        s.texts_sent += t.texts
        reached[t.rule_id].add(t.customer_id)
    held = defaultdict(set)
    for h in holdouts:
        summary(h.rule_id)
        held[h.rule_id].add(h.customer_id)
    redeemed_keys = _count_attributions(summary, attributions, {t.key for t in touches if t.coupons}, currency)
    for rid, s in out.items():
        s.customers_reached = len(reached[rid])
        s.held_out = len(held[rid])
        s.coupons_redeemed = len(redeemed_keys[rid])
        s.redemption_rate = s.coupons_redeemed / s.coupons_issued if s.coupons_issued else None
        s.sms_cost = sms_cost(by_rule[rid], currency)
        s.send_cost = s.emails_sent * settings.send_cost + s.sms_cost
    for rid, n in unsubscribes_by_rule(touches, all_touches, unsubscribes).items():
        summary(rid).unsubscribes = n
    for rid, (customers, revenue) in influenced(touches, orders, settings.window, currency).items():
        s = summary(rid)
        s.influenced_customers, s.influenced_revenue = customers, revenue
    _measure(out, touches, holdouts, orders, attributions, now, settings)
    return dict(sorted(out.items()))


def _count_attributions(summary, attributions, issued_keys: set, currency) -> dict[str, set]:
    """Add each attributed order to its rule's summary; returns the redeemed touch keys per rule."""
    redeemed_keys = defaultdict(set)
    for a in attributions:
        s = summary(a.rule_id)
        if a.decision_key in issued_keys:
            redeemed_keys[a.rule_id].add(a.decision_key)
        s.attributed_orders += 1
        s.refunded_orders += a.refunded > 0
        s.cancelled_orders += a.cancelled
        if same_currency(a.currency, currency):
            s.attributed_revenue += a.revenue
            s.attributed_net_revenue += a.net
            if not a.cancelled:
                s.discount_cost += a.discount
    return redeemed_keys


def _measure(out: dict[str, RuleSummary], touches, holdouts, orders, attributions, now, settings) -> None:
    """Holdout lift for every rule, and the variant comparison for rules with variants."""
    by_rule_touches = defaultdict(list)
    for t in touches:
        by_rule_touches[t.rule_id].append(t)
    by_rule_holdouts = defaultdict(list)
    for h in holdouts:
        by_rule_holdouts[h.rule_id].append(h)
    by_rule_attr = defaultdict(list)
    for a in attributions:
        by_rule_attr[a.rule_id].append(a)
    for rid, s in out.items():
        s.lift = holdout_lift(rid, by_rule_touches[rid], by_rule_holdouts[rid], orders, by_rule_attr[rid], now,
                              settings)
        if any(t.variant for t in by_rule_touches[rid]):
            s.variants = compare_variants(rid, by_rule_touches[rid], by_rule_holdouts[rid], orders,
                                          by_rule_attr[rid], now, settings)


def unsubscribes_by_rule(touches, all_touches, unsubscribes) -> Counter:
    """Each unsubscribe is laid at the door of the last email the customer got before it, when
    that email's touch is in the period."""
    in_period = {t.key for t in touches}
    emails = defaultdict(list)
    for t in all_touches:
        if t.emails:
            emails[t.customer_id].append(t)
    out = Counter()
    for u in unsubscribes:
        before = [t for t in emails.get(u.customer_id, ()) if t.at <= u.at]
        if before:
            last = max(before, key=lambda t: (t.at, t.key))
            if last.key in in_period:
                out[last.rule_id] += 1
    return out


def influenced(touches, orders, window: timedelta, currency) -> dict[str, tuple[int, Decimal]]:
    """Per rule: customers emailed without a coupon who ordered within the window, and the net
    revenue of those orders (each order once per rule)."""
    orders = as_index(orders)
    customers = defaultdict(set)
    seen = defaultdict(dict)
    for t in touches:
        if not t.emails or t.coupons:
            continue
        found = orders.within(t.customer_id, t.at, window)
        if found:
            customers[t.rule_id].add(t.customer_id)
            for o in found:
                seen[t.rule_id][o.order_id] = o
    return {rid: (len(customers[rid]), sum((o.net for o in seen[rid].values() if same_currency(o.currency, currency)), ZERO))
            for rid in customers}
