"""Deciding many envelopes of one shop in one transaction: parse, load in bulk, step, write in bulk.

A drain hands over up to a batch of envelopes (plugin.drain). They are parsed in order (a
refund finds the customer of an order earlier in the same batch), the store's consent is looked
up for customers Keepwell meets without one (store I/O, before the transaction), and then one
transaction loads with ``IN`` queries what every customer of the batch has recorded (state,
ledger, timers, unsubscribes, seen events, known orders), lets the pure engine's ``step`` decide
each event in turn, and writes the outcomes (inserts go out as multi-row statements when the
transaction commits). Events of one customer fold in sequence: each step sees the state,
ledger entries and timers the previous ones left, exactly as if each event had its own
transaction. After the commit: timers are scheduled, touches run.

A crash anywhere before the commit leaves nothing written, and the batch runs again; after it,
every event is seen and only the pending touches run again (their effects are idempotent).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from sqlalchemy import delete, select, update

import connectors
from connectors.base import ConsentLookup
from plugin import consent, crash, shape
from plugin.attribution import record_attribution
from plugin.db import (CustomerRow, DecisionRow, EffectRow, EventSeenRow, OrderIndexRow, ShopRow, TimerRow,
                       UnsubscribeRow)
from plugin.engine import occasions
from plugin.engine.actions import Coupon
from plugin.engine.ruleset import RuleSet, for_shop
from plugin.engine.state import CustomerState, state_from_dict, state_to_dict
from plugin.engine.step import Amend, Entry, Outcome, Recorded, TimerEntry, TimerWrite, Write, step
from plugin.events import Event, event_from_dict, event_to_dict
from plugin.handoff import Envelope
from plugin.shops import learn_currency, referral_key, rules_for, shop_currency
from plugin.sms_consent import phones
from plugin.timers import schedule_timer

log = logging.getLogger("keepwell.worker")


def parse_envelopes(rt, shop, envelopes: list[Envelope]) -> list[Event]:
    """The canonical events of ``envelopes``, in order (occasions after their orders).
    PayloadError for a malformed one (the drain then isolates it)."""
    shop_id = shop.id
    events: list[Event] = []
    orders: dict[str, str] = {}  # orders earlier in the batch: their customers
    fields = None  # the rule set's occasion fields, read once per batch
    with rt.sessions() as session:
        def customer_of_order(order_id):
            if str(order_id) in orders:
                return orders[str(order_id)]
            idx = session.get(OrderIndexRow, (shop_id, str(order_id)))
            return idx.customer_id if idx else None

        for env in envelopes:
            payload = shape.loads(env.body)
            if env.platform == "keepwell":
                found = [event_from_dict(payload)]
            else:
                found = connectors.get(env.platform).parse(shop, env.topic, payload, customer_of_order)
            if any(e.order is not None for e in found):  # as simulate does: checkout fields may capture an occasion
                if fields is None:
                    fields = rules_for(session, shop_id)[0].settings.occasion_fields
                found = occasions.expand(found, fields)
            for e in found:
                if e.order is not None and e.customer_id:
                    orders.setdefault(str(e.order.id), e.customer_id)
            events.extend(found)
    return [e if e.shop == shop_id else replace(e, shop=shop_id) for e in events]


def consent_lookups(rt, shop, events: list[Event]) -> dict[int, ConsentLookup | None]:
    """The store's consent, by position in ``events``, for the first event of each customer that
    Keepwell meets without one (``plugin.consent.first_seen_many``: store I/O, so before the
    transaction). A customer whose consent an earlier event of the batch brings is not looked up."""
    first: dict[str, int] = {}
    for i, event in enumerate(events):
        cid = event.customer_id
        if cid not in first:
            first[cid] = i
    wanted = [i for i in first.values()
              if events[i].customer is None or events[i].customer.accepts_marketing is None]
    found = consent.first_seen_many(rt, shop, [events[i] for i in wanted])
    return {i: f for i, f in zip(wanted, found) if f is not None}


@dataclass
class _Loaded:
    """What the batch's customers have recorded, kept up to date as the batch's events are decided."""

    seen: set[str]
    crows: dict[str, CustomerRow]
    states: dict[str, CustomerState | None]
    ledger: dict[str, dict[str, Entry]]
    pending_by_event: dict[str, list[str]]
    timers: dict[str, dict[str, TimerEntry]]
    unsubscribed: set[str]
    orders: set[str]
    new_decisions: dict[str, DecisionRow] = field(default_factory=dict)
    new_timers: dict[str, TimerRow] = field(default_factory=dict)
    timer_updates: dict[str, dict] = field(default_factory=dict)  # stored timers' new fields, written at the end
    dirty: set[str] = field(default_factory=set)


def _load(session, shop_id: str, events: list[Event]) -> _Loaded:
    cids = sorted({e.customer_id for e in events})
    ids = sorted({e.id for e in events})
    order_ids = sorted({str(e.order.id) for e in events if e.order is not None})
    crows = {r.customer_id: r for r in session.scalars(select(CustomerRow).where(
        CustomerRow.shop_id == shop_id, CustomerRow.customer_id.in_(cids)))}
    ledger: dict[str, dict[str, Entry]] = {c: {} for c in cids}
    pending: dict[str, list[str]] = {}
    for key, kind, reason, status, cid, event_id in session.execute(
            select(DecisionRow.key, DecisionRow.kind, DecisionRow.reason, DecisionRow.status, DecisionRow.customer_id,
                   DecisionRow.event_id).where(DecisionRow.shop_id == shop_id, DecisionRow.customer_id.in_(cids))):
        ledger[cid][key] = Entry(kind, reason, status)
        if status == "pending":
            pending.setdefault(event_id, []).append(key)
    timers: dict[str, dict[str, TimerEntry]] = {c: {} for c in cids}
    for key, cid, wake_at, attempts, status in session.execute(
            select(TimerRow.key, TimerRow.customer_id, TimerRow.wake_at, TimerRow.attempts, TimerRow.status)
            .where(TimerRow.shop_id == shop_id, TimerRow.customer_id.in_(cids))):
        timers[cid][key] = TimerEntry(wake_at, attempts, status)
    return _Loaded(
        seen=set(session.scalars(select(EventSeenRow.key).where(EventSeenRow.shop_id == shop_id,
                                                                 EventSeenRow.key.in_(ids)))),
        crows=crows, states={c: state_from_dict(r.state) for c, r in crows.items()}, ledger=ledger,
        pending_by_event=pending, timers=timers,
        unsubscribed=set(session.scalars(select(UnsubscribeRow.customer_id).where(
            UnsubscribeRow.shop_id == shop_id, UnsubscribeRow.customer_id.in_(cids)))),
        orders=set(session.scalars(select(OrderIndexRow.order_id).where(
            OrderIndexRow.shop_id == shop_id, OrderIndexRow.order_id.in_(order_ids)))) if order_ids else set())


class _Rules:
    """The rule sets of one batch, by version (and the shop's currency, which an order may teach)."""

    def __init__(self, rt, session, shop_id: str):
        self.rt, self.session, self.shop_id = rt, session, shop_id
        # held for the batch: the session's identity map holds rows weakly, and learn_currency
        # and shop_currency look the row up for every event
        self.shop_row = session.get(ShopRow, shop_id)
        self._key: str | None = None
        self._memo: dict[tuple, RuleSet] = {}

    def get(self, event: Event) -> RuleSet:
        version = event.data.get("version") if event.type == "timer" else None
        memo = (version, shop_currency(self.session, self.shop_id))
        hit = self._memo.get(memo)
        if hit is None:
            if self._key is None:
                self._key = _referral_key(self.rt, self.session, self.shop_id)
            # a timer runs under the rule set version it was scheduled with, while the shop keeps it
            hit = self._memo[memo] = for_shop(rules_for(self.session, self.shop_id, version)[0], self._key)
        return hit


def decide(rt, shop_id: str, events: list[Event], looked_up: dict[int, ConsentLookup | None]
           ) -> tuple[list[str], list[tuple]]:
    """Decide ``events`` in one transaction; (touch keys to run, timers to schedule), in order."""
    touches: list[str] = []
    schedule: list[tuple] = []
    with rt.sessions.begin() as session, session.no_autoflush:
        loaded = _load(session, shop_id, events)
        rules = _Rules(rt, session, shop_id)
        for i, event in enumerate(events):
            if event.id in loaded.seen:
                touches.extend(loaded.pending_by_event.pop(event.id, []))
                continue
            learn_currency(session, shop_id, event)
            cid = event.customer_id
            found = looked_up.get(i)
            known = found is not None and found.accepts_marketing is not None
            texts = found is not None and found.sms_consent is not None
            recorded = Recorded(loaded.ledger.setdefault(cid, {}), loaded.timers.setdefault(cid, {}),
                                unsubscribed=cid in loaded.unsubscribed,
                                store_consent=found.accepts_marketing if known else None,
                                store_consent_at=found.updated_at if known else None,
                                store_sms_consent=found.sms_consent if texts else None,
                                store_sms_consent_at=found.sms_consent_at if texts else None,
                                store_phone=found.phone if texts else None)
            outcome = step(event, loaded.states.get(cid), rules.get(event), rt.clock(), recorded)
            touches.extend(_write(session, shop_id, event, outcome, loaded, schedule))
        if loaded.timer_updates:
            session.execute(update(TimerRow), list(loaded.timer_updates.values()))  # by primary key, executemany
        for cid in loaded.dirty:
            state = state_to_dict(loaded.states[cid])
            if cid in loaded.crows:
                loaded.crows[cid].state = state
                loaded.crows[cid].phone_key = phones.state_key(state)  # finds the customer a text message came from
            else:
                session.add(CustomerRow(shop_id=shop_id, customer_id=cid, state=state, phone_key=phones.state_key(state)))
        session.flush()
        crash.point("decided")
    crash.point("committed")
    return touches, schedule


def _write(session, shop_id: str, event: Event, outcome: Outcome, loaded: _Loaded, schedule: list) -> list[str]:
    """Record ``outcome`` (and keep ``loaded`` in step with it); the touch keys to run."""
    cid = event.customer_id
    for w in outcome.ledger:
        if w.status == "failed":
            log.error("shop %s: %s: %s", shop_id, w.key if isinstance(w, Amend) else w.decision.key, w.error)
        if isinstance(w, Amend):
            _amend(session, shop_id, w, loaded, cid)
        else:
            _add_decision(session, shop_id, w, loaded)
    for t in outcome.timers:
        _timer(session, shop_id, t, loaded)
        if t.status == "pending":
            schedule.append((t.id, t.wake_at, t.attempts))
    if outcome.state is not None:
        loaded.states[cid] = outcome.state
        loaded.dirty.add(cid)
        if event.order is not None and str(event.order.id) not in loaded.orders:
            loaded.orders.add(str(event.order.id))
            session.add(OrderIndexRow(shop_id=shop_id, order_id=event.order.id, customer_id=cid))
        if event.type == "order.paid" and event.order is not None and event.order.discount_codes:
            session.flush()  # attribution reads the coupon effects, this batch's too
            record_attribution(session, shop_id, event)  # order.paid redeeming a Keepwell coupon
    if outcome.seen:
        loaded.seen.add(event.id)
        session.add(EventSeenRow(shop_id=shop_id, key=event.id))
    return [d.key for d in outcome.touches]


def _add_decision(session, shop_id: str, w: Write, loaded: _Loaded) -> None:
    key = w.decision.key
    if w.replaces:
        stale = loaded.new_decisions.pop(key, None)
        if stale is not None:
            session.expunge(stale)  # added earlier in this batch, not yet written
        else:
            session.execute(delete(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == key))
    row = loaded.new_decisions[key] = _decision_row(shop_id, w.decision, w.status, w.error)
    session.add(row)
    loaded.ledger.setdefault(w.decision.customer_id, {})[key] = Entry(row.kind, row.reason, w.status)
    if w.status == "pending":
        for a in w.decision.actions:
            session.add(EffectRow(shop_id=shop_id, key=a.key, decision_key=key, customer_id=w.decision.customer_id,
                                  type=a.type, coupon_code=a.code if isinstance(a, Coupon) else None))


def _timer(session, shop_id: str, t: TimerWrite, loaded: _Loaded) -> None:
    timers = loaded.timers.setdefault(t.customer_id, {})
    if t.event is not None:
        loaded.new_timers[t.id] = row = TimerRow(shop_id=shop_id, key=t.id, customer_id=t.customer_id,
                                                 wake_at=t.wake_at, event=event_to_dict(t.event))
        session.add(row)
        timers[t.id] = TimerEntry(t.wake_at, t.attempts, t.status)
        return
    row = loaded.new_timers.get(t.id)
    if row is not None:
        row.status, row.attempts, row.error = t.status, t.attempts, t.error
    else:  # one UPDATE for all of them when the batch is decided (nothing in it reads them back)
        loaded.timer_updates[t.id] = {"shop_id": shop_id, "key": t.id, "status": t.status, "attempts": t.attempts,
                                      "error": t.error}
    old = timers.get(t.id)
    timers[t.id] = TimerEntry(old.wake_at if old else t.wake_at, t.attempts, t.status)


def _amend(session, shop_id: str, w: Amend, loaded: _Loaded, cid: str) -> None:
    changes = {k: v for k, v in (("detail", w.detail), ("status", w.status), ("error", w.error)) if v is not None}
    row = loaded.new_decisions.get(w.key)
    if row is not None:
        for k, v in changes.items():
            setattr(row, k, v)
    else:
        session.execute(update(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == w.key)
                        .values(**changes))
    entries = loaded.ledger.setdefault(cid, {})
    old = entries.get(w.key)
    if old is not None and w.status is not None:
        entries[w.key] = old._replace(status=w.status)


def _referral_key(rt, session, shop_id: str) -> str:
    shop = rt.shop(shop_id)
    if shop is not None and shop.referral_key:
        return shop.referral_key
    rt.forget_shop(shop_id)  # a shop from before keyed codes gets its key now
    return referral_key(session, rt.config, shop_id)


def _decision_row(shop_id: str, d, status: str, error: str | None = None) -> DecisionRow:
    data = d.to_dict()
    return DecisionRow(shop_id=shop_id, key=d.key, rule_id=d.rule_id, customer_id=d.customer_id, kind=data["kind"],
                       reason=data["reason"], detail=d.detail, status=status, event_id=d.event_id,
                       ruleset_version=d.ruleset_version, decision=data, error=error)


def schedule_all(rt, shop_id: str, timers: list[tuple]) -> None:
    for key, at, attempt in timers:
        schedule_timer(rt, shop_id, key, at, attempt)


__all__ = ["parse_envelopes", "consent_lookups", "decide", "schedule_all"]
