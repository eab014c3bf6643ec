"""`rules lint` checks every email a rule set can send: the variables each subject and template
uses (plugin.template_vars, per rule), then a render against a sample customer with the same
sandbox and limits as a real send: a template that fails (an unknown variable, a template bomb, a
subject over 1 KB) is a lint problem naming its file and line, not a failed touch later."""
from __future__ import annotations

from plugin.engine.specs import CouponSpec, EmailSpec, MessageSpec
from plugin.mail.preview import SAMPLE_CUSTOMER, SAMPLE_OCCASION, SAMPLE_PAGE, SAMPLE_SHOP, sample_coupon
from plugin.rule_yaml import rule_positions
from plugin.lint_problem import Problem


def email_specs(actions) -> list[EmailSpec]:
    """The emails among a rule's actions, a message's email part included."""
    out = []
    for a in actions:
        parts = [p for _, p in a.parts] if isinstance(a, MessageSpec) else [a]
        out += [p for p in parts if isinstance(p, EmailSpec)]
    return out


def render_problems(ruleset, templates: dict[str, str], where_rule, where_template) -> list:
    """Problems from rendering each email action of ``ruleset``: ``where_rule(rule_id, action
    index)`` places a subject's problem, ``where_template(name, line, rule_id)`` a template's."""
    from plugin import mail

    problems = []
    referral_link = f"{SAMPLE_SHOP['url']}/discount/ANA-REF" if ruleset.settings.referral_prefix else None
    for rule in ruleset.rules:
        coupon = next((a for a in rule.actions if isinstance(a, CouponSpec)), None)
        for j, action in enumerate(rule.actions):
            if isinstance(action, MessageSpec):  # its email, when it has one
                action = dict(action.parts).get("email")
            if not isinstance(action, EmailSpec):
                continue
            context = mail.email_context(SAMPLE_CUSTOMER, sample_coupon(coupon) if coupon else None, SAMPLE_SHOP,
                                         "https://keepwell.example/unsubscribe/sample",
                                         referral_link, SAMPLE_OCCASION if rule.trigger.kind == "occasion" else None,
                                         SAMPLE_PAGE)
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


def email_problems(docs, ruleset, templates: dict[str, str], templates_where: str) -> list:
    """Every subject and template a rule set's emails use: unknown variables (by their syntax
    tree), then what still fails when rendered for a sample customer."""
    found = variable_problems(docs, ruleset, templates, templates_where)
    return found + _unexplained(_render_all(docs, ruleset, templates, templates_where), found, templates, templates_where)


def _subject_paths(rule):
    """(YAML path below the rule, email action) for the rule's emails and each variant's own."""
    for j, action in enumerate(rule.actions):
        if action.type == "email":
            yield ("actions", j, "email", "subject"), action
    for k, variant in enumerate(rule.variants):
        for action in variant.actions:
            if action.type == "email":
                yield ("variants", k, "email", "subject"), action


def variable_problems(docs, ruleset, templates: dict[str, str], templates_where: str):
    """Unknown template variables (and fields of a variable this rule leaves empty) in every
    subject and template a rule's emails use, checked in that rule's scope."""
    from plugin.template_vars import check_source, check_template, scope_for

    placed, problems, seen = rule_positions(docs), [], set()
    for rule in ruleset.rules:
        doc, i = placed[rule.id]
        subjects, names = set(), set()
        for path, action in _subject_paths(rule):
            if action.subject not in subjects:
                subjects.add(action.subject)
                line, col = doc.where(("rules", i) + path)
                for f in check_source(action.subject, scope_for(rule, subject=True)):
                    fcol = _subject_column(doc, line, col, action.subject, f) if f.line == 1 else 1
                    problems.append(Problem(doc.file, line + f.line - 1, fcol, rule.id, f"subject: {f.message}"))
            for name in (action.template + ".html", action.template + ".txt"):
                if name in names:
                    continue
                names.add(name)
                for file, f in check_template(name, templates, scope_for(rule)):
                    if (file, f) not in seen:
                        seen.add((file, f))
                        problems.append(Problem(f"{templates_where}/{file}", f.line, f.col, rule.id, f.message))
    return problems


def _unexplained(rendered: list[Problem], found: list[Problem], templates, templates_where: str) -> list[Problem]:
    """The render problems that a variable problem (in the subject, the template or one it uses)
    does not already explain."""
    from plugin.template_vars import uses

    subjects = {p.rule_id for p in found if p.message.startswith("subject:")}
    files = {p.file.removeprefix(templates_where + "/") for p in found if not p.message.startswith("subject:")}
    out = []
    for p in rendered:
        if p.message.startswith("subject:"):
            if p.rule_id not in subjects:
                out.append(p)
        elif not uses(p.file.removeprefix(templates_where + "/"), templates) & files:
            out.append(p)
    return out


def _subject_column(doc, line: int, col: int, subject: str, finding) -> int:
    """The finding's column in the YAML line, when the subject is written there as is."""
    lines = doc.text.split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    at = text.find(subject.split("\n")[0], col - 1)
    return at + finding.col if at >= 0 else col


def _render_all(docs, ruleset, templates: dict[str, str], templates_where: str):

    placed = {}  # rule id -> (doc, index in its file)
    for doc in docs:
        for i, rule in enumerate(doc.data.get("rules") or []):
            if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                placed.setdefault(rule["id"], (doc, i))

    def where_rule(rule_id, j, message):
        doc, i = placed[rule_id]
        line, col = doc.where(("rules", i, "actions", j, "email", "subject"))
        return Problem(doc.file, line, col, rule_id, message)

    def where_template(name, line, rule_id, message):
        return Problem(f"{templates_where}/{name}", line, 1, rule_id, f"renders with an error: {message}")

    return render_problems(ruleset, templates, where_rule, where_template)
