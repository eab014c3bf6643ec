"""SMS effects: the touch's text rendered with the rule set version that decided it, and sent
through the shop's provider (plugin.sms). Consent is checked at the last moment: a customer whose
current state has no SMS consent (they replied STOP after the touch was decided) is skipped, as is
one without a valid number (a recorded skip, never a retry loop). The segments the text goes out
as and their cost at the shop's price are recorded on the effect. A provider that says the
recipient unsubscribed there (Twilio's 21610) withdraws the customer's SMS consent through an
``sms-stop:`` consent event."""
from __future__ import annotations

import logging

from plugin import mail
from plugin import sender as sending
from plugin.db import CustomerRow
from plugin.effects.registry import Job, register
from plugin.engine.actions import Coupon, Sms
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import for_shop
from plugin.engine.sms import e164, segments
from plugin.shops import rules_for
from plugin.sms import SmsError, provider_for
from plugin.mail.text import render_sms
from plugin.page_links import lazy_page_url
from plugin.sms_consent import allows_sms

log = logging.getLogger("keepwell.effects")
STOP_PREFIX = "sms-stop:"


def send(job: Job, action: Sms, eff) -> None:
    """Send the touch's text; ``eff`` skipped (with the reason) when the customer cannot get it."""
    rt, session, shop, drow = job.rt, job.session, job.shop, job.decision
    crow = session.get(CustomerRow, (shop.id, drow.customer_id))
    customer = crow.state if crow else {}
    ruleset, templates = rules_for(session, shop.id, drow.ruleset_version)  # the version that decided
    settings = ruleset.settings.sms
    raw = customer.get("sms_phone") or action.to
    to = e164(raw, settings.region)
    why = ("customer has not opted in to SMS marketing" if not allows_sms(session, shop.id, drow.customer_id, customer) else
           "no phone number" if not raw else
           f"{raw!r} is not a valid phone number" if to is None else
           "the shop has no SMS provider (`keepwell shop sms`)" if not shop.sms else None)
    if why:
        eff.status, eff.error = "skipped", why
        return
    body = render_sms(action.template, _context(job, customer, ruleset, action), templates)
    parts = segments(body).parts
    eff.segments, eff.cost, eff.cost_currency = parts, settings.cost(parts), settings.price_currency
    try:
        eff.message_id = provider_for(shop.sms, rt.config).send(to, body)
    except SmsError as exc:
        if not (exc.invalid_number or exc.unsubscribed):
            raise
        eff.status, eff.error, eff.cost, eff.segments = "skipped", exc.message, None, None
        if exc.unsubscribed:
            withdraw_consent(rt, shop.id, drow.customer_id, to)


def _context(job: Job, customer: dict, ruleset, action: Sms) -> dict:
    rt, shop, drow = job.rt, job.shop, job.decision
    token = mail.unsubscribe_token(rt.config.secret_key, shop.id, drow.customer_id)
    code = referral_code(for_shop(ruleset, shop.referral_key).settings, shop.id, drow.customer_id)
    referral_link = job.connector.discount_link(shop, code) if code else None
    url = shop.settings.get("url") or (shop.domain if shop.domain.startswith("http") else f"https://{shop.domain}")
    sender = sending.for_shop(rt, shop, ruleset)  # the shop's name as its emails give it
    shop_info = {"name": sender.name, "url": url, "postal_address": sender.postal_address}
    coupon = job.made.get(Coupon.type)
    page = lazy_page_url(job.session, rt.config, shop.id, drow.customer_id, drow.key, drow.rule_id, "sms", rt.clock())
    return mail.email_context(customer, coupon.to_dict() if coupon else None, shop_info,
                              f"{rt.config.app_url}/unsubscribe/{token}", referral_link, action.occasion, page)


def withdraw_consent(rt, shop_id: str, customer_id: str, phone: str) -> None:
    """The customer's SMS consent is withdrawn through the normal path: a consent event."""
    now = rt.clock()
    rt.handoff.push_event(shop_id, {
        "id": f"{STOP_PREFIX}{customer_id}:{int(now.timestamp())}", "type": "customer.consent_changed",
        "shop": shop_id, "customer_id": customer_id, "occurred_at": now.isoformat(),
        "customer": {"id": customer_id, "sms_consent": False},
    })
    log.info("shop %s: customer %s unsubscribed from texts at the provider (%s)", shop_id, customer_id, phone)


register(Sms.type, run=send)
