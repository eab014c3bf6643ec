"""Measuring touches: pure functions over plain lists. No database, no clock: the period and
``now`` are parameters, so the same numbers come out in tests, reports and dashboards.

How the numbers are counted:

- **Cohorts.** A period ``[since, until)`` selects touches and holdout decisions by decision
  time. What followed them (redemptions, orders, refunds, unsubscribes) is counted up to ``now``,
  even after ``until``: a coupon issued on the last day of the period still gets its redemption.
- **Attributed** revenue is the total of paid orders that redeemed the touch's coupon; *net*
  takes refunds off and counts a cancelled order as nothing. Discount cost skips cancelled
  orders. Money is summed in one currency (the shop's most common); other orders are counted
  in ``other_currency_orders`` and left out of the sums.
- **Influenced**: customers emailed by a touch without a coupon who placed a paid order within
  the window after it. It is a correlation, not an effect; holdout lift is the effect.
- **Holdout lift** compares, per rule, customers touched with customers held out, each counted
  once at their first decision in the period, as assigned (a touch whose email then bounced
  still counts as touched). Only decisions whose window closed by ``now`` take part. Converted =
  any paid, uncancelled order within the window after the decision. The lift is the difference
  of the two conversion rates with a Wald interval (normal approximation for a difference of
  two independent proportions, unpooled standard error). Incremental revenue = (net revenue
  per touched - per held-out customer within the window) x touched, with a Welch-style normal
  interval. ROI = (incremental revenue - discount cost - send cost) / (discount cost + send cost).
- **Inconclusive**, never hidden: fewer than ``min_group`` customers in a group, fewer than 5
  conversions or non-conversions in a group (the normal approximation does not hold), or an
  interval that spans 0.
- **A/B variants** (the holdout is drawn independently): redemption and conversion compared
  with a two-proportion z-test (pooled), revenue per customer with a Welch z-test; the leader
  must beat every other variant at the Bonferroni-corrected level, with enough data in each
  group, else "no winner yet". ROI per variant is shown against the holdout, not tested.
"""
from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from statistics import NormalDist

_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_NORMAL = NormalDist()
MIN_EVENTS = 5  # conversions and non-conversions per group for the normal approximation
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

LIFT_METHOD = ("Wald interval for a difference of two independent proportions "
               "(normal approximation, unpooled standard error)")
AB_METHOD = ("two-proportion z-test (pooled) for redemption and conversion, Welch z-test for revenue per "
             "customer; the leader must beat each other variant at the Bonferroni-corrected level")


# --- inputs -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Touch:
    """A touch decision from the ledger, with what went out for it."""

    rule_id: str
    customer_id: str
    at: datetime
    key: str
    variant: str | None = None
    coupons: int = 0  # coupons created in the store
    emails: int = 0  # emails sent


@dataclass(frozen=True, slots=True)
class Holdout:
    """A customer the rule would have touched at ``at`` but held out (the control group)."""

    rule_id: str
    customer_id: str
    at: datetime
    key: str = ""


@dataclass(frozen=True, slots=True)
class PaidOrder:
    """A paid order from the customer's state; ``refunded`` is the sum of its refunds."""

    customer_id: str
    order_id: str
    at: datetime
    total: Decimal
    currency: str
    cancelled: bool = False
    refunded: Decimal = _ZERO

    @property
    def net(self) -> Decimal:
        return _ZERO if self.cancelled else max(_ZERO, self.total - self.refunded)


@dataclass(frozen=True, slots=True)
class Attribution:
    """A paid order that redeemed the coupon of the touch ``decision_key``."""

    rule_id: str
    customer_id: str
    order_id: str
    decision_key: str
    at: datetime
    revenue: Decimal
    currency: str
    discount: Decimal = _ZERO
    coupon_code: str = ""
    variant: str | None = None
    cancelled: bool = False
    refunded: Decimal = _ZERO

    @property
    def net(self) -> Decimal:
        return _ZERO if self.cancelled else max(_ZERO, self.revenue - self.refunded)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    customer_id: str
    at: datetime


@dataclass(frozen=True)
class Inputs:
    touches: list = field(default_factory=list)
    holdouts: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    attributions: list = field(default_factory=list)
    unsubscribes: list = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    window: timedelta = timedelta(days=14)
    send_cost: Decimal = Decimal("0.001")  # per email, in the report's currency
    confidence: float = 0.95
    min_group: int = 30
    currency: str | None = None  # None: the most common currency of the orders


# --- results ------------------------------------------------------------------------------------

