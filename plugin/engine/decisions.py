"""Decisions: plain, serializable data with deterministic keys."""
from __future__ import annotations

import hashlib
from typing import Any, NamedTuple
from datetime import datetime
from enum import Enum

from plugin.engine.actions import action_from_dict, coupon_code
from plugin.events import Event, event_from_dict, event_to_dict, parse_time


class Kind(str, Enum):
    TOUCH = "touch"  # act: the actions run, in order
    SUPPRESSED = "suppressed"  # a rule wanted this customer but did not touch them; reason says why
    SCHEDULED = "scheduled"  # feed ``timer`` back into decide() at ``wake_at``


class Reason(str, Enum):
    CONDITIONS = "conditions"  # the rule's conditions did not hold
    CANCELLED = "cancelled"  # conditions re-checked after a delay or timer no longer held
    LIMIT = "limit"  # once per customer, or the rule's cooldown
    CONSENT = "consent"  # a marketing touch for a customer who did not opt in
    HOLDOUT = "holdout"  # the customer is in the rule's control group
    PRIORITY = "priority"  # a higher-priority rule touched the customer for the same event
    CAP = "cap"  # the shop-wide frequency cap was reached
    SELF_REFERRAL = "self_referral"  # the referred friend is the referrer (same email, phone or address)
    QUIET_HOURS = "quiet_hours"  # a text due at night in the customer's time zone: deferred to the morning
    # scheduled reasons
    DELAY = "delay"
    LAPSE = "lapse"
    OCCASION = "occasion"
    MOMENT = "moment"  # a dated or yearly trigger's send slot for one customer
    DEFERRED = "deferred"


class Decision(NamedTuple):
    """One decision (immutable; a NamedTuple because the simulator makes millions of them)."""

    kind: str
    key: str  # (shop, rule, customer, anchor): the same touch always has the same key
    shop: str
    rule_id: str
    customer_id: str
    at: datetime
    event_id: str
    marketing: bool = False
    actions: tuple[Any, ...] = ()  # typed actions (plugin.engine.actions)
    reason: str | None = None
    detail: str = ""
    wake_at: datetime | None = None
    timer: Event | None = None
    ruleset_version: str = ""
    variant: str | None = None  # the A/B variant the customer was assigned

    def to_dict(self) -> dict[str, Any]:
        d = {
            "kind": str(self.kind.value if isinstance(self.kind, Enum) else self.kind),
            "key": self.key,
            "shop": self.shop,
            "rule_id": self.rule_id,
            "customer_id": self.customer_id,
            "at": self.at.isoformat(),
            "event_id": self.event_id,
            "marketing": self.marketing,
            "actions": [a.to_dict() for a in self.actions],
            "reason": str(self.reason.value) if isinstance(self.reason, Enum) else self.reason,
            "detail": self.detail,
            "ruleset_version": self.ruleset_version,
            "variant": self.variant,
        }
        if self.wake_at is not None:
            d["wake_at"] = self.wake_at.isoformat()
            d["timer"] = None if self.timer is None else event_to_dict(self.timer)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Decision":
        return cls(
            kind=d["kind"],
            key=d["key"],
            shop=d["shop"],
            rule_id=d["rule_id"],
            customer_id=d["customer_id"],
            at=parse_time(d["at"]),
            event_id=d["event_id"],
            marketing=d.get("marketing", False),
            actions=tuple(action_from_dict(a) for a in d.get("actions", ())),
            reason=d.get("reason"),
            detail=d.get("detail", ""),
            wake_at=parse_time(d.get("wake_at")),
            timer=event_from_dict(d["timer"]) if d.get("timer") else None,
            ruleset_version=d.get("ruleset_version", ""),
            variant=d.get("variant"),
        )


def stable_percent(*parts: str) -> float:
    """A stable pseudo-random number in [0, 100) for (shop, rule, customer): holdout groups."""
    h = hashlib.sha256(":".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") % 10000 / 100


__all__ = ["Decision", "Kind", "Reason", "coupon_code", "stable_percent"]
