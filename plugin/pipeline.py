"""The imperative shell around the engine: load state, decide, record, then act.

For each canonical event, one database transaction loads the customer's state, folds the
event in, asks the pure engine for decisions and writes them to the ledger (with one effect
row per action) before anything touches the outside world. Effects then run one by one and
are marked done; a retried job finds them done and skips them (DESIGN.md principle 3).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from redis import Redis
from rq import Queue
from sqlalchemy import delete, select, update
from sqlalchemy.orm import sessionmaker

import connectors
import connectors.cache
from connectors.base import ConsentLookup, Shop
from connectors.products import fallback_allowed
from plugin import consent, delays, effects, shape
from plugin.attribution import record_attribution
from plugin.config import Config
from plugin.db import (CustomerRow, DecisionRow, EffectRow, EventSeenRow, OrderIndexRow, ShopRow, TimerRow,
                       UnsubscribeRow, utcnow)
from plugin.engine import Decision, occasions
from plugin.engine.actions import Coupon
from plugin.engine.state import state_from_dict, state_to_dict
from plugin.engine.step import Amend, Entry, Outcome, Recorded, TimerEntry, step
from plugin.errors import DeliveryError, PayloadError, StoreError
from plugin.events import Event, event_from_dict, event_to_dict
from plugin.handoff import DRAIN_TTL, Envelope, Handoff
from plugin.importing.importer import is_importing
from plugin.engine.ruleset import for_shop
from plugin.shops import learn_currency, referral_key, rules_for, to_shop
from plugin import sms_consent
from plugin.sms_consent import phones
from plugin.timers import RQ_TIMER_HORIZON, fire_timer, schedule_timer, sweep_timers

log = logging.getLogger("keepwell.worker")

DRAIN_BUDGET_S = 20  # then the drain re-enqueues itself, so other shops get their turn
MAX_ENVELOPE_ATTEMPTS = 5
SHOP_CACHE_S = 5.0
LOCK_EXTEND_S = 30.0
IMPORT_WAIT = timedelta(seconds=15)


@dataclass
class Runtime:
    """Everything the worker needs, built once per process."""

    config: Config
    sessions: sessionmaker
    redis: Redis
    clock: Callable[[], datetime] = utcnow
    handoff: Handoff = field(init=False)
    queue: Queue = field(init=False)

    def __post_init__(self):
        connectors.cache.bind(self.redis, self.config.queue)  # caches every job process shares
        self.handoff = Handoff(self.redis, self.config.queue)
        self.queue = self.handoff.queue
        self._shops: dict[str, tuple[float, Shop | None]] = {}

    def shop(self, shop_id: str) -> Shop | None:
        """The shop with its secrets decrypted, or None when unknown or uninstalled. Cached for a
        few seconds: a drain works through many envelopes of one shop."""
        hit = self._shops.get(shop_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < SHOP_CACHE_S:
            return hit[1]
        with self.sessions() as session:
            row = session.get(ShopRow, shop_id)
            shop = to_shop(row, self.config) if row is not None and row.active else None
        self._shops[shop_id] = (now, shop)
        return shop

    def forget_shop(self, shop_id: str) -> None:
        """Drop the cached shop (its settings changed)."""
        self._shops.pop(shop_id, None)


# --- draining a shop's backlog -----------------------------------------------------------------

def drain(rt: Runtime, shop_id: str, budget_s: float = DRAIN_BUDGET_S) -> int:
    """Process the shop's backlog, oldest first; returns the number of envelopes processed."""
    keys = rt.handoff.keys(shop_id)
    if is_importing(rt, shop_id):
        # the shop's history is being folded in: live events wait for it (a loyal customer's
        # next order must not look like a first one), then go in order
        rt.redis.expire(keys.draining, DRAIN_TTL)
        rt.queue.enqueue_in(IMPORT_WAIT, "plugin.jobs.drain", shop_id, result_ttl=60)
        return 0
    lock = rt.redis.lock(f"{keys.draining}:lock", timeout=DRAIN_TTL, blocking=False)
    if not lock.acquire():
        return 0  # another drain holds the shop; it will see our items
    done = 0
    wait = None
    started = extended = time.monotonic()
    try:
        # An item left in `processing` belongs to a drain that died: it goes first, again.
        raw = rt.redis.lindex(keys.processing, 0)
        while time.monotonic() - started < budget_s:
            raw = raw or rt.redis.lmove(keys.backlog, keys.processing, "LEFT", "RIGHT")
            if raw is None:
                break
            wait = _process_safely(rt, shop_id, raw)
            if wait is not None:
                break  # the entry stays first in line until the store is ready
            raw = None
            pipe = rt.redis.pipeline(transaction=False)
            pipe.lpop(keys.processing)
            pipe.expire(keys.draining, DRAIN_TTL)
            pipe.execute()
            if time.monotonic() - extended > LOCK_EXTEND_S:
                lock.extend(DRAIN_TTL, replace_ttl=True)
                extended = time.monotonic()
            done += 1
    finally:
        lock.release()
        if wait is not None:
            delays.resume_later(rt, shop_id, wait)
        else:
            rt.redis.delete(keys.draining)
            rt.handoff.ensure_drain(shop_id)
    return done


