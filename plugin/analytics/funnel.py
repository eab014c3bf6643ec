"""The weekly funnel per rule and the store's own KPIs (repeat purchase rate, days to a second order)."""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from plugin.analytics.inputs import ZERO, same_currency
from plugin.analytics.results import FunnelWeek, StoreKpis


def week_of(t: datetime) -> str:
    """The Monday (UTC) of the week ``t`` falls in."""
    d = t.astimezone(timezone.utc).date()
    return (d - timedelta(days=d.weekday())).isoformat()


def weekly_funnel(touches, attributions, currency) -> dict[str, list[FunnelWeek]]:
    """Per rule and week of the touch: customers touched, coupons issued and redeemed, and the
    attributed revenue of those touches."""
    touched = defaultdict(set)
    issued = Counter()
    week_by_key = {}
    for t in touches:
        w = (t.rule_id, week_of(t.at))
        touched[w].add(t.customer_id)
        issued[w] += t.coupons
        week_by_key[t.key] = w
    redeemed = defaultdict(set)
    revenue = defaultdict(lambda: ZERO)
    for a in attributions:
        w = week_by_key.get(a.decision_key)
        if w is None:
            continue
        redeemed[w].add(a.decision_key)
        if same_currency(a.currency, currency):
            revenue[w] += a.revenue
    out = defaultdict(list)
    for rule_id, week in sorted(touched):
        w = (rule_id, week)
        out[rule_id].append(FunnelWeek(week, len(touched[w]), issued[w], len(redeemed[w]), revenue[w]))
    return dict(out)


def store_kpis(orders, currency) -> StoreKpis:
    """Over the paid, uncancelled orders given (those placed in the period): repeat purchase rate
    = customers with 2+ orders / customers with 1+; median days from first to second order."""
    by_customer = defaultdict(list)
    for o in orders:
        if not o.cancelled:
            by_customer[o.customer_id].append(o)
    gaps = []
    for lst in by_customer.values():
        if len(lst) >= 2:
            lst.sort(key=lambda o: (o.at, o.order_id))
            gaps.append((lst[1].at - lst[0].at) / timedelta(days=1))
    buyers = len(by_customer)
    counted = [o for lst in by_customer.values() for o in lst]
    return StoreKpis(
        orders=len(counted),
        revenue=sum((o.net for o in counted if same_currency(o.currency, currency)), ZERO),
        buyers=buyers, repeat_buyers=len(gaps),
        repeat_purchase_rate=len(gaps) / buyers if buyers else None,
        median_days_to_second_order=statistics.median(gaps) if gaps else None,
    )
