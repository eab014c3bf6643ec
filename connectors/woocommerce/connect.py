"""Connecting a WooCommerce store with WooCommerce's app key authorization, and disconnecting it.

``GET /woocommerce/connect?store_url=URL``  Checks the URL, records a pending connection under a
    single-use random id (a Redis key under the queue's prefix, 30 minutes) and sends the
    merchant to ``{store}/wc-auth/v1/authorize`` with that id as ``user_id``.
``POST /woocommerce/callback``  The store's unsigned POST of the new keys. It is bound to the
    pending id it echoes (consumed on first use), the keys must be ``read_write`` and must work
    against the store (``GET /wc/v3/settings``); then the shop is stored (keys encrypted, a fresh
    webhook secret, the shipped rule packs on a first connect) and its webhooks subscribed.
    Only a 200 counts as success for WooCommerce, which deletes the keys after anything else; a
    refusal (400) therefore leaves nothing stored.
``GET /woocommerce/connected?success=1&user_id=ID``  Where the store sends the merchant back:
    what happened, and the shop's webhook URL.

Store URLs must be https and reach a public internet address: the keys and every later API call
travel to that address, and whoever starts a connection chooses it, so the server must not be
made to call into its own network (connectors/safe_http.py checks every connection too, after
DNS resolution). KEEPWELL_ALLOW_PRIVATE_STORES=1, for development, lifts the address check and
accepts plain http for ``localhost`` and ``127.0.0.1`` (the client then signs with OAuth 1.0a,
as WooCommerce requires over http). What the store answers is logged, never shown: the pages
and the callback answer whoever calls them. Both endpoints are rate-limited per client address.
WooCommerce itself insists on an https ``callback_url``, so KEEPWELL_APP_URL must be https and
reachable from the store; the store calls back while the merchant waits, and creating each webhook
makes it ping Keepwell, so the web app must serve two requests at once (gunicorn's default here is
two workers).
"""
from __future__ import annotations

import json
import logging
import re
import secrets as token
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, jsonify, redirect, render_template_string, request
from sqlalchemy import select

from connectors.base import Shop
from connectors import safe_http
from connectors.woocommerce import client, install
from plugin import ratelimit, secrets
from plugin.db import ShopRow
from plugin.errors import KeepwellError, StoreError
from plugin.page_links import revoke as revoke_pages
from plugin.shops import add_shop, rotate_webhook_secret, to_shop

log = logging.getLogger("keepwell.install")
bp = Blueprint("woocommerce_install", __name__, url_prefix="/woocommerce")

APP_NAME = "Keepwell"
SCOPE = "read_write"
PENDING_TTL_S = 30 * 60
RATE_LIMIT, RATE_WINDOW_S = 20, 10 * 60  # connect and callback requests per client address
LOCAL_HOSTS = ("localhost", "127.0.0.1")
_ID = re.compile(r"[0-9a-f]{32}")


