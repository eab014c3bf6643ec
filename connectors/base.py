"""The interface every platform connector implements, and the shop record it works on.

Adding a third platform means adding one package that provides these functions; nothing in
the engine, worker or web edge changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Mapping, Protocol

from plugin.errors import KeepwellError
from plugin.events import Event


@dataclass(frozen=True)
class Shop:
    """What a connector needs to know about one connected store (secrets already decrypted)."""

    id: str  # Keepwell's shop id
    platform: str  # shopify | woocommerce
    domain: str  # NAME.myshopify.com, or the WooCommerce store URL
    api_url: str  # base URL of the store API (overridable for sandboxes)
    access_token: str = ""  # Shopify Admin API token
    consumer_key: str = ""  # WooCommerce REST key
    consumer_secret: str = ""
    webhook_secrets: tuple[str, ...] = ()  # current first; old ones still accepted during a rotation
    referral_key: str = ""  # keys the shop's referral codes (plugin.engine.referral)
    settings: Mapping = field(default_factory=dict)  # e.g. WooCommerce consent meta key
    token_expires_at: float | None = None  # Unix seconds; None for a token that does not expire
    #: Keeps ``access_token`` valid (refresh before expiry and after a 401): an object with
    #: ``access_token(shop) -> str`` and ``after_unauthorized(shop, rejected) -> str | None``.
    tokens: object = field(default=None, compare=False, repr=False)


_MAX_FIELDS, _MAX_FIELD_CHARS = 50, 200


def checkout_fields(pairs) -> tuple[tuple[str, str], ...]:
    """An order's short text fields (Shopify note_attributes, WooCommerce meta_data) as (name,
    value) pairs: what the customer answered at checkout. Bounded: a payload may carry plenty."""
    out = []
    for name, value in pairs:
        if name and isinstance(value, (str, int, float, bool)) and len(str(value)) <= _MAX_FIELD_CHARS:
            out.append((str(name), str(value)))
            if len(out) == _MAX_FIELDS:
                break
    return tuple(out)


def currency_mismatch(shop: Shop, action: dict) -> str | None:
    """Why a coupon action cannot be created as written: stores take fixed amounts in their own
    currency, so "10 USD" on a EUR store would silently become 10 EUR. None when it can."""
    store = shop.settings.get("currency")
    wanted = [action.get("currency") if action.get("discount_type") == "fixed" else None,
              (action.get("minimum_subtotal") or {}).get("currency")]
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


def fresh_code(action: dict) -> str | None:
    """The code for a personal coupon whose own code the store holds for a discount that is not
    ours: derived from the decision key, so a retry asks for the same one. None for a shared
    referral code, which must stay the customer's own to be recognised."""
    from plugin.engine.decisions import coupon_code

    code = str(action["code"])
    if not action.get("customer_id") or "-" not in code:
        return None
    return coupon_code(code.rsplit("-", 1)[0], f"{action.get('key', code)}:taken")


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One record of a store's past (a customer or an order, as its webhook payload) and the cursor
    that resumes the walk after it. ``topic`` None: only the cursor moved (e.g. a bulk job started)."""

    cursor: Mapping
    topic: str | None = None
    payload: dict | None = None
    total: int | None = None  # records of this kind the store announced, when it does
    record: str | None = None  # "customer" or "order": this item completes one record read


class HistoryNotReady(KeepwellError):
    """The store is still preparing the history (a Shopify bulk operation): ask again later."""

    def __init__(self, cursor: Mapping, retry_after: float, detail: str = ""):
        self.cursor, self.retry_after, self.detail = cursor, retry_after, detail
        super().__init__(detail or f"history not ready; ask again in {retry_after:g}s")


@dataclass(frozen=True)
class ConsentLookup:
    """A customer's email marketing consent as the store has it."""

    accepts_marketing: bool | None  # None: the store has not decided (e.g. a pending double opt-in)
    updated_at: datetime | None  # when it was given or withdrawn, if the store says


class Connector(Protocol):
    platform: str
    topics: frozenset[str]  # webhook topics parse() understands

    def verify(self, shop: Shop, headers: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the body is signed by the shop's (or app's) secret."""

    def delivery_key(self, headers: Mapping[str, str], payload: dict) -> str:
        """A key that is the same for every delivery of one store event (for dedupe)."""

    def topic(self, headers: Mapping[str, str]) -> str:
        """The webhook topic a delivery's headers name."""

    def export_deliveries(self, order: dict) -> list[tuple[str, dict]]:
        """The (topic, payload) webhooks one order of a raw order export stands for."""

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True for the platform's unsigned "is this URL alive" call, answered 200 unverified."""

    def parse(self, shop: Shop, topic: str, payload: dict, customer_of_order=None) -> list[Event]:
        """Canonical events for one webhook payload (possibly none); PayloadError if malformed.
        ``customer_of_order(order_id)`` gives the customer of a known order (refunds omit it)."""

    def discount_link(self, shop: Shop, code: str) -> str:
        """A link that opens the store with ``code`` applied (personal referral links)."""

    def create_coupon(self, shop: Shop, action: dict) -> CouponResult:
        """Create the personal coupon an engine ``coupon`` action describes; StoreError on failure.
        The store's "code already exists" counts as success only when the existing coupon is the
        one this action describes (an earlier attempt's); else it is created under ``fresh_code``."""

    def add_tag(self, shop: Shop, customer_id: str, tag: str) -> None:
        """Tag the customer in the store; StoreError on failure."""

    def marketing_consent(self, shop: Shop, customer_id: str) -> ConsentLookup | None:
        """The customer's email marketing consent in the store; None when it cannot be known."""

    def unsubscribe(self, shop: Shop, customer_id: str, at: datetime) -> str:
        """Record in the store that the customer unsubscribed from email marketing at ``at``;
        "done" or "skipped: why"; StoreError on failure."""

    def shop_profile(self, shop: Shop) -> dict:
        """The store's own ``{name, email, postal_address, url}`` (for its emails' sender and footer)."""

    def register_webhooks(self, shop: Shop, app_url: str) -> list[str]:
        """Subscribe the topics Keepwell needs; returns the subscribed topics."""

    def changes_since(self, shop: Shop, since) -> Iterator[tuple[str, dict]]:
        """(topic, payload) for orders and customers modified since ``since`` (reconciliation)."""

    def history(self, shop: Shop, since, cursor: Mapping) -> Iterator[HistoryItem]:
        """The store's customers, then its orders (created since ``since``, or all), resuming
        after ``cursor`` ({} to start); raises HistoryNotReady while the store prepares them."""