@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def spans_zero(self) -> bool:
        return self.low <= 0 <= self.high


@dataclass
class Lift:
    rule_id: str
    touched: int
    held_out: int
    touched_converted: int
    held_out_converted: int
    touched_rate: float | None
    held_out_rate: float | None
    difference: Interval | None  # touched_rate - held_out_rate
    p_value: float | None
    revenue_per_touched: Decimal
    revenue_per_held_out: Decimal
    incremental_revenue: Decimal | None
    incremental_revenue_interval: tuple[Decimal, Decimal] | None
    discount_cost: Decimal
    send_cost: Decimal
    roi: float | None
    pending: int  # decisions in the period whose window is still open: left out
    significant: bool
    verdict: str  # "significant lift" | "significant drop" | "inconclusive" | "no holdout"
    reason: str
    method: str = LIFT_METHOD


@dataclass
class VariantStats:
    variant: str
    customers: int
    coupons_issued: int
    redeemed: int
    redemption_rate: float | None
    matured: int
    converted: int
    conversion_rate: float | None
    revenue_per_customer: Decimal
    attributed_revenue: Decimal
    discount_cost: Decimal
    emails_sent: int
    incremental_revenue: Decimal | None
    roi: float | None


@dataclass
class MetricComparison:
    metric: str
    leader: str | None
    winner: str | None
    p_value: float | None  # the largest p-value of the leader's comparisons
    verdict: str
    reason: str


@dataclass
class VariantComparison:
    rule_id: str
    variants: list[VariantStats]
    tests: list[MetricComparison]
    winner: str | None
    verdict: str
    method: str = AB_METHOD


@dataclass
class RuleSummary:
    rule_id: str
    touches: int = 0
    customers_reached: int = 0
    coupons_issued: int = 0
    coupons_redeemed: int = 0
    redemption_rate: float | None = None
    attributed_orders: int = 0
    attributed_revenue: Decimal = _ZERO
    attributed_net_revenue: Decimal = _ZERO
    refunded_orders: int = 0
    cancelled_orders: int = 0
    discount_cost: Decimal = _ZERO
    emails_sent: int = 0
    send_cost: Decimal = _ZERO
    unsubscribes: int = 0
    influenced_customers: int = 0
    influenced_revenue: Decimal = _ZERO
    held_out: int = 0
    lift: Lift | None = None
    variants: VariantComparison | None = None


@dataclass
class FunnelWeek:
    week: str  # the Monday (UTC) the week starts on
    touched: int
    coupons_issued: int
    redeemed: int
    revenue: Decimal


@dataclass
class StoreKpis:
    orders: int
    revenue: Decimal
    buyers: int
    repeat_buyers: int
    repeat_purchase_rate: float | None
    median_days_to_second_order: float | None


@dataclass
class Report:
    since: datetime | None
    until: datetime
    now: datetime
    window_days: float
    currency: str | None
    send_cost: Decimal = field(metadata={"exact": True})  # per email: fractions of a cent matter
    confidence: float
    other_currency_orders: int
    rules: dict[str, RuleSummary]
    funnel: dict[str, list[FunnelWeek]]
    store: StoreKpis

    def to_dict(self) -> dict:
        return plain(self)


