"""WooCommerce REST v3 order/customer payloads -> canonical events.

Webhook bodies are the resource as ``GET /wc/v3/{orders,customers}/{id}`` returns it, so the
same code parses webhooks and reconciliation pages. No clock; the only I/O is asking the store
for the categories and tags of an order's products (``connectors.woocommerce.products``, cached),
which the order payload does not carry. Every field read is type-checked (``plugin.shape``): a
wrong shape is a PayloadError naming the field.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.base import Shop, checkout_fields
from connectors.woocommerce import products, sms
from plugin import shape
from plugin.errors import PayloadError
from plugin.events import Customer, Event, LineItem, Money, Order, address_line, parse_time

PAID_STATUSES = ("processing", "completed")
TAGS_META_KEY = "keepwell_tags"
_YES = {"yes", "1", "true", "on"}
_NO = {"no", "0", "", "false", "off"}


def parse(shop: Shop, topic: str, payload: dict, customer_of_order=None) -> list[Event]:
    """Canonical events for one WooCommerce payload (possibly none); PayloadError if malformed.

    ``customer_of_order`` is accepted for parity with connectors whose refund payloads lack a
    customer; every WooCommerce order names its customer (or guest email), so it is unused.
    Order events ask the store for their products' categories and tags: a StoreError there is
    raised when retryable (the worker retries), otherwise logged and the order kept without them.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"{topic}: payload is {type(payload).__name__}, expected a JSON object")
    shape.check_depth(payload)
    if topic in ("order.created", "order.updated"):
        return products.enrich(shop, _order_events(shop, topic, payload))
    if topic in ("customer.created", "customer.updated"):
        return [_customer_event(shop, topic, payload)]
    return []  # deleted/restored, coupons, products: nothing a rule triggers on


# --- orders ----------------------------------------------------------------------------------

def _order_events(shop: Shop, topic: str, p: dict) -> list[Event]:
    oid = _id(p, "order")
    customer = _order_customer(shop, p, oid)
    if customer is None:
        return []  # a guest order without an email belongs to nobody we can reach
    order = _order(p, oid)
    if p.get("status") == "refunded":  # final, even when an older update arrives after it
        order = replace(order, fully_refunded=True)
    version = p.get("date_modified_gmt") or p.get("date_created_gmt")
    modified = _time(p, "date_modified_gmt") or order.created_at

    # The opt-ins stored on the order were given at checkout: a cancellation or refund made later
    # (dated by the order's modification) must not repeat it over the customer's choice since.
    later = replace(customer, accepts_marketing=None, sms_consent=None)

    def event(kind: str, at: datetime, order: Order = order, event_id: str | None = None, data=None) -> Event:
        who = customer if kind in ("order.created", "order.paid") else later
        return Event(id=event_id or f"wc:{kind}:{oid}:{version}", type=kind, shop=shop.id,
                     customer_id=customer.id, occurred_at=at, order=order, customer=who,
                     data=data or {})

    events = []
    if topic == "order.created":
        events.append(event("order.created", order.created_at))
    status = p.get("status")
    paid_at = _time(p, "date_paid_gmt")
    if status in PAID_STATUSES and paid_at is not None:
        events.append(event("order.paid", paid_at))
    if status == "cancelled":
        events.append(event("order.cancelled", modified))
    for r in shape.objects(p, "refunds", f"order {oid}"):
        rid = _id(r, f"order {oid} refund")
        amount = abs(shape.amount(r.get("total"), f"order {oid} refund {rid} total", negative=True))
        # A refund never changes once made, so its id alone names the event: later order
        # updates that repeat it produce the same event.
        refunded = replace(order, refunded=Money(amount, order.total.currency))
        events.append(event("order.refunded", modified, refunded, f"wc:order.refunded:{oid}:{rid}",
                            {"refund_id": rid}))
    return events


def _phone(p: dict, part: str, oid: str) -> str | None:
    address = shape.obj(p, part, f"order {oid}")
    return shape.text(address, "phone", f"order {oid} {part}") if address else None


