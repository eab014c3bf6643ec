"""Customer state as a pure fold over events: ``apply(state, event) -> state``.

The same fold serves the live worker and the simulator. It is idempotent (orders are keyed
by id, refunds by refund id) and insensitive to the order in which order events arrive, so
duplicated or reordered deliveries converge on the same state. State is per customer and
bounded by the customer's orders, not by the number of events.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from plugin.engine import occasions as occ
from plugin.engine.channels import coupon_channels
from plugin.engine.referral import decode_referral_code, referral_code
from plugin.events import CHANNELS, Event, Money

_EMPTY: MappingProxyType[Any, Any] = MappingProxyType({})
_ZERO = Decimal(0)
#: Marketing touches older than this are forgotten (no frequency cap spans longer).
TOUCH_MEMORY = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class OrderSummary:
    id: str
    at: datetime
    total: Decimal = Decimal(0)
    currency: str | None = None
    paid: bool = False
    cancelled: bool = False
    refunds: tuple[tuple[str, Decimal], ...] = ()  # (refund id, amount)
    reported_refunded: bool = False  # the store's own status said "refunded" (final)

    @property
    def refunded(self) -> bool:
        return bool(self.refunds) or self.reported_refunded

    @property
    def fully_refunded(self) -> bool:
        """Returned in full: by the store's status, or by refunds adding up to the paid total."""
        if self.reported_refunded:
            return True
        return self.paid and self.total > 0 and sum((a for _, a in self.refunds), _ZERO) >= self.total

    @property
    def net(self) -> Decimal:
        if not self.paid or self.cancelled:
            return _ZERO
        if not self.refunds:
            return self.total
        return max(_ZERO, self.total - sum((a for _, a in self.refunds), _ZERO))

    @property
    def counts(self) -> bool:
        """A purchase: paid, and neither cancelled nor refunded in full."""
        return self.paid and not self.cancelled and not self.fully_refunded


@dataclass(frozen=True, slots=True)
class RuleHistory:
    count: int
    last_at: datetime
    keys: frozenset[str]


@dataclass(frozen=True, slots=True)
class CustomerState:
    shop: str
    customer_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    accepts_marketing: bool = False
    tags: frozenset[str] = frozenset()
    birthday: date | None = None
    anniversary: date | None = None
    signed_up_at: datetime | None = None
    profile_at: datetime | None = None  # time of the newest customer details applied
    consent_at: datetime | None = None  # time of the newest consent applied
    consent_changed_at: datetime | None = None  # when an event last flipped the consent
    sms_phone: str | None = None  # the mobile number the customer's SMS consent is for
    sms_consent: bool = False  # SMS marketing consent, separate from email's
    sms_consent_at: datetime | None = None  # time of the newest SMS consent applied
    preferred_channel: str | None = None  # stated by the customer on their personal page
    #: how often they opened their page from a message on each channel (page.opened data.channel)
    channel_opens: MappingProxyType[str, int] = field(default_factory=lambda: _EMPTY)
    #: the personal coupon codes of the customer's touches -> the channel the touch went out on
    coupon_channels: MappingProxyType[str, str] = field(default_factory=lambda: _EMPTY)
    redeemed_codes: frozenset[str] = frozenset()  # those of them a paid order used
    currency: str | None = None
    orders: MappingProxyType[str, OrderSummary] = field(default_factory=lambda: _EMPTY)  # order id -> OrderSummary
    orders_count: int = 0
    total_spent: Money | None = None
    first_order_id: str | None = None
    first_order_at: datetime | None = None
    last_order_id: str | None = None
    last_order_at: datetime | None = None
    products_bought: frozenset[str] = frozenset()
    collections_bought: frozenset[str] = frozenset()
    referred_by: str | None = None
    phone: str | None = None  # from the newest paid order: self-referral checks
    shipping_address: str | None = None
    tier: str | None = None
    history: MappingProxyType[str, RuleHistory] = field(default_factory=lambda: _EMPTY)  # rule id -> RuleHistory
    touches: tuple[datetime, ...] = field(default=())  # marketing touches, oldest first
    occasions: MappingProxyType[str, occ.Occasion] = field(default_factory=lambda: _EMPTY)  # occasion id -> occ.Occasion

    def referral_code(self, settings: Any) -> str | None:
        return referral_code(settings, self.shop, self.customer_id)


