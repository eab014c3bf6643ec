"""``keepwell explain``: why did (or didn't) this customer get this touch?

Replays the customer's part of the history (their events and those of friends they referred,
found through a per-customer index, not the whole store) through the simulator, so their state
and rule history are exactly what the live worker would have held. Shows, rule by rule, the
trigger, each condition with the value it saw, the engine's verdict and the A/B variant; then
what each delayed, lapse and occasion touch decided when it came due, and the ones still ahead.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone, tzinfo
from typing import Iterable

from plugin.engine import Kind, RuleSet, apply, decide, new_state
from plugin.engine.actions import action_from_dict
from plugin.engine.conditions import trace
from plugin.engine.decide import pick_variant
from plugin.engine.referral import decode_referral_code
from plugin.engine.fields import Context
from plugin.engine.values import format_duration
from plugin.events import Event
from plugin.simulate import Simulator


_TIMER_KIND = {"delay": "delay", "lapse": "lapse", "occasion": "occasion", "deferred": "deferred (frequency cap)",
               "moment": "moment (dated or yearly)"}


class HistoryIndex:
    """A history's events by customer, built in one pass: explaining one customer replays only
    their events and those of the friends they referred (whose orders reward them), not the
    whole store."""

    def __init__(self, events: Iterable[Event], settings=None):
        self.events = list(events)
        self.by_customer: dict[str, list[int]] = defaultdict(list)
        self.referred: dict[str, set[str]] = defaultdict(set)  # referrer -> customers whose orders used their code
        self.end = self.events[-1].occurred_at if self.events else None
        for n, e in enumerate(self.events):
            self.by_customer[e.customer_id].append(n)
            order = e.order
            if settings is not None and order is not None and order.discount_codes:
                for code in order.discount_codes:
                    referrer = decode_referral_code(settings, e.shop, code, order.created_at or e.occurred_at)
                    if referrer is not None and referrer != e.customer_id:
                        self.referred[referrer].add(e.customer_id)

    def for_customer(self, customer_id: str) -> list[Event]:
        """The events that decide ``customer_id``'s touches, in history order."""
        ids = {customer_id} | self.referred.get(customer_id, set())
        return [self.events[n] for n in sorted(n for c in ids for n in self.by_customer.get(c, ()))]


class _Tracer(Simulator):
    """A simulator that also keeps, for one customer, what each timer decided when it came due."""

    def __init__(self, rules: RuleSet, customer_id: str, tz: tzinfo = timezone.utc):
        super().__init__(rules, tz=tz)
        self.customer_id = customer_id
        self.fired: list[tuple] = []  # (timer event, due, decisions, context)

    def _process(self, event: Event, now: datetime) -> None:
        if event.type == "timer" and event.customer_id == self.customer_id:
            state = self.states.get((event.shop, event.customer_id)) or new_state(event.shop, event.customer_id)
            state = apply(state, event, self.rules.settings)
            original = event.data.get("event")  # a delayed touch is re-checked against the event that set it
            seen = original if isinstance(original, Event) else event
            self.fired.append((event, now, decide(event, state, self.rules, now),
                               Context(seen, state, now, self.rules.settings)))
        super()._process(event, now)


def _matches_trigger(rule, event: Event) -> bool:
    if event.type == "timer":
        return event.data.get("rule") == rule.id
    return rule.trigger.kind == "event" and rule.trigger.event == event.type


def explain(events, rules: RuleSet, customer_id: str, event_id: str | None = None,
            tz: tzinfo = timezone.utc) -> list[str]:
    """Lines explaining each rule's verdict for ``customer_id`` at ``event_id`` (default: their
    last event), then every delayed, lapse and occasion touch of theirs: what it decided when it
    came due, or when it is due. ``events`` is a history or a HistoryIndex of one; ``tz`` is the
    shop's time zone, in which dated and yearly rules fire."""
    index = events if isinstance(events, HistoryIndex) else HistoryIndex(events, rules.settings)
    mine = [e for e in index.for_customer(customer_id) if e.customer_id == customer_id]
    if not mine:
        raise LookupError(f"no events for customer {customer_id!r} in this history")
    target = next((e for e in mine if e.id == event_id), None) if event_id else mine[-1]
    if target is None:
        raise LookupError(f"customer {customer_id!r} has no event {event_id!r}")
    sim = _Tracer(rules, customer_id, tz)
    lines: list[str] = []
    for e in index.for_customer(customer_id):
        if e is target:
            sim.advance(target.occurred_at)
            lines = _at_event(sim, rules, target, customer_id)
        sim.feed(e)
    sim.advance(index.end)
    return lines + _scheduled_lines(sim, rules, index.end)


