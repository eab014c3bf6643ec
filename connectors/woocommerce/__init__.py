"""The WooCommerce platform: webhooks in (per-shop URL and secret), REST API v3 out, and
connecting a store with WooCommerce's app key authorization (``connect``). Its merchants open
the admin pages with Keepwell's signed admin links (plugin/admin_auth.py)."""
from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode
from typing import Iterator, Mapping

from connectors.base import ConsentLookup, CouponResult, HistoryItem, Shop
from connectors.interfaces import Answer, ShopRef
from connectors.woocommerce import consent, coupons, delivery, history, install, pacing, profile, reconcile, sms, tags
from connectors.woocommerce import parse as parsing
from plugin.engine.actions import Coupon, Tag
from plugin.events import Event


#: The credentials document of a WooCommerce shop: its REST API key pair.
CREDENTIALS_SCHEMA = {
    "type": "object",
    "properties": {"consumer_key": {"type": "string"}, "consumer_secret": {"type": "string"}},
    "additionalProperties": False,
}


class WooCommerceConnector:
    """connectors.interfaces.Connector for WooCommerce stores."""

    platform = "woocommerce"
    #: webhook topics parse() turns into events
    topics = frozenset({"order.created", "order.updated", "customer.created", "customer.updated"})
    credentials_schema = CREDENTIALS_SCHEMA
    own_webhook_secret = True  # each store signs with a secret Keepwell made for it
    admin_schemes = ()  # merchants sign in with Keepwell's admin links
    effect_slots = pacing.EFFECT_SLOTS  # touches of one shop at once: its server is the limit

    def frame_ancestors(self, request, domain: str | None) -> str | None:
        """None: no WooCommerce page embeds the dashboard."""
        return None

    def customer_admin_url(self, domain: str, customer_id: str) -> str | None:
        if not str(customer_id).isdigit():
            return None
        base = domain.rstrip("/") if domain.startswith("http") else f"https://{domain.rstrip('/')}"
        return f"{base}/wp-admin/user-edit.php?user_id={customer_id}"

    # --- inbound ---------------------------------------------------------------------------------

    def identify(self, headers: Mapping[str, str], shop_ref: str | None) -> ShopRef | None:
        """The shop id in the delivery URL, which each store's webhooks were registered with
        (``/webhooks/woocommerce/<shop id>``); its own secret, checked next, proves the rest."""
        return ShopRef("id", shop_ref) if shop_ref else None

    def unbound(self, edge, topic: str, headers: Mapping[str, str], body: bytes) -> Answer | None:
        """None: every WooCommerce delivery is for one connected shop."""
        return None

    def lifecycle(self, edge, shop: Shop, topic: str, payload: dict) -> Answer | None:
        """None: a store says nothing about its connection through webhooks."""
        return None

    def verify(self, shop: Shop, headers: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless X-WC-Webhook-Signature signs the body with a shop secret."""
        delivery.verify(shop, headers, body)

    def topic(self, headers: Mapping[str, str]) -> str:
        """The webhook's topic, from X-WC-Webhook-Topic."""
        return delivery.topic(headers)

    def export_deliveries(self, order: dict) -> list[tuple[str, dict]]:
        """A GET /orders entry carries its whole current state, refunds included: one update."""
        return [("order.updated", order)]

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True for WooCommerce's unsigned creation ping, which must be answered 200 unverified."""
        return delivery.is_ping(headers, body)

    def delivery_key(self, headers: Mapping[str, str], payload: dict) -> str:
        """``topic:id:date_modified_gmt`` (WooCommerce has no stable event id)."""
        return delivery.delivery_key(headers, payload)

    def parse(self, shop: Shop, topic: str, payload: dict, customer_of_order=None) -> list[Event]:
        """Canonical events for one order/customer payload; PayloadError if malformed."""
        return parsing.parse(shop, topic, payload, customer_of_order)

    def create_coupon(self, shop: Shop, action: Coupon) -> CouponResult:
        """Create the coupon of an engine coupon action; "already exists" counts as success."""
        return coupons.create_coupon(shop, action)

    def add_tag(self, shop: Shop, customer_id: str, action: Tag) -> None:
        """Tag the customer (in customer meta ``keepwell_tags``); guests are skipped."""
        tags.add_tag(shop, customer_id, action)

    def marketing_consent(self, shop: Shop, customer_id: str) -> ConsentLookup | None:
        """The consent in the customer's ``consent_meta_key`` meta; None for guests or without one."""
        return consent.marketing_consent(shop, customer_id)

    def unsubscribe(self, shop: Shop, customer_id: str, at: datetime) -> str:
        """Set the customer's ``consent_meta_key`` meta to "no"; guests are skipped."""
        return consent.unsubscribe(shop, customer_id, at)

    def sms_consent_update(self, shop: Shop, customer_id: str, subscribed: bool, at: datetime) -> str:
        """Write Keepwell's SMS opt-out or re-subscription into the customer's SMS opt-in meta."""
        return sms.update(shop, customer_id, subscribed, at)

    # --- outbound --------------------------------------------------------------------------------

    def shop_profile(self, shop: Shop) -> dict:
        """The store address (Settings -> General) and email sender (Settings -> Emails)."""
        return profile.shop_profile(shop)

    # --- install and sync --------------------------------------------------------------------------

    def normal_domain(self, domain: str) -> str:
        """The store URL as given, without a trailing slash."""
        return domain.strip().rstrip("/")

    def default_api_url(self, domain: str) -> str:
        return domain.rstrip("/")

    def webhook_url(self, app_url: str, shop_id: str) -> str:
        """Per shop: ``/webhooks/woocommerce/<shop id>``."""
        return install.webhook_url(app_url, shop_id)

    def with_app(self, shop: Shop, config) -> Shop:
        """As stored: nothing of the app's is needed."""
        return shop

    @property
    def blueprint(self):
        """/woocommerce/connect, /callback, /connected (connectors/woocommerce/connect.py)."""
        from connectors.woocommerce.connect import bp

        return bp

    def register_webhooks(self, shop: Shop, app_url: str) -> list[str]:
        """Subscribe order/customer created/updated without duplicating existing webhooks."""
        return install.register_webhooks(shop, app_url)

    def revive_webhooks(self, shop: Shop, app_url: str) -> list[int]:
        """Set the shop's disabled Keepwell webhooks active again (WooCommerce disables one after
        5 failed deliveries); returns their ids."""
        return install.revive_webhooks(shop, app_url)

    def discount_link(self, shop: Shop, code: str) -> str:
        """Core WooCommerce has no link that applies a coupon; a store whose plugin adds one names
        its query parameter in the ``coupon_url_param`` setting (the companion plugin's is
        ``keepwell_coupon``). Otherwise the email shows the code."""
        param = shop.settings.get("coupon_url_param")
        return f"{shop.domain}/?{urlencode({param: code})}" if param else f"{shop.domain}/"

    def changes_since(self, shop: Shop, since, now=None) -> Iterator[tuple[str, dict]]:
        """(topic, payload) for orders and customers modified since ``since`` (``now``: the clock)."""
        return reconcile.changes_since(shop, since, now)

    def history(self, shop: Shop, since, cursor: Mapping) -> Iterator[HistoryItem]:
        """Every customer, then the orders created since ``since``, resuming after ``cursor``."""
        return history.history(shop, since, cursor)


connector = WooCommerceConnector()

__all__ = ["CREDENTIALS_SCHEMA", "WooCommerceConnector", "connector"]
