"""The shop record connectors work on, and the values they hand back (the interfaces they
implement are in ``connectors.interfaces``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from plugin.engine.actions import Coupon, coupon_code
from plugin.errors import KeepwellError


@dataclass(frozen=True)
class Shop:
    """What a connector needs to know about one connected store (secrets already decrypted)."""

    id: str  # Keepwell's shop id
    platform: str  # a connectors.registry platform name
    domain: str  # NAME.myshopify.com, or the WooCommerce store URL
    api_url: str  # base URL of the store API (overridable for sandboxes)
    #: The platform's own credentials, one document in the shape its ``credentials_schema``
    #: declares (Shopify: the access token pair; WooCommerce: the REST consumer key and secret).
    credentials: Mapping[str, Any] = field(default_factory=dict, repr=False)
    webhook_secrets: tuple[str, ...] = ()  # current first; old ones still accepted during a rotation
    referral_key: str = ""  # keys the shop's referral codes (plugin.engine.referral)
    settings: Mapping[str, Any] = field(default_factory=dict)  # e.g. WooCommerce consent meta key
    #: The shop's SMS provider settings, decrypted (``{"provider": "twilio", "account_sid",
    #: "auth_token", "from"}``, see plugin.sms.settings); empty when the shop sends no SMS.
    sms: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: Keeps a platform's expiring credentials valid (Shopify: refresh before expiry and after a
    #: 401), set by the platform's ``with_app``; None where nothing expires.
    tokens: object = field(default=None, compare=False, repr=False)


_MAX_FIELDS, _MAX_FIELD_CHARS = 50, 200


def checkout_fields(pairs: Iterable[tuple[object, object]]) -> tuple[tuple[str, str], ...]:
    """An order's short text fields (Shopify note_attributes, WooCommerce meta_data) as (name,
    value) pairs: what the customer answered at checkout. Bounded: a payload may carry plenty."""
    out = []
    for name, value in pairs:
        if name and isinstance(value, (str, int, float, bool)) and len(str(value)) <= _MAX_FIELD_CHARS:
            out.append((str(name), str(value)))
            if len(out) == _MAX_FIELDS:
                break
    return tuple(out)


def currency_mismatch(shop: Shop, action: Coupon) -> str | None:
    """Why a coupon action cannot be created as written: stores take fixed amounts in their own
    currency, so "10 USD" on a EUR store would silently become 10 EUR. None when it can."""
    store = shop.settings.get("currency")
    wanted = [action.currency if action.discount_type == "fixed" else None,
              action.minimum_subtotal.currency if action.minimum_subtotal else None]
    for code in wanted:
        if code and store and code.upper() != store.upper():
            return f"the rule gives an amount in {code.upper()}, but the store's currency is {store.upper()}; " \
                   f"write the amount without a currency (it then means {store.upper()})"
    return None


@dataclass(frozen=True)
class CouponResult:
    code: str
    store_id: str | None  # the store's id for the discount/coupon
    already_existed: bool = False
    conflict: str | None = None  # the action's own code belonged to another discount: what differed


def fresh_code(action: Coupon) -> str | None:
    """The code for a personal coupon whose own code the store holds for a discount that is not
    ours: derived from the decision key, so a retry asks for the same one. None for a shared
    referral code, which must stay the customer's own to be recognised."""
    code = action.code
    if not action.customer_id or "-" not in code:
        return None
    return coupon_code(code.rsplit("-", 1)[0], f"{action.key}:taken")


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One record of a store's past (a customer or an order, as its webhook payload) and the cursor
    that resumes the walk after it. ``topic`` None: only the cursor moved (e.g. a bulk job started)."""

    cursor: Mapping[str, Any]
    topic: str | None = None
    payload: dict[str, Any] | None = None
    total: int | None = None  # records of this kind the store announced, when it does
    record: str | None = None  # "customer" or "order": this item completes one record read


class HistoryNotReady(KeepwellError):
    """The store is still preparing the history (a Shopify bulk operation): ask again later."""

    def __init__(self, cursor: Mapping[str, Any], retry_after: float, detail: str = "") -> None:
        self.cursor, self.retry_after, self.detail = cursor, retry_after, detail
        super().__init__(detail or f"history not ready; ask again in {retry_after:g}s")


@dataclass(frozen=True)
class ConsentLookup:
    """A customer's marketing consent as the store has it: email, and SMS where it says."""

    accepts_marketing: bool | None  # None: the store has not decided (e.g. a pending double opt-in)
    updated_at: datetime | None  # when it was given or withdrawn, if the store says
    #: The customer's phone and SMS marketing consent, when the store's answer has them.
    sms_consent: bool | None = None
    sms_consent_at: datetime | None = None
    phone: str | None = None
