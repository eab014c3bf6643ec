"""Compile validated rule documents into an immutable RuleSet the engine evaluates.

Compiling is also the semantic check: every problem is reported with the path of the node
that caused it, so the rule-file linter can point at file, line and rule.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from plugin.engine.specs import SPECS, Spec
from plugin.engine.survey import Survey, parse as parse_survey
from plugin.engine.conditions import ConditionProblem, Group, Leaf, Path, compile_condition, data_path, did_you_mean
from plugin.engine.moments import Moment, parse_moment, with_window
from plugin.engine.occasions import field_names
from plugin.engine.triggers import PROFILE_OCCASIONS, TRIGGER_EVENTS, suggest_trigger
from plugin.engine.sms import SmsSettings, parse_settings as parse_sms_settings
from plugin.engine.values import parse_duration
from plugin.events import CUSTOM_PREFIX, Money, is_custom

#: Yearly dates a rule can remind of: the customer's own, ones they told us at checkout
#: (``captured``), and the day of their first order.
OCCASIONS = PROFILE_OCCASIONS + ("captured", "first_order_anniversary")
SIGNAL_TARGETS = ("referrer",)


@dataclass(frozen=True)
class Trigger:
    kind: str  # event | lapsed | occasion | moment
    event: str | None = None
    after: timedelta | None = None  # lapsed: time since the last paid order
    occasion: str | None = None
    before: timedelta = timedelta(0)  # occasion: how long before the date
    kinds: frozenset[str] = frozenset()  # captured occasions: only these kinds (empty: any)
    moment: Moment | None = None  # a dated or yearly trigger: when, and the send window


@dataclass(frozen=True)
class Variant:
    name: str
    weight: int
    actions: tuple[Spec, ...]  # specs (plugin.engine.specs)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    trigger: Trigger
    condition: Leaf | Group | None
    actions: tuple[Spec, ...]  # specs (plugin.engine.specs)
    delay: timedelta | None = None
    priority: int = 0
    holdout: Decimal = Decimal(0)  # percent of customers held out
    once_per_customer: bool = False
    cooldown: timedelta | None = None
    enabled: bool = True
    source: str = ""
    variants: tuple[Variant, ...] = ()  # A/B variants: each customer gets one, by weight
    survey: Survey | None = None  # the question its touches' personal pages ask
    marketing: bool = field(init=False)  # any coupon or email action: needs consent

    def __post_init__(self) -> None:
        object.__setattr__(self, "marketing", any(a.marketing for a in self.actions))


@dataclass(frozen=True)
class FrequencyCap:
    touches: int
    per: timedelta
    when_capped: str  # skip | defer


#: Referral codes of the earlier, unkeyed format count on orders placed before this time.
LEGACY_REFERRAL_CODES_UNTIL = datetime(2027, 4, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Settings:
    frequency_cap: FrequencyCap | None = None
    referral_prefix: str = "REF"
    on_import: str = "quiet"  # quiet | catch_up: what an imported past's due timers do
    catch_up_over: timedelta = timedelta(days=7)
    referral_key: str = ""  # the shop's secret referral key: set per shop by the worker, never in rule files
    referral_legacy_until: datetime | None = LEGACY_REFERRAL_CODES_UNTIL
    #: who the emails come from: name, address, reply_to, postal_address (each optional)
    sender: tuple[tuple[str, str], ...] = ()
    currency: str | None = None  # the shop's: amounts written without a currency mean this one
    occasion_fields: dict[str, tuple[str, ...]] = field(default_factory=lambda: field_names())  # checkout field names per occasion part
    sms: SmsSettings = SmsSettings()  # quiet hours, price per segment, default channel order


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    settings: Settings = Settings()
    version: str = ""
    by_event: dict[str, tuple[Rule, ...]] = field(default_factory=dict)  # event type -> rules, highest priority first
    by_id: dict[str, Rule] = field(default_factory=dict)
    lapse_rules: tuple[Rule, ...] = ()  # enabled rules with a lapsed trigger
    occasion_rules: tuple[Rule, ...] = ()  # enabled rules with an occasion trigger
    moment_rules: tuple[Rule, ...] = ()  # enabled rules with a dated or yearly trigger


class Problems:
    """Collects (path, message) pairs; ``path`` starts with the document's index."""

    def __init__(self) -> None:
        self.items: list[tuple[Path, str, str | None]] = []

    def add(self, path: Iterable[Any], message: str, rule_id: str | None = None) -> None:
        self.items.append((tuple(path), message, rule_id))


