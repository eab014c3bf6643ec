"""Attribution: a paid order that redeemed a Keepwell coupon is credited to the touch that issued it.

The worker calls ``record_attribution`` inside the transaction that folds an ``order.paid`` event
(plugin/batch.py), so the attribution commits with the state or not at all. Codes match
case-insensitively: WooCommerce lower-cases them, Keepwell issues them in capitals. One row per
(shop, order, decision): a re-delivered or reconciled order.paid adds nothing. Refunds and
cancellations are not copied here; they live in the customer's state, where reports read them.
"""
from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from plugin.db import AttributionRow, DecisionRow, EffectRow
from plugin.events import Event, Order

_CENT = Decimal("0.01")
_ZERO = Decimal(0)


def record_attribution(session, shop_id: str, event: Event) -> list[AttributionRow]:
    """For an order.paid event: one new AttributionRow per Keepwell coupon the order redeemed.
    Other events, and orders without Keepwell codes, add nothing."""
    order = event.order
    if event.type != "order.paid" or order is None or not order.discount_codes:
        return []
    codes = sorted({c.lower() for c in order.discount_codes if c})
    # ix_effects_shop_coupon_code indexes exactly (shop_id, lower(coupon_code))
    effects = session.scalars(select(EffectRow).where(
        EffectRow.shop_id == shop_id, EffectRow.type == "coupon",
        func.lower(EffectRow.coupon_code).in_(codes))).all()
    ordered_at = order.created_at or event.occurred_at
    added = []
    for effect in issuers(effects, ordered_at):
        decision = session.scalar(select(DecisionRow).where(DecisionRow.shop_id == shop_id,
                                                            DecisionRow.key == effect.decision_key))
        if decision is None:
            continue
        exists = session.scalar(select(AttributionRow.id).where(
            AttributionRow.shop_id == shop_id, AttributionRow.order_id == order.id,
            AttributionRow.decision_key == decision.key))
        if exists is not None:
            continue
        action = next((a for a in decision.decision.get("actions", ()) if a.get("key") == effect.key), {})
        row = AttributionRow(
            shop_id=shop_id, order_id=order.id, customer_id=event.customer_id, decision_key=decision.key,
            rule_id=decision.rule_id, variant=decision.decision.get("variant"), coupon_code=effect.coupon_code,
            revenue=order.total.amount, currency=order.total.currency, discount=coupon_discount(action, order),
            ordered_at=ordered_at)
        session.add(row)
        session.flush()  # a second code of the same decision on this order now finds the row
        added.append(row)
    return added


def issuers(effects: list, ordered_at: datetime) -> list:
    """The coupon effect each redeemed code is credited to, one per code.

    A personal code has exactly one. A shared code (a referral code handed out by several
    touches) goes to the newest touch issued before the order, else the oldest one: the
    invitation the friend most plausibly acted on.
    """
    by_code: dict[str, list] = {}
    for e in effects:
        by_code.setdefault(e.coupon_code.lower(), []).append(e)
    out = []
    for code in sorted(by_code):
        group = sorted(by_code[code], key=lambda e: (e.created_at, e.id))
        before = [e for e in group if e.created_at is None or e.created_at <= ordered_at]
        out.append(before[-1] if before else group[0])
    return out


def coupon_discount(action: dict, order: Order) -> Decimal:
    """What the coupon took off the order: its percentage of the goods, or its fixed amount up to
    the goods' price.

    Both stores report the subtotal *after* discounts (goods, before shipping and tax), so the
    price before the coupon is worked back from it: p% off leaves (100 - p)% of the goods, and a
    fixed amount was taken in full unless it left nothing to pay. Without a subtotal the order
    total stands in for it.
    """
    try:
        value = Decimal(str(action.get("value") or 0))
    except ArithmeticError:
        return _ZERO
    if value <= 0:
        return _ZERO
    after = (order.subtotal or order.total).amount
    if action.get("discount_type") == "percent":
        if value >= 100:  # everything was taken: the line prices are the best record of what it was
            return _money(_line_total(order))
        return _money(after * value / (100 - value))
    if after > 0:
        return _money(value)
    lines = _line_total(order)  # the coupon ate the goods; it cost at most their price
    return _money(min(value, lines) if lines > 0 else value)


def _line_total(order: Order) -> Decimal:
    return sum((li.price.amount * li.quantity for li in order.line_items), _ZERO)


def _money(x: Decimal) -> Decimal:
    return max(_ZERO, x).quantize(_CENT, rounding=ROUND_HALF_UP)


__all__ = ["record_attribution", "issuers", "coupon_discount"]