def _process_safely(rt: Runtime, shop_id: str, raw: bytes) -> float | None:
    """Process one envelope; a malformed one is dead-lettered at once instead of blocking the
    shop, one that keeps failing after MAX_ENVELOPE_ATTEMPTS tries. Returns the seconds to wait
    when the store asked to be called again later."""
    keys = rt.handoff.keys(shop_id)
    try:
        env = Envelope.decode(raw)
    except ValueError as exc:
        log.error("shop %s: undecodable backlog entry dead-lettered", shop_id)
        rt.handoff.dead_letter(shop_id, raw, f"undecodable backlog entry: {exc}")
        return
    waited = delays.delays_so_far(rt, shop_id, env.key)
    try:
        if waited >= delays.MAX_DELAYS:
            with fallback_allowed():  # the last try: what the store still cannot say is marked as such
                process_envelope(rt, shop_id, env)
        else:
            process_envelope(rt, shop_id, env)
    except StoreError as exc:
        if not exc.retryable or waited >= delays.MAX_DELAYS:
            return _failed(rt, shop_id, env, raw, exc)
        return delays.delay(rt, shop_id, env.key, exc)
    except PayloadError as exc:
        log.error("shop %s: %s %s refused: %s", shop_id, env.platform, env.topic, exc)
        rt.handoff.dead_letter(shop_id, raw, f"refused: {exc}")
        rt.redis.hdel(keys.attempts, env.key)
        delays.done(rt, shop_id, env.key)
    except Exception as exc:
        return _failed(rt, shop_id, env, raw, exc)
    if waited:
        delays.done(rt, shop_id, env.key)
    return None


def _failed(rt: Runtime, shop_id: str, env: Envelope, raw: bytes, exc: Exception) -> None:
    """Called in an ``except`` block: count a failure; the last one dead-letters the envelope."""
    keys = rt.handoff.keys(shop_id)
    attempts = rt.redis.hincrby(keys.attempts, env.key, 1)
    if attempts >= MAX_ENVELOPE_ATTEMPTS:
        log.exception("shop %s: %s failed %d times; dead-lettered", shop_id, env.key, attempts)
        rt.handoff.dead_letter(shop_id, raw, f"failed {attempts} times: {type(exc).__name__}: {exc}")
        rt.redis.hdel(keys.attempts, env.key)
        delays.done(rt, shop_id, env.key)
        return None
    raise  # RQ retries the drain with backoff; the entry stays first in line


