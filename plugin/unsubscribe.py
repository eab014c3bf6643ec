"""One-click unsubscribe (RFC 8058): the link in every email, signed per shop and customer."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, current_app, render_template_string

from plugin.consent import enqueue_write_back
from plugin.db import UnsubscribeRow
from plugin.engine.step import UNSUBSCRIBE_PREFIX
from plugin.mail import UnsubscribeTokenError, verify_unsubscribe_token

log = logging.getLogger("keepwell.unsubscribe")
bp = Blueprint("unsubscribe", __name__)

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1>{{ title }}</h1><p>{{ text }}</p>
{% if form %}<form method="post"><button type="submit" name="List-Unsubscribe" value="One-Click">Unsubscribe</button></form>{% endif %}
</body></html>"""


def _verify(token: str):
    edge = current_app.extensions["keepwell"]
    try:
        return verify_unsubscribe_token(edge.config.secret_keys, token)
    except UnsubscribeTokenError:
        return None


@bp.get("/unsubscribe/<token>")
def confirm(token: str):
    # A GET only asks: mail scanners follow links, and must not unsubscribe anyone.
    if _verify(token) is None:
        return render_template_string(_PAGE, title="Link not valid", text="This unsubscribe link is not valid.", form=False), 400
    return render_template_string(_PAGE, title="Unsubscribe", text="Stop receiving marketing emails from this shop?", form=True)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str):
    found = _verify(token)
    if found is None:
        return render_template_string(_PAGE, title="Link not valid", text="This unsubscribe link is not valid.", form=False), 400
    shop_id, customer_id = found
    unsubscribe_email(current_app.extensions["keepwell"], shop_id, customer_id, datetime.now(timezone.utc))
    return render_template_string(_PAGE, title="Unsubscribed", text="You will not receive marketing emails from this shop any more.", form=False)


def unsubscribe_email(edge, shop_id: str, customer_id: str, now: datetime) -> None:
    """Record the customer's email unsubscribe, pass it to the rules as a consent change, and
    write it back to the store (the one-click link and the personal page both end here)."""
    with edge.sessions.begin() as session:
        if session.get(UnsubscribeRow, (shop_id, customer_id)) is None:
            session.add(UnsubscribeRow(shop_id=shop_id, customer_id=customer_id, at=now))
    # Later decisions see the customer without consent: the change goes through the normal path.
    edge.handoff.push_event(shop_id, {
        "id": f"{UNSUBSCRIBE_PREFIX}{customer_id}:{int(now.timestamp())}", "type": "customer.consent_changed",
        "shop": shop_id, "customer_id": customer_id, "occurred_at": now.isoformat(),
        "customer": {"id": customer_id, "accepts_marketing": False},
    })
    # ... and the store hears of it, so a later sync or another app does not mail the customer either.
    enqueue_write_back(edge.handoff.queue, shop_id, customer_id)
    log.info("shop %s: customer %s unsubscribed", shop_id, customer_id)
