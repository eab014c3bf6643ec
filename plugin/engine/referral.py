"""Personal referral codes, derived from (shop, customer id) so no lookup is ever needed.

A code is PREFIX + base36(customer id) + two check characters keyed by the shop: readable,
case-insensitive (WooCommerce lower-cases coupon codes) and decodable back to the referrer.
"""
from __future__ import annotations

import hashlib

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _b36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _ALPHABET[r] + out
        if not n:
            return out


def _check(shop: str, customer_id: str) -> str:
    digest = hashlib.sha256(f"{shop}:{customer_id}".encode()).digest()
    return _ALPHABET[digest[0] % 36] + _ALPHABET[digest[1] % 36]


def referral_code(shop: str, customer_id: str, prefix: str = "REF") -> str | None:
    """The customer's referral code, or None for ids that are not numeric."""
    if not customer_id.isdigit():
        return None
    return f"{prefix}{_b36(int(customer_id))}{_check(shop, customer_id)}"


def decode_referral_code(shop: str, code: str, prefix: str = "REF") -> str | None:
    """The referrer's customer id for a valid code of this shop, else None."""
    code = code.strip().upper()
    prefix = prefix.upper()
    if not code.startswith(prefix) or len(code) < len(prefix) + 3:
        return None
    body, check = code[len(prefix):-2], code[-2:]
    try:
        customer_id = str(int(body, 36))
    except ValueError:
        return None
    return customer_id if _check(shop, customer_id) == check else None