_STATE_FIELDS = tuple(f.name for f in fields(CustomerState))
_set = object.__setattr__


def _evolve(state: CustomerState, changes: dict[str, Any]) -> CustomerState:
    """``dataclasses.replace`` without its per-call introspection: the fold's hot path."""
    new = object.__new__(CustomerState)
    for name in _STATE_FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(state, name))
    return new


def new_state(shop: str, customer_id: str) -> CustomerState:
    return CustomerState(shop=shop, customer_id=customer_id)


def _aggregate(state: CustomerState, orders: dict[str, OrderSummary], changes: dict[str, Any] | None = None) -> CustomerState:
    first = last = None
    count = 0
    for o in orders.values():
        if not o.counts:
            continue
        count += 1
        if first is None or (o.at, o.id) < (first.at, first.id):
            first = o
        if last is None or (o.at, o.id) > (last.at, last.id):
            last = o
    # Spend is counted in the currency of the first order; amounts in other currencies are not
    # added in (a store reports orders in its own currency, so this is the rare exception).
    currency = first.currency if first else None
    total = sum((o.net for o in orders.values() if o.counts and o.currency == currency), _ZERO)
    return _evolve(state, {
        **(changes or {}),
        "orders": MappingProxyType(orders),
        "orders_count": count,
        "currency": currency,
        "total_spent": Money(total, currency) if currency else None,
        "first_order_id": first.id if first else None,
        "first_order_at": first.at if first else None,
        "last_order_id": last.id if last else None,
        "last_order_at": last.at if last else None,
    })


def _merge_customer(state: CustomerState, event: Event) -> CustomerState:
    """Newer details win; an older delivery (a retry of a stale webhook) only fills gaps."""
    c = event.customer
    if c is None:
        return state
    at = event.occurred_at
    newer = state.profile_at is None or at >= state.profile_at
    changes = {}
    for name in ("email", "first_name", "last_name", "locale", "birthday", "anniversary"):
        value = getattr(c, name)
        if value is not None and (newer or getattr(state, name) is None):
            changes[name] = value
    if newer:
        changes["profile_at"] = at
    if c.accepts_marketing is not None and (state.consent_at is None or at >= state.consent_at):
        changes["accepts_marketing"] = c.accepts_marketing
        changes["consent_at"] = at
        if c.accepts_marketing != state.accepts_marketing:
            changes["consent_changed_at"] = at
    if c.phone is not None and (newer or state.sms_phone is None):
        changes["sms_phone"] = c.phone
    if c.sms_consent is not None and (state.sms_consent_at is None or at >= state.sms_consent_at):
        changes["sms_consent"] = c.sms_consent
        changes["sms_consent_at"] = at
    if c.tags is not None and newer:
        changes["tags"] = frozenset(c.tags)
    if state.signed_up_at is None and event.type == "customer.created":
        changes["signed_up_at"] = c.created_at or event.occurred_at
    return _evolve(state, changes) if changes else state


def _prefer(state: CustomerState, channel: object) -> CustomerState:
    """The channel the customer stated on their personal page (None: no preference)."""
    if channel == state.preferred_channel or not (channel is None or isinstance(channel, str)):
        return state
    return _evolve(state, {"preferred_channel": channel})


def _channels(state: CustomerState, event: Event) -> CustomerState:
    """The channel the customer stated, or one more page opened from a message on a channel."""
    if event.type == "customer.preference_changed":
        return _prefer(state, event.data.get("preferred_channel"))
    channel = event.data.get("channel")
    if channel not in CHANNELS:
        return state
    opens = {**state.channel_opens, channel: state.channel_opens.get(channel, 0) + 1}
    return _evolve(state, {"channel_opens": MappingProxyType(opens)})


