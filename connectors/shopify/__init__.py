"""The Shopify connector: webhook verification and parsing, and write-back over the GraphQL Admin API.

``connector`` satisfies ``connectors.base.Connector``; each job lives in its own module.
"""
from __future__ import annotations

from connectors.shopify.api import API_VERSION
from connectors.shopify.coupons import create_coupon, discount_link
from connectors.shopify import bulk, consent, payloads, profile
from connectors.shopify.payloads import parse
from connectors.shopify.reconcile import changes_since
from connectors.shopify.signature import delivery_key, is_ping, shop_domain, topic, verify
from connectors.shopify.subscriptions import register_webhooks
from connectors.shopify.tags import add_tag


class ShopifyConnector:
    """Shopify's implementation of the connector interface (stateless: the Shop carries everything)."""

    platform = "shopify"
    api_version = API_VERSION
    #: webhook topics parse() turns into events (app/uninstalled is handled by the edge itself)
    topics = frozenset({*payloads.ORDER_TOPICS, *payloads.CUSTOMER_TOPICS, payloads.REFUND_TOPIC, *payloads.CONSENT_TOPICS})

    verify = staticmethod(verify)
    topic = staticmethod(topic)
    shop_domain = staticmethod(shop_domain)
    export_deliveries = staticmethod(payloads.export_deliveries)
    delivery_key = staticmethod(delivery_key)
    is_ping = staticmethod(is_ping)
    parse = staticmethod(parse)
    discount_link = staticmethod(discount_link)
    create_coupon = staticmethod(create_coupon)
    add_tag = staticmethod(add_tag)
    marketing_consent = staticmethod(consent.marketing_consent)
    unsubscribe = staticmethod(consent.unsubscribe)
    shop_profile = staticmethod(profile.shop_profile)
    register_webhooks = staticmethod(register_webhooks)
    changes_since = staticmethod(changes_since)
    history = staticmethod(bulk.history)


connector = ShopifyConnector()

__all__ = ["API_VERSION", "ShopifyConnector", "connector"]
