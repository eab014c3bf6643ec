"""How Shopify merchants sign in to the admin pages: the embedded admin authenticates every
request with a fresh App Bridge session token (``Authorization: Bearer`` on fetches,
``id_token`` on navigations and form posts). Nothing is remembered between requests, so no
cookie is set (third-party cookies are blocked in the admin's iframe in many browsers)."""
from __future__ import annotations

import time

import jwt

from connectors.shopify import oauth
from connectors.shopify.oauth import SHOPIFY_ADMIN
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


def frame_ancestors(request, domain: str | None) -> str | None:
    """A Shopify shop's pages are shown in that shop's admin and nowhere else. Before sign-in, an
    embedded app's page load names its shop, and so does a stale session token."""
    if domain is None:
        domain = oauth.valid_shop_domain(request.args.get("shop")) or _unverified_token_shop(request)
    return f"https://{domain} {SHOPIFY_ADMIN}" if domain else None


def _unverified_token_shop(request) -> str | None:
    """The shop an (unverified, e.g. expired) session token names: the page that fetches a fresh
    token must load in that shop's admin. It shows nothing of the shop, so this is enough here."""
    raw = (request.values.get("id_token") or "").strip()
    if not raw:
        return None
    try:
        dest = jwt.decode(raw, options={"verify_signature": False}).get("dest")
    except jwt.PyJWTError:
        return None
    return oauth.valid_shop_domain(dest.removeprefix("https://")) if isinstance(dest, str) else None