def _paid(state: CustomerState, o: Any, shop: str, at: datetime, settings: Any) -> dict[str, Any]:
    """What a paid order teaches: products, contact, the coupons of ours it redeemed, a referrer."""
    changes: dict[str, Any] = {
        "products_bought": state.products_bought.union(li.product_id for li in o.line_items if li.product_id),
        "collections_bought": state.collections_bought.union(*(li.collections for li in o.line_items)),
        "phone": o.phone or state.phone,
        "shipping_address": o.shipping_address or state.shipping_address,
    }
    redeemed = {c for c in o.discount_codes if c in state.coupon_channels} - state.redeemed_codes
    if redeemed:
        changes["redeemed_codes"] = state.redeemed_codes | redeemed
    if state.referred_by is None:
        for code in o.discount_codes:
            referrer = decode_referral_code(settings, shop, code, at)
            if referrer is not None and referrer != state.customer_id:
                changes["referred_by"] = referrer
                break
    return changes


def apply(state: CustomerState, event: Event, settings: Any = None) -> CustomerState:
    """The customer's state after ``event`` (``settings``: the rule set's, for referral codes).
    Pure and idempotent."""
    state = _merge_customer(state, event)
    if event.type in ("customer.preference_changed", "page.opened"):
        return _channels(state, event)
    if event.type == "occasion.captured":
        found = occ.from_event(event)
        if state.occasions.get(found.id) == found:
            return state
        return _evolve(state, {"occasions": MappingProxyType({**state.occasions, found.id: found})})
    o = event.order
    if o is None or not event.type.startswith("order."):
        return state
    orders = dict(state.orders)
    at = o.created_at or event.occurred_at
    prev = orders.get(o.id) or OrderSummary(id=o.id, at=at)
    if o.fully_refunded and not prev.reported_refunded:
        # A refund is final: whichever delivery says so first, the order stays refunded.
        prev = replace(prev, reported_refunded=True)
    changes = None
    if event.type == "order.paid":
        summary = OrderSummary(o.id, at, o.total.amount, o.total.currency, True, prev.cancelled, prev.refunds,
                               prev.reported_refunded)
        changes = _paid(state, o, event.shop, at, settings)
    elif event.type == "order.refunded":
        refund_id = str(event.data.get("refund_id", event.id))
        if any(rid == refund_id for rid, _ in prev.refunds):
            if prev is not orders.get(o.id):
                orders[o.id] = prev
                return _aggregate(state, orders)
            return state
        amount = o.refunded.amount if o.refunded is not None else o.total.amount
        summary = replace(prev, refunds=prev.refunds + ((refund_id, amount),))
    elif event.type == "order.cancelled":
        summary = replace(prev, cancelled=True)
    else:  # order.created: known, not yet paid
        if prev is orders.get(o.id):
            return state
        summary = prev
    orders[o.id] = summary
    return _aggregate(state, orders, changes)


def record(state: CustomerState, decision: Any) -> CustomerState:
    """The customer's state after a touch decision was made: history, touches, tags, tier."""
    if decision.kind != "touch" or decision.customer_id != state.customer_id:
        return state
    prev = state.history.get(decision.rule_id)
    if prev is not None and decision.key in prev.keys:
        return state
    history = dict(state.history)
    history[decision.rule_id] = RuleHistory(
        count=(prev.count if prev else 0) + 1,
        last_at=decision.at,
        keys=(prev.keys if prev else frozenset()) | {decision.key},
    )
    changes: dict[str, Any] = {"history": MappingProxyType(history)}
    if decision.marketing:
        horizon = decision.at - TOUCH_MEMORY
        touches = [t for t in state.touches if t > horizon]
        bisect.insort(touches, decision.at)
        changes["touches"] = tuple(touches)
    for action in decision.actions:
        changes.update(action.state_changes(changes, state))
    codes = coupon_channels(decision.actions)
    if codes:
        changes["coupon_channels"] = MappingProxyType({**state.coupon_channels, **codes})
    return _evolve(state, changes)


# --- JSON form (how the worker stores a customer's state) -------------------------------------

def _t(v: date | None) -> str | None:
    return v.isoformat() if v is not None else None