def _order(p: dict, oid: str) -> Order:
    if not p.get("currency"):
        raise PayloadError(f"order {oid}: missing currency")
    currency = shape.currency(p["currency"], f"order {oid}")
    created = _time(p, "date_created_gmt")
    if created is None:
        raise PayloadError(f"order {oid}: missing date_created_gmt")
    items = shape.objects(p, "line_items", f"order {oid}")
    return Order(
        id=oid,
        total=Money(shape.amount(p.get("total"), f"order {oid} total"), currency),
        # before shipping and tax, after discounts: what the goods cost the customer
        subtotal=Money(sum((shape.amount(li.get("total"), f"order {oid} line total") for li in items), Decimal(0)),
                       currency),
        created_at=created,
        number=shape.text(p, "number", f"order {oid}") or None,
        line_items=tuple(_line(li, currency, oid) for li in items),
        discount_codes=tuple(code.lower() for c in shape.objects(p, "coupon_lines", f"order {oid}")
                             if (code := shape.text(c, "code", f"order {oid} coupon line"))),
        phone=(_phone(p, "billing", oid) or _phone(p, "shipping", oid) or "").strip() or None,
        shipping_address=address_line(shape.obj(p, "shipping", f"order {oid}"), "address_1", "postcode", "country"),
        attributes=checkout_fields((m.get("key"), m.get("value"))
                                   for m in shape.objects(p, "meta_data", f"order {oid}")),
    )


def _line(li: dict, currency: str, oid: str) -> LineItem:
    where = f"order {oid} line {li.get('id', '?')}"
    product = shape.text(li, "product_id", where)
    if product is None:  # 0 is legitimate: the product was deleted since
        raise PayloadError(f"order {oid}: line item {li.get('id', '?')} has no product_id")
    variation = shape.text(li, "variation_id", where)
    return LineItem(
        product_id=product,
        quantity=shape.quantity(li.get("quantity", 1), f"{where} quantity"),
        # price is a JSON number (unit price after discounts): never through float maths
        price=Money(shape.amount(li.get("price"), f"{where} price"), currency),
        variant_id=variation if variation not in (None, "0") else None,
        sku=shape.text(li, "sku", where) or None,
        title=shape.text(li, "name", where) or None,
    )


def _order_customer(shop: Shop, p: dict, oid: str) -> Customer | None:
    billing = shape.obj(p, "billing", f"order {oid}") or {}
    email = (shape.text(billing, "email", f"order {oid} billing") or "").strip() or None
    raw = shape.text(p, "customer_id", f"order {oid}")
    if not raw:
        raise PayloadError(f"order {oid}: missing customer_id")
    if raw == "0":  # a guest checkout: the billing email is the only identity
        if email is None:
            return None
        cid = "guest:" + email.lower()
    else:
        cid = raw
    return Customer(
        id=cid,
        email=email,
        first_name=shape.text(billing, "first_name", f"order {oid} billing") or None,
        last_name=shape.text(billing, "last_name", f"order {oid} billing") or None,
        accepts_marketing=_consent(shop, p),  # a checkout opt-in is stored on the order
        # an SMS opt-in ticked at checkout is for the billing phone typed with it; an order's phone
        # alone says nothing about the number texts go to
        sms_consent=(texts := sms.consent(shop, p)),
        phone=sms.phone(p, f"order {oid}") if texts is not None else None,
    )


# --- customers -------------------------------------------------------------------------------

def _customer_event(shop: Shop, topic: str, p: dict) -> Event:
    cid = _id(p, "customer")
    created = _time(p, "date_created_gmt")
    modified = _time(p, "date_modified_gmt") or created
    at = created if topic == "customer.created" else modified
    if at is None:
        raise PayloadError(f"customer {cid}: missing date_created_gmt")
    where = f"customer {cid}"
    customer = Customer(
        id=cid,
        email=(shape.text(p, "email", where) or "").strip() or None,
        first_name=shape.text(p, "first_name", where) or None,
        last_name=shape.text(p, "last_name", where) or None,
        accepts_marketing=_consent(shop, p),
        tags=_tags(p),
        birthday=_birthday(shop, p),
        created_at=created,
        phone=sms.phone(p, where),
        sms_consent=sms.consent(shop, p),
    )
    version = p.get("date_modified_gmt") or p.get("date_created_gmt")
    return Event(id=f"wc:{topic}:{cid}:{version}", type=topic, shop=shop.id, customer_id=cid,
                 occurred_at=at, customer=customer)


