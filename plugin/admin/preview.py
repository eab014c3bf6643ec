"""A rule's email as a customer would get it, rendered through the same mail code the effects
use (templates of the shop's stored rule set, the sender's footer) but with a preview coupon
code: nothing is issued in the store and nothing is written to the ledger."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from plugin import mail
from plugin.engine.specs import CouponSpec, EmailSpec
from plugin.mail.preview import SAMPLE_PAGE

SAMPLE_CUSTOMERS = {
    "ltr": {"first_name": "Alex", "last_name": "Sample", "email": "alex@example.com", "locale": "en"},
    "rtl": {"first_name": "נועה", "last_name": "כהן", "email": "noa@example.com", "locale": "he"},
}


@dataclass(frozen=True)
class Preview:
    rule_id: str
    subject: str
    html: str
    text: str
    coupon: str | None


def _coupon(action: CouponSpec, code: str, now: datetime, currency: str | None) -> dict:
    minimum = action.minimum_subtotal
    return {"code": code, "title": action.title or code, "discount_type": action.discount_type,
            "value": action.value,
            "currency": None if action.discount_type == "percent" else action.currency or currency,
            "expires_at": now + action.expires_in if action.expires_in else None,
            "minimum_subtotal": ({"amount": minimum.amount, "currency": minimum.currency or currency}
                                 if minimum else None)}


def with_direction(html: str, direction: str) -> str:
    """The email's HTML laid out ``direction`` (rtl/ltr), whatever its own <html> says: the
    merchant sees how the text reads in either direction."""
    tag = re.search(r"<html\b[^>]*>", html, re.I)
    if tag is None:
        return f'<div dir="{direction}">{html}</div>'
    opened = re.sub(r"""\sdir=("[^"]*"|'[^']*'|\S+)""", "", tag.group(0)[:-1]) + f' dir="{direction}">'
    return html[:tag.start()] + opened + html[tag.end():]


def render_rule_email(ruleset, templates: dict[str, str], rule_id: str, customer: dict, shop: dict,
                      now: datetime, unsubscribe_url: str, referral_link: str | None = None) -> Preview:
    """Render ``rule_id``'s email for ``customer`` (a stored state or a sample); TemplateError
    when the template fails, LookupError when the rule sends no email."""
    rule = ruleset.by_id.get(rule_id)
    if rule is None:
        raise LookupError(f"there is no rule {rule_id!r}")
    actions = rule.variants[0].actions if rule.variants else rule.actions
    email = next((a for a in actions if isinstance(a, EmailSpec)), None)
    if email is None:
        raise LookupError(f"{rule.name} sends no email")
    coupon_action = next((a for a in actions if isinstance(a, CouponSpec)), None)
    coupon = None
    if coupon_action is not None:
        prefix = "REFERRAL" if coupon_action.referral else coupon_action.code_prefix or "KEEPWELL"
        coupon = _coupon(coupon_action, f"{prefix}-PREVIEW", now, ruleset.settings.currency)
    occasion = None
    if rule.trigger.kind == "occasion":
        kind = rule.trigger.occasion
        occasion = {"kind": kind, "title": kind.replace("_", " ").capitalize(), "recipient": None,
                    "date": (now + (rule.trigger.before or timedelta(0))).date().isoformat()}
    context = mail.email_context(customer, coupon, shop, unsubscribe_url, referral_link, occasion, SAMPLE_PAGE)
    rendered = mail.with_postal_address(mail.render(email.template, email.subject, context, templates=templates),
                                        shop.get("postal_address"))
    return Preview(rule_id, rendered.subject, rendered.html, rendered.text, coupon and coupon["code"])