def process_envelope(rt: Runtime, shop_id: str, env: Envelope) -> None:
    shop = rt.shop(shop_id)
    if shop is None:
        log.info("shop %s is not active: %s %s dropped", shop_id, env.platform, env.topic)
        return
    with rt.sessions() as session:
        payload = shape.loads(env.body)
        if env.platform == "keepwell":
            events = [event_from_dict(payload)]
        else:
            def customer_of_order(order_id: str):
                idx = session.get(OrderIndexRow, (shop_id, str(order_id)))
                return idx.customer_id if idx else None

            events = connectors.get(env.platform).parse(shop, env.topic, payload, customer_of_order)
        if any(e.order is not None for e in events):  # as simulate does: an order's checkout fields may capture an occasion
            events = occasions.expand(events, rules_for(session, shop_id)[0].settings.occasion_fields)
    for event in events:
        process_event(rt, shop_id, event)


# --- deciding: load -> step -> write ------------------------------------------------------------

def process_event(rt: Runtime, shop_id: str, event: Event) -> list[str]:
    """Load what the policy needs, let the engine's ``step`` decide, and record its outcome in one
    transaction; then schedule timers and run the new touches. Returns the touch keys."""
    if event.shop != shop_id:  # the envelope's shop is the truth
        event = replace(event, shop=shop_id)
    now = rt.clock()
    shop = rt.shop(shop_id)
    looked_up = consent.first_seen(rt, shop, event) if shop is not None else None  # store I/O: before the transaction
    with rt.sessions.begin() as session:
        if session.get(EventSeenRow, (shop_id, event.id)) is not None:
            touches = list(session.scalars(select(DecisionRow.key).where(
                DecisionRow.shop_id == shop_id, DecisionRow.event_id == event.id, DecisionRow.status == "pending")))
            timers = []
        else:
            ruleset, crow, state, recorded = _load(rt, session, shop_id, event, looked_up)
            outcome = step(event, state, ruleset, now, recorded)
            touches, timers = _write(session, shop_id, event, crow, outcome)
    sms_consent.after_event(rt, shop_id, event)  # an SMS opt-out or re-subscription: kept and written back
    for key, at, attempt in timers:
        schedule_timer(rt, shop_id, key, at, attempt)
    effects.dispatch(rt, shop_id, touches)  # run by the shop's effect runners: deciding never waits for a store
    return touches


def _load(rt: Runtime, session, shop_id: str, event: Event, looked_up: ConsentLookup | None):
    """(rule set, customer row, state, Recorded) for ``event``. ``looked_up``: the store's consent
    for a customer Keepwell knew none of (plugin.consent)."""
    learn_currency(session, shop_id, event)
    # a timer runs under the rule set version it was scheduled with, while the shop keeps it
    ruleset, _ = rules_for(session, shop_id, event.data.get("version") if event.type == "timer" else None)
    ruleset = for_shop(ruleset, _referral_key(rt, session, shop_id))
    cid = event.customer_id
    crow = session.get(CustomerRow, (shop_id, cid))
    ledger = {key: Entry(kind, reason, status) for key, kind, reason, status in session.execute(
        select(DecisionRow.key, DecisionRow.kind, DecisionRow.reason, DecisionRow.status)
        .where(DecisionRow.shop_id == shop_id, DecisionRow.customer_id == cid))}
    timers = {key: TimerEntry(wake_at, attempts, status) for key, wake_at, attempts, status in session.execute(
        select(TimerRow.key, TimerRow.wake_at, TimerRow.attempts, TimerRow.status)
        .where(TimerRow.shop_id == shop_id, TimerRow.customer_id == cid))}
    known = looked_up is not None and looked_up.accepts_marketing is not None
    texts = looked_up is not None and looked_up.sms_consent is not None
    recorded = Recorded(ledger, timers, unsubscribed=session.get(UnsubscribeRow, (shop_id, cid)) is not None,
                        store_consent=looked_up.accepts_marketing if known else None,
                        store_consent_at=looked_up.updated_at if known else None,
                        store_sms_consent=looked_up.sms_consent if texts else None,
                        store_sms_consent_at=looked_up.sms_consent_at if texts else None,
                        store_phone=looked_up.phone if texts else None)
    return ruleset, crow, state_from_dict(crow.state) if crow else None, recorded


