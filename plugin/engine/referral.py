"""Personal referral codes: decodable back to the referrer with no lookup, and impossible to compute
without the shop's secret referral key.

A code is PREFIX + the customer id in base 32 + an 8-character tag: the first 40 bits of
HMAC-SHA256(shop key, shop and customer). The alphabet leaves out 0/O and 1/I, so a code read
aloud or typed from an email survives; codes are case-insensitive (WooCommerce lower-cases coupon
codes). The prefix is decoration: a code stays valid after the shop changes ``referral_prefix``.
The key comes in as data (``Settings.referral_key``, filled in by the worker from the shop's
encrypted secrets); the engine never reads it from anywhere.

Codes of the earlier format (PREFIX + base 36 id + two unkeyed check characters, which anyone
could compute) are still honoured on orders placed before ``Settings.referral_legacy_until``,
with the shop's current prefix or the default REF, so codes already shared keep working for a
transition; after that date only keyed codes count.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import Any

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: no 0/O, no 1/I
TAG_CHARS = 8  # 40 bits
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _encode(n: int, alphabet: str) -> str:
    base, out = len(alphabet), ""
    while True:
        n, r = divmod(n, base)
        out = alphabet[r] + out
        if not n:
            return out


def _tag(key: str, shop: str, customer_id: str) -> str:
    digest = hmac.new(key.encode(), f"keepwell-referral\n{shop}\n{customer_id}".encode(), hashlib.sha256).digest()
    bits = int.from_bytes(digest[:5], "big")  # 40 bits, 5 per character
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(TAG_CHARS)))


def referral_code(settings: Any, shop: str, customer_id: str) -> str | None:
    """The customer's referral code under ``settings`` (prefix and the shop's key), or None for
    ids that are not numeric or when no key is given."""
    key = getattr(settings, "referral_key", "")
    if not key or not customer_id.isdigit():
        return None
    return f"{settings.referral_prefix}{_encode(int(customer_id), ALPHABET)}{_tag(key, shop, customer_id)}"


def _keyed_referrer(key: str, shop: str, code: str) -> str | None:
    body, tag = code[:-TAG_CHARS], code[-TAG_CHARS:]
    # The prefix is not signed: try every split of the body into prefix and id. A wrong split
    # matches a 40-bit tag by chance only.
    for start in range(len(body) - 1, -1, -1):
        if body[start] not in _VALUE:
            break
        digits = body[start:]
        n = 0
        for c in digits:
            n = n * 32 + _VALUE[c]
        customer_id = str(n)
        if _encode(n, ALPHABET) == digits and hmac.compare_digest(_tag(key, shop, customer_id), tag):
            return customer_id
    return None


def _legacy_check(shop: str, customer_id: str) -> str:
    digest = hashlib.sha256(f"{shop}:{customer_id}".encode()).digest()
    return _B36[digest[0] % 36] + _B36[digest[1] % 36]


def legacy_referral_code(shop: str, customer_id: str, prefix: str = "REF") -> str | None:
    """A code of the earlier, unkeyed format (codes customers may still hold)."""
    if not customer_id.isdigit():
        return None
    return f"{prefix}{_encode(int(customer_id), _B36)}{_legacy_check(shop, customer_id)}"


def _legacy_referrer(shop: str, code: str, prefixes: Iterable[str]) -> str | None:
    for prefix in prefixes:
        if not code.startswith(prefix) or len(code) < len(prefix) + 3:
            continue
        body, check = code[len(prefix):-2], code[-2:]
        try:
            customer_id = str(int(body, 36))
        except ValueError:
            continue
        if _legacy_check(shop, customer_id) == check:
            return customer_id
    return None


def decode_referral_code(settings: Any, shop: str, code: str, at: datetime | None = None) -> str | None:
    """The referrer's customer id for a valid code of this shop, else None. ``at`` is when the
    code was used (the order's time): earlier-format codes count only before the transition ends."""
    code = code.strip().upper()
    key = getattr(settings, "referral_key", "")
    if key and len(code) > TAG_CHARS:
        found = _keyed_referrer(key, shop, code)
        if found is not None:
            return found
    until = getattr(settings, "referral_legacy_until", None)
    if until is not None and at is not None and at < until:
        return _legacy_referrer(shop, code, dict.fromkeys((settings.referral_prefix.upper(), "REF")))
    return None


# --- the same person on both sides -----------------------------------------------------------

#: Mail providers that deliver name+tag@ to name@, and those that also ignore dots in the name.
PLUS_TAG_PROVIDERS = frozenset({"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
                                "icloud.com", "me.com", "mac.com", "fastmail.com", "proton.me", "protonmail.com"})
DOTLESS_PROVIDERS = frozenset({"gmail.com", "googlemail.com"})
_SAME_PROVIDER = {"googlemail.com": "gmail.com"}


def normalized_email(email: object) -> str | None:
    """The mailbox an address reaches: lower case, and without the +tag and dots that providers
    known to ignore them ignore."""
    if not isinstance(email, str) or "@" not in email:
        return None
    local, _, domain = email.strip().lower().rpartition("@")
    domain = _SAME_PROVIDER.get(domain, domain)
    if domain in PLUS_TAG_PROVIDERS:
        local = local.split("+", 1)[0]
    if domain in DOTLESS_PROVIDERS:
        local = local.replace(".", "")
    return f"{local}@{domain}" if local and domain else None


def normalized_phone(phone: object) -> str | None:
    """The last ten digits of a phone number (country prefixes and formatting vary)."""
    digits = "".join(c for c in str(phone or "") if c.isdigit())
    return digits[-10:] if len(digits) >= 7 else None


def normalized_address(address: object) -> str | None:
    """An address line, postcode and country compared without case, spacing or punctuation."""
    if not isinstance(address, str):
        return None
    text = "".join(c for c in address.lower() if c.isalnum())
    return text or None


def same_person(referrer: Any, friend: dict[str, Any]) -> str | None:
    """What shows that the referrer (a customer state) and the friend (a referral signal's data:
    friend_email, friend_phone, friend_address) are one person: "email", "phone",
    "shipping address", or None."""
    checks = (("email", normalized_email, referrer.email, friend.get("friend_email")),
              ("phone", normalized_phone, getattr(referrer, "phone", None), friend.get("friend_phone")),
              ("shipping address", normalized_address, getattr(referrer, "shipping_address", None),
               friend.get("friend_address")))
    for what, normal, mine, theirs in checks:
        a, b = normal(mine), normal(theirs)
        if a is not None and a == b:
            return what
    return None
