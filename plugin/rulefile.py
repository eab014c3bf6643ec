"""Load and lint rule files: safe YAML with line numbers, JSON Schema, then semantic checks.

Every problem is reported as ``file:line:col: [rule-id] message``. Loading is safe: standard
YAML tags only, a size limit, and a cap on nodes so alias-expansion bombs are rejected.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import jsonschema
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from plugin.engine.conditions import did_you_mean
from plugin.engine.fields import FIELDS, MONEY
from plugin.engine.moments import parse_date
from plugin.engine.ruleset import Problems, RuleSet, compile_ruleset
from plugin.errors import RuleError
from plugin.lint_problem import LintResult, Problem
from plugin.rule_yaml import Doc, YamlProblem, rule_positions
from plugin.rule_yaml import parse as parse_yaml

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
SCHEMA_PATH = RULES_DIR / "schema.json"
MAX_BYTES = 256 * 1024


@lru_cache(maxsize=1)
def _validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def _schema_message(err) -> tuple[tuple, str]:
    path = tuple(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
        name = extras[0] if extras else "?"
        what = "operator" if "exists" in allowed else "action" if "coupon" in allowed else "field"
        return path + (name,), f"unknown {what} {name!r}{did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}"
    if v == "required":
        return path, f"missing required field {err.message.split(chr(39))[1]!r}"
    if v == "enum":
        return path, f"{err.instance!r} is not one of {', '.join(map(str, err.validator_value))}{did_you_mean(err.instance, map(str, err.validator_value))}"
    if v == "pattern":
        what = err.schema.get("description") or f"must match {err.validator_value}"
        return path, f"{err.instance!r} is not valid here: {what}"
    if v in ("oneOf", "anyOf") and err.context:
        best = jsonschema.exceptions.best_match(err.context)
        if path and path[-1] == "trigger":
            return path, (f"bad trigger {err.instance!r}: write an event (e.g. order.paid), "
                          "{lapsed: 90d}, or {occasion: birthday, before: 7d}")
        return _schema_message(best)
    if v in ("minItems", "maxItems") and path:
        bound = "at least" if v == "minItems" else "at most"
        return path, f"{path[-1]} needs {bound} {err.validator_value} entries, got {len(err.instance)}"
    if v == "maxProperties" and isinstance(err.instance, dict):
        return path, f"expected exactly one key here, got {', '.join(map(str, err.instance))}"
    if v == "propertyNames":
        return path, f"{err.instance!r} is not a condition: use all, any, not or a field such as customer.orders_count"
    return path, err.message


def read_templates(templates_dir: Path) -> dict[str, str]:
    """Template file name -> text for every .html/.txt file in ``templates_dir``."""
    if not templates_dir.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(templates_dir.iterdir()) if p.suffix in (".html", ".txt")}


def template_names(templates: dict[str, str]) -> set[str]:
    """Templates usable in email actions (both NAME.html and NAME.txt exist), and NAME.sms for
    each SMS template NAME.sms.txt."""
    html = {n[:-5] for n in templates if n.endswith(".html")}
    text = {n[:-4] for n in templates if n.endswith(".txt")}
    return (html & text) | {n for n in text if n.endswith(".sms")}  # NAME.sms: an SMS template (NAME.sms.txt)


def _check_templates(where: str, templates: dict[str, str], names: set[str], problems: list[Problem]):
    env = SandboxedEnvironment()
    for name in sorted(names):
        for suffix in (".html", ".txt"):
            try:
                env.parse(templates[name + suffix])
            except TemplateSyntaxError as exc:
                problems.append(Problem(f"{where}/{name}{suffix}", exc.lineno or 1, 1, None, f"template syntax error: {exc.message}"))


def _check_subjects(docs: list[Doc], problems: list[Problem]):
    """Subjects are Jinja templates too: a syntax error must show at lint time, not at send time."""
    env = SandboxedEnvironment()
    for doc in docs:
        for i, rule in enumerate(doc.data.get("rules") or []):
            actions = rule.get("actions") if isinstance(rule, dict) else None
            for j, action in enumerate(actions if isinstance(actions, list) else []):
                email = action.get("email") if isinstance(action, dict) else None
                subject = email.get("subject") if isinstance(email, dict) else None
                if not isinstance(subject, str):
                    continue
                try:
                    env.parse(subject)
                except TemplateSyntaxError as exc:
                    line, col = doc.where(("rules", i, "actions", j, "email", "subject"))
                    problems.append(Problem(doc.file, line, col, doc.rule_id(("rules", i)), f"subject: template syntax error: {exc.message}"))


def _check_broken_rule(doc: Doc, index: int, rule, bad_paths, templates, problems: list[Problem]):
    """Report a schema-invalid rule's other problems too, so one lint run shows them all."""
    found = Problems()
    try:
        compile_ruleset([(doc.file, {"rules": [rule]})], templates, found)
    except Exception:  # the rule's shape is broken in ways the schema already reported
        pass
    for path, message, rule_id in found.items:
        rest = path[3:]
        if any(rest[:len(bad)] == bad or bad[:len(rest)] == rest for bad in bad_paths):
            continue
        line, col = doc.where(("rules", index) + rest)
        problems.append(Problem(doc.file, line, col, rule_id, message))


