"""``keepwell explain``: why did (or didn't) this customer get this touch?

Replays the history up to the chosen event through the simulator (so the customer's state and
rule history are exactly what the live worker would have held), then shows, rule by rule, the
trigger, each condition with the value it saw, and the engine's verdict.
"""
from __future__ import annotations

from typing import Iterable

from plugin.engine import Kind, RuleSet, apply, decide, new_state
from plugin.engine.actions import action_from_dict
from plugin.engine.conditions import trace
from plugin.engine.fields import Context
from plugin.engine.values import format_duration
from plugin.events import Event
from plugin.simulate import Simulator


def _matches_trigger(rule, event: Event) -> bool:
    if event.type == "timer":
        return event.data.get("rule") == rule.id
    return rule.trigger.kind == "event" and rule.trigger.event == event.type


def explain(events: Iterable[Event], rules: RuleSet, customer_id: str, event_id: str | None = None) -> list[str]:
    """Lines explaining each rule's verdict for ``customer_id`` at ``event_id`` (default: their last event)."""
    events = list(events)
    mine = [e for e in events if e.customer_id == customer_id]
    if not mine:
        raise LookupError(f"no events for customer {customer_id!r} in this history")
    target = next((e for e in mine if e.id == event_id), None) if event_id else mine[-1]
    if target is None:
        raise LookupError(f"customer {customer_id!r} has no event {event_id!r}")
    sim = Simulator(rules)
    for e in events:
        if e is target:
            break
        sim.feed(e)
    sim.advance(target.occurred_at)
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
        if not _matches_trigger(rule, target):
            lines.append(f"{rule.id}: not triggered (waits for {_trigger_text(rule)})")
            continue
        lines.append(f"{rule.id}: triggered by {target.type}")
        if rule.condition is not None:
            _, sub = trace(rule.condition, ctx, 1)
            lines.extend(sub)
        d = decisions.get(rule.id)
        lines.append("  => " + _verdict(d))
        lines.append("")
    return lines


def ledger_lines(session, shop_id: str, customer_id: str) -> list[str]:
    """What the shop's ledger recorded for the customer, oldest first: each decision's outcome
    and, for one that failed (an effect, or a timer that could not be armed again), why."""
    from sqlalchemy import select

    from plugin.db import DecisionRow

    rows = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.customer_id == customer_id)
                           .order_by(DecisionRow.created_at, DecisionRow.id)).all()
    lines = ["", f"ledger of shop {shop_id} for customer {customer_id}:" if rows else "ledger: no decisions recorded"]
    for r in rows:
        line = f"  {r.rule_id}: {r.kind} {r.status}" + (f" ({r.reason})" if r.reason else "") + (f": {r.detail}" if r.detail else "")
        lines.append(line)
        if r.status == "failed" and r.error:
            lines.append(f"    FAILED: {r.error}")
    return lines


def _trigger_text(rule) -> str:
    t = rule.trigger
    if t.kind == "event":
        return t.event
    if t.kind == "lapsed":
        return f"{format_duration(t.after)} without an order"
    return f"{t.occasion} ({format_duration(t.before)} before)" if t.before else t.occasion


def _verdict(d) -> str:
    if d is None:
        return "no decision"
    if d.kind == Kind.TOUCH:
        return "TOUCH: " + ", ".join(action_text(a) for a in d.actions)
    if d.kind == Kind.SCHEDULED:
        return f"SCHEDULED: {d.detail} at {d.wake_at.isoformat()}"
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
