"""The merchant dashboard: server-rendered pages (Flask + Jinja), scoped to the authenticated shop.

Who is asking comes from plugin.admin_auth: inside Shopify's admin every request carries a fresh
session token (a Bearer header, or ``id_token`` on navigations and forms, which the pages' own
script refreshes through App Bridge) and no cookie is set; WooCommerce signed admin links open a
first-party session cookie. Every query below is filtered by ``g.shop_id``; nothing in a URL can
point a page at another shop. In Shopify the pages load App Bridge and Polaris from Shopify's CDN
and look native; without them (WooCommerce, local use, the CDN unreachable) they are plain,
readable HTML. Charts are SVG drawn here.
"""
from __future__ import annotations

import functools
import json
import logging
import secrets as token
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import yaml
from flask import (Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, session,
                   url_for)
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import func, select

from plugin import admin_auth
from plugin.headers import SHOPIFY_ADMIN
from plugin.admin.charts import bar_rows, error_bar, line_chart, money, now as _now, pct, repeat_rate_series
from plugin.analytics import build_report
from plugin.db import DecisionRow, EffectRow, ImportRow, RuleSetRow, ShopRow
from plugin.importing.status import describe
from plugin.errors import RuleError
from plugin.reports import load_inputs
from plugin.rulefile import lint_sources
from plugin.shops import _split, active_rule_row, install_rules

log = logging.getLogger("keepwell.admin")

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static",
               static_url_path="/static")

RTL_LANGUAGES = {"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ku"}
SIMULATION_CUSTOMERS = 300
SIMULATION_DAYS = 90
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


@bp.record_once
def _configure(state):
    app = state.app
    config = app.extensions["keepwell"].config
    app.secret_key = config.secret_key
    app.config.update(SECRET_KEY_FALLBACKS=list(config.secret_keys[1:]), SESSION_COOKIE_NAME="keepwell_admin",
                      SESSION_COOKIE_PATH="/admin", SESSION_COOKIE_HTTPONLY=True)
    app.session_interface = AdminSessionInterface()


def _edge():
    return current_app.extensions["keepwell"]


def _wants_json() -> bool:
    return request.path.startswith("/admin/api/")


def shop_page(view):
    """Run ``view`` with ``g.shop_id`` (and ``g.shop``) for the authenticated shop; 401 otherwise."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            g.shop_id, g.per_request = admin_auth.authenticate(request, _edge())
        except admin_auth.Unauthenticated as exc:
            log.warning("admin request refused: %s %s from %s: %s", request.method, request.path,
                        request.remote_addr, exc.reason)
            if _wants_json():
                return jsonify(error=exc.reason), 401, exc.headers
            embedded = _in_shopify_admin()
            return render_template("admin/error.html", status=401, title="Not signed in", message=exc.reason,
                                   dir="ltr", shop=None, embedded=embedded, api_key=_edge().config.shopify_api_key,
                                   bounce=embedded and exc.bounce), 401, exc.headers
        with _edge().sessions() as s:
            row = s.get(ShopRow, g.shop_id)
            g.shop = {"id": row.id, "domain": row.domain, "platform": row.platform,
                      "locale": (row.settings or {}).get("locale") or ""}
        if request.method == "GET" and not _wants_json() and ("link" in request.args or "id_token" in request.args):
            # A link's credentials have done their job (the session holds the shop): drop them from the URL.
            keep = {k: v for k, v in request.args.items() if k not in ("link", "shop", "id_token", "hmac",
                                                                         "host", "session", "timestamp", "embedded")}
            if "id_token" not in request.args:  # Shopify's iframe keeps its URL; a WooCommerce tab is cleaned
                return redirect(url_for(request.endpoint, **(request.view_args or {}), **keep))
        return view(*args, **kwargs)

    return wrapper


def frame_ancestors(shopify_domain: str | None) -> str:
    """The frame-ancestors policy of a page of a Shopify shop's (plugin.headers sets it on the rest)."""
    return f"frame-ancestors https://{shopify_domain} {SHOPIFY_ADMIN}" if shopify_domain else "frame-ancestors 'none'"


