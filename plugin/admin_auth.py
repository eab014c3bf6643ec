"""Who is asking: the shop a merchant-admin request is authenticated for.

Shopify's embedded admin authenticates every request with a fresh App Bridge session token:
``Authorization: Bearer`` on fetches, ``id_token`` on navigations and form posts. Nothing is
remembered between requests, so no cookie is set (third-party cookies are blocked in the
admin's iframe in many browsers). WooCommerce merchants open a signed admin link, after which a
first-party session cookie carries the shop.

Each platform has one scheme: a function ``(request, edge) -> shop id | None`` that returns None
when the request carries no credentials of its kind, raises ``Unauthenticated`` when it carries
bad ones, and otherwise returns the id of the one active shop the credentials belong to. A page
only ever sees that id (``flask.g.shop_id``); nothing in the request (a ``shop`` parameter, a
path) can point it at another shop. A new platform adds its function to SCHEMES.
"""
from __future__ import annotations

import functools
import logging
import secrets as token
import time
from urllib.parse import urlencode

from flask import current_app, g, jsonify, request as current_request, session as cookie_session

from connectors.shopify import oauth
from plugin.errors import KeepwellError
from plugin.secrets import SecretError, decrypt, encrypt

log = logging.getLogger("keepwell.admin")


class Unauthenticated(KeepwellError):
    """The request is not authenticated for any shop; ``headers`` go on the 401 answer, and
    ``bounce`` says a fresh session token from App Bridge would do."""

    def __init__(self, reason: str, headers: dict | None = None, bounce: bool = False):
        self.reason, self.headers, self.bounce = reason, dict(headers or {}), bounce
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
    # App Bridge fetches a fresh token and retries once when told to with this header.
    return _shopify_token_shop(token, edge, {"X-Shopify-Retry-Invalid-Session-Request": "1"})


def _shopify_token_shop(token: str, edge, retry: dict) -> str:
    config = edge.config
    try:
        domain = oauth.decode_session_token(token, config.shopify_api_key, config.shopify_api_secrets, time.time())
    except oauth.SessionTokenError as exc:
        raise Unauthenticated(exc.reason, retry) from None
    shop = edge.shops.get("shopify", domain)
    if shop is None:
        raise Unauthenticated(f"{domain} has not installed Keepwell")
    return shop.id


def shopify_id_token(request, edge) -> str | None:
    """``?id_token=<session token>``: what Shopify appends to an embedded app's full page loads.
    Opening the app is also how a shop is installed (Shopify-managed installation): a shop
    without a current offline token gets one by token exchange first."""
    from plugin.install.shopify import InstallError, install_by_session_token

    token = (request.values.get("id_token") or "").strip()
    if not token:
        return None
    try:
        return install_by_session_token(edge, token)
    except (oauth.OAuthError, InstallError) as exc:
        # An expired token is what a page left open too long sends: App Bridge can fetch a new one.
        raise Unauthenticated(exc.reason, bounce=isinstance(exc, oauth.SessionTokenExpired)) from None


# --- WooCommerce: single-use admin links, then a session cookie ----------------------------------

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


#: Tried in order; the first that recognises the request's credentials decides.
SCHEMES = [shopify_session_token, shopify_id_token, signed_admin_link, admin_session]
#: Schemes whose credentials travel with each request (nothing ambient: no CSRF to fear).
PER_REQUEST = (shopify_session_token, shopify_id_token)


def authenticate(request, edge) -> tuple[str, bool]:
    """(the id of the shop ``request`` is authenticated for, whether by a per-request session
    token); Unauthenticated otherwise."""
    for scheme in SCHEMES:
        shop_id = scheme(request, edge)
        if shop_id is not None:
            return shop_id, scheme in PER_REQUEST
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
