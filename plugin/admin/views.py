"""The Overview, Rules and ROI pages: what the shop's rules did over a chosen period, one plain
headline per rule, and the rule set's versions."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import yaml
from flask import abort, g, jsonify, redirect, request
from sqlalchemy import func, select

from plugin.admin import bp
from plugin.admin.charts import bar_rows, error_bar, line_chart, money, now as _now, pct, repeat_rate_series
from plugin.admin.people import when, zone
from plugin.admin.security import admin_url, edge, render, shop_page
from plugin.analytics import build_report
from plugin.db import DecisionRow, ImportRow, RuleSetRow
from plugin.importing.status import describe
from plugin.reports import load_inputs
from plugin.shops import active_rule_row

PRESETS = ((30, "Last 30 days"), (90, "Last 90 days"), (365, "Last 12 months"))


def rule_index(files: dict[str, str]) -> list[dict]:
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
                out.append({"id": str(rule["id"]), "name": str(rule.get("name") or ""), "file": name,
                            "enabled": rule.get("enabled", True) is not False,
                            "trigger": rule.get("trigger") if isinstance(rule.get("trigger"), str) else "timer"})
    return out


def period(tz) -> dict:
    """The period chosen with the date range picker (?from=&to=, days in the shop's zone; last 30
    days unless told), as dates to show and UTC bounds to report on."""
    today = _now().astimezone(tz).date()

    def _date(key):
        try:
            return date.fromisoformat(request.args.get(key, ""))
        except ValueError:
            return None

    first, last = _date("from"), _date("to") or today
    if request.args.get("range") == "all":
        first = None
    elif first is None:
        first = today - timedelta(days=29)
    if first and first > last:
        first, last = last, first
    since = datetime.combine(first, time.min, tz).astimezone(timezone.utc) if first else None
    until = datetime.combine(last + timedelta(days=1), time.min, tz).astimezone(timezone.utc)
    label = (f"{first:%b %-d, %Y} – {last:%b %-d, %Y}" if first else f"all time to {last:%b %-d, %Y}")
    return {"from": first.isoformat() if first else "", "to": last.isoformat(), "since": since, "until": until,
            "label": label, "all": first is None,
            "presets": [{"label": text, "from": (today - timedelta(days=n - 1)).isoformat(), "to": today.isoformat()}
                        for n, text in PRESETS]}


def headline(r, currency: str) -> str:
    """'57.60 USD revenue from 6.40 USD of discounts, 9 customers'."""
    people = f"{r.customers_reached} customer{'s' if r.customers_reached != 1 else ''}"
    return (f"{money(r.attributed_revenue)} {currency} revenue from {money(r.discount_cost)} {currency} of discounts, "
            f"{people}").replace("  ", " ")


def roi_text(r) -> str:
    """The return on a rule only when its holdout shows one; 'inconclusive' (and why) otherwise."""
    lift = r.lift
    if lift is None or lift.verdict == "no holdout":
        return "ROI unknown: no holdout to compare with"
    if not lift.significant or lift.roi is None:
        return f"ROI inconclusive{': ' + lift.reason if lift.reason else ''}"
    return f"ROI {lift.roi * 100:.0f}% ({lift.verdict})"


@bp.get("")
@bp.get("/")
@shop_page
def overview():
    now = _now()
    tz = zone(g.shop["timezone"])
    p = period(tz)
    with edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
        history = describe(s.get(ImportRow, g.shop_id))
        row = active_rule_row(s, g.shop_id)
        names = {r["id"]: r["name"] or r["id"] for r in rule_index(dict(row.files) if row else {})}
    report = build_report(inputs, since=p["since"], until=p["until"], now=now)
    total = build_report(inputs, now=now)
    currency = report.currency or total.currency or g.shop["currency"] or ""
    rules = report.rules.values()
    in_period = lambda t: (p["since"] is None or t >= p["since"]) and t < p["until"]  # noqa: E731
    kpis = {
        "repeat_rate": pct(total.store.repeat_purchase_rate),
        "median_days": "-" if total.store.median_days_to_second_order is None
        else f"{total.store.median_days_to_second_order:.1f} days",
        "touches": sum(r.touches for r in rules),
        "coupons": sum(r.coupons_issued for r in rules),
        "emails": sum(r.emails_sent for r in rules),
        "unsubscribes": sum(1 for u in inputs.unsubscribes if in_period(u.at)),
        "revenue": f"{money(sum((r.attributed_revenue for r in rules), Decimal(0)))} {currency}".strip(),
        "discounts": f"{money(sum((r.discount_cost for r in rules), Decimal(0)))} {currency}".strip(),
        # webhooks the worker set aside; `keepwell dead-letters` shows why and puts them back
        "dead_letters": edge().handoff.redis.llen(edge().handoff.keys(g.shop_id).dead),
    }
    per_rule = [{"id": rid, "label": names.get(rid, rid), "revenue": r.attributed_revenue,
                 "discount": r.discount_cost, "headline": headline(r, currency), "roi": roi_text(r),
                 "touches": r.touches}
                for rid, r in sorted(report.rules.items(), key=lambda kv: names.get(kv[0], kv[0]).lower())]
    charted = [r for r in per_rule if r["revenue"] or r["discount"]]  # nothing to show is not a zero bar
    quiet = [r for r in per_rule if not (r["revenue"] or r["discount"])]
    series = repeat_rate_series(inputs, total.currency, now)
    return render("admin/overview.html", kpis=kpis, currency=currency, line=line_chart(series),
                  bars=bar_rows(charted, ["revenue", "discount"], label_w=0) if charted else None, per_rule=per_rule,
                  charted=charted, quiet=quiet, money=money, active="overview", history=history, period=p)


@bp.get("/rules")
@shop_page
def rules():
    tz = zone(g.shop["timezone"])
    with edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        files = dict(row.files) if row else {}
        fired = dict(s.execute(select(DecisionRow.rule_id, func.max(DecisionRow.created_at))
                               .where(DecisionRow.shop_id == g.shop_id, DecisionRow.kind == "touch")
                               .group_by(DecisionRow.rule_id)).all())
        versions = [{"version": v.version, "created": when(v.created_at, tz), "active": v.active, "digest": v.digest}
                    for v in s.execute(select(RuleSetRow.version, RuleSetRow.created_at, RuleSetRow.active,
                                              RuleSetRow.digest).where(RuleSetRow.shop_id == g.shop_id)
                                       .order_by(RuleSetRow.version.desc())).all()]
    index = rule_index(files)
    for r in index:
        at = fired.get(r["id"])
        r["last_fired"] = when(at, tz) if at else "never"
    rule_files = sorted(n for n in files if not n.startswith("templates/"))
    return render("admin/rules.html", rules=index, version=row.version if row else None, files=rule_files,
                  versions=versions, zone=g.shop["timezone"], active="rules")


@bp.get("/roi/<rule_id>")
@shop_page
def roi(rule_id):
    with edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
        row = active_rule_row(s, g.shop_id)
        names = {x["id"]: x["name"] or x["id"] for x in rule_index(dict(row.files) if row else {})}
    report = build_report(inputs, now=_now())
    r = report.rules.get(rule_id)
    if r is None and rule_id not in names:
        abort(404)
    currency = report.currency or g.shop["currency"] or ""
    lift = r.lift if r else None
    bars = None
    if r is not None:
        values = [{"label": "Attributed revenue", "value": r.attributed_revenue},
                  {"label": "Discount cost", "value": r.discount_cost},
                  {"label": "Send cost", "value": r.send_cost}]
        if r.texts_sent:  # part of the send cost: the texts' segments at the shop's price
            values.append({"label": "of which SMS", "value": r.sms_cost})
        if lift and lift.incremental_revenue is not None:
            values.append({"label": "Incremental revenue", "value": max(lift.incremental_revenue, Decimal(0))})
        bars = bar_rows(values, ["value"], label_w=170)
    return render("admin/roi.html", rule_id=rule_id, name=names.get(rule_id, rule_id), r=r, lift=lift,
                  bar=error_bar(lift.difference if lift else None), bars=bars, currency=currency, money=money,
                  pct=pct, headline=headline(r, currency) if r else "", roi=roi_text(r) if r else "", active="rules")


@bp.get("/api/report")
@shop_page
def api_report():
    with edge().sessions() as s:
        inputs = load_inputs(s, g.shop_id)
    return jsonify(build_report(inputs, now=_now()).to_dict())


def root():
    """The site's front page is the dashboard."""
    return redirect(admin_url("admin.overview", **request.args))
