"""The fields a rule condition may read, with their types (checked at load time).

Each getter takes an evaluation ``Context`` (event, customer state, now) and returns the value,
or None when the value is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, Callable

from plugin.engine.referral import decode_referral_code
from plugin.engine.state import CustomerState
from plugin.events import CUSTOM_PREFIX, Event, Money, Order

Getter = Callable[["Context"], Any]

# Field types.
NUMBER, MONEY, TEXT, BOOL, LIST, DURATION, DATE = "number", "money", "text", "yes/no", "list", "duration", "date"


class Context:
    """What a condition sees: the event, the customer's state, and the evaluation time."""

    __slots__ = ("event", "state", "now", "order", "settings")

    def __init__(self, event: Event, state: CustomerState, now: datetime, settings: Any = None):
        self.event = event
        self.state = state
        self.now = now
        self.order = event.order
        self.settings = settings  # the rule set's Settings (referral prefix and the shop's key)

    @property
    def currency(self) -> str | None:
        """The shop's currency: what amounts written without one mean (None while unknown)."""
        return getattr(self.settings, "currency", None)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    get: Callable[[Context], Any]
    doc: str


def _order(fn: Callable[[Order], Any]) -> Getter:
    def get(c: Context) -> Any:
        o = c.order
        return None if o is None else fn(o)
    return get


def _since(attr: str) -> Getter:
    get_time = attrgetter(attr)

    def get(c: Context) -> Any:
        t = get_time(c.state)
        return None if t is None else c.now - t
    return get


def _items(attr: str) -> Getter:
    get = attrgetter(attr)
    if attr in ("collections", "product_tags"):  # several per line item
        return _order(lambda o: frozenset().union(*map(get, o.line_items)))
    return _order(lambda o: frozenset(v for v in map(get, o.line_items) if v))


def _order_time(c: Context) -> datetime | None:
    o = c.order
    if o is None:
        return None
    return o.created_at or c.event.occurred_at


def _order_age(c: Context) -> timedelta | None:
    t = _order_time(c)
    return None if t is None else c.now - t


def _is_first(c: Context) -> bool | None:
    o = c.order
    if o is None or not c.state.orders:
        return None if o is None else False
    return c.state.first_order_id == o.id


def _referrer(c: Context) -> str | None:
    o = c.order
    if o is None:
        return None
    for code in o.discount_codes:
        cid = decode_referral_code(c.settings, c.event.shop, code, o.created_at or c.event.occurred_at)
        if cid is not None:
            return cid
    return None


def _order_status(flag: str) -> Getter:
    def get(c: Context) -> bool | None:
        o = c.order
        if o is None:
            return None
        summary = c.state.orders.get(o.id)
        return bool(summary and getattr(summary, flag))
    return get


def _data(key: str, cast: Callable[[Any], Any] | None = None) -> Getter:
    def get(c: Context) -> Any:
        v = c.event.data.get(key)
        return cast(v) if (cast and v is not None) else v
    return get


def _money_data(v: Any) -> Money:
    return v if isinstance(v, Money) else Money.parse(v["amount"], v["currency"])


