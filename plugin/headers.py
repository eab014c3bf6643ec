"""Security headers on every response of the web app, admin pages first.

``Content-Security-Policy: frame-ancestors`` says who may show a page in a frame: a platform
whose admin embeds the dashboard names it (a Shopify shop's dashboard lives in that shop's admin,
``https://{shop}`` and ``https://admin.shopify.com``, and nowhere else); every other page only
where KEEPWELL_FRAME_ANCESTORS allows ('none' unless configured), so no other site can overlay it to trick a click. ``nosniff`` keeps browsers from
guessing types, and ``no-referrer`` keeps link tokens (admin links, unsubscribe links, id_token)
out of the Referer of anything a page loads or links to. A page that sets its own CSP keeps it;
only a missing frame-ancestors is added.
"""
from __future__ import annotations

from flask import current_app, g, request

import connectors


def frame_ancestors() -> str:
    """The frame-ancestors sources for the current request's shop: its platform's (Shopify's
    admin for a Shopify shop), else KEEPWELL_FRAME_ANCESTORS."""
    shop = g.get("shop")  # the authenticated shop, set by the admin pages
    if shop is not None:
        found = connectors.get(shop["platform"]).frame_ancestors(request, shop["domain"])
    else:  # not signed in (yet): a platform may still know the shop from the request
        found = next(filter(None, (connectors.get(p).frame_ancestors(request, None) for p in connectors.platforms())),
                     None)
    return found or current_app.extensions["keepwell"].config.frame_ancestors


def apply(response):
    """Add the security headers to ``response`` (an ``after_request`` hook)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    policy = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors" not in policy:
        response.headers["Content-Security-Policy"] = "; ".join(p for p in (policy, f"frame-ancestors {frame_ancestors()}") if p)
    return response