def _in_shopify_admin() -> bool:
    """The request comes from the Shopify admin's iframe (where App Bridge can supply a token)."""
    return bool(_edge().config.shopify_api_key) and (
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


def _check_csrf() -> None:
    if g.get("per_request"):
        return
    sent = request.form.get("csrf", "")
    if not sent or not token.compare_digest(sent, session.get("csrf", "")):
        abort(400, "the form is stale: reload the page and try again")


@bp.app_template_global("u")
def admin_url(endpoint: str, **values) -> str:
    """url_for that keeps ?dir= (and Shopify's id_token inside the embedded admin) on links."""
    for key in ("dir", "id_token"):
        if key in request.values and key not in values:
            values[key] = request.values[key]
    return url_for(endpoint, **values)


def render(template: str, **context):
    # App Bridge and Polaris only inside Shopify's admin: elsewhere App Bridge would send the page away.
    return render_template(template, dir=text_direction(), shop=g.shop, csrf=csrf_token(),
                           embedded=bool(g.get("per_request")), api_key=_edge().config.shopify_api_key, **context)


# --- pages ------------------------------------------------------------------------------------

@bp.get("")
@bp.get("/")
@shop_page
def overview():
    now = _now()
    with _edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
        history = describe(s.get(ImportRow, g.shop_id))
    last30 = build_report(inputs, since=now - timedelta(days=30), now=now)
    total = build_report(inputs, now=now)
    currency = total.currency or ""
    rules30 = last30.rules.values()
    kpis = {
        "repeat_rate": pct(total.store.repeat_purchase_rate),
        "median_days": "-" if total.store.median_days_to_second_order is None
        else f"{total.store.median_days_to_second_order:.1f}",
        "touches": sum(r.touches for r in rules30),
        "coupons": sum(r.coupons_issued for r in rules30),
        "revenue": money(sum((r.attributed_revenue for r in rules30), Decimal(0))),
        # webhooks the worker set aside; `keepwell dead-letters` shows why and puts them back
        "dead_letters": _edge().handoff.redis.llen(_edge().handoff.keys(g.shop_id).dead),
    }
    series = repeat_rate_series(inputs, total.currency, now)
    per_rule = [{"label": rid, "revenue": r.attributed_revenue, "discount": r.discount_cost}
                for rid, r in total.rules.items()]
    return render("admin/overview.html", kpis=kpis, currency=currency, line=line_chart(series),
                  bars=bar_rows(per_rule, ["revenue", "discount"]) if per_rule else None, per_rule=per_rule,
                  money=money, active="overview", history=history)


def _rule_index(files: dict[str, str]) -> list[dict]:
    """Rules of a stored set, file by file, read from the YAML (no compile needed)."""
    out = []
    for name, text in sorted(files.items()):
        if name.startswith("templates/"):
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        for rule in (data.get("rules") or []) if isinstance(data, dict) else []:
            if isinstance(rule, dict) and rule.get("id"):
                out.append({"id": str(rule["id"]), "name": rule.get("name") or "", "file": name,
                            "enabled": rule.get("enabled", True) is not False,
                            "trigger": rule.get("trigger") if isinstance(rule.get("trigger"), str) else "timer"})
    return out


@bp.get("/rules")
@shop_page
def rules():
    with _edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        files = dict(row.files) if row else {}
        fired = dict(s.execute(select(DecisionRow.rule_id, func.max(DecisionRow.created_at))
                               .where(DecisionRow.shop_id == g.shop_id, DecisionRow.kind == "touch")
                               .group_by(DecisionRow.rule_id)).all())
        versions = s.execute(select(RuleSetRow.version, RuleSetRow.created_at, RuleSetRow.active, RuleSetRow.digest)
                             .where(RuleSetRow.shop_id == g.shop_id).order_by(RuleSetRow.version.desc())).all()
    index = _rule_index(files)
    for r in index:
        at = fired.get(r["id"])
        r["last_fired"] = at.strftime("%Y-%m-%d %H:%M UTC") if at else "never"
    rule_files = sorted(n for n in files if not n.startswith("templates/"))
    return render("admin/rules.html", rules=index, version=row.version if row else None, files=rule_files,
                  versions=versions, active="rules")


def _edited_files(base: dict[str, str], name: str, text: str) -> dict[str, str]:
    files = dict(base)
    files[name] = text.replace("\r\n", "\n")
    return files


def lint_files(files: dict[str, str]):
    sources, templates = _split(files)
    return lint_sources(sources, templates)


def _problem_views(problems, name: str, text: str) -> list[dict]:
    lines = text.replace("\r\n", "\n").split("\n")
    out = []
    for p in problems:
        context = []
        if p.file == name:
            for n in range(max(1, p.line - 1), min(len(lines), p.line + 1) + 1):
                context.append({"n": n, "text": lines[n - 1], "bad": n == p.line})
        out.append({"text": str(p), "file": p.file, "line": p.line, "col": p.col, "rule": p.rule_id or "-",
                    "message": p.message, "context": context})
    return out


def simulate_files(files: dict[str, str]):
    """The edited set over the shop's own last 90 days (rebuilt from the customer states Keepwell
    keeps), or over a generated sample store while the shop has no history yet."""
    from plugin.events import event_from_dict
    from plugin.history import shop_events
    from plugin.engine.ruleset import for_shop
    from plugin.sample_history import SAMPLE_REFERRAL_KEY, generate
    from plugin.shops import referral_key
    from plugin.simulate import simulate

    ruleset, problems = lint_files(files)
    if problems:
        return None, problems
    start = _now() - timedelta(days=SIMULATION_DAYS)
    with _edge().sessions.begin() as s:
        events = shop_events(s, g.shop_id, start)
        ruleset = for_shop(ruleset, referral_key(s, _edge().config, g.shop_id))
    source = "store"
    if not events:
        source = "sample"
        events = [event_from_dict(e) for e in generate(SIMULATION_CUSTOMERS, seed=1, start=start, days=SIMULATION_DAYS,
                                                       shop=g.shop_id)]
        ruleset = for_shop(ruleset, SAMPLE_REFERRAL_KEY)
    report = simulate(events, ruleset)
    report.source = source
    return report, []


@bp.route("/rules/edit/<path:name>", methods=["GET", "POST"])
@shop_page
def edit_rule(name):
    with _edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        files = dict(row.files) if row else {}
    if name.startswith("templates/") or name not in files:
        abort(404)
    text, problems, message, simulation, checked = files[name], [], None, None, False
    if request.method == "POST":
        _check_csrf()
        text = request.form.get("source", "").replace("\r\n", "\n")
        action = request.form.get("action", "check")
        edited = _edited_files(files, name, text)
        checked = True
        if action == "simulate":
            report, found = simulate_files(edited)
            problems = _problem_views(found, name, text)
            if report is not None:
                simulation = {"source": report.source, "customers": report.customers, "days": SIMULATION_DAYS,
                              "events": report.events,
                              "rules": [{"id": rid, **r.to_dict()} for rid, r in sorted(report.rules.items())]}
        else:
            _, found = lint_files(edited)
            problems = _problem_views(found, name, text)
            if not found and action == "save":
                try:
                    with _edge().sessions.begin() as s:
                        new = install_rules(s, g.shop_id, edited)
                        version, created = new.version, row is None or new.version != row.version
                except RuleError as exc:
                    problems = [{"text": str(p), "context": []} for p in exc.args[0]] if exc.args else []
                else:
                    message = (f"Saved: version {version} is now active." if created
                               else f"No change: version {version} stays active.")
                    return redirect(admin_url("admin.rules", saved=version) if created else
                                    admin_url("admin.edit_rule", name=name, same=version))
            elif not found:
                message = "No problems found."
    if request.args.get("same"):
        message = f"No change: version {request.args['same']} stays active."
    return render("admin/editor.html", name=name, text=text, problems=problems, message=message,
                  simulation=simulation, checked=checked, version=row.version if row else None,
                  lines=text.count("\n") + 2, active="rules"), (422 if problems else 200)


@bp.get("/activity")
@shop_page
def activity():
    with _edge().sessions() as s:
        rows = s.scalars(select(DecisionRow).where(DecisionRow.shop_id == g.shop_id)
                         .order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc()).limit(100)).all()
        codes = dict(s.execute(select(EffectRow.decision_key, EffectRow.coupon_code)
                               .where(EffectRow.shop_id == g.shop_id, EffectRow.type == "coupon",
                                      EffectRow.decision_key.in_([r.key for r in rows]))).all()) if rows else {}
        items = [{"id": r.id, "at": r.created_at.strftime("%Y-%m-%d %H:%M"), "rule": r.rule_id,
                  "customer": r.customer_id, "kind": r.kind, "status": r.status, "reason": r.reason or "",
                  "code": codes.get(r.key) or _planned_code(r.decision) or ""} for r in rows]
    return render("admin/activity.html", items=items, active="activity")