class ConnectError(KeepwellError):
    """The connection was refused; ``reason`` is what the merchant is told."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _edge():
    return current_app.extensions["keepwell"]


# --- the store URL ------------------------------------------------------------------------------

def store_url(raw: str | None, allow_private: bool = False) -> str:
    """The store's base URL, normalised (lower-case scheme and host, no trailing slash);
    ConnectError unless it is an https URL without credentials, query or fragment whose host
    resolves to public addresses only. ``allow_private`` (development) skips the address check
    and accepts http for localhost/127.0.0.1."""
    raw = (raw or "").strip()
    if not raw:
        raise ConnectError("give the store's address, e.g. https://shop.example.com")
    if any(c.isspace() or ord(c) < 32 for c in raw) or "\\" in raw:
        raise ConnectError("the store URL contains spaces or control characters")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise ConnectError(f"{raw!r} is not an http(s) URL; give it as https://shop.example.com")
    if "@" in parts.netloc:
        raise ConnectError("the store URL must not contain a user name or password")
    if "#" in raw or "?" in raw:
        raise ConnectError("the store URL must not have a query string or a #fragment")
    try:
        host, port = (parts.hostname or ""), parts.port
    except ValueError:
        raise ConnectError("the store URL has an invalid port") from None
    if not host:
        raise ConnectError("the store URL has no host name")
    if scheme != "https" and not (allow_private and host in LOCAL_HOSTS):
        raise ConnectError("the store URL must start with https:// (API keys are never sent over plain http; "
                           "http is only accepted for localhost during development)")
    if not allow_private:
        try:
            safe_http.public_addresses(host, port or 443)
        except safe_http.Refused as exc:
            log.warning("WooCommerce connect refused: %s", exc)
            raise ConnectError("the store's host name does not resolve to a public internet address") from None
    netloc = parts.netloc.lower()
    if port is not None and (scheme, port) in (("http", 80), ("https", 443)):
        netloc = netloc.rsplit(":", 1)[0]
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


# --- pending connections ------------------------------------------------------------------------

def _pending_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:wc-connect:{user_id}"


def _result_key(prefix: str, user_id: str) -> str:
    return f"{prefix}:wc-connect:{user_id}:result"


def start_connection(redis, prefix: str, url: str) -> str:
    """A fresh single-use id for connecting the store at ``url``, valid for PENDING_TTL_S."""
    user_id = token.token_hex(16)
    redis.set(_pending_key(prefix, user_id), json.dumps({"store_url": url, "started_at": time.time()}),
              ex=PENDING_TTL_S, nx=True)
    return user_id


def consume_connection(redis, prefix: str, user_id) -> str | None:
    """The store URL the pending ``user_id`` was issued for, or None; it is deleted, so it works once."""
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not _ID.fullmatch(user_id):
        return None
    key = _pending_key(prefix, user_id)
    pipe = redis.pipeline(transaction=True)  # GET and DEL as one step: two callbacks cannot both win
    pipe.get(key)
    pipe.delete(key)
    raw, _ = pipe.execute()
    return json.loads(raw)["store_url"] if raw is not None else None


def _remember(redis, prefix: str, user_id: str, **outcome) -> None:
    """What the /connected page tells the merchant (no secrets in it)."""
    redis.set(_result_key(prefix, user_id), json.dumps(outcome), ex=PENDING_TTL_S)


# --- completing a connection --------------------------------------------------------------------

def webhook_url(app_url: str, shop_id: str) -> str:
    return install.webhook_url(app_url, shop_id)


def complete(sessions, config, url: str, grant: dict) -> Shop:
    """Check the granted keys against the store at ``url``, store the shop and subscribe its
    webhooks; ConnectError (and nothing stored) when any step fails."""
    if grant.get("key_permissions") != SCOPE:
        granted = str(grant.get("key_permissions"))[:20]
        raise ConnectError(f"the store granted {granted!r} access; Keepwell needs read_write "
                           "to create coupons and tag customers")
    key, secret = grant.get("consumer_key"), grant.get("consumer_secret")
    if not all(isinstance(v, str) and 0 < len(v) <= 255 and v.isprintable() for v in (key, secret)):
        raise ConnectError("the store did not send a consumer key and secret")
    probe = Shop(id="connecting", platform="woocommerce", domain=url, api_url=url,
                 credentials={"consumer_key": key, "consumer_secret": secret})
    try:
        client.call(probe, "GET", "settings")
    except StoreError as exc:
        log.warning("WooCommerce connect %s: the new keys do not work: %s", url, exc.message)
        raise ConnectError("the store did not accept the new API keys (the store's answer is in Keepwell's log)") from None

    with sessions.begin() as session:
        known = session.scalar(select(ShopRow).where(ShopRow.platform == "woocommerce", ShopRow.domain == url))
        before = (known.secrets, known.active, known.api_url, dict(known.settings or {})) if known else None
        connected = known is not None and known.active
        row, _ = add_shop(session, config, "woocommerce", url, consumer_key=key, consumer_secret=secret)
        if connected:
            # Reconnecting re-keys the store's webhooks below; deliveries already signed with the
            # previous secret are still accepted.
            row, _ = rotate_webhook_secret(session, config, row.id)
        shop = to_shop(row, config)
    try:
        install.register_webhooks(shop, config.app_url)
    except (StoreError, ValueError) as exc:
        log.warning("WooCommerce connect %s: subscribing webhooks failed: %s", url, exc)
        _undo(sessions, config, shop, before)
        raise ConnectError("the store refused to create Keepwell's webhooks (the store's answer is in "
                           "Keepwell's log)") from None
    log.info("WooCommerce store %s connected as shop %s", url, shop.id)
    return shop


def _undo(sessions, config, shop: Shop, before) -> None:
    """Put the shop back as it was before a failed connect: a new one is removed (with any
    webhook already created); a known one gets its previous keys back, and keeps the new webhook
    secret as a second one in case some of its webhooks were already re-keyed."""
    if before is None:
        try:
            install.delete_webhooks(shop, config.app_url)
        except StoreError as exc:
            log.warning("WooCommerce connect %s: could not remove the webhooks created so far: %s", shop.domain, exc)
    with sessions.begin() as session:
        row = session.get(ShopRow, shop.id)
        if before is None:
            session.delete(row)
            return
        old_secrets, row.active, row.api_url, row.settings = before
        stored = secrets.decrypt(config.secret_keys, old_secrets)
        stored["webhook_secrets"] = list(dict.fromkeys([*stored.get("webhook_secrets", []), *shop.webhook_secrets]))
        row.secrets = secrets.encrypt(config.secret_keys, stored)


# --- routes -------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keepwell for WooCommerce</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;line-height:1.5}
code{background:#f3f3f3;padding:.1em .3em}.bad{color:#a00}</style></head><body>
<h1>{{ title }}</h1>
{% for line in lines %}<p{% if bad %} class="bad"{% endif %}>{{ line }}</p>{% endfor %}
{% if webhook %}<p>Webhook URL: <code>{{ webhook }}</code></p>
<p>Subscribed: {{ topics }}. Shop id: <code>{{ shop_id }}</code> (<code>keepwell shop list</code>).</p>{% endif %}
{% if form %}<form method="get" action="{{ form }}"><label>Store address
<input name="store_url" type="url" size="40" placeholder="https://shop.example.com" value="{{ store or '' }}"></label>
<button>Connect</button></form>{% endif %}
</body></html>"""


