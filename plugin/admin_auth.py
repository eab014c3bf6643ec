"""Who is asking: the shop a merchant-admin request is authenticated for.

A platform package signs its merchants in with its own schemes (its connector's
``admin_schemes``: Shopify's embedded admin sends a session token with every request); any
shop can also be opened with a signed admin link, after which a first-party session cookie
carries the shop (how WooCommerce merchants sign in).

A scheme is a function ``(request, edge) -> shop id | None`` that returns None when the request
carries no credentials of its kind, raises ``Unauthenticated`` when it carries bad ones, and
otherwise returns the id of the one active shop the credentials belong to. A page only ever sees
that id (``flask.g.shop_id``); nothing in the request (a ``shop`` parameter, a path) can point it
at another shop.
"""
from __future__ import annotations

import functools
import logging
import secrets as token
import time
from urllib.parse import urlencode

from flask import current_app, g, jsonify, request as current_request, session as cookie_session

import connectors
from plugin.errors import KeepwellError
from plugin.secrets import SecretError, decrypt, encrypt

log = logging.getLogger("keepwell.admin")


class Unauthenticated(KeepwellError):
    """The request is not authenticated for any shop; ``headers`` go on the 401 answer, and
    ``bounce`` says a fresh session token from App Bridge would do."""

    def __init__(self, reason: str, headers: dict | None = None, bounce: bool = False):
        self.reason, self.headers, self.bounce = reason, dict(headers or {}), bounce
        super().__init__(reason)


# --- Keepwell's own: single-use admin links, then a session cookie ------------------------------

ADMIN_LINK_TTL_S = 3600
SESSION_TTL_S = 12 * 3600


def admin_link(config, shop_id: str, ttl: int = ADMIN_LINK_TTL_S, now: float | None = None) -> str:
    """A link that opens the shop's dashboard once, within ``ttl`` seconds. Its token is encrypted
    with KEEPWELL_SECRET_KEY: it names no shop to whoever sees it (a log, a browser history)."""
    exp = int((time.time() if now is None else now) + ttl)
    link = encrypt(config.secret_keys[:1], {"purpose": "admin-link", "shop": shop_id, "exp": exp,
                                            "id": token.token_hex(16)})
    return f"{config.app_url}/admin?{urlencode({'link': link})}"


def _active_shop(edge, shop_id: str) -> bool:
    from plugin.db import ShopRow

    with edge.sessions() as session:
        row = session.get(ShopRow, shop_id)
        return row is not None and bool(row.active)


def _remember(shop_id: str) -> None:
    """Keep the shop in the signed (first-party) admin session cookie of a WooCommerce link."""
    cookie_session.clear()
    cookie_session["shop"] = shop_id
    cookie_session["at"] = int(time.time())


def signed_admin_link(request, edge) -> str | None:
    """``/admin?link=TOKEN`` from ``keepwell shop admin-link``; a used link opens nothing more."""
    if "sig" in request.args:
        raise Unauthenticated("this admin link has an old format: run `keepwell shop admin-link` for a new one")
    link = request.args.get("link")
    if link is None:
        if "shop" in request.args:  # naming a shop is no credential, and must not fall back to the session
            raise Unauthenticated("a shop in the URL opens nothing: open an admin link")
        return None
    try:
        found = decrypt(edge.config.secret_keys, link)
    except SecretError:
        raise Unauthenticated("the admin link is not valid") from None
    shop_id, exp, link_id = found.get("shop"), found.get("exp"), found.get("id")
    if found.get("purpose") != "admin-link" or not isinstance(exp, int) or not shop_id or not link_id:
        raise Unauthenticated("the admin link is not valid")
    if exp < time.time():
        raise Unauthenticated("the admin link has expired: run `keepwell shop admin-link` for a fresh one")
    if not _active_shop(edge, shop_id):
        raise Unauthenticated("the admin link is for a shop that is not connected")
    used = f"{edge.config.queue}:admin-link-used:{link_id}"
    if not edge.handoff.redis.set(used, 1, nx=True, ex=max(1, exp - int(time.time())) + 60):
        raise Unauthenticated("this admin link has already been used: run `keepwell shop admin-link` for a new one")
    _remember(shop_id)
    return shop_id


def admin_session(request, edge) -> str | None:
    """The signed session cookie set after a valid admin link."""
    shop_id = cookie_session.get("shop") if current_app.secret_key else None
    if not shop_id:
        return None
    if time.time() - int(cookie_session.get("at", 0)) > SESSION_TTL_S or not _active_shop(edge, shop_id):
        cookie_session.clear()
        raise Unauthenticated("the admin session has ended: open the dashboard again")
    return shop_id


#: Keepwell's own schemes, tried after the platforms' (none of them travels with each request).
SHARED = ((signed_admin_link, False), (admin_session, False))


def schemes() -> list:
    """Every (scheme, per request) pair, in the order they are tried: the platforms' first."""
    found = [pair for platform in connectors.platforms() for pair in connectors.get(platform).admin_schemes]
    return found + list(SHARED)


def authenticate(request, edge) -> tuple[str, bool]:
    """(the id of the shop ``request`` is authenticated for, whether by a per-request session
    token); Unauthenticated otherwise."""
    for scheme, per_request in schemes():
        shop_id = scheme(request, edge)
        if shop_id is not None:
            return shop_id, per_request
    raise Unauthenticated("no credentials: send Authorization: Bearer <session token>, or open an admin link",
                          bounce=True)


def shop_from_request(request, edge) -> str:
    """The id of the shop ``request`` is authenticated for; Unauthenticated otherwise."""
    return authenticate(request, edge)[0]


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
