"""Forward the offer to the customer's email: the personal page's button, sent by the worker.

A transactional message the customer asked for, to the address on file (never one typed on the
page), once per page: the page claims ``forwarded_at`` when the button is pressed; the job
records the Message-ID before sending (a retry sends the same message) and an
``offer.forwarded`` answer after it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from rq import Retry

from plugin import mail
from plugin import sender as sending
from plugin.db import CustomerRow, PageRow
from plugin.pages.offers import offers
from plugin.pages.words import direction, language, words
from plugin.shops import rules_for

log = logging.getLogger("keepwell.pages")
TEMPLATES = Path(__file__).resolve().parent / "mail"
TEMPLATE = "offer_forward"
SENT = "offer.forwarded"


def enqueue(queue, shop_id: str, page_id: int) -> None:
    queue.enqueue("plugin.pages.forward.job", shop_id, page_id, job_id=f"{queue.name}-forward-{shop_id}-{page_id}",
                  retry=Retry(max=3, interval=[10, 60, 300]), result_ttl=300, failure_ttl=7 * 24 * 3600)


def job(shop_id: str, page_id: int) -> str:
    """RQ entry point (``keepwell worker``)."""
    from plugin.runtime import runtime

    return send(runtime(), shop_id, page_id)


def send(rt, shop_id: str, page_id: int) -> str:
    """Send the page's offers to the customer's email; what happened, in a word."""
    with rt.sessions() as session:
        row = session.get(PageRow, page_id)
        if row is None or row.shop_id != shop_id or row.revoked_at is not None:
            return "gone"
        if any(a.get("type") == SENT for a in row.answers or ()):
            return "already sent"
        shop = rt.shop(shop_id)
        crow = session.get(CustomerRow, (shop_id, row.customer_id))
        state = crow.state if crow else {}
        found = offers(session, shop, row.customer_id, row.touch, rt.clock()) if shop else []
        if shop is None or not state.get("email") or not found:
            log.info("shop %s: page %s: nothing to forward (no shop, address or offer)", shop_id, page_id)
            return "nothing to send"
        to = mail.recipient(state["email"])
        ruleset, _ = rules_for(session, shop_id)
        sender = sending.for_shop(rt, shop, ruleset)
        w = words(state.get("locale"))
        token = mail.unsubscribe_token(rt.config.secret_key, shop_id, row.customer_id)
        context = {"w": w, "offers": found, "lang": language(state.get("locale")), "dir": direction(state.get("locale")),
                   "shop": {"name": sender.name, "postal_address": sender.postal_address},
                   "subject_text": w["mail_subject"].format(shop=sender.name)}
        rendered = mail.render(TEMPLATE, "{{ subject_text }}", context, templates_dir=TEMPLATES)
        message = mail.build_message(rendered, to, sender.from_header, f"{row.touch}:page-forward",
                                     f"{rt.config.app_url}/unsubscribe/{token}", reply_to=sender.reply_to)
        row.forward_message_id = message["Message-ID"]
        session.commit()  # the message id is recorded before the send
        mail.send(message, rt.config.smtp_url)
        row.answers = [*(row.answers or ()), {"type": SENT, "at": rt.clock().isoformat(),
                                              "summary": ", ".join(o["code"] for o in found)[:200]}]
        session.commit()
    log.info("shop %s: page %s: offer forwarded to the customer's email", shop_id, page_id)
    return "sent"