#: Where WooCommerce stores keep marketing consent, read in this order after the shop's own
#: ``consent_meta_key``: the companion WordPress plugin (its checkout and account opt-in, and
#: MailPoet's subscriber status mirrored into it), then Mailchimp for WooCommerce.
CONSENT_META_KEYS = ("_keepwell_marketing_opt_in", "mailchimp_woocommerce_is_subscribed")
#: Where the companion plugin keeps a birthday, read after the shop's ``birthday_meta_key``.
BIRTHDAY_META_KEYS = ("_keepwell_birthday",)


def consent_keys(shop: Shop) -> tuple[str, ...]:
    """The meta keys read for marketing consent, in order: the shop's own, then the known ones."""
    own = shop.settings.get("consent_meta_key")
    return tuple(dict.fromkeys([*([own] if own else []), *CONSENT_META_KEYS]))


def _consent(shop: Shop, p: dict) -> bool | None:
    """Core WooCommerce has no consent field: the first of ``consent_keys`` present on the order
    or customer with a yes/no value decides. An unknown value is neither consent nor an opt-out."""
    own = shop.settings.get("consent_meta_key")
    for key in consent_keys(shop):
        found, value = _meta(p, key)
        if not found:
            continue
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _YES:
            return True
        # An empty value is an unticked box under the shop's own key; Mailchimp leaves its key
        # empty until it knows, so there an empty value says nothing.
        if text in _NO and (text or key == own):
            return False
    return None


def _birthday(shop: Shop, p: dict) -> date | None:
    own = shop.settings.get("birthday_meta_key")
    for key in dict.fromkeys([*([own] if own else []), *BIRTHDAY_META_KEYS]):
        found, value = _meta(p, key)
        if not found or not value:
            continue
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            continue  # typed by the customer into a plugin's form: a bad date must not drop the whole event
    return None


def _tags(p: dict) -> tuple[str, ...] | None:
    """Tags Keepwell keeps in customer meta (core WooCommerce has no customer tags)."""
    found, value = _meta(p, TAGS_META_KEY)
    if found and isinstance(value, list):
        value = shape.scalars(value, f"meta {TAGS_META_KEY}")
    return split_tags(value) if found else None


def split_tags(value: Any) -> tuple[str, ...]:
    """A stored tag list ("a, b" or ["a", "b"]) as a tuple of non-empty tags."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return tuple(t for t in (str(x).strip() for x in items) if t)


# --- helpers ---------------------------------------------------------------------------------

def _meta(p: dict, key: str) -> tuple[bool, Any]:
    """(found, value) of the first meta_data entry named ``key``, as WC_Data::get_meta does."""
    for m in shape.objects(p, "meta_data", "meta_data"):
        if m.get("key") == key:
            return True, m.get("value")
    return False, None


def _id(p: dict, what: str) -> str:
    value = p.get("id")
    if value in (None, "", 0) or isinstance(value, bool):
        raise PayloadError(f"{what}: missing id")
    if not isinstance(value, (int, str)):
        raise PayloadError(f"{what}: id is {type(value).__name__}, expected a number")
    return str(value)


def _time(p: dict, name: str) -> datetime | None:
    """A WooCommerce ``*_gmt`` field (no offset, UTC) as an aware datetime."""
    value = p.get(name)
    if not value:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{name}: {type(value).__name__} is not an ISO-8601 time")
    try:
        return parse_time(value)
    except ValueError:
        raise PayloadError(f"{name}: {value!r} is not an ISO-8601 time") from None
