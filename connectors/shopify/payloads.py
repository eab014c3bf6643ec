"""Shopify webhook payloads (REST-shaped JSON) -> canonical events.

Choices worth knowing:
- Ids become strings of the JSON integers; a float id is refused, because Shopify ids exceed
  2**53 and a float has already lost digits. A resource's own id is read from its
  ``admin_graphql_api_id`` when present (a string cannot lose digits).
- Orders without a customer (guest checkouts) give no event: there is nobody to retain.
- Line items without a product (custom items) are kept with ``product_id=""`` so item counts,
  SKUs and prices stay true; an empty id names no product.
- ``buyer_accepts_marketing: true`` means opt-in at checkout; ``false`` says nothing (None),
  because not ticking the box is not an unsubscribe.
- ``customer.tags_added`` / ``customer.tags_removed`` are ignored: they list only the changed
  tags, while ``Customer.tags`` means the customer's whole tag set.
- Event ids are ``shopify:<topic>:<resource id>:<updated_at in UTC>``, so every delivery of one
  change has the same id, and so has reconciliation's view of it while the resource is unchanged.
- Every field read is type-checked (``plugin.shape``): a wrong shape is a PayloadError naming the
  field, never a TypeError deep in the worker.
- Order webhooks carry no product collections or tags: ``connectors.shopify.products`` asks the
  store for them (cached), so parsing an order may raise a retryable StoreError.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable

from connectors.base import Shop, checkout_fields
from connectors.shopify import api, products, sms
from plugin import shape
from plugin.errors import PayloadError
from plugin.events import Customer, Event, LineItem, Money, Order, address_line, parse_time

ORDER_TOPICS = {"orders/create": "order.created", "orders/paid": "order.paid", "orders/cancelled": "order.cancelled"}
CUSTOMER_TOPICS = {"customers/create": "customer.created", "customers/update": "customer.updated"}
REFUND_TOPIC = "refunds/create"
#: The header says ``customers_email_marketing_consent/update``; the GraphQL enum reads like the second form.
CONSENT_TOPICS = ("customers_email_marketing_consent/update", "customers/email_marketing_consent_update")

#: email_marketing_consent.state -> Customer.accepts_marketing (pending: not decided yet).
CONSENT_STATES = {"subscribed": True, "not_subscribed": False, "unsubscribed": False, "redacted": False,
                  "invalid": False, "pending": None}

NO_CURRENCY = "XXX"  # ISO 4217's code for "no currency", which Shopify reports on some refunds

#: financial_status values of an order that has been paid (refunded ones were paid first)
PAID_STATUSES = {"paid", "partially_refunded", "refunded", "partially_paid"}

CustomerOfOrder = Callable[[str], "str | None"]

ORDER_CUSTOMER_QUERY = """
query KeepwellOrderCustomer($id: ID!) {
  order(id: $id) {
    id
    customer { id }
  }
}
"""


def parse(shop: Shop, topic: str, payload: dict,
          customer_of_order: CustomerOfOrder | None = None) -> list[Event]:
    """Canonical events for one webhook payload (possibly none); PayloadError if malformed.

    Refund payloads carry no customer: ``customer_of_order(order_id)`` is asked first, then the
    store (so a refund can raise StoreError when that lookup fails). Orders ask the store for
    their products' collections and tags (a retryable StoreError when that lookup should be retried).
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"{topic}: payload is not a JSON object")
    shape.check_depth(payload)
    if topic in ORDER_TOPICS:
        return products.enrich(shop, _order_events(shop, topic, payload))
    if topic in CUSTOMER_TOPICS:
        return [_customer_event(shop, topic, payload)]
    if topic in CONSENT_TOPICS:
        return [_consent_event(shop, topic, payload)]
    if topic == REFUND_TOPIC:
        return _refund_events(shop, payload, customer_of_order)
    if topic == sms.TOPIC:
        return [sms.consent_event(shop, payload)]
    return []  # app/uninstalled, compliance and tag topics are handled elsewhere or not needed


# --- orders ------------------------------------------------------------------------------------

