"""Dashboard pages for the shop's own settings: who its emails come from (Sender), and its
customers' data requests and data retention (Privacy)."""
from __future__ import annotations

from flask import g, redirect, request

from plugin import sender as sending
from plugin.admin import bp
from plugin.admin.charts import now as _now
from plugin.admin.editor import lint_files, problem_views as _problem_views
from plugin.admin.people import people
from plugin.admin.security import admin_url, check_csrf as _check_csrf, edge as _edge, render, shop_page
from plugin.db import ShopRow
from plugin.errors import RuleError
from plugin.shops import active_rule_row, install_rules, to_shop


def _shop():
    with _edge().sessions() as s:
        return to_shop(s.get(ShopRow, g.shop_id), _edge().config)


@bp.route("/sender", methods=["GET", "POST"])
@shop_page
def sender():
    """The sender of the shop's emails: each value with where it comes from; saving writes the
    sender block of settings.yaml as a new rule set version (checked like any edit)."""
    with _edge().sessions() as s:
        row = active_rule_row(s, g.shop_id)
        files = dict(row.files) if row else {}
    shop = _shop()
    details = sending.profile(shop, _edge().sessions, _now(), refresh=request.args.get("refresh") == "1")
    problems, values = [], None
    if request.method == "POST":
        _check_csrf()
        values = {k: request.form.get(k, "") for k in sending.FIELDS}
        edited = sending.with_sender(files, values)
        ruleset, found = lint_files(edited)
        name = next(n for n in edited if edited[n] != files.get(n))
        problems = _problem_views(found, name, edited[name])
        if not found:
            try:
                with _edge().sessions.begin() as s:
                    new = install_rules(s, g.shop_id, edited)
            except RuleError as exc:
                problems = [{"text": str(p), "context": []} for p in exc.args[0]] if exc.args else []
            else:
                return redirect(admin_url("admin.sender", saved=new.version))
    lint_ruleset, _ = lint_files(files)
    configured = dict(lint_ruleset.settings.sender) if lint_ruleset else {}
    effective = sending.effective(_edge().config.mail_from, configured, details,
                                  shop.settings.get("name") or shop.domain)
    return render("admin/sender.html", configured=values if values is not None else configured, effective=effective,
                  details=details, problems=problems, version=row.version if row else None, active="sender"), \
        (422 if problems else 200)


@bp.get("/privacy")
@shop_page
def privacy():
    """The shop's customer data requests (exports) and how long Keepwell keeps what."""
    from sqlalchemy import select

    from plugin.data_requests import EXPORT_RETENTION, LINK_TTL
    from plugin.db import DataExportRow

    with _edge().sessions() as s:
        rows = s.execute(select(DataExportRow.id, DataExportRow.request_id, DataExportRow.customer_id,
                                DataExportRow.created_at).where(DataExportRow.shop_id == g.shop_id)
                         .order_by(DataExportRow.created_at.desc())).all()
        who = people(s, g.shop, [r.customer_id for r in rows])
    exports = [{"id": r.id, "request_id": r.request_id or "-", "customer": who[r.customer_id],
                "created": r.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                "deleted": (r.created_at + EXPORT_RETENTION).strftime("%Y-%m-%d")} for r in rows]
    return render("admin/privacy.html", exports=exports, retention_days=EXPORT_RETENTION.days,
                  link_days=LINK_TTL.days, customer_days=_edge().config.retention_days, active="privacy")


@bp.get("/privacy/exports/<int:export_id>")
@shop_page
def privacy_export(export_id: int):
    from flask import abort

    from plugin.data_requests import json_download
    from plugin.db import DataExportRow

    with _edge().sessions() as s:
        row = s.get(DataExportRow, export_id)
        if row is None or row.shop_id != g.shop_id:
            abort(404)
        return json_download(row)
