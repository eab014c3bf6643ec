"""Dated and yearly rules in virtual time (``keepwell simulate``, ``explain``): the occurrences
the clock passes, each a timer per customer known by then, as the live fan-out
(``plugin.fanout``) makes them."""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Iterable, Iterator

from plugin.engine import RuleSet
from plugin.engine.decide import moment_timer
from plugin.engine.moments import occurrences
from plugin.events import Event


class Moments:
    """The dated and yearly rules' occurrences in virtual time: each one, when the clock passes it,
    gives every customer known by then one timer at their send slot, as the live fan-out does."""

    def __init__(self, rules: RuleSet, tz: tzinfo):
        self.rules, self.tz = rules, tz
        self.checked: datetime | None = None  # no occurrence after it and before ``quiet_until``
        self.quiet_until: datetime | None = None

    def due(self, states: Iterable[tuple[str, str]], after: datetime, until: datetime) -> Iterator[Event]:
        """The timers of occurrences after ``after`` and at or before ``until``."""
        if until <= after or not self.rules.moment_rules:
            return
        if self.checked is not None and self.quiet_until is not None and self.checked <= after < until < self.quiet_until:
            return  # the common case: no occurrence in between (one comparison per event)
        for rule in self.rules.moment_rules:
            assert rule.trigger.moment is not None
            for label, at in occurrences(rule.trigger.moment, self.tz, after, until):
                for shop, customer_id in list(states):
                    yield moment_timer(shop, rule, customer_id, label, at, self.rules.version)
        horizon = until + timedelta(days=400)
        ahead = [at for rule in self.rules.moment_rules if rule.trigger.moment is not None
                 for _, at in occurrences(rule.trigger.moment, self.tz, until, horizon)]
        self.checked, self.quiet_until = until, min(ahead, default=horizon)
