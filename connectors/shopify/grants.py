"""Shopify's token endpoint (``POST https://{shop}/admin/oauth/access_token``): every way
Keepwell gets an offline access token, and the refresh that keeps an expiring one alive.

- the authorization-code grant (non-embedded and legacy installs),
- token exchange of an App Bridge session token (Shopify-managed installation),
- token exchange of a non-expiring offline token for an expiring one (migration),
- the refresh-token grant.

Every request asks for an *expiring* offline token (``expiring=1``): from 2027-01-01 Shopify
refuses Admin API calls of public apps made with non-expiring ones. An expiring token lasts an
hour and comes with a refresh token (90 days); Shopify keeps the previous refresh token valid
until the new access token is used, so a refresh whose answer was lost can simply be repeated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

import requests

from connectors.shopify.oauth import SCOPES, require_shop_domain
from plugin.errors import StoreError

TIMEOUT = (5, 30)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN = "urn:shopify:params:oauth:token-type:offline-access-token"


@dataclass(frozen=True)
class Grant:
    """An offline access token as the token endpoint issued it; times are Unix seconds and
    ``expires_at`` None means a non-expiring token (which has no refresh token)."""

    access_token: str
    scopes: tuple[str, ...]
    expires_at: float | None = None
    refresh_token: str = ""
    refresh_token_expires_at: float | None = None

    def missing(self, wanted: Iterable[str] = SCOPES) -> list[str]:
        """Wanted scopes the merchant did not grant (a write scope counts for its read)."""
        granted = set(self.scopes) | {s.replace("write_", "read_", 1) for s in self.scopes if s.startswith("write_")}
        return [s for s in wanted if s not in granted]


def exchange_code(shop: str, api_key: str, secret: str, code: str, now: float | None = None) -> Grant:
    """Trade an OAuth callback's ``code`` for an expiring offline token."""
    return _token_request(shop, {"client_id": api_key, "client_secret": secret, "code": code, "expiring": "1"},
                          "the authorization code exchange", now)


def exchange_session_token(shop: str, api_key: str, secret: str, id_token: str, now: float | None = None) -> Grant:
    """Trade an App Bridge session token (``id_token``) for an expiring offline token."""
    return _token_request(shop, {"client_id": api_key, "client_secret": secret, "grant_type": TOKEN_EXCHANGE,
                                 "subject_token": id_token, "subject_token_type": ID_TOKEN,
                                 "requested_token_type": OFFLINE_TOKEN, "expiring": "1"},
                          "the session token exchange", now)


def migrate_offline_token(shop: str, api_key: str, secret: str, token: str, now: float | None = None) -> Grant:
    """Trade a non-expiring offline token for an expiring one, with nobody logged in. Repeating
    it with the same old token (within 7 days, before the new pair is refreshed) returns the
    same pair, so a lost answer is recoverable."""
    return _token_request(shop, {"client_id": api_key, "client_secret": secret, "grant_type": TOKEN_EXCHANGE,
                                 "subject_token": token, "subject_token_type": OFFLINE_TOKEN,
                                 "requested_token_type": OFFLINE_TOKEN, "expiring": "1"},
                          "the token migration", now)


def refresh(shop: str, api_key: str, secret: str, refresh_token: str, now: float | None = None) -> Grant:
    """A new access token (and a new refresh token) for an expiring offline token."""
    return _token_request(shop, {"client_id": api_key, "client_secret": secret, "grant_type": "refresh_token",
                                 "refresh_token": refresh_token}, "the token refresh", now)


def _token_request(shop: str, body: dict, what: str, now: float | None) -> Grant:
    shop = require_shop_domain(shop)
    sent = time.time() if now is None else now  # expiries count from when we asked: never late
    try:
        response = requests.post(f"https://{shop}/admin/oauth/access_token", json=body,
                                 headers={"Accept": "application/json"}, timeout=TIMEOUT, allow_redirects=False)
    except requests.Timeout as exc:
        raise StoreError(f"Shopify did not answer {what} in time: {exc}", retryable=True, code="TIMEOUT") from exc
    except requests.RequestException as exc:
        raise StoreError(f"could not reach {shop} for {what}: {exc}", retryable=True, code="CONNECTION") from exc
    status = response.status_code
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if status != 200:
        error = answer.get("error") if isinstance(answer, dict) else None
        detail = (answer.get("error_description") if isinstance(answer, dict) else None) or \
            (response.text or response.reason or "").strip()[:300]
        raise StoreError(f"Shopify answered {what} with {status}: {detail}",
                         retryable=status == 429 or status >= 500, status=status,
                         code=error if isinstance(error, str) and error else f"HTTP_{status}")
    return _grant(answer, sent, what, status)


def _grant(answer, sent: float, what: str, status: int) -> Grant:
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise StoreError(f"Shopify's answer to {what} holds no access_token", retryable=False, status=status,
                         code="BAD_RESPONSE")
    scopes = tuple(s.strip() for s in str(answer.get("scope") or "").split(",") if s.strip())
    expires_in, refresh_token = answer.get("expires_in"), answer.get("refresh_token")
    if expires_in is None:
        return Grant(token, scopes)
    if not _seconds(expires_in) or not isinstance(refresh_token, str) or not refresh_token:
        raise StoreError(f"Shopify's answer to {what} has an expiring token without a usable expires_in and "
                         "refresh_token", retryable=False, status=status, code="BAD_RESPONSE")
    refresh_in = answer.get("refresh_token_expires_in")
    return Grant(token, scopes, sent + expires_in, refresh_token,
                 sent + refresh_in if _seconds(refresh_in) else None)


def _seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
