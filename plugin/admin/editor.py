"""The rule editor: check, save and simulate an edit (before against after, over the period
named), and preview any rule's email for a sample or a real customer, in either text
direction, with a test sent to the merchant's own address."""
from __future__ import annotations

from datetime import timedelta

from flask import abort, g, redirect, request

from plugin import mail, sender as sending
from plugin.admin import bp
from plugin.admin.charts import now as _now
from plugin.admin.people import people, search_customers, when, zone
from plugin.admin.preview import SAMPLE_CUSTOMERS, render_rule_email, with_direction
from plugin.admin.security import admin_url, check_csrf, edge, render, shop_page
from plugin.admin.views import rule_index
from plugin.db import CustomerRow, ShopRow, utcnow
from plugin.errors import RuleError
from plugin.rulefile import lint_sources
from plugin.shops import _split, active_rule_row, install_rules, to_shop

SIMULATION_CUSTOMERS = 300
SIMULATION_DAYS = 90


def lint_files(files: dict[str, str]):
    sources, templates = _split(files)
    return lint_sources(sources, templates, now=utcnow())


def problem_views(problems, name: str, text: str) -> list[dict]:
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


def _events(start):
    """The shop's own events since ``start`` (rebuilt from the customer states Keepwell keeps),
    or a generated sample store's while the shop has no history yet."""
    from plugin.events import event_from_dict
    from plugin.history import shop_events
    from plugin.sample_history import generate

    with edge().sessions() as s:
        events = shop_events(s, g.shop_id, start)
    if events:
        return events, "store"
    return [event_from_dict(e) for e in generate(SIMULATION_CUSTOMERS, seed=1, start=start, days=SIMULATION_DAYS,
                                                 shop=g.shop_id)], "sample"


def _run(ruleset, events, source, until):
    from plugin.engine.ruleset import for_shop
    from plugin.fanout import shop_zone
    from plugin.sample_history import SAMPLE_REFERRAL_KEY
    from plugin.shops import referral_key
    from plugin.simulate import simulate

    if source == "sample":
        ruleset = for_shop(ruleset, SAMPLE_REFERRAL_KEY)
    else:
        with edge().sessions.begin() as s:
            ruleset = for_shop(ruleset, referral_key(s, edge().config, g.shop_id))
    # timers due by the end of the period fire; dated and yearly rules in the shop's time zone
    return simulate(events, ruleset, until=until, tz=shop_zone({"timezone": g.shop["timezone"]}))


def _discount(r: dict) -> str:
    parts = [f"{v} {c}" for c, v in r["face_value"].items()]
    if r["percent_coupons"]:
        parts.append(f"{r['percent_coupons']} × {r['average_percent']}%")
    return " + ".join(parts) or "none"


def simulate_files(before: dict[str, str], after: dict[str, str]):
    """The active set and the edited set over the same events: (comparison, problems)."""
    edited, problems = lint_files(after)
    if problems:
        return None, problems
    end = _now()
    start = end - timedelta(days=SIMULATION_DAYS)
    events, source = _events(start)
    new = _run(edited, events, source, end)
    old_set, old_problems = lint_files(before) if before else (None, [])
    old = _run(old_set, events, source, end) if old_set is not None and not old_problems else None
    names = {r.id: r.name for r in edited.rules}
    if old_set is not None:
        names = {**{r.id: r.name for r in old_set.rules}, **names}
    empty = {"triggered": 0, "touches": 0, "coupons": 0, "emails": 0, "suppressed": {}, "face_value": {},
             "percent_coupons": 0, "average_percent": None, "customers_reached": 0}
    rows = []
    for rid in sorted(set(new.rules) | set(old.rules if old else ()), key=lambda r: names.get(r, r).lower()):
        after_r = new.rules[rid].to_dict() if rid in new.rules else dict(empty)
        before_r = old.rules[rid].to_dict() if old and rid in old.rules else dict(empty)
        after_r["discount"], before_r["discount"] = _discount(after_r), _discount(before_r)
        rows.append({"id": rid, "name": names.get(rid, rid), "before": before_r, "after": after_r,
                     "changed": any(before_r[k] != after_r[k] for k in ("touches", "coupons", "discount"))})
    tz = zone(g.shop["timezone"])
    return {"source": source, "customers": new.customers, "events": new.events, "days": SIMULATION_DAYS,
            "from": when(start, tz), "to": when(end, tz), "zone": g.shop["timezone"], "rules": rows,
            "compared": old is not None}, []


def _customer(query: str, direction: str) -> tuple[dict, dict]:
    """The customer a preview is for: the shop's first customer matching ``query`` (name, email or
    id), or the sample customer of the text direction."""
    if query:
        with edge().sessions() as s:
            found = search_customers(s, g.shop_id, query)
            if found:
                row = s.get(CustomerRow, (g.shop_id, found[0]))
                return dict(row.state or {}), people(s, g.shop, [found[0]])[found[0]]
    sample = SAMPLE_CUSTOMERS[direction]
    return sample, {"id": "", "name": f"{sample['first_name']} {sample['last_name']} (sample)",
                    "email": sample["email"], "link": None}


