"""Email effects: the touch's message rendered with the rule set version that decided it, and sent.

The message id is in the ledger before the send. A customer who unsubscribed, or of whom no
address is known, is skipped; an address that is not exactly one valid address refuses the whole
touch before any effect (``check``).
"""
from __future__ import annotations

from plugin import mail
from plugin import sender as sending
from plugin.db import CustomerRow, UnsubscribeRow
from plugin.effects.registry import Job, register
from plugin.engine.actions import Coupon, Email
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import for_shop
from plugin.page_links import lazy_page_url
from plugin.shops import rules_for


def _customer(job: Job, action: Email) -> tuple[dict, str | None]:
    crow = job.session.get(CustomerRow, (job.shop.id, job.decision.customer_id))
    customer = crow.state if crow else {}
    return customer, customer.get("email") or action.to


def check(job: Job, action: Email) -> str | None:
    """Why the email could never be sent to the address we hold, or None."""
    _, to = _customer(job, action)
    if to:
        try:
            mail.recipient(to)
        except mail.AddressError as exc:
            return str(exc)
    return None


def send(job: Job, action: Email, eff) -> None:
    """Send the touch's email; ``eff`` skipped when the customer cannot be emailed."""
    rt, session, shop, drow = job.rt, job.session, job.shop, job.decision
    if session.get(UnsubscribeRow, (shop.id, drow.customer_id)) is not None:
        eff.status, eff.error = "skipped", "customer unsubscribed"
        return
    customer, to = _customer(job, action)
    if not to:
        eff.status, eff.error = "skipped", "no email address"
        return
    to = mail.recipient(to)
    ruleset, templates = rules_for(session, shop.id, drow.ruleset_version)  # the version that decided
    token = mail.unsubscribe_token(rt.config.secret_key, shop.id, drow.customer_id)
    unsubscribe_url = f"{rt.config.app_url}/unsubscribe/{token}"
    code = referral_code(for_shop(ruleset, shop.referral_key).settings, shop.id, drow.customer_id)
    referral_link = job.connector.discount_link(shop, code) if code else None
    sender = sending.for_shop(rt, shop, ruleset)
    shop_info = {"name": sender.name, "url": shop.settings.get("url") or _store_url(shop),
                 "postal_address": sender.postal_address}
    coupon = job.made.get(Coupon.type)
    page = lazy_page_url(session, rt.config, shop.id, drow.customer_id, drow.key, drow.rule_id, "email", rt.clock())
    context = mail.email_context(customer, coupon.to_dict() if coupon else None, shop_info, unsubscribe_url,
                                 referral_link, action.occasion, page)
    rendered = mail.with_postal_address(mail.render(action.template, action.subject, context, templates=templates),
                                        sender.postal_address)
    message = mail.build_message(rendered, to, sender.from_header, action.key, unsubscribe_url,
                                 reply_to=sender.reply_to)
    eff.message_id = message["Message-ID"]
    session.commit()  # the message id is in the ledger before the send
    mail.send(message, rt.config.smtp_url)


def _store_url(shop) -> str:
    return shop.domain if shop.domain.startswith("http") else f"https://{shop.domain}"


register(Email.type, run=send, check=check)
