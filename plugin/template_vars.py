"""Which variables an email template or subject uses, read from Jinja's syntax tree, checked
against what the email will see for the rule's trigger: a typo such as ``customer.frist_name``
is a lint problem with its line, column and a suggestion, not a failed send months later.

A rule without a coupon action has an empty ``coupon``, a rule without an occasion trigger an
empty ``occasion``: reading a field of either outside ``{% if coupon %}`` (or ``and``, ``... if
coupon else ...``, ``|default``) fails when the email renders, so that is reported too.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from jinja2 import TemplateAssertionError, TemplateSyntaxError, meta, nodes

from plugin.engine.conditions import did_you_mean
from plugin.mail.context import TEMPLATE_VARIABLES
from plugin.mail.sandbox import BoundedSandbox

_ENV = BoundedSandbox()


@dataclass(frozen=True)
class Scope:
    """What one email of one rule sees: a coupon or not, an occasion or not, and whether this is
    the subject (which cannot use ``subject``)."""

    coupon: bool
    occasion: bool
    trigger: str
    subject: bool = False

    def names(self) -> dict[str, tuple[str, ...] | None]:
        return {k: v for k, v in TEMPLATE_VARIABLES.items() if not (self.subject and k == "subject")}


@dataclass(frozen=True, order=True)
class Finding:
    """A problem in one template source: 1-based line and column, and the message."""

    line: int
    col: int
    message: str


def scope_for(rule, subject: bool = False) -> Scope:
    """The scope of ``rule``'s emails (variants included: they may change the coupon, not add one)."""
    t = rule.trigger
    trigger = t.event if t.kind == "event" else "{lapsed: ...}" if t.kind == "lapsed" else f"{{occasion: {t.occasion}}}"
    return Scope(coupon=any(a.type == "coupon" for a in rule.actions), occasion=t.kind == "occasion",
                 trigger=trigger, subject=subject)


def _names(node) -> set[str]:
    return {n.name for n in node.find_all(nodes.Name)} | ({node.name} if isinstance(node, nodes.Name) else set())


