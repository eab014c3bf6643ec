"""The timers a customer's imported past implies. Pure, like the rest of the engine.

An import folds a store's history into customer states without asking the rules anything:
nothing that happened before the install is acted on. What history does imply are moments still
to come: the lapse counted from the last paid order, and yearly occasions. Those are timers,
the same ones the live worker would have set. A lapse already past when the import runs follows
the rule set's ``on_import`` setting: ``quiet`` lets it pass; ``catch_up`` fires it after all,
at a stable point within ``catch_up_over`` (so a store's lapsed customers are not all written
to on one morning), and the frequency cap still applies when it fires.
"""
from __future__ import annotations

from datetime import datetime

from plugin.engine.decide import _occasion_timers, _timer
from plugin.engine.decisions import Decision, Reason, stable_percent
from plugin.engine.fields import Context
from plugin.engine.ruleset import OCCASIONS, RuleSet
from plugin.engine.state import CustomerState
from plugin.events import Event


def implied_timers(state: CustomerState, rules: RuleSet, now: datetime) -> list[Decision]:
    """Scheduled decisions for the lapse and occasion timers ``state``'s history implies at ``now``."""
    marker = Event(id=f"import:{state.customer_id}", type="customer.updated", shop=state.shop,
                   customer_id=state.customer_id, occurred_at=now)
    ctx = Context(marker, state, now, rules.settings)
    out = []
    if state.last_order_id is not None and state.last_order_at is not None:
        for rule in rules.lapse_rules:
            assert rule.trigger.after is not None, "a lapsed trigger says after how long"
            due = state.last_order_at + rule.trigger.after
            if due <= now:
                if rules.settings.on_import != "catch_up":
                    continue
                share = stable_percent(state.shop, rule.id, state.customer_id, "catch-up") / 100
                due = now + rules.settings.catch_up_over * share
            out.append(_timer(Reason.LAPSE, rule, ctx, f"lapse:{state.last_order_id}", rules, due))
    # always the next one ahead of now: birthdays, anniversaries, captured occasions, the first order's
    out.extend(_occasion_timers(ctx, rules, OCCASIONS))
    return out