def _planned_code(decision: dict) -> str | None:
    for a in (decision or {}).get("actions") or ():
        if isinstance(a, dict) and a.get("type") == "coupon" and a.get("code"):
            return a["code"]
    return None


@bp.get("/activity/<int:decision_id>")
@shop_page
def decision(decision_id):
    from plugin.explain import _trigger_text, action_text

    with _edge().sessions() as s:
        row = s.scalar(select(DecisionRow).where(DecisionRow.id == decision_id, DecisionRow.shop_id == g.shop_id))
        if row is None:
            abort(404)
        effects = s.scalars(select(EffectRow).where(EffectRow.shop_id == g.shop_id,
                                                    EffectRow.decision_key == row.key)).all()
        effects = [{"type": e.type, "status": e.status, "code": e.coupon_code or "", "error": e.error or ""}
                   for e in effects]
        ruleset_row = active_rule_row(s, g.shop_id)
        files = dict(ruleset_row.files) if ruleset_row else {}
        d = dict(row.decision or {})
        view = {"id": row.id, "rule": row.rule_id, "customer": row.customer_id, "kind": row.kind,
                "status": row.status, "reason": row.reason or "", "detail": row.detail or "", "error": row.error or "",
                "event": row.event_id, "at": d.get("at") or row.created_at.isoformat(),
                "version": row.ruleset_version}
    why = []
    try:
        ruleset, problems = lint_files(files) if files else (None, [])
    except Exception:  # an old stored set this engine cannot read: the stored decision still shows
        ruleset = None
    rule = next((r for r in ruleset.rules if r.id == row.rule_id), None) if ruleset else None
    if rule is not None:
        why.append(f"rule {rule.id} ({rule.name}) triggers on {_trigger_text(rule)}")
        if rule.delay:
            why.append(f"after a delay of {rule.delay}")
        if rule.holdout:
            why.append(f"{rule.holdout}% of customers are held out to measure lift")
    if row.kind == "touch":
        actions = [action_text(a) for a in d.get("actions") or () if isinstance(a, dict) and "type" in a]
        why.append("touch: " + (", ".join(actions) or "no actions"))
    else:
        why.append(f"suppressed ({row.reason or '-'}){': ' + row.detail if row.detail else ''}")
    trace = _trace(row, ruleset) if rule is not None else []
    return render("admin/decision.html", d=view, stored=json.dumps(d, indent=2, sort_keys=True, default=str),
                  effects=effects, why=why, trace=trace, active="activity")


