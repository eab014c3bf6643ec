"""Specs: what a rule says to do (``CouponSpec``, ``EmailSpec``, ``TagSpec``, ``TierSpec``, ``SignalSpec``).

A spec is parsed and checked once, when the rule set loads (``SPECS[kind].parse``, problems reported
with their path), and makes one touch's typed action (``plugin.engine.actions``) with ``act``.
Pure: no I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Callable, ClassVar, NamedTuple, Protocol, TypeVar

from plugin.engine.actions import Action, Coupon, Email, Signal, Sms, Tag, Tier, coupon_code
from plugin.engine.conditions import Path, did_you_mean
from plugin.engine.fields import Context
from plugin.engine.occasions import template_vars
from plugin.engine.sms import SmsSettings
from plugin.engine.channels import engagement
from plugin.engine.state import CustomerState
from plugin.engine.values import parse_discount, parse_duration, parse_money
from plugin.events import Money

#: ``report(path, message)``: how a spec's ``parse`` reports a problem at ``path``.
Report = Callable[[Path, str], None]

#: action type -> spec class (the key a rule file writes the action under)
SPECS: dict[str, type[Spec]] = {}


class Spec(Protocol):
    """What every spec has: its action type, whether it needs marketing consent, and how it is parsed
    from a rule file and makes one touch's action."""

    type: ClassVar[str]
    marketing: ClassVar[bool]

    @classmethod
    def parse(cls, value: Any, path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> Spec | None: ...

    def act(self, t: Touch, i: int) -> Action | None: ...


_S = TypeVar("_S", bound=type[Spec])


def spec(cls: _S) -> _S:
    """Register a spec class under its ``type``."""
    SPECS[cls.type] = cls
    return cls


class _Trigger(Protocol):
    """What a spec reads of its rule's trigger (``plugin.engine.ruleset.Trigger``)."""

    @property
    def kind(self) -> str: ...

    @property
    def occasion(self) -> str | None: ...


class _Rule(Protocol):
    """What a spec reads of its rule (``plugin.engine.ruleset.Rule``, which imports this module)."""

    @property
    def name(self) -> str: ...

    @property
    def trigger(self) -> _Trigger: ...


class _Settings(Protocol):
    """What a spec reads of the rule set's settings (``plugin.engine.ruleset.Settings``)."""

    @property
    def currency(self) -> str | None: ...

    @property
    def sms(self) -> SmsSettings: ...


class Touch(NamedTuple):
    """What a spec needs to make its action for one touch."""

    key: str  # the decision's key
    rule: _Rule
    ctx: Context
    settings: _Settings
    anchor: str


def _duration(value: object, path: Path, report: Report, name: str) -> timedelta | None:
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
    def parse(cls, value: dict[str, Any], path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "CouponSpec | None":
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
    def parse(cls, value: dict[str, Any], path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "EmailSpec":
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

    @property
    def channels(self) -> tuple[str, ...]:
        return ("email",)


@spec
@dataclass(frozen=True, slots=True)
class SmsSpec:
    """A text message from the template ``templates/NAME.sms.txt`` (needs SMS marketing consent)."""

    type: ClassVar[str] = "sms"
    marketing: ClassVar[bool] = True
    template: str

    @classmethod
    def parse(cls, value: dict[str, Any], path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "SmsSpec":
        name = value["template"]
        if templates is not None and f"{name}.sms" not in templates:
            known = [n[:-4] for n in templates if n.endswith(".sms")]
            report(path + ("template",), f"SMS template {name!r} not found{did_you_mean(name, known)}"
                                         f" (templates are rules/templates/NAME.sms.txt for texts)")
        return cls(name)

    def act(self, t: Touch, i: int) -> Sms:
        state = t.ctx.state
        occasion = _occasion_vars(t.rule, state, t.anchor) if t.rule.trigger.kind == "occasion" else None
        return Sms(key=f"{t.key}:{i}", template=self.template, customer_id=state.customer_id, to=state.sms_phone,
                   occasion=occasion)

    @property
    def channels(self) -> tuple[str, ...]:
        return ("sms",)


@spec
@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A message on the channel chosen for the customer at decision time, among those they
    consented to and can be reached on: ``channel: preferred`` (the one they stated, else the one
    whose messages they answered most: pages opened, coupons redeemed; else the shop's default
    order), a list (an explicit fallback order) or one channel. ``email:`` and ``sms:`` say what each channel sends."""

    type: ClassVar[str] = "message"
    marketing: ClassVar[bool] = True
    order: tuple[str, ...]  # the explicit order; empty: preferred
    parts: tuple[tuple[str, EmailSpec | SmsSpec], ...]  # channel -> what it sends

    @classmethod
    def parse(cls, value: dict[str, Any], path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "MessageSpec | None":
        parts: list[tuple[str, EmailSpec | SmsSpec]] = []
        if isinstance(value.get("email"), dict):
            parts.append(("email", EmailSpec.parse(value["email"], path + ("email",), report, rule_id, templates)))
        if isinstance(value.get("sms"), dict):
            parts.append(("sms", SmsSpec.parse(value["sms"], path + ("sms",), report, rule_id, templates)))
        channel = value.get("channel", "preferred")
        order = () if channel == "preferred" else (channel,) if isinstance(channel, str) else tuple(channel)
        missing = [c for c in order if c not in dict(parts)]
        if missing or not parts:
            report(path + ("channel",), f"the message names {', '.join(missing) or 'no channel'} but says nothing "
                                        f"to send there: add {' and '.join(f'{c}:' for c in missing or ('email', 'sms'))}")
            return None
        return cls(order, tuple(parts))

    @property
    def channels(self) -> tuple[str, ...]:
        return self.order or tuple(c for c, _ in self.parts)

    def choose(self, state: CustomerState, default: tuple[str, ...]) -> str | None:
        """The channel this customer gets the message on, or None when none is open to them."""
        have = dict(self.parts)
        if self.order:
            ranked = list(self.order)
        else:
            engaged = engagement(state)
            answered = sorted((c for c, n in engaged.items() if n > 0), key=lambda c: -engaged[c])
            ranked = [c for c in (state.preferred_channel, *answered, *default, *have) if c is not None]
        reachable = {"email": bool(state.accepts_marketing and state.email),
                     "sms": bool(state.sms_consent and state.sms_phone)}
        return next((c for c in dict.fromkeys(ranked) if c in have and reachable.get(c)), None)

    def act(self, t: Touch, i: int) -> Action | None:
        channel = self.choose(t.ctx.state, t.settings.sms.channels)
        return None if channel is None else dict(self.parts)[channel].act(t, i)


def _occasion_vars(rule: _Rule, state: CustomerState, anchor: str) -> dict[str, Any] | None:
    """What the email sees as ``occasion``: the captured one, or the profile date's kind."""
    prefix, _, when = anchor.rpartition(":")
    if prefix.startswith("captured:"):
        return template_vars(state.occasions.get(prefix.split(":", 1)[1]))
    kind = rule.trigger.occasion
    assert kind is not None, "an occasion trigger names its occasion"
    return {"kind": kind, "title": kind.replace("_", " ").capitalize(), "recipient": None, "date": when}


@spec
@dataclass(frozen=True, slots=True)
class TagSpec:
    type: ClassVar[str] = "tag"
    marketing: ClassVar[bool] = False
    tag: str

    @classmethod
    def parse(cls, value: object, path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "TagSpec":
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
    def parse(cls, value: object, path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "TierSpec":
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
    def parse(cls, value: dict[str, Any], path: Path, report: Report, rule_id: str,
              templates: Collection[str] | None = None) -> "SignalSpec":
        return cls(value["event"], value["to"])

    def act(self, t: Touch, i: int) -> Signal:
        state, order = t.ctx.state, t.ctx.order
        data: dict[str, Any] = {"friend_id": state.customer_id, "friend_email": state.email}
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


__all__ = ["SPECS", "Touch", "CouponSpec", "EmailSpec", "SmsSpec", "MessageSpec", "TagSpec", "TierSpec", "SignalSpec", "spec"]
