"""`rules lint` renders every email a rule set can send, against a sample customer, with the same
sandbox and limits as a real send: a template that fails (an unknown variable, a template bomb, a
subject over 1 KB) is a lint problem naming its file and line, not a failed touch later."""
from __future__ import annotations

from plugin.engine.specs import CouponSpec, EmailSpec
from plugin.mail.preview import SAMPLE_CUSTOMER, SAMPLE_OCCASION, SAMPLE_SHOP, sample_coupon


def render_problems(ruleset, templates: dict[str, str], where_rule, where_template) -> list:
    """Problems from rendering each email action of ``ruleset``: ``where_rule(rule_id, action
    index)`` places a subject's problem, ``where_template(name, line, rule_id)`` a template's."""
    from plugin import mail

    problems = []
    referral_link = f"{SAMPLE_SHOP['url']}/discount/ANA-REF" if ruleset.settings.referral_prefix else None
    for rule in ruleset.rules:
        coupon = next((a for a in rule.actions if isinstance(a, CouponSpec)), None)
        for j, action in enumerate(rule.actions):
            if not isinstance(action, EmailSpec):
                continue
            context = mail.email_context(SAMPLE_CUSTOMER, sample_coupon(coupon) if coupon else None, SAMPLE_SHOP,
                                         "https://keepwell.example/unsubscribe/sample",
                                         referral_link, SAMPLE_OCCASION if rule.trigger.kind == "occasion" else None)
            for subject in (action.subject, "A plain subject"):  # the second one checks the body too
                try:
                    mail.render(action.template, subject, context, templates=templates)
                    break
                except mail.TemplateError as exc:
                    if not exc.template.startswith("subject of "):
                        problems.append(where_template(exc.template, exc.line or 1, rule.id, exc.message))
                        break
                    problems.append(where_rule(rule.id, j, f"subject: {exc.message}"))
    return sorted(set(problems))
