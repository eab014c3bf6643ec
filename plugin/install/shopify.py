"""Installing Keepwell from the Shopify App Store: the authorization-code grant.

``GET /shopify/install``   Shopify's signed request (shop, hmac, timestamp[, host, embedded]).
    Checked, then the merchant is sent to approve the app with a single-use ``state`` nonce
    (a Redis key under the queue's prefix, 10 minutes).
``GET /shopify/callback``  Shopify's signed redirect (code, shop, state, timestamp[, host]).
    Checked, the state consumed, the code exchanged for an offline token, the webhooks
    subscribed; then the shop is stored (token encrypted, default rule packs on a first
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

from flask import Blueprint, Response, current_app, redirect, request, url_for

import connectors
from connectors.base import Shop
from connectors.shopify import grants, oauth
from plugin import importing
from plugin.errors import KeepwellError, StoreError
from plugin.shops import add_shop, default_api_url, find_shop
from plugin.tokens import stored_fields

log = logging.getLogger("keepwell.install")
bp = Blueprint("shopify", __name__, url_prefix="/shopify")

STATE_TTL_S = 600
_STATE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class InstallError(KeepwellError):
    """The install flow stopped; ``status`` is the HTTP answer, ``reason`` what to tell the merchant."""

    def __init__(self, reason: str, status: int = 400):
        self.reason, self.status = reason, status
        super().__init__(reason)


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


# --- the routes --------------------------------------------------------------------------------

@bp.errorhandler(oauth.OAuthError)
@bp.errorhandler(InstallError)
def _refused(exc):
    log.warning("install refused: %s %s for shop %r from %s: %s (%d)", request.method, request.path,
                (request.args.get("shop") or "")[:100], request.remote_addr, exc.reason, exc.status)
    return Response(f"Keepwell could not be installed: {exc.reason}\n", status=exc.status, mimetype="text/plain")


@bp.get("/install")
def install():
    """Shopify's install request: send the merchant to approve the app."""
    edge = _edge()
    config = edge.config
    _configured(config)
    oauth.verify_query_hmac(request.args, config.shopify_api_secrets, time.time())
    shop = oauth.require_shop_domain(request.args.get("shop"))
    state = issue_state(edge.handoff.redis, config.queue, shop)
    redirect_uri = config.app_url.rstrip("/") + url_for("shopify.callback")
    log.info("shop %s: installation started", shop)
    # orders older than 60 days only when the merchant asked for deep history
    scopes = oauth.SCOPES + (("read_all_orders",) if config.shopify_deep_history else ())
    return redirect(oauth.authorize_url(shop, config.shopify_api_key, scopes, redirect_uri, state), 302)


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
                     access_token=grant.access_token)
        topics = connectors.get("shopify").register_webhooks(store, config.app_url)
    except StoreError as exc:
        log.error("shop %s: installation failed at Shopify: %s", shop, exc.message)
        raise InstallError(f"Shopify did not complete the installation ({exc.message}): try again in a moment",
                           502) from exc
    missing = grant.missing()
    if missing:
        log.warning("shop %s granted %s but not %s: some actions will fail", shop, ",".join(grant.scopes),
                    ",".join(missing))
    with edge.sessions.begin() as session:
        reinstall = find_shop(session, "shopify", shop) is not None
        # No webhook secret of its own: Shopify signs with the app's client secret.
        row, _ = add_shop(session, config, "shopify", shop, access_token=grant.access_token,
                          settings={"scopes": list(grant.scopes)}, token_fields=stored_fields(grant))
        shop_id = row.id
    importing.enqueue(edge.handoff.queue, shop_id)  # the store's past, folded in without acting on it
    log.info("shop %s (%s) %s; webhooks: %s", shop, shop_id, "reinstalled" if reinstall else "installed",
             ", ".join(topics))
    return redirect(f"https://{shop}/admin/apps/{config.shopify_api_key}", 302)
