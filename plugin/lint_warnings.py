"""Warnings for rules that are valid but unwise: a coupon that never expires, a marketing rule
nobody can measure (no holdout), a discount over half the price, and a rule whose conditions
contradict each other so it can never fire. A warning never rejects a rule set."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from plugin.engine.conditions import Group, Leaf
from plugin.engine.fields import BOOL, FIELDS, MONEY
from plugin.engine.values import format_duration

BIG_DISCOUNT = Decimal(50)
_INF = None  # an open end of a range


@dataclass(frozen=True)
class RuleWarning:
    """A warning about one rule: the YAML path below the rule it points at, and the message."""

    path: tuple
    message: str


def rule_warnings(rule, raw: dict) -> list[RuleWarning]:
    """The warnings for compiled ``rule``, whose YAML mapping is ``raw``."""
    out = []
    for j, action in enumerate(rule.actions):
        if action.type != "coupon":
            continue
        path = ("actions", j, "coupon")
        if action.expires_in is None and not action.referral:
            out.append(RuleWarning(path, "this coupon never expires: add expires_in (e.g. 30d), or a code sent once "
                                      "stays good for ever and a deadline is what brings customers back"))
        if action.discount_type == "percent" and action.value > BIG_DISCOUNT:
            out.append(RuleWarning(path + ("discount",), f"a {format(action.value.normalize(), 'f')}% discount is over "
                                                      f"half the price: check it is not a typo"))
    for k, variant in enumerate(rule.variants):
        for action in variant.actions:
            if action.type == "coupon" and action.discount_type == "percent" and action.value > BIG_DISCOUNT:
                out.append(RuleWarning(("variants", k, "coupon", "discount"),
                                    f"variant {variant.name!r}: a {format(action.value.normalize(), 'f')}% discount "
                                    "is over half the price: check it is not a typo"))
    if rule.marketing and "holdout" not in raw:
        out.append(RuleWarning(("id",), "a marketing rule without a holdout: nobody can tell what it earns. Add "
                                     "holdout: 10% (or write holdout: 0% to reach everyone on purpose)"))
    if rule.condition is not None:
        clash = contradiction(rule.condition)
        if clash:
            out.append(RuleWarning(("when",), f"this rule can never fire: {clash}"))
    return out


# --- contradictions -----------------------------------------------------------------------------

def _key(value):
    """A comparable key for a condition value (money: its amount, within one currency)."""
    return value.amount if hasattr(value, "amount") else value


def _leaves(node) -> list[Leaf]:
    """The tests that must all hold for ``node`` to hold (through nested ``all``)."""
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Group) and node.kind == "all":
        return [leaf for child in node.children for leaf in _leaves(child)]
    return []


def _implied(leaf: Leaf) -> list[tuple[str, str, object, str]]:
    """(field, op, value, as written) the leaf asks for, with order.is_first also read as a
    bound on customer.orders_count (which counts this order)."""
    written = f"{leaf.field}: {{{leaf.op}: {_text(leaf.expected)}}}"
    out = [(leaf.field, leaf.op, leaf.expected, written)]
    if leaf.field == "order.is_first" and leaf.op in ("equals", "not_equals"):
        first = leaf.expected if leaf.op == "equals" else not leaf.expected
        out.append(("customer.orders_count", "equals" if first else "at_least", Decimal(1 if first else 2), written))
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "total_seconds"):
        return format_duration(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_text, value)) + "]"
    return str(value)


class _Range:
    """What one ordered field may still be: low and high bounds (inclusive flags), a set of
    allowed values (equals/in) and the tests that set each."""

    def __init__(self):
        self.low = self.high = None  # (key, inclusive, written)
        self.exists = None  # (bool, written)

    def narrow(self, op, value, written) -> str | None:
        if op == "exists":
            if self.exists and self.exists[0] != value:
                return f"{self.exists[1]} and {written}"
            self.exists = (value, written)
            if not value and (self.low or self.high):
                return f"{(self.low or self.high)[2]} and {written}"
            return None
        if self.exists and not self.exists[0]:
            return f"{self.exists[1]} and {written}"
        lo, hi = value if op == "between" else (value, value)
        bounds = {"equals": [("low", lo, True), ("high", hi, True)], "at_least": [("low", lo, True)],
                  "greater_than": [("low", lo, False)], "at_most": [("high", hi, True)],
                  "less_than": [("high", hi, False)], "between": [("low", lo, True), ("high", hi, True)]}
        for side, v, inclusive in bounds.get(op, ()):
            current = getattr(self, side)
            k = _key(v)
            tighter = current is None or (k > current[0] if side == "low" else k < current[0]) or \
                (k == current[0] and not inclusive)
            if tighter:
                setattr(self, side, (k, inclusive, written))
        if self.low and self.high:
            lo, hi = self.low, self.high
            if lo[0] > hi[0] or (lo[0] == hi[0] and not (lo[1] and hi[1])):
                return f"{lo[2]} and {hi[2]}" if lo[2] != hi[2] else None
        return None


def contradiction(condition) -> str | None:
    """Two tests of ``condition`` that cannot both hold, in words, or None."""
    ranges: dict[str, _Range] = {}
    values: dict[str, tuple] = {}  # field -> (equals value, written) for text and true/false fields
    currencies: dict[str, str] = {}
    for leaf in _leaves(condition):
        for fname, op, value, written in _implied(leaf):
            if fname not in FIELDS:
                continue  # event.data.*: each test reads the value as its own type
            ftype = FIELDS[fname].type
            if ftype == MONEY and op != "exists":
                first = value[0] if op == "between" else value
                currency = getattr(first, "currency", None)
                if currencies.setdefault(fname, currency) != currency:
                    continue  # amounts in two currencies are never compared
            if ftype == BOOL or (op == "equals" and not hasattr(_key(value), "__lt__")):
                if op == "equals":
                    seen = values.get(fname)
                    if seen and seen[0] != value:
                        return f"{seen[1]} and {written} cannot both hold"
                    values[fname] = (value, written)
                continue
            if op in ("equals", "at_least", "greater_than", "at_most", "less_than", "between", "exists"):
                if op == "equals" and isinstance(value, str):
                    seen = values.get(fname)
                    if seen and seen[0] != value:
                        return f"{seen[1]} and {written} cannot both hold"
                    values[fname] = (value, written)
                    continue
                clash = ranges.setdefault(fname, _Range()).narrow(op, value, written)
                if clash:
                    return f"{clash} cannot both hold"
    return None
