"""Installing Keepwell from the Shopify App Store.

Shopify-managed installation (the way for an embedded app): Shopify installs the app with the
scopes of ``shopify.app.toml`` and subscribes its webhooks, then opens the app in the admin
with an ``id_token`` (an App Bridge session token). ``install_by_session_token`` exchanges
that token for an expiring offline token the first time (and whenever the stored token is a
non-expiring one or has lapsed) and stores the shop; the admin pages call it for every
``id_token`` they are opened with, so opening the app is the installation.

``GET /shopify/install``   The App URL of apps configured before ``shopify.app.toml``.
    With an ``id_token``: on to the dashboard (installing as above). Without one, Shopify's
    signed request (shop, hmac, timestamp[, host, embedded]) is checked; a shop already
    installed with an expiring token goes straight to its dashboard (a short-lived signed
    link), any other is sent to approve the app with a single-use ``state`` nonce (a Redis
    key under the queue's prefix, 10 minutes) -- leaving the admin's iframe first, where
    Shopify's approval page cannot load.
``GET /shopify/callback``  Shopify's signed redirect (code, shop, state, timestamp[, host]).
    Checked, the state consumed, the code exchanged for an expiring offline token, the webhooks
    subscribed; then the shop is stored (tokens encrypted, default rule packs on a first
    install) and the merchant sent to the app in their admin.

Every refusal answers 400/401/403 with what went wrong, is logged, and stores nothing. The
shop row is written only after every check and every call to Shopify succeeded, so a failed
install leaves nothing behind and can simply start over. A reinstall updates the same row:
new token, active again, rules as the merchant left them.
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from urllib.parse import urlencode

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from connectors.base import Shop
from connectors.shopify import grants, oauth, subscriptions
from plugin import secrets as stored_secrets
from plugin.errors import InstallRefused, StoreError
from plugin.shops import add_shop, default_api_url, find_shop
from plugin.tokens import app_installed, expiring, stored_fields

log = logging.getLogger("keepwell.install")
bp = Blueprint("shopify", __name__, url_prefix="/shopify")

STATE_TTL_S = 600
#: The dashboard link an installed shop's signed install request is answered with.
INSTALLED_LINK_TTL_S = 120
_STATE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class InstallError(InstallRefused):
    """The install flow stopped; ``status`` is the HTTP answer, ``reason`` what to tell the merchant."""


def _edge():
    return current_app.extensions["keepwell"]


def _configured(config) -> None:
    if not config.shopify_api_key or not config.shopify_api_secrets:
        raise InstallError("Keepwell is not set up for Shopify: SHOPIFY_API_KEY and SHOPIFY_API_SECRET are needed", 503)


# --- the state nonce ---------------------------------------------------------------------------

def _state_key(prefix: str, state: str) -> str:
    return f"{prefix}:oauth-state:{state}"


def issue_state(redis, prefix: str, shop: str) -> str:
    """A fresh nonce for one authorization of ``shop``, valid for STATE_TTL_S."""
    state = secrets.token_urlsafe(32)
    redis.set(_state_key(prefix, state), shop, ex=STATE_TTL_S, nx=True)
    return state


def consume_state(redis, prefix: str, state: str | None) -> str | None:
    """The shop ``state`` was issued for, or None; the state is deleted, so it works once."""
    if not state or not _STATE.fullmatch(state):
        return None
    key = _state_key(prefix, state)
    pipe = redis.pipeline(transaction=True)  # GET and DEL as one step: two callbacks cannot both win
    pipe.get(key)
    pipe.delete(key)
    shop, _ = pipe.execute()
    return shop.decode() if shop is not None else None


# --- Shopify-managed installation: token exchange ------------------------------------------------

def _current(row, config) -> bool:
    """The shop is active with an expiring token whose refresh token has not lapsed (or was
    added with a custom app's token, which Shopify lets keep not expiring)."""
    if row is None or not row.active:
        return False
    if not app_installed(row.settings):
        return True
    stored = stored_secrets.decrypt(config.secret_keys, row.secrets).get("credentials", {})
    refresh_expires = stored.get("refresh_token_expires_at")
    return expiring(stored) and (refresh_expires is None or refresh_expires > time.time())


def install_by_session_token(edge, id_token: str) -> str:
    """The id of the shop an App Bridge session token was issued for, after installing it (or
    replacing a non-expiring or lapsed token) by token exchange; OAuthError for a bad token,
    InstallError when Shopify refuses the exchange."""
    config = edge.config
    _configured(config)
    domain = oauth.decode_session_token(id_token, config.shopify_api_key, config.shopify_api_secrets, time.time())
    with edge.sessions() as session:
        row = find_shop(session, "shopify", domain)
        if _current(row, config):
            return row.id
        installing = row is None or not row.active  # else only its token is replaced
    try:
        grant = grants.exchange_session_token(domain, config.shopify_api_key, config.shopify_api_secrets[0], id_token)
    except StoreError as exc:
        log.error("shop %s: token exchange failed: %s", domain, exc.message)
        raise InstallError(f"Shopify did not hand over the shop's access ({exc.message}): reload the app in a "
                           "moment", 502) from exc
    shop_id, _ = _store(edge, domain, grant)
    if installing:
        edge.connected(shop_id)  # the store's past, folded in without acting on it
    log.info("shop %s (%s) %s by token exchange", domain, shop_id, "installed" if installing else "token renewed")
    return shop_id


def _store(edge, shop: str, grant) -> tuple[str, bool]:
    """Store the shop with its granted token pair; (its id, whether it was known before)."""
    missing = grant.missing()
    if missing:
        log.warning("shop %s granted %s but not %s: some actions will fail", shop, ",".join(grant.scopes),
                    ",".join(missing))
    with edge.sessions.begin() as session:
        known = find_shop(session, "shopify", shop) is not None
        # No webhook secret of its own: Shopify signs with the app's client secret.
        row, _ = add_shop(session, edge.config, "shopify", shop, credentials=stored_fields(grant),
                          settings={"scopes": list(grant.scopes)})
        shop_id = row.id
    edge.shops.forget()  # it may be cached as unknown, or with its old token
    return shop_id, known


# --- the routes --------------------------------------------------------------------------------

@bp.get("/install")
def install():
    """The App URL: the dashboard for an installed shop, else the merchant's approval."""
    edge = _edge()
    config = edge.config
    _configured(config)
    if request.args.get("id_token"):
        # Opened in the admin: the admin pages authenticate (and install) with the id_token.
        return redirect(url_for("admin.overview") + "?" + urlencode(request.args), 302)
    oauth.verify_query_hmac(request.args, config.shopify_api_secrets, time.time())
    shop = oauth.require_shop_domain(request.args.get("shop"))
    with edge.sessions() as session:
        row = find_shop(session, "shopify", shop)
        if _current(row, config):
            # Shopify just signed this request for this shop: open its dashboard, no approval again.
            from plugin.admin_auth import admin_link

            return redirect(admin_link(config, row.id, ttl=INSTALLED_LINK_TTL_S), 302)
    state = issue_state(edge.handoff.redis, config.queue, shop)
    redirect_uri = config.app_url.rstrip("/") + url_for("shopify.callback")
    log.info("shop %s: installation started", shop)
    # orders older than 60 days only when the merchant asked for deep history
    scopes = oauth.SCOPES + (("read_all_orders",) if config.shopify_deep_history else ())
    authorize = oauth.authorize_url(shop, config.shopify_api_key, scopes, redirect_uri, state)
    if request.args.get("embedded") == "1":
        # Shopify's approval page refuses to load in a frame: leave the admin's iframe first.
        page = render_template("admin/exit_iframe.html", url=authorize, api_key=config.shopify_api_key)
        return page, 200, {"Content-Security-Policy": f"frame-ancestors https://{shop} {oauth.SHOPIFY_ADMIN}"}
    return redirect(authorize, 302)


@bp.get("/callback")
def callback():
    """The merchant approved: exchange the code, subscribe webhooks, store the shop."""
    edge = _edge()
    config = edge.config
    _configured(config)
    args = request.args
    oauth.verify_query_hmac(args, config.shopify_api_secrets, time.time())
    shop = oauth.require_shop_domain(args.get("shop"))
    issued_for = consume_state(edge.handoff.redis, config.queue, args.get("state"))
    if issued_for is None:
        raise InstallError("the state is unknown, expired or already used: start the installation again "
                           "from your Shopify admin", 403)
    if not hmac.compare_digest(issued_for.encode(), shop.encode()):
        raise InstallError("the state was issued for another shop", 403)
    code = args.get("code")
    if not code:
        raise InstallError("the callback carries no authorization code")
    try:
        grant = grants.exchange_code(shop, config.shopify_api_key, config.shopify_api_secrets[0], code)
        store = Shop(id="", platform="shopify", domain=shop, api_url=default_api_url("shopify", shop),
                     credentials={"access_token": grant.access_token})
        topics = subscriptions.register_webhooks(store, config.app_url)
    except StoreError as exc:
        log.error("shop %s: installation failed at Shopify: %s", shop, exc.message)
        raise InstallError(f"Shopify did not complete the installation ({exc.message}): try again in a moment",
                           502) from exc
    shop_id, reinstall = _store(edge, shop, grant)
    edge.connected(shop_id)  # the store's past, folded in without acting on it
    log.info("shop %s (%s) %s; webhooks: %s", shop, shop_id, "reinstalled" if reinstall else "installed",
             ", ".join(topics))
    return redirect(f"https://{shop}/admin/apps/{config.shopify_api_key}", 302)
