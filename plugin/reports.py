"""The shop report: one shop's ledger, effects, attributions, customer states and unsubscribes,
loaded from the database and measured by plugin.analytics; and the table ``keepwell report``
prints. Dashboards call ``shop_report`` and render its ``to_dict()``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select

from plugin.analytics import (Attribution, Holdout, Inputs, PaidOrder, Report, Settings, Touch, Unsubscribe,
                              build_report)
from plugin.db import AttributionRow, CustomerRow, DecisionRow, EffectRow, ShopRow, UnsubscribeRow
from plugin.errors import UnknownShop
from plugin.events import parse_time

_ZERO = Decimal(0)
FUNNEL_WEEKS = 8  # weeks per rule in the table (JSON has them all)


def load_inputs(session, shop_id: str) -> Inputs:
    """Everything analytics needs about one shop, as plain values."""
    sent: dict[tuple[str, str], int] = {}
    for key, kind, n in session.execute(
            select(EffectRow.decision_key, EffectRow.type, func.count())
            .where(EffectRow.shop_id == shop_id, EffectRow.status == "done", EffectRow.type.in_(("coupon", "email")))
            .group_by(EffectRow.decision_key, EffectRow.type)):
        sent[(key, kind)] = n
    texts: dict[str, tuple[int, Decimal, str]] = {}
    for key, n, cost, currency in session.execute(
            select(EffectRow.decision_key, func.count(), func.sum(EffectRow.cost), func.max(EffectRow.cost_currency))
            .where(EffectRow.shop_id == shop_id, EffectRow.status == "done", EffectRow.type == "sms")
            .group_by(EffectRow.decision_key)):
        texts[key] = (n, Decimal(str(cost or 0)), currency or "")
    touches, holdouts = [], []
    for key, rule_id, customer_id, kind, decision in session.execute(
            select(DecisionRow.key, DecisionRow.rule_id, DecisionRow.customer_id, DecisionRow.kind,
                   DecisionRow.decision)
            .where(DecisionRow.shop_id == shop_id,
                   or_(DecisionRow.kind == "touch", DecisionRow.reason == "holdout"))):
        at = parse_time(decision["at"])  # the engine's time of the decision, not the row's
        if kind == "touch":
            touches.append(Touch(rule_id, customer_id, at, key, decision.get("variant"),
                                 sent.get((key, "coupon"), 0), sent.get((key, "email"), 0), *texts.get(key, (0, _ZERO, ""))))
        else:
            holdouts.append(Holdout(rule_id, customer_id, at, key))
    orders = {}
    for customer_id, state in session.execute(
            select(CustomerRow.customer_id, CustomerRow.state).where(CustomerRow.shop_id == shop_id)):
        for o in state.get("orders", ()):
            if o.get("paid"):
                orders[(customer_id, o["id"])] = PaidOrder(
                    customer_id, o["id"], parse_time(o["at"]), Decimal(o["total"]), o.get("currency") or "",
                    bool(o.get("cancelled")), sum((Decimal(a) for _, a in o.get("refunds", ())), _ZERO))
    attributions = []
    for a in session.scalars(select(AttributionRow).where(AttributionRow.shop_id == shop_id)):
        order = orders.get((a.customer_id, a.order_id))  # refunds and cancellations live in the state
        attributions.append(Attribution(
            a.rule_id, a.customer_id, a.order_id, a.decision_key, a.ordered_at, Decimal(a.revenue), a.currency,
            Decimal(a.discount), a.coupon_code, a.variant,
            cancelled=order.cancelled if order else False, refunded=order.refunded if order else _ZERO))
    unsubscribes = [Unsubscribe(cid, at) for cid, at in session.execute(
        select(UnsubscribeRow.customer_id, UnsubscribeRow.at).where(UnsubscribeRow.shop_id == shop_id))]
    return Inputs(touches, holdouts, list(orders.values()), attributions, unsubscribes)


def shop_report(session, shop_id: str, *, now: datetime, since: datetime | None = None,
                until: datetime | None = None, settings: Settings = Settings()) -> Report:
    """The report for touches of ``shop_id`` in [since, until), outcomes followed up to ``now``."""
    if session.get(ShopRow, shop_id) is None:
        raise UnknownShop(f"no shop {shop_id!r} (see `keepwell shop list`)")
    return build_report(load_inputs(session, shop_id), since=since, until=until, now=now, settings=settings)


# --- the table ----------------------------------------------------------------------------------

def _money(x: Decimal | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _points(x: float) -> str:
    return f"{x * 100:+.1f}"


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Columns sized to fit; the first left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return (indent + "  ".join(padded)).rstrip()

    return [line(header)] + [line(r) for r in rows]


def _lift_rows(rules) -> tuple[list[list[str]], list[str]]:
    """The holdout lift table's rows, and the notes under it."""
    rows, notes = [], []
    for rid, r in rules.items():
        lift = r.lift
        if lift is None:
            continue
        diff = lift.difference
        ci = f"{_points(diff.estimate)} ({_points(diff.low)} .. {_points(diff.high)})" if diff else "-"
        inc = _money(lift.incremental_revenue)
        if lift.incremental_revenue_interval:
            lo, hi = lift.incremental_revenue_interval
            inc += f" ({_money(lo)} .. {_money(hi)})"
        roi = "-" if lift.roi is None else f"{lift.roi * 100:,.0f}%"
        rows.append([rid, str(lift.touched), _pct(lift.touched_rate), str(lift.held_out), _pct(lift.held_out_rate),
                     ci, inc, roi, lift.verdict])
        if not lift.significant:
            notes.append(f"  {rid}: {lift.verdict}: {lift.reason}")
        if lift.pending and lift.verdict != "no holdout":
            notes.append(f"  {rid}: {lift.pending} customers still inside their window, not counted yet")
    return rows, notes


