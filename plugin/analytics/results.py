"""What analytics returns: the report and its parts as dataclasses, and their JSON form."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from plugin.analytics.inputs import ZERO

_CENT = Decimal("0.01")

LIFT_METHOD = ("Wald interval for a difference of two independent proportions "
               "(normal approximation, unpooled standard error)")
AB_METHOD = ("two-proportion z-test (pooled) for redemption and conversion, Welch z-test for revenue per "
             "customer; the leader must beat each other variant at the Bonferroni-corrected level")



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
    attributed_revenue: Decimal = ZERO
    attributed_net_revenue: Decimal = ZERO
    refunded_orders: int = 0
    cancelled_orders: int = 0
    discount_cost: Decimal = ZERO
    emails_sent: int = 0
    send_cost: Decimal = ZERO  # emails and texts
    texts_sent: int = 0
    sms_cost: Decimal = ZERO  # the texts' part of send_cost (their segments at the shop's price)
    unsubscribes: int = 0
    influenced_customers: int = 0
    influenced_revenue: Decimal = ZERO
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
