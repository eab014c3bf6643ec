"""Security headers on every response of the web app, admin pages first.

``Content-Security-Policy: frame-ancestors`` says who may show a page in a frame: a Shopify
shop's dashboard lives in that shop's admin (``https://{shop}`` and ``https://admin.shopify.com``)
and nowhere else; every other page only where KEEPWELL_FRAME_ANCESTORS allows ('none' unless
configured), so no other site can overlay it to trick a click. ``nosniff`` keeps browsers from
guessing types, and ``no-referrer`` keeps link tokens (admin links, unsubscribe links, id_token)
out of the Referer of anything a page loads or links to. A page that sets its own CSP keeps it;
only a missing frame-ancestors is added.
"""
from __future__ import annotations

import jwt
from flask import current_app, g, request

from connectors.shopify import oauth

SHOPIFY_ADMIN = "https://admin.shopify.com"


def frame_ancestors() -> str:
    """The frame-ancestors sources for the current request's shop."""
    shop = g.get("shop")  # the authenticated shop, set by the admin pages
    if shop is not None:
        domain = shop["domain"] if shop.get("platform") == "shopify" else None
    else:  # not signed in (yet): an embedded app's page load names its shop, a stale session token too
        domain = oauth.valid_shop_domain(request.args.get("shop")) or _token_shop()
    if domain:
        return f"https://{domain} {SHOPIFY_ADMIN}"
    return current_app.extensions["keepwell"].config.frame_ancestors


def _token_shop() -> str | None:
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


def apply(response):
    """Add the security headers to ``response`` (an ``after_request`` hook)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    policy = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors" not in policy:
        response.headers["Content-Security-Policy"] = "; ".join(p for p in (policy, f"frame-ancestors {frame_ancestors()}") if p)
    return response