def format_table(report: Report, shop_id: str) -> str:
    """The report as plain-text tables, one section per question."""
    cur = report.currency or ""
    window = report.window_days
    days = f"{window:g} day{'s' if window != 1 else ''}"
    since = _time(report.since) if report.since else "the beginning"
    out = [f"Keepwell report for shop {shop_id}",
           f"touches from {since} to {_time(report.until)}; outcomes followed to {_time(report.now)}",
           f"amounts in {cur or '(no orders yet)'}; conversion window {days}; "
           f"send cost {report.send_cost} {cur} per email"]
    if report.other_currency_orders:
        out.append(f"{report.other_currency_orders} attributed orders in other currencies are left out of the sums")
    rules = report.rules
    if not rules:
        out += ["", "No touches or holdouts in this period."]
    else:
        out += ["", "RULES (attributed = orders that redeemed the touch's coupon)"]
        rows = []
        for rid, r in rules.items():
            rows.append([rid, str(r.customers_reached), str(r.coupons_issued), str(r.coupons_redeemed),
                         _pct(r.redemption_rate), str(r.attributed_orders), _money(r.attributed_revenue),
                         _money(r.attributed_net_revenue), _money(r.discount_cost), str(r.emails_sent),
                         str(r.unsubscribes), f"{r.influenced_customers} / {_money(r.influenced_revenue)}"])
        out += _table(["rule", "reached", "coupons", "redeemed", "rate", "orders", "revenue", "net revenue",
                       "discount", "emails", "unsubs", "influenced / rev"], rows)
        texted = [f"{rid}: {r.texts_sent} texts, {r.sms_cost} {cur}" for rid, r in rules.items() if r.texts_sent]
        if texted:  # their cost is in each rule's send cost, so in its ROI
            out.append("  sent by SMS (cost counted in the ROI): " + "; ".join(texted))
        returns = [f"{rid}: {r.refunded_orders} refunded, {r.cancelled_orders} cancelled"
                   for rid, r in rules.items() if r.refunded_orders or r.cancelled_orders]
        if returns:
            out.append("  attributed orders since returned: " + "; ".join(returns))

        out += ["", f"HOLDOUT LIFT (converted = a paid order within {days} of the decision; "
                    f"{round(report.confidence * 100)}% Wald interval, normal approximation)"]
        rows, notes = _lift_rows(rules)
        out += _table(["rule", "touched", "conv", "held out", "conv", "lift, points (CI)", "incremental revenue (CI)",
                       "ROI", "verdict"], rows)
        out += notes

        compared = [(rid, r.variants) for rid, r in rules.items() if r.variants is not None]
        if compared:
            out += ["", "A/B VARIANTS (incremental revenue and ROI against the rule's holdout)"]
            rows, notes = [], []
            for rid, cmp in compared:
                for i, v in enumerate(cmp.variants):
                    rows.append([rid if i == 0 else "", v.variant, str(v.customers), str(v.coupons_issued),
                                 str(v.redeemed), _pct(v.redemption_rate), _pct(v.conversion_rate),
                                 _money(v.revenue_per_customer), _money(v.attributed_revenue), _money(v.discount_cost),
                                 "-" if v.roi is None else f"{v.roi * 100:,.0f}%"])
                notes.append(f"  {rid}: {cmp.verdict}")
                notes += [f"    {t.metric}: {t.verdict}: {t.reason}" for t in cmp.tests]
            out += _table(["rule", "variant", "customers", "coupons", "redeemed", "rate", "conv", "rev/customer",
                           "attributed", "discount", "ROI"], rows)
            out += notes

        out += ["", "WEEKLY FUNNEL (by week of the touch; redemptions and revenue followed to now)"]
        rows, cut = [], False
        for rid, weeks in report.funnel.items():
            cut = cut or len(weeks) > FUNNEL_WEEKS
            for i, w in enumerate(weeks[-FUNNEL_WEEKS:]):
                rows.append([rid if i == 0 else "", w.week, str(w.touched), str(w.coupons_issued), str(w.redeemed),
                             _money(w.revenue)])
        out += _table(["rule", "week of", "touched", "coupons", "redeemed", "revenue"], rows)
        if cut:
            out.append(f"  the last {FUNNEL_WEEKS} weeks of each rule; --format json has every week")

    s = report.store
    median = "-" if s.median_days_to_second_order is None else f"{s.median_days_to_second_order:.1f} days"
    out += ["", "STORE (paid orders placed in the period)",
            f"  {s.orders} orders, {_money(s.revenue)} {cur} net, from {s.buyers} buyers",
            f"  repeat purchase rate {_pct(s.repeat_purchase_rate)} ({s.repeat_buyers} bought twice or more); "
            f"median time from first to second order {median}"]
    return "\n".join(out)


def parse_window(text: str) -> timedelta:
    """'14d', '2w', '36h' -> timedelta (ValueError with a hint otherwise)."""
    from plugin.engine.values import parse_duration

    window = parse_duration(text)
    if window <= timedelta(0):
        raise ValueError(f"window {text!r} must be longer than zero")
    return window


def parse_when(text: str | None, what: str = "time") -> datetime | None:
    """An ISO date or time as aware UTC ('2026-11-01', '2026-11-01T09:00+01:00'); None stays None."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not an ISO date or time ({exc}); write e.g. 2026-11-01") from None


def parse_cost(text: str) -> Decimal:
    """The cost of one email, e.g. '0.001' (ValueError otherwise)."""
    try:
        cost = Decimal(str(text).strip())
    except ArithmeticError:
        raise ValueError(f"send cost {text!r} is not a number: write e.g. 0.001") from None
    if not cost.is_finite() or cost < 0:
        raise ValueError(f"send cost {text!r} must be zero or more")
    return cost


__all__ = ["load_inputs", "shop_report", "format_table", "parse_window", "parse_when", "parse_cost"]