_FIELDS = [
    Field("event.type", TEXT, lambda c: c.event.type, "The event's type, e.g. order.paid."),
    Field("order.id", TEXT, _order(lambda o: o.id), "The order's id."),
    Field("order.total", MONEY, lambda c: None if c.order is None else c.order.total, "The order's total, e.g. compare with 50 (the shop's currency)."),
    Field("order.subtotal", MONEY, _order(lambda o: o.subtotal), "The order's subtotal before shipping and tax."),
    Field("order.currency", TEXT, _order(lambda o: o.total.currency), "The order's currency code."),
    Field("order.discount_codes", LIST, _order(lambda o: o.discount_codes), "Discount codes used on the order (lower case)."),
    Field("order.product_ids", LIST, _items("product_id"), "Ids of the products in the order."),
    Field("order.variant_ids", LIST, _items("variant_id"), "Ids of the product variants in the order."),
    Field("order.skus", LIST, _items("sku"), "SKUs in the order."),
    Field("order.collections", LIST, _items("collections"), "Collections (or categories) of the products in the order."),
    Field("order.product_tags", LIST, _items("product_tags"), "Tags of the products in the order."),
    Field("order.item_count", NUMBER, _order(lambda o: sum(li.quantity for li in o.line_items)), "Number of items in the order."),
    Field("order.is_first", BOOL, _is_first,
          "Yes when this is the customer's earliest purchase (paid, not cancelled, not refunded in full)."),
    Field("order.referrer_id", TEXT, _referrer, "The customer whose referral code this order used, if any."),
    Field("order.refunded", BOOL, _order_status("refunded"), "Yes once any part of this order was refunded."),
    Field("order.fully_refunded", BOOL, _order_status("fully_refunded"),
          "Yes once this order was refunded in full (then it counts as no purchase)."),
    Field("order.cancelled", BOOL, _order_status("cancelled"), "Yes once this order was cancelled."),
    Field("order.age", DURATION, _order_age, "Time since the order was placed."),
    Field("customer.id", TEXT, attrgetter("state.customer_id"), "The customer's id."),
    Field("customer.email", TEXT, attrgetter("state.email"), "The customer's email address."),
    Field("customer.first_name", TEXT, attrgetter("state.first_name"), "The customer's first name."),
    Field("customer.locale", TEXT, attrgetter("state.locale"), "The customer's language, e.g. en, fr, ar."),
    Field("customer.orders_count", NUMBER, attrgetter("state.orders_count"), "Purchases so far (this one included): paid orders neither cancelled nor refunded in full."),
    Field("customer.total_spent", MONEY, attrgetter("state.total_spent"), "Total paid less refunds and cancellations."),
    Field("customer.first_order_at", DATE, attrgetter("state.first_order_at"), "When the first paid order was placed."),
    Field("customer.last_order_at", DATE, attrgetter("state.last_order_at"), "When the latest paid order was placed."),
    Field("customer.since_first_order", DURATION, _since("first_order_at"), "Time since the first paid order."),
    Field("customer.since_last_order", DURATION, _since("last_order_at"), "Time since the latest paid order."),
    Field("customer.since_signup", DURATION, _since("signed_up_at"), "Time since the customer signed up."),
    Field("customer.products_bought", LIST, attrgetter("state.products_bought"), "Ids of every product ever bought."),
    Field("customer.collections_bought", LIST, attrgetter("state.collections_bought"), "Every collection ever bought from."),
    Field("customer.accepts_marketing", BOOL, attrgetter("state.accepts_marketing"), "Yes when the customer opted in to email marketing."),
    Field("customer.tags", LIST, attrgetter("state.tags"), "The customer's tags."),
    Field("customer.birthday", DATE, attrgetter("state.birthday"), "The customer's birthday, when known."),
    Field("customer.anniversary", DATE, attrgetter("state.anniversary"), "The customer's anniversary date, when known."),
    Field("customer.referral_code", TEXT, lambda c: c.state.referral_code(c.settings), "The customer's personal referral code."),
    Field("customer.referred_by", TEXT, attrgetter("state.referred_by"), "The customer who referred this one, if any."),
    Field("customer.tier", TEXT, attrgetter("state.tier"), "The customer's VIP tier, if any."),
    Field("customer.rules_fired", LIST, lambda c: tuple(c.state.history), "Ids of the rules that have touched this customer."),
    Field("referral.friend_id", TEXT, _data("friend_id"), "(referral.converted) The referred friend's customer id."),
    Field("referral.friend_email", TEXT, _data("friend_email"), "(referral.converted) The referred friend's email."),
    Field("referral.order_total", MONEY, _data("order_total", _money_data), "(referral.converted) The friend's order total."),
    Field("survey.answer", TEXT, _data("answer"), "(survey.answered) The customer's answer: the choice, or what they wrote."),
    Field("survey.question", TEXT, _data("question"), "(survey.answered) The id of the question answered."),
    Field("survey.rule", TEXT, _data("rule"), "(survey.answered) The rule whose touch asked the question."),
    Field("page.channel", TEXT, _data("channel"), "(page.opened) The channel of the message whose link was opened."),
]

FIELDS: dict[str, Field] = {f.name: f for f in _FIELDS}

#: ``event.data.<name>``: what a custom event (``POST /api/v1/events``) carries in its ``data``.
DATA_PREFIX = "event.data."


def _number(v: Any) -> Decimal | None:
    """A number, or text that is one ("31.5"): data sent as JSON text still compares as a number."""
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal, str)):
        return None
    try:
        n = Decimal(str(v).strip())
    except ArithmeticError:
        return None
    return n if n.is_finite() else None


def _text(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    return str(v) if isinstance(v, (int, Decimal)) and not isinstance(v, bool) else None


def _list(v: Any) -> frozenset[str] | None:
    if isinstance(v, list):
        return frozenset(t for t in map(_text, v) if t is not None)
    t = _text(v)
    return None if t is None else frozenset((t,))


_AS: dict[str, Callable[[Any], Any]] = {
    NUMBER: _number, TEXT: _text, LIST: _list,
    BOOL: lambda v: v if isinstance(v, bool) else None,
    DATE: lambda v: v,  # exists: any value
}


def data_field(name: str, ftype: str) -> Field:
    """The field ``event.data.a.b`` read as ``ftype`` (the type the condition's value has): a value
    of another type reads as missing. Only a custom event's data is read (a timer's is internal)."""
    steps = name[len(DATA_PREFIX):].split(".")
    cast = _AS[ftype]

    def get(c: Context) -> Any:
        if not c.event.type.startswith(CUSTOM_PREFIX):
            return None
        v: Any = c.event.data
        for key in steps:
            if not isinstance(v, dict):
                return None
            v = v.get(key)
        return None if v is None else cast(v)
    return Field(name, ftype, get, "A value the custom event carries in its data.")
