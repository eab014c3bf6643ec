"""How Shopify merchants sign in to the admin pages: the embedded admin authenticates every
request with a fresh App Bridge session token (``Authorization: Bearer`` on fetches,
``id_token`` on navigations and form posts). Nothing is remembered between requests, so no
cookie is set (third-party cookies are blocked in the admin's iframe in many browsers)."""
from __future__ import annotations

import time

from connectors.shopify import oauth
from plugin.admin_auth import Unauthenticated


def _bearer(request) -> str | None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def session_token(request, edge) -> str | None:
    """``Authorization: Bearer <App Bridge session token>`` from Shopify's embedded admin."""
    token = _bearer(request)
    if token is None:
        return None
    # App Bridge fetches a fresh token and retries once when told to with this header.
    return _token_shop(token, edge, {"X-Shopify-Retry-Invalid-Session-Request": "1"})


def _token_shop(token: str, edge, retry: dict) -> str:
    config = edge.config
    try:
        domain = oauth.decode_session_token(token, config.shopify_api_key, config.shopify_api_secrets, time.time())
    except oauth.SessionTokenError as exc:
        raise Unauthenticated(exc.reason, retry) from None
    shop = edge.shops.get("shopify", domain)
    if shop is None:
        raise Unauthenticated(f"{domain} has not installed Keepwell")
    return shop.id


def id_token(request, edge) -> str | None:
    """``?id_token=<session token>``: what Shopify appends to an embedded app's full page loads.
    Opening the app is also how a shop is installed (Shopify-managed installation): a shop
    without a current offline token gets one by token exchange first."""
    from connectors.shopify.install import InstallError, install_by_session_token

    token = (request.values.get("id_token") or "").strip()
    if not token:
        return None
    try:
        return install_by_session_token(edge, token)
    except (oauth.OAuthError, InstallError) as exc:
        # An expired token is what a page left open too long sends: App Bridge can fetch a new one.
        raise Unauthenticated(exc.reason, bounce=isinstance(exc, oauth.SessionTokenExpired)) from None


#: Both travel with each request: nothing ambient, no CSRF to fear.
SCHEMES = ((session_token, True), (id_token, True))