def _order_events(shop: Shop, topic: str, p: dict) -> list[Event]:
    order_id = _resource_id(p, topic)
    c = shape.obj(p, "customer", topic)
    if c is None:
        return []
    customer_id = _resource_id(c, f"{topic} customer")
    currency = shape.currency(_required(p, "currency", topic), topic)
    when = {
        "orders/create": ("created_at", "processed_at"),
        "orders/paid": ("processed_at", "created_at"),
        "orders/cancelled": ("cancelled_at", "updated_at"),
    }[topic]
    occurred_at = _first_time(p, when, topic)
    shipping = shape.obj(p, "shipping_address", topic)
    customer = Customer(
        id=customer_id,
        email=_text(c, "email", topic) or _text(p, "email", topic) or _text(p, "contact_email", topic) or None,
        first_name=_text(c, "first_name", topic),
        last_name=_text(c, "last_name", topic),
        accepts_marketing=True if p.get("buyer_accepts_marketing") is True else None,
        locale=_text(p, "customer_locale", topic),
        created_at=_time(c, "created_at", topic),
        sms_consent=(texts := sms.consent(c, f"{topic} customer")),
        phone=(_text(c, "phone", f"{topic} customer") or None) if texts is not None else None,  # the consent's number
    )
    order = Order(
        id=order_id,
        total=_shop_money(p, "total_price", currency, topic),
        subtotal=_shop_money(p, "subtotal_price", currency, topic) if p.get("subtotal_price") is not None else None,
        created_at=_first_time(p, ("processed_at", "created_at"), topic),
        number=_text(p, "name", topic) or _text(p, "order_number", topic),
        line_items=tuple(_line_item(li, currency, topic) for li in shape.objects(p, "line_items", topic)),
        discount_codes=tuple(code.lower() for d in shape.objects(p, "discount_codes", topic)
                             if (code := _text(d, "code", f"{topic} discount code"))),
        landing_site=_text(p, "landing_site", topic),
        phone=_text(p, "phone", topic) or _text(shipping or {}, "phone", f"{topic} shipping_address")
        or _text(c, "phone", f"{topic} customer") or None,
        shipping_address=address_line(shipping, "address1", "zip", "country_code"),
        fully_refunded=p.get("financial_status") == "refunded",
        attributes=checkout_fields((a.get("name"), a.get("value")) for a in shape.objects(p, "note_attributes", topic)),
    )
    return [Event(
        id=event_id(topic, order_id, _stamp(p, ("updated_at", "created_at"), topic)),
        type=ORDER_TOPICS[topic],
        shop=shop.id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        order=order,
        customer=customer,
    )]


def _line_item(li: dict, currency: str, topic: str) -> LineItem:
    where = f"{topic} line item {li.get('id', '?')}"
    product = li.get("product_id")
    return LineItem(
        product_id="" if product is None else _id(li, "product_id", where),
        variant_id=None if li.get("variant_id") is None else _id(li, "variant_id", where),
        quantity=shape.quantity(_required(li, "quantity", where), f"{where} 'quantity'"),
        price=_shop_money(li, "price", currency, where),
        sku=_text(li, "sku", where) or None,
        title=_text(li, "title", where) or _text(li, "name", where),
    )


# --- refunds -----------------------------------------------------------------------------------

def _refund_events(shop: Shop, p: dict, customer_of_order: CustomerOfOrder | None) -> list[Event]:
    topic = REFUND_TOPIC
    refund_id = _id(p, "id", topic)
    order_id = _id(p, "order_id", topic)
    amount, currency = refund_amount(p)
    customer_id = customer_of_order(order_id) if customer_of_order else None
    if not customer_id:
        customer_id = order_customer(shop, order_id)
    if not customer_id:
        return []  # a guest order (or one deleted since): no customer to attribute the refund to
    refunded = Money(amount, currency)
    return [Event(
        id=event_id(topic, refund_id, _stamp(p, ("created_at", "processed_at"), topic)),
        type="order.refunded",
        shop=shop.id,
        customer_id=str(customer_id),
        occurred_at=_first_time(p, ("processed_at", "created_at"), topic),
        # The refund payload has no order total; the refunded amount stands in for it.
        order=Order(id=order_id, total=refunded, refunded=refunded),
        data={"refund_id": refund_id},
    )]


def refund_amount(p: dict) -> tuple[Decimal, str]:
    """Money a refund returned: its successful refund transactions, else its line-item subtotals."""
    topic = REFUND_TOPIC
    transactions = shape.objects(p, "transactions", topic)
    if transactions:
        ok = [t for t in transactions if t.get("kind") == "refund" and t.get("status") == "success"]
        amount = sum((_decimal(t, "amount", f"{topic} transaction") for t in ok), Decimal(0))
        # Transactions are in the currency the buyer paid in; Shopify often sends their "currency"
        # as null, and then the presentment side of the refund's money objects names it.
        currencies = [t.get("currency") for t in ok] + _set_currencies(p, "presentment_money")
    else:
        lines = shape.objects(p, "refund_line_items", topic)
        amount = sum((_decimal(li, "subtotal", f"{topic} refund line item") for li in lines), Decimal(0))
        currencies = _set_currencies(p, "shop_money")
    currency = next((c for c in currencies if c and c != NO_CURRENCY), None)
    if currency is None:
        raise PayloadError(f"{topic} {p.get('id')}: no currency in transactions or refund_line_items")
    return _in_shop_money(p, amount, shape.currency(currency, topic))


