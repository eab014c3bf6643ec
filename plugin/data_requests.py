"""A customer's data request reaches the merchant, and what Keepwell keeps is purged in time.

Delivery: once ``customers/data_request`` is exported (plugin.privacy.export_job), the shop's
owner gets an email (to the store's owner address, else its contact address) with a download
link valid for LINK_TTL; the export is also on the dashboard's Privacy page. The link is
signed with KEEPWELL_SECRET_KEY (older keys still verify during a rotation) and names one
export of one shop; the email itself carries no customer data.

Retention, run once a day by the housekeeping tick (``purge``):

| what                                   | kept                                     | then                      |
|----------------------------------------|------------------------------------------|---------------------------|
| data request exports                   | EXPORT_RETENTION (30 days)               | deleted                   |
| a customer's state, orders, timers     | while active, and KEEPWELL_RETENTION_DAYS| erased as on a redaction  |
|                                        | (default 3 years) after the last change  | request (plugin.privacy)  |
| the decision ledger                    | with the customer                        | contact data erased       |
| a one-click unsubscribe                | always                                   | kept: an opt-out must be  |
|                                        |                                          | honoured; ids and a time  |
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from flask import Blueprint, Response, current_app, render_template_string
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select

from plugin import mail, privacy
from plugin import sender as sending
from plugin.db import CustomerRow, DataExportRow, ShopRow
from plugin.shops import to_shop

log = logging.getLogger("keepwell.data_requests")
bp = Blueprint("data_requests", __name__)

LINK_TTL = timedelta(days=7)
EXPORT_RETENTION = timedelta(days=30)
PURGE_BATCH = 500


def _serializer(secret_keys) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and verifies with any: newest last
    return URLSafeTimedSerializer(list(reversed(secret_keys)), salt="keepwell.data-export")


def download_token(secret_keys, shop_id: str, export_id: int) -> str:
    return _serializer(secret_keys).dumps([shop_id, export_id])


def download_url(config, shop_id: str, export_id: int) -> str:
    return f"{config.app_url}/privacy/exports/{download_token(config.secret_keys, shop_id, export_id)}"


def filename(row: DataExportRow) -> str:
    return f"keepwell-data-request-{row.request_id or row.id}-customer-{row.customer_id}.json"


def json_download(row: DataExportRow) -> Response:
    """The export as a JSON file (never cached)."""
    import json

    return Response(json.dumps(row.data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename(row)}"',
                             "Cache-Control": "no-store"})


# --- the email to the merchant ---------------------------------------------------------------------

def deliver(rt, shop_id: str, export_id: int) -> str | None:
    """Email the shop's owner the export's download link; the address written to, or None when
    the shop has no known address (the export stays on the dashboard). DeliveryError when the
    mail server fails (the job is retried)."""
    with rt.sessions() as session:
        row = session.get(DataExportRow, export_id)
        shop_row = session.get(ShopRow, shop_id)
        if row is None or shop_row is None or row.shop_id != shop_id:
            return None
        shop = to_shop(shop_row, rt.config)
        request_id, customer_id, created = row.request_id, row.customer_id, row.created_at
    details = sending.profile(shop, rt.sessions, rt.clock())
    to = details.get("owner_email") or details.get("email")
    if not to:
        log.error("shop %s: data request %s exported, but no owner address is known: it waits on the dashboard",
                  shop_id, request_id)
        return None
    until = created + LINK_TTL
    msg = EmailMessage()
    msg["Subject"] = f"Customer data request {request_id or export_id}: the export is ready"
    msg["From"] = rt.config.mail_from
    msg["To"] = to
    msg["Date"] = format_datetime(rt.clock())
    msg["Message-ID"] = make_msgid(domain=to.rpartition("@")[2] or "localhost")
    msg.set_content(
        f"A customer data request for {shop.settings.get('name') or shop.domain} (request {request_id or '-'}, "
        f"customer {customer_id}) has been exported: everything Keepwell holds on this customer.\n\n"
        f"Download it (a JSON file) until {until:%d %B %Y %H:%M} UTC:\n"
        f"{download_url(rt.config, shop_id, export_id)}\n\n"
        f"After that, open Keepwell's dashboard (Privacy) to download it; exports are deleted "
        f"{EXPORT_RETENTION.days} days after the request.\n"
        "Send the customer what they asked for: the request reached you through your store.\n")
    mail.send(msg, rt.config.smtp_url)
    log.info("shop %s: data request %s sent to the shop owner", shop_id, request_id)
    return to


@bp.get("/privacy/exports/<token>")
def download(token: str):
    """The export a signed, unexpired link names."""
    edge = current_app.extensions["keepwell"]
    try:
        shop_id, export_id = _serializer(edge.config.secret_keys).loads(token, max_age=int(LINK_TTL.total_seconds()))
    except SignatureExpired:
        return _page("Link expired", "This download link has expired. Open Keepwell's dashboard (Privacy) to "
                                     "download the export."), 410
    except BadSignature:
        return _page("Link not valid", "This download link is not valid."), 404
    with edge.sessions() as session:
        row = session.get(DataExportRow, export_id)
        if row is None or row.shop_id != shop_id:
            return _page("Export gone", f"This export was deleted: exports are kept {EXPORT_RETENTION.days} days."), 410
        log.info("shop %s: data export %s downloaded by link", shop_id, export_id)
        return json_download(row)


def _page(title: str, text: str) -> str:
    return render_template_string(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>'
        '<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>{{ title }}</h1><p>{{ text }}</p>'
        '</body></html>', title=title, text=text)


# --- retention ---------------------------------------------------------------------------------------

def purge(rt, now: datetime | None = None) -> dict:
    """Delete exports past EXPORT_RETENTION and erase customers unchanged for the retention
    period (their unsubscribes stay). Idempotent; each shop's customers erased under its drain lock."""
    now = now or rt.clock()
    with rt.sessions.begin() as session:
        exports = session.execute(delete(DataExportRow).where(DataExportRow.created_at < now - EXPORT_RETENTION)).rowcount
    cutoff = now - timedelta(days=rt.config.retention_days)
    with rt.sessions() as session:
        quiet = session.execute(select(CustomerRow.shop_id, CustomerRow.customer_id)
                                .where(CustomerRow.updated_at < cutoff).limit(PURGE_BATCH)).all()
    by_shop: dict[str, list[str]] = {}
    for shop_id, customer_id in quiet:
        by_shop.setdefault(shop_id, []).append(customer_id)
    erased = 0
    for shop_id, customers in by_shop.items():
        lock = privacy._shop_lock(rt, shop_id)
        if not lock.acquire():
            continue  # busy: the next run takes them
        try:
            with rt.sessions.begin() as session:
                for customer_id in customers:
                    row = session.get(CustomerRow, (shop_id, customer_id))
                    if row is None or row.updated_at >= cutoff:
                        continue  # active again since
                    privacy.redact_customer(session, shop_id, customer_id, keep_unsubscribe=True)
                    erased += 1
        finally:
            lock.release()
    counts = {"exports": exports, "customers": erased, "more": len(quiet) == PURGE_BATCH}
    if exports or erased:
        log.info("retention: %s", counts)
    return counts
