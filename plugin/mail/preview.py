"""Render a rule's email without sending it: a preview for the editor (any rule, a sample or a real
customer), and the check `simulate` runs on every email it counts, so a template that cannot
render shows up before the rule goes live."""
from __future__ import annotations

from datetime import datetime, timezone

from plugin.engine.actions import Coupon, Email, Sms
from plugin.engine.sms import segments
from plugin.engine.specs import CouponSpec, EmailSpec, MessageSpec

from plugin.mail.context import email_context
from plugin.mail.render import Rendered, TemplateError, render
from plugin.mail.text import render_sms

SAMPLE_CUSTOMER = {"first_name": "Ana", "last_name": "Silva", "email": "ana.silva@example.com", "locale": "en"}
SAMPLE_SHOP = {"name": "Sample Store", "url": "https://shop.example"}
SAMPLE_OCCASION = {"kind": "birthday", "title": "Birthday", "recipient": "Leo", "date": "2026-01-29"}
SAMPLE_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
SAMPLE_UNSUBSCRIBE = "https://keepwell.example/unsubscribe/sample"
#: What {{ page_url }} shows in previews and lint: as long as a real link (a 39-character token),
#: so a text message's length is counted right.
SAMPLE_PAGE = "https://keepwell.example/p/eSamplePersonalPage" + "0" * 20


def sample_coupon(spec: CouponSpec, now: datetime = SAMPLE_NOW) -> dict:
    """A rule's coupon spec as the engine hands it to an email (JSON form): with a code and an expiry date."""
    return {"code": f"{spec.code_prefix or 'SAMPLE'}-7K2Q9M", "title": spec.title, "discount_type": spec.discount_type,
            "value": str(spec.value), "currency": spec.currency or "USD", "minimum_subtotal": spec.minimum_subtotal,
            "expires_at": (now + spec.expires_in).isoformat() if spec.expires_in else None}


def _actions(rule, variant: str | None):
    if variant is None:
        return rule.actions
    for v in rule.variants:
        if v.name == variant:
            return v.actions
    raise LookupError(f"rule {rule.id} has no variant {variant!r} (it has {', '.join(v.name for v in rule.variants) or 'none'})")


def preview(rule, customer=None, templates: dict[str, str] | None = None, *, shop: dict | None = None,
            variant: str | None = None, occasion: dict | None = None) -> Rendered:
    """The email ``rule`` sends (its first, or ``variant``'s), rendered for ``customer`` (a
    CustomerState or a dict of first_name, last_name, email, locale; default: a sample customer)
    with a sample coupon and, on occasion rules, ``occasion`` or a sample one. ``templates``
    (file name -> text) are the shop's; None reads the shipped folder. LookupError when the rule
    sends no email; TemplateError when it cannot render."""
    actions = _actions(rule, variant)
    email = next((a for a in _emails(actions)), None)
    if email is None:
        raise LookupError(f"rule {rule.id} sends no email")
    coupon = next((a for a in actions if isinstance(a, CouponSpec)), None)
    if occasion is None and rule.trigger.kind == "occasion":
        occasion = SAMPLE_OCCASION
    context = email_context(customer if customer is not None else SAMPLE_CUSTOMER,
                            sample_coupon(coupon) if coupon else None, shop or SAMPLE_SHOP, SAMPLE_UNSUBSCRIBE,
                            f"{(shop or SAMPLE_SHOP).get('url')}/discount/ANA-REF", occasion, SAMPLE_PAGE)
    return render(email.template, email.subject, context, templates=templates)


def _emails(actions):
    """The emails among a rule's actions: its ``email`` actions and its messages' email parts."""
    for a in actions:
        if isinstance(a, EmailSpec):
            yield a
        elif isinstance(a, MessageSpec):
            yield from (spec for channel, spec in a.parts if channel == "email")


def touch_renderer(templates: dict[str, str] | None, shop: dict | None = None):
    """A function ``(decision, email action, customer state) -> None or the error`` that renders a
    touch's email as it would be sent, for `simulate` (``templates``: None reads the shipped folder);
    given a text (an sms action) it answers the segments the text goes out as, or the error."""
    shop = shop or SAMPLE_SHOP

    def check(decision, email: Email | Sms, state) -> str | int | None:
        coupon = next((a for a in decision.actions if isinstance(a, Coupon)), None)
        context = email_context(state, coupon.to_dict() if coupon else None, shop, SAMPLE_UNSUBSCRIBE,
                                f"{shop.get('url')}/discount/REF", email.occasion, SAMPLE_PAGE)
        try:
            if isinstance(email, Sms):  # a text: the segments it goes out as
                return segments(render_sms(email.template, context, templates)).parts
            render(email.template, email.subject, context, templates=templates)
        except TemplateError as exc:
            return str(exc)
        return None

    return check
