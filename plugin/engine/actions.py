"""Typed actions: what one touch does (``Coupon``, ``Email``, ``Tag``, ``Tier``, ``Signal``).

The engine makes an action from the rule's spec (``plugin.engine.specs``); the ledger stores its
JSON form (``to_dict``), read back with ``action_from_dict``, exactly:
``action_from_dict(a.to_dict()) == a``. Pure: no I/O, no clock.

A new action kind is an action class here and a spec in ``plugin.engine.specs`` (each registered
by its ``type``), its schema in ``rules/schema.json`` and a handler module in ``plugin/effects/``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, overload

from plugin.events import Money, parse_time

if TYPE_CHECKING:
    from plugin.engine.state import CustomerState

DISCOUNT_TYPES = ("percent", "fixed")


class Action(Protocol):
    """What every action has: its kind, its ledger key (one per touch and action) and JSON form."""

    type: ClassVar[str]

    @property
    def key(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...

    def state_changes(self, changes: dict[str, Any], state: CustomerState) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Action: ...


class _Outward:
    """An action that changes nothing in Keepwell's customer state (it acts on the outside)."""

    __slots__ = ()

    def state_changes(self, changes: dict[str, Any], state: CustomerState) -> dict[str, Any]:
        """The customer-state fields this action sets, given ``changes`` made so far: none."""
        return {}


#: action type -> action class
ACTIONS: dict[str, type[Action]] = {}

_A = TypeVar("_A", bound=type[Action])


def action(cls: _A) -> _A:
    """Register an action class under its ``type`` (what ``action_from_dict`` reads)."""
    ACTIONS[cls.type] = cls
    return cls


def action_from_dict(d: dict[str, Any]) -> Action:
    """The action a ledger row's JSON form describes; ValueError when it is not one."""
    if not isinstance(d, dict) or d.get("type") not in ACTIONS:
        raise ValueError(f"not an action: {d!r:.200}")
    try:
        return ACTIONS[d["type"]].from_dict(d)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"malformed {d['type']} action {d.get('key')!r}: {type(exc).__name__}: {exc}") from None


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are typed by people


def coupon_code(prefix: str, key: str) -> str:
    """A personal coupon code derived from the decision key: a retry asks for the same code."""
    n = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    chars = []
    for _ in range(12):  # 60 bits
        n, r = divmod(n, 32)
        chars.append(_CODE_ALPHABET[r])
    return f"{prefix}-{''.join(chars)}"


@overload
def _time(value: str | datetime) -> datetime: ...
@overload
def _time(value: str | datetime | None) -> datetime | None: ...
def _time(value: str | datetime | None) -> datetime | None:
    return value if value is None or isinstance(value, datetime) else parse_time(value)


def _money(value: Money | dict[str, Any] | None) -> Money | None:
    if value is None or isinstance(value, Money):
        return value
    return Money(_decimal(value["amount"], "minimum_subtotal"), value.get("currency"))


def _money_dict(m: Money | None) -> dict[str, Any] | None:
    return None if m is None else {"amount": str(m.amount), "currency": m.currency}


def _decimal(value: object, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} {value!r} is not a positive number")
    return d


# --- actions: what one touch does -------------------------------------------------------------

@action
@dataclass(frozen=True, slots=True)
class Coupon(_Outward):
    """A discount code in the store: personal (``customer_id`` set, single use) or a shared referral code."""

    type: ClassVar[str] = "coupon"
    key: str
    code: str
    title: str | None
    discount_type: str  # percent | fixed
    value: Decimal
    currency: str | None  # fixed amounts: the amount's currency (None: the store's own)
    expires_at: datetime | None
    starts_at: datetime
    minimum_subtotal: Money | None = None
    products: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    customer_id: str | None = None
    email: str | None = None
    usage_limit: int | None = None
    once_per_customer: bool = True

    def describe(self) -> str:
        return f"coupon {self.code}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "coupon", "key": self.key, "code": self.code, "title": self.title,
                "discount_type": self.discount_type, "value": str(self.value), "currency": self.currency,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "starts_at": self.starts_at.isoformat(), "minimum_subtotal": _money_dict(self.minimum_subtotal),
                "products": list(self.products), "collections": list(self.collections),
                "customer_id": self.customer_id, "email": self.email, "usage_limit": self.usage_limit,
                "once_per_customer": self.once_per_customer}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Coupon":
        if d["discount_type"] not in DISCOUNT_TYPES:
            raise ValueError(f"coupon {d.get('code')}: discount_type {d['discount_type']!r} is not one of "
                             f"{', '.join(DISCOUNT_TYPES)}")
        return cls(key=d["key"], code=str(d["code"]), title=d.get("title"),
                   discount_type=d["discount_type"], value=_decimal(d["value"], f"coupon {d['code']}: value"),
                   currency=d.get("currency"), expires_at=_time(d.get("expires_at")), starts_at=_time(d["starts_at"]),
                   minimum_subtotal=_money(d.get("minimum_subtotal")), products=tuple(d.get("products") or ()),
                   collections=tuple(d.get("collections") or ()), customer_id=d.get("customer_id"),
                   email=d.get("email"), usage_limit=d.get("usage_limit"),
                   once_per_customer=bool(d.get("once_per_customer", True)))


