"""Webhook subscriptions through ``/wc/v3/webhooks``."""
from __future__ import annotations

from connectors.base import Shop
from connectors.woocommerce import client

TOPICS = ("order.created", "order.updated", "customer.created", "customer.updated")


def webhook_url(app_url: str, shop_id: str) -> str:
    """Where a shop's WooCommerce deliveries go: its own URL, which names it to the edge."""
    return f"{app_url.rstrip('/')}/webhooks/woocommerce/{shop_id}"


def delivery_url(shop: Shop, app_url: str) -> str:
    """Where this shop's WooCommerce deliveries go."""
    return webhook_url(app_url, shop.id)


def register_webhooks(shop: Shop, app_url: str) -> list[str]:
    """Subscribe TOPICS, signed with the shop's current secret; returns the topics.

    A webhook that already exists for a topic and URL is updated, never duplicated: it is set
    active again (WooCommerce disables one after 5 failed deliveries) and given the current
    secret (which is how a secret rotation reaches the store).
    """
    if not shop.webhook_secrets:
        # without one WooCommerce signs with a secret derived from the user, which we cannot verify
        raise ValueError(f"shop {shop.id} has no webhook secret to register webhooks with")
    target = delivery_url(shop, app_url)
    secret = shop.webhook_secrets[0]
    existing = {}
    for hook in client.pages(shop, "webhooks"):
        if hook.get("delivery_url") == target and hook.get("topic") in TOPICS:
            existing.setdefault(hook["topic"], hook)
    for topic in TOPICS:
        hook = existing.get(topic)
        if hook is None:
            client.call(shop, "POST", "webhooks", json={
                "name": f"Keepwell {topic}", "topic": topic, "delivery_url": target,
                "secret": secret, "status": "active"})
        else:
            client.call(shop, "PUT", f"webhooks/{hook['id']}", json={"secret": secret, "status": "active"})
    return list(TOPICS)


def revive_webhooks(shop: Shop, app_url: str) -> list[int]:
    """Set this shop's disabled Keepwell webhooks active again; returns their ids.

    WooCommerce disables a webhook after 5 failed deliveries in a row and never retries one, so
    an outage of Keepwell (or of the network) would otherwise end the store's deliveries for
    good; reconciliation fetches what they missed. Paused webhooks (a merchant's choice) and
    other webhooks of the store are left alone.
    """
    target = delivery_url(shop, app_url)
    dead = [hook["id"] for hook in client.pages(shop, "webhooks", {"status": "disabled"})
            if hook.get("delivery_url") == target and hook.get("status") == "disabled"]
    for hook_id in dead:
        client.call(shop, "PUT", f"webhooks/{hook_id}", json={"status": "active"})
    return dead


def delete_webhooks(shop: Shop, app_url: str) -> list[int]:
    """Delete every webhook of the store that delivers to this shop's Keepwell URL (whatever
    its topic); returns their ids. Other webhooks of the store are left alone."""
    target = delivery_url(shop, app_url)
    ours = [hook["id"] for hook in client.pages(shop, "webhooks") if hook.get("delivery_url") == target]
    for hook_id in ours:
        client.call(shop, "DELETE", f"webhooks/{hook_id}", params={"force": True})  # webhooks cannot be trashed
    return ours