def _duration(value: object, path: Path, problems: Problems, rule_id: str | None, name: str) -> timedelta | None:
    try:
        d = parse_duration(value)
    except ValueError as exc:
        problems.add(path, f"{name}: {exc}", rule_id)
        return None
    if d <= timedelta(0):
        problems.add(path, f"{name} must be longer than zero", rule_id)
        return None
    return d


def _event_trigger(value: object, path: Path, problems: Problems, rule_id: str) -> Trigger | None:
    if isinstance(value, str) and value.startswith(CUSTOM_PREFIX):
        if not is_custom(value):
            problems.add(path, f"bad custom event {value!r}: write custom. and a name of lower case letters, digits, "
                               "'_', '.' or '-', e.g. custom.heatwave", rule_id)
            return None
        return Trigger("event", event=value)
    if value not in TRIGGER_EVENTS:
        problems.add(path, f"unknown trigger event {value!r}{suggest_trigger(value)}", rule_id)
        return None
    return Trigger("event", event=str(value))


def _window(doc: dict[str, Any], trigger: Trigger | None, path: Path, problems: Problems, rule_id: str) -> Trigger | None:
    """The trigger with the rule's send ``window`` (``plugin.engine.moments``)."""
    if "window" not in doc:
        return trigger
    if trigger is not None and trigger.moment is None:
        problems.add(path, "window only applies to a dated or yearly trigger ({date: ...} or {yearly: ...})", rule_id)
        return None
    moment = with_window(trigger.moment if trigger and trigger.moment else Moment(), doc["window"], path,
                         lambda p, message: problems.add(p, message, rule_id))
    return replace(trigger, moment=moment) if moment and trigger else None


def _trigger(value: str | dict[str, Any], path: Path, problems: Problems, rule_id: str) -> Trigger | None:
    if isinstance(value, str) or "event" in value:
        return _event_trigger(value if isinstance(value, str) else value["event"],
                              path if isinstance(value, str) else path + ("event",), problems, rule_id)
    if "date" in value or "yearly" in value:
        moment = parse_moment(value, path, lambda p, message: problems.add(p, message, rule_id))
        return Trigger("moment", moment=moment) if moment else None
    if "lapsed" in value:
        after = _duration(value["lapsed"], path + ("lapsed",), problems, rule_id, "lapsed")
        return Trigger("lapsed", after=after) if after else None
    occasion = value.get("occasion")
    if occasion not in OCCASIONS:
        problems.add(path + ("occasion",), f"unknown occasion {occasion!r}{did_you_mean(occasion, OCCASIONS)}", rule_id)
        return None
    before = timedelta(0)
    if "before" in value:
        try:
            before = parse_duration(value["before"])
        except ValueError as exc:
            problems.add(path + ("before",), f"before: {exc}", rule_id)
            return None
        if before > timedelta(days=366):
            problems.add(path + ("before",), "before can be at most 366d: an occasion comes round every year", rule_id)
            return None
    kinds = value.get("kind")
    if kinds is not None and occasion != "captured":
        problems.add(path + ("kind",), "kind only applies to {occasion: captured}", rule_id)
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = frozenset(str(k).strip().lower().replace(" ", "_") for k in kinds or ())
    return Trigger("occasion", occasion=occasion, before=before, kinds=kinds)


def _action(item: dict[str, Any], path: Path, problems: Problems, rule_id: str,
            templates: Collection[str] | None) -> Spec | None:
    """The typed spec of one rule action (``plugin.engine.actions``); None when it has problems."""
    (kind, value), = item.items()
    return SPECS[kind].parse(value, path + (kind,), lambda p, message: problems.add(p, message, rule_id), rule_id,
                             templates)


