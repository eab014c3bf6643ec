"""A shop's API key for ``POST /api/v1/events`` (the merchant's own events).

A key reads ``kw_<shop id>.<secret>``: the shop id finds the shop, the secret proves it. Only
the key's SHA-256 (and its last four characters, to recognise it by) is kept, inside the shop's
encrypted secrets document; the key itself is shown once, when it is made. Rotating makes a new
key and the old one stops working at once.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets as token

from sqlalchemy import select

from plugin import secrets
from plugin.config import Config
from plugin.db import ShopRow, utcnow
from plugin.errors import UnknownShop

PREFIX = "kw_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def rotate(session, config: Config, shop_id: str) -> str:
    """Make the shop a new API key (the old one stops working); the key, shown only now."""
    row = session.scalar(select(ShopRow).where(ShopRow.id == shop_id).with_for_update())
    if row is None:
        raise UnknownShop(f"no shop {shop_id!r}")
    key = f"{PREFIX}{shop_id}.{token.token_urlsafe(32)}"
    doc = secrets.decrypt(config.secret_keys, row.secrets)
    doc["api_key"] = {"sha256": _digest(key), "hint": key[-4:], "created_at": utcnow().isoformat()}
    row.secrets = secrets.encrypt(config.secret_keys, doc)
    return key


def describe(session, config: Config, shop_id: str) -> dict | None:
    """{"hint": last four characters, "created_at"} of the shop's key, or None when it has none."""
    row = session.get(ShopRow, shop_id)
    if row is None:
        return None
    found = secrets.decrypt(config.secret_keys, row.secrets).get("api_key")
    return {"hint": found["hint"], "created_at": found["created_at"]} if found else None


def shop_of(session, config: Config, key: str | None) -> str | None:
    """The id of the active shop whose current key ``key`` is, else None (compared in constant time)."""
    if not key or not key.startswith(PREFIX) or "." not in key or len(key) > 300:
        return None
    shop_id = key[len(PREFIX):].rpartition(".")[0]
    row = session.get(ShopRow, shop_id)
    if row is None or not row.active:
        return None
    found = secrets.decrypt(config.secret_keys, row.secrets).get("api_key")
    if not found or not hmac.compare_digest(found["sha256"], _digest(key)):
        return None
    return shop_id


__all__ = ["rotate", "describe", "shop_of", "PREFIX"]
