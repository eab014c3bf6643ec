"""Webhook authenticity (X-Shopify-Hmac-Sha256) and the dedupe key of a delivery."""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping

from connectors.base import Shop
from plugin.errors import PayloadError, SignatureError

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value looked up case-insensitively (proxies and test clients lower-case names)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def signature(secret: str, body: bytes) -> str:
    """Shopify's signature of ``body``: base64 of HMAC-SHA256 keyed with the app's client secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(shop: Shop, headers: Mapping[str, str], body: bytes) -> None:
    """Raise SignatureError unless ``body`` is signed with one of the shop's webhook secrets.

    Every secret in ``shop.webhook_secrets`` is tried, because after a client-secret rotation
    Shopify keeps signing with the old one for up to an hour.
    """
    given = header(headers, HMAC_HEADER)
    if not given:
        raise SignatureError(f"missing {HMAC_HEADER} header")
    secrets = [s for s in shop.webhook_secrets if s]
    if not secrets:
        raise SignatureError(f"shop {shop.id} has no webhook secret to check the signature with")
    given_bytes = given.strip().encode()
    # Compare against every secret, without stopping early, so timing says nothing about which matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(signature(secret, body).encode(), given_bytes)
    if not matched:
        raise SignatureError(f"{HMAC_HEADER} does not match the body signed with the shop's secret")


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """Always False: Shopify has no unsigned "is this URL alive" call; every delivery is signed."""
    return False


def topic(headers: Mapping[str, str]) -> str:
    """The webhook's topic, e.g. orders/paid."""
    return header(headers, "X-Shopify-Topic") or ""


def shop_domain(headers: Mapping[str, str]) -> str:
    """The shop that the delivery says it is for (not signed: the HMAC covers only the body)."""
    return (header(headers, "X-Shopify-Shop-Domain") or "").strip().lower()


def delivery_key(headers: Mapping[str, str], payload: dict) -> str:
    """X-Shopify-Event-Id (the same on every delivery of one event), else X-Shopify-Webhook-Id."""
    for name in (EVENT_ID_HEADER, WEBHOOK_ID_HEADER):
        value = header(headers, name)
        if value and value.strip():
            return value.strip()
    raise PayloadError(f"neither {EVENT_ID_HEADER} nor {WEBHOOK_ID_HEADER} header is present")
