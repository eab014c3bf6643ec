"""The Activity pages: every decision of the shop's with who it was for, in plain words and
filterable (rule, status, dates, customer), pages of 50; and one decision told as a story with
its conditions, its effects and the stored JSON behind a details toggle."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

from flask import abort, g, request
from sqlalchemy import func, select

from plugin.admin import bp
from plugin.admin.charts import money
from plugin.admin.people import day, people, search_customers, status_text, when, zone
from plugin.admin.security import edge, render, shop_page
from plugin.admin.story import story
from plugin.db import AttributionRow, DecisionRow, EffectRow, TimerRow
from plugin.pages import report as page_report
from plugin.shops import active_rule_row

PAGE = 50
STATUSES = {"sent": "Sent", "skipped": "Skipped", "failed": "Failed", "sending": "Sending", "waiting": "Waiting"}


def rule_names(files: dict[str, str]) -> dict[str, str]:
    from plugin.admin.views import rule_index

    return {r["id"]: r["name"] or r["id"] for r in rule_index(files)}


def decided_at(row) -> datetime:
    """The engine's time of a decision (the shop's clock when it decided), else when it was stored."""
    at = (row.decision or {}).get("at")
    try:
        return datetime.fromisoformat(at) if isinstance(at, str) else row.created_at
    except ValueError:
        return row.created_at


def _filters(tz) -> dict:
    args = request.args

    def _date(key):
        try:
            return date.fromisoformat(args.get(key, ""))
        except ValueError:
            return None

    page = args.get("page", "1")
    return {"rule": args.get("rule", ""), "status": args.get("status", "") if args.get("status") in STATUSES else "",
            "since": _date("from"), "until": _date("to"), "q": args.get("q", "").strip()[:100],
            "page": max(1, int(page)) if page.isdigit() else 1}


def _bounds(f: dict, tz):
    def start_of(d):
        return datetime.combine(d, time.min, tz).astimezone(timezone.utc)

    since = start_of(f["since"]) if f["since"] else None
    until = start_of(f["until"] + timedelta(days=1)) if f["until"] else None
    return since, until


def _decision_query(f: dict, since, until, customers):
    q = select(DecisionRow).where(DecisionRow.shop_id == g.shop_id)
    if f["rule"]:
        q = q.where(DecisionRow.rule_id == f["rule"])
    status = f["status"]
    if status == "sent":
        q = q.where(DecisionRow.kind == "touch", DecisionRow.status == "done")
    elif status == "failed":
        q = q.where(DecisionRow.status == "failed")
    elif status == "sending":
        q = q.where(DecisionRow.kind == "touch", DecisionRow.status == "pending")
    elif status == "skipped":
        q = q.where(DecisionRow.kind == "suppressed")
    if since:
        q = q.where(DecisionRow.created_at >= since)
    if until:
        q = q.where(DecisionRow.created_at < until)
    if customers is not None:
        q = q.where(DecisionRow.customer_id.in_(customers or [""]))
    return q


def _waiting(s, f: dict, since, until, customers, names: dict, tz) -> list[dict]:
    """Touches set for later (a delay, a lapse, an occasion): what each customer is waiting for."""
    q = select(TimerRow).where(TimerRow.shop_id == g.shop_id, TimerRow.status == "pending")
    if since:
        q = q.where(TimerRow.wake_at >= since)
    if until:
        q = q.where(TimerRow.wake_at < until)
    if customers is not None:
        q = q.where(TimerRow.customer_id.in_(customers or [""]))
    rows = [r for r in s.scalars(q.order_by(TimerRow.wake_at).limit(200)).all()
            if not f["rule"] or (r.event.get("data") or {}).get("rule") == f["rule"]]
    who = people(s, g.shop, [r.customer_id for r in rows])
    out = []
    for r in rows:
        rule = (r.event.get("data") or {}).get("rule") or ""
        out.append({"at": when(r.wake_at, tz), "rule": names.get(rule, rule), "customer": who[r.customer_id],
                    "status": f"Waiting until {day(r.wake_at, tz)}"})
    return out


@bp.get("/activity")
@shop_page
def activity():
    tz = zone(g.shop["timezone"])
    f = _filters(tz)
    since, until = _bounds(f, tz)
    with edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        names = rule_names(dict(row.files) if row else {})
        known = dict(s.execute(select(DecisionRow.rule_id, func.count()).where(DecisionRow.shop_id == g.shop_id)
                               .group_by(DecisionRow.rule_id)).all())
        customers = search_customers(s, g.shop_id, f["q"]) if f["q"] else None
        rows, total = [], 0
        if f["status"] != "waiting":
            q = _decision_query(f, since, until, customers)
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc())
                             .limit(PAGE).offset((f["page"] - 1) * PAGE)).all()
        waiting = _waiting(s, f, since, until, customers, names, tz) if f["status"] in ("", "waiting") \
            and f["page"] == 1 else []
        keys = [r.key for r in rows]
        effects = s.execute(select(EffectRow.decision_key, EffectRow.type, EffectRow.coupon_code).where(
            EffectRow.shop_id == g.shop_id, EffectRow.decision_key.in_(keys))).all() if keys else []
        who = people(s, g.shop, [r.customer_id for r in rows])
        pages = page_report.for_touches(s, g.shop_id, keys)
        page_rules = page_report.by_rule(s, g.shop_id)
    codes = {k: c for k, t, c in effects if t == "coupon" and c}
    emails = {k for k, t, _ in effects if t == "email"}
    items = []
    for r in rows:
        planned = [a for a in (r.decision or {}).get("actions") or () if isinstance(a, dict)]
        has_email = r.key in emails or any(a.get("type") == "email" for a in planned)
        items.append({"id": r.id, "at": when(decided_at(r), tz), "rule": names.get(r.rule_id, r.rule_id),
                      "customer": who[r.customer_id],
                      "status": status_text(r.kind, r.status, r.reason, r.detail or "", r.error, has_email, tz),
                      "state": "skipped" if r.kind != "touch" else r.status,
                      "code": codes.get(r.key) or next((a.get("code") for a in planned if a.get("type") == "coupon"),
                                                       ""),
                      "page": page_report.summary(pages.get(r.key))})
    rules = sorted({*names, *known}, key=lambda rid: names.get(rid, rid).lower())
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render("admin/activity.html", items=items, waiting=waiting, filters=f, total=total, page=f["page"],
                  pages=max(1, -(-total // PAGE)), args=args, rules=[(rid, names.get(rid, rid)) for rid in rules],
                  statuses=STATUSES, zone=g.shop["timezone"], active="activity",
                  page_rules=[(names.get(rid, rid), v) for rid, v in sorted(page_rules.items())])


@bp.get("/activity/<int:decision_id>")
@shop_page
def decision(decision_id):
    from plugin.admin.editor import lint_files

    tz = zone(g.shop["timezone"])
    with edge().sessions() as s:
        row = s.scalar(select(DecisionRow).where(DecisionRow.id == decision_id, DecisionRow.shop_id == g.shop_id))
        if row is None:
            abort(404)
        s.expunge(row)
        effects = [{"type": e.type, "status": e.status, "code": e.coupon_code or "", "error": e.error or ""}
                   for e in s.scalars(select(EffectRow).where(EffectRow.shop_id == g.shop_id,
                                                              EffectRow.decision_key == row.key)).all()]
        paid = s.scalars(select(AttributionRow).where(AttributionRow.shop_id == g.shop_id,
                                                      AttributionRow.decision_key == row.key)
                         .order_by(AttributionRow.ordered_at)).first()
        redemption = {"order": paid.order_id, "revenue": paid.revenue, "currency": paid.currency,
                      "at": when(paid.ordered_at, tz)} if paid else None
        ruleset_row = active_rule_row(s, g.shop_id)
        files = dict(ruleset_row.files) if ruleset_row else {}
        who = people(s, g.shop, [row.customer_id])[row.customer_id]
        page = page_report.for_touches(s, g.shop_id, [row.key]).get(row.key)
        page_lines = page_report.lines(page) if page is not None else []
    d = dict(row.decision or {})
    try:
        ruleset, _ = lint_files(files) if files else (None, [])
    except Exception:  # an old stored set this engine cannot read: the stored decision still shows
        ruleset = None
    rule = next((r for r in ruleset.rules if r.id == row.rule_id), None) if ruleset else None
    at = decided_at(row)
    view = {"id": row.id, "rule": rule.name if rule else rule_names(files).get(row.rule_id, row.rule_id),
            "rule_id": row.rule_id, "customer": who,
            "status": status_text(row.kind, row.status, row.reason, row.detail or "", row.error,
                                  any(e["type"] == "email" for e in effects), tz),
            "at": when(at, tz), "zone": g.shop["timezone"], "error": row.error or "", "version": row.ruleset_version}
    why = []
    if rule is not None:
        from plugin.explain import _trigger_text
        why.append(f"“{rule.name}” starts on {_trigger_text(rule)}")
        if rule.holdout:
            why.append(f"{rule.holdout}% of customers are held out to measure lift")
    trace = _trace(row, ruleset) if rule is not None else []
    return render("admin/decision.html", d=view, story=story(row, rule, redemption, money), why=why,
                  stored=json.dumps(d, indent=2, sort_keys=True, default=str), effects=effects, trace=trace,
                  redemption=redemption, page_lines=page_lines, active="activity")


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
    with edge().sessions() as s:
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
