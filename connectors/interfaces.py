"""What a platform package provides, as small interfaces: each part of the shell uses only the
one it needs. A package's ``connector`` object implements all of them (``Connector``).

- ``Inbound``: webhook deliveries, from "which shop is this for" to canonical events (the edge
  and the worker).
- ``Outbound``: write-back to the store (the effects and consent sync).
- ``Sync``: reading the store's past and what webhooks missed (import and reconciliation).
- ``Install``: getting a store connected, and the shape of its stored credentials.
- ``AdminAuth``: how the platform's merchants prove which shop they are in the admin pages.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Protocol, runtime_checkable

from connectors.base import ConsentLookup, CouponResult, HistoryItem, Shop
from plugin.engine.actions import Coupon, Tag
from plugin.events import Event

Headers = Mapping[str, str]


class ShopRef(NamedTuple):
    """How a delivery names its shop: ``by`` is "domain" or "id" (Keepwell's shop id)."""

    by: str
    value: str


class Answer(NamedTuple):
    """What the edge answers a delivery the platform handled itself: ``{"status": status}``."""

    status: str
    code: int = 200


@runtime_checkable
class Inbound(Protocol):
    platform: str
    topics: frozenset[str]  # webhook topics parse() understands

    def identify(self, headers: Headers, shop_ref: str | None) -> ShopRef | None:
        """The shop a delivery is for, from its URL's last part (``shop_ref``, when the platform's
        webhooks are registered per shop) or its headers; None when it names none."""

    def unbound(self, edge: Any, topic: str, headers: Headers, body: bytes) -> Answer | None:
        """Handle a delivery that is not for one connected shop (Shopify's privacy webhooks, which
        also come for uninstalled shops), before any shop lookup; None for every other delivery."""

    def is_ping(self, headers: Headers, body: bytes) -> bool:
        """True for the platform's unsigned "is this URL alive" call, answered 200 unverified."""

    def verify(self, shop: Shop, headers: Headers, body: bytes) -> None:
        """Raise SignatureError unless the body is signed by the shop's (or app's) secret."""

    def topic(self, headers: Headers) -> str:
        """The webhook topic a delivery's headers name."""

    def lifecycle(self, edge: Any, shop: Shop, topic: str, payload: dict[str, Any]) -> Answer | None:
        """Act on a verified delivery about the installation itself (Shopify's app/uninstalled);
        None for every other delivery."""

    def delivery_key(self, headers: Headers, payload: dict[str, Any]) -> str:
        """A key that is the same for every delivery of one store event (for dedupe)."""

    def parse(self, shop: Shop, topic: str, payload: dict[str, Any], customer_of_order: Any = None) -> list[Event]:
        """Canonical events for one webhook payload (possibly none); PayloadError if malformed.
        ``customer_of_order(order_id)`` gives the customer of a known order (refunds omit it)."""

    def export_deliveries(self, order: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The (topic, payload) webhooks one order of a raw order export stands for."""


@runtime_checkable
class Outbound(Protocol):
    def create_coupon(self, shop: Shop, action: Coupon) -> CouponResult:
        """Create the personal coupon an engine ``coupon`` action describes; StoreError on failure.
        The store's "code already exists" counts as success only when the existing coupon is the
        one this action describes (an earlier attempt's); else it is created under ``fresh_code``."""

    def add_tag(self, shop: Shop, customer_id: str, action: Tag) -> None:
        """Give the customer the action's tag in the store; StoreError on failure."""

    def marketing_consent(self, shop: Shop, customer_id: str) -> ConsentLookup | None:
        """The customer's email marketing consent in the store; None when it cannot be known."""

    def unsubscribe(self, shop: Shop, customer_id: str, at: datetime) -> str:
        """Record in the store that the customer unsubscribed from email marketing at ``at``;
        "done" or "skipped: why"; StoreError on failure."""

    def sms_consent_update(self, shop: Shop, customer_id: str, subscribed: bool, at: datetime) -> str:
        """Record in the store that the customer withdrew (``subscribed`` False) or gave back SMS
        marketing consent at ``at``; "done" or "skipped: why"; StoreError on failure."""

    def discount_link(self, shop: Shop, code: str) -> str:
        """A link that opens the store with ``code`` applied (personal referral links)."""

    def shop_profile(self, shop: Shop) -> dict[str, Any]:
        """The store's own ``{name, email, postal_address, url}`` (for its emails' sender and footer)."""


@runtime_checkable
class Sync(Protocol):
    def changes_since(self, shop: Shop, since: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
        """(topic, payload) for orders and customers modified since ``since`` (reconciliation)."""

    def history(self, shop: Shop, since: datetime | None, cursor: Mapping[str, Any]) -> Iterator[HistoryItem]:
        """The store's customers, then its orders (created since ``since``, or all), resuming
        after ``cursor`` ({} to start); raises HistoryNotReady while the store prepares them."""

    def revive_webhooks(self, shop: Shop, app_url: str) -> list[Any]:
        """Turn the shop's webhooks the store disabled back on; what was revived (may be none)."""


@runtime_checkable
class Install(Protocol):
    #: JSON Schema of the ``credentials`` document a shop of this platform stores (encrypted).
    credentials_schema: Mapping[str, Any]
    #: True when each shop signs its webhooks with a secret of its own that Keepwell makes
    #: (WooCommerce); False when the app's secret signs them (Shopify).
    own_webhook_secret: bool
    #: The platform's install and connect pages (a Flask blueprint), or None.
    blueprint: Any

    def normal_domain(self, domain: str) -> str:
        """A store's address as stored (the key a shop is found by)."""

    def default_api_url(self, domain: str) -> str:
        """Where the store's API is, unless a shop is given another address (a sandbox)."""

    def webhook_url(self, app_url: str, shop_id: str) -> str:
        """Where the store delivers the shop's webhooks."""

    def register_webhooks(self, shop: Shop, app_url: str) -> list[str]:
        """Subscribe the topics Keepwell needs; returns the subscribed topics."""

    def with_app(self, shop: Shop, config: Any) -> Shop:
        """``shop`` with what the app adds to a stored shop (the app's signing secrets, a keeper
        of expiring credentials)."""


#: ``(request, edge) -> shop id | None``: None when the request carries no credentials of the
#: scheme's kind; raises plugin.admin_auth.Unauthenticated when it carries bad ones.
Scheme = Callable[[Any, Any], "str | None"]


@runtime_checkable
class AdminAuth(Protocol):
    #: The platform's sign-in schemes, tried in order, each with whether its credentials travel
    #: with every request (nothing ambient: no CSRF to fear).
    admin_schemes: tuple[tuple[Scheme, bool], ...]

    def frame_ancestors(self, request: Any, domain: str | None) -> str | None:
        """Who may show the admin pages in a frame (the platform's own admin, for an embedded
        app), for the signed-in shop at ``domain`` or, with None, before sign-in; None: nobody
        of the platform's."""

    def customer_admin_url(self, domain: str, customer_id: str) -> str | None:
        """The customer's page in the store's own admin; None when the store has none for this id."""


@runtime_checkable
class Connector(Inbound, Outbound, Sync, Install, AdminAuth, Protocol):
    """A whole platform."""


INTERFACES = (Inbound, Outbound, Sync, Install, AdminAuth)
