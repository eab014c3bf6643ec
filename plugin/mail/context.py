"""The variables email (and text message) templates see: customer, coupon, shop, occasion,
referral_link, unsubscribe_url, page_url."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
#: ISO 4217 currencies without minor units: "500 JPY", not "500.00 JPY".
_ZERO_DECIMAL = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split())


#: Every variable an email template or subject can use, and the fields of the ones that are
#: records. ``occasion`` is set on occasion rules only, ``coupon`` on rules with a coupon action,
#: ``subject`` in the body only (it is the rendered subject).
CUSTOMER_FIELDS = ("first_name", "last_name", "email", "locale")
COUPON_FIELDS = ("code", "title", "discount", "expires_at", "minimum_subtotal")
SHOP_FIELDS = ("name", "url", "postal_address")
OCCASION_FIELDS = ("kind", "title", "recipient", "date")
TEMPLATE_VARIABLES: dict[str, tuple[str, ...] | None] = {
    "customer": CUSTOMER_FIELDS, "coupon": COUPON_FIELDS, "shop": SHOP_FIELDS, "occasion": OCCASION_FIELDS,
    "referral_link": None, "unsubscribe_url": None, "page_url": None, "subject": None,
}


def _field(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def format_money(amount, currency: str | None) -> str:
    """'10.00 USD', '500 JPY': the amount with its currency's usual decimals ('10.00' while the
    shop's currency is not known yet)."""
    code = (currency or "").upper()
    places = Decimal(1) if code in _ZERO_DECIMAL else Decimal("0.01")
    return f"{Decimal(str(amount)).quantize(places)} {code}".rstrip()


def format_date(value) -> str:
    """'24 December 2026' for a date, a datetime (taken in UTC) or an ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def coupon_vars(action) -> dict | None:
    if action is None:
        return None
    value = Decimal(str(action["value"]))
    if action["discount_type"] == "percent":
        discount = f"{format(value.normalize(), 'f')}%"
    else:
        discount = format_money(value, action["currency"])
    minimum = action.get("minimum_subtotal")
    return {
        "code": action["code"],
        "title": action.get("title"),
        "discount": discount,
        "expires_at": format_date(action["expires_at"]) if action.get("expires_at") else None,
        "minimum_subtotal": format_money(_field(minimum, "amount"), _field(minimum, "currency")) if minimum else None,
    }


def email_context(customer, coupon, shop: dict, unsubscribe_url: str, referral_link: str | None = None,
                  occasion: dict | None = None, page_url: str | None = None) -> dict:
    """The variables email templates see, from a CustomerState (or customer dict), a coupon
    action (native or JSON form, or None), the shop's name and url, for occasion rules the
    occasion (kind, title, recipient, date), and the customer's personal page for the touch."""
    return {
        "customer": {name: _field(customer, name) for name in CUSTOMER_FIELDS},
        "coupon": coupon_vars(coupon),
        # only these: the shop record may hold tokens that templates must never see
        "shop": {name: shop.get(name) for name in SHOP_FIELDS},
        "referral_link": referral_link,
        "unsubscribe_url": unsubscribe_url,
        "occasion": occasion,
        "page_url": page_url,
    }
