"""Typed actions, in two forms.

A *spec* (``CouponSpec``, ``EmailSpec``, ...) is what a rule says to do; it is parsed and checked
once, when the rule set loads (``SPECS[kind].parse``). An *action* (``Coupon``, ``Email``, ``Tag``,
``Tier``, ``Signal``) is what one touch does: made by the engine from a spec (``spec.act``), written
to the ledger as its JSON form (``to_dict``) and read back with ``action_from_dict``, exactly:
``action_from_dict(a.to_dict()) == a``. Pure: no I/O, no clock.

A new action kind is a spec and an action class here (each registered by its ``type``), its
schema in ``rules/schema.json`` and a handler module in ``plugin/effects/``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, ClassVar, NamedTuple, Protocol

from plugin.engine.conditions import did_you_mean
from plugin.engine.occasions import template_vars
from plugin.engine.values import parse_discount, parse_duration, parse_money
from plugin.events import Money, parse_time

DISCOUNT_TYPES = ("percent", "fixed")

#: ``report(path, message)``: how a spec's ``parse`` reports a problem at ``path``.
Report = Callable[[tuple, str], None]


class Action(Protocol):
    """What every action has: its kind, its ledger key (one per touch and action) and JSON form."""

    type: ClassVar[str]
    key: str

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...

    def state_changes(self, changes: dict, state) -> dict: ...


class _Outward:
    """An action that changes nothing in Keepwell's customer state (it acts on the outside)."""

    __slots__ = ()

    def state_changes(self, changes: dict, state) -> dict:
        """The customer-state fields this action sets, given ``changes`` made so far: none."""
        return {}


#: action type -> action class
ACTIONS: dict[str, Any] = {}
#: action type -> spec class
SPECS: dict[str, Any] = {}


def action(cls):
    """Register an action class under its ``type`` (what ``action_from_dict`` reads)."""
    ACTIONS[cls.type] = cls
    return cls


def spec(cls):
    """Register a spec class under its ``type`` (the key a rule file writes it under)."""
    SPECS[cls.type] = cls
    return cls


def action_from_dict(d: dict) -> Any:
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


def _time(value) -> datetime | None:
    return value if value is None or isinstance(value, datetime) else parse_time(value)


def _money(value) -> Money | None:
    if value is None or isinstance(value, Money):
        return value
    return Money(_decimal(value["amount"], "minimum_subtotal"), value.get("currency"))


def _money_dict(m: Money | None) -> dict | None:
    return None if m is None else {"amount": str(m.amount), "currency": m.currency}


def _decimal(value, what: str) -> Decimal:
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
    products: tuple = ()
    collections: tuple = ()
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
    def from_dict(cls, d: dict) -> "Coupon":
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
    occasion: dict | None = None  # occasion rules: what the template sees as ``occasion``

    def describe(self) -> str:
        return f"email '{self.template}'"

    def to_dict(self) -> dict[str, Any]:
        d = {"type": "email", "key": self.key, "template": self.template, "subject": self.subject,
             "customer_id": self.customer_id, "to": self.to}
        if self.occasion is not None:
            d["occasion"] = dict(self.occasion)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Email":
        return cls(key=d["key"], template=d["template"], subject=d["subject"], customer_id=d["customer_id"],
                   to=d.get("to"), occasion=d.get("occasion"))


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

    def state_changes(self, changes: dict, state) -> dict:
        return {"tags": changes.get("tags", state.tags) | {self.tag}}

    @classmethod
    def from_dict(cls, d: dict) -> "Tag":
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

    def state_changes(self, changes: dict, state) -> dict:
        return {"tier": self.tier}

    @classmethod
    def from_dict(cls, d: dict) -> "Tier":
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
    data: dict

    def describe(self) -> str:
        return f"{self.event} for customer {self.customer_id}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "signal", "key": self.key, "event": self.event, "customer_id": self.customer_id,
                "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: dict) -> "Signal":
        return cls(key=d["key"], event=d["event"], customer_id=d.get("customer_id"), data=dict(d.get("data") or {}))


# --- specs: what a rule says to do --------------------------------------------------------------

class Touch(NamedTuple):
    """What a spec needs to make its action for one touch."""

    key: str  # the decision's key
    rule: Any  # plugin.engine.ruleset.Rule
    ctx: Any  # plugin.engine.fields.Context
    settings: Any  # plugin.engine.ruleset.Settings
    anchor: str


def _duration(value, path, report: Report, name: str) -> timedelta | None:
    try:
        d = parse_duration(value)
    except ValueError as exc:
        report(path, f"{name}: {exc}")
        return None
    if d <= timedelta(0):
        report(path, f"{name} must be longer than zero")
        return None
    return d


