"""The merchant dashboard: server-rendered pages (Flask + Jinja), scoped to the authenticated shop.

Who is asking comes from plugin.admin_auth: inside Shopify's admin every request carries a fresh
session token (a Bearer header, or ``id_token`` on navigations and forms, which the pages' own
script refreshes through App Bridge) and no cookie is set; WooCommerce signed admin links open a
first-party session cookie. Every query filters by ``g.shop_id``; nothing in a URL can point a
page at another shop. In Shopify the pages load App Bridge and Polaris from Shopify's CDN and look
native; without them (WooCommerce, local use, the CDN unreachable) they are plain, readable HTML.
Charts are SVG drawn here.

Modules: ``security`` (sessions, the shop guard, form tokens, frame-ancestors, rendering),
``people`` (customers, time zones, plain statuses), ``story`` (a decision in words), ``views``
(overview, rules, ROI), ``activity``, ``editor`` (check, save, simulate, preview, test send),
``preview`` (rendering a rule's email), ``charts``, ``settings_pages`` (sender, privacy) and
``api_page`` (the shop's key for its own events).
"""
from __future__ import annotations

from flask import Blueprint

from plugin.admin import security
from plugin.admin.security import admin_url, render, shop_page

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static",
               static_url_path="/static")
bp.record_once(security.configure)
bp.app_template_global("u")(admin_url)
bp.register_error_handler(404, security.not_found)

from plugin.admin import activity, api_page, editor, settings_pages, views  # noqa: E402  (their routes join the blueprint)
from plugin.admin.editor import lint_files  # noqa: E402

bp.record_once(lambda state: state.app.add_url_rule("/", "root", views.root))

__all__ = ["bp", "shop_page", "admin_url", "render", "lint_files", "activity", "api_page", "editor",
           "settings_pages"]
