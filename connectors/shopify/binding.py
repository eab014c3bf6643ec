"""Tying a signed body to the shop and topic its unsigned headers name.

Shopify's HMAC covers the body only, and every shop of a public app shares the app's secret: a
genuine body of one shop, re-sent under another topic or another shop's domain, still verifies.
Destructive topics are therefore acted on only when the body itself says what it is and whose it
is. Orders and customers name no shop at all; see SECURITY.md for what that leaves open.
"""
from __future__ import annotations

from typing import Mapping

from plugin.errors import SignatureError

#: Keys that tell each compliance topic's body apart: all of ``needs`` present, none of ``never``.
_SHAPES = {
    "customers/data_request": ({"shop_id", "shop_domain", "customer", "orders_requested", "data_request"},
                               {"orders_to_redact"}),
    "customers/redact": ({"shop_id", "shop_domain", "customer", "orders_to_redact"},
                         {"orders_requested", "data_request"}),
    "shop/redact": ({"shop_id", "shop_domain"}, {"customer", "orders_requested", "orders_to_redact", "data_request"}),
}


def _domain(value) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def check_uninstalled(payload: Mapping, shop_domain: str) -> str:
    """The Shopify shop id of an app/uninstalled body that is ``shop_domain``'s own shop object;
    SignatureError (401) for any other body (an order relabelled, another shop's uninstall)."""
    named = {_domain(payload.get("myshopify_domain")), _domain(payload.get("domain"))} - {""}
    shop_id = payload.get("id")
    if not named or shop_domain not in named or isinstance(shop_id, bool) or not isinstance(shop_id, int):
        raise SignatureError(f"app/uninstalled for {shop_domain!r}: the signed body is not that shop's shop object")
    return str(shop_id)


def check_compliance(topic: str, payload: Mapping, header_domain: str, known_shop_id: str | None = None) -> None:
    """SignatureError (401) unless the body has ``topic``'s shape, names the shop the header names,
    and (when Keepwell knows the shop's Shopify id) carries that id."""
    needs, never = _SHAPES[topic]
    keys = set(payload)
    if not needs <= keys or keys & never:
        raise SignatureError(f"{topic}: the signed body is not a {topic} body")
    body_domain = _domain(payload.get("shop_domain"))
    if not header_domain or body_domain != header_domain:
        raise SignatureError(f"{topic}: the signed body's shop_domain {body_domain[:100]!r} is not the "
                             f"X-Shopify-Shop-Domain {header_domain[:100]!r}")
    if known_shop_id is not None and str(payload.get("shop_id")) != known_shop_id:
        raise SignatureError(f"{topic}: the signed body's shop_id is not {body_domain!r}'s")
