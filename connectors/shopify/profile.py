"""The shop's own details, for the sender of its emails: name, contact email, postal address."""
from __future__ import annotations

from connectors.base import Shop
from connectors.shopify import api

SHOP_PROFILE = """
query KeepwellShopProfile {
  shop {
    name
    contactEmail
    email
    shopAddress { formatted(withCompany: true) }
    primaryDomain { url }
    ianaTimezone
  }
}
"""


def shop_profile(shop: Shop) -> dict:
    """``{name, email, owner_email, postal_address, url, timezone}`` as the store has them (a value may be
    None): ``email`` is the public contact address, ``owner_email`` the one Shopify writes to."""
    s = api.execute(shop, SHOP_PROFILE).get("shop") or {}
    lines = ((s.get("shopAddress") or {}).get("formatted")) or []
    return {"name": s.get("name") or None, "email": s.get("contactEmail") or s.get("email") or None,
            "owner_email": s.get("email") or None,
            "postal_address": ", ".join(line.strip() for line in lines if line and line.strip()) or None,
            "url": (s.get("primaryDomain") or {}).get("url") or None, "timezone": s.get("ianaTimezone") or None}