def _in_shop_money(p: dict, amount: Decimal, currency: str) -> tuple[Decimal, str]:
    """A refund in the buyer's currency, converted at the rate the refund's own money objects show
    (shop_money beside presentment_money), so it is subtracted from an order kept in shop money."""
    where = f"{REFUND_TOPIC} refund_line_items subtotal_set"
    for li in shape.objects(p, "refund_line_items", REFUND_TOPIC):
        money_set = shape.obj(li, "subtotal_set", where) or {}
        shop, shown = shape.obj(money_set, "shop_money", where) or {}, shape.obj(money_set, "presentment_money", where) or {}
        if not shown.get("currency_code") or not shop.get("currency_code"):
            continue
        if shape.currency(shown["currency_code"], where) != currency:
            continue
        shop_currency = shape.currency(shop["currency_code"], where)
        if shop_currency == currency:
            return amount, currency
        shown_amount = shape.amount(shown.get("amount") or 0, f"{where} presentment_money")
        if shown_amount:
            rate = shape.amount(shop.get("amount") or 0, f"{where} shop_money") / shown_amount
            return (amount * rate).quantize(Decimal("0.01")), shop_currency
    return amount, currency


def _set_currencies(p: dict, side: str) -> list:
    sets = [li.get("subtotal_set") for li in shape.objects(p, "refund_line_items", REFUND_TOPIC)] + [p.get("total_duties_set")]
    money = [s.get(side) for s in sets if isinstance(s, dict)]
    return [m.get("currency_code") for m in money if isinstance(m, dict)]


def order_customer(shop: Shop, order_id: str) -> str | None:
    """The numeric id of the customer who placed ``order_id``, asked of the store; None for a guest."""
    data = api.execute(shop, ORDER_CUSTOMER_QUERY, {"id": api.gid("Order", order_id)})
    order = data.get("order") or {}
    return api.numeric_id((order.get("customer") or {}).get("id"))


# --- customers ---------------------------------------------------------------------------------

def _customer_event(shop: Shop, topic: str, p: dict) -> Event:
    customer_id = _resource_id(p, topic)
    stamp_key = "created_at" if topic == "customers/create" else "updated_at"
    occurred_at = _first_time(p, (stamp_key, "updated_at", "created_at"), topic)
    tags = p.get("tags")
    consent = p.get("email_marketing_consent")  # absent from webhooks since 2025-01; reconciliation adds it
    customer = Customer(
        id=customer_id,
        email=_text(p, "email", topic),
        first_name=_text(p, "first_name", topic),
        last_name=_text(p, "last_name", topic),
        accepts_marketing=CONSENT_STATES.get(str(consent.get("state")).lower()) if isinstance(consent, dict) else None,
        tags=None if tags is None else _tags(tags, topic),
        locale=_text(p, "locale", topic),
        created_at=_time(p, "created_at", topic),
        phone=_text(p, "phone", topic) or None,
        sms_consent=sms.consent(p, topic),  # absent from webhooks since 2025-01 (customers_marketing_consent/update)
    )
    return Event(
        id=event_id(topic, customer_id, _stamp(p, (stamp_key, "updated_at", "created_at"), topic)),
        type=CUSTOMER_TOPICS[topic],
        shop=shop.id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        customer=customer,
    )


def _consent_event(shop: Shop, topic: str, p: dict) -> Event:
    customer_id = _id(p, "customer_id", topic)
    consent = p.get("email_marketing_consent")
    state = _text(consent, "state", f"{topic} email_marketing_consent") if isinstance(consent, dict) else None
    if not state:
        raise PayloadError(f"{topic}: missing 'email_marketing_consent.state'")
    state = state.lower()
    updated = _text(consent, "consent_updated_at", topic)
    # The official sample has no consent time; then the event is dated when it was received.
    occurred_at = _time(consent, "consent_updated_at", topic) or datetime.now(timezone.utc)
    return Event(
        id=event_id(CONSENT_TOPICS[0], customer_id, updated, state),
        type="customer.consent_changed",
        shop=shop.id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        customer=Customer(id=customer_id, email=_text(p, "email_address", topic), accepts_marketing=CONSENT_STATES.get(state)),
    )


