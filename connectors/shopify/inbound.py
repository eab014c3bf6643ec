"""Which shop a Shopify delivery is for, and the deliveries the edge hands back to Shopify's
package: the privacy webhooks (before any shop lookup) and app/uninstalled."""
from __future__ import annotations

import logging
from typing import Mapping

from connectors.base import Shop
from connectors.interfaces import Answer, ShopRef
from connectors.shopify import binding, compliance, signature

log = logging.getLogger("keepwell.webhooks")

UNINSTALLED = "app/uninstalled"


def identify(headers: Mapping[str, str], shop_ref: str | None) -> ShopRef | None:
    """Every shop's deliveries come to one URL and name the shop in X-Shopify-Shop-Domain (not
    signed: the shop's secret, checked next, is what proves it)."""
    if shop_ref is not None:
        return None
    return ShopRef("domain", signature.shop_domain(headers))


def unbound(edge, topic: str, headers: Mapping[str, str], body: bytes) -> Answer | None:
    """The privacy webhooks: they also come for shops that uninstalled (shop/redact, 48 hours after)."""
    if topic in compliance.TOPICS:
        return compliance.handle(edge, topic, headers, body)
    return None


def lifecycle(edge, shop: Shop, topic: str, payload: dict) -> Answer | None:
    """app/uninstalled: only the shop's own shop object, since the topic header is not signed.
    Its Shopify id is kept: the later shop/redact must carry it."""
    if topic != UNINSTALLED:
        return None
    edge.shops.uninstall(shop.id, {"shopify_shop_id": binding.check_uninstalled(payload, shop.domain)})
    log.info("shop %s uninstalled the app", shop.id)
    return Answer("uninstalled")