def _walk(node, guards: frozenset):
    """Every Name, Getattr, Getitem, Filter and Test node, with the names tested true around it."""
    if isinstance(node, nodes.If):
        yield from _walk(node.test, guards)
        negated = _names(node.test.node) if isinstance(node.test, nodes.Not) else set()
        for child in node.body:
            yield from _walk(child, guards | (set() if negated else _names(node.test)))
        for child in node.elif_:
            yield from _walk(child, guards)
        for child in node.else_:
            yield from _walk(child, guards | negated)
        return
    if isinstance(node, nodes.CondExpr):
        yield from _walk(node.test, guards)
        yield from _walk(node.expr1, guards | _names(node.test))
        if node.expr2 is not None:
            yield from _walk(node.expr2, guards)
        return
    if isinstance(node, nodes.And):
        yield from _walk(node.left, guards)
        yield from _walk(node.right, guards | _names(node.left))
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        yield node, guards
        for child in node.iter_child_nodes():
            yield from _walk(child, guards | (_names(node.node) if node.node is not None else set()))
        return
    if isinstance(node, (nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        yield node, guards
    for child in node.iter_child_nodes():
        yield from _walk(child, guards)


def _column(source: str, line: int, pattern: str) -> int:
    """The column of ``pattern``'s group on ``line``, inside a {{ }} or {% %} tag (not the text around)."""
    lines = source.split("\n")
    if 1 <= line <= len(lines):
        text = lines[line - 1]
        tags = [m.span() for m in re.finditer(r"\{[{%].*?(?:[}%]\}|$)", text)] or [(0, len(text))]
        for m in re.finditer(pattern, text):
            if any(a <= m.start() < b for a, b in tags):
                return m.start(m.lastindex or 0) + 1
    return 1


def _field_of(node) -> tuple[str, str] | None:
    """(variable, field) for ``x.field`` or ``x['field']`` on a plain name."""
    if not isinstance(node.node, nodes.Name):
        return None
    if isinstance(node, nodes.Getattr):
        return node.node.name, node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.node.name, node.arg.value
    return None


def _empty_here(var: str, scope: Scope) -> str | None:
    if var == "coupon" and not scope.coupon:
        return "coupon is empty here: this rule has no coupon action"
    if var == "occasion" and not scope.occasion:
        return f"occasion is empty here: this rule's trigger is {scope.trigger}, not an occasion"
    return None


def check_source(source: str, scope: Scope) -> list[Finding]:
    """The unknown variables, fields, filters and tests in one template ``source``, and the
    fields read from a variable that is empty for this rule outside a test for it."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError:
        return []  # reported as a syntax error
    known = scope.names()
    try:
        free = meta.find_undeclared_variables(tree)
    except TemplateAssertionError:  # an unknown filter or test, reported below: approximate the free names
        names = list(tree.find_all(nodes.Name))
        free = {n.name for n in names if n.ctx == "load"} - {n.name for n in names if n.ctx != "load"}
    out = set()
    for node, guards in _walk(tree, frozenset()):
        line = node.lineno
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in free and node.name not in known \
                and node.name not in _ENV.globals:
            col = _column(source, line, rf"(?<![\w.])({re.escape(node.name)})\b")
            if node.name == "subject" and scope.subject:
                message = "the subject cannot use {{ subject }} (it is the subject): use it in the email's body"
            else:
                message = (f"unknown variable {node.name!r}{did_you_mean(node.name, known)}; "
                           f"emails see {', '.join(known)}")
            out.add(Finding(line, col, message))
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
            pair = _field_of(node)
            if pair is None or pair[0] not in free or pair[0] not in known:
                continue
            var, name = pair
            col = _column(source, line, rf"\b{re.escape(var)}\s*(?:\.\s*|\[\s*['\"])({re.escape(name)})\b")
            fields = known[var]
            if fields is not None and name not in fields:
                close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
                hint = f" (did you mean '{var}.{close[0]}'?)" if close else ""
                out.add(Finding(line, col, f"unknown variable '{var}.{name}'{hint}; "
                                           f"{var} has {', '.join(f'{var}.{f}' for f in fields)}"))
            elif (empty := _empty_here(var, scope)) and var not in guards:
                out.add(Finding(line, col, f"{empty}, so '{var}.{name}' fails to render: "
                                           f"put it inside {{% if {var} %}}...{{% endif %}}"))
        elif isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            col = _column(source, line, rf"\|\s*({re.escape(node.name)})\b")
            out.add(Finding(line, col, f"unknown filter {node.name!r}{did_you_mean(node.name, _ENV.filters)}"))
        elif isinstance(node, nodes.Test) and node.name not in _ENV.tests:
            col = _column(source, line, rf"\bis\s+(?:not\s+)?({re.escape(node.name)})\b")
            out.add(Finding(line, col, f"unknown test {node.name!r}{did_you_mean(node.name, _ENV.tests)}"))
    return sorted(out)


def referenced(source: str) -> list[str]:
    """The templates ``source`` extends, includes or imports (by literal name)."""
    try:
        return [n for n in meta.find_referenced_templates(_ENV.parse(source)) if n]
    except TemplateSyntaxError:
        return []


def check_template(name: str, templates: dict[str, str], scope: Scope) -> list[tuple[str, Finding]]:
    """(file name, finding) for template ``name`` and every template it uses, in ``scope``."""
    return [(current, f) for current in sorted(uses(name, templates)) for f in check_source(templates[current], scope)]


def uses(name: str, templates: dict[str, str]) -> set[str]:
    """``name`` and every template it extends, includes or imports, through and through."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in templates:
            continue
        seen.add(current)
        todo += referenced(templates[current])
    return seen
