"""The canonical, platform-neutral event model.

Connectors translate Shopify and WooCommerce payloads into these types; rules only ever see
them. Money is ``Decimal`` + currency, times are aware UTC datetimes, ids are strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, overload

from plugin import shape
from plugin.errors import EventError, PayloadError

#: Events a store produces (through a connector) and rules may trigger on.
STORE_EVENTS = (
    "customer.created",
    "customer.updated",
    "customer.consent_changed",
    "order.created",
    "order.paid",
    "order.refunded",
    "order.cancelled",
    "occasion.captured",  # derived from an order's checkout fields (plugin/engine/occasions.py)
)
#: Events a customer produces on their personal page (``/p/<token>``): answers rules may trigger on.
PAGE_EVENTS = (
    "customer.preference_changed",  # data: {"preferred_channel": "email" | "sms"}
    "survey.answered",
    "page.opened",
)
#: The channels a message can go out on, in the shops' default order.
CHANNELS = ("email", "sms")
#: Events Keepwell produces itself: a rule's ``signal`` action, and timers it scheduled.
INTERNAL_EVENTS = ("referral.converted", "timer")
EVENT_TYPES = STORE_EVENTS + PAGE_EVENTS + INTERNAL_EVENTS
#: The merchant's own events (``POST /api/v1/events``): ``custom.`` and a name of their choosing.
CUSTOM_PREFIX = "custom."
_CUSTOM = re.compile(r"custom\.[a-z0-9][a-z0-9_.-]{0,63}")


def is_custom(event_type: object) -> bool:
    """``custom.heatwave``: a merchant's own event type (lower case letters, digits, ``_.-``)."""
    return isinstance(event_type, str) and _CUSTOM.fullmatch(event_type) is not None


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str | None  # None only in rule literals: the shop's own currency

    @classmethod
    def parse(cls, amount: Any, currency: str) -> "Money":
        return cls(Decimal(str(amount)), currency.upper())

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}" if self.currency else str(self.amount)


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
    attributes: tuple[tuple[str, str], ...] = ()  # checkout fields: Shopify note_attributes, WooCommerce meta


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None  # None: the payload did not say
    phone: str | None = None  # the customer's mobile number as the store holds it
    sms_consent: bool | None = None  # SMS marketing consent; None: the payload did not say
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
        if self.type not in EVENT_TYPES and not is_custom(self.type):
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


# --- JSON (JSON Lines history files, RQ job arguments, the backlog) ----------------------------

def _money(d: Any, where: str, required: bool = False) -> Money | None:
    if d is None:
        if required:
            raise EventError(f"{where}: missing")
        return None
    if isinstance(d, str):
        amount, _, currency = d.partition(" ")
    elif isinstance(d, dict):
        amount, currency = d.get("amount"), d.get("currency")
    else:
        raise EventError(f"{where}: {type(d).__name__} is not money")
    return Money(shape.amount(amount, where), shape.currency(currency, where))


