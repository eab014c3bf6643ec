"""Subscribing the shop's webhooks to Keepwell (``webhookSubscriptionCreate``).

The mandatory compliance topics (customers/data_request, customers/redact, shop/redact) cannot
be subscribed through the API; they are declared in the app configuration instead.
"""
from __future__ import annotations

from connectors.base import Shop
from connectors.shopify import api
from plugin.errors import StoreError

#: GraphQL topic -> the X-Shopify-Topic its deliveries carry.
TOPICS = {
    "ORDERS_CREATE": "orders/create",
    "ORDERS_PAID": "orders/paid",
    "ORDERS_CANCELLED": "orders/cancelled",
    "REFUNDS_CREATE": "refunds/create",
    "CUSTOMERS_CREATE": "customers/create",
    "CUSTOMERS_UPDATE": "customers/update",
    "CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE": "customers_email_marketing_consent/update",
    "CUSTOMERS_MARKETING_CONSENT_UPDATE": "customers_marketing_consent/update",  # SMS consent
    "APP_UNINSTALLED": "app/uninstalled",
}

SUBSCRIBE = """
mutation KeepwellWebhookSubscribe($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id }
    userErrors { field message }
  }
}
"""


def register_webhooks(shop: Shop, app_url: str) -> list[str]:
    """Subscribe every topic Keepwell needs to ``{app_url}/webhooks/shopify``; returns their webhook topics.

    "Address for this topic has already been taken" means the subscription exists: success.
    """
    uri = f"{app_url.rstrip('/')}/webhooks/shopify"
    done = []
    for topic, webhook_topic in TOPICS.items():
        data = api.execute(shop, SUBSCRIBE, {"topic": topic, "uri": uri})
        errors = [e for e in api.user_errors(data.get("webhookSubscriptionCreate")) if not _already_subscribed(e)]
        if errors:
            raise StoreError(f"Shopify refused the {topic} webhook: {api.user_error_message(errors)}",
                             retryable=False, code="USER_ERROR")
        done.append(webhook_topic)
    return done


def _already_subscribed(error: dict) -> bool:
    return "already been taken" in (error.get("message") or "").lower()
