"""Who is asking: the shop a merchant-admin request is authenticated for.

Each platform has one scheme: a function ``(request, edge) -> shop id | None`` that returns None
when the request carries no credentials of its kind, raises ``Unauthenticated`` when it carries
bad ones, and otherwise returns the id of the one active shop the credentials belong to. A page
only ever sees that id (``flask.g.shop_id``); nothing in the request (a ``shop`` parameter, a
path) can point it at another shop. A new platform adds its function to SCHEMES.
"""
from __future__ import annotations

import functools
import logging
import time

from flask import current_app, g, jsonify, request as current_request

from connectors.shopify import oauth
from plugin.errors import KeepwellError

log = logging.getLogger("keepwell.admin")


class Unauthenticated(KeepwellError):
    """The request is not authenticated for any shop; ``headers`` go on the 401 answer."""

    def __init__(self, reason: str, headers: dict | None = None):
        self.reason, self.headers = reason, dict(headers or {})
        super().__init__(reason)


def _bearer(request) -> str | None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def shopify_session_token(request, edge) -> str | None:
    """``Authorization: Bearer <App Bridge session token>`` from Shopify's embedded admin."""
    token = _bearer(request)
    if token is None:
        return None
    config = edge.config
    # App Bridge fetches a fresh token and retries once when told to with this header.
    retry = {"X-Shopify-Retry-Invalid-Session-Request": "1"}
    try:
        domain = oauth.decode_session_token(token, config.shopify_api_key, config.shopify_api_secrets, time.time())
    except oauth.SessionTokenError as exc:
        raise Unauthenticated(exc.reason, retry) from None
    shop = edge.shops.get("shopify", domain)
    if shop is None:
        raise Unauthenticated(f"{domain} has not installed Keepwell")
    return shop.id


#: Tried in order; the first that recognises the request's credentials decides.
SCHEMES = [shopify_session_token]


def shop_from_request(request, edge) -> str:
    """The id of the shop ``request`` is authenticated for; Unauthenticated otherwise."""
    for scheme in SCHEMES:
        shop_id = scheme(request, edge)
        if shop_id is not None:
            return shop_id
    raise Unauthenticated("no credentials: send Authorization: Bearer <session token>")


def require_shop(view):
    """Run ``view`` with ``g.shop_id`` set to the authenticated shop; answer 401 otherwise."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            g.shop_id = shop_from_request(current_request, current_app.extensions["keepwell"])
        except Unauthenticated as exc:
            log.warning("admin request refused: %s %s from %s: %s", current_request.method, current_request.path,
                        current_request.remote_addr, exc.reason)
            return jsonify(error=exc.reason), 401, exc.headers
        return view(*args, **kwargs)

    return wrapper