def lint(files, templates_dir: Path | None = None) -> LintResult:
    """Validate rule files as one rule set: (the RuleSet when there are no problems, problems),
    with ``.warnings``."""
    files = [Path(f) for f in files]
    templates_dir = templates_dir or (files[0].parent / "templates" if files else RULES_DIR / "templates")
    sources, problems = [], []
    for path in files:
        try:
            sources.append((str(path), path.read_bytes()))
        except OSError as exc:
            problems.append(Problem(str(path), 1, 1, None, f"cannot read: {exc.strerror}"))
    result = lint_sources(sources, read_templates(templates_dir), str(templates_dir), now=datetime.now(timezone.utc))
    problems = sorted(problems + result.problems)
    return LintResult(result.ruleset if not problems else None, problems, result.warnings)


def lint_sources(sources, templates: dict[str, str], templates_where: str = "templates",
                 now: datetime | None = None) -> LintResult:
    """Validate ``[(file name, bytes)]`` as one rule set against ``templates`` (file name -> text):
    ``(ruleset or None, problems)``, with ``.warnings`` (see LintResult). With ``now`` (a rule set
    being written, not one stored before), a dated trigger already past is a problem too."""
    problems: list[Problem] = []
    docs: list[Doc] = []
    for name, raw in sources:
        if len(raw) > MAX_BYTES:
            problems.append(Problem(name, 1, 1, None, f"file is {len(raw)} bytes; rule files are limited to {MAX_BYTES}"))
            continue
        try:
            doc = parse_yaml(raw.decode("utf-8"), name)
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 1, 1, None, f"not UTF-8 text: {exc.reason} at byte {exc.start}"))
            continue
        except YamlProblem as exc:
            problems.append(Problem(name, exc.line, exc.col, None, exc.message))
            continue
        if not isinstance(doc.data, dict):
            problems.append(Problem(name, 1, 1, None, "a rule file is a mapping with 'rules:' (and optionally 'settings:')"))
            continue
        docs.append(doc)

    schema_paths: dict[tuple[int, int], list[tuple]] = {}  # (doc, rule index) -> paths with schema errors
    bad_docs: set[int] = set()
    for n, doc in enumerate(docs):
        for err in _validator().iter_errors(doc.data):
            path, message = _schema_message(err)
            line, col = doc.where(path)
            problems.append(Problem(doc.file, line, col, doc.rule_id(path), message))
            if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
                schema_paths.setdefault((n, path[1]), []).append(path[2:])
            elif path[:1] != ("settings",):
                bad_docs.add(n)

    names = template_names(templates)
    first_seen: dict[str, str] = {}
    good = []  # (doc index, rule index, rule data) compiled together as the rule set
    for n, doc in enumerate(docs):
        if n in bad_docs:
            continue
        for i, rule in enumerate(doc.data.get("rules") or []):
            rid = rule.get("id") if isinstance(rule, dict) else None
            if isinstance(rid, str):
                if rid in first_seen:
                    line, col = doc.where(("rules", i, "id"))
                    problems.append(Problem(doc.file, line, col, rid, f"duplicate rule id {rid!r} (first defined in {first_seen[rid]})"))
                    continue
                first_seen[rid] = doc.file
            if (n, i) in schema_paths:
                _check_broken_rule(doc, i, rule, schema_paths[(n, i)], names, problems)
            else:
                good.append((n, i, rule))

    # One pseudo-document per file keeps settings; rule paths are mapped back to their file and index.
    documents, origin = [], []
    for n, doc in enumerate(docs):
        data = {"rules": [r for (m, _, r) in good if m == n]}
        if n not in bad_docs and "settings" in doc.data and not any(p.file == doc.file and p.rule_id is None for p in problems):
            data["settings"] = doc.data["settings"]
        documents.append((doc.file, data))
        origin.append([i for (m, i, _) in good if m == n])
    semantic = Problems()
    ruleset = compile_ruleset(documents, names, semantic)
    for path, message, rule_id in semantic.items:
        n, rest = path[0], list(path[1:])
        if rest[:1] == ["rules"] and len(rest) > 1:
            rest[1] = origin[n][rest[1]]
        line, col = docs[n].where(rest)
        # the engine's hint names the default folder: name the one actually read
        message = message.replace("(templates are rules/templates/", f"(templates are {templates_where}/")
        problems.append(Problem(docs[n].file, line, col, rule_id, message))
    _check_subjects(docs, problems)
    if now is not None:
        _check_past_dates(docs, problems, now)
    from plugin.template_lint import email_specs

    used = {a.template for r in (ruleset.rules if ruleset else ()) for a in email_specs(r.actions)}
    _check_templates(templates_where, templates, used, problems)
    sms_warnings: list[Problem] = []
    if ruleset is not None and not problems:
        from plugin.sms_lint import sms_problems
        from plugin.template_lint import email_problems

        problems += email_problems(docs, ruleset, templates, templates_where)
        found, sms_warnings = sms_problems(docs, ruleset, templates, templates_where)
        problems += found
    problems.sort()
    warnings = currency_warnings(sources) + sms_warnings
    if ruleset is not None and not problems:
        warnings += _rule_warnings(docs, ruleset)
    return LintResult(ruleset if not problems else None, problems, warnings)