@action
@dataclass(frozen=True, slots=True)
class Email(_Outward):
    """An email rendered from ``template``; ``to`` is the address the engine knew (the worker reads it again)."""

    type: ClassVar[str] = "email"
    key: str
    template: str
    subject: str
    customer_id: str
    to: str | None = None
    occasion: dict[str, Any] | None = None  # occasion rules: what the template sees as ``occasion``

    def describe(self) -> str:
        return f"email '{self.template}'"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "email", "key": self.key, "template": self.template, "subject": self.subject,
             "customer_id": self.customer_id, "to": self.to}
        if self.occasion is not None:
            d["occasion"] = dict(self.occasion)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Email":
        return cls(key=d["key"], template=d["template"], subject=d["subject"], customer_id=d["customer_id"],
                   to=d.get("to"), occasion=d.get("occasion"))


@action
@dataclass(frozen=True, slots=True)
class Sms(_Outward):
    """A text message rendered from the template ``NAME.sms.txt``; ``to`` is the number the engine
    knew (the worker reads the customer's number and consent again before sending)."""

    type: ClassVar[str] = "sms"
    key: str
    template: str
    customer_id: str
    to: str | None = None
    occasion: dict[str, Any] | None = None  # occasion rules: what the template sees as ``occasion``

    def describe(self) -> str:
        return f"sms '{self.template}'"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "sms", "key": self.key, "template": self.template,
                             "customer_id": self.customer_id, "to": self.to}
        if self.occasion is not None:
            d["occasion"] = dict(self.occasion)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sms":
        return cls(key=d["key"], template=str(d["template"]), customer_id=d["customer_id"], to=d.get("to"),
                   occasion=d.get("occasion"))


#: The action types that are messages to the customer, by channel (plugin.events.CHANNELS).
MESSAGE_TYPES = ("email", "sms")


@action
@dataclass(frozen=True, slots=True)
class Tag:
    """A tag on the customer, in Keepwell's state and in the store."""

    type: ClassVar[str] = "tag"
    key: str
    tag: str

    def describe(self) -> str:
        return f"tag {self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tag", "tag": self.tag, "key": self.key}

    def state_changes(self, changes: dict[str, Any], state: CustomerState) -> dict[str, Any]:
        return {"tags": changes.get("tags", state.tags) | {self.tag}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tag":
        return cls(key=d["key"], tag=str(d["tag"]))


@action
@dataclass(frozen=True, slots=True)
class Tier:
    """A loyalty tier in Keepwell's customer state (the store gets the rule's tag action)."""

    type: ClassVar[str] = "tier"
    key: str
    tier: str

    def describe(self) -> str:
        return f"tier {self.tier}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tier", "tier": self.tier, "key": self.key}

    def state_changes(self, changes: dict[str, Any], state: CustomerState) -> dict[str, Any]:
        return {"tier": self.tier}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tier":
        return cls(key=d["key"], tier=str(d["tier"]))


@action
@dataclass(frozen=True, slots=True)
class Signal(_Outward):
    """An event passed on to another customer (the referrer): ``event`` with ``data``, JSON-ready.
    ``customer_id`` None: nobody to pass it to."""

    type: ClassVar[str] = "signal"
    key: str
    event: str
    customer_id: str | None
    data: dict[str, Any]

    def describe(self) -> str:
        return f"{self.event} for customer {self.customer_id}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "signal", "key": self.key, "event": self.event, "customer_id": self.customer_id,
                "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Signal":
        return cls(key=d["key"], event=d["event"], customer_id=d.get("customer_id"), data=dict(d.get("data") or {}))


__all__ = ["ACTIONS", "Action", "Coupon", "Email", "Sms", "MESSAGE_TYPES", "Tag", "Tier", "Signal", "action", "action_from_dict", "coupon_code"]