def _page(status: int, title: str, *lines: str, bad: bool = False, form: bool = False, **extra):
    html = render_template_string(_PAGE, title=title, lines=lines, bad=bad,
                                  form=f"{_edge().config.app_url}/woocommerce/connect" if form else None, **extra)
    return current_app.response_class(html, status=status, mimetype="text/html")


@bp.before_request
def _rate_limit():
    # Unauthenticated endpoints that make the server call out: cap them per client address.
    if request.endpoint in ("woocommerce_install.connect", "woocommerce_install.callback"):
        wait = ratelimit.hit(_edge().handoff.redis, _edge().config.queue, request.endpoint, request.remote_addr,
                             RATE_LIMIT, RATE_WINDOW_S)
        if wait:
            log.warning("WooCommerce %s from %s refused: over %d requests in %d s", request.endpoint,
                        request.remote_addr, RATE_LIMIT, RATE_WINDOW_S)
            return current_app.response_class("Too many requests; try again later.\n", status=429,
                                               mimetype="text/plain", headers={"Retry-After": str(wait)})
    return None


@bp.get("/connect")
def connect():
    config = _edge().config
    if not config.app_url.startswith("https://"):
        return _page(503, "Keepwell is not set up for WooCommerce",
                     f"KEEPWELL_APP_URL is {config.app_url}: WooCommerce only sends keys to an https address "
                     "the store can reach.", bad=True)
    raw = request.args.get("store_url")
    if raw is None:
        return _page(200, "Connect your WooCommerce store", form=True)
    try:
        url = store_url(raw, config.allow_private_stores)
    except ConnectError as exc:
        log.warning("WooCommerce connect refused for %r: %s", raw[:200], exc.reason)
        return _page(400, "That store address cannot be used", exc.reason, bad=True, form=True, store=raw)
    user_id = start_connection(_edge().handoff.redis, config.queue, url)
    params = {"app_name": APP_NAME, "scope": SCOPE, "user_id": user_id,
              "return_url": f"{config.app_url}/woocommerce/connected",
              "callback_url": f"{config.app_url}/woocommerce/callback"}
    return redirect(f"{url}/wc-auth/v1/authorize?{urlencode(params)}", 302)