def _rule(doc: dict[str, Any], path: Path, problems: Problems, templates: Collection[str] | None,
          source: str) -> Rule | None:
    rule_id = doc["id"]
    trigger = _window(doc, _trigger(doc["trigger"], path + ("trigger",), problems, rule_id), path + ("window",),
                      problems, rule_id)
    condition = None
    if "when" in doc:
        try:
            condition = compile_condition(doc["when"], path + ("when",))
        except ConditionProblem as exc:
            problems.add(exc.path, exc.message, rule_id)
    delay = _duration(doc["delay"], path + ("delay",), problems, rule_id, "delay") if "delay" in doc else None
    holdout = Decimal(0)
    if "holdout" in doc:
        raw = doc["holdout"]
        try:
            holdout = Decimal(raw) if isinstance(raw, int) else Decimal(str(raw).strip().rstrip("%").strip() or "x")
            if not 0 <= holdout < 100:
                raise ValueError(f"holdout {raw!r} must be at least 0% and below 100%")
        except (ValueError, ArithmeticError) as exc:
            problems.add(path + ("holdout",), str(exc) if isinstance(exc, ValueError) else f"bad holdout {raw!r}: write e.g. '10%'", rule_id)
    limit = doc.get("limit", {})
    cooldown = None
    if "cooldown" in limit:
        cooldown = _duration(limit["cooldown"], path + ("limit", "cooldown"), problems, rule_id, "cooldown")
    actions = tuple(_action(a, path + ("actions", i), problems, rule_id, templates) for i, a in enumerate(doc["actions"]))
    kinds = [a.type for a in actions if a is not None]
    marketing = any(a.marketing for a in actions if a is not None)
    message = next((k for k in kinds if k in ("email", "sms", "message")), None)
    if message and "coupon" in kinds and kinds.index(message) < kinds.index("coupon"):
        problems.add(path + ("actions",), f"the {message} comes before the coupon it should show; list the coupon first", rule_id)
    if "signal" in kinds and marketing:
        problems.add(path + ("actions",), "a signal rule only passes the event on; put coupons and emails in the rule that receives it", rule_id)
    custom = trigger is not None and trigger.kind == "event" and is_custom(trigger.event)
    if condition is not None and not custom and (where := data_path(doc["when"], path + ("when",))):
        problems.add(where, "event.data is what your own events carry: use it with trigger: {event: custom.NAME}", rule_id)
    if delay is not None and trigger is not None and trigger.kind != "event":
        problems.add(path + ("delay",), f"delay only applies to event triggers; a {trigger.kind} trigger already fires at its own time", rule_id)
    if holdout and not marketing:
        problems.add(path + ("holdout",), "holdout only applies to rules with a coupon or email action", rule_id)
    variants = _variants(doc, path, problems, rule_id, templates)
    survey = parse_survey(doc["survey"], path + ("survey",), lambda p, m: problems.add(p, m, rule_id),
                          rule_id) if "survey" in doc else None
    if trigger is None or any(a is None for a in actions) or ("survey" in doc and survey is None):
        return None
    return Rule(
        id=rule_id,
        name=doc.get("name", rule_id),
        trigger=trigger,
        condition=condition,
        actions=tuple(a for a in actions if a is not None),
        delay=delay,
        priority=doc.get("priority", 0),
        holdout=holdout,
        once_per_customer=limit.get("once_per_customer", False),
        cooldown=cooldown,
        enabled=doc.get("enabled", True),
        source=source,
        variants=variants,
        survey=survey,
    )


def _variants(doc: dict[str, Any], path: Path, problems: Problems, rule_id: str,
              templates: Collection[str] | None) -> tuple[Variant, ...]:
    """Each variant is the rule's actions with its coupon and/or email settings replaced."""
    out, names = [], set()
    for i, v in enumerate(doc.get("variants", ())):
        vpath = path + ("variants", i)
        if v["name"] in names:
            problems.add(vpath + ("name",), f"duplicate variant name {v['name']!r}", rule_id)
            continue
        names.add(v["name"])
        items = [dict(a) for a in doc["actions"]]
        for kind in ("coupon", "email"):
            if kind not in v:
                continue
            index = next((n for n, a in enumerate(items) if kind in a), None)
            if index is None:
                problems.add(vpath + (kind,), f"the variant changes the {kind}, but the rule has no {kind} action", rule_id)
                continue
            items[index] = {kind: {**items[index][kind], **v[kind]}}
        actions = tuple(_action(a, vpath, problems, rule_id, templates) for a in items)
        out.append(Variant(v["name"], v.get("weight", 1), tuple(a for a in actions if a is not None)))
    return tuple(out)