def _trace(row, ruleset) -> list[str]:
    """The rule's conditions, each with the value it saw, replayed over the customer's history as
    Keepwell keeps it (plugin.history: no line items). Empty when the trigger cannot be rebuilt."""
    from plugin.explain import explain
    from plugin.history import shop_events

    anchor = row.key.removeprefix(f"{row.shop_id}:{row.rule_id}:{row.customer_id}:")
    kind, _, ref = anchor.partition(":")
    event_id = {"order.paid": f"history:paid:{ref}", "customer.created": f"history:signup:{row.customer_id}"}.get(kind)
    if event_id is None:
        return []
    with _edge().sessions() as s:
        events = [e for e in shop_events(s, row.shop_id, datetime.min.replace(tzinfo=timezone.utc))
                  if e.customer_id == row.customer_id]
    if not any(e.id == event_id for e in events):
        return []
    lines = explain(events, ruleset, row.customer_id, event_id)
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{row.rule_id}:")), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    return lines[:2] + lines[start:end]


@bp.get("/roi/<rule_id>")
@shop_page
def roi(rule_id):
    with _edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
    report = build_report(inputs, now=_now())
    r = report.rules.get(rule_id)
    if r is None:
        with _edge().sessions() as s:
            row = active_rule_row(s, g.shop_id)
            known = {x["id"] for x in _rule_index(dict(row.files) if row else {})}
        if rule_id not in known:
            abort(404)
    lift = r.lift if r else None
    bars = None
    if r is not None:
        values = [{"label": "Attributed revenue", "value": r.attributed_revenue},
                  {"label": "Discount cost", "value": r.discount_cost},
                  {"label": "Send cost", "value": r.send_cost}]
        if lift and lift.incremental_revenue is not None:
            values.append({"label": "Incremental revenue", "value": max(lift.incremental_revenue, Decimal(0))})
        bars = bar_rows([{"label": v["label"], "value": v["value"]} for v in values], ["value"], label_w=170)
    return render("admin/roi.html", rule_id=rule_id, r=r, lift=lift, bar=error_bar(lift.difference if lift else None),
                  bars=bars, currency=report.currency or "", money=money, pct=pct, active="rules")


# --- API (Bearer session tokens from App Bridge fetches) ----------------------------------------

@bp.get("/api/report")
@shop_page
def api_report():
    with _edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
    return jsonify(build_report(inputs, now=_now()).to_dict())


@bp.errorhandler(404)
def _not_found(exc):
    if _wants_json():
        return jsonify(error="not found"), 404
    return render_template("admin/error.html", status=404, title="Not found",
                           message="There is no such page for this shop.", dir=text_direction(), shop=None), 404


__all__ = ["bp", "shop_page", "admin_url"]

from plugin.admin import settings_pages  # noqa: E402,F401  (its routes join the blueprint)