def _at_event(sim: Simulator, rules: RuleSet, target: Event, customer_id: str) -> list[str]:
    now = target.occurred_at
    state = sim.states.get((target.shop, customer_id)) or new_state(target.shop, customer_id)
    state = apply(state, target, rules.settings)
    decisions = {d.rule_id: d for d in decide(target, state, rules, now) if not (d.kind == Kind.SCHEDULED and d.reason != "delay")}
    ctx = Context(target, state, now, rules.settings)
    lines = [
        f"customer {customer_id} at {now.isoformat()}: event {target.id} ({target.type})",
        f"state: {state.orders_count} paid orders, spent {state.total_spent or 0}, "
        f"marketing consent {'yes' if state.accepts_marketing else 'no'}, tags {sorted(state.tags) or '-'}, "
        f"rules fired {sorted(state.history) or '-'}",
        "",
    ]
    if target.order is not None and target.order.products_unavailable:
        lines[-1:-1] = [f"order {target.order.id}: decided without its products' collections and tags, which the "
                        f"store could not give ({target.order.products_unavailable}); collection and product-tag "
                        "conditions saw none"]
    for rule in rules.rules:
        if not rule.enabled:
            lines.append(f"{rule.id}: disabled")
            continue
        variant = pick_variant(rule, target.shop, customer_id)
        group = f" (A/B variant {variant.name})" if variant else ""
        if not _matches_trigger(rule, target):
            lines.append(f"{rule.id}: not triggered (waits for {_trigger_text(rule)}){group}")
            continue
        lines.append(f"{rule.id}: triggered by {target.type}{group}")
        if rule.condition is not None:
            _, sub = trace(rule.condition, ctx, 1)
            lines.extend(sub)
        lines.append("  => " + _verdict(decisions.get(rule.id)))
        lines.append("")
    return lines


def _scheduled_lines(sim: _Tracer, rules: RuleSet, end) -> list[str]:
    """What each timer of the customer decided when it came due, and the ones still ahead."""
    lines = []
    for timer, due, decisions, ctx in sim.fired:
        rule = rules.by_id.get(timer.data["rule"])
        if rule is None:
            continue
        kind = _TIMER_KIND.get(timer.data["kind"], timer.data["kind"])
        lines.append(f"{rule.id}: {kind} timer due {due.isoformat()} (from {timer.data.get('anchor', timer.id)})")
        if rule.condition is not None:
            lines.extend(trace(rule.condition, ctx, 1)[1])
        mine = [d for d in decisions if d.rule_id == rule.id]
        lines.extend("  => " + _verdict(d) for d in mine or [None])
    for wake_at, *_, timer in sorted(sim.timers, key=lambda t: t[:3]):
        if timer.customer_id == sim.customer_id and timer.data.get("rule") in rules.by_id:
            kind = _TIMER_KIND.get(timer.data["kind"], timer.data["kind"])
            lines.append(f"{timer.data['rule']}: {kind} timer due {wake_at.isoformat()}: not yet due when the "
                         f"history ends ({end.isoformat()})")
    return (["", "scheduled touches (delays, lapses, occasions):"] + lines) if lines else []


def ledger_lines(session, shop_id: str, customer_id: str) -> list[str]:
    """What the shop's ledger recorded for the customer, oldest first: each decision's outcome
    and, for one that failed (an effect, or a timer that could not be armed again), why."""
    from sqlalchemy import select

    from plugin.db import DecisionRow
    from plugin.pages import report as page_report

    rows = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.customer_id == customer_id)
                           .order_by(DecisionRow.created_at, DecisionRow.id)).all()
    lines = ["", f"ledger of shop {shop_id} for customer {customer_id}:" if rows else "ledger: no decisions recorded"]
    pages = page_report.for_touches(session, shop_id, [r.key for r in rows if r.kind == "touch"])
    for r in rows:
        line = f"  {r.rule_id}: {r.kind} {r.status}" + (f" ({r.reason})" if r.reason else "") + (f": {r.detail}" if r.detail else "")
        lines.append(line)
        if r.status == "failed" and r.error:
            lines.append(f"    FAILED: {r.error}")
        if r.key in pages:
            lines.extend(f"    {text}" for text in page_report.lines(pages[r.key]))
    return lines


def _trigger_text(rule) -> str:
    t = rule.trigger
    if t.kind == "event":
        return t.event
    if t.kind == "lapsed":
        return f"{format_duration(t.after)} without an order"
    if t.moment is not None:
        return f"{t.moment.describe()}, sent over {format_duration(t.moment.window)}"
    return f"{t.occasion} ({format_duration(t.before)} before)" if t.before else t.occasion


def _verdict(d) -> str:
    if d is None:
        return "no decision"
    if d.kind == Kind.TOUCH:
        return "TOUCH: " + ", ".join(action_text(a) for a in d.actions) + (f" (A/B variant {d.variant})" if d.variant else "")
    if d.kind == Kind.SCHEDULED:
        what = d.detail or {"occasion": "the next occasion", "lapse": "the lapse"}.get(getattr(d.reason, "value", d.reason), "")
        return f"SCHEDULED: {what} at {d.wake_at.isoformat()}"
    reason = d.reason.value if hasattr(d.reason, "value") else d.reason
    return f"SUPPRESSED ({reason}){': ' + d.detail if d.detail else ''}"


def action_text(a) -> str:
    """One action (typed, or its ledger JSON form) in a few words, e.g. "coupon THANKS-AB12" or "email 'welcome'"."""
    if isinstance(a, dict):
        try:
            a = action_from_dict(a)
        except ValueError:
            return str(a.get("type"))
    return a.describe()