def _shop_info():
    with edge().sessions() as s:
        shop = to_shop(s.get(ShopRow, g.shop_id), edge().config)
    ruleset_files = _active_files()
    ruleset, _ = lint_files(ruleset_files) if ruleset_files else (None, [])
    details = sending.profile(shop, edge().sessions, _now())
    sender = sending.effective(edge().config.mail_from, dict(ruleset.settings.sender) if ruleset else {}, details,
                               shop.settings.get("name") or shop.domain)
    url = shop.settings.get("url") or (shop.domain if shop.domain.startswith("http") else f"https://{shop.domain}")
    own = details.get("owner_email") or details.get("email") or sender.reply_to or sender.address
    return {"name": sender.name, "url": url, "postal_address": sender.postal_address}, sender, own


def _active_files() -> dict[str, str]:
    with edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        return dict(row.files) if row else {}


def email_preview(files: dict[str, str], rule_id: str, query: str, direction: str) -> dict:
    """What the preview panel shows: the rendered email, or why it could not be rendered."""
    direction = direction if direction in ("ltr", "rtl") else "ltr"
    state, who = _customer(query, direction)
    shop, sender, own = _shop_info()
    ruleset, problems = lint_files(files)
    view = {"rule": rule_id, "query": query, "direction": direction, "customer": who, "to": own,
            "from": sender.from_header, "not_found": bool(query) and not who["id"]}
    if ruleset is None:
        return {**view, "error": f"the rule set has {len(problems)} problem(s): check it first"}
    try:
        p = render_rule_email(ruleset, _split(files)[1], rule_id, state, shop, _now(),
                              f"{edge().config.app_url}/unsubscribe/preview")
    except (LookupError, mail.TemplateError) as exc:
        return {**view, "error": str(exc)}
    return {**view, "subject": p.subject, "html": with_direction(p.html, direction), "text": p.text,
            "coupon": p.coupon}


@bp.get("/rules/preview")
@shop_page
def preview():
    files = _active_files()
    rules = rule_index(files)
    rule_id = request.args.get("rule") or (rules[0]["id"] if rules else "")
    shown = email_preview(files, rule_id, request.args.get("customer", "").strip()[:100],
                          request.args.get("direction", "ltr")) if rule_id else None
    return render("admin/preview.html", rules=rules, p=shown, sent=request.args.get("sent"), active="rules")


@bp.post("/rules/preview/send")
@shop_page
def send_test():
    """Send the previewed email, marked as a test, to the merchant's own address only."""
    check_csrf()
    files = _active_files()
    rule_id = request.form.get("rule", "")
    if rule_id not in {r["id"] for r in rule_index(files)}:
        abort(404)
    shown = email_preview(files, rule_id, request.form.get("customer", "").strip()[:100],
                          request.form.get("direction", "ltr"))
    if "error" in shown:
        abort(422, shown["error"])
    _, sender, own = _shop_info()
    rendered = mail.Rendered(f"[Test] {shown['subject']}", shown["html"], shown["text"])
    message = mail.build_message(rendered, own, sender.from_header, f"test:{g.shop_id}:{rule_id}:{_now().isoformat()}",
                                 f"{edge().config.app_url}/unsubscribe/preview", reply_to=sender.reply_to)
    mail.send(message, edge().config.smtp_url)
    return redirect(admin_url("admin.preview", rule=rule_id, customer=shown["query"], direction=shown["direction"],
                              sent=own))


@bp.route("/rules/edit/<path:name>", methods=["GET", "POST"])
@shop_page
def edit_rule(name):
    with edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        files = dict(row.files) if row else {}
    if name.startswith("templates/") or name not in files:
        abort(404)
    text, problems, message, simulation, shown, warnings = files[name], [], None, None, None, []
    rules_here = [r for r in rule_index(files) if r["file"] == name]
    if request.method == "POST":
        check_csrf()
        text = request.form.get("source", "").replace("\r\n", "\n")
        action = request.form.get("action", "check")
        edited = {**files, name: text}
        if action == "simulate":
            simulation, found = simulate_files(files, edited)
            problems = problem_views(found, name, text)
        elif action == "preview":
            _, found = lint_files(edited)
            problems = problem_views(found, name, text)
            shown = email_preview(edited, request.form.get("rule", ""), request.form.get("customer", "").strip()[:100],
                                  request.form.get("direction", "ltr"))
        else:
            result = lint_files(edited)
            found, warnings = result.problems, problem_views(result.warnings, name, text)
            problems = problem_views(found, name, text)
            if not found and action == "save":
                try:
                    with edge().sessions.begin() as s:
                        new = install_rules(s, g.shop_id, edited)
                        version, created = new.version, row is None or new.version != row.version
                except RuleError as exc:
                    problems = [{"text": str(p), "context": []} for p in exc.args[0]] if exc.args else []
                else:
                    return redirect(admin_url("admin.rules", saved=version) if created else
                                    admin_url("admin.edit_rule", name=name, same=version))
            elif not found:
                message = "No problems found."
    if request.args.get("same"):
        message = f"No change: version {request.args['same']} stays active."
    return render("admin/editor.html", name=name, text=text, problems=problems, message=message,
                  simulation=simulation, version=row.version if row else None, rules_here=rules_here, p=shown,
                  warnings=warnings,
                  lines=text.count("\n") + 2, active="rules"), (422 if problems else 200)