def _write(session, shop_id: str, event: Event, crow: CustomerRow | None, outcome: Outcome
           ) -> tuple[list[str], list[tuple]]:
    """Record ``outcome``; (touch keys to run, timers to schedule)."""
    for w in outcome.ledger:
        if w.status == "failed":
            log.error("shop %s: %s: %s", shop_id, w.key if isinstance(w, Amend) else w.decision.key, w.error)
        if isinstance(w, Amend):
            changes = {k: v for k, v in (("detail", w.detail), ("status", w.status), ("error", w.error)) if v is not None}
            session.execute(update(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == w.key)
                            .values(**changes))
            continue
        if w.replaces:
            session.execute(delete(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == w.decision.key))
        session.add(_decision_row(shop_id, w.decision, w.status, w.error))
        if w.status == "pending":
            for a in w.decision.actions:
                session.add(EffectRow(shop_id=shop_id, key=a.key, decision_key=w.decision.key,
                                      customer_id=w.decision.customer_id, type=a.type,
                                      coupon_code=a.code if isinstance(a, Coupon) else None))
    schedule = []
    for t in outcome.timers:
        if t.event is not None:
            session.add(TimerRow(shop_id=shop_id, key=t.id, customer_id=t.customer_id, wake_at=t.wake_at,
                                 event=event_to_dict(t.event)))
        else:
            session.execute(update(TimerRow).where(TimerRow.shop_id == shop_id, TimerRow.key == t.id)
                            .values(status=t.status, attempts=t.attempts, error=t.error))
        if t.status == "pending":
            schedule.append((t.id, t.wake_at, t.attempts))
    if outcome.state is not None:
        if crow is None:
            crow = CustomerRow(shop_id=shop_id, customer_id=event.customer_id)
            session.add(crow)
        crow.state = state_to_dict(outcome.state)
        crow.phone_key = phones.state_key(crow.state)  # finds the customer a text message came from
        if event.order is not None and session.get(OrderIndexRow, (shop_id, event.order.id)) is None:
            session.add(OrderIndexRow(shop_id=shop_id, order_id=event.order.id, customer_id=event.customer_id))
        record_attribution(session, shop_id, event)  # order.paid redeeming a Keepwell coupon
    if outcome.seen:
        session.add(EventSeenRow(shop_id=shop_id, key=event.id))
    return [d.key for d in outcome.touches], schedule


def _referral_key(rt: Runtime, session, shop_id: str) -> str:
    shop = rt.shop(shop_id)
    if shop is not None and shop.referral_key:
        return shop.referral_key
    rt._shops.pop(shop_id, None)  # a shop from before keyed codes gets its key now
    return referral_key(session, rt.config, shop_id)


def _decision_row(shop_id: str, d: Decision, status: str, error: str | None = None) -> DecisionRow:
    data = d.to_dict()
    return DecisionRow(shop_id=shop_id, key=d.key, rule_id=d.rule_id, customer_id=d.customer_id, kind=data["kind"],
                       reason=data["reason"], detail=d.detail, status=status, event_id=d.event_id,
                       ruleset_version=d.ruleset_version, decision=data, error=error)


# --- acting -------------------------------------------------------------------------------------

def execute_decision(rt: Runtime, shop_id: str, key: str) -> str:
    """Run a touch's pending effects in order; returns the decision's status."""
    return effects.execute(rt, shop_id, key)


__all__ = ["Runtime", "RQ_TIMER_HORIZON", "drain", "process_envelope", "process_event", "fire_timer", "sweep_timers",
           "execute_decision", "StoreError", "DeliveryError"]
