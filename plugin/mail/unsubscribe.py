"""Unsubscribe tokens: (shop, customer) encrypted and authenticated (Fernet), with key rotation.

The token shows nothing without the key: no shop id, no customer id. Emails sent before carry
the earlier readable format (base64 JSON and an HMAC-SHA256 signature); those links keep
working, since an unsubscribe link must work for as long as the email exists.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence

from plugin.errors import KeepwellError
from plugin.secrets import SecretError, decrypt, encrypt


class UnsubscribeTokenError(KeepwellError, ValueError):
    """An unsubscribe token is malformed, tampered with, or signed with an unknown secret."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> bytes:
    if not secret:
        raise ValueError("an unsubscribe secret must not be empty")
    # the purpose prefix keeps these signatures from ever matching another use of the same key
    return hmac.new(secret.encode(), b"keepwell.unsubscribe:" + payload.encode("ascii"), hashlib.sha256).digest()


def unsubscribe_token(secret: str, shop: str, customer_id: str) -> str:
    """A URL-safe opaque token for (shop, customer). It never expires: unsubscribe links in old
    emails must keep working."""
    if not secret:
        raise ValueError("an unsubscribe secret must not be empty")
    # Fernet's base64 padding dropped: the token stays [A-Za-z0-9_-], safe in a URL path as is.
    return encrypt([secret], {"purpose": "unsubscribe", "shop": shop, "customer": customer_id}).rstrip("=")


def legacy_token(secret: str, shop: str, customer_id: str) -> str:
    """The earlier, readable format (still accepted): base64 JSON [shop, customer] and its HMAC."""
    payload = _b64(json.dumps([shop, customer_id], separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_b64(_signature(secret, payload))}"


def verify_unsubscribe_token(secrets: str | Sequence[str], token: str) -> tuple[str, str]:
    """(shop, customer_id) from a token signed with any of ``secrets`` (newest first, old ones
    during a rotation); UnsubscribeTokenError otherwise."""
    if isinstance(secrets, str):
        secrets = [secrets]
    if not secrets:
        raise ValueError("no unsubscribe secrets configured")
    if "." not in (token or ""):  # Fernet tokens have no dot; the legacy format always has one
        try:
            found = decrypt(list(secrets), (token or "") + "=" * (-len(token or "") % 4))
        except SecretError:
            raise UnsubscribeTokenError("unsubscribe token is not valid") from None
        if found.get("purpose") != "unsubscribe" or not isinstance(found.get("shop"), str) \
                or not isinstance(found.get("customer"), str):
            raise UnsubscribeTokenError("malformed unsubscribe token")
        return found["shop"], found["customer"]
    payload, dot, signature = (token or "").partition(".")
    try:
        given = _unb64(signature)
        payload.encode("ascii")
    except (ValueError, UnicodeError):
        raise UnsubscribeTokenError("malformed unsubscribe token") from None
    if not dot or not any(hmac.compare_digest(given, _signature(s, payload)) for s in secrets):
        raise UnsubscribeTokenError("unsubscribe token signature does not match")
    try:
        shop, customer_id = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise UnsubscribeTokenError("malformed unsubscribe token") from None
    if not isinstance(shop, str) or not isinstance(customer_id, str):
        raise UnsubscribeTokenError("malformed unsubscribe token")
    return shop, customer_id
