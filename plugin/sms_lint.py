"""`rules lint` checks every text message a rule set can send: each SMS template is rendered for a
sample customer with the same sandbox as a real send (an unknown variable or a syntax error is a
problem at its file, line and column with a did-you-mean, as in emails), and its length is counted in segments as the provider bills them:
above WARN_SEGMENTS a warning with the count and the price, above MAX_SEGMENTS a problem."""
from __future__ import annotations

from collections.abc import Iterator

from plugin.engine.sms import segments
from plugin.engine.specs import CouponSpec, MessageSpec, SmsSpec
from plugin.lint_problem import Problem
from plugin.mail.preview import SAMPLE_CUSTOMER, SAMPLE_OCCASION, SAMPLE_PAGE, SAMPLE_SHOP, SAMPLE_UNSUBSCRIBE, sample_coupon
from plugin.rule_yaml import rule_positions

WARN_SEGMENTS, MAX_SEGMENTS = 3, 10


def sms_specs(rule) -> Iterator[tuple[tuple, SmsSpec]]:
    """(YAML path below the rule, SMS spec) for each text a rule can send."""
    for j, action in enumerate(rule.actions):
        if isinstance(action, SmsSpec):
            yield ("actions", j, "sms", "template"), action
        elif isinstance(action, MessageSpec):
            for channel, part in action.parts:
                if isinstance(part, SmsSpec):
                    yield ("actions", j, "message", channel, "template"), part


def sample_text(rule, spec: SmsSpec, templates: dict[str, str], customer: dict | None = None) -> str:
    """The rule's text for a sample (or the given) customer; plugin.mail.TemplateError when it fails."""
    from plugin import mail
    from plugin.mail.text import render_sms

    coupon = next((a for a in rule.actions if isinstance(a, CouponSpec)), None)
    context = mail.email_context(customer or SAMPLE_CUSTOMER, sample_coupon(coupon) if coupon else None, SAMPLE_SHOP,
                                 SAMPLE_UNSUBSCRIBE, f"{SAMPLE_SHOP['url']}/discount/ANA-REF",
                                 SAMPLE_OCCASION if rule.trigger.kind == "occasion" else None, SAMPLE_PAGE)
    return render_sms(spec.template, context, templates)


def sms_problems(docs, ruleset, templates: dict[str, str], templates_where: str) -> tuple[list, list]:
    """(problems, warnings) of every text the rule set can send."""
    from plugin import mail
    from plugin.mail.text import template_file
    from plugin.template_vars import check_template, scope_for

    problems, warnings = [], []
    price = ruleset.settings.sms
    for rule_id, (doc, i) in rule_positions(docs).items():
        rule = ruleset.by_id.get(rule_id)
        for path, spec in sms_specs(rule) if rule is not None else ():
            # unknown variables first, by the template's syntax tree
            findings = check_template(template_file(spec.template), templates, scope_for(rule))
            problems += [Problem(f"{templates_where}/{file}", f.line, f.col, rule_id, f.message) for file, f in findings]
            if findings:
                continue
            try:
                text = sample_text(rule, spec, templates)
            except mail.TemplateError as exc:
                problems.append(Problem(f"{templates_where}/{exc.template}", exc.line or 1, 1, rule_id, exc.message))
                continue
            s = segments(text)
            line, col = doc.where(("rules", i) + path)
            said = (f"{template_file(spec.template)} is {s.parts} SMS segments for a sample customer "
                    f"({s.units} {s.encoding} units, {70 if s.encoding == 'UCS-2' else 160} fit in one)")
            if s.parts > MAX_SEGMENTS:
                problems.append(Problem(doc.file, line, col, rule_id, f"{said}; at most {MAX_SEGMENTS}: shorten it"))
            elif s.parts > WARN_SEGMENTS:
                warnings.append(Problem(doc.file, line, col, rule_id,
                                        f"warning: {said}, {price.cost(s.parts)} {price.price_currency} per text"))
    return problems, warnings