# --- helpers -----------------------------------------------------------------------------------

def event_id(topic: str, resource_id: str, stamp: str | None, *extra: str) -> str:
    """A deterministic event id; the timestamp is normalised to UTC so equal instants give equal ids."""
    try:
        t = parse_time(stamp) if stamp else None
    except ValueError:
        raise PayloadError(f"{topic} {resource_id}: 'updated_at' is not an ISO time: {stamp!r}") from None
    parts = ["shopify", topic, resource_id, t.isoformat() if t else "-", *extra]
    return ":".join(parts)


def _resource_id(d: dict, where: str) -> str:
    """The resource's own id, from ``admin_graphql_api_id`` when present: being a string, it
    survives any JSON hop that turned the numeric ``id`` into a float (as happened to Shopify's
    published samples)."""
    if d.get("admin_graphql_api_id"):
        return _id(d, "admin_graphql_api_id", where)
    return _id(d, "id", where)


def _id(d: dict, key: str, where: str) -> str:
    value = d.get(key)
    if isinstance(value, bool) or value is None or value == "":
        raise PayloadError(f"{where}: missing '{key}'")
    if isinstance(value, float):
        raise PayloadError(f"{where}: '{key}' is a float ({value!r}); Shopify ids must stay exact integers")
    if isinstance(value, int):
        return str(value)
    text = api.numeric_id(str(value))
    if not text.isdigit():
        raise PayloadError(f"{where}: '{key}' is not an id: {value!r}")
    return text


def _required(d: dict, key: str, where: str):
    value = d.get(key)
    if value in (None, ""):
        raise PayloadError(f"{where}: missing '{key}'")
    return value


def _decimal(d: dict, key: str, where: str) -> Decimal:
    # subtotals are JSON numbers in refund payloads; shape.amount keeps 89.99 as typed
    return shape.amount(_required(d, key, where), f"{where} '{key}'")


def _money(d: dict, key: str, currency: str, where: str) -> Money:
    return Money(_decimal(d, key, where), currency)


def _text(d: dict, key: str, where: str) -> str | None:
    return shape.text(d, key, where)


def _stamp(d: dict, keys: tuple[str, ...], where: str) -> str | None:
    """The first of ``keys`` that holds a string (the version part of an event id)."""
    return next((t for t in (_text(d, k, where) for k in keys) if t), None)


def _shop_money(d: dict, key: str, currency: str, where: str) -> Money:
    """An amount in the shop's currency: ``KEY_set.shop_money`` when the payload has it (a
    multi-currency order's plain ``KEY`` may be in the buyer's), else ``KEY`` in ``currency``.
    The plain ``KEY``, when given, must be an amount either way."""
    plain = _money(d, key, currency, where) if d.get(key) is not None else None
    money_set = shape.obj(d, f"{key}_set", where) or {}
    shop = shape.obj(money_set, "shop_money", f"{where} {key}_set") or {}
    if shop.get("amount") is not None and shop.get("currency_code"):
        return _money(shop, "amount", shape.currency(shop["currency_code"], f"{where} {key}_set"), f"{where} {key}_set")
    return plain if plain is not None else _money(d, key, currency, where)


def _time(d: dict, key: str, where: str) -> datetime | None:
    value = d.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: '{key}' is {type(value).__name__}, not an ISO time")
    try:
        return parse_time(value)
    except ValueError:
        raise PayloadError(f"{where}: '{key}' is not an ISO time: {value!r}") from None


def _first_time(d: dict, keys: tuple[str, ...], where: str) -> datetime:
    for key in keys:
        t = _time(d, key, where)
        if t is not None:
            return t
    raise PayloadError(f"{where}: missing '{keys[0]}'")


def _tags(value, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else shape.scalars(value, f"{where} tags")
    return tuple(t.strip() for t in items if t.strip())


def export_deliveries(order: dict) -> list[tuple[str, dict]]:
    """The webhooks one order of a REST orders export stands for, in order: created, paid,
    cancelled, then one refunds/create per refund (``simulate --from shopify``)."""
    out = [("orders/create", order)]
    if order.get("financial_status") in PAID_STATUSES:
        out.append(("orders/paid", order))
    if order.get("cancelled_at"):
        out.append(("orders/cancelled", order))
    out += [(REFUND_TOPIC, refund) for refund in order.get("refunds") or ()]
    return out
