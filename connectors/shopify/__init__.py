"""The Shopify platform: webhooks in (verify, identify, parse, privacy webhooks), write-back
over the GraphQL Admin API, installation from the App Store, and the embedded admin's sign-in.

``connector`` implements ``connectors.interfaces.Connector``; each job lives in its own module.
"""
from __future__ import annotations

from dataclasses import replace

from connectors.base import Shop
from connectors.shopify.api import API_VERSION
from connectors.shopify.coupons import create_coupon, discount_link
from connectors.shopify import bulk, consent, inbound, pacing, payloads, profile, sms
from connectors.shopify.payloads import parse
from connectors.shopify.reconcile import changes_since
from connectors.shopify.signature import delivery_key, is_ping, shop_domain, topic, verify
from connectors.shopify.subscriptions import register_webhooks
from connectors.shopify.tags import add_tag

#: The credentials document of a Shopify shop: its offline access token and, for an expiring
#: one, the refresh token and both expiry times (Unix seconds).
CREDENTIALS_SCHEMA = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string"},
        "access_token_expires_at": {"type": ["number", "null"]},
        "refresh_token": {"type": "string"},
        "refresh_token_expires_at": {"type": ["number", "null"]},
    },
    "additionalProperties": False,
}


class ShopifyConnector:
    """Shopify's implementation of the platform interfaces (stateless: the Shop carries everything)."""

    platform = "shopify"
    api_version = API_VERSION
    #: webhook topics parse() turns into events (app/uninstalled and the privacy topics are
    #: handled by ``lifecycle`` and ``unbound``)
    topics = frozenset({*payloads.ORDER_TOPICS, *payloads.CUSTOMER_TOPICS, payloads.REFUND_TOPIC, *payloads.CONSENT_TOPICS,
                        sms.TOPIC})
    credentials_schema = CREDENTIALS_SCHEMA
    own_webhook_secret = False  # the app's client secret signs every shop's webhooks
    effect_slots = pacing.EFFECT_SLOTS  # touches of one shop at once; its cost bucket paces the calls

    # inbound
    identify = staticmethod(inbound.identify)
    unbound = staticmethod(inbound.unbound)
    lifecycle = staticmethod(inbound.lifecycle)
    verify = staticmethod(verify)
    topic = staticmethod(topic)
    shop_domain = staticmethod(shop_domain)
    export_deliveries = staticmethod(payloads.export_deliveries)
    delivery_key = staticmethod(delivery_key)
    is_ping = staticmethod(is_ping)
    parse = staticmethod(parse)
    # outbound
    discount_link = staticmethod(discount_link)
    create_coupon = staticmethod(create_coupon)
    add_tag = staticmethod(add_tag)
    marketing_consent = staticmethod(consent.marketing_consent)
    unsubscribe = staticmethod(consent.unsubscribe)
    sms_consent_update = staticmethod(sms.update)
    shop_profile = staticmethod(profile.shop_profile)
    # sync
    changes_since = staticmethod(changes_since)
    history = staticmethod(bulk.history)

    def revive_webhooks(self, shop: Shop, app_url: str) -> list:
        """Nothing to revive: Shopify's subscriptions come with the app (shopify.app.toml)."""
        return []

    # install
    register_webhooks = staticmethod(register_webhooks)

    def normal_domain(self, domain: str) -> str:
        """NAME.myshopify.com, in lower case."""
        return domain.strip().rstrip("/").lower()

    def default_api_url(self, domain: str) -> str:
        return f"https://{domain}"

    def webhook_url(self, app_url: str, shop_id: str) -> str:
        """One URL for every shop: deliveries name their shop in a header."""
        return f"{app_url.rstrip('/')}/webhooks/shopify"

    def with_app(self, shop: Shop, config) -> Shop:
        """Shops without a webhook secret of their own are signed with the app's secret (old and
        new during a rotation); every shop's expiring token is kept valid by the token keeper."""
        from plugin.tokens import keeper

        return replace(shop, webhook_secrets=shop.webhook_secrets or tuple(config.shopify_api_secrets),
                       tokens=keeper(config))

    @property
    def blueprint(self):
        """/shopify/install and /shopify/callback (connectors/shopify/install.py)."""
        from connectors.shopify.install import bp

        return bp

    # admin authentication
    @property
    def admin_schemes(self):
        from connectors.shopify.admin_auth import SCHEMES

        return SCHEMES

    def frame_ancestors(self, request, domain: str | None) -> str | None:
        from connectors.shopify.admin_auth import frame_ancestors

        return frame_ancestors(request, domain)

    def customer_admin_url(self, domain: str, customer_id: str) -> str | None:
        if not str(customer_id).isdigit():
            return None
        host = domain.split("://", 1)[-1].rstrip("/")
        if host.endswith(".myshopify.com"):
            return f"https://admin.shopify.com/store/{host.removesuffix('.myshopify.com')}/customers/{customer_id}"
        return f"https://{host}/admin/customers/{customer_id}"


connector = ShopifyConnector()

__all__ = ["API_VERSION", "CREDENTIALS_SCHEMA", "ShopifyConnector", "connector"]