@overload
def parse_time(value: str) -> datetime: ...
@overload
def parse_time(value: str | None) -> datetime | None: ...
def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive input is taken as UTC)."""
    if value is None:
        return None
    t = datetime.fromisoformat(value)
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def _time(d: dict, key: str, where: str) -> datetime | None:
    value = shape.text(d, key, where)
    return None if value is None else parse_time(value)


def _date(d: dict, key: str, where: str) -> date | None:
    value = shape.text(d, key, where)
    return date.fromisoformat(value) if value else None


def _tuple(d: dict, key: str, where: str) -> tuple:
    value = d.get(key)
    return tuple(shape.scalars(value, f"{where} {key}")) if value else ()


def _line_item(li: dict, where: str) -> LineItem:
    return LineItem(
        product_id=_required_text(li, "product_id", where),
        quantity=shape.quantity(li.get("quantity", 1), f"{where} quantity"),
        price=_money(li.get("price"), f"{where} price", required=True),
        variant_id=shape.text(li, "variant_id", where),
        sku=shape.text(li, "sku", where),
        title=shape.text(li, "title", where),
        product_tags=_tuple(li, "product_tags", where),
        collections=_tuple(li, "collections", where),
    )


def _order(o: dict) -> Order:
    where = "order"
    return Order(
        id=_required_text(o, "id", where),
        total=_money(o.get("total"), "order total", required=True),
        subtotal=_money(o.get("subtotal"), "order subtotal"),
        created_at=_time(o, "created_at", where),
        number=shape.text(o, "number", where),
        line_items=tuple(_line_item(li, "order line item") for li in shape.objects(o, "line_items", where)),
        discount_codes=tuple(c.lower() for c in _tuple(o, "discount_codes", where)),
        refunded=_money(o.get("refunded"), "order refunded"),
        landing_site=shape.text(o, "landing_site", where),
        phone=shape.text(o, "phone", where),
        shipping_address=shape.text(o, "shipping_address", where),
        fully_refunded=bool(shape.flag(o, "fully_refunded", where)),
        products_unavailable=shape.text(o, "products_unavailable", where),
        attributes=_attributes(o, where),
    )


def _attributes(o: dict, where: str) -> tuple[tuple[str, str], ...]:
    """An order's checkout fields: a list of [name, value] pairs."""
    raw = o.get("attributes") or ()
    if not isinstance(raw, (list, tuple)) or not all(isinstance(a, (list, tuple)) and len(a) == 2 for a in raw):
        raise PayloadError(f"{where}: 'attributes' must be a list of [name, value] pairs")
    return tuple((str(k), str(v)) for k, v in raw)


def _customer(c: dict) -> Customer:
    where = "customer"
    tags = c.get("tags")
    return Customer(
        id=_required_text(c, "id", where),
        email=shape.text(c, "email", where),
        first_name=shape.text(c, "first_name", where),
        last_name=shape.text(c, "last_name", where),
        accepts_marketing=shape.flag(c, "accepts_marketing", where),
        phone=shape.text(c, "phone", where),
        sms_consent=shape.flag(c, "sms_consent", where),
        tags=None if tags is None else tuple(shape.scalars(tags, "customer tags")),
        birthday=_date(c, "birthday", where),
        anniversary=_date(c, "anniversary", where),
        locale=shape.text(c, "locale", where),
        created_at=_time(c, "created_at", where),
    )


def _required_text(d: dict, key: str, where: str) -> str:
    value = shape.text(d, key, where)
    if value is None:
        raise EventError(f"{where}: missing '{key}'")
    return value


def event_from_dict(d: dict) -> Event:
    """Build an Event from its JSON form; raises EventError (a PayloadError) with the reason if malformed."""
    if not isinstance(d, dict):
        raise EventError(f"an event is a JSON object, not {type(d).__name__}")
    try:
        shape.check_depth(d)
        order = _order(o) if (o := shape.obj(d, "order", "event")) else None
        customer = _customer(c) if (c := shape.obj(d, "customer", "event")) else None
        data = shape.obj(d, "data", "event") or {}
        if isinstance(data.get("event"), dict):  # a timer carries the event it re-checks
            data = {**data, "event": event_from_dict(data["event"])}
        occurred_at = _time(d, "occurred_at", "event")
        if occurred_at is None:
            raise EventError("event: missing 'occurred_at'")
        if order is None and str(d.get("type", "")).startswith("order."):
            raise EventError(f"event {d.get('id', '?')!r}: an {d.get('type')} event needs its 'order'")
        return Event(
            id=_required_text(d, "id", "event"),
            type=_required_text(d, "type", "event"),
            shop=shape.text(d, "shop", "event") or "",
            customer_id=_required_text(d, "customer_id", "event"),
            occurred_at=occurred_at,
            order=order,
            customer=customer,
            data=data,
        )
    except EventError:
        raise
    except PayloadError as exc:
        raise EventError(f"malformed event {d.get('id', '?')!r}: {exc}") from exc
    except ValueError as exc:  # a date or time that is not ISO 8601
        raise EventError(f"malformed event {d.get('id', '?')!r}: {exc}") from exc


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