@bp.post("/callback")
def callback():
    edge = _edge()
    redis, prefix = edge.handoff.redis, edge.config.queue
    grant = request.get_json(force=True, silent=True)
    if not isinstance(grant, dict):
        log.warning("WooCommerce callback refused from %s: the body is not a JSON object", request.remote_addr)
        return jsonify(error="the body is not a JSON object"), 400
    url = consume_connection(redis, prefix, grant.get("user_id"))
    if url is None:
        log.warning("WooCommerce callback refused from %s: unknown, expired or used user_id", request.remote_addr)
        return jsonify(error="unknown, expired or already used user_id"), 400
    user_id = str(grant["user_id"])
    try:
        shop = complete(edge.sessions, edge.config, url, grant)
    except ConnectError as exc:
        log.warning("WooCommerce callback for %s refused: %s", url, exc.reason)
        _remember(redis, prefix, user_id, ok=False, store_url=url, reason=exc.reason)
        return jsonify(error=exc.reason), 400
    _remember(redis, prefix, user_id, ok=True, store_url=url, shop_id=shop.id,
              webhook_url=webhook_url(edge.config.app_url, shop.id))
    edge.connected(shop.id)  # the store's past, folded in without acting on it
    # Exactly 200: WooCommerce counts anything else (201 and 204 included) as a failure.
    return jsonify(status="connected", shop_id=shop.id), 200


@bp.get("/connected")
def connected():
    edge = _edge()
    user_id = request.args.get("user_id", "")
    raw = edge.handoff.redis.get(_result_key(edge.config.queue, user_id)) if _ID.fullmatch(user_id) else None
    outcome = json.loads(raw) if raw else None
    if outcome is None:
        if request.args.get("success") == "0":
            return _page(400, "The store was not connected",
                         "Access was not granted, or the store could not deliver the keys. Try again:",
                         bad=True, form=True)
        return _page(404, "Unknown or expired connection", "Start the connection again:", bad=True, form=True)
    if not outcome["ok"]:
        return _page(400, "The store was not connected", f"{outcome['store_url']}: {outcome['reason']}.",
                     "Nothing was stored. Fix this and connect again:", bad=True, form=True, store=outcome["store_url"])
    lines = [f"Keepwell is connected to {outcome['store_url']} and has installed the shipped rule packs."]
    if request.args.get("success") == "0":
        lines.append("The store reports that handing over the keys failed, so it may have deleted them: "
                     "connect again if orders do not arrive.")
    return _page(200, "Connected", *lines, webhook=outcome["webhook_url"], shop_id=outcome["shop_id"],
                 topics=", ".join(install.TOPICS))


# --- disconnecting ------------------------------------------------------------------------------

@dataclass
class Disconnected:
    shop_id: str
    store_url: str
    removed_webhooks: list = field(default_factory=list)  # store ids of the deleted webhooks
    errors: list = field(default_factory=list)  # what failed on the store side


def disconnect(sessions, config, shop_id: str) -> Disconnected:
    """Delete Keepwell's webhooks from the store, then mark the shop inactive and clear its keys
    and webhook secrets. Store errors are collected in ``errors``; the local part always happens.
    LookupError for an unknown shop, ValueError for one that is not a WooCommerce store."""
    with sessions() as session:
        row = session.get(ShopRow, shop_id)
        if row is None:
            raise LookupError(f"no shop {shop_id!r}")
        if row.platform != "woocommerce":
            raise ValueError(f"shop {shop_id} is a {row.platform} store, not a WooCommerce one")
        result = Disconnected(row.id, row.domain)
        try:
            shop = to_shop(row, config)
        except secrets.SecretError as exc:
            shop = None
            result.errors.append(str(exc))
    if shop is not None and shop.credentials:  # none left: disconnected before
        try:
            result.removed_webhooks = install.delete_webhooks(shop, config.app_url)
        except StoreError as exc:
            result.errors.append(exc.message)
    with sessions.begin() as session:
        row = session.get(ShopRow, shop_id)
        row.active = False
        revoke_pages(session, shop_id, datetime.now(timezone.utc))  # no personal page outlives the connection
        try:  # the referral key stays: codes customers hold work again after a reconnect
            kept = {"referral_key": secrets.decrypt(config.secret_keys, row.secrets).get("referral_key", "")}
        except secrets.SecretError:
            kept = {}
        row.secrets = secrets.encrypt(config.secret_keys, {"credentials": {}, "webhook_secrets": [], **kept})
    log.info("WooCommerce shop %s disconnected (%d webhooks removed, %d errors)", shop_id,
             len(result.removed_webhooks), len(result.errors))
    return result
