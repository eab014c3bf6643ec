"""The store's own details, for the sender of its emails: WooCommerce's store address
(Settings -> General) and its email sender (Settings -> Emails), through the settings API."""
from __future__ import annotations

from connectors.base import Shop
from connectors.woocommerce import client


def _values(shop: Shop, group: str) -> dict:
    return {s.get("id"): s.get("value") for s in client.call(shop, "GET", f"settings/{group}") or ()
            if isinstance(s, dict)}


def shop_profile(shop: Shop) -> dict:
    """``{name, email, postal_address, url}`` as the store has them (a value may be None)."""
    general, emails = _values(shop, "general"), _values(shop, "email")
    country, _, state = str(general.get("woocommerce_default_country") or "").partition(":")
    city = " ".join(str(v).strip() for v in (general.get("woocommerce_store_postcode"), general.get("woocommerce_store_city"))
                    if v and str(v).strip())
    parts = [general.get("woocommerce_store_address"), general.get("woocommerce_store_address_2"), city, state, country]
    address = ", ".join(str(p).strip() for p in parts if p and str(p).strip())
    return {"name": emails.get("woocommerce_email_from_name") or None,
            "email": emails.get("woocommerce_email_from_address") or None,
            "postal_address": address if general.get("woocommerce_store_address") else None,
            "url": shop.domain}
