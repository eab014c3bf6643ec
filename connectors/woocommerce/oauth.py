"""One-legged OAuth 1.0a, as WooCommerce's REST API requires over plain HTTP.

WooCommerce reads the oauth_* parameters from the query string, signs
``METHOD&enc(url)&enc(sorted enc(k)=enc(v) joined by &)`` with ``consumer_secret&`` and
compares. The body is not signed, and oauth_version must be left out.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote, urlsplit, urlunsplit

_ALGORITHMS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def encode(value) -> str:
    """RFC 3986 percent-encoding (PHP's rawurlencode): everything but A-Z a-z 0-9 - . _ ~."""
    return quote(str(value), safe="")


def base_url(url: str) -> str:
    """The URL part of the signature base string: lower-case scheme and host, no default port, no query."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, "", ""))


def signature(method: str, url: str, params: list[tuple[str, str]], consumer_secret: str,
              token_secret: str = "", method_name: str = "HMAC-SHA256") -> str:
    """The base64 oauth_signature for a request with these (non-signature) parameters."""
    pairs = sorted((encode(k), encode(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), encode(base_url(url)), encode(normalized)))
    # WooCommerce uses the secret as stored, not percent-encoded (its secrets are [a-z0-9_]).
    key = f"{consumer_secret}&{token_secret}"
    digest = hmac.new(key.encode(), base.encode(), _ALGORITHMS[method_name]).digest()
    return base64.b64encode(digest).decode()


def signed_params(method: str, url: str, params: list[tuple[str, str]], consumer_key: str,
                  consumer_secret: str) -> list[tuple[str, str]]:
    """``params`` plus the oauth_* parameters (timestamp, 32-char nonce, HMAC-SHA256 signature)."""
    oauth = [
        ("oauth_consumer_key", consumer_key),
        ("oauth_nonce", secrets.token_hex(16)),
        ("oauth_signature_method", "HMAC-SHA256"),
        ("oauth_timestamp", str(int(time.time()))),
    ]
    signed = list(params) + oauth
    return signed + [("oauth_signature", signature(method, url, signed, consumer_secret))]