@spec
@dataclass(frozen=True, slots=True)
class CouponSpec:
    type: ClassVar[str] = "coupon"
    marketing: ClassVar[bool] = True  # it contacts the customer: the rule needs their marketing consent
    discount_type: str
    value: Decimal
    currency: str | None
    expires_in: timedelta | None = None
    minimum_subtotal: Money | None = None
    products: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    referral: bool = False
    code_prefix: str = ""
    title: str | None = None

    @classmethod
    def parse(cls, value: dict, path: tuple, report: Report, rule_id: str, templates=None) -> "CouponSpec | None":
        ok = True
        try:
            discount_type, amount, currency = parse_discount(value["discount"])
        except ValueError as exc:
            report(path + ("discount",), str(exc))
            ok, discount_type, amount, currency = False, "", Decimal(0), None
        expires_in = None
        if "expires_in" in value:
            expires_in = _duration(value["expires_in"], path + ("expires_in",), report, "expires_in")
            ok = ok and expires_in is not None
        minimum = None
        if "minimum_subtotal" in value:
            try:
                minimum = parse_money(value["minimum_subtotal"])
            except ValueError as exc:
                report(path + ("minimum_subtotal",), f"minimum_subtotal: {exc}")
                ok = False
        return cls(discount_type, amount, currency, expires_in, minimum,
                   products=tuple(str(p) for p in value.get("products", ())),
                   collections=tuple(str(c) for c in value.get("collections", ())),
                   referral=value.get("code") == "referral",
                   code_prefix=value.get("code_prefix", rule_id.upper().replace("_", ""))[:12],
                   title=value.get("title")) if ok else None

    def act(self, t: Touch, i: int) -> Coupon | None:
        state, now, settings = t.ctx.state, t.ctx.now, t.settings
        code = state.referral_code(settings) if self.referral else coupon_code(self.code_prefix, t.key)
        if code is None:
            return None  # no referral code for this customer (e.g. a guest): nothing to share
        minimum = self.minimum_subtotal
        if minimum is not None and not minimum.currency and settings.currency:
            minimum = Money(minimum.amount, settings.currency)
        return Coupon(
            key=f"{t.key}:{i}", code=code, title=self.title or f"{t.rule.name} {code}",
            discount_type=self.discount_type, value=self.value,
            # an amount written without a currency is in the shop's (None: the store applies its own)
            currency=None if self.discount_type == "percent" else self.currency or settings.currency,
            expires_at=now + self.expires_in if self.expires_in else None, starts_at=now,
            minimum_subtotal=minimum, products=self.products, collections=self.collections,
            # a personal coupon is single use and only for this customer; a referral code is for friends
            customer_id=None if self.referral else state.customer_id,
            email=None if self.referral else state.email,
            usage_limit=None if self.referral else 1, once_per_customer=True)


@spec
@dataclass(frozen=True, slots=True)
class EmailSpec:
    type: ClassVar[str] = "email"
    marketing: ClassVar[bool] = True
    template: str
    subject: str

    @classmethod
    def parse(cls, value: dict, path: tuple, report: Report, rule_id: str, templates=None) -> "EmailSpec":
        name = value["template"]
        if templates is not None and name not in templates:
            report(path + ("template",), f"email template {name!r} not found{did_you_mean(name, templates)}"
                                         f" (templates are rules/templates/NAME.html and NAME.txt)")
        return cls(name, value["subject"])

    def act(self, t: Touch, i: int) -> Email:
        state = t.ctx.state
        occasion = _occasion_vars(t.rule, state, t.anchor) if t.rule.trigger.kind == "occasion" else None
        return Email(key=f"{t.key}:{i}", template=self.template, subject=self.subject,
                     customer_id=state.customer_id, to=state.email, occasion=occasion)


def _occasion_vars(rule, state, anchor: str) -> dict | None:
    """What the email sees as ``occasion``: the captured one, or the profile date's kind."""
    prefix, _, when = anchor.rpartition(":")
    if prefix.startswith("captured:"):
        return template_vars(state.occasions.get(prefix.split(":", 1)[1]))
    kind = rule.trigger.occasion
    return {"kind": kind, "title": kind.replace("_", " ").capitalize(), "recipient": None, "date": when}


@spec
@dataclass(frozen=True, slots=True)
class TagSpec:
    type: ClassVar[str] = "tag"
    marketing: ClassVar[bool] = False
    tag: str

    @classmethod
    def parse(cls, value, path: tuple, report: Report, rule_id: str, templates=None) -> "TagSpec":
        return cls(str(value))

    def act(self, t: Touch, i: int) -> Tag:
        return Tag(key=f"{t.key}:{i}", tag=self.tag)


@spec
@dataclass(frozen=True, slots=True)
class TierSpec:
    type: ClassVar[str] = "tier"
    marketing: ClassVar[bool] = False
    tier: str

    @classmethod
    def parse(cls, value, path: tuple, report: Report, rule_id: str, templates=None) -> "TierSpec":
        return cls(str(value))

    def act(self, t: Touch, i: int) -> Tier:
        return Tier(key=f"{t.key}:{i}", tier=self.tier)


@spec
@dataclass(frozen=True, slots=True)
class SignalSpec:
    type: ClassVar[str] = "signal"
    marketing: ClassVar[bool] = False
    event: str
    to: str  # referrer

    @classmethod
    def parse(cls, value: dict, path: tuple, report: Report, rule_id: str, templates=None) -> "SignalSpec":
        return cls(value["event"], value["to"])

    def act(self, t: Touch, i: int) -> Signal:
        state, order = t.ctx.state, t.ctx.order
        data = {"friend_id": state.customer_id, "friend_email": state.email}
        # what else tells the referrer's side whether the friend is the referrer under another account
        for name, value in (("friend_phone", state.phone),
                            ("friend_address", (order and order.shipping_address) or state.shipping_address)):
            if value:
                data[name] = value
        if order is not None:
            data["order_id"] = order.id
            data["order_total"] = {"amount": str(order.total.amount), "currency": order.total.currency}
        # the referrer is set by the fold, never the customer themself
        return Signal(key=f"{t.key}:{i}", event=self.event, customer_id=state.referred_by, data=data)


__all__ = ["ACTIONS", "SPECS", "Action", "Coupon", "Email", "Tag", "Tier", "Signal",
           "CouponSpec", "EmailSpec", "TagSpec", "TierSpec", "SignalSpec", "action_from_dict", "coupon_code"]