def _check_past_dates(docs: list[Doc], problems: list[Problem], now: datetime) -> None:
    """A dated trigger whose moment has passed in every time zone (UTC-12 is the last) would
    never fire: an error, unless the rule is switched off."""
    now = now.astimezone(timezone.utc).replace(tzinfo=None)
    for rule_id, (doc, i) in rule_positions(docs).items():
        rule = doc.data["rules"][i]
        trigger = rule.get("trigger")
        if not isinstance(trigger, dict) or "date" not in trigger or rule.get("enabled") is False:
            continue
        try:
            moment = parse_date(trigger["date"])
        except ValueError:
            continue  # the rule set's compile reports it
        if moment.local(0) + timedelta(hours=12) < now:
            line, col = doc.where(("rules", i, "trigger", "date"))
            problems.append(Problem(doc.file, line, col, rule_id,
                                    f"{moment.describe()} has passed: choose a date ahead, make it yearly "
                                    "({yearly: 'MM-DD'}), or set enabled: false to keep the rule for the record"))


def _rule_warnings(docs: list[Doc], ruleset: RuleSet) -> list[Problem]:
    from plugin.lint_warnings import rule_warnings

    out = []
    for rule_id, (doc, i) in rule_positions(docs).items():
        rule = ruleset.by_id.get(rule_id)
        if rule is None:
            continue
        for w in rule_warnings(rule, doc.data["rules"][i]):
            line, col = doc.where(("rules", i) + w.path)
            out.append(Problem(doc.file, line, col, rule_id, f"warning: {w.message}"))
    return out


_NAMED_CURRENCY = re.compile(r"^\s*\d+(?:\.\d+)?\s*([A-Za-z]{3})\s*$")
_MONEY_KEYS = frozenset(name for name, f in FIELDS.items() if f.type == MONEY) | {"discount", "minimum_subtotal"}


def currency_warnings(sources, currency: str | None = None) -> list[Problem]:
    """Amounts that name a currency the shop does not use (``currency``, else the files'
    ``settings: currency``): such a condition never holds and such a coupon is refused.
    Warnings, not errors: the rule set is still valid."""
    docs = []
    for name, raw in sources:
        try:
            docs.append(parse_yaml(raw.decode("utf-8") if isinstance(raw, bytes) else raw, name))
        except (UnicodeDecodeError, YamlProblem):
            continue  # lint reports these
    if currency is None:
        currency = next((d.data["settings"].get("currency") for d in docs if isinstance(d.data, dict)
                         and isinstance(d.data.get("settings"), dict) and d.data["settings"].get("currency")), None)
    out = []
    for doc in docs:
        for path, text in _money_strings(doc.data, (), False):
            code = _NAMED_CURRENCY.match(text).group(1).upper()
            if currency and code == currency.upper():
                continue
            problem = (f"{text!r} names {code}, but the shop's currency is {currency.upper()}" if currency else
                       f"{text!r} names {code}: the rule then only works on {code} stores")
            line, col = doc.where(path)
            out.append(Problem(doc.file, line, col, doc.rule_id(path),
                               f"warning: {problem}; write the amount without a currency to mean the shop's"))
    return sorted(out)


def _money_strings(node, path, money):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _money_strings(v, path + (k,), money or k in _MONEY_KEYS)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _money_strings(v, path + (i,), money)
    elif money and isinstance(node, str) and _NAMED_CURRENCY.match(node):
        yield path, node


def rule_files(paths) -> list[Path]:
    """Expand directories into their *.yaml / *.yml files, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


def load_rules(path=RULES_DIR, templates_dir: Path | None = None) -> RuleSet:
    """The rule set in ``path`` (a directory or file); raises RuleError listing every problem."""
    files = rule_files([path])
    ruleset, problems = lint(files, templates_dir)
    if problems:
        raise RuleError(problems)
    return ruleset
