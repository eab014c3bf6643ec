"""A decision told as a story a merchant can follow: "Order #1201 paid → waited 14 days → still no
second order → sent 15% coupon THANKS-… by email → redeemed on order #1244 (+64.00 USD)"."""
from __future__ import annotations

from decimal import Decimal

from plugin.admin.people import REASONS, days
from plugin.engine.conditions import Group, Leaf
from plugin.explain import _trigger_text

# Conditions a merchant reads more easily in words than as field, operator and value.
_PLAIN = {
    ("customer.orders_count", "equals", "1"): "no second order",
    ("customer.orders_count", "equals", "0"): "no order yet",
    ("customer.accepts_marketing", "equals", "True"): "subscribed to marketing",
    ("order.is_first", "equals", "True"): "first order",
}


def _leaves(node) -> list:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Group) and node.kind == "all":
        return [leaf for child in node.children for leaf in _leaves(child)]
    return []


def _condition_words(rule) -> str | None:
    """What the rule re-checked after its delay, in words, when the story can say it plainly."""
    words = [_PLAIN.get((leaf.field, leaf.op, str(leaf.expected))) for leaf in _leaves(rule.condition)]
    words = [w for w in words if w and w != "first order"]
    return " and ".join(words) or None


def _trigger(anchor: str, rule) -> str:
    kind, _, ref = anchor.partition(":")
    if kind == "order.paid" and ref:
        return f"Order #{ref.split(':')[0]} paid"
    if kind == "customer.created":
        return "Signed up"
    if kind.startswith("custom."):
        return f"Your event {kind}"
    if rule is not None:
        text = _trigger_text(rule)
        return text[0].upper() + text[1:]
    return kind or "Triggered"


def _discount(a: dict) -> str:
    value = Decimal(str(a.get("value", 0))).normalize()
    if a.get("discount_type") == "percent":
        return f"{value:f}%"
    return f"{Decimal(str(a.get('value', 0))):,.2f} {a.get('currency') or ''}".strip()


def _actions(actions: list[dict]) -> str:
    coupon = next((a for a in actions if a.get("type") == "coupon"), None)
    email = next((a for a in actions if a.get("type") == "email"), None)
    if coupon:
        text = f"sent {_discount(coupon)} coupon {coupon.get('code', '')}".rstrip()
        return text + (" by email" if email else "")
    if email:
        return f"sent the email “{email.get('template', '')}”"
    others = [a.get("type", "") for a in actions]
    return "did " + ", ".join(others) if others else "no action"


def story(row, rule, redemption: dict | None, money) -> list[str]:
    """The steps of one ledger decision; ``redemption`` is the attributed order, if any."""
    anchor = row.key.removeprefix(f"{row.shop_id}:{row.rule_id}:{row.customer_id}:")
    steps = [_trigger(anchor, rule)]
    if rule is not None and rule.delay:
        steps.append(f"waited {days(rule.delay)}")
        if row.kind == "touch" and (still := _condition_words(rule)):
            steps.append(f"still {still}")
    if row.kind != "touch":
        reason = REASONS.get(row.reason or "", row.reason or "")
        steps.append(f"skipped: {reason}" + (f" ({row.detail})" if row.detail else ""))
        return steps
    steps.append(_actions([a for a in (row.decision or {}).get("actions") or () if isinstance(a, dict)]))
    if row.status == "failed":
        steps.append(f"failed: {row.error or 'see details'}")
    elif redemption:
        steps.append(f"redeemed on order #{redemption['order']} (+{money(redemption['revenue'])} "
                     f"{redemption['currency']})".replace(" )", ")"))
    elif any(isinstance(a, dict) and a.get("type") == "coupon" for a in (row.decision or {}).get("actions") or ()):
        steps.append("not redeemed yet")
    return steps
