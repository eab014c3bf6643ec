"""Inbound WooCommerce webhook deliveries: signature, the creation ping, the dedupe key."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Mapping

from connectors.base import Shop
from plugin.errors import PayloadError, SignatureError

SIGNATURE = "x-wc-webhook-signature"
TOPIC = "x-wc-webhook-topic"
DELIVERY_ID = "x-wc-webhook-delivery-id"
_PING = re.compile(rb"webhook_id=\d+")


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased: WSGI servers and proxies do not agree on case."""
    return {k.lower(): v for k, v in headers.items()}


def signature(body: bytes, secret: str) -> str:
    """WooCommerce's signature: base64 of the raw HMAC-SHA256 of the exact body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(shop: Shop, headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureError unless X-WC-Webhook-Signature matches one of the shop's secrets."""
    given = lower_headers(headers).get(SIGNATURE, "").strip()
    if not given:
        raise SignatureError("missing X-WC-Webhook-Signature header")
    if not shop.webhook_secrets:
        raise SignatureError(f"shop {shop.id} has no webhook secret to verify with")
    # Every secret is tried (no early exit), so timing tells nothing about which one matched.
    matches = [hmac.compare_digest(signature(body, s).encode(), given.encode()) for s in shop.webhook_secrets]
    if not any(matches):
        raise SignatureError("X-WC-Webhook-Signature does not match the body for any of the shop's secrets")


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """True for the unsigned ``webhook_id=N`` form post WooCommerce sends when a webhook is created."""
    if any(k.startswith("x-wc-webhook-") for k in lower_headers(headers)):
        return False
    return _PING.fullmatch(body.strip()) is not None


def topic(headers: Mapping[str, str]) -> str:
    """The webhook's topic, e.g. order.updated."""
    return lower_headers(headers).get("x-wc-webhook-topic", "")


def delivery_key(headers: Mapping[str, str], payload: dict) -> str:
    """``topic:id:date_modified_gmt``: the same for every delivery of one version of a resource.

    WooCommerce's delivery id changes per send, so it cannot dedupe. A resource without a
    modification date (old customers, ``deleted`` bodies) falls back to the delivery id: such
    deliveries are then never merged, which loses nothing.
    """
    h = lower_headers(headers)
    topic = h.get(TOPIC)
    if not topic:
        raise PayloadError("missing X-WC-Webhook-Topic header")
    version = payload.get("date_modified_gmt") if isinstance(payload, dict) else None
    if not version:
        version = "delivery-" + h.get(DELIVERY_ID, "")
    resource = payload.get("id", "") if isinstance(payload, dict) else ""
    return f"{topic}:{resource}:{version}"
