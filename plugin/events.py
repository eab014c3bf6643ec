"""The canonical, platform-neutral event model.

Connectors translate Shopify and WooCommerce payloads into these types; rules only ever see
them. Money is ``Decimal`` + currency, times are aware UTC datetimes, ids are strings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from plugin.errors import EventError

#: Events a store produces (through a connector) and rules may trigger on.
STORE_EVENTS = (
    "customer.created",
    "customer.updated",
    "customer.consent_changed",
    "order.created",
    "order.paid",
    "order.refunded",
    "order.cancelled",
)
#: Events Keepwell produces itself: a rule's ``signal`` action, and timers it scheduled.
INTERNAL_EVENTS = ("referral.converted", "timer")
EVENT_TYPES = STORE_EVENTS + INTERNAL_EVENTS


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def parse(cls, amount: Any, currency: str) -> "Money":
        return cls(Decimal(str(amount)), currency.upper())

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass(frozen=True, slots=True)
class LineItem:
    product_id: str
    quantity: int
    price: Money
    variant_id: str | None = None
    sku: str | None = None
    title: str | None = None
    product_tags: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    total: Money
    subtotal: Money | None = None
    created_at: datetime | None = None
    number: str | None = None
    line_items: tuple[LineItem, ...] = ()
    discount_codes: tuple[str, ...] = ()
    refunded: Money | None = None  # amount of this refund (order.refunded events)
    landing_site: str | None = None
    phone: str | None = None  # the buyer's, as the order gives it: identity checks (self-referral)
    shipping_address: str | None = None  # "line 1, postcode, country": identity checks
    # The store reports the whole order refunded (its own status, whatever order the webhooks
    # came in): such an order is no purchase, even when its paid event arrives afterwards.
    fully_refunded: bool = False
    # Why the store could not say which collections and tags the products have (the order was
    # decided without them after the retries ran out), else None.
    products_unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None  # None: the payload did not say
    tags: tuple[str, ...] | None = None
    birthday: date | None = None
    anniversary: date | None = None
    locale: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one customer of one shop."""

    id: str
    type: str
    shop: str
    customer_id: str
    occurred_at: datetime
    order: Order | None = None
    customer: Customer | None = None
    data: dict = field(default_factory=dict)  # internal events: signal payloads, timers

    def __post_init__(self):
        if self.type not in EVENT_TYPES:
            raise EventError(f"unknown event type {self.type!r}")
        if self.occurred_at.tzinfo is None:
            raise EventError(f"event {self.id}: occurred_at must be timezone-aware")
        if not self.customer_id:
            raise EventError(f"event {self.id}: customer_id is required")


def address_line(address, *parts: str) -> str | None:
    """One line from a platform's address object: the named ``parts`` present, joined by ", "."""
    if not isinstance(address, dict):
        return None
    found = [str(address[p]).strip() for p in parts if address.get(p) not in (None, "")]
    return ", ".join(f for f in found if f) or None


# --- JSON (JSON Lines history files, RQ job arguments) ---------------------------------------

def _money(d: Any) -> Money | None:
    if d is None:
        return None
    if isinstance(d, str):
        amount, _, currency = d.partition(" ")
        return Money.parse(amount, currency)
    return Money.parse(d["amount"], d["currency"])


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive input is taken as UTC)."""
    if value is None:
        return None
    t = datetime.fromisoformat(value)
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _tuple(v) -> tuple:
    return tuple(str(x) for x in v) if v else ()


def event_from_dict(d: dict) -> Event:
    """Build an Event from its JSON form; raises EventError with the reason if malformed."""
    try:
        order = customer = None
        if o := d.get("order"):
            order = Order(
                id=str(o["id"]),
                total=_money(o["total"]),
                subtotal=_money(o.get("subtotal")),
                created_at=parse_time(o.get("created_at")),
                number=o.get("number"),
                line_items=tuple(
                    LineItem(
                        product_id=str(li["product_id"]),
                        quantity=int(li.get("quantity", 1)),
                        price=_money(li["price"]),
                        variant_id=None if li.get("variant_id") is None else str(li["variant_id"]),
                        sku=li.get("sku"),
                        title=li.get("title"),
                        product_tags=_tuple(li.get("product_tags")),
                        collections=_tuple(li.get("collections")),
                    )
                    for li in o.get("line_items", ())
                ),
                discount_codes=tuple(str(c).lower() for c in o.get("discount_codes") or ()),
                refunded=_money(o.get("refunded")),
                landing_site=o.get("landing_site"),
                phone=o.get("phone"),
                shipping_address=o.get("shipping_address"),
                fully_refunded=bool(o.get("fully_refunded", False)),
                products_unavailable=o.get("products_unavailable"),
            )
        if c := d.get("customer"):
            tags = c.get("tags")
            customer = Customer(
                id=str(c["id"]),
                email=c.get("email"),
                first_name=c.get("first_name"),
                last_name=c.get("last_name"),
                accepts_marketing=c.get("accepts_marketing"),
                tags=None if tags is None else _tuple(tags),
                birthday=_date(c.get("birthday")),
                anniversary=_date(c.get("anniversary")),
                locale=c.get("locale"),
                created_at=parse_time(c.get("created_at")),
            )
        data = d.get("data") or {}
        if isinstance(data.get("event"), dict):  # a timer carries the event it re-checks
            data = {**data, "event": event_from_dict(data["event"])}
        return Event(
            id=str(d["id"]),
            type=d["type"],
            shop=str(d.get("shop", "")),
            customer_id=str(d["customer_id"]),
            occurred_at=parse_time(d["occurred_at"]),
            order=order,
            customer=customer,
            data=data,
        )
    except EventError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise EventError(f"malformed event {d.get('id', '?')!r}: {type(exc).__name__}: {exc}") from exc


def _json_value(v):
    if isinstance(v, Money):
        return {"amount": str(v.amount), "currency": v.currency}
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if hasattr(v, "__dataclass_fields__"):
        return {k: _json_value(getattr(v, k)) for k in v.__dataclass_fields__ if getattr(v, k) is not None}
    return v


def event_to_dict(e: Event) -> dict:
    """The JSON form of an Event (inverse of event_from_dict)."""
    return _json_value(e)