def plain(value):
    """The JSON form of a result: money as strings with cents, times ISO, rates rounded."""
    if is_dataclass(value):
        return {f.name: str(getattr(value, f.name)) if f.metadata.get("exact") else plain(getattr(value, f.name))
                for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(money(value))
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def money(x: Decimal) -> Decimal:
    return x.quantize(_CENT, rounding=ROUND_HALF_UP)


# --- statistics ---------------------------------------------------------------------------------

def _z(confidence: float) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def difference_interval(x1: int, n1: int, x0: int, n0: int, confidence: float = 0.95) -> Interval:
    """p1 - p0 with a Wald interval: normal approximation, unpooled standard error."""
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    d = p1 - p0
    half = _z(confidence) * se
    return Interval(d, d - half, d + half, confidence)


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for p1 == p2, with the pooled standard error."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, 2 * (1 - _NORMAL.cdf(abs(z)))


def mean_difference(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(a) - mean(b), low, high, two-sided p): normal approximation, Welch standard error."""
    d = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    if se == 0:
        return d, d, d, 1.0 if d == 0 else 0.0
    half = _z(confidence) * se
    return d, d - half, d + half, 2 * (1 - _NORMAL.cdf(abs(d / se)))


def _too_few(n: int, x: int, min_group: int) -> bool:
    return n < min_group or x < MIN_EVENTS or n - x < MIN_EVENTS


# --- the report ---------------------------------------------------------------------------------

class OrderIndex:
    """Paid orders by customer in time order, for window look-ups (build once, pass around)."""

    def __init__(self, orders):
        self.by_customer: dict[str, list] = defaultdict(list)
        for o in orders:
            self.by_customer[o.customer_id].append(o)
        self.times = {}
        for cid, lst in self.by_customer.items():
            lst.sort(key=lambda o: (o.at, o.order_id))
            self.times[cid] = [o.at for o in lst]

    def within(self, customer_id: str, start: datetime, window: timedelta) -> list:
        """Uncancelled paid orders in (start, start + window]."""
        times = self.times.get(customer_id)
        if not times:
            return []
        lst = self.by_customer[customer_id]
        lo = bisect.bisect_right(times, start)
        hi = bisect.bisect_right(times, start + window)
        return [o for o in lst[lo:hi] if not o.cancelled]


def _same(currency: str, wanted: str | None) -> bool:
    """Whether an amount in ``currency`` is summed (``wanted`` None: every amount is)."""
    return wanted is None or currency == wanted


def _index(orders) -> OrderIndex:
    return orders if isinstance(orders, OrderIndex) else OrderIndex(orders)


def main_currency(inputs: Inputs) -> str | None:
    counts = Counter(o.currency for o in inputs.orders if o.currency)
    counts.update(a.currency for a in inputs.attributions if a.currency)
    return min(counts, key=lambda c: (-counts[c], c)) if counts else None


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
    other = sum(1 for a in attributions if not _same(a.currency, currency))
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

    reached = defaultdict(set)
    for t in touches:
        s = summary(t.rule_id)
        s.touches += 1
        s.coupons_issued += t.coupons
        s.emails_sent += t.emails
        reached[t.rule_id].add(t.customer_id)
    held = defaultdict(set)
    for h in holdouts:
        summary(h.rule_id)
        held[h.rule_id].add(h.customer_id)
    redeemed_keys = defaultdict(set)
    issued_keys = {t.key for t in touches if t.coupons}
    for a in attributions:
        s = summary(a.rule_id)
        if a.decision_key in issued_keys:
            redeemed_keys[a.rule_id].add(a.decision_key)
        s.attributed_orders += 1
        s.refunded_orders += a.refunded > 0
        s.cancelled_orders += a.cancelled
        if _same(a.currency, currency):
            s.attributed_revenue += a.revenue
            s.attributed_net_revenue += a.net
            if not a.cancelled:
                s.discount_cost += a.discount
    for rid, s in out.items():
        s.customers_reached = len(reached[rid])
        s.held_out = len(held[rid])
        s.coupons_redeemed = len(redeemed_keys[rid])
        s.redemption_rate = s.coupons_redeemed / s.coupons_issued if s.coupons_issued else None
        s.send_cost = s.emails_sent * settings.send_cost
    for rid, n in unsubscribes_by_rule(touches, all_touches, unsubscribes).items():
        summary(rid).unsubscribes = n
    for rid, (customers, revenue) in influenced(touches, orders, settings.window, currency).items():
        s = summary(rid)
        s.influenced_customers, s.influenced_revenue = customers, revenue
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
    return dict(sorted(out.items()))


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
    orders = _index(orders)
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
    return {rid: (len(customers[rid]), sum((o.net for o in seen[rid].values() if _same(o.currency, currency)), _ZERO))
            for rid in customers}


def _first_decisions(touches, holdouts) -> dict[str, tuple[bool, object]]:
    """customer -> (touched?, first decision): a customer counts once, in the group they were
    first assigned to."""
    first: dict[str, tuple[bool, object]] = {}
    for touched, items in ((True, touches), (False, holdouts)):
        for d in items:
            cur = first.get(d.customer_id)
            if cur is None or (d.at, not touched) < (cur[1].at, not cur[0]):
                first[d.customer_id] = (touched, d)
    return first


def _window_revenue(orders, customer_id: str, at: datetime, window: timedelta, currency) -> tuple[bool, Decimal]:
    found = orders.within(customer_id, at, window)
    return bool(found), sum((o.net for o in found if _same(o.currency, currency)), _ZERO)


def holdout_lift(rule_id, touches, holdouts, orders, attributions, now, settings: Settings) -> Lift:
    """Conversion and revenue of touched vs held-out customers of one rule (see the module doc)."""
    orders = _index(orders)
    window, conf = settings.window, settings.confidence
    groups = {True: [], False: []}  # touched? -> [(converted, revenue, decision)]
    waiting = Counter()  # touched? -> decisions whose window is still open
    for cid, (touched, d) in _first_decisions(touches, holdouts).items():
        if d.at + window > now:
            waiting[touched] += 1
            continue
        converted, revenue = _window_revenue(orders, cid, d.at, window, settings.currency)
        groups[touched].append((converted, revenue, d))
    t, h = groups[True], groups[False]
    n1, n0 = len(t), len(h)
    x1, x0 = sum(c for c, _, _ in t), sum(c for c, _, _ in h)
    rev1 = [float(r) for _, r, _ in t]
    rev0 = [float(r) for _, r, _ in h]
    keys = {d.key for _, _, d in t}
    discount = sum((a.discount for a in attributions
                    if a.decision_key in keys and not a.cancelled and _same(a.currency, settings.currency)), _ZERO)
    send = sum(d.emails for _, _, d in t) * settings.send_cost
    per1 = sum((r for _, r, _ in t), _ZERO) / n1 if n1 else _ZERO
    per0 = sum((r for _, r, _ in h), _ZERO) / n0 if n0 else _ZERO
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


def compare_variants(rule_id, touches, holdouts, orders, attributions, now, settings: Settings) -> VariantComparison:
    """Per-variant outcomes of one rule, and whether one variant wins (see the module doc)."""
    orders = _index(orders)
    window = settings.window
    first: dict[str, Touch] = {}
    for t in sorted((t for t in touches if t.variant), key=lambda t: (t.at, t.key)):
        first.setdefault(t.customer_id, t)
    redeemed_keys = {a.decision_key for a in attributions}
    attr_by_key = defaultdict(list)
    for a in attributions:
        attr_by_key[a.decision_key].append(a)
    # the holdout is the shared control for every variant's incremental revenue
    control = [_window_revenue(orders, cid, d.at, window, settings.currency)[1]
               for cid, (_, d) in _first_decisions([], holdouts).items() if d.at + window <= now]
    control_mean = sum(control, _ZERO) / len(control) if len(control) >= settings.min_group else None

    by_variant = defaultdict(list)
    for t in first.values():
        by_variant[t.variant].append(t)
    stats, samples = [], {}
    for name in sorted(by_variant):
        group = by_variant[name]
        with_coupon = [t for t in group if t.coupons]
        redeemed = sum(1 for t in with_coupon if t.key in redeemed_keys)
        matured = [t for t in group if t.at + window <= now]
        outcomes = [_window_revenue(orders, t.customer_id, t.at, window, settings.currency) for t in matured]
        revenues = [float(r) for _, r in outcomes]
        converted = sum(c for c, _ in outcomes)
        attr = [a for t in group for a in attr_by_key[t.key]]
        revenue = sum((a.revenue for a in attr if _same(a.currency, settings.currency)), _ZERO)
        discount = sum((a.discount for a in attr if _same(a.currency, settings.currency) and not a.cancelled), _ZERO)
        emails = sum(t.emails for t in group)
        per = sum((r for _, r in outcomes), _ZERO) / len(outcomes) if outcomes else _ZERO
        incremental = roi = None
        if control_mean is not None and matured:
            incremental = (per - control_mean) * len(matured)
            m_keys = {t.key for t in matured}
            m_discount = sum((a.discount for a in attr if a.decision_key in m_keys and not a.cancelled
                              and _same(a.currency, settings.currency)), _ZERO)
            m_send = sum(t.emails for t in matured) * settings.send_cost
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
        return not _too_few(total, x, settings.min_group)

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
    revenue = defaultdict(lambda: _ZERO)
    for a in attributions:
        w = week_by_key.get(a.decision_key)
        if w is None:
            continue
        redeemed[w].add(a.decision_key)
        if _same(a.currency, currency):
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
        revenue=sum((o.net for o in counted if _same(o.currency, currency)), _ZERO),
        buyers=buyers, repeat_buyers=len(gaps),
        repeat_purchase_rate=len(gaps) / buyers if buyers else None,
        median_days_to_second_order=statistics.median(gaps) if gaps else None,
    )


__all__ = ["Touch", "Holdout", "PaidOrder", "Attribution", "Unsubscribe", "Inputs", "Settings", "Report",
           "RuleSummary", "Lift", "VariantComparison", "VariantStats", "MetricComparison", "FunnelWeek", "StoreKpis",
           "Interval", "OrderIndex", "build_report", "holdout_lift", "compare_variants", "store_kpis", "weekly_funnel",
           "difference_interval", "two_proportion_z_test", "mean_difference", "plain", "week_of", "LIFT_METHOD"]
