"""What analytics measures: touches, holdouts, paid orders, attributions and unsubscribes as
plain values, the report's settings, and an index of orders by customer for window look-ups."""
from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

ZERO = Decimal(0)


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
    texts: int = 0  # text messages sent
    sms_cost: Decimal = ZERO  # what they cost (their segments at the shop's price) ...
    sms_currency: str = ""  # ... in this currency


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
    refunded: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return ZERO if self.cancelled else max(ZERO, self.total - self.refunded)


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
    discount: Decimal = ZERO
    coupon_code: str = ""
    variant: str | None = None
    cancelled: bool = False
    refunded: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return ZERO if self.cancelled else max(ZERO, self.revenue - self.refunded)


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


def same_currency(currency: str, wanted: str | None) -> bool:
    """Whether an amount in ``currency`` is summed (``wanted`` None: every amount is)."""
    return wanted is None or currency == wanted


def sms_cost(touches, currency: str | None) -> Decimal:
    """What the touches' texts cost, counted when priced in the report's currency."""
    return sum((t.sms_cost for t in touches if t.texts and same_currency(t.sms_currency, currency)), ZERO)


def send_cost(touches, settings: Settings) -> Decimal:
    """What sending the touches cost: their emails at the report's price per email, and their texts."""
    return sum(t.emails for t in touches) * settings.send_cost + sms_cost(touches, settings.currency)


def as_index(orders) -> OrderIndex:
    return orders if isinstance(orders, OrderIndex) else OrderIndex(orders)


def main_currency(inputs: Inputs) -> str | None:
    counts = Counter(o.currency for o in inputs.orders if o.currency)
    counts.update(a.currency for a in inputs.attributions if a.currency)
    return min(counts, key=lambda c: (-counts[c], c)) if counts else None