def state_to_dict(s: CustomerState) -> dict[str, Any]:
    """The JSON form of a customer's state (inverse of state_from_dict)."""
    return {
        "shop": s.shop,
        "customer_id": s.customer_id,
        "email": s.email,
        "first_name": s.first_name,
        "last_name": s.last_name,
        "locale": s.locale,
        "accepts_marketing": s.accepts_marketing,
        "tags": sorted(s.tags),
        "birthday": _t(s.birthday),
        "anniversary": _t(s.anniversary),
        "signed_up_at": _t(s.signed_up_at),
        "profile_at": _t(s.profile_at),
        "consent_at": _t(s.consent_at),
        "consent_changed_at": _t(s.consent_changed_at),
        "sms_phone": s.sms_phone,
        "sms_consent": s.sms_consent,
        "sms_consent_at": _t(s.sms_consent_at),
        "preferred_channel": s.preferred_channel,
        "channel_opens": dict(s.channel_opens),
        "coupon_channels": dict(s.coupon_channels),
        "redeemed_codes": sorted(s.redeemed_codes),
        "currency": s.currency,
        "orders": [
            {"id": o.id, "at": o.at.isoformat(), "total": str(o.total), "currency": o.currency, "paid": o.paid, "cancelled": o.cancelled,
             "refunds": [[rid, str(a)] for rid, a in o.refunds], "reported_refunded": o.reported_refunded}
            for o in s.orders.values()
        ],
        "products_bought": sorted(s.products_bought),
        "collections_bought": sorted(s.collections_bought),
        "referred_by": s.referred_by,
        "phone": s.phone,
        "shipping_address": s.shipping_address,
        "tier": s.tier,
        "history": {rid: {"count": h.count, "last_at": h.last_at.isoformat(), "keys": sorted(h.keys)}
                    for rid, h in s.history.items()},
        "touches": [t.isoformat() for t in s.touches],
        "occasions": [occ.to_dict(o) for o in s.occasions.values()],
    }


def state_from_dict(d: dict[str, Any]) -> CustomerState:
    from plugin.events import parse_time

    base = CustomerState(
        shop=d["shop"],
        customer_id=d["customer_id"],
        email=d.get("email"),
        first_name=d.get("first_name"),
        last_name=d.get("last_name"),
        locale=d.get("locale"),
        accepts_marketing=d.get("accepts_marketing", False),
        tags=frozenset(d.get("tags", ())),
        birthday=date.fromisoformat(d["birthday"]) if d.get("birthday") else None,
        anniversary=date.fromisoformat(d["anniversary"]) if d.get("anniversary") else None,
        signed_up_at=parse_time(d.get("signed_up_at")),
        profile_at=parse_time(d.get("profile_at")),
        consent_at=parse_time(d.get("consent_at")),
        consent_changed_at=parse_time(d.get("consent_changed_at")),
        sms_phone=d.get("sms_phone"),
        sms_consent=d.get("sms_consent", False),
        sms_consent_at=parse_time(d.get("sms_consent_at")),
        preferred_channel=d.get("preferred_channel"),
        channel_opens=MappingProxyType(dict(d.get("channel_opens") or {})),
        coupon_channels=MappingProxyType(dict(d.get("coupon_channels") or {})),
        redeemed_codes=frozenset(d.get("redeemed_codes") or ()),
        currency=d.get("currency"),
        products_bought=frozenset(d.get("products_bought", ())),
        collections_bought=frozenset(d.get("collections_bought", ())),
        referred_by=d.get("referred_by"),
        phone=d.get("phone"),
        shipping_address=d.get("shipping_address"),
        tier=d.get("tier"),
        history=MappingProxyType({
            rid: RuleHistory(h["count"], parse_time(h["last_at"]), frozenset(h["keys"]))
            for rid, h in d.get("history", {}).items()
        }),
        touches=tuple(parse_time(t) for t in d.get("touches", ())),
        occasions=MappingProxyType({o["id"]: occ.from_dict(o) for o in d.get("occasions", ())}),
    )
    orders = {
        o["id"]: OrderSummary(id=o["id"], at=parse_time(o["at"]), total=Decimal(o["total"]), currency=o.get("currency"),
                              paid=o["paid"],
                              cancelled=o["cancelled"], refunds=tuple((rid, Decimal(a)) for rid, a in o["refunds"]),
                              reported_refunded=o.get("reported_refunded", False))
        for o in d.get("orders", ())
    }
    return _aggregate(base, orders)
