"""Holdout lift: conversion and revenue of touched against held-out customers of one rule."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

from plugin.analytics.inputs import ZERO, Settings, as_index, same_currency, send_cost
from plugin.analytics.results import Lift
from plugin.analytics.statistics import MIN_EVENTS, difference_interval, mean_difference, two_proportion_z_test


def first_decisions(touches, holdouts) -> dict[str, tuple[bool, object]]:
    """customer -> (touched?, first decision): a customer counts once, in the group they were
    first assigned to."""
    first: dict[str, tuple[bool, object]] = {}
    for touched, items in ((True, touches), (False, holdouts)):
        for d in items:
            cur = first.get(d.customer_id)
            if cur is None or (d.at, not touched) < (cur[1].at, not cur[0]):
                first[d.customer_id] = (touched, d)
    return first


def window_revenue(orders, customer_id: str, at: datetime, window: timedelta, currency) -> tuple[bool, Decimal]:
    found = orders.within(customer_id, at, window)
    return bool(found), sum((o.net for o in found if same_currency(o.currency, currency)), ZERO)


def holdout_lift(rule_id, touches, holdouts, orders, attributions, now, settings: Settings) -> Lift:
    """Conversion and revenue of touched vs held-out customers of one rule (see the module doc)."""
    orders = as_index(orders)
    window, conf = settings.window, settings.confidence
    groups = {True: [], False: []}  # touched? -> [(converted, revenue, decision)]
    waiting = Counter()  # touched? -> decisions whose window is still open
    for cid, (touched, d) in first_decisions(touches, holdouts).items():
        if d.at + window > now:
            waiting[touched] += 1
            continue
        converted, revenue = window_revenue(orders, cid, d.at, window, settings.currency)
        groups[touched].append((converted, revenue, d))
    t, h = groups[True], groups[False]
    n1, n0 = len(t), len(h)
    x1, x0 = sum(c for c, _, _ in t), sum(c for c, _, _ in h)
    rev1 = [float(r) for _, r, _ in t]
    rev0 = [float(r) for _, r, _ in h]
    keys = {d.key for _, _, d in t}
    discount = sum((a.discount for a in attributions
                    if a.decision_key in keys and not a.cancelled and same_currency(a.currency, settings.currency)), ZERO)
    send = send_cost([d for _, _, d in t], settings)  # emails and texts
    per1 = sum((r for _, r, _ in t), ZERO) / n1 if n1 else ZERO
    per0 = sum((r for _, r, _ in h), ZERO) / n0 if n0 else ZERO
    diff = p_value = incremental = inc_interval = roi = None
    if n1 and n0:
        diff = difference_interval(x1, n1, x0, n0, conf)
        p_value = two_proportion_z_test(x1, n1, x0, n0)[1]
        incremental = (per1 - per0) * n1
        if n1 > 1 and n0 > 1:
            _, lo, hi, _ = mean_difference(rev1, rev0, conf)
            inc_interval = (Decimal(str(lo)) * n1, Decimal(str(hi)) * n1)
        if discount + send > 0:
            roi = float((incremental - discount - send) / (discount + send))
    reasons = []
    if n1 == 0 and waiting[True]:
        reasons.append("no touched customer's window has closed yet")
    if n0 == 0 and waiting[False]:
        reasons.append("no held-out customer's window has closed yet")
    for label, n, x in (("touched", n1, x1), ("held-out", n0, x0)):
        if n and n < settings.min_group:
            reasons.append(f"fewer than {settings.min_group} {label} customers ({n})")
        elif n and (x < MIN_EVENTS or n - x < MIN_EVENTS):
            reasons.append(f"too few {label} customers {'converted' if x < MIN_EVENTS else 'did not convert'} "
                           f"({x} of {n}) for the normal approximation")
    significant = not reasons and diff is not None and not diff.spans_zero
    if significant:
        verdict = "significant lift" if diff.low > 0 else "significant drop"
        reason = f"the {round(conf * 100)}% interval excludes 0"
    elif not holdouts:
        verdict = "no holdout"
        reason = "no held-out customers in the period: give the rule a holdout (e.g. 'holdout: 10%') to measure it"
    else:
        verdict = "inconclusive"
        if not reasons and diff is not None:
            reasons.append(f"the {round(conf * 100)}% interval spans 0 "
                           f"({diff.low * 100:+.1f} to {diff.high * 100:+.1f} points)")
        reason = "; ".join(reasons) or "not enough data"
    return Lift(rule_id=rule_id, touched=n1, held_out=n0, touched_converted=x1, held_out_converted=x0,
                touched_rate=x1 / n1 if n1 else None, held_out_rate=x0 / n0 if n0 else None, difference=diff,
                p_value=p_value, revenue_per_touched=per1, revenue_per_held_out=per0, incremental_revenue=incremental,
                incremental_revenue_interval=inc_interval, discount_cost=discount, send_cost=send, roi=roi,
                pending=waiting[True] + waiting[False], significant=significant, verdict=verdict, reason=reason)
