"""Who may see a dashboard page, and how its pages stay inside their shop: the admin session
cookie, the ``shop_page`` guard (plugin.admin_auth decides who is asking), the form token, the
frame-ancestors policy of Shopify's embedded admin, and the page renderer that carries them."""
from __future__ import annotations

import functools
import logging
import secrets as token

from flask import abort, current_app, g, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from plugin import admin_auth
from plugin.db import ShopRow

log = logging.getLogger("keepwell.admin")

RTL_LANGUAGES = {"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ku"}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


class AdminSessionInterface(SecureCookieSessionInterface):
    """The admin session cookie: signed with KEEPWELL_SECRET_KEY, HttpOnly, path /admin;
    SameSite=None; Secure (the dashboard lives in the Shopify admin's iframe), except Lax
    without Secure on plain-http localhost where a browser would drop a Secure cookie."""

    salt = "keepwell-admin-session"

    @staticmethod
    def _local_http() -> bool:
        return not request.is_secure and request.host.rsplit(":", 1)[0] in _LOCAL_HOSTS

    def get_cookie_samesite(self, app):
        return "Lax" if self._local_http() else "None"

    def get_cookie_secure(self, app):
        return not self._local_http()


def configure(state) -> None:
    app = state.app
    config = app.extensions["keepwell"].config
    app.secret_key = config.secret_key
    app.config.update(SECRET_KEY_FALLBACKS=list(config.secret_keys[1:]), SESSION_COOKIE_NAME="keepwell_admin",
                      SESSION_COOKIE_PATH="/admin", SESSION_COOKIE_HTTPONLY=True)
    app.session_interface = AdminSessionInterface()


def edge():
    return current_app.extensions["keepwell"]


def wants_json() -> bool:
    return request.path.startswith("/admin/api/")


def shop_page(view):
    """Run ``view`` with ``g.shop_id`` (and ``g.shop``) for the authenticated shop; 401 otherwise."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            g.shop_id, g.per_request = admin_auth.authenticate(request, edge())
        except admin_auth.Unauthenticated as exc:
            log.warning("admin request refused: %s %s from %s: %s", request.method, request.path,
                        request.remote_addr, exc.reason)
            if wants_json():
                return jsonify(error=exc.reason), 401, exc.headers
            embedded = in_shopify_admin()
            return render_template("admin/error.html", status=401, title="Not signed in", message=exc.reason,
                                   dir="ltr", shop=None, embedded=embedded, api_key=edge().config.shopify_api_key,
                                   bounce=embedded and exc.bounce), 401, exc.headers
        with edge().sessions() as s:
            row = s.get(ShopRow, g.shop_id)
            settings = row.settings or {}
            g.shop = {"id": row.id, "domain": row.domain, "platform": row.platform,
                      "locale": settings.get("locale") or "",
                      # the shop's own zone: set in its settings, else as its store reported it
                      "timezone": settings.get("timezone") or (settings.get("profile") or {}).get("timezone") or "UTC",
                      "currency": settings.get("currency") or ""}
        if request.method == "GET" and not wants_json() and ("link" in request.args or "id_token" in request.args):
            # A link's credentials have done their job (the session holds the shop): drop them from the URL.
            keep = {k: v for k, v in request.args.items() if k not in ("link", "shop", "id_token", "hmac",
                                                                         "host", "session", "timestamp", "embedded")}
            if "id_token" not in request.args:  # Shopify's iframe keeps its URL; a WooCommerce tab is cleaned
                return redirect(url_for(request.endpoint, **(request.view_args or {}), **keep))
        return view(*args, **kwargs)

    return wrapper


def in_shopify_admin() -> bool:
    """The request comes from the Shopify admin's iframe (where App Bridge can supply a token)."""
    return bool(edge().config.shopify_api_key) and (
        request.headers.get("Sec-Fetch-Dest") == "iframe" or request.args.get("embedded") == "1"
        or "id_token" in request.values)


def text_direction() -> str:
    wanted = request.args.get("dir")
    if wanted in ("rtl", "ltr"):
        return wanted
    locale = (getattr(g, "shop", None) or {}).get("locale", "")
    return "rtl" if locale.replace("_", "-").split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def csrf_token() -> str:
    """The form token of a cookie session; none with per-request session tokens (nothing ambient
    to forge, and no cookie to set)."""
    if g.get("per_request"):
        return ""
    if "csrf" not in session:
        session["csrf"] = token.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    if g.get("per_request"):
        return
    sent = request.form.get("csrf", "")
    if not sent or not token.compare_digest(sent, session.get("csrf", "")):
        abort(400, "the form is stale: reload the page and try again")


def admin_url(endpoint: str, **values) -> str:
    """url_for that keeps ?dir= (and Shopify's id_token inside the embedded admin) on links."""
    for key in ("dir", "id_token"):
        if key in request.values and key not in values:
            values[key] = request.values[key]
    return url_for(endpoint, **values)


def render(template: str, **context):
    # App Bridge and Polaris only inside Shopify's admin: elsewhere App Bridge would send the page away.
    return render_template(template, dir=text_direction(), shop=g.shop, csrf=csrf_token(),
                           embedded=bool(g.get("per_request")), api_key=edge().config.shopify_api_key, **context)


def not_found(exc):
    if wants_json():
        return jsonify(error="not found"), 404
    return render_template("admin/error.html", status=404, title="Not found",
                           message="There is no such page for this shop.", dir=text_direction(), shop=None), 404