def _settings(doc: dict[str, Any], path: Path, problems: Problems) -> Settings:
    cap = None
    if fc := doc.get("frequency_cap"):
        per = _duration(fc["per"], path + ("frequency_cap", "per"), problems, None, "per")
        if per is not None and per > timedelta(days=366):
            problems.add(path + ("frequency_cap", "per"), "per can be at most 366d (touches are remembered for a year)")
            per = None
        cap = FrequencyCap(fc["touches"], per, fc.get("when_capped", "skip")) if per else None
    over = Settings.catch_up_over
    if "catch_up_over" in doc:
        over = _duration(doc["catch_up_over"], path + ("catch_up_over",), problems, None, "catch_up_over") or over
    sender = tuple(sorted((k, " ".join(v.split())) for k, v in (doc.get("sender") or {}).items()))
    currency = doc.get("currency")
    return Settings(frequency_cap=cap, referral_prefix=doc.get("referral_prefix", "REF").upper(),
                    on_import=doc.get("on_import", "quiet"), catch_up_over=over, sender=sender,
                    currency=currency.upper() if currency else None,
                    occasion_fields=field_names(doc.get("occasion_fields")),
                    sms=parse_sms_settings(doc.get("sms") or {}, path + ("sms",), problems.add))


def for_shop(rules: RuleSet, referral_key: str) -> RuleSet:
    """``rules`` as one shop runs them: with that shop's referral key (compiled rule sets are shared)."""
    if rules.settings.referral_key == referral_key:
        return rules
    return replace(rules, settings=replace(rules.settings, referral_key=referral_key))


def compile_ruleset(documents: Sequence[tuple[str, dict[str, Any]]], templates: Collection[str] | None = None,
                    problems: Problems | None = None) -> RuleSet | None:
    """Compile schema-valid documents ``[(source, data), ...]``; None when problems were found.

    Problem paths start with the document index. ``templates`` is the set of known email
    template names (None skips that check).
    """
    problems = problems if problems is not None else Problems()
    rules: list[Rule] = []
    settings: Settings | None = None
    seen: dict[str, str] = {}
    for n, (source, data) in enumerate(documents):
        if "settings" in data:
            if settings is not None:
                problems.add((n, "settings"), "settings are defined more than once in this rule set; keep one settings block")
            settings = _settings(data["settings"], (n, "settings"), problems)
        for i, doc in enumerate(data.get("rules", ())):
            rid = doc["id"]
            if rid in seen:
                problems.add((n, "rules", i, "id"), f"duplicate rule id {rid!r} (first defined in {seen[rid]})", rid)
                continue
            seen[rid] = source
            rule = _rule(doc, (n, "rules", i), problems, templates, source)
            if rule is not None:
                rules.append(rule)
    if problems.items:
        return None
    return build_ruleset(rules, settings or Settings(), _version(documents))


def build_ruleset(rules: Iterable[Rule], settings: Settings, version: str = "") -> RuleSet:
    ordered = tuple(sorted(rules, key=lambda r: (-r.priority, r.id)))
    by_event: dict[str, list[Rule]] = {}
    for r in ordered:
        if r.enabled and r.trigger.kind == "event":
            assert r.trigger.event is not None, "an event trigger names its event"
            by_event.setdefault(r.trigger.event, []).append(r)
    return RuleSet(
        rules=ordered,
        settings=settings,
        version=version,
        by_event={k: tuple(v) for k, v in by_event.items()},
        by_id={r.id: r for r in ordered},
        lapse_rules=tuple(r for r in ordered if r.enabled and r.trigger.kind == "lapsed"),
        occasion_rules=tuple(r for r in ordered if r.enabled and r.trigger.kind == "occasion"),
        moment_rules=tuple(r for r in ordered if r.enabled and r.trigger.kind == "moment"),
    )


def with_currency(ruleset: RuleSet, currency: str | None) -> RuleSet:
    """``ruleset`` for a shop whose currency is ``currency`` (the store's word wins over the
    rule files' ``settings: currency``)."""
    if not currency or ruleset.settings.currency == currency.upper():
        return ruleset
    return replace(ruleset, settings=replace(ruleset.settings, currency=currency.upper()))


def _version(documents: Sequence[tuple[str, dict[str, Any]]]) -> str:
    blob = json.dumps([d for _, d in documents], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


__all__ = ["Rule", "RuleSet", "Settings", "FrequencyCap", "Trigger", "compile_ruleset", "build_ruleset", "with_currency",
           "Money"]
